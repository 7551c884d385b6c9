"""In-memory clips for pipeline tests (no decoding needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from salmonn_o1.media_types import SAMPLE_RATE, DecodedMedia


def colour_clip(duration: float = 3.0, colour=(255, 0, 0), pitch: float = 440.0) -> DecodedMedia:
    times = np.arange(0, duration, 0.5)
    frames = np.zeros((len(times), 32, 32, 3), np.uint8)
    frames[...] = colour
    t = np.arange(int(duration * SAMPLE_RATE)) / SAMPLE_RATE
    audio = (0.3 * np.sin(2 * np.pi * pitch * t)).astype(np.float32)
    return DecodedMedia(frames, times, audio, duration, True, "video")


def write_tiny_checkpoint(path: Path) -> Path:
    """A randomly initialised tiny model (seed 0) saved with its processor: a model directory for CLI runs."""
    import torch

    from salmonn_o1.checkpoints import save_model_and_processor
    from salmonn_o1.config import tiny_config
    from salmonn_o1.model import SalmonnO1ForConditionalGeneration
    from salmonn_o1.processor import SalmonnO1Processor
    from salmonn_o1.tokenizer import load_tokenizer

    torch.manual_seed(0)
    config = tiny_config()
    return save_model_and_processor(SalmonnO1ForConditionalGeneration(config),
                                    SalmonnO1Processor(load_tokenizer(), config), path)
