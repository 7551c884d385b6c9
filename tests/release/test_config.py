import json
import logging

import pytest
from release_layout import release_config_json

from salmonn_o1.config import tiny_config, video_salmonn_o1_7b_config
from salmonn_o1.errors import CheckpointError
from salmonn_o1.release.config import (
    EXTENSION_FIELD,
    RELEASE_BEHAVIOUR,
    ReleaseConfigError,
    is_release_config,
    native_to_release,
    release_to_native,
)

VOLATILE = ("transformers_version", "_name_or_path", "release_fields")


def comparable(config) -> dict:
    def clean(d):
        return {k: clean(v) if isinstance(v, dict) else v for k, v in d.items() if k not in VOLATILE}

    return clean(config.to_dict())


def test_the_7b_preset_translates_to_a_release_config_and_back():
    preset = video_salmonn_o1_7b_config()
    raw = native_to_release(preset)
    json.dumps(raw)  # plain JSON
    assert raw["model_type"] == "videosalmonno1" and is_release_config(raw)
    assert (raw["hidden_size"], raw["num_hidden_layers"], raw["num_key_value_heads"], raw["vocab_size"]) == (
        3584, 28, 4, 152064)
    assert raw["rope_theta"] == 1e6 and raw["mm_hidden_size"] == 1152
    assert (raw["mm_projector_type"], raw["mm_newline_position"], raw["mm_spatial_pool_mode"]) == (
        "mlp2x_gelu", "grid", "max")
    assert (raw["mm_spatial_pool_stride"], raw["mm_vision_select_layer"]) == (2, -2)
    assert (raw["num_speech_query_token"], raw["second_per_window"], raw["use_final_linear"]) == (1, 0.2, True)
    assert comparable(release_to_native(raw)) == comparable(preset)


def test_a_released_config_without_our_extra_field_means_the_released_model():
    raw = native_to_release(video_salmonn_o1_7b_config())
    del raw[EXTENSION_FIELD]
    for name in ("mm_spatial_pool_stride", "second_per_window", "use_final_linear", "mm_projector_type"):
        del raw[name]  # absent fields take the release's inference defaults
    # ... and the release's media rules and prompt wording, where ours differ
    assert comparable(release_to_native(raw)) == comparable(video_salmonn_o1_7b_config(**RELEASE_BEHAVIOUR))


def test_tiny_config_round_trips_and_fields_we_do_not_read_come_back(tmp_path):
    raw = release_config_json(tiny_config(interleave_mode="release"), tmp_path / "s", tmp_path / "w")
    ours = release_to_native(raw, vision_config=tiny_config().vision_config,
                             audio_config=tiny_config().audio_config, media_token_id=3)
    assert ours.interleave_mode == "release" and not ours.time_tokens and ours.media_token_id == 3
    assert ours.qformer_config.hidden_size == 32 and ours.vision_layers_used == 2
    back = native_to_release(ours)
    for name in ("image_grid_pinpoints", "mm_tunable_parts", "mm_vision_tower", "whisper_path"):
        assert back[name] == raw[name]
    assert comparable(release_to_native(back)) == comparable(ours)


@pytest.mark.parametrize("field, value", [
    ("mm_projector_type", "linear"),
    ("mm_vision_select_feature", "cls_patch"),
    ("mm_patch_merge_type", "flat"),
    ("mm_vision_select_layer", 0),
    ("mm_hidden_size", 1024),
    ("mm_use_im_start_end", True),
    ("second_stride", 0.1),
    ("use_speech_Qformer", False),
    ("num_speech_query_token", 0),
    ("model_type", "llama"),
    ("hidden_act", "swish-ish"),
    (EXTENSION_FIELD, {"colour": "blue"}),
])
def test_values_we_cannot_reproduce_are_refused_by_name(field, value):
    raw = native_to_release(video_salmonn_o1_7b_config())
    raw[field] = value
    with pytest.raises(ReleaseConfigError, match=field) as error:
        release_to_native(raw)
    assert isinstance(error.value, CheckpointError)


