"""The shared engine on the tiny model: weights change, exact resume, keep-K, bad items skipped."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import tiny_recipe, write_synth_items

from salmonn_o1.checkpoints import load_model_and_processor
from salmonn_o1.train.sft import build_sft, run_sft


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def weights(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_training_changes_trained_groups_only_and_exports_a_loadable_model(tmp_path):
    recipe = tiny_recipe(tmp_path / "run", "model.train=[aligners]", "optim.max_steps=3")
    trainer = build_sft(recipe)
    before = weights(trainer.model)
    result = trainer.train()
    after = weights(trainer.model)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(not k.startswith(("language_model.", "vision_tower.", "audio_encoder.")) for k in changed)
    assert any(k.startswith("audio_qformer.") for k in changed) and any(k.startswith("mm_projector.") for k in changed)
    loaded, _ = load_model_and_processor(result.final_dir)
    for key, value in loaded.state_dict().items():
        assert torch.equal(value, after[key]), key
    metrics = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert [m["step"] for m in metrics] == [1, 2, 3]
    assert all({"loss", "lr", "tokens_per_s", "eta_s"} <= set(m) for m in metrics)
    assert (result.final_dir / "recipe.yaml").exists()


def test_resume_continues_exactly_and_keeps_last_k(tmp_path):
    overrides = ("optim.max_steps=6", "run.save_every=2", "run.keep_last=2", "data.direct_fraction=0.5")
    straight = run_sft(tiny_recipe(tmp_path / "a", *overrides))
    first = run_sft(tiny_recipe(tmp_path / "b", *overrides), stop_at_step=3)
    assert first.step == 3 and first.final_dir is None
    second = run_sft(tiny_recipe(tmp_path / "b", *overrides), resume=True)
    assert second.step == 6
    a, b = load_model_and_processor(straight.final_dir)[0], load_model_and_processor(second.final_dir)[0]
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-6, msg=name)
    order_a = [m["examples"] for m in read_jsonl(tmp_path / "a" / "metrics.jsonl")]
    order_b = [m["examples"] for m in read_jsonl(tmp_path / "b" / "metrics.jsonl")]
    assert order_a == order_b and len(order_a) == 6
    losses_a = [m["loss"] for m in read_jsonl(tmp_path / "a" / "metrics.jsonl")]
    losses_b = [m["loss"] for m in read_jsonl(tmp_path / "b" / "metrics.jsonl")]
    assert losses_a == pytest.approx(losses_b, rel=1e-4)
    kept = sorted(p.name for p in (tmp_path / "b").glob("checkpoint-*"))
    assert kept == ["checkpoint-4", "checkpoint-6"]


def test_bad_items_are_skipped_and_counted(tmp_path, synth_files):
    items_path, items = synth_files
    folder = tmp_path / "bad"
    bad_path, bad_items = write_synth_items(folder, "train", [10, 11])
    (folder / "corrupt.mp4").write_bytes(b"not a video at all")
    bad_items[0].video = str(folder / "missing.mp4")
    bad_items[1].video = str(folder / "corrupt.mp4")
    from salmonn_o1.data.schema import write_items

    write_items(bad_path, bad_items + items)
    recipe = tiny_recipe(tmp_path / "run", f"data.sources=[{{path: {bad_path}}}]", "optim.max_steps=3",
                         "optim.batch_size=3", "data.length_grouping=false")
    result = run_sft(recipe)
    assert result.step == 3 and result.final_dir is not None
    skips = read_jsonl(tmp_path / "run" / "skipped.rank0.jsonl")
    assert result.skipped == len(skips) >= 2
    reasons = " ".join(s["reason"] for s in skips)
    assert "missing.mp4" in reasons and "corrupt.mp4" in reasons
    assert read_jsonl(tmp_path / "run" / "metrics.jsonl")[-1]["skipped"] == result.skipped


def test_length_grouping_makes_batches_of_similar_length():
    from salmonn_o1.train.batching import plan_batches

    lengths = [5, 100, 7, 98, 6, 99, 8, 97]
    batches = plan_batches(8, 2, seed=0, length_of=lambda p: lengths[p], group_factor=4)
    assert sorted(p for b in batches for p in b) == list(range(8))
    spreads = [abs(lengths[a] - lengths[b]) for a, b in batches]
    assert max(spreads) <= 2
    assert plan_batches(8, 2, seed=0, length_of=lambda p: lengths[p], group_factor=4) == batches
