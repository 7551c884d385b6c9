"""`salmonn-o1 demo`: the main job on the shipped default."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="run the default model on the bundled sample clip")
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from salmonn_o1.config import tiny_config
    from salmonn_o1.media_types import SAMPLE_RATE, DecodedMedia
    from salmonn_o1.model import SalmonnO1ForConditionalGeneration
    from salmonn_o1.processor import SalmonnO1Processor
    from salmonn_o1.prompts import format_question
    from salmonn_o1.tokenizer import load_tokenizer

    torch.manual_seed(args.seed)
    duration = 4.0
    times = np.arange(0, duration, 0.5)
    # A generated clip: the screen turns from red to blue at 2 s while a tone rises from 440 to 880 Hz.
    frames = np.zeros((len(times), 64, 64, 3), np.uint8)
    frames[times < 2.0, ..., 0] = 255
    frames[times >= 2.0, ..., 2] = 255
    t = np.arange(int(duration * SAMPLE_RATE)) / SAMPLE_RATE
    audio = (0.3 * np.sin(2 * np.pi * np.where(t < 2.0, 440.0, 880.0) * t)).astype(np.float32)
    clip = DecodedMedia(frames, times, audio, duration, True, "video", "<generated clip>")

    config = tiny_config()
    model = SalmonnO1ForConditionalGeneration(config).eval()
    processor = SalmonnO1Processor(load_tokenizer(), config)
    question = format_question("What colour is the screen when the high tone plays?", ["red", "blue"])
    batch = processor(text=question, videos=clip)
    with torch.no_grad():
        out = model(**batch)
        new_tokens = model.generate(**{k: v for k, v in batch.items() if k != "labels"}, max_new_tokens=12,
                                    do_sample=False)
    media = int((batch["input_ids"] == config.media_token_id).sum())
    print("tiny random model (untrained): a forward pass on a generated 4 s clip")
    print(f"  frames         {tuple(batch['pixel_values'].shape)} at t = {times.tolist()}")
    print(f"  audio chunks   {tuple(batch['input_features'].shape)}")
    print(f"  sequence       {batch['input_ids'].shape[1]} tokens, {media} of them audio-visual")
    print(f"  logits         {tuple(out.logits.shape)}")
    print(f"  greedy output  {processor.decode(new_tokens[0])!r}")
    return 0
