"""Perception pretraining: labels come from the timeline, the encoders learn, the LLM is untouched."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from salmonn_o1.chat import IGNORE_INDEX
from salmonn_o1.checkpoints import load_model_and_processor
from salmonn_o1.cli import main
from salmonn_o1.data.synthetic.dataset import generate_item
from salmonn_o1.data.synthetic.render import frame_times
from salmonn_o1.data.synthetic.timeline import COLOURS, SHAPES, SOUNDS
from salmonn_o1.errors import RecipeError
from salmonn_o1.train.recipe import load_recipe
from salmonn_o1_mini.perception import perception_targets, run_perception

# The recipe's recall circuit (window 5) needs the mini LLM's six heads: the tiny model goes without.
TINY = ["model.source=tiny", "model.components=[]"]


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
    assert (targets.sound[int(np.ceil(timeline.duration / 0.2)) + 1:] == IGNORE_INDEX).all()
    assert (targets.sound[: int(timeline.duration / 0.2)] != IGNORE_INDEX).all()


def test_pretraining_lowers_the_perception_loss_and_leaves_the_llm_alone(tmp_path):
    """30 steps on the shared Trainer (the first loop's schedule: a tenth of warm-up, weight decay 0.01)."""
    torch.manual_seed(0)
    fresh, _ = load_model_and_processor("tiny")
    result = run_perception("recipes/mini-perception.yaml", [
        *TINY, "optim.max_steps=30", "optim.batch_size=4", "optim.lr=3e-3",
        "optim.warmup_steps=3", "objective.dev_items=2", "run.save_every=1000", f"run.out_dir={tmp_path}"])
    log = result.history
    first, last = np.mean([r["loss"] for r in log[:5]]), np.mean([r["loss"] for r in log[-5:]])
    assert last < 0.7 * first, (first, last)
    trained, _ = load_model_and_processor(result.final_dir)
    assert not torch.equal(next(trained.vision_tower.parameters()), next(fresh.vision_tower.parameters()))
    llm_before = fresh.language_model.state_dict()
    for name, value in trained.language_model.state_dict().items():
        assert torch.equal(value, llm_before[name]), name
    dev = json.loads((tmp_path / "dev_perception.json").read_text())
    assert set(dev) == {"colour_acc", "shape_acc", "sound_acc", "position_mae"}


def test_the_train_command_writes_a_loadable_model_and_a_finished_run_is_not_redone(tmp_path, capsys):
    out = tmp_path / "perception"
    args = ["train", "perception", "--config", "recipes/mini-perception.yaml", *TINY, "optim.max_steps=3",
            "optim.batch_size=2", f"run.out_dir={out}", "objective.dev_items=2"]
    assert main(args) == 0
    model, _ = load_model_and_processor(out / "final")
    assert (out / "metrics.jsonl").read_text().strip()
    stamp = (out / "final" / "config.json").stat().st_mtime_ns
    assert main([*args, "--resume"]) == 0
    assert (out / "final" / "config.json").stat().st_mtime_ns == stamp
    assert model.config.vision_config is not None


def test_stop_at_checkpoints_and_resume_finishes_the_same_run(tmp_path):
    """`--stop-at` is honoured (the stage's first loop ignored it); the resumed run equals a straight one."""
    common = ["train", "perception", "--config", "recipes/mini-perception.yaml", *TINY, "optim.max_steps=4",
              "optim.batch_size=2", "optim.warmup_steps=1", "objective.dev_items=2", "run.save_every=2"]
    assert main([*common, f"run.out_dir={tmp_path / 'straight'}"]) == 0
    assert main([*common, f"run.out_dir={tmp_path / 'split'}", "--stop-at", "2"]) == 0
    assert (tmp_path / "split" / "checkpoint-2" / "trainer_state.json").exists()
    assert not (tmp_path / "split" / "final").exists()
    assert main([*common, f"run.out_dir={tmp_path / 'split'}", "--resume"]) == 0
    straight = load_model_and_processor(tmp_path / "straight" / "final")[0].state_dict()
    split = load_model_and_processor(tmp_path / "split" / "final")[0].state_dict()
    for name, value in straight.items():
        assert torch.allclose(value, split[name], atol=1e-6), name


def test_a_recipe_for_another_stage_or_an_unknown_option_is_refused(tmp_path, capsys):
    assert main(["train", "perception", "--config", "recipes/mini-sft.yaml"]) == 2
    assert "stage 'sft'" in capsys.readouterr().err
    recipe = load_recipe("recipes/mini-perception.yaml", ["objective.colours=3", f"run.out_dir={tmp_path}"])
    with pytest.raises(RecipeError, match="colours"):
        run_perception(recipe)
    bare = load_recipe("recipes/mini-perception.yaml", ["objective=null", f"run.out_dir={tmp_path}"])
    with pytest.raises(RecipeError, match="objective"):
        run_perception(bare)
