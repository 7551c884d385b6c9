"""The release's media switches as config fields: defaults, validation, config.json round trip,
and what the processor does with decoded media under each."""

import json

import numpy as np
import pytest

from salmonn_o1.config import SalmonnO1Config, tiny_config, video_salmonn_o1_7b_config
from salmonn_o1.media_types import SAMPLE_RATE, DecodedMedia
from salmonn_o1.model import SalmonnO1ForConditionalGeneration
from salmonn_o1.processor import SalmonnO1Processor

RELEASE = {"frame_sampling": "index", "duration_source": "frames", "pad_audio_to_video": False,
           "single_frame_as_image": True}
OURS = {"frame_sampling": "time", "duration_source": "stream", "pad_audio_to_video": True,
        "single_frame_as_image": False}


def one_frame(duration: float = 0.4) -> DecodedMedia:
    frame = np.random.default_rng(1).integers(0, 255, (1, 48, 64, 3), dtype=np.uint8)
    audio = np.sin(np.arange(int(duration * SAMPLE_RATE)) * 0.05).astype(np.float32)
    return DecodedMedia(frame, np.zeros(1), audio, duration, True, "video")


def switches(config) -> dict:
    return {name: getattr(config, name) for name in RELEASE}


def test_defaults_are_ours_for_every_preset():
    assert switches(tiny_config()) == OURS
    assert switches(video_salmonn_o1_7b_config()) == OURS  # loading a released layout sets the release's


@pytest.mark.parametrize("values", [RELEASE, OURS, {"frame_sampling": "index", "pad_audio_to_video": False}])
def test_config_json_round_trip_keeps_the_switches(tmp_path, values):
    config = tiny_config(**values)
    config.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    expected = {**OURS, **values}
    assert {name: saved[name] for name in RELEASE} == expected
    assert switches(SalmonnO1Config.from_pretrained(tmp_path)) == expected


def test_model_and_processor_save_load_keep_the_switches(tokenizer, tmp_path):
    config = tiny_config(**RELEASE)
    SalmonnO1ForConditionalGeneration(config).save_pretrained(tmp_path)
    SalmonnO1Processor(tokenizer, config).save_pretrained(tmp_path)
    assert switches(SalmonnO1ForConditionalGeneration.from_pretrained(tmp_path).config) == RELEASE
    reloaded = SalmonnO1Processor.from_pretrained(tmp_path)
    assert switches(reloaded.config) == RELEASE
    assert reloaded.media_features(one_frame()).spec.frame_as_image


@pytest.mark.parametrize(("field", "value"), [("frame_sampling", "nearest"), ("duration_source", "container")])
def test_unknown_values_are_refused(field, value):
    with pytest.raises(ValueError, match=field):
        tiny_config(**{field: value})


def test_single_frame_switch_on_decoded_media(tokenizer):
    ours = SalmonnO1Processor(tokenizer, tiny_config()).media_features(one_frame())
    release = SalmonnO1Processor(tokenizer, tiny_config(single_frame_as_image=True)).media_features(one_frame())
    assert ours.token_count == 6 + 2  # one pooled frame with row newlines, then ceil(0.4 s x 5) audio tokens
    assert release.token_count == 5 and release.input_features is None
    sample = SalmonnO1Processor(tokenizer, tiny_config(single_frame_as_image=True)).encode("what?", one_frame())
    assert sample.input_ids.count(3) == 5  # tiny's media token id
