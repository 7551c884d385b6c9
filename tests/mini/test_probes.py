"""Grounding probes: the gold letter comes from the timeline and training moves the letter loss."""

from __future__ import annotations

import numpy as np
import pytest

from salmonn_o1.checkpoints import load_model_and_processor
from salmonn_o1.data.synthetic.dataset import generate_item
from salmonn_o1.data.synthetic.timeline import scene_at
from salmonn_o1_mini.probes import COLOUR_NAMES, colour_at, first_colour, run_probe


def test_the_probe_answers_are_read_from_the_timeline():
    for index in range(20):
        sample = generate_item("train", index)
        _, first = first_colour(sample, np.random.default_rng(index))
        assert COLOUR_NAMES[first] == sample.timeline.scenes[0].colour
        question, at = colour_at(sample, np.random.default_rng(index))
        t = float(question.split(" at ")[1].split(" s?")[0])
        assert COLOUR_NAMES[at] == scene_at(sample.timeline, t).colour_at(t)


@pytest.mark.parametrize("probe", ["first-colour", "colour-at"])
def test_a_probe_trains_the_llm_but_not_the_encoders(probe):
    model, processor = load_model_and_processor("tiny")
    tower = next(model.vision_tower.parameters()).detach().clone()
    head = model.language_model.lm_head.weight.detach().clone()
    losses = run_probe(model, processor, probe, steps=3, lr=1e-3, batch_size=2, log=None)
    assert len(losses) == 3 and all(np.isfinite(losses))
    assert next(model.vision_tower.parameters()).equal(tower)
    assert not model.language_model.lm_head.weight.equal(head)
