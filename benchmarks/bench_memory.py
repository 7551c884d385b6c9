"""Peak memory of `ask` on a 10 s and a 10-minute video: flat in video length?

Frames are capped (60), audio is not: every 30 s Whisper chunk of a long video is decoded,
featurised and encoded. This measures the peak resident memory (ru_maxrss of a fresh child
process per measurement, read with os.wait4) of one question end to end:

- "mini": `python -m salmonn_o1 ask VIDEO QUESTION` with the shipped miniature model;
- "large-audio": the same pipeline with a Whisper-large-v3-shaped audio tower (d_model 1280,
  20 heads, 128 mel bins, 1500 positions; random weights built in the child from a config, no
  checkpoint) and a reduced LLM. `--whisper-layers` sets its depth (32 as released). The
  default is 1, to run in minutes on a CPU: encoder activations are per-layer transients, so the
  growth with length is the same at any depth while the flat part (weights) is smaller, which
  makes the 1-layer ratio an upper bound on the 32-layer one. `--large-batch-sizes 4` adds rows
  with that `audio_encode_batch_size` (new code only) to show what a larger batch costs.

Each case runs on two code trees, A/B interleaved in one run: "new" (this checkout) and "old"
(`--old-src`, e.g. /work/main/src of the code before the change; omitted when not given).
Goal: peak(10 min) / peak(10 s) <= 1.15 for the new code in both cases.

Prints a table and writes JSON (default benchmarks/results/bench_memory.json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
QUESTION = "What happens in the video?"
GOAL = 1.15


def write_clip(path: Path, seconds: int, fps: int = 2, size: tuple[int, int] = (128, 72)) -> None:
    """H.264 frames (a moving bar) and a stereo 44.1 kHz AAC tone whose pitch steps every 10 s."""
    rate = 44_100
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = size[0], size[1], "yuv420p"
        video.options = {"preset": "ultrafast"}
        audio = out.add_stream("aac", rate=rate, layout="stereo")
        written = 0
        for i in range(seconds * fps):
            image = np.full((size[1], size[0], 3), 40, np.uint8)
            x = (i * 4) % size[0]
            image[:, x:x + 8] = 220
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            for packet in video.encode(frame):
                out.mux(packet)
            end = int((i + 1) / fps * rate)
            t = np.arange(written, end) / rate
            tone = (0.4 * np.sin(2 * np.pi * (300 + 100 * (t // 10 % 5)) * t)).astype(np.float32)
            chunk = av.AudioFrame.from_ndarray(np.stack([tone, tone]), format="fltp", layout="stereo")
            chunk.sample_rate, chunk.pts = rate, written
            for packet in audio.encode(chunk):
                out.mux(packet)
            written = end
        for stream in (video, audio):
            for packet in stream.encode(None):
                out.mux(packet)


# ---- the child: one question, then exit (the parent reads its peak RSS) ----

def child_large(path: str, layers: int, max_new_tokens: int, batch_size: str) -> None:
    import torch
    from transformers import Blip2QFormerConfig, Qwen2Config

    from salmonn_o1.config import _whisper_encoder_config, mini_config
    from salmonn_o1.inference import SalmonnO1Pipeline
    from salmonn_o1.model import SalmonnO1ForConditionalGeneration
    from salmonn_o1.processor import SalmonnO1Processor
    from salmonn_o1.tokenizer import load_tokenizer

    torch.manual_seed(0)
    config = mini_config(
        audio_config=_whisper_encoder_config(
            vocab_size=64, num_mel_bins=128, d_model=1280, encoder_layers=layers, encoder_attention_heads=20,
            encoder_ffn_dim=5120, decoder_layers=1, decoder_attention_heads=20, decoder_ffn_dim=5120,
            max_source_positions=1500, max_target_positions=32,
        ),
        qformer_config=Blip2QFormerConfig(
            hidden_size=256, num_hidden_layers=2, num_attention_heads=4, intermediate_size=512,
            encoder_hidden_size=1280, cross_attention_frequency=1,
        ),
        text_config=Qwen2Config(
            vocab_size=704, hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=8192, tie_word_embeddings=False,
        ),
        time_tokens=False,
    )
    if batch_size != "config":
        config.audio_encode_batch_size = None if batch_size == "none" else int(batch_size)
    model = SalmonnO1ForConditionalGeneration(config).eval()
    pipeline = SalmonnO1Pipeline(model, SalmonnO1Processor(load_tokenizer(), config))
    pipeline.ask(path, QUESTION, max_new_tokens=max_new_tokens, answer_max_new_tokens=4)


def measure(src: Path, case: str, clip: Path, args, batch_size: str = "config") -> dict:
    """Run one child on the code under `src`; its peak RSS (MiB) and wall time."""
    env = dict(os.environ, PYTHONPATH=str(src), OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    if case == "mini":
        command = [sys.executable, "-m", "salmonn_o1", "ask", str(clip), QUESTION, "--quiet",
                   "--max-new-tokens", str(args.max_new_tokens), "--answer-max-new-tokens", "4"]
    else:
        command = [sys.executable, __file__, "--child-large", str(clip), "--whisper-layers", str(args.whisper_layers),
                   "--max-new-tokens", str(args.max_new_tokens), "--audio-batch-size", batch_size]
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stderr = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise RuntimeError(f"{case} on {clip.name} ({src}) failed:\n{stderr.decode()[-2000:]}")
    # ru_maxrss is in KiB on Linux.
    return {"peak_mib": round(usage.ru_maxrss / 1024, 1), "seconds": round(time.perf_counter() - started, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old-src", type=Path, default=None, help="src/ of the code to compare against")
    parser.add_argument("--cases", nargs="+", default=["mini", "large-audio"], choices=["mini", "large-audio"])
    parser.add_argument("--long-seconds", type=int, default=600)
    parser.add_argument("--short-seconds", type=int, default=10)
    parser.add_argument("--whisper-layers", type=int, default=1)
    parser.add_argument("--large-batch-sizes", nargs="*", default=[], metavar="N",
                        help="extra large-audio rows (new code) with this audio_encode_batch_size")
    parser.add_argument("--audio-batch-size", default="config", help=argparse.SUPPRESS)
    parser.add_argument("--max-new-tokens", type=int, default=8)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "bench_memory.json")
    parser.add_argument("--child-large", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_large:
        child_large(args.child_large, args.whisper_layers, args.max_new_tokens, args.audio_batch_size)
        return

    trees = {"new": ROOT / "src"}
    if args.old_src is not None:
        trees["old"] = args.old_src.resolve()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        clips = {}
        for seconds in (args.short_seconds, args.long_seconds):
            clips[seconds] = Path(tmp) / f"clip{seconds}.mp4"
            write_clip(clips[seconds], seconds)
        for case in args.cases:
            variants = {tree: (src, "config") for tree, src in trees.items()}
            if case == "large-audio":
                variants.update({f"new b{b}": (trees["new"], b) for b in args.large_batch_sizes})
            results = {name: {} for name in variants}
            for seconds in (args.short_seconds, args.long_seconds):
                for name, (src, batch) in variants.items():  # A/B interleaved
                    results[name][seconds] = measure(src, case, clips[seconds], args, batch)
            for name in variants:
                short, long = results[name][args.short_seconds], results[name][args.long_seconds]
                rows.append({"case": case, "code": name, "short_peak_mib": short["peak_mib"],
                             "long_peak_mib": long["peak_mib"],
                             "ratio": round(long["peak_mib"] / short["peak_mib"], 3),
                             "short_s": short["seconds"], "long_s": long["seconds"]})

    header = f"{'case':<12} {'code':<8} {'10 s peak MiB':>14} {'10 min peak MiB':>16} {'ratio':>6} {'time s':>13}"
    print(header)
    print("-" * len(header))
    for row in rows:
        print(f"{row['case']:<12} {row['code']:<8} {row['short_peak_mib']:>14.0f} {row['long_peak_mib']:>16.0f} "
              f"{row['ratio']:>6.2f} {row['short_s']:>6.1f}/{row['long_s']:<6.1f}")
    print(f"goal: ratio <= {GOAL} for the new code")
    report = {
        "benchmark": "bench_memory",
        "question": QUESTION,
        "short_seconds": args.short_seconds,
        "long_seconds": args.long_seconds,
        "whisper_layers": args.whisper_layers,
        "max_new_tokens": args.max_new_tokens,
        "goal_ratio": GOAL,
        "rows": rows,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "omp_num_threads": os.environ.get("OMP_NUM_THREADS")},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
