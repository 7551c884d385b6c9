"""Loading a released-layout checkpoint: time and peak host memory (CPU).

For each model size, one random model is written in the released layout as
sharded safetensors (+ index), one safetensors file, sharded `.bin` (+ index)
and one `.bin` file; each is then loaded in a fresh process by the release
loader (`load_release_model`, shard by shard onto empty parameters). Two
reference rows per size: "naive" (build the model, read every shard into one
state dict, `load_state_dict`) and the same weights converted to our layout
and loaded by `SalmonnO1ForConditionalGeneration.from_pretrained`
(transformers' loader).

Peak RSS is the process's high-water mark during the load (reset after the
imports via /proc/self/clear_refs); "extra" is peak minus the RSS before
loading, and "x model" divides it by the model's parameter bytes. File pages
of a shard being read count while it is mapped; weights taken zero-copy from
a safetensors file count only once touched, hence a second measurement after
reading every weight ("used"). `wide` is a bench-only size
(mini with a 0.2 B-parameter language model) where memory is large enough
to read above the interpreter's own noise.

Prints a table and writes JSON (default benchmarks/results/bench_load.json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CASES = ("safetensors, sharded", "safetensors, single", "bin, sharded", "bin, single",
         "naive state dict (sharded safetensors)", "our layout, transformers from_pretrained")


def build_config(size: str):
    from transformers import Qwen2Config

    from salmonn_o1.config import mini_config, tiny_config

    if size == "tiny":
        return tiny_config(interleave_mode="release")
    # The released layout has no time tokens (the mini preset uses them).
    if size == "mini":
        return mini_config(interleave_mode="release", time_tokens=False)
    if size == "wide":
        text = Qwen2Config(vocab_size=32768, hidden_size=1024, intermediate_size=2816, num_hidden_layers=12,
                           num_attention_heads=16, num_key_value_heads=4, max_position_embeddings=4096,
                           tie_word_embeddings=False)
        return mini_config(interleave_mode="release", time_tokens=False, text_config=text)
    raise SystemExit(f"unknown size {size!r}")


def write_checkpoints(size: str, root: Path) -> dict[str, str]:
    """The model of `size` in every layout; returns case -> directory."""
    import torch

    from salmonn_o1.model import SalmonnO1ForConditionalGeneration
    from salmonn_o1.release.writing import convert_checkpoint, save_release_checkpoint

    torch.manual_seed(0)
    model = SalmonnO1ForConditionalGeneration(build_config(size))
    nbytes = sum(p.numel() * p.element_size() for p in model.parameters())
    shard = max(nbytes // 4, 1)  # about four shards
    dirs = {}
    for case, fmt, limit in (("safetensors, sharded", "safetensors", shard), ("safetensors, single", "safetensors", nbytes * 2),
                             ("bin, sharded", "bin", shard), ("bin, single", "bin", nbytes * 2)):
        dirs[case] = str(save_release_checkpoint(model, root / case.replace(", ", "-"), max_shard_size=limit,
                                                 weights_format=fmt))
    dirs["naive state dict (sharded safetensors)"] = dirs["safetensors, sharded"]
    native = root / "native"
    convert_checkpoint(dirs["safetensors, sharded"], native, max_shard_size=shard)
    dirs["our layout, transformers from_pretrained"] = str(native)
    return dirs


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(field)


def worker(case: str, directory: str) -> dict:
    """One load in this (fresh) process: seconds, RSS before, peak RSS during."""
    import torch

    from salmonn_o1.model import SalmonnO1ForConditionalGeneration
    from salmonn_o1.release.config import release_to_native
    from salmonn_o1.release.keys import release_to_native_state_dict
    from salmonn_o1.release.loading import ShardReader, load_release_model, weight_files

    torch.set_num_threads(2)
    Path("/proc/self/clear_refs").write_text("5")  # reset the RSS high-water mark
    before = _status_kb("VmRSS")
    start = time.perf_counter()
    if case.startswith("naive"):
        config = release_to_native(json.loads((Path(directory) / "config.json").read_text()))
        model = SalmonnO1ForConditionalGeneration(config)
        state = {}
        for path, keys in weight_files(Path(directory)).items():
            with ShardReader(path) as shard:
                state.update({key: shard.get(key) for key in keys})
        model.load_state_dict(release_to_native_state_dict(state), strict=True)
    elif case.startswith("our layout"):
        model = SalmonnO1ForConditionalGeneration.from_pretrained(directory)
    else:
        model = load_release_model(directory)
    seconds = time.perf_counter() - start
    peak = _status_kb("VmHWM")
    # Weights read from safetensors may still be file pages not yet faulted in: touch every one.
    with torch.no_grad():
        for p in model.parameters():
            p.float().sum()
    used = _status_kb("VmHWM")
    model_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    return {"seconds": seconds, "rss_before_mb": before / 1024, "peak_rss_mb": peak / 1024,
            "extra_mb": (peak - before) / 1024, "extra_after_use_mb": (used - before) / 1024,
            "model_mb": model_bytes / 2**20, "params_m": sum(p.numel() for p in model.parameters()) / 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["tiny", "mini", "wide"], choices=["tiny", "mini", "wide"])
    parser.add_argument("--repeats", type=int, default=2, help="fresh processes per case (median time, max peak)")
    parser.add_argument("--out", default="benchmarks/results/bench_load.json")
    parser.add_argument("--worker", nargs=2, metavar=("CASE", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker)))
        return
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_load_") as tmp:
        for size in args.sizes:
            dirs = write_checkpoints(size, Path(tmp) / size)
            for case in CASES:
                runs = []
                for _ in range(args.repeats):
                    done = subprocess.run([sys.executable, __file__, "--worker", case, dirs[case]], check=True,
                                          capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
                    runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
                files = [p for p in Path(dirs[case]).iterdir() if p.suffix in (".safetensors", ".bin")]
                row = {"size": size, "case": case, "files": len(files), "params_m": runs[0]["params_m"],
                       "model_mb": runs[0]["model_mb"], "seconds": statistics.median(r["seconds"] for r in runs),
                       "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
                       "extra_mb": max(r["extra_mb"] for r in runs),
                       "extra_after_use_mb": max(r["extra_after_use_mb"] for r in runs), "runs": runs}
                row["extra_x_model"] = row["extra_mb"] / row["model_mb"]
                row["extra_after_use_x_model"] = row["extra_after_use_mb"] / row["model_mb"]
                rows.append(row)
                print(f"{size:<5} {case:<42} {row['seconds']:.2f}s extra {row['extra_mb']:.0f} MB", flush=True)
    print(f"\nthreads=2 repeats={args.repeats} ({platform.processor() or platform.machine()}, python {platform.python_version()})")
    print("extra = peak RSS during the load minus RSS before it; 'used' = the same after touching every weight")
    print(f"{'size':<5} {'case':<42} {'files':>5} {'params':>8} {'model MB':>9} {'load s':>7} {'peak RSS MB':>11} "
          f"{'extra MB':>9} {'x model':>7} {'used MB':>8} {'x model':>7}")
    for row in rows:
        print(f"{row['size']:<5} {row['case']:<42} {row['files']:>5} {row['params_m']:>7.1f}M {row['model_mb']:>9.1f} "
              f"{row['seconds']:>7.2f} {row['peak_rss_mb']:>11.0f} {row['extra_mb']:>9.0f} {row['extra_x_model']:>7.2f} "
              f"{row['extra_after_use_mb']:>8.0f} {row['extra_after_use_x_model']:>7.2f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": {k: v for k, v in vars(args).items() if k != "worker"}, "rows": rows},
                              indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
