"""The released `config.json` (Qwen2 fields + LLaVA multimodal fields) <-> `SalmonnO1Config`.

The release reads a few multimodal fields at load time and overwrites the rest
from its command-line defaults (its training and inference scripts); the
values it can produce are mapped, values we cannot reproduce are refused by
field name. Audio settings were constructor arguments in the release
(`num_speech_query_token`, `second_per_window`, `use_final_linear`...); they
are read from `config.json` when present, else take the release's defaults.

The release's inference script overwrites five multimodal fields of
`config.json` with its own command-line values before building the model
(`RELEASE_INFERENCE`): a released-layout checkpoint runs with those, whatever
its `config.json` says, unless the caller overrides them by name
(`release_overrides`). Our media rules where the release differs (frame
sampling, duration, audio padding, single-frame clips) and the reasoning
prompt take the release's values (`RELEASE_BEHAVIOUR`).

The released `config.json` does not describe SigLIP, Whisper or the Q-Former
(the release loads them from their own checkpoints and `bert-base-uncased`):
their shapes come from those checkpoints' configs, else from the released
model's (`video_salmonn_o1_7b_config`); the Q-Former's encoder width is the
Whisper width, as the release builds it. When we write a released layout we add
one extra field, `salmonn_o1`, holding those sub-configs and our settings that
have no released name, so our own conversions round-trip exactly; the
released code ignores unknown fields.
"""

from __future__ import annotations

import logging
from typing import Any

from transformers import Blip2QFormerConfig, PreTrainedConfig, Qwen2Config, SiglipVisionConfig, WhisperConfig
from transformers.activations import ACT2FN

from salmonn_o1.config import SalmonnO1Config, video_salmonn_o1_7b_config
from salmonn_o1.errors import CheckpointError

logger = logging.getLogger(__name__)

RELEASE_MODEL_TYPE = "videosalmonno1"
RELEASE_ARCHITECTURE = "videoSALMONNo1ForCausalLM"
# videosalmonno1 is the released class; LLaVA-OneVision-Qwen2 checkpoints use the others.
RELEASE_MODEL_TYPES = (RELEASE_MODEL_TYPE, "llava", "llava_qwen", "qwen2")
EXTENSION_FIELD = "salmonn_o1"
DEFAULT_SIGLIP = "google/siglip-so400m-patch14-384"
DEFAULT_WHISPER = "openai/whisper-large-v3"

QWEN2_FIELDS = (
    "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
    "num_key_value_heads", "hidden_act", "max_position_embeddings", "rms_norm_eps", "initializer_range",
    "tie_word_embeddings", "use_sliding_window", "sliding_window", "max_window_layers", "attention_dropout",
    "bos_token_id", "eos_token_id", "pad_token_id", "use_cache",
)
REQUIRED_QWEN2_FIELDS = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                         "num_attention_heads")

