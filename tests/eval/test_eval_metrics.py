"""Scoring and metrics on constructed predictions with hand-computed results."""

from __future__ import annotations

import math

import pytest

from salmonn_o1.data.schema import Item, Prediction
from salmonn_o1.eval.metrics import (
    accuracy,
    accuracy_by,
    detection_metrics,
    score_item,
    score_predictions,
    wilson_interval,
)

OPTIONS = ["Water", "Fire", "Earth", "Wind"]


def _choice(i: int, answer: str, category: str, **extras) -> Item:
    return Item(f"q{i}", None, f"question {i}?", OPTIONS, answer, category=category, extras=extras)


def _yes_no(i: int, answer: str) -> Item:
    return Item(f"g{i}", None, "Is this video manipulated? Answer YES or NO.", [], answer, category="glitch")


# (value from the Wilson formula by hand / published tables)
@pytest.mark.parametrize(
    "correct,total,low,high",
    [
        (8, 10, 0.4902, 0.9433),
        (0, 10, 0.0, 0.2775),
        (10, 10, 0.7225, 1.0),
        (50, 100, 0.4038, 0.5962),
        (1, 2, 0.0945, 0.9055),
    ],
)
def test_wilson_interval_matches_hand_computed_values(correct, total, low, high):
    lo, hi = wilson_interval(correct, total)
    assert lo == pytest.approx(low, abs=1e-4) and hi == pytest.approx(high, abs=1e-4)


def test_wilson_interval_edges():
    assert wilson_interval(0, 0) == (0.0, 1.0)
    for total in range(1, 40):  # exact 0 and 1 at the ends (no float noise), always containing p
        assert wilson_interval(0, total)[0] == 0.0 and wilson_interval(total, total)[1] == 1.0
        for correct in range(total + 1):
            lo, hi = wilson_interval(correct, total)
            assert 0.0 <= lo <= correct / total <= hi <= 1.0
    # by hand for 3/4: p=.75, z^2=3.8415; centre=(.75+.4802)/1.9604=.6275; half=1.96*sqrt(.046875+.06002)/1.9604
    z2 = 1.959963984540054**2
    centre = (0.75 + z2 / 8) / (1 + z2 / 4)
    half = math.sqrt(z2) * math.sqrt(0.75 * 0.25 / 4 + z2 / 64) / (1 + z2 / 4)
    assert wilson_interval(3, 4) == pytest.approx((centre - half, centre + half))
    assert wilson_interval(3, 4) == pytest.approx((0.3006, 0.9544), abs=1e-4)


@pytest.fixture()
def items():
    # 6 alignment (answers A..), 4 counting, 4 glitch
    return (
        [_choice(i, "ABCDAB"[i], "alignment", level="easy" if i < 3 else "hard") for i in range(6)]
        + [_choice(6 + i, "CDAB"[i], "counting") for i in range(4)]
        + [_yes_no(i, answer) for i, answer in enumerate(["YES", "YES", "NO", "NO"])]
    )


@pytest.fixture()
def predictions():
    preds = [
        Prediction("q0", answer="The answer is A."),  # right
        Prediction("q1", answer="B"),  # right
        Prediction("q2", answer="Fire"),  # wrong (Fire is B, gold C)
        Prediction("q3", answer="I am not sure."),  # unparsed
        Prediction("q4", answer="The answer is A.", reasoning="1. ... The answer is C."),  # right in answer mode
        # q5 missing
        Prediction("q6", answer="(C)"),  # right
        Prediction("q7", answer="D. Wind"),  # right
        Prediction("q8", error="clip.mp4: no video stream"),  # error
        Prediction("q9", answer="Answer: A", reasoning="So the answer is B."),  # wrong in answer mode
        Prediction("g0", answer="YES"),  # TP
        Prediction("g1", answer="no"),  # FN
        Prediction("g2", answer="So the answer is YES."),  # FP
        Prediction("g3", answer="NO."),  # TN
        Prediction("ghost", answer="A"),  # no such item
    ]
    return {p.id: p for p in preds}


