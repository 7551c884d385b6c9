"""The shipped miniature model, through the public API: the bundled clips and 100 fresh test items.

Chance is the mean of 1/len(options) over the items (4-option questions and YES/NO glitch
questions mixed). The issue asks for 30 points above it on 100 fresh items: measured 0.81
against 0.29 on these items with the shipped reasoning SFT model (docs/results.md: 78.5% against
29.1% on 1,000 test items). Per family on these items: sound order 0.94, shape order 0.88, alignment
and temporal order together 0.88 (chance 0.25), counting 0.56 (16 items), glitch 0.71 (17 items,
chance 0.5). The floors below sit under those, so a regression in the model, the processor or the
pipeline shows. It answers all three bundled clips right with the gold steps."""

from __future__ import annotations

import json
import re

import pytest

from salmonn_o1.commands.demo import SAMPLE_DIR
from salmonn_o1.data.synthetic.dataset import generate_item
from salmonn_o1.inference import DEFAULT_MODEL_DIR, Question, SalmonnO1Pipeline

FRESH_TEST_ITEMS = range(50_000, 50_100)  # far from the 0..999 that docs/results.md scores
MARGIN_OVER_CHANCE = 0.30  # the issue's; measured on these items: 0.81 against 0.29 chance
FLOORS = {  # measured on these items: 0.88, 0.94, 0.88, 0.56 (chance 0.25), 0.71 (chance 0.5)
    ("visual_only",): 0.8,
    ("audio_only",): 0.8,
    ("cross_modal_alignment", "temporal_order"): 0.75,
    ("cross_modal_counting",): 0.5,
    ("glitch_detection",): 0.6,  # answering NO to every clip would be 0.5
}

pytestmark = pytest.mark.skipif(not (DEFAULT_MODEL_DIR / "config.json").exists(),
                                reason="no miniature model is shipped in this checkout")


@pytest.fixture(scope="module")
def pipe() -> SalmonnO1Pipeline:
    return SalmonnO1Pipeline.from_pretrained(device="cpu", dtype="float32")


def ask_sample(pipe: SalmonnO1Pipeline, name: str):
    item = json.loads((SAMPLE_DIR / name).read_text())
    return item, pipe.ask(SAMPLE_DIR / item["video"], item["question"], item["options"])


def test_the_shipped_model_answers_the_bundled_sound_order_clip_with_numbered_steps(pipe):
    item, result = ask_sample(pipe, "sound-order.json")
    assert result.answer == item["answer"], result.raw_text
    assert len(result.steps) >= 2, result.reasoning
    assert result.reasoning.lstrip().startswith("1."), result.reasoning
    assert result.steps[0].startswith("1. The sounds play in this order:"), result.reasoning


def look_up_steps_hold(item: dict, result) -> str:
    """Well-formed look-up steps whose conclusion follows from them; returns the shape read on screen.

    Step 1 finds the sound at the gold time, step 2 reads the frame at that time (the shape may be
    wrong), step 3 maps the shape read to its letter, and the answer is that letter."""
    gold = item["extras"]["lookup_steps"]
    assert result.steps[0] == f"1. {gold[0]}", result.reasoning  # "The chirp plays from 2.5 s to 3.5 s."
    screen = re.fullmatch(r"2\. At (\d+\.\d) s the screen shows the (\w+ \w+)\.", result.steps[1])
    assert screen and screen[1] == gold[1].split()[1], result.reasoning  # the frame at the sound's start
    letter = "ABCD"[item["options"].index(f"a {screen[2]}")]
    assert result.steps[2] == f"3. The {screen[2]} is option {letter}." and result.answer == letter, result.raw_text
    return screen[2]


def test_the_shipped_model_answers_the_bundled_cross_modal_clip_by_looking_up_the_frame(pipe):
    item, result = ask_sample(pipe, "item.json")  # "What was on screen when the chirp played?"
    look_up_steps_hold(item, result)
    assert result.steps[1] == f"2. {item['extras']['lookup_steps'][1]}", result.reasoning
    assert result.answer == item["answer"], result.raw_text


def test_the_bundled_second_clip_is_answered_with_the_gold_look_up_steps(pipe):
    """The tone plays late in the clip (from 10.0 s). The models shipped before the second model of
    2026-12-04 wrote its time a second early (one read the scene before and answered C, the next
    read the right frame anyway); this one writes every gold step."""
    item, result = ask_sample(pipe, "clip-miss.json")  # "What was on screen when the high tone played?"
    assert look_up_steps_hold(item, result) == "purple cross"
    assert result.steps[:3] == [f"{i}. {step}" for i, step in enumerate(item["extras"]["lookup_steps"], 1)]
    assert result.answer == item["answer"] == "A", result.raw_text


def test_the_shipped_model_beats_chance_on_fresh_test_items(pipe):
    samples = [generate_item("test", i) for i in FRESH_TEST_ITEMS]
    questions = [Question(pipe.processor.media_features(s.render(size=pipe.model.config.image_size)),
                          s.item.question, s.item.options or None, True) for s in samples]
    results = []
    for start in range(0, len(questions), 10):
        results += pipe.ask_batch(questions[start:start + 10])
    right = [r.answer == s.item.answer for r, s in zip(results, samples)]
    chance = sum(1 / len(s.item.options) if s.item.options else 0.5 for s in samples) / len(samples)
    assert sum(right) / len(samples) >= chance + MARGIN_OVER_CHANCE, (sum(right) / len(samples), chance)
    for families, floor in FLOORS.items():
        mine = [ok for ok, s in zip(right, samples) if s.item.category in families]
        assert sum(mine) / len(mine) >= floor, (families, mine)
