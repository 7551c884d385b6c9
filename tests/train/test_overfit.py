"""Overfitting a handful of AVR-Synth mp4 items: the loss collapses and the pipeline then answers them."""

from __future__ import annotations

from conftest import tiny_recipe, write_synth_items

from salmonn_o1.inference import SalmonnO1Pipeline
from salmonn_o1.train.sft import run_sft


def test_overfit_four_items_then_answer_them(tmp_path):
    items_path, items = write_synth_items(tmp_path / "data", "train", [0, 7, 14, 11])  # answers A, B, C, NO
    assert len({item.answer for item in items}) == 4
    recipe = tiny_recipe(tmp_path / "run", f"data.sources=[{{path: {items_path}}}]", "optim.max_steps=100",
                         "optim.lr=5e-3", "optim.batch_size=4", "optim.warmup_steps=5", "optim.min_lr_ratio=0.1",
                         "data.length_grouping=false", "data.cache_media=8")
    result = run_sft(recipe)
    losses = [h["loss"] for h in result.history]
    assert losses[0] > 5.0 and max(losses[-5:]) < 0.1
    pipe = SalmonnO1Pipeline.from_pretrained(str(result.final_dir))
    for item in items:
        answer = pipe.ask(item.video, item.question, item.options, max_new_tokens=200)
        assert answer.answer == item.answer, (item.id, answer.raw_text)
        assert answer.steps[0].startswith(f"1. {item.steps[0]}"), answer.steps[0]