def test_scores_and_statuses(items, predictions):
    scored = score_predictions(items, predictions)
    by_id = scored.by_id
    assert [by_id[i].correct for i in ("q0", "q1", "q2", "q3", "q4", "q5")] == [True, True, False, False, True, False]
    assert by_id["q2"].predicted == "B" and by_id["q2"].status == "ok"
    assert by_id["q3"].status == "unparsed" and by_id["q3"].text == "I am not sure."
    assert by_id["q5"].status == "missing" and by_id["q5"].predicted is None
    assert by_id["q8"].status == "error" and by_id["q8"].text == "clip.mp4: no video stream"
    assert by_id["g1"].predicted == "NO" and by_id["g2"].predicted == "YES"
    assert scored.unknown_ids == ["ghost"]
    assert len(scored.items) == len(items)  # every item scored once, in item order
    assert [s.id for s in scored.items] == [it.id for it in items]


def test_accuracy_overall_and_per_category(items, predictions):
    scored = score_predictions(items, predictions).items
    overall = accuracy(scored)
    # right: q0 q1 q4 q6 q7 g0 g3 = 7 of 14
    assert (overall.correct, overall.total) == (7, 14) and overall.value == 0.5
    assert (overall.low, overall.high) == pytest.approx(wilson_interval(7, 14))
    groups = accuracy_by(scored)
    assert list(groups) == ["alignment", "counting", "glitch"]  # sorted
    assert (groups["alignment"].correct, groups["alignment"].total) == (3, 6)
    assert (groups["counting"].correct, groups["counting"].total) == (2, 4)
    assert (groups["glitch"].correct, groups["glitch"].total) == (2, 4)
    assert (groups["counting"].low, groups["counting"].high) == pytest.approx((0.1500, 0.8500), abs=1e-4)


def test_reasoning_mode_reads_the_reasoning_text(items, predictions):
    by_id = score_predictions(items, predictions, mode="reasoning").by_id
    assert by_id["q9"].correct and by_id["q9"].predicted == "B"
    assert not by_id["q4"].correct and by_id["q4"].predicted == "C"
    assert by_id["q0"].status == "unparsed"  # no reasoning text at all
    with pytest.raises(ValueError, match="mode"):
        score_predictions(items, predictions, mode="both")


def test_grouping_by_an_extras_key(items, predictions):
    groups = accuracy_by(score_predictions(items, predictions, by="level").items)
    assert {name: (a.correct, a.total) for name, a in groups.items()} == {
        "(none)": (4, 8),
        "easy": (2, 3),
        "hard": (1, 3),
    }


def test_detection_precision_recall_f1():
    golds = ["YES", "YES", "YES", "YES", "NO", "NO", "NO", "NO", "NO", "NO"]
    preds = ["YES", "YES", "YES", None, "YES", "YES", "NO", "NO", "NO", "NO"]
    d = detection_metrics(golds, preds)
    assert (d.tp, d.fp, d.fn, d.tn) == (3, 2, 1, 4)
    assert d.precision == pytest.approx(3 / 5)
    assert d.recall == pytest.approx(3 / 4)
    assert d.f1 == pytest.approx(2 * 0.6 * 0.75 / (0.6 + 0.75))  # 0.6667
    none = detection_metrics(["YES", "NO"], ["NO", "NO"])
    assert (none.precision, none.recall, none.f1) == (0.0, 0.0, 0.0)
    perfect = detection_metrics(["YES", "NO", "YES"], ["YES", "NO", "YES"])
    assert (perfect.precision, perfect.recall, perfect.f1) == (1.0, 1.0, 1.0)


def test_yes_no_gold_is_case_insensitive_and_open_answers_match_by_text():
    item = Item("x", None, "Is it fake? Answer YES or NO.", [], "YES")
    assert score_item(item, Prediction("x", answer="yes.")).correct
    open_item = Item("o", None, "What is shown?", [], "red square")
    assert score_item(open_item, Prediction("o", answer="The answer is a red square.")).correct
    assert not score_item(open_item, Prediction("o", answer="The answer is a blue circle.")).correct
