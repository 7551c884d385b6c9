"""Long media at bounded memory: the new decode / featurise / encode path against the old algorithms.

The old algorithms are kept here as reference implementations (per-frame resampling into a list of
2-channel pieces, concatenated and averaged; the Whisper extractor over all chunks at once; the
audio encoder over all chunks at once) and compared on real files written with PyAV: 10 s, 65 s
and 10 minutes (tiny frames, 1 fps, PCM audio, so the long one writes in seconds).
"""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from avgen import write_video

import salmonn_o1.features as features_module
import salmonn_o1.media as media_module
from salmonn_o1.config import SalmonnO1Config, tiny_config
from salmonn_o1.features import audio_to_features
from salmonn_o1.media_types import SAMPLE_RATE
from salmonn_o1.model import SalmonnO1ForConditionalGeneration
from salmonn_o1.processor import SalmonnO1Processor
from salmonn_o1.tokenizer import load_tokenizer

# ---- the old algorithms (reference implementations) ----


def old_decode_audio_track(container, path: Path):
    """Per-frame resampling, every piece kept as a (channels, n) array, then concatenate + mean."""
    error, stream, resampler, pieces = None, container.streams.audio[0], None, []
    try:
        container.seek(0)
        for frame in container.decode(stream):
            if resampler is None:
                resampler = av.AudioResampler(format="fltp", layout=frame.layout.name, rate=SAMPLE_RATE)
            for out in resampler.resample(frame):
                pieces.append(out.to_ndarray())
        if resampler is not None:
            for out in resampler.resample(None):
                pieces.append(out.to_ndarray())
    except av.error.FFmpegError as failure:
        error = failure
    audio = np.concatenate(pieces, axis=1).mean(axis=0)
    return np.clip(audio, -1.0, 1.0).astype(np.float32), error


def old_audio_to_features(audio, num_mel_bins=128, chunk_seconds=30.0, min_seconds=1.0, group_chunks=None):
    """The extractor over all chunks in one call."""
    audio = np.asarray(audio, dtype=np.float32)
    min_samples = int(min_seconds * SAMPLE_RATE)
    if audio.shape[0] < min_samples:
        audio = np.pad(audio, (0, min_samples - audio.shape[0]))
    chunk = int(chunk_seconds * SAMPLE_RATE)
    chunks = [audio[i:i + chunk] for i in range(0, audio.shape[0], chunk)]
    extracted = features_module._extractor(num_mel_bins)(chunks, sampling_rate=SAMPLE_RATE, return_tensors="np")
    return torch.from_numpy(extracted.input_features).float()


# ---- clips ----

CLIPS = {
    # name: (frames, fps, size, audio rate, layout, codec, container, audio codec)
    "10s": (50, 5, (32, 32), 44_100, "stereo", "libx264", "mp4", "aac"),
    "65s": (130, 2, (32, 32), 48_000, "mono", "libx264", "mp4", "aac"),
    "10min": (600, 1, (32, 32), 22_050, "stereo", "mpeg4", "mov", "pcm_s16le"),
}


@pytest.fixture(scope="module", params=list(CLIPS))
def clip(request, media_dir) -> Path:
    frames, fps, size, rate, layout, codec, fmt, audio_codec = CLIPS[request.param]
    path = media_dir / f"long_{request.param}.{fmt}"
    if not path.exists():
        seconds = frames / fps
        write_video(path, frames, fps, size=size, audio=[(0.0, 440.0), (seconds / 2, 1000.0)], audio_rate=rate,
                    audio_layout=layout, codec=codec, container_format=fmt, audio_codec=audio_codec)
    return path


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    config = tiny_config()
    model = SalmonnO1ForConditionalGeneration(config).eval()
    return model, SalmonnO1Processor(load_tokenizer(), config)


def _old_media_features(processor, path, monkeypatch):
    with monkeypatch.context() as patch:
        patch.setattr(media_module, "_decode_audio_track", old_decode_audio_track)
        patch.setattr(features_module, "audio_to_features", old_audio_to_features)
        return processor.media_features(path)


# ---- same values ----


@pytest.fixture(scope="module")
def decoded_audio(clip):
    with av.open(str(clip)) as container:
        return media_module._decode_audio_track(container, clip)


def test_audio_decode_is_bit_identical(clip, decoded_audio):
    with av.open(str(clip)) as container:
        old, old_error = old_decode_audio_track(container, clip)
    new, new_error = decoded_audio
    assert old_error is None and new_error is None
    assert new.dtype == np.float32 and new.shape == old.shape
    np.testing.assert_array_equal(new, old)
    # The buffer's unused tail is given back: the array owns exactly its samples.
    assert new.flags.owndata and new.nbytes == 4 * len(new)