# Released fields that change nothing we compute, with the reason (kept verbatim for the way back).
IGNORED_FIELDS = {
    "architectures": "informational",
    "transformers_version": "informational",
    "_name_or_path": "informational",
    "torch_dtype": "storage dtype; pass dtype= to choose",
    "dtype": "storage dtype; pass dtype= to choose",
    "rope_scaling": "the release forces rope_scaling to None",
    "rope_parameters": "read only for rope_theta",
    "layer_types": "derived from use_sliding_window",
    "model_args": "training-time arguments",
    "add_time_token": "the release computes time tokens and then discards them",
    "mm_vision_tower": "where SigLIP is loaded from (used when the checkpoint lacks its weights)",
    "whisper_path": "where Whisper is loaded from (used when the checkpoint lacks its weights)",
    "vision_tower_pretrained": "training-time path",
    "mm_use_im_patch_token": "the release sets it False",
    "mm_tunable_parts": "read by the loader: naming mm_vision_tower keeps the checkpoint's SigLIP copy",
    "unfreeze_mm_vision_tower": "read by the loader: true keeps the checkpoint's SigLIP copy",
    "mm_projector_lr": "training only",
    "mm_vision_tower_lr": "training only",
    "use_mm_proj": "the release sets it True",
    "image_aspect_ratio": "still images only (anyres); video never uses it",
    "image_grid_pinpoints": "still images only (anyres)",
    "image_crop_resolution": "still images only",
    "image_split_resolution": "still images only",
    "tokenizer_padding_side": "our processor pads",
    "tokenizer_model_max_length": "the release truncates at 32768 tokens; we do not truncate",
    "modality_max_length": "overwritten by the released inference script (see RELEASE_INFERENCE)",
    "mm_spatial_pool_mode": "overwritten by the released inference script (see RELEASE_INFERENCE)",
    "mm_spatial_pool_stride": "overwritten by the released inference script (see RELEASE_INFERENCE)",
    "mm_newline_position": "overwritten by the released inference script (see RELEASE_INFERENCE)",
    "mm_pooling_position": "overwritten by the released inference script (see RELEASE_INFERENCE)",
    "multi_frame_projector": "the release overwrites it with False",
    "multi_frame_num": "the release overwrites it",
    "mf_split_init": "the release overwrites it with False",
    "use_mfcnn": "the release overwrites it with False",
    "use_mftrans": "the release overwrites it with False",
    "use_flash_tower": "attention kernel choice",
    "spt_projector": "the release overwrites it with False",
    "sequence_parallel_size": "multi-GPU training only",
    "use_sdpa": "attention kernel choice",
    "mm_resampler_type": "LLaVA option the release does not build",
    "mm_mask_drop_mode": "training only",
    "mm_mask_drop_skip_percentage": "training only",
    "mm_mask_drop_ratio": "training only",
    "mm_mask_drop_ratio_upper": "training only",
    "mm_mask_drop_ratio_lower": "training only",
    "pos_skipping_range": "training only",
    "freeze_whisper": "training only",
    "freeze_speech_QFormer": "training only",
    "video_fps": "only used when a sample has no duration",
    "salmonn_path": "an extra state dict the release can load; merge it into the checkpoint instead",
}

# The values the released inference script writes over config.json's before building the model
# (its command-line defaults; run_inference.sh passes none of them). `release_overrides` may replace them.
RELEASE_INFERENCE = {
    "mm_spatial_pool_mode": "max",
    "mm_spatial_pool_stride": 2,
    "mm_newline_position": "grid",
    "mm_pooling_position": "before",
    "modality_max_length": "None",
}
# Where the release behaves otherwise than our own models, the release's choice (config field -> value).
RELEASE_BEHAVIOUR = {
    "frame_sampling": "index",
    "duration_source": "frames",
    "pad_audio_to_video": False,
    "single_frame_as_image": True,
    "reasoning_prompt": "release",
}

# Our settings with no released name: carried in the `salmonn_o1` field (so our conversions keep them).
EXTENSION_SETTINGS = (
    "frames_per_second", "max_frames", "sampling_rate", "audio_chunk_seconds", "audio_min_seconds",
    "max_audio_chunks", "media_token_id", "initializer_range", "freeze_vision_tower", "freeze_audio_encoder",
    "spatial_pool_mode", "spatial_pool_stride", *RELEASE_BEHAVIOUR,
)
EXTENSION_SUBCONFIGS = {"vision_config": SiglipVisionConfig, "audio_config": WhisperConfig,
                        "qformer_config": Blip2QFormerConfig}
_VOLATILE = ("transformers_version", "_name_or_path", "architectures", "dtype", "torch_dtype")


class ReleaseConfigError(CheckpointError):
    """A released config.json field whose value we cannot reproduce, named in the message."""


def _reject(field_name: str, value: Any, why: str) -> ReleaseConfigError:
    return ReleaseConfigError(f"config.json field {field_name}={value!r}: {why}")


def _get(raw: dict, name: str, default: Any, kind: type | tuple[type, ...]) -> Any:
    value = raw.get(name, default)
    if value is None or isinstance(value, bool) and kind is not bool or not isinstance(value, kind):
        raise _reject(name, value, f"expected {getattr(kind, '__name__', kind)}")
    return value


def release_defaults() -> SalmonnO1Config:
    """The released model's settings and shapes: what a field left out of config.json means."""
    return video_salmonn_o1_7b_config(**RELEASE_BEHAVIOUR)


