"""Decoding speed with 1 vs N torch threads across LLM sizes: where the default thread count changes.

`salmonn_o1.runtime` gives a model below `SMALL_MODEL_PARAMETERS` one thread and a bigger one
every core. This measures where that line belongs: for Qwen2 language models of growing size
(random weights, the toolkit's 704-token vocabulary, batch 1 as `ask` decodes), greedy
decoding with a KV cache after a 128-token prefill, timed at each thread count in turn
(interleaved, A/B/A/B, the median of the repeats), in one process. Each OpenMP wait policy
(`OMP_WAIT_POLICY`, read only when torch loads) runs in its own child process: the default
(threads spin between parallel regions) and PASSIVE (they sleep). Prints a table and writes
JSON (default benchmarks/results/bench_threads.json).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_threads.py [--threads 1,2] [--policies default,PASSIVE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

# (hidden, layers, intermediate, heads): from the miniature model's LLM up to a few hundred M parameters
SIZES = [(192, 4, 512, 4), (384, 6, 1024, 6), (1024, 8, 2816, 16), (1536, 10, 4096, 12)]


def build(hidden: int, layers: int, intermediate: int, heads: int):
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=704, hidden_size=hidden, num_hidden_layers=layers, intermediate_size=intermediate,
                         num_attention_heads=heads, num_key_value_heads=heads, max_position_embeddings=1024)
    return Qwen2ForCausalLM(config).eval()


def decode_seconds(model, prompt_tokens: int, new_tokens: int) -> float:
    """Seconds to decode `new_tokens` greedily after a prefill (the prefill is not timed)."""
    import torch
    from transformers import DynamicCache

    ids = torch.randint(0, model.config.vocab_size, (1, prompt_tokens))
    with torch.no_grad():
        cache = DynamicCache()
        out = model(input_ids=ids, past_key_values=cache, use_cache=True)
        token = out.logits[:, -1].argmax(-1, keepdim=True)
        start = time.perf_counter()
        for _ in range(new_tokens):
            out = model(input_ids=token, past_key_values=out.past_key_values, use_cache=True)
            token = out.logits[:, -1].argmax(-1, keepdim=True)
        return time.perf_counter() - start


def measure(args: argparse.Namespace, counts: list[int]) -> list[dict]:
    """Every size at every thread count, in this process (its OMP_WAIT_POLICY fixed at torch's import)."""
    import torch

    rows = []
    for size in SIZES:
        model = build(*size)
        parameters = sum(p.numel() for p in model.parameters())
        decode_seconds(model, args.prompt, 2)  # warm-up
        seconds: dict[int, list[float]] = {t: [] for t in counts}
        for _ in range(args.repeats):
            for threads in counts:  # interleaved: each count sees the same machine load
                torch.set_num_threads(threads)
                seconds[threads].append(decode_seconds(model, args.prompt, args.tokens))
        row = {"hidden": size[0], "layers": size[1], "parameters_m": round(parameters / 1e6, 1)}
        for threads in counts:
            row[f"tokens_per_s_{threads}t"] = round(args.tokens / statistics.median(seconds[threads]), 1)
        row[f"speedup_{counts[-1]}t_vs_{counts[0]}t"] = round(
            row[f"tokens_per_s_{counts[-1]}t"] / row[f"tokens_per_s_{counts[0]}t"], 2)
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
        del model
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", default="1,2", help="thread counts to compare (default 1,2)")
    parser.add_argument("--policies", default="default,PASSIVE", help="OMP_WAIT_POLICY values, one child each")
    parser.add_argument("--tokens", type=int, default=16, help="tokens decoded per timing")
    parser.add_argument("--prompt", type=int, default=128, help="prefill tokens")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/bench_threads.json")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    counts = [int(t) for t in args.threads.split(",")]
    if args.child:
        print(json.dumps(measure(args, counts)))
        return
    rows = []
    for policy in args.policies.split(","):
        env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
        if policy != "default":
            env["OMP_WAIT_POLICY"] = policy
        done = subprocess.run([sys.executable, __file__, "--child", "--threads", args.threads, "--tokens",
                               str(args.tokens), "--prompt", str(args.prompt), "--repeats", str(args.repeats)],
                              env=env, stdout=subprocess.PIPE, text=True, check=True)
        rows += [{"wait_policy": policy, **row} for row in json.loads(done.stdout.strip().splitlines()[-1])]
    speedup = f"speedup_{counts[-1]}t_vs_{counts[0]}t"
    print(f"{'wait policy':11} {'params M':>8} " + " ".join(f"{f'tok/s {t}t':>10}" for t in counts) + f" {'speedup':>8}")
    for row in rows:
        print(f"{row['wait_policy']:11} {row['parameters_m']:8} "
              + " ".join(f"{row[f'tokens_per_s_{t}t']:10}" for t in counts) + f" {row[speedup]:8}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": platform.platform(), "cpu_count": os.cpu_count(),
                               "load_average": os.getloadavg(), "threads": counts, "tokens": args.tokens,
                               "prompt": args.prompt, "repeats": args.repeats, "rows": rows,
                               "note": "load_average: the machine's 1/5/15-minute load when the run ended"},
                              indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