def test_a_missing_qwen2_field_is_named():
    raw = native_to_release(video_salmonn_o1_7b_config())
    del raw["intermediate_size"]
    with pytest.raises(ReleaseConfigError, match="intermediate_size"):
        release_to_native(raw)


def test_unknown_fields_are_reported_but_do_not_block(caplog):
    raw = native_to_release(video_salmonn_o1_7b_config())
    raw["mm_some_new_option"] = 3
    with caplog.at_level(logging.WARNING):
        release_to_native(raw)
    assert "mm_some_new_option" in caplog.text


@pytest.mark.parametrize("override, field", [
    ({"interleave_mode": "aligned"}, "interleave_mode"),
    ({"time_tokens": True}, "time_tokens"),
    ({"media_rms": 0.05}, "media_rms"),
    ({"projector_hidden_act": "relu"}, "projector_hidden_act"),
])
def test_our_settings_the_release_cannot_run_are_refused_by_name(override, field):
    with pytest.raises(ReleaseConfigError, match=field):
        native_to_release(video_salmonn_o1_7b_config(**override))


OVERWRITTEN = [
    ("mm_newline_position", "frame"),
    ("mm_spatial_pool_mode", "bilinear"),
    ("mm_spatial_pool_mode", "average"),
    ("mm_pooling_position", "after"),
    ("mm_spatial_pool_stride", "2"),
    ("mm_spatial_pool_stride", 3),
    ("modality_max_length", "{'video': 4096}"),
]


@pytest.mark.parametrize("field, value", OVERWRITTEN)
def test_fields_the_released_inference_script_overwrites_take_its_values(field, value, caplog):
    """The release builds the model with its command-line values for these, whatever config.json says."""
    raw = native_to_release(video_salmonn_o1_7b_config())
    del raw[EXTENSION_FIELD]
    raw[field] = value
    with caplog.at_level(logging.WARNING):
        ours = release_to_native(raw)
    assert (ours.spatial_pool_mode, ours.spatial_pool_stride) == ("max", 2)
    assert field in caplog.text and "release_overrides" in caplog.text
    assert native_to_release(ours)[field] == value  # kept verbatim for the way back


@pytest.mark.parametrize("field, value", [
    ("mm_newline_position", "frame"), ("mm_spatial_pool_mode", "bilinear"), ("mm_pooling_position", "after"),
    ("mm_spatial_pool_stride", "2"), ("mm_spatial_pool_stride", 0), ("modality_max_length", "{'video': 4096}"),
    ("mm_projector_type", "mlp2x_gelu"),
])
def test_overrides_we_cannot_run_are_refused_by_name(field, value):
    raw = native_to_release(video_salmonn_o1_7b_config())
    with pytest.raises(ReleaseConfigError, match=field):
        release_to_native(raw, release_overrides={field: value})


def test_overrides_win_over_the_release_and_over_our_converters_record():
    raw = native_to_release(video_salmonn_o1_7b_config(spatial_pool_stride=3))
    assert release_to_native(raw).spatial_pool_stride == 3  # a model we converted keeps its pooling
    del raw[EXTENSION_FIELD]
    assert release_to_native(raw).spatial_pool_stride == 2
    ours = release_to_native(raw, release_overrides={"mm_spatial_pool_stride": 3, "mm_spatial_pool_mode": "average"})
    assert (ours.spatial_pool_stride, ours.spatial_pool_mode) == (3, "average")


def test_the_qformer_reads_the_whisper_width_as_the_release_builds_it():
    whisper = video_salmonn_o1_7b_config().audio_config.to_dict()
    whisper["d_model"] = 1024
    raw = native_to_release(video_salmonn_o1_7b_config())
    del raw[EXTENSION_FIELD]
    ours = release_to_native(raw, audio_config=whisper)
    assert ours.qformer_config.encoder_hidden_size == 1024 and ours.qformer_config.hidden_size == 768
