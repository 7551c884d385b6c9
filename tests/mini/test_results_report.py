"""docs/results.md's glitch-detection and paired sections, on prediction files written here.

A detector that always says YES must score recall 1 and precision = the share of manipulated
clips; one that answers every item right must score F1 1 and 100% on every kind of glitch; the
per-family paired rows must count exactly the items where only one variant is right.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from salmonn_o1.data.schema import Prediction, write_predictions
from salmonn_o1_mini.results import GLITCH, Variant, accuracy_section, glitch_section, layout, paired_section
from salmonn_o1_mini.synth_predict import synth_items


@pytest.fixture(scope="module")
def items():
    return synth_items("dev", 120)


def predictions(tmp_path: Path, name: str, items, answer) -> Path:
    path = tmp_path / f"{name}.jsonl"
    write_predictions(path, [Prediction(id=item.id, answer=f"The answer is {answer(item)}.") for item in items])
    return path


def test_glitch_section_scores_detection_with_yes_as_the_positive_class(tmp_path, items):
    variants = [Variant("right", "unused", True), Variant("always yes", "unused", True)]
    paths = {"right": predictions(tmp_path, "right", items, lambda item: item.answer),
             "always yes": predictions(tmp_path, "yes", items, lambda item: "YES" if item.category == GLITCH
                                       else item.answer)}
    _, acc = accuracy_section(items, variants, paths)
    lines, table = glitch_section(items, variants, acc["scores"])
    glitch = [item for item in items if item.category == GLITCH]
    manipulated = sum(item.answer == "YES" for item in glitch)
    assert 0 < manipulated < len(glitch)
    assert table["right"]["f1"] == 1.0 and set(table["right"]["accuracy_by_kind"].values()) == {1.0}
    yes = table["always yes"]
    assert yes["recall"] == 1.0 and yes["precision"] == pytest.approx(manipulated / len(glitch))
    assert yes["accuracy_by_kind"]["none"] == 0.0 and yes["accuracy_by_kind"]["teleport"] == 1.0
    assert any(line.startswith("| always yes |") for line in lines)


def test_family_pairs_count_the_items_only_one_variant_gets_right(tmp_path, items):
    variants = [Variant("base", "unused", True), Variant("other", "unused", True)]
    wrong_family = "audio_only"
    paths = {"base": predictions(tmp_path, "base", items, lambda item: item.answer),
             "other": predictions(tmp_path, "other", items,
                                  lambda item: "Z" if item.category == wrong_family else item.answer)}
    _, acc = accuracy_section(items, variants, paths)
    _, results = paired_section(items, variants, "base", acc["scores"], families=True)
    n_family = sum(item.category == wrong_family for item in items)
    assert results["other"][wrong_family]["only_a"] == n_family and results["other"][wrong_family]["diff"] == -1.0
    assert results["other"]["visual_only"]["only_a"] == 0 and results["other"]["visual_only"]["diff"] == 0.0
    _, without = paired_section(items, variants, "base", acc["scores"])
    assert set(without["other"]) == {"overall", "cross-modal families"}


def test_a_variant_trained_with_the_release_interleaving_says_so(tmp_path):
    (tmp_path / "release").mkdir()
    (tmp_path / "release" / "config.json").write_text('{"interleave_mode": "release"}')
    (tmp_path / "aligned").mkdir()
    (tmp_path / "aligned" / "config.json").write_text('{"interleave_mode": "aligned"}')
    assert layout(str(tmp_path / "release")) == ", interleave_mode release"
    assert layout(str(tmp_path / "aligned")) == layout(str(tmp_path / "missing")) == ""
