"""Paired comparison: exact McNemar against exact binomial sums, and the paired
bootstrap on constructed data whose answer is known."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from salmonn_o1.eval.paired import compare, mcnemar_exact, paired_bootstrap


def _exact_two_sided(only_a: int, only_b: int) -> float:
    """2 * P(X <= min) for X ~ Bin(n, 1/2), in exact rational arithmetic."""
    n, k = only_a + only_b, min(only_a, only_b)
    tail = Fraction(sum(math.comb(n, i) for i in range(k + 1)), 2**n)
    return float(min(Fraction(1), 2 * tail))


@pytest.mark.parametrize(
    "only_a,only_b,expected",
    [
        (0, 5, 2 / 32),  # 0.0625: five discordant pairs all one way is not significant
        (0, 6, 2 / 64),  # 0.03125: six is
        (1, 9, 22 / 1024),  # 2 * (1 + 10) / 2^10
        (9, 1, 22 / 1024),  # symmetric
        (5, 5, 1.0),
        (0, 0, 1.0),
        (3, 0, 0.25),
    ],
)
def test_mcnemar_exact_small_cases_by_hand(only_a, only_b, expected):
    assert mcnemar_exact(only_a, only_b) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("only_a,only_b", [(40, 60), (100, 140), (250, 250), (3, 400), (700, 650)])
def test_mcnemar_exact_large_cases_against_exact_rational_sum(only_a, only_b):
    assert mcnemar_exact(only_a, only_b) == pytest.approx(_exact_two_sided(only_a, only_b), rel=1e-9, abs=1e-300)


def _systems(both: int, only_a: int, only_b: int, neither: int, seed: int = 0):
    a = [True] * both + [True] * only_a + [False] * only_b + [False] * neither
    b = [True] * both + [False] * only_a + [True] * only_b + [False] * neither
    order = np.random.default_rng(seed).permutation(len(a))
    return [a[i] for i in order], [b[i] for i in order]


def test_compare_counts_and_known_difference():
    a, b = _systems(both=90, only_a=10, only_b=50, neither=50)
    result = compare(a, b, samples=4000, seed=1)
    assert (result.n, result.both, result.only_a, result.only_b, result.neither) == (200, 90, 10, 50, 50)
    assert result.accuracy_a == pytest.approx(0.5) and result.accuracy_b == pytest.approx(0.7)
    assert result.diff == pytest.approx(0.2)
    assert result.p_value == pytest.approx(_exact_two_sided(10, 50)) and result.p_value < 1e-6
    # the normal approximation of the paired difference: sd = sqrt((0.3 - 0.04) / 200) = 0.0361
    sd = math.sqrt((60 / 200 - 0.2**2) / 200)
    assert result.diff_low == pytest.approx(0.2 - 1.96 * sd, abs=0.015)
    assert result.diff_high == pytest.approx(0.2 + 1.96 * sd, abs=0.015)
    assert result.diff_low > 0  # B is better, and the interval says so


def test_no_difference_when_the_systems_agree_or_discordance_is_balanced():
    same = compare([True, False, True, True], [True, False, True, True], samples=500)
    assert (same.diff, same.diff_low, same.diff_high, same.p_value) == (0.0, 0.0, 0.0, 1.0)
    a, b = _systems(both=30, only_a=20, only_b=20, neither=30)
    balanced = compare(a, b, samples=2000)
    assert balanced.diff == 0.0 and balanced.p_value == 1.0
    assert balanced.diff_low < 0 < balanced.diff_high


def test_bootstrap_extremes_and_determinism():
    diff, low, high = paired_bootstrap(np.zeros(50), np.ones(50), samples=300)
    assert (diff, low, high) == (1.0, 1.0, 1.0)
    a, b = _systems(both=10, only_a=5, only_b=15, neither=10, seed=3)
    assert paired_bootstrap(a, b, 1500, seed=7) == paired_bootstrap(a, b, 1500, seed=7)
    diff, low, high = paired_bootstrap(a, b, 1500, seed=8)
    assert diff == pytest.approx(0.25) and low < diff < high  # quantiles move in 1/40 steps: no seed check
    assert all(math.isnan(v) for v in paired_bootstrap([], [], 10))


def test_mismatched_lengths_are_rejected():
    with pytest.raises(ValueError):
        compare([True, False], [True])
    with pytest.raises(ValueError):
        paired_bootstrap(np.ones(3), np.ones(4))