def uses_checkpoint_vision_tower(raw: dict) -> bool:
    """Whether the release keeps the checkpoint's SigLIP weights.

    It loads SigLIP while building the model (so the checkpoint's copy then
    overwrites it) only when `unfreeze_mm_vision_tower` is set or
    `mm_tunable_parts` names `mm_vision_tower`; otherwise the checkpoint's
    copy is dropped and the published SigLIP from `mm_vision_tower` is used.
    """
    if raw.get("unfreeze_mm_vision_tower"):
        return True
    parts = raw.get("mm_tunable_parts")
    if isinstance(parts, str):
        return "mm_vision_tower" in parts
    return isinstance(parts, (list, tuple)) and "mm_vision_tower" in parts


_RELEASED = "the released inference settings"


def _inference_settings(raw: dict, extension: dict, overrides: dict | None) -> dict[str, Any]:
    """The five fields the release overwrites: its values, our converter's record, or the caller's."""
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(RELEASE_INFERENCE))
    if unknown:
        raise ReleaseConfigError(f"release_overrides {unknown}: only {', '.join(RELEASE_INFERENCE)} can be set")
    settings = dict(RELEASE_INFERENCE)
    where = dict.fromkeys(settings, _RELEASED)
    for ours, theirs in (("spatial_pool_mode", "mm_spatial_pool_mode"),
                         ("spatial_pool_stride", "mm_spatial_pool_stride")):
        if ours in extension:  # a model we converted keeps its own pooling
            settings[theirs], where[theirs] = extension[ours], f"config.json {EXTENSION_FIELD}.{ours}"
    settings.update(overrides)
    where.update(dict.fromkeys(overrides, "release_overrides"))
    for name, allowed, why in (
        ("mm_newline_position", ("grid",), "only 'grid' interleaves audio with the frames"),
        ("mm_pooling_position", ("before",), "frames are pooled before the projector"),
        ("mm_spatial_pool_mode", ("max", "average"), "choose max or average"),
        ("modality_max_length", ("None", None), "we do not truncate media per modality"),
    ):
        if settings[name] not in allowed:
            raise ReleaseConfigError(f"{where[name]}: {name}={settings[name]!r}: {why}")
    stride = settings["mm_spatial_pool_stride"]
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
        raise ReleaseConfigError(f"{where['mm_spatial_pool_stride']}: mm_spatial_pool_stride={stride!r}: "
                                 "must be a positive integer")
    for name, value in settings.items():
        if name in raw and raw[name] != value and where[name] == _RELEASED:
            logger.warning("config.json %s=%r is not used: the released inference script runs with %r "
                           "(pass release_overrides={%r: %r} to use it)", name, raw[name], value, name, raw[name])
    return settings


def is_release_config(raw: dict) -> bool:
    """A LLaVA-style config (ours has model_type salmonn_o1): the released layout."""
    model_type = raw.get("model_type")
    if model_type == SalmonnO1Config.model_type:
        return False
    return model_type == RELEASE_MODEL_TYPE or any(key.startswith("mm_") for key in raw)


