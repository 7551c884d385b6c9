"""Generation speed of the shipped miniature model on CPU: many questions about one video.

(a) `ask_many` with N questions about one AVR-Synth clip vs one question alone (the mean over the
    N questions asked one at a time): the goal is N = 8 at <= 1.5x one question. A batch decodes
    until its longest answer ends, so the longest of the N questions asked alone is its floor
    (column "x longest"). Variants switch the
    decoder's savings off one at a time: the shared prefix (system prompt + media prefilled once),
    its KV cache shared by the questions rather than copied to each (`kv_cache`), and dropping
    finished rows from the decode batch.
(b) the two-turn protocol: answer turn from the reasoning turn's KV cache vs re-encoding the video
    and prefilling the whole conversation again (the release).

Cases run interleaved, round by round (A/B in one run); ratios are medians over rounds of
per-round ratios. Prints a table and writes JSON (default benchmarks/results/bench_generate.json).
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_generate.py [--rounds 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from salmonn_o1.data.synthetic import generate_item, render_media
from salmonn_o1.inference import Question, SalmonnO1Pipeline

# AVR-Synth question kinds (the test split's wording), asked about one clip.
QUESTIONS = [
    ("What was on screen when the low tone played?",
     ["a green cross", "a white circle", "a blue triangle", "a green triangle"]),
    ("How many beeps played while the blue cross was visible?", ["0", "1", "2", "3"]),
    ("Which shape appeared next after the chirp played?",
     ["a red square", "a red cross", "a yellow triangle", "a yellow circle"]),
    ("Which shape appeared last?", ["a blue triangle", "a yellow cross", "a blue square", "a yellow circle"]),
    ("Which sound played first?", ["the high tone", "the buzz", "the chirp", "the low tone"]),
    ("Is this video manipulated? Answer YES or NO.", None),
    ("Which shape appeared fourth?", ["a green circle", "a purple circle", "a blue circle", "a red square"]),
    ("How many beeps played while the blue square was visible?", ["0", "1", "2", "3"]),
]


def seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="default: the shipped miniature model")
    parser.add_argument("--questions", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/results/bench_generate.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pipe = SalmonnO1Pipeline.from_pretrained(args.model, device="cpu")
    clip = render_media(generate_item("test", 0))
    questions = (QUESTIONS * (args.questions // len(QUESTIONS) + 1))[:args.questions]
    gen = {"max_new_tokens": args.max_new_tokens, "answer_max_new_tokens": 32}
    decoder = pipe.decoder
    defaults = (decoder.min_shared_prefix, decoder.drop_finished, decoder.share_prefixes)

    def many(share: bool, drop: bool, copies: bool = False):
        def run():
            decoder.min_shared_prefix = defaults[0] if share else 10**9
            decoder.drop_finished = drop
            decoder.share_prefixes = defaults[2] and not copies
            try:
                return pipe.ask_many(clip, questions, **gen)
            finally:
                decoder.min_shared_prefix, decoder.drop_finished, decoder.share_prefixes = defaults
        return run

    many_cases = {
        f"(a) ask_many N={len(questions)}": many(True, True),
        f"(a) ask_many N={len(questions)}, prefix copied to each row": many(True, True, copies=True),
        f"(a) ask_many N={len(questions)}, no shared prefix": many(False, True),
        f"(a) ask_many N={len(questions)}, finished rows kept": many(True, False),
        f"(a) ask_many N={len(questions)}, neither (main before)": many(False, False),
    }
    one = [Question(clip, *questions[0])]
    turn_cases = {"(b) answer turn from KV cache": True, "(b) answer turn re-encoded": False}

    tokens = {name: sum(r.tokens["reasoning"] + r.tokens["answer"] for r in fn()) for name, fn in many_cases.items()}
    single_tokens = [pipe.ask(clip, q, o, **gen).tokens for q, o in questions]
    times: dict[str, list[float]] = {name: [] for name in
                                     [*many_cases, "one question (mean)", "one question (longest)", *turn_cases]}
    for _ in range(args.rounds):
        for name, fn in many_cases.items():
            times[name].append(seconds(fn))
        singles = [seconds(lambda q=q, o=o: pipe.ask(clip, q, o, **gen)) for q, o in questions]
        times["one question (mean)"].append(statistics.mean(singles))
        times["one question (longest)"].append(max(singles))
        for name, reuse in turn_cases.items():
            times[name].append(seconds(lambda reuse=reuse: pipe.ask_batch(one, reuse_cache=reuse, **gen)))

    single, longest = times["one question (mean)"], times["one question (longest)"]
    rows = []
    for name in [*many_cases, "one question (longest)"]:
        rows.append({"case": name, "questions": len(questions) if name in many_cases else 1,
                     "s": statistics.median(times[name]),
                     "x_one_question": statistics.median(t / s for t, s in zip(times[name], single)),
                     "x_longest_question": statistics.median(t / s for t, s in zip(times[name], longest)),
                     "tokens": tokens.get(name, max(t["reasoning"] + t["answer"] for t in single_tokens))})
    rows.append({"case": "one question (mean)", "questions": 1, "s": statistics.median(single), "x_one_question": 1.0,
                 "tokens": statistics.mean(t["reasoning"] + t["answer"] for t in single_tokens)})
    cache_s = times["(b) answer turn from KV cache"]
    for name in turn_cases:
        rows.append({"case": name, "questions": 1, "s": statistics.median(times[name]),
                     "x_from_cache": statistics.median(t / c for t, c in zip(times[name], cache_s))})

    print(f"model={args.model or 'shipped mini'} clip={clip.duration:.1f}s max_new_tokens={args.max_new_tokens} "
          f"threads={args.threads} rounds={args.rounds} ({platform.processor() or platform.machine()})")
    print(f"{'case':<48} {'s':>7} {'x one question':>15} {'x longest':>10} {'tokens':>7}")
    for row in rows:
        ratio = row.get("x_one_question", row.get("x_from_cache"))
        longest_ratio = f"{row['x_longest_question']:.2f}x" if "x_longest_question" in row else ""
        print(f"{row['case']:<48} {row['s']:>7.2f} {ratio:>14.2f}x {longest_ratio:>10} {row.get('tokens', ''):>7}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "rows": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
