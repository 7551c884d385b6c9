"""The decoding loop against transformers, on random Qwen2 language models (CPU).

(a) prefill with `logits_to_keep=1` vs full logits, on a 152,064-token vocabulary (the released
    7B's) with few layers: time and peak memory of one forward over the prompt. Full logits are
    (L, 152064) float32: 0.3 GB at 512 tokens, ~2.2 GB at the 3,700 a long video prompt holds.
    Peak memory: how far the resident set peaks above its level before one forward (Linux).
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
import time
from pathlib import Path

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM
from transformers.models.qwen2.modeling_qwen2 import Qwen2RotaryEmbedding

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
    """Random weights drawn in place (no initialiser temporaries: the peak before a forward is the model)."""
    torch.manual_seed(0)
    with torch.device("meta"):
        model = Qwen2ForCausalLM(Qwen2Config(**BIG_VOCAB))
    model.to_empty(device="cpu")
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            parameter.fill_(1.0) if "norm" in name else parameter.normal_(0, 0.02)
    model.model.rotary_emb = Qwen2RotaryEmbedding(model.config)  # its frequencies: a buffer, built on meta
    return model.eval()


def prefill(model: Qwen2ForCausalLM, ids: torch.Tensor, keep: int) -> tuple[int, ...]:
    with torch.no_grad():
        return tuple(model(input_ids=ids, use_cache=True, logits_to_keep=keep).logits.shape)


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field)) / 1024


def peak_growth_mb(fn) -> float:
    """How far the resident set peaks above where it stood, over `fn()` (Linux: the peak is reset first)."""
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # resets VmHWM, the peak resident set, to the current one
    before = _status_mb("VmRSS")
    fn()
    return _status_mb("VmHWM") - before


def seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompt", type=int, default=512, help="(a) prompt tokens")
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
    memory: dict[int, list[float]] = {0: [], 1: []}
    for _ in range(args.rounds):
        for keep in (0, 1):
            times[keep].append(seconds(lambda keep=keep: prefill(model, ids, keep)))
            memory[keep].append(peak_growth_mb(lambda keep=keep: prefill(model, ids, keep)))
    model = None
    for keep, name in ((0, "(a) prefill, full logits"), (1, "(a) prefill, logits_to_keep=1")):
        rows.append({"case": name, "s": statistics.median(times[keep]), "peak_mb": statistics.median(memory[keep]),
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
