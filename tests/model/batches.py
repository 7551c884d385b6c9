"""Hand-built model inputs (no processor) for the core-model tests."""

from __future__ import annotations

import torch

from salmonn_o1.model.interleave import media_token_count, spec_for
from salmonn_o1.model.modeling import KIND_ID


def video_batch(config, duration: float = 2.0, fps: float = 2.0, text_before=(5, 6), text_after=(7, 8, 9)):
    """One video sample with random frames and log-mel features, placeholder already expanded."""
    times = torch.arange(0, duration, 1 / fps)[: config.max_frames]
    frames = len(times)
    chunks = config.num_audio_chunks(duration)
    count = media_token_count(spec_for(config, "video", frames, chunks, duration, tuple(times.tolist())))
    ids = torch.tensor([[*text_before, *[config.media_token_id] * count, *text_after]])
    labels = torch.full_like(ids, -100)
    labels[0, -len(text_after):] = ids[0, -len(text_after):]
    return {
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "labels": labels,
        "pixel_values": torch.randn(frames, 3, config.image_size, config.image_size),
        "input_features": torch.randn(chunks, config.num_mel_bins, config.mel_frames_per_chunk),
        "media_kind": torch.tensor([KIND_ID["video"]]),
        "frames_per_sample": torch.tensor([frames]),
        "chunks_per_sample": torch.tensor([chunks]),
        "durations": torch.tensor([duration]),
        "frame_times": times.float(),
    }
