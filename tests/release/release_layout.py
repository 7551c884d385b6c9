"""Tiny *released-layout* checkpoints, written here from the spec, not by the code under test.

`released_names` spells out every released tensor name of a model
(reference-release-spec.md section 6) next to ours; the fixtures write
weights under exactly those names, a config.json of the released form, the
tokenizer, and SigLIP / Whisper checkpoints of their own (as the release
takes them), so the loader is checked against the spec rather than against
its own key table.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

VISION = "model.vision_tower.vision_tower.vision_model."


def released_names(config) -> dict[str, str]:
    """released name -> our name, for every tensor of a model with this config."""
    text, qformer = config.text_config, config.qformer_config
    names = {"model.embed_tokens.weight": "language_model.model.embed_tokens.weight",
             "model.norm.weight": "language_model.model.norm.weight",
             "lm_head.weight": "language_model.lm_head.weight"}
    for i in range(text.num_hidden_layers):
        for part in ("self_attn.q_proj.weight", "self_attn.q_proj.bias", "self_attn.k_proj.weight",
                     "self_attn.k_proj.bias", "self_attn.v_proj.weight", "self_attn.v_proj.bias",
                     "self_attn.o_proj.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight",
                     "input_layernorm.weight", "post_attention_layernorm.weight"):
            names[f"model.layers.{i}.{part}"] = f"language_model.model.layers.{i}.{part}"
    vision_parts = ["embeddings.patch_embedding.weight", "embeddings.patch_embedding.bias",
                    "embeddings.position_embedding.weight", "post_layernorm.weight", "post_layernorm.bias"]
    for i in range(config.vision_layers_used):
        for part in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj",
                     "layer_norm1", "layer_norm2", "mlp.fc1", "mlp.fc2"):
            vision_parts += [f"encoder.layers.{i}.{part}.weight", f"encoder.layers.{i}.{part}.bias"]
    names.update({VISION + part: "vision_tower." + part for part in vision_parts})
    for part in ("0.weight", "0.bias", "2.weight", "2.bias"):
        names[f"model.mm_projector.{part}"] = f"mm_projector.{part}"
        names[f"final_linear.{part}"] = f"audio_final_mlp.{part}"
    names["model.image_newline"] = "image_newline"
    whisper_parts = ["conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias", "embed_positions.weight",
                     "layer_norm.weight", "layer_norm.bias"]
    for i in range(config.audio_config.encoder_layers):
        whisper_parts.append(f"layers.{i}.self_attn.k_proj.weight")  # Whisper's k_proj has no bias
        for part in ("self_attn.q_proj", "self_attn.v_proj", "self_attn.out_proj", "self_attn_layer_norm",
                     "fc1", "fc2", "final_layer_norm"):
            whisper_parts += [f"layers.{i}.{part}.weight", f"layers.{i}.{part}.bias"]
    names.update({"speech_encoder." + part: "audio_encoder." + part for part in whisper_parts})
    names.update({"ln_speech.weight": "audio_qformer.norm.weight", "ln_speech.bias": "audio_qformer.norm.bias",
                  "speech_query_tokens": "audio_qformer.query_tokens",
                  "speech_llama_proj.weight": "audio_projector.weight",
                  "speech_llama_proj.bias": "audio_projector.bias"})
    ours = "audio_qformer.qformer."
    for part in ("weight", "bias"):
        names[f"speech_Qformer.bert.embeddings.LayerNorm.{part}"] = f"{ours}layernorm.{part}"
    for i in range(qformer.num_hidden_layers):
        theirs, mine = f"speech_Qformer.bert.encoder.layer.{i}.", f"{ours}encoder.layer.{i}."
        for part in ("weight", "bias"):
            for block in ("attention", "crossattention"):
                for projection in ("query", "key", "value"):
                    names[f"{theirs}{block}.self.{projection}.{part}"] = f"{mine}{block}.attention.{projection}.{part}"
                for tail in ("output.dense", "output.LayerNorm"):
                    names[f"{theirs}{block}.{tail}.{part}"] = f"{mine}{block}.{tail}.{part}"
            for tail in ("intermediate_query.dense", "output_query.dense", "output_query.LayerNorm"):
                names[f"{theirs}{tail}.{part}"] = f"{mine}{tail}.{part}"
    return names


def release_config_json(config, siglip_dir: Path, whisper_dir: Path) -> dict:
    """A config.json of the released form for `config` (LLaVA-OneVision-Qwen2 fields + the audio kwargs)."""
    text = config.text_config
    return {
        "architectures": ["videoSALMONNo1ForCausalLM"], "model_type": "videosalmonno1",
        "vocab_size": text.vocab_size, "hidden_size": text.hidden_size, "intermediate_size": text.intermediate_size,
        "num_hidden_layers": text.num_hidden_layers, "num_attention_heads": text.num_attention_heads,
        "num_key_value_heads": text.num_key_value_heads, "hidden_act": "silu",
        "max_position_embeddings": text.max_position_embeddings, "rms_norm_eps": text.rms_norm_eps,
        "rope_theta": text.rope_parameters["rope_theta"], "rope_scaling": None, "tie_word_embeddings": False,
        "use_sliding_window": False, "sliding_window": None, "attention_dropout": 0.0, "use_cache": True,
        "initializer_range": 0.02, "torch_dtype": "float32", "transformers_version": "4.39.2",
        "mm_vision_tower": str(siglip_dir), "mm_hidden_size": config.vision_config.hidden_size,
        "mm_projector_type": "mlp2x_gelu", "mm_vision_select_layer": -2, "mm_vision_select_feature": "patch",
        "mm_patch_merge_type": "spatial_unpad", "mm_newline_position": "grid", "mm_spatial_pool_stride": 2,
        "mm_spatial_pool_mode": "max", "mm_pooling_position": "before", "mm_use_im_start_end": False,
        "mm_use_im_patch_token": False, "mm_tunable_parts": "mm_vision_tower,mm_mlp_adapter,mm_language_model",
        "image_aspect_ratio": "anyres", "image_grid_pinpoints": [[384, 768], [768, 384], [768, 768]],
        "tokenizer_model_max_length": 32768, "tokenizer_padding_side": "right", "add_time_token": True,
        "whisper_path": str(whisper_dir),
        # The release hard-codes a bert-base Q-Former; a tiny one must say its size.
        "salmonn_o1": {"qformer_config": {
            "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
            "encoder_hidden_size": 32, "cross_attention_frequency": 1}},
    }


def write_weights(directory: Path, tensors: dict[str, torch.Tensor], fmt: str = "safetensors",
                  shards: int = 2) -> None:
    """HF's file layout: `model-0000i-of-0000n.safetensors` (or `pytorch_model-...bin`) + index, or one file."""
    directory.mkdir(parents=True, exist_ok=True)
    stem, suffix = ("model", ".safetensors") if fmt == "safetensors" else ("pytorch_model", ".bin")
    keys = list(tensors)
    groups = [keys[i::shards] for i in range(shards)]
    weight_map = {}
    for i, group in enumerate(groups):
        name = f"{stem}{suffix}" if shards == 1 else f"{stem}-{i + 1:05d}-of-{shards:05d}{suffix}"
        part = {key: tensors[key].contiguous() for key in group}
        if fmt == "safetensors":
            save_file(part, str(directory / name), metadata={"format": "pt"})
        else:
            torch.save(part, directory / name)
        weight_map.update({key: name for key in group})
    if shards > 1:
        index = {"metadata": {"total_size": sum(t.numel() * t.element_size() for t in tensors.values())},
                 "weight_map": weight_map}
        (directory / f"{stem}{suffix}.index.json").write_text(json.dumps(index))


