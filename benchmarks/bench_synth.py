"""AVR-Synth throughput on CPU: how fast clips are made for training (rendered in
memory) and for evaluation (written to mp4, then decoded by the media pipeline).

Cases, each over the same N clips of a split:
  generate            timeline + question + gold steps only (no pixels)
  render 2 fps 64px   + frames and 16 kHz audio in memory, the training setting (sft_data)
  render 10 fps 128px + the frames an mp4 is written from (the `synth` CLI defaults)
  write mp4           + H.264/AAC encoding with PyAV (what `salmonn-o1 synth` does per clip)
  decode mp4          load_media on the written files at 2 fps (what evaluation pays per clip)

Prints a table and writes JSON (default benchmarks/results/bench_synth.json).
    .venv/bin/python benchmarks/bench_synth.py [--n 100] [--split test]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import av
import numpy as np

from salmonn_o1.data.synthetic import generate_item, render_media, write_sample_mp4
from salmonn_o1.media import load_media


def timed(fn, indices: list[int]) -> tuple[float, list]:
    start = time.perf_counter()
    results = [fn(i) for i in indices]
    return time.perf_counter() - start, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100, help="clips per case (default 100)")
    parser.add_argument("--split", default="test", choices=["train", "dev", "test"])
    parser.add_argument("--workdir", default=None, help="where the mp4s go (default: a temporary folder)")
    parser.add_argument("--out", default="benchmarks/results/bench_synth.json")
    args = parser.parse_args()

    indices = list(range(args.n))
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench_synth_"))
    workdir.mkdir(parents=True, exist_ok=True)
    generate_item(args.split, 0)  # warm-up (imports, first allocation)

    samples = [generate_item(args.split, i) for i in indices]
    clip_seconds = float(sum(s.timeline.duration for s in samples))
    cases = [
        ("generate", lambda i: generate_item(args.split, i)),
        ("render 2 fps 64px", lambda i: render_media(generate_item(args.split, i), fps=2.0, size=64)),
        ("render 10 fps 128px", lambda i: render_media(generate_item(args.split, i), fps=10.0, size=128)),
        ("write mp4 10 fps 128px", lambda i: write_sample_mp4(generate_item(args.split, i), workdir / f"{i}.mp4",
                                                              fps=10, size=128)),
        ("decode mp4 (load_media, 2 fps)", lambda i: load_media(workdir / f"{i}.mp4", fps=2.0)),
    ]
    rows = []
    for name, fn in cases:
        seconds, results = timed(fn, indices)
        row = {"case": name, "items": args.n, "seconds": seconds, "items_per_s": args.n / seconds,
               "ms_per_item": 1000 * seconds / args.n, "clip_seconds_per_s": clip_seconds / seconds}
        if name.startswith("write"):
            row["mb_per_item"] = sum(os.path.getsize(p) for p in results) / args.n / 1e6
        rows.append(row)

    machine = {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
               "load_avg": list(os.getloadavg()), "av": av.__version__, "numpy": np.__version__}
    print(f"AVR-Synth {args.split} clips 0..{args.n - 1}: mean clip {clip_seconds / args.n:.1f} s; "
          f"cpus={machine['cpus']} load={machine['load_avg'][0]:.1f}")
    print(f"{'case':<32} {'items/s':>9} {'ms/item':>9} {'clip-s/s':>9}")
    for row in rows:
        extra = f"  ({row['mb_per_item']:.3f} MB/clip)" if "mb_per_item" in row else ""
        print(f"{row['case']:<32} {row['items_per_s']:>9.1f} {row['ms_per_item']:>9.2f} "
              f"{row['clip_seconds_per_s']:>9.1f}{extra}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "machine": machine, "mean_clip_s": clip_seconds / args.n,
                               "rows": rows}, indent=2) + "\n")
    print(f"wrote {out}")
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