def release_to_native(
    raw: dict,
    vision_config: SiglipVisionConfig | dict | None = None,
    audio_config: WhisperConfig | dict | None = None,
    media_token_id: int | None = None,
    release_overrides: dict | None = None,
) -> SalmonnO1Config:
    """Our config for a released config.json.

    vision_config / audio_config: from the SigLIP / Whisper checkpoints when
    they are loaded separately (win over the `salmonn_o1` field and the
    released defaults). media_token_id: the tokenizer's `<image>` id.
    release_overrides: values for the fields the released inference script
    overwrites (`RELEASE_INFERENCE`, by their config.json names), for a user
    who wants config.json's or other values instead of the release's.
    """
    model_type = raw.get("model_type")
    if model_type not in RELEASE_MODEL_TYPES:
        raise _reject("model_type", model_type, f"not a released video-SALMONN-o1 config (one of {RELEASE_MODEL_TYPES})")
    defaults = release_defaults()
    extension = dict(raw.get(EXTENSION_FIELD) or {})
    unknown_extension = set(extension) - set(EXTENSION_SETTINGS) - set(EXTENSION_SUBCONFIGS)
    if unknown_extension:
        raise _reject(EXTENSION_FIELD, sorted(unknown_extension), "unknown settings")

    subconfigs = {}
    for name, config_class in EXTENSION_SUBCONFIGS.items():
        given = {"vision_config": vision_config, "audio_config": audio_config}.get(name)
        if given is None and name in extension:
            given = extension[name]
        if given is None:
            given = getattr(defaults, name)
        subconfigs[name] = config_class.from_dict(given) if isinstance(given, dict) else given
    vision = subconfigs["vision_config"]
    vision.vision_use_head = False
    # The release builds the Q-Former's cross-attention for the Whisper it loaded (its d_model).
    subconfigs["qformer_config"].encoder_hidden_size = subconfigs["audio_config"].d_model

    # --- visual branch ---
    projector = _get(raw, "mm_projector_type", "mlp2x_gelu", str)
    if projector != "mlp2x_gelu":
        raise _reject("mm_projector_type", projector, "only mlp2x_gelu (Linear, GELU, Linear) is supported")
    mm_hidden = raw.get("mm_hidden_size", vision.hidden_size)
    if mm_hidden != vision.hidden_size:
        raise _reject("mm_hidden_size", mm_hidden, f"the vision tower's width is {vision.hidden_size}")
    select_layer = _get(raw, "mm_vision_select_layer", -2, int)
    depth = vision.num_hidden_layers
    if select_layer == 0 or not -depth <= select_layer <= depth:
        raise _reject("mm_vision_select_layer", select_layer, f"must pick one of the {depth} SigLIP layers")
    feature = _get(raw, "mm_vision_select_feature", "patch", str)
    if feature != "patch":
        raise _reject("mm_vision_select_feature", feature, "only patch features (no CLS token) are supported")
    merge = _get(raw, "mm_patch_merge_type", "spatial_unpad", str)
    if "unpad" not in merge:
        raise _reject("mm_patch_merge_type", merge, "the release builds image_newline only for *unpad merge types")
    inference = _inference_settings(raw, extension, release_overrides)
    pool_mode, pool_stride = inference["mm_spatial_pool_mode"], inference["mm_spatial_pool_stride"]
    for name in ("mm_use_im_start_end", "replace_vision_tower"):
        if raw.get(name):
            raise _reject(name, raw[name], "not supported (the released model runs without it)")

    # --- audio branch (constructor arguments of the release) ---
    for name in ("use_speech_Qformer", "window_level_Qformer"):
        if not _get(raw, name, True, bool):
            raise _reject(name, raw[name], "the release only implements the window-level Q-Former")
    queries = _get(raw, "num_speech_query_token", 1, int)
    if queries < 1:
        raise _reject("num_speech_query_token", queries, "must be at least 1")
    window = float(_get(raw, "second_per_window", 0.2, (int, float)))
    stride = float(_get(raw, "second_stride", window, (int, float)))
    if stride != window:
        raise _reject("second_stride", stride, f"overlapping windows are not supported (second_per_window={window})")
    final_mlp = _get(raw, "use_final_linear", True, bool)

    # --- language model ---
    missing = [name for name in REQUIRED_QWEN2_FIELDS if name not in raw]
    if missing:
        raise ReleaseConfigError(f"config.json lacks the Qwen2 field(s) {', '.join(missing)}")
    text_kwargs = {name: raw[name] for name in QWEN2_FIELDS if name in raw}
    if text_kwargs.get("hidden_act", "silu") not in ACT2FN:
        raise _reject("hidden_act", text_kwargs["hidden_act"], "unknown activation")
    rope_theta = raw.get("rope_theta", (raw.get("rope_parameters") or {}).get("rope_theta", 10000.0))
    text = Qwen2Config(rope_theta=float(rope_theta), **text_kwargs)

    settings = {**RELEASE_BEHAVIOUR, **{name: extension[name] for name in EXTENSION_SETTINGS if name in extension}}
    settings.pop("spatial_pool_mode", None)  # decided above, with the overrides
    settings.pop("spatial_pool_stride", None)
    if media_token_id is not None:
        settings["media_token_id"] = media_token_id
    known = set(IGNORED_FIELDS) | set(QWEN2_FIELDS) | _READ_FIELDS | {EXTENSION_FIELD}
    # Fields we do not read are kept verbatim, so writing the released layout back restores them.
    kept = {k: v for k, v in raw.items() if k not in _READ_FIELDS and k not in QWEN2_FIELDS
            and k not in (EXTENSION_FIELD, *_VOLATILE) and _WRITTEN_CONSTANTS.get(k, _ABSENT) != v}
    unknown = sorted(set(raw) - known)
    if unknown:
        logger.warning("config.json fields with no effect here (not used by the released inference either, "
                       "as far as its code shows): %s", ", ".join(unknown))
    return SalmonnO1Config(
        **subconfigs, text_config=text,
        vision_feature_layer=select_layer, spatial_pool_stride=pool_stride, spatial_pool_mode=pool_mode,
        projector_hidden_act="gelu", audio_window_seconds=window, audio_queries_per_window=queries,
        audio_final_mlp=final_mlp, interleave_mode="release", time_tokens=False,
        release_fields=kept, **settings,
    )


