"""Hand-built model inputs (no processor) for the core-model tests."""

from __future__ import annotations

import torch

from salmonn_o1.model.media_batch import MediaBatch, MediaFeatures


def video_batch(config, duration: float = 2.0, fps: float = 2.0, text_before=(5, 6), text_after=(7, 8, 9)):
    """One video sample with random frames and log-mel features, placeholder already expanded."""
    times = torch.arange(0, duration, 1 / fps)[: config.max_frames]
    frames = len(times)
    chunks = config.num_audio_chunks(duration)
    features = MediaFeatures.build(
        config, "video", torch.randn(frames, 3, config.image_size, config.image_size),
        torch.randn(chunks, config.num_mel_bins, config.mel_frames_per_chunk), times.float(), duration,
    )
    ids = torch.tensor([[*text_before, *[config.media_token_id] * features.token_count, *text_after]])
    labels = torch.full_like(ids, -100)
    labels[0, -len(text_after):] = ids[0, -len(text_after):]
    return {
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "labels": labels,
        "media": MediaBatch.collate([features]),
    }
