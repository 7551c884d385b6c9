"""Training step cost on CPU: samples/s and peak memory for the tiny and the miniature model,
with and without gradient checkpointing, at 1 and 2 torch threads.

Each configuration runs in a fresh subprocess (so peak RSS is its own), builds
the model from the preset, renders AVR-Synth batches in memory and times
optimizer steps after a warm-up step; the thread counts alternate for each
configuration (A/B). Prints a table and writes JSON (default
benchmarks/results/bench_train.json).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_train.py [--steps 5] [--batch 4] [--threads 1,2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path


def one_run(preset: str, checkpointing: bool, steps: int, batch: int, threads: int) -> dict:
    import torch

    from salmonn_o1.data.synthetic import generate_item, render_media
    from salmonn_o1.train.model_setup import build_model
    from salmonn_o1.train.recipe import ModelRecipe
    from salmonn_o1.train.sft_data import SFTObjective, sft_conversation

    groups = ["vision_tower", "audio_encoder", "aligners", "llm"] if preset == "mini" else ["aligners", "llm"]
    model, processor = build_model(ModelRecipe(source=preset, train=groups, gradient_checkpointing=checkpointing))
    objective = SFTObjective(processor)
    size = model.config.vision_config.image_size
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def batch_at(step: int) -> dict:
        samples = []
        for i in range(batch):
            sample = generate_item("train", step * batch + i)
            features = processor.media_features(render_media(sample, size=size))
            samples.append(processor.encode(sft_conversation(sample.item, True), features,
                                            add_generation_prompt=False))
        return objective.collate(samples)

    batches = [batch_at(s) for s in range(steps + 1)]
    timings = []
    for step, data in enumerate(batches):
        start = time.perf_counter()
        loss, _ = objective.loss(model, data)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step:  # step 0 is warm-up
            timings.append(time.perf_counter() - start)
    step_s = sum(timings) / len(timings)
    return {"model": preset, "gradient_checkpointing": checkpointing, "batch": batch, "threads": threads,
            "parameters_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
            "tokens_per_sample": round(sum(int(b["num_tokens"]) for b in batches) / len(batches) / batch, 1),
            "step_s": round(step_s, 3), "samples_per_s": round(batch / step_s, 2),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--threads", default="1,2", help="torch thread counts to compare (default 1,2)")
    parser.add_argument("--out", default="benchmarks/results/bench_train.json")
    parser.add_argument("--child", nargs=3, metavar=("PRESET", "CHECKPOINTING", "THREADS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        from salmonn_o1.runtime import configure_threads

        configure_threads(int(args.child[2]))  # as `salmonn-o1 train --threads N` sets it
        print(json.dumps(one_run(args.child[0], args.child[1] == "1", args.steps, args.batch, int(args.child[2]))))
        return
    rows = []
    for preset in ("tiny", "mini"):
        for checkpointing in (False, True):
            for threads in args.threads.split(","):
                done = subprocess.run([sys.executable, __file__, "--steps", str(args.steps), "--batch",
                                       str(args.batch), "--child", preset, "1" if checkpointing else "0", threads],
                                      capture_output=True, text=True, check=True)
                rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    header = (f"{'model':6} {'grad ckpt':9} {'threads':>7} {'params M':>8} {'tok/sample':>10} {'step s':>7} "
              f"{'samples/s':>9} {'peak MiB':>8}")
    print(header)
    for r in rows:
        print(f"{r['model']:6} {str(r['gradient_checkpointing']):9} {r['threads']:7} {r['parameters_m']:8} "
              f"{r['tokens_per_sample']:10} {r['step_s']:7} {r['samples_per_s']:9} {r['peak_rss_mib']:8}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": platform.platform(), "processor": platform.processor(),
                               "cpu_count": os.cpu_count(), "load_average_at_end": os.getloadavg(),
                               "steps": args.steps, "rows": rows,
                               "note": "measured while other jobs shared the 2 CPU cores"}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
