"""LoRA through peft: only adapters (and the chosen aligners) learn; merging keeps the outputs."""

from __future__ import annotations

import torch
from conftest import tiny_recipe

from salmonn_o1.checkpoints import load_model_and_processor
from salmonn_o1.data.synthetic import generate_item, render_media
from salmonn_o1.train.model_setup import merged_copy
from salmonn_o1.train.sft import build_sft
from salmonn_o1.train.sft_data import sft_conversation


def test_lora_trains_adapters_and_merges_exactly(tmp_path):
    recipe = tiny_recipe(tmp_path / "run", "model.lora.enabled=true", "model.lora.r=4", "model.lora.alpha=8",
                         "model.lora.dropout=0.0", "model.train=[aligners]", "optim.max_steps=3", "optim.lr=1e-2")
    trainer = build_sft(recipe)
    model = trainer.model
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    result = trainer.train()
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert any("lora_" in k for k in changed)
    assert all("lora_" in k or not k.startswith("language_model.") for k in changed)  # LLM base frozen
    assert not any(k.startswith(("vision_tower.", "audio_encoder.")) for k in changed)
    assert any(k.startswith("audio_qformer.") for k in changed)

    model.eval()
    sample = generate_item("train", 1)
    features = trainer.processor.media_features(render_media(sample, size=32))
    encoded = trainer.processor.encode(sft_conversation(sample.item, True), features, add_generation_prompt=False)
    batch = trainer.processor.collate([encoded], padding_side="right")
    with torch.no_grad():
        adapter_logits = model(**batch).logits
        merged = merged_copy(model)
        assert not any("lora_" in k for k in merged.state_dict())
        torch.testing.assert_close(merged(**batch).logits, adapter_logits, rtol=1e-4, atol=1e-4)
        exported, _ = load_model_and_processor(result.final_dir)
        torch.testing.assert_close(exported(**batch).logits, adapter_logits, rtol=1e-4, atol=1e-4)
    assert any("lora_" in k for k in model.state_dict())  # the training model keeps its adapters
