"""pDPO's data stages spread over worker processes, merged, then DPO training: for a machine with
many cores or a GPU.

Why: the stages (rollout -> select -> label -> pairs) handle one question at a time, so a single
process leaves most of a 16-core or GPU machine idle. Here questions are cut into shards of
`--shard-size`; `--workers` processes run the recipe's stages on one shard each (into
OUT/shards/NNNN), new shards start until `--stop-new-after` seconds and running ones are killed at
`--deadline` (a killed shard is dropped whole). Finished shards are concatenated into
OUT/stages (each question is seeded by its id, so a shard's records equal those of one long run),
the summaries are recomputed over them, and the policy trains for `--epochs` passes over the pairs.

    python scripts/pdpo_sharded.py --config recipes/mini-pdpo.yaml --out runs/pdpo-big \\
        --workers 12 --shard-size 64 --shards 64 --stop-new-after 300 --deadline 420 \\
        model.source=src/salmonn_o1/assets/mini optim.lr=5e-5
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from salmonn_o1.pdpo.folder import write_summary
from salmonn_o1.pdpo.label import label_summary
from salmonn_o1.pdpo.pairing import pairs_summary
from salmonn_o1.pdpo.rollout import rollout_summary
from salmonn_o1.pdpo.select import select_summary
from salmonn_o1.records import read_records
from salmonn_o1.train.recipe import load_recipe

STAGE_FILES = ("rollout", "select", "label", "pairs", "pairs_questions")


def shard_overrides(out: Path, index: int, size: int, start: int) -> list[str]:
    return [f"run.out_dir={out / 'shards' / f'{index:04d}'}", f"pdpo.questions.n={size}",
            f"pdpo.questions.start={start + index * size}"]


def run_shard(config: str, overrides: list[str]) -> None:
    from salmonn_o1.pdpo.pipeline import run_stages

    run_stages(load_recipe(config, overrides), progress=False)


def launch(args, overrides: list[str], index: int, start: int, log_dir: Path) -> subprocess.Popen:
    command = [sys.executable, __file__, "--config", args.config, "--out", str(args.out), "--shard", str(index),
               "--shard-size", str(args.shard_size), *overrides, *shard_overrides(args.out, index, args.shard_size,
                                                                                  start)]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    log = (log_dir / f"{index:04d}.log").open("w")
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)


def run_shards(args, overrides: list[str], start: int) -> list[int]:
    """Shard indices that finished, in order."""
    log_dir = args.out / "shard_logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    begun = time.monotonic()
    waiting, running, finished = list(range(args.shards)), {}, []
    while waiting or running:
        elapsed = time.monotonic() - begun
        while waiting and len(running) < args.workers and elapsed < args.stop_new_after:
            index = waiting.pop(0)
            running[index] = launch(args, overrides, index, start, log_dir)
        for index, process in list(running.items()):
            code = process.poll()
            if code is None:
                continue
            del running[index]
            if code == 0:
                finished.append(index)
            else:
                print(f"shard {index} failed (exit {code}); see {log_dir / f'{index:04d}.log'}", flush=True)
        if elapsed >= args.stop_new_after:
            waiting = []
        if elapsed >= args.deadline:
            for index, process in running.items():
                process.kill()
                print(f"shard {index} killed at the deadline", flush=True)
            break
        time.sleep(1)
    print(f"{len(finished)} shards finished in {time.monotonic() - begun:.0f} s", flush=True)
    return sorted(finished)


def merge(out: Path, shards: list[int]) -> dict:
    """Concatenate the finished shards' stage files into out/stages and recompute the summaries."""
    target = out / "stages"
    target.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    for stage in STAGE_FILES:
        with (target / f"{stage}.jsonl").open("w", encoding="utf-8") as handle:
            for index in shards:
                source = out / "shards" / f"{index:04d}" / "stages" / f"{stage}.jsonl"
                if source.exists():
                    handle.write(source.read_text(encoding="utf-8"))
    for stage in ("rollout", "select", "label", "pairs"):
        first = out / "shards" / f"{shards[0]:04d}" / "stages" / f"{stage}_settings.json"
        shutil.copy(first, target / first.name)
        seconds[stage] = sum(json.loads((out / "shards" / f"{i:04d}" / "stages" / f"{stage}_summary.json")
                                        .read_text())["seconds_this_run"] for i in shards)
    read = {stage: read_records(target / f"{stage}.jsonl") for stage in STAGE_FILES}
    summaries = {"rollout": rollout_summary(read["rollout"], len(read["rollout"]), seconds["rollout"]),
                 "select": select_summary(read["select"], len(read["select"]), seconds["select"]),
                 "label": label_summary(read["label"], len(read["label"]), seconds["label"])}
    for stage, summary in summaries.items():
        write_summary(target, stage, summary)
    summaries["pairs"] = write_summary(target, "pairs", pairs_summary(
        read["pairs"], read["label"], read["pairs_questions"], target, len(read["pairs_questions"]),
        seconds["pairs"]))
    return summaries


def train(args, overrides: list[str], pairs: int) -> None:
    from salmonn_o1.pdpo.pipeline import train_on_pairs

    recipe = load_recipe(args.config, [*overrides, f"run.out_dir={args.out}"])
    steps = max(1, math.ceil(args.epochs * pairs / (recipe.optim.batch_size * recipe.optim.grad_accum)))
    if args.max_steps:
        steps = min(steps, args.max_steps)
    recipe.optim.max_steps = steps
    print(f"training {steps} steps on {pairs} pairs", flush=True)
    train_on_pairs(recipe)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    parser.add_argument("--shard-size", type=int, default=64)
    parser.add_argument("--shards", type=int, default=16)
    parser.add_argument("--stop-new-after", type=float, default=math.inf, help="seconds")
    parser.add_argument("--deadline", type=float, default=math.inf, help="seconds")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--max-steps", type=int, default=0)
    parser.add_argument("--no-train", action="store_true", help="stop after merging the stages")
    parser.add_argument("--train-only", action="store_true", help="train on OUT/stages merged before")
    parser.add_argument("--shard", type=int, default=None, help=argparse.SUPPRESS)
    args, overrides = parser.parse_known_args()
    if args.shard is not None:
        run_shard(args.config, overrides)
        return
    if args.train_only:
        pairs = json.loads((args.out / "stages" / "pairs_summary.json").read_text())["pairs"]
        train(args, overrides, pairs)
        return
    recipe = load_recipe(args.config, overrides)
    start = int(((recipe.pdpo.questions if recipe.pdpo else None) or {}).get("start", 0))
    finished = run_shards(args, overrides, start)
    if not finished:
        sys.exit("no shard finished")
    summaries = merge(args.out, finished)
    print(json.dumps({k: {key: v.get(key) for key in ("questions", "kept", "steps", "pairs", "step_pairs",
                                                      "path_accuracy", "seconds_this_run") if key in v}
                      for k, v in summaries.items()}), flush=True)
    if not args.no_train:
        train(args, overrides, summaries["pairs"]["pairs"])


if __name__ == "__main__":
    main()
