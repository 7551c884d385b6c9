"""The decoding loop against transformers, on random Qwen2 language models (CPU).

(a) prefill with `logits_to_keep=1` vs full logits, on a 152,064-token vocabulary (the released
    7B's) with few layers: time and peak memory of one forward over the prompt. Full logits are
    (L, 152064) float32: 0.6 GB at 1,024 tokens, ~2.2 GB at the 3,700 a long video prompt holds.
    Peak memory is each variant's growth of the peak resident set over one forward, in a fresh
    process per variant (a process's peak cannot be reset).
(b) end-to-end greedy decoding: `salmonn_o1.decoding.Decoder.generate` vs
    `Qwen2ForCausalLM.generate` on the same 12-layer, 32k-vocabulary language model, same prompt,
    same number of new tokens (no stop tokens; min_new_tokens holds generate's eos off). Goal:
    within 10% of generate's tokens/s.

Cases run interleaved, round by round; ratios are medians of per-round ratios. Prints a table and
writes JSON (default benchmarks/results/bench_decode.json).
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_decode.py [--rounds 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from salmonn_o1.config import tiny_config
from salmonn_o1.decoding import Decoder, ProtocolIds
from salmonn_o1.generation import SamplingConfig
from salmonn_o1.model import SalmonnO1ForConditionalGeneration

BIG_VOCAB = dict(vocab_size=152064, hidden_size=896, intermediate_size=4864, num_hidden_layers=2,
                 num_attention_heads=14, num_key_value_heads=2, tie_word_embeddings=False)
DECODE_LM = dict(vocab_size=32000, hidden_size=512, intermediate_size=1376, num_hidden_layers=12,
                 num_attention_heads=8, num_key_value_heads=2, max_position_embeddings=4096,
                 tie_word_embeddings=False)


def big_vocab_model() -> Qwen2ForCausalLM:
    torch.manual_seed(0)
    return Qwen2ForCausalLM(Qwen2Config(**BIG_VOCAB)).eval()


def prefill(model: Qwen2ForCausalLM, ids: torch.Tensor, keep: int) -> tuple[int, ...]:
    with torch.no_grad():
        return tuple(model(input_ids=ids, use_cache=True, logits_to_keep=keep).logits.shape)


def peak_growth_mb(keep: int, prompt: int, threads: int) -> float:
    """Run in a fresh process: the growth of its peak resident set over one prefill forward."""
    code = (f"import resource, torch, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
            f"import bench_decode as b; torch.set_num_threads({threads}); m = b.big_vocab_model(); "
            f"ids = torch.randint(10, 150000, (1, {prompt})); "
            f"before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss; b.prefill(m, ids, {keep}); "
            f"print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return float(out.split()[-1])


def seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompt", type=int, default=1024, help="(a) prompt tokens")
    parser.add_argument("--decode-prompt", type=int, default=256, help="(b) prompt tokens")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--batch", type=int, default=1, help="(b) rows")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/results/bench_decode.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []

    # (a) prefill logits
    model = big_vocab_model()
    ids = torch.randint(10, 150000, (1, args.prompt))
    for keep in (0, 1):
        prefill(model, ids, keep)  # warm-up
    times: dict[int, list[float]] = {0: [], 1: []}
    for _ in range(args.rounds):
        for keep in (0, 1):
            times[keep].append(seconds(lambda keep=keep: prefill(model, ids, keep)))
    model = None  # free it before the memory runs
    memory = {keep: peak_growth_mb(keep, args.prompt, args.threads) for keep in (0, 1)}
    for keep, name in ((0, "(a) prefill, full logits"), (1, "(a) prefill, logits_to_keep=1")):
        rows.append({"case": name, "s": statistics.median(times[keep]), "peak_mb": memory[keep],
                     "x_full": statistics.median(t / f for t, f in zip(times[keep], times[0]))})

    # (b) decoding loop vs generate
    torch.manual_seed(0)
    config = tiny_config(text_config=Qwen2Config(**DECODE_LM))
    salmonn = SalmonnO1ForConditionalGeneration(config).eval()
    lm = salmonn.language_model
    decoder = Decoder(salmonn, ProtocolIds(pad_id=0, stop_ids=frozenset({-1})))
    prompt = torch.randint(10, 32000, (args.batch, args.decode_prompt))
    sampling = SamplingConfig(max_new_tokens=args.new_tokens)

    def ours():
        return decoder.generate(prompt.tolist(), [None] * args.batch, sampling).tokens

    def theirs():
        with torch.no_grad():
            out = lm.generate(input_ids=prompt, attention_mask=torch.ones_like(prompt), do_sample=False,
                              max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens, pad_token_id=0)
        return out[:, prompt.shape[1]:].tolist()

    same = ours() == theirs()  # warm-up, and greedy agreement
    cases = {"(b) Decoder.generate": ours, "(b) Qwen2ForCausalLM.generate": theirs}
    decode_times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.rounds):
        for name, fn in cases.items():
            decode_times[name].append(seconds(fn))
    reference = decode_times["(b) Qwen2ForCausalLM.generate"]
    new = args.batch * args.new_tokens
    for name in cases:
        rows.append({"case": name, "s": statistics.median(decode_times[name]),
                     "tokens_per_s": new / statistics.median(decode_times[name]),
                     "x_generate_tokens_per_s": statistics.median(r / t for t, r in zip(decode_times[name], reference))})

    print(f"threads={args.threads} rounds={args.rounds} ({platform.processor() or platform.machine()}); "
          f"(a) vocab 152064, {BIG_VOCAB['num_hidden_layers']} layers, prompt {args.prompt}; "
          f"(b) 12 layers, vocab 32000, prompt {args.decode_prompt} x {args.batch}, {args.new_tokens} new tokens, "
          f"same greedy tokens: {same}")
    print(f"{'case':<34} {'s':>8} {'ratio':>8} {'peak MB':>8} {'tokens/s':>9}")
    for row in rows:
        ratio = row.get("x_full", row.get("x_generate_tokens_per_s"))
        peak = f"{row['peak_mb']:.0f}" if "peak_mb" in row else ""
        speed = f"{row['tokens_per_s']:.1f}" if "tokens_per_s" in row else ""
        print(f"{row['case']:<34} {row['s']:>8.3f} {ratio:>7.2f}x {peak:>8} {speed:>9}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "same_greedy_tokens": same, "rows": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
