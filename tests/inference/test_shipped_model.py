"""The shipped miniature model, through the public API: the bundled clip and 100 fresh test items.

Chance is the mean of 1/len(options) over the items (4-option questions and YES/NO glitch
questions mixed); the issue asks for 30 points above it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from salmonn_o1.data.synthetic.dataset import generate_item
from salmonn_o1.inference import DEFAULT_MODEL_DIR, Question, SalmonnO1Pipeline

SAMPLE = Path(__file__).resolve().parents[2] / "src" / "salmonn_o1" / "assets" / "sample"
FRESH_TEST_ITEMS = range(50_000, 50_100)  # far from the 0..999 that docs/results.md scores

pytestmark = pytest.mark.skipif(not (DEFAULT_MODEL_DIR / "config.json").exists(),
                                reason="no miniature model is shipped in this checkout")


@pytest.fixture(scope="module")
def pipe() -> SalmonnO1Pipeline:
    return SalmonnO1Pipeline.from_pretrained(device="cpu", dtype="float32")


def test_the_shipped_model_answers_the_bundled_clip_with_numbered_steps(pipe):
    item = json.loads((SAMPLE / "item.json").read_text())
    result = pipe.ask(SAMPLE / item["video"], item["question"], item["options"])
    assert result.answer == item["answer"], result.raw_text
    assert len(result.steps) >= 2, result.reasoning
    assert result.reasoning.lstrip().startswith("1."), result.reasoning


def test_the_shipped_model_beats_chance_by_30_points_on_fresh_test_items(pipe):
    samples = [generate_item("test", i) for i in FRESH_TEST_ITEMS]
    questions = [Question(pipe.processor.media_features(s.render(size=pipe.model.config.image_size)),
                          s.item.question, s.item.options or None, True) for s in samples]
    results = []
    for start in range(0, len(questions), 10):
        results += pipe.ask_batch(questions[start:start + 10])
    accuracy = sum(r.answer == s.item.answer for r, s in zip(results, samples)) / len(samples)
    chance = sum(1 / len(s.item.options) if s.item.options else 0.5 for s in samples) / len(samples)
    assert accuracy >= chance + 0.30, (accuracy, chance)
