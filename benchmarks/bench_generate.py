"""Generation speed of the tiny model on CPU.

(a) several questions about one video: one shared encoding vs decoding and
    encoding the video again for every question;
(b) the two-turn protocol: answer turn from the reasoning turn's KV cache vs
    re-encoding the video and prefilling the whole conversation again (the release).

Prints a table and writes JSON (default benchmarks/results/bench_generate.json).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from salmonn_o1.checkpoints import load_model_and_processor
from salmonn_o1.inference import Question, SalmonnO1Pipeline
from salmonn_o1.media_types import SAMPLE_RATE, DecodedMedia


def synthetic_clip(seconds: float) -> DecodedMedia:
    times = np.arange(0, seconds, 0.5)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, size=(len(times), 64, 64, 3), dtype=np.uint8)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    audio = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    return DecodedMedia(frames, times, audio, seconds, True, "video")


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--questions", type=int, default=4)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/results/bench_generate.json")
    args = parser.parse_args()
    torch.set_num_threads(2)
    model, processor = load_model_and_processor(args.model, device="cpu")
    pipe = SalmonnO1Pipeline(model, processor)
    clip = synthetic_clip(args.seconds)
    # min_new_tokens is not a knob of the loop: greedy on a random model rarely stops early, and
    # tokens/s below counts the tokens actually generated.
    gen = {"max_new_tokens": args.new_tokens, "answer_max_new_tokens": 16}
    questions = [(f"Question {i}: what happens?", ["red", "blue", "green"]) for i in range(args.questions)]
    rows = []

    def shared():
        return pipe.ask_many(clip, questions, **gen)

    def separate():
        return [pipe.ask_batch([Question(clip, q, o)], **gen)[0] for q, o in questions]

    for name, fn in (("(a) shared encoding, batched", shared), ("(a) encode per question", separate)):
        results = fn()
        tokens = sum(r.tokens["reasoning"] + r.tokens["answer"] for r in results)
        seconds = timed(fn, args.repeats)
        rows.append({"case": name, "questions": len(questions), "s_per_question": seconds / len(questions),
                     "tokens_per_s": tokens / seconds})

    one = [Question(clip, *questions[0])]
    for name, reuse in (("(b) answer turn from KV cache", True), ("(b) answer turn re-encoded", False)):
        results = pipe.ask_batch(one, reuse_cache=reuse, **gen)
        tokens = results[0].tokens["reasoning"] + results[0].tokens["answer"]
        seconds = timed(lambda reuse=reuse: pipe.ask_batch(one, reuse_cache=reuse, **gen), args.repeats)
        rows.append({"case": name, "questions": 1, "s_per_question": seconds, "tokens_per_s": tokens / seconds,
                     "answer_turn_s": results[0].timings["answer_s"]})

    print(f"model={args.model} clip={args.seconds}s new_tokens<={args.new_tokens} threads=2 ({platform.processor()})")
    print(f"{'case':<34} {'questions':>9} {'s/question':>11} {'tokens/s':>9}")
    for row in rows:
        print(f"{row['case']:<34} {row['questions']:>9} {row['s_per_question']:>11.3f} {row['tokens_per_s']:>9.1f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "rows": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