def write_encoder_checkpoints(root: Path, config, native: dict[str, torch.Tensor] | None = None):
    """SigLIP and Whisper checkpoints of their own (configs, and with `native` weights: whole models,
    SigLIP one layer deeper than used plus text tower and head, Whisper with its decoder)."""
    siglip, whisper = root / "siglip", root / "whisper"
    siglip.mkdir(parents=True, exist_ok=True)
    whisper.mkdir(parents=True, exist_ok=True)
    vision = {k: v for k, v in config.vision_config.to_dict().items() if k not in ("vision_use_head",)}
    (siglip / "config.json").write_text(json.dumps(
        {"model_type": "siglip", "vision_config": vision, "text_config": {"hidden_size": 8}}))
    (whisper / "config.json").write_text(json.dumps(config.audio_config.to_dict()))
    if native is not None:
        used = config.vision_layers_used
        vision_weights = {"vision_model." + k[len("vision_tower."):]: v for k, v in native.items()
                          if k.startswith("vision_tower.")}
        for k, v in list(vision_weights.items()):  # the layer the release removes, still in SigLIP
            if k.startswith(f"vision_model.encoder.layers.{used - 1}."):
                vision_weights[k.replace(f"layers.{used - 1}.", f"layers.{used}.")] = torch.randn_like(v)
        vision_weights.update({"vision_model.head.probe": torch.zeros(1, 1, 4), "logit_scale": torch.zeros(1),
                               "text_model.embeddings.token_embedding.weight": torch.zeros(8, 8)})
        write_weights(siglip, vision_weights, shards=1)
        audio = {"model.encoder." + k[len("audio_encoder."):]: v for k, v in native.items()
                 if k.startswith("audio_encoder.")}
        audio.update({"model.decoder.layers.0.fc1.weight": torch.zeros(4, 4), "proj_out.weight": torch.zeros(4, 4)})
        write_weights(whisper, audio, shards=1)
    return siglip, whisper
