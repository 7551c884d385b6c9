"""pDPO's rollout and select stages batched across questions: wall time per `pdpo.batch_size`.

The same N AVR-Synth questions go through `run_rollout` (and contrastive `run_select` on its
output) at each batch size, the sizes interleaved within every repeat (order rotated per repeat) so
that a noisy machine slows them alike. Records must not depend on the batch size (paths are seeded
per question and index): the table says whether each size's records equal the first size's
(costs aside; in float32 a batch's padding can move a logit by ~1e-7 and, rarely, a sample).

Defaults: the shipped miniature model and the stage settings of recipes/mini-pdpo.yaml (P = 6,
256 + 16 new tokens, temperature 1.0, top T = 2, at most 2 branched paths per question).

Prints a table and writes JSON (default benchmarks/results/bench_pdpo_batch.json).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from salmonn_o1.checkpoints import load_model_and_processor
from salmonn_o1.data.synthetic.pdpo_questions import avr_synth_questions
from salmonn_o1.inference import DEFAULT_MODEL_DIR, SalmonnO1Pipeline
from salmonn_o1.pdpo.questions import PDPOQuestion
from salmonn_o1.pdpo.rollout import run_rollout
from salmonn_o1.pdpo.select import run_select
from salmonn_o1.records import read_records
from salmonn_o1.train.recipe import PDPOSettings


def without_cost(path: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "cost"} for r in read_records(path)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(DEFAULT_MODEL_DIR))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--questions", type=int, default=6)
    parser.add_argument("--start", type=int, default=900000, help="first AVR-Synth train index (the recipe's)")
    parser.add_argument("--batch-sizes", default="1,16,64")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--paths", type=int, default=6)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--answer-max-new-tokens", type=int, default=16)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--no-select", action="store_true", help="time the rollout stage only")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/results/bench_pdpo_batch.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sizes = [int(s) for s in args.batch_sizes.split(",")]
    model, processor = load_model_and_processor(args.model, device=args.device)
    pipeline = SalmonnO1Pipeline(model, processor)
    questions = [PDPOQuestion.from_dict(q)
                 for q in avr_synth_questions(processor, "train", args.questions, args.start)]
    base = dict(paths=args.paths, max_new_tokens=args.max_new_tokens, top_t=2, max_paths=2,
                answer_max_new_tokens=args.answer_max_new_tokens, temperature=args.temperature, seed=0,
                model=args.model, selection="contrastive")

    times: dict[int, dict[str, list[float]]] = {b: {"rollout": [], "select": []} for b in sizes}
    costs: dict[int, dict] = {}
    same: dict[int, bool] = {}
    reference: dict[str, list] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            order = sizes[repeat % len(sizes):] + sizes[:repeat % len(sizes)]
            for size in order:
                folder = Path(tmp) / f"{repeat}-{size}"
                settings = PDPOSettings(**base, batch_size=size)
                started = time.perf_counter()
                rollout = run_rollout(folder, pipeline, questions, settings, progress=False)
                times[size]["rollout"].append(time.perf_counter() - started)
                select = None
                if not args.no_select:
                    started = time.perf_counter()
                    select = run_select(folder, pipeline, settings, progress=False)
                    times[size]["select"].append(time.perf_counter() - started)
                costs[size] = {"rollout": rollout["cost"], "select": select and select["cost"],
                               "kept": rollout["kept"], "paths": rollout["paths"]}
                records = {stage: without_cost(folder / f"{stage}.jsonl")
                           for stage in ("rollout", "select") if (folder / f"{stage}.jsonl").exists()}
                reference = reference or records
                same[size] = same.get(size, True) and records["rollout"] == reference["rollout"]

    base_time = statistics.median(times[sizes[0]]["rollout"])
    rows = []
    print(f"{args.questions} questions x {args.paths} paths, {args.max_new_tokens}+{args.answer_max_new_tokens} "
          f"new tokens, {args.device}, {args.threads} thread(s), {args.repeats} repeat(s), interleaved")
    print(f"{'batch':>5} {'rollout s':>10} {'speedup':>8} {'select s':>9} {'passes':>7} {'same records':>13}")
    for size in sizes:
        rollout_s = statistics.median(times[size]["rollout"])
        select_s = statistics.median(times[size]["select"]) if times[size]["select"] else None
        row = {"batch_size": size, "rollout_s": round(rollout_s, 3), "speedup": round(base_time / rollout_s, 2),
               "select_s": None if select_s is None else round(select_s, 3), "rollout_times": times[size]["rollout"],
               "select_times": times[size]["select"], "cost": costs[size], "same_rollout_records": same[size]}
        rows.append(row)
        select_text = "-" if select_s is None else f"{select_s:.2f}"
        print(f"{size:>5} {rollout_s:>10.2f} {row['speedup']:>7.2f}x {select_text:>9} "
              f"{costs[size]['rollout']['forward_passes']:>7} {str(same[size]):>13}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"benchmark": "bench_pdpo_batch", "args": vars(args), "machine": platform.platform(),
                               "torch": torch.__version__, "results": rows}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
