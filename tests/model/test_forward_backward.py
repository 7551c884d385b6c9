import copy

import torch

from batches import video_batch


def test_loss_is_finite_and_gradients_reach_trainable_parts_only(tiny_model, tiny_config):
    tiny_model.train()
    out = tiny_model(**video_batch(tiny_config))
    assert torch.isfinite(out.loss)
    out.loss.backward()
    params = dict(tiny_model.named_parameters())

    def has_grad(name: str) -> bool:
        grad = params[name].grad
        return grad is not None and bool(grad.abs().sum() > 0)

    assert has_grad("mm_projector.0.weight")
    assert has_grad("image_newline")
    assert has_grad("audio_qformer.qformer.encoder.layer.0.crossattention.attention.key.weight")
    assert has_grad("audio_qformer.query_tokens")
    assert has_grad("audio_final_mlp.2.weight")
    assert has_grad("language_model.model.layers.0.self_attn.q_proj.weight")
    frozen = [n for n in params if n.startswith(("vision_tower.", "audio_encoder."))]
    assert frozen and all(params[n].grad is None for n in frozen)


def test_set_trainable_freezes_the_llm_and_unfreezes_the_vision_tower(tiny_model, tiny_config):
    tiny_model.set_trainable(llm=False, vision_tower=True)
    tiny_model.train()
    tiny_model(**video_batch(tiny_config)).loss.backward()
    params = dict(tiny_model.named_parameters())
    assert params["language_model.model.layers.0.mlp.up_proj.weight"].grad is None
    assert params["vision_tower.encoder.layers.0.mlp.fc1.weight"].grad is not None


def test_media_placeholder_count_mismatch_is_a_clear_error(tiny_model, tiny_config):
    batch = video_batch(tiny_config)
    batch["input_ids"] = torch.cat([batch["input_ids"], torch.tensor([[tiny_config.media_token_id]])], dim=1)
    batch["attention_mask"] = torch.ones_like(batch["input_ids"])
    batch.pop("labels")
    try:
        tiny_model(**batch)
    except ValueError as error:
        assert "media tokens" in str(error) and "placeholders" in str(error)
    else:
        raise AssertionError("a wrong placeholder count must raise")


def test_generate_returns_new_tokens_only(tiny_model, tiny_config):
    batch = video_batch(tiny_config)
    batch.pop("labels")
    new = tiny_model.generate(**batch, max_new_tokens=4, do_sample=False)
    assert new.shape == (1, 4)


def test_media_rms_fixes_the_scale_of_media_tokens_whatever_the_aligners_output(tiny_config):
    from salmonn_o1.model import SalmonnO1ForConditionalGeneration

    batch = video_batch(tiny_config)
    inputs = {k: v for k, v in batch.items() if k not in ("labels", "attention_mask")}
    is_media = batch["input_ids"][0] == tiny_config.media_token_id
    plain = SalmonnO1ForConditionalGeneration(tiny_config).eval()
    normed_config = copy.deepcopy(tiny_config)  # the model keeps a reference to its config
    normed_config.media_rms = 0.05
    normed = SalmonnO1ForConditionalGeneration(normed_config).eval()
    normed.load_state_dict(plain.state_dict())
    with torch.no_grad():
        plain.mm_projector[-1].weight.mul_(100.0)  # an aligner whose outputs have blown up
        normed.mm_projector[-1].weight.mul_(100.0)
        rms = normed.embed_inputs(**inputs)[0, is_media].pow(2).mean(-1).sqrt()
        unnormed = plain.embed_inputs(**inputs)[0, is_media].pow(2).mean(-1).sqrt()
    # every visual token lands on 0.05; tokens with RMS near the eps (1e-6) stay slightly below
    assert float(rms.max()) <= 0.05 + 1e-4 and float((rms - 0.05).abs().lt(1e-4).float().mean()) > 0.5
    assert unnormed.max() > 10 * 0.05  # without it the scale follows the aligners
