"""`salmonn-o1 demo`: the default model asks both bundled clips their questions."""

from __future__ import annotations

import json

from salmonn_o1.cli import main
from salmonn_o1.commands.demo import SAMPLE_DIR, SAMPLE_ITEMS
from salmonn_o1.inference import default_model_source


def test_the_bundled_samples_are_valid_clips_with_gold_items():
    categories = []
    for name in SAMPLE_ITEMS:
        item = json.loads((SAMPLE_DIR / name).read_text())
        assert (SAMPLE_DIR / item["video"]).stat().st_size > 10_000, name
        assert item["answer"] in "ABCD" and len(item["options"]) == 4 and item["steps"], name
        categories.append(item["category"])
    assert categories == ["cross_modal_alignment", "cross_modal_alignment", "audio_only"]


def test_demo_asks_every_bundled_question_and_prints_steps_and_answers(capsys):
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    for name in SAMPLE_ITEMS:
        assert json.loads((SAMPLE_DIR / name).read_text())["question"] in out
    assert out.count("\nanswer    ") == len(SAMPLE_ITEMS) and out.count("\nreasoning\n") == len(SAMPLE_ITEMS)
    assert ("tiny *random*" in out) == (default_model_source() == "tiny")
