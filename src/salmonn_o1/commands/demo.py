"""`salmonn-o1 demo`: the default model answers the bundled clips' questions (two cross-modal, then sound order)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from salmonn_o1.commands.common import add_threads_argument, apply_threads

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "assets" / "sample"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="ask the default model about the bundled sample clip")
    parser.add_argument("--model", default=None, help="checkpoint directory (default: the shipped model)")
    add_threads_argument(parser)
    parser.set_defaults(func=run)


# Two cross-modal questions (the second's tone plays late, from 10.0 s: models shipped before the second
# one of 2026-12-04 wrote its time a second early), then a sound-order one (scripts/make_sample_clip.py).
SAMPLE_ITEMS = ("item.json", "clip-miss.json", "sound-order.json")


def run(args: argparse.Namespace) -> int:
    from salmonn_o1.inference import SalmonnO1Pipeline, default_model_source

    if args.model is None and default_model_source() == "tiny":
        print("note      no trained model ships in this checkout: this runs the whole pipeline on the tiny *random*\n"
              "          model, so its text is noise. Pass --model CHECKPOINT_DIR (e.g. a train sft run's final/).")
    pipeline = SalmonnO1Pipeline.from_pretrained(args.model, device="cpu")
    print(f"threads   {apply_threads(args, pipeline.model)}")
    for name in SAMPLE_ITEMS:
        ask_sample(pipeline, json.loads((SAMPLE_DIR / name).read_text()))
    return 0


def ask_sample(pipeline, item: dict) -> None:
    """Ask one bundled item's question about its clip; print the steps, the answer and the gold answer."""
    video = SAMPLE_DIR / item["video"]
    features = pipeline.features(video)
    print(f"video     {video.name}: {features.duration:.1f} s, {features.num_frames} frames at 2 fps, "
          f"{features.num_chunks} audio chunk(s) -> {features.token_count} audio-visual tokens")
    print(f"question  {item['question']}  ({item['category']})")
    for letter, option in zip("ABCDE", item["options"]):
        print(f"          {letter}. {option}")
    result = pipeline.ask(features, item["question"], item["options"], max_new_tokens=256, answer_max_new_tokens=32)
    print("reasoning")
    for step in result.steps:
        print(f"          {step}")
    print(f"answer    {result.answer}  (turn 2: {result.answer_text!r}; gold: {item['answer']})")
    print(f"time      {result.timings['total_s']:.2f} s, {result.tokens['reasoning']} + {result.tokens['answer']} "
          "tokens generated\n")
