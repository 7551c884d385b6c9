"""The shipped miniature model (src/salmonn_o1/assets/mini), through the public API only."""

from __future__ import annotations

import json
import re

import pytest

from salmonn_o1.commands.demo import SAMPLE_DIR
from salmonn_o1.data.schema import read_predictions
from salmonn_o1.eval.metrics import score_predictions
from salmonn_o1.experiments.synth_predict import predict_synthetic, synth_items
from salmonn_o1.inference import DEFAULT_MODEL_DIR, SalmonnO1Pipeline, default_model_source

FRESH_START = 50_000  # test-split clips far past the 1,000 that docs/results.md scores


@pytest.fixture(scope="module")
def pipe():
    assert default_model_source() == str(DEFAULT_MODEL_DIR), "the shipped model is missing"
    return SalmonnO1Pipeline.from_pretrained()


def test_it_answers_the_bundled_clip_with_well_formed_steps(pipe):
    item = json.loads((SAMPLE_DIR / "item.json").read_text())
    result = pipe.ask(SAMPLE_DIR / item["video"], item["question"], item["options"])
    assert result.answer == item["answer"], result.reasoning
    assert len(result.steps) >= 2
    assert re.search(r"answer is [A-E]\b", result.steps[-1]), result.steps[-1]


def test_it_beats_chance_by_30_points_on_fresh_test_items(pipe, tmp_path):
    n = 100
    out = predict_synthetic(pipe, "test", n, tmp_path / "fresh.jsonl", first_index=FRESH_START, batch_size=25)
    items = synth_items("test", n, first_index=FRESH_START)
    scored = score_predictions(items, read_predictions(out)).items
    accuracy = sum(s.correct for s in scored) / n
    chance = sum(1 / len(i.options) if i.options else 0.5 for i in items) / n
    assert accuracy > chance + 0.30, (accuracy, chance)