@pytest.mark.parametrize("mel", [16, 128])
def test_features_in_groups_are_identical(decoded_audio, mel):
    audio = decoded_audio[0]
    if mel == 128:
        audio = audio[: 65 * SAMPLE_RATE]  # the wide extractor on at most three chunks keeps the test quick
    reference = old_audio_to_features(audio, mel)
    for group in sorted({3, features_module.FEATURE_GROUP_CHUNKS}):
        assert torch.equal(audio_to_features(audio, mel, group_chunks=group), reference)


def test_logits_match_the_old_path(clip, tiny, monkeypatch):
    """Features exactly equal; logits of the tiny model (chunks encoded one at a time by default)
    equal within 1e-5 to those of all chunks encoded at once.

    Within a tolerance rather than exactly: the encoder's matrix products over one chunk
    and over all of them may be blocked differently by another BLAS or device, which changes float
    rounding (on the CPU this was written on they came out bit-identical).
    """
    model, processor = tiny
    old = _old_media_features(processor, clip, monkeypatch)
    new = processor.media_features(clip)
    assert torch.equal(new.pixel_values, old.pixel_values)
    assert torch.equal(new.input_features, old.input_features)
    assert new.spec == old.spec
    text = "What is happening?"
    inputs_old = processor.collate([processor.encode(text, old)])
    inputs_new = processor.collate([processor.encode(text, new)])
    default = model.config.audio_encode_batch_size
    assert default is not None
    with torch.no_grad():
        logits_new = model(**inputs_new).logits
        model.config.audio_encode_batch_size = None
        try:
            logits_old = model(**inputs_old).logits
        finally:
            model.config.audio_encode_batch_size = default
    torch.testing.assert_close(logits_new, logits_old, rtol=0, atol=1e-5)


# ---- bounded batches ----


def test_encoder_calls_are_bounded(tiny):
    model, _ = tiny
    sizes: list[int] = []
    handle = model.audio_encoder.register_forward_hook(lambda module, args, out: sizes.append(args[0].shape[0]))
    features = torch.randn(5, model.config.num_mel_bins, model.config.mel_frames_per_chunk)
    try:
        with torch.no_grad():
            whole = model.encode_audio(features, batch_size=None)
            assert sizes == [5]
            for batch, expected in ((2, [2, 2, 1]), (8, [5])):
                sizes.clear()
                tokens = model.encode_audio(features, batch_size=batch)
                assert sizes == expected
                torch.testing.assert_close(tokens, whole, rtol=0, atol=1e-5)
            sizes.clear()
            model.encode_audio(features)  # the config's batch size
            assert sizes == [model.config.audio_encode_batch_size] * 5
    finally:
        handle.remove()


def test_extractor_calls_are_bounded(monkeypatch):
    extractor = features_module._extractor(16)
    sizes: list[int] = []

    def counting(chunks, **kwargs):
        sizes.append(len(chunks))
        return extractor(chunks, **kwargs)

    monkeypatch.setattr(features_module, "_extractor", lambda mel: counting)
    audio = np.zeros(10 * 30 * SAMPLE_RATE - 5, np.float32)
    assert audio_to_features(audio, 16, group_chunks=4).shape == (10, 16, 3000)
    assert sizes == [4, 4, 2]
    sizes.clear()
    audio_to_features(audio, 16)
    assert sizes == [features_module.FEATURE_GROUP_CHUNKS] * 10


# ---- the config knob ----


@pytest.mark.parametrize("value", [None, 7])
def test_batch_size_round_trips(tmp_path, value):
    tiny_config(audio_encode_batch_size=value).save_pretrained(tmp_path)
    assert SalmonnO1Config.from_pretrained(tmp_path).audio_encode_batch_size == value


def test_older_config_without_the_field_gets_the_default(tmp_path):
    tiny_config().save_pretrained(tmp_path)
    raw = json.loads((tmp_path / "config.json").read_text())
    del raw["audio_encode_batch_size"]
    (tmp_path / "config.json").write_text(json.dumps(raw))
    assert SalmonnO1Config.from_pretrained(tmp_path).audio_encode_batch_size == 1


def test_bad_batch_size_is_refused():
    with pytest.raises(ValueError, match="audio_encode_batch_size"):
        tiny_config(audio_encode_batch_size=0)