# What we always write (the released inference settings); equal values are not kept as extras.
_WRITTEN_CONSTANTS = {
    "model_type": RELEASE_MODEL_TYPE,
    "rope_scaling": None,
    "mm_vision_tower": DEFAULT_SIGLIP,
    "mm_projector_type": "mlp2x_gelu",
    "mm_vision_select_feature": "patch",
    "mm_patch_merge_type": "spatial_unpad",
    "mm_newline_position": "grid",
    "mm_pooling_position": "before",
    "mm_use_im_start_end": False,
    "mm_use_im_patch_token": False,
    "add_time_token": True,
    "use_speech_Qformer": True,
    "window_level_Qformer": True,
    "whisper_path": DEFAULT_WHISPER,
}
_ABSENT = object()

_READ_FIELDS = {
    "model_type", "rope_theta", "mm_projector_type", "mm_hidden_size", "mm_vision_select_layer",
    "mm_vision_select_feature", "mm_patch_merge_type", "mm_use_im_start_end", "replace_vision_tower",
    "use_speech_Qformer", "window_level_Qformer", "num_speech_query_token", "second_per_window", "second_stride",
    "use_final_linear",
}


def native_to_release(config: SalmonnO1Config) -> dict:
    """The released config.json for our config; settings the release cannot run are refused by name."""
    if config.interleave_mode != "release":
        raise ReleaseConfigError(
            f"interleave_mode={config.interleave_mode!r}: the released code always interleaves audio by count "
            "('release'); a model trained with another layout would run differently there"
        )
    if config.time_tokens:
        raise ReleaseConfigError("time_tokens=True: the released model feeds no time tokens (it discards them)")
    if config.media_rms is not None:
        raise ReleaseConfigError(f"media_rms={config.media_rms}: the released model does not normalise media tokens")
    if config.projector_hidden_act != "gelu":
        raise ReleaseConfigError(f"projector_hidden_act={config.projector_hidden_act!r}: the release has mlp2x_gelu")
    text = config.text_config
    rope = dict(text.rope_parameters or {})
    if rope.get("rope_type", "default") != "default":
        raise ReleaseConfigError(f"text_config.rope_parameters={rope}: the release forces plain RoPE")
    raw: dict[str, Any] = {
        "architectures": [RELEASE_ARCHITECTURE],
        **{name: getattr(text, name) for name in QWEN2_FIELDS},
        "rope_theta": rope.get("rope_theta", 10000.0),
        "mm_hidden_size": config.vision_config.hidden_size,
        "mm_vision_select_layer": config.vision_feature_layer,
        "mm_spatial_pool_mode": config.spatial_pool_mode,
        "mm_spatial_pool_stride": config.spatial_pool_stride,
        "num_speech_query_token": config.audio_queries_per_window,
        "second_per_window": config.audio_window_seconds,
        "second_stride": config.audio_window_seconds,
        "use_final_linear": config.audio_final_mlp,
        **_WRITTEN_CONSTANTS,
    }
    kept = getattr(config, "release_fields", None) or {}
    for name, value in kept.items():
        raw[name] = value  # fields carried over from the released config we came from
    if "mm_tunable_parts" not in kept and "unfreeze_mm_vision_tower" not in kept:
        # Without it the released code would drop the SigLIP weights we write (for the published ones).
        raw["mm_tunable_parts"] = "mm_vision_tower,mm_mlp_adapter,mm_language_model"
    extension: dict[str, Any] = {name: getattr(config, name) for name in EXTENSION_SETTINGS}
    for name in EXTENSION_SUBCONFIGS:
        extension[name] = _subconfig_dict(getattr(config, name))
    raw[EXTENSION_FIELD] = extension
    return raw


def _subconfig_dict(config: PreTrainedConfig) -> dict:
    return {k: v for k, v in config.to_dict().items() if k not in _VOLATILE}
