"""Perception pretraining: labels come from the timeline, the encoders learn, the LLM is untouched."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from salmonn_o1.checkpoints import load_model_and_processor
from salmonn_o1.cli import main
from salmonn_o1.data.synthetic.dataset import generate_item
from salmonn_o1.data.synthetic.render import frame_times
from salmonn_o1.data.synthetic.timeline import COLOURS, SHAPES, SOUNDS
from salmonn_o1.errors import RecipeError
from salmonn_o1.train.encoders import (
    IGNORE,
    PerceptionRun,
    perception_targets,
    pretrain_perception,
)
from salmonn_o1.train.recipe import load_recipe


def test_targets_follow_the_timeline_frame_by_frame_and_window_by_window():
    sample = generate_item("train", 11)
    timeline = sample.timeline
    times = frame_times(timeline.duration, 2.0)
    targets = perception_targets(sample, times, windows=150, window_seconds=0.2)
    for t, colour, shape in zip(times, targets.colour.tolist(), targets.shape.tolist()):
        on = [s for s in timeline.scenes if s.start <= t < s.end]
        if not on:
            assert (colour, shape) == (0, 0)
        else:
            assert list(COLOURS)[colour - 1] == on[0].colour_at(float(t))
            assert SHAPES[shape - 1] == on[0].shape
    sound = timeline.sounds[0]
    window = int((sound.start + 0.1) / 0.2)  # a window whose centre lies inside the sound
    assert list(SOUNDS)[int(targets.sound[window]) - 1] == sound.kind
    assert (targets.sound[int(np.ceil(timeline.duration / 0.2)) + 1:] == IGNORE).all()
    assert (targets.sound[: int(timeline.duration / 0.2)] != IGNORE).all()


def test_pretraining_lowers_the_perception_loss_and_leaves_the_llm_alone():
    torch.manual_seed(0)
    model, processor = load_model_and_processor("tiny")
    llm_before = {k: v.clone() for k, v in model.language_model.state_dict().items()}
    tower_before = next(model.vision_tower.parameters()).detach().clone()
    _, log = pretrain_perception(model, processor, PerceptionRun(steps=30, batch_size=4, lr=3e-3, log_every=1))
    first, last = np.mean([r["loss"] for r in log[:5]]), np.mean([r["loss"] for r in log[-5:]])
    assert last < 0.7 * first, (first, last)
    assert not torch.equal(next(model.vision_tower.parameters()), tower_before)
    for name, value in model.language_model.state_dict().items():
        assert torch.equal(value, llm_before[name]), name


def test_the_train_command_writes_a_loadable_model_and_a_finished_run_is_not_redone(tmp_path, capsys):
    out = tmp_path / "perception"
    args = ["train", "perception", "--config", "recipes/mini-perception.yaml", "model.source=tiny",
            "optim.max_steps=3", "optim.batch_size=2", f"run.out_dir={out}", "stage_options.dev_items=2"]
    assert main(args) == 0
    model, _ = load_model_and_processor(out / "final")
    assert (out / "metrics.jsonl").read_text().strip()
    stamp = (out / "final" / "config.json").stat().st_mtime_ns
    assert main([*args, "--resume"]) == 0
    assert (out / "final" / "config.json").stat().st_mtime_ns == stamp
    assert model.config.vision_config is not None


def test_a_recipe_for_another_stage_or_an_unknown_option_is_refused(tmp_path, capsys):
    assert main(["train", "perception", "--config", "recipes/mini-sft.yaml"]) == 2
    assert "stage 'sft'" in capsys.readouterr().err
    recipe = load_recipe("recipes/mini-perception.yaml", ["stage_options.colours=3", f"run.out_dir={tmp_path}"])
    from salmonn_o1.train.encoders import run_perception

    with pytest.raises(RecipeError, match="colours"):
        run_perception(recipe)
