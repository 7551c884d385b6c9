"""Interleaving: order and counts, by hand-computed cases (DESIGN.md section 1)."""

import math

import pytest
import torch

from salmonn_o1.config import video_salmonn_o1_7b_config
from salmonn_o1.model.interleave import media_token_count, spec_for


def frame_times(duration: float, fps: float = 2.0, max_frames: int = 60) -> tuple[float, ...]:
    n = len([t for t in (i / fps for i in range(int(duration * fps) + 2)) if t < duration])
    if n > max_frames:
        return tuple(float(t) for t in torch.linspace(0, duration - 1 / fps, max_frames))
    return tuple(i / fps for i in range(n))


@pytest.mark.parametrize(
    ("duration", "frames", "chunks", "expected"),
    [
        (1.0, 2, 1, 2 * (182 + 25) + 100),  # front = round(50 T) = 50 < 150: 100 tokens left at the end
        (7.3, 15, 1, 15 * (182 + 10)),  # all 150 tokens: 10 per frame
        (10.0, 20, 1, 20 * (182 + 8)),  # 150 -> stretched to 160: 8 per frame (DESIGN: 3 800)
        (30.0, 60, 1, 60 * (182 + 3)),  # 150 -> 180: 3 per frame (11 100)
        (45.0, 60, 2, 60 * (182 + 5)),  # two chunks: 300 tokens, 5 per frame
    ],
)
def test_release_token_count_matches_the_released_formula(duration, frames, chunks, expected):
    config = video_salmonn_o1_7b_config()
    spec = spec_for(config, "video", frames, chunks, duration, frame_times(duration)[:frames])
    assert media_token_count(spec) == expected


@pytest.mark.parametrize(("duration", "chunks"), [(1.0, 1), (7.3, 1), (30.0, 1), (45.0, 2)])
def test_aligned_token_count_drops_padding(duration, chunks):
    config = video_salmonn_o1_7b_config(interleave_mode="aligned")
    times = frame_times(duration)
    spec = spec_for(config, "video", len(times), chunks, duration, times)
    assert media_token_count(spec) == len(times) * 182 + math.ceil(duration * 5 - 1e-6)


def _constant_model_outputs(model, monkeypatch):
    """Visual token of frame f = f + 1 everywhere; audio token j = -(j + 1) (before chunk offsets)."""
    hidden = model.config.text_config.hidden_size

    def fake_frames(pixel_values, pooled):
        frames = pixel_values.shape[0]
        per_frame = model.config.video_tokens_per_frame if pooled else model.config.image_tokens
        return (torch.arange(frames, dtype=torch.float32) + 1).view(frames, 1, 1).expand(frames, per_frame, hidden)

    def fake_audio(features):
        chunks, tokens = features.shape[0], model.config.audio_tokens_per_chunk
        values = -(torch.arange(chunks * tokens, dtype=torch.float32) + 1)
        return values.view(chunks, tokens, 1).expand(chunks, tokens, hidden).clone()

    monkeypatch.setattr(model, "encode_frames", fake_frames)
    monkeypatch.setattr(model, "encode_audio", fake_audio)


@pytest.mark.parametrize(("duration", "chunks"), [(1.0, 1), (7.3, 1), (30.0, 1), (45.0, 2)])
def test_each_frame_is_followed_by_its_own_time_span_of_audio(tiny_model, tiny_config, monkeypatch, duration, chunks):
    from batches import video_batch

    _constant_model_outputs(tiny_model, monkeypatch)
    batch = video_batch(tiny_config, duration=duration)
    assert batch["media"].chunks_per_sample == (chunks,)
    times = batch["media"].frame_times.tolist()
    embeds = tiny_model.embed_inputs(batch["input_ids"], batch["media"])
    media = embeds[0, batch["input_ids"][0] == tiny_config.media_token_id, 0]  # dim 0: sin(0) = 0 offset
    sequence = media.round().long().tolist()
    current_frame, seen_audio = 0, []
    for value in sequence:
        if value > 0:
            assert value in (current_frame, current_frame + 1), "frames must come in time order"
            current_frame = value
            continue
        token = -value - 1
        start = token * 0.2
        span_end = times[current_frame] if current_frame < len(times) else duration
        span_start = times[current_frame - 1] if current_frame > 1 else 0.0
        assert span_start - 1e-6 <= start < span_end + 1e-6, (token, current_frame)
        seen_audio.append(token)
    assert current_frame == len(times)
    assert seen_audio == list(range(math.ceil(duration * 5 - 1e-6))), "every real audio token once, in order"
    per_frame = tiny_config.video_tokens_per_frame
    assert sum(1 for v in sequence if v > 0) == len(times) * per_frame


def test_release_mode_splits_audio_evenly_by_count(tiny_model, monkeypatch):
    from salmonn_o1.config import tiny_config

    from batches import video_batch

    config = tiny_config(interleave_mode="release")
    tiny_model.config.interleave_mode = "release"
    _constant_model_outputs(tiny_model, monkeypatch)
    batch = video_batch(config, duration=10.0)
    embeds = tiny_model.embed_inputs(batch["input_ids"], batch["media"])
    sequence = embeds[0, batch["input_ids"][0] == config.media_token_id, 0].round().long().tolist()
    # 20 frames x (6 visual + 8 audio): 150 tokens stretched to 160 by nearest neighbour.
    assert len(sequence) == 20 * (6 + 8)
    audio_of_frame_3 = [-v - 1 for v in sequence[3 * 14 + 6: 4 * 14]]
    assert audio_of_frame_3 == [(j * 150) // 160 for j in range(24, 32)]


def test_audio_only_and_image_layouts(tiny_config):
    audio = spec_for(tiny_config, "audio", 0, 1, 4.0)
    assert media_token_count(audio) == 20
    image = spec_for(tiny_config, "image", 1, 0, 0.0, (0.0,))
    assert media_token_count(image) == tiny_config.image_tokens == 4 * 5
