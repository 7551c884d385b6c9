"""pDPO's data half: what producing pairs costs, and how fast the code produces them.

Part 1 (always), cost per selection strategy: contrastive step selection vs all steps vs random steps.

For N AVR-Synth questions the rollout stage runs once (its paths are shared);
then select -> label -> pairs run once per strategy, each in its own folder.
Reported per strategy: steps branched, LLM forward passes and generated tokens
(per stage and in total), pairs made, and pairs per 1k generated tokens.

The model is the tiny random model nudged to write short steps (pdpo.toy):
costs are those of the real procedure, but its step scores carry no meaning,
so this measures cost, not the quality of the selected steps.

Part 2 (with --old-src PATH/src), old vs new code on the shipped mini model: the data half
(rollout -> select -> label -> pairs) with the mini recipe's stage settings (recipes/mini-pdpo.yaml's
`pdpo:` section; its recall-circuit component only pins weights in training, so it changes nothing
here) on --ab-questions AVR-Synth train questions from the recipe's first index. Each code tree runs
in its own subprocess (PYTHONPATH=its src), old and new alternating over --ab-rounds rounds.
Reported per stage: seconds, generated tokens, LLM forward passes, forward and prefill positions
(counted by one forward hook, the same for both trees), and the new/old speed-ups. Goals: label
stage >= 2x, whole data half >= 1.7x. The old code seeds each call, the new each row, so their
records differ: the statistics they produce (mean values, ties, pairs per question, path accuracy)
are shown side by side; the new code's label records at batch size 1 must equal those at its
batch size (checked in the first new run, outside the timings). The new code runs at each of
--ab-batch-sizes (default 64, the setting's default, and 16; the goals are checked at the first): on a
CPU the mini model's forward is mostly fixed cost, so fewer, wider forwards are what pays, once rows
share their prefixes instead of copying them (`kv_cache`).

    git worktree add /tmp/old-pdpo 1646d14
    python benchmarks/bench_pdpo.py --old-src /tmp/old-pdpo/src [--skip-strategies]

Prints tables and writes JSON (default benchmarks/results/bench_pdpo.json).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

from salmonn_o1.checkpoints import load_model_and_processor
from salmonn_o1.data.synthetic.pdpo_questions import avr_synth_questions
from salmonn_o1.inference import SalmonnO1Pipeline
from salmonn_o1.pdpo.label import run_label
from salmonn_o1.pdpo.pairing import run_pairs
from salmonn_o1.pdpo.questions import PDPOQuestion
from salmonn_o1.pdpo.rollout import run_rollout
from salmonn_o1.pdpo.select import run_select
from salmonn_o1.pdpo.toy import step_structured
from salmonn_o1.train.recipe import PDPOSettings

STRATEGIES = ("contrastive", "all", "random")
ROOT = Path(__file__).resolve().parents[1]
MINI = ROOT / "src" / "salmonn_o1" / "assets" / "mini"
RECIPE = ROOT / "recipes" / "mini-pdpo.yaml"
STAGES = ("rollout", "select", "label", "pairs")
GOALS = {"label": 2.0, "data half": 1.7}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny", help="part 1's model")
    parser.add_argument("--questions", type=int, default=8)
    parser.add_argument("--paths", type=int, default=4)
    parser.add_argument("--rollouts", type=int, default=6)
    parser.add_argument("--top-t", type=int, default=3)
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--answer-max-new-tokens", type=int, default=1)
    parser.add_argument("--max-step-tokens", type=int, default=24)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-strategies", action="store_true", help="part 2 only")
    parser.add_argument("--old-src", type=Path, default=None, help="src/ of the code to compare against (part 2)")
    parser.add_argument("--ab-questions", type=int, default=24,
                        help="part 2: old and new sample differently, so few questions compare unequal work")
    parser.add_argument("--ab-rounds", type=int, default=1, help="old/new runs each, alternating")
    parser.add_argument("--ab-threads", type=int, default=2, help="torch threads of each part-2 run")
    parser.add_argument("--ab-batch-sizes", default="64,16",
                        help="the new code's batch sizes (the first is the one the goals are checked at)")
    parser.add_argument("--ab-batch-size", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--no-batch-check", action="store_true", help="skip the batch size 1 vs default check")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", default="benchmarks/results/bench_pdpo.json")
    args = parser.parse_args()
    if args.worker is not None:
        Path(args.worker_out).write_text(json.dumps(data_half(args)) + "\n")
        return
    report = {"benchmark": "bench_pdpo",
              "machine": {"platform": platform.platform(), "torch": torch.__version__, "device": "cpu",
                          "cpus": os.cpu_count()}}
    if not args.skip_strategies:
        report.update(strategies(args))
    if args.old_src is not None:
        report["old_vs_new"] = old_vs_new(args)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written to {out}")
    check = report.get("old_vs_new", {}).get("batch_check")
    if check is not None and not check["identical"]:
        raise SystemExit(f"label records differ between batch size 1 and {check['batch_size']}: {check}")


def strategies(args: argparse.Namespace) -> dict:
    """Part 1: the cost of each selection strategy (tiny model, one process)."""
    torch.set_num_threads(args.threads)
    model, processor = load_model_and_processor(args.model, device="cpu")
    if args.model == "tiny":
        step_structured(model, processor.tokenizer, step=5.5, end=3.5)
    pipeline = SalmonnO1Pipeline(model, processor)
    questions = [PDPOQuestion.from_dict(q) for q in avr_synth_questions(processor, "train", args.questions)]
    base = dict(paths=args.paths, rollouts=args.rollouts, top_t=args.top_t, max_new_tokens=args.max_new_tokens,
                answer_max_new_tokens=args.answer_max_new_tokens, max_step_tokens=args.max_step_tokens,
                seed=args.seed, model=args.model)

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        shared = Path(tmp) / "rollout"
        started = time.perf_counter()
        rollout = run_rollout(shared, pipeline, questions, PDPOSettings(**base), progress=False)
        rollout_seconds = time.perf_counter() - started
        for strategy in STRATEGIES:
            folder = Path(tmp) / strategy
            folder.mkdir()
            for name in ("rollout.jsonl", "rollout_settings.json", "rollout_summary.json"):
                shutil.copy(shared / name, folder / name)
            settings = PDPOSettings(**base, selection=strategy)
            started = time.perf_counter()
            select = run_select(folder, pipeline, settings, progress=False)
            label = run_label(folder, pipeline, settings, progress=False)
            pairs = run_pairs(folder, pipeline, settings, progress=False)
            results[strategy] = summarise(select, label, pairs, time.perf_counter() - started)

    print(f"{args.questions} questions x {args.paths} paths: kept {rollout['kept']}, "
          f"{rollout['steps_per_path']:.1f} steps/path, rollout stage {rollout['cost']['generated_tokens']} "
          f"tokens / {rollout['cost']['forward_passes']} passes (shared), {rollout_seconds:.1f} s")
    header = (f"{'selection':<12}{'branched':>9}{'fwd sel+lab':>12}{'gen sel+lab':>12}{'fwd total':>10}"
              f"{'gen total':>10}{'step pairs':>11}{'all pairs':>10}{'pairs/1k':>9}{'step/1k':>8}{'s':>7}")
    print(header)
    for strategy, r in results.items():
        print(f"{strategy:<12}{r['steps_branched']:>9}{r['forward_passes_select_label']:>12}"
              f"{r['generated_tokens_select_label']:>12}{r['forward_passes_total']:>10}{r['generated_tokens_total']:>10}"
              f"{r['step_pairs']:>11}{r['pairs']:>10}{r['pairs_per_1k_generated_tokens']:>9.2f}"
              f"{r['step_pairs_per_1k_label_tokens']:>8.2f}{r['seconds']:>7.1f}")
    return {
        "model": args.model + (" (step-structured toy bias)" if args.model == "tiny" else ""),
        "settings": {**base, "questions": args.questions, "threads": args.threads},
        "rollout": rollout, "rollout_seconds": round(rollout_seconds, 2), "strategies": results,
    }


def summarise(select: dict, label: dict, pairs: dict, seconds: float) -> dict:
    costs = pairs["cost_by_stage"]
    select_label = {k: costs["select"][k] + costs["label"][k] for k in costs["select"]}
    return {
        "steps_branched": select["selected_steps"], "steps_available": select["steps"],
        "forward_passes_by_stage": {k: v["forward_passes"] for k, v in costs.items()},
        "generated_tokens_by_stage": {k: v["generated_tokens"] for k, v in costs.items()},
        "forward_passes_select_label": select_label["forward_passes"],
        "generated_tokens_select_label": select_label["generated_tokens"],
        "forward_passes_total": pairs["cost_total"]["forward_passes"],
        "generated_tokens_total": pairs["cost_total"]["generated_tokens"],
        "step_pairs": pairs["step_pairs"], "path_pairs": pairs["path_pairs"], "pairs": pairs["pairs"],
        "ties_dropped": pairs["ties_dropped"], "no_alternative": label["no_alternative"],
        "mean_abs_value_gap": label["mean_abs_value_gap"],
        "pairs_per_1k_generated_tokens": pairs["pairs_per_1k_generated_tokens"] or 0.0,
        "step_pairs_per_1k_label_tokens": (1000 * pairs["step_pairs"] / select_label["generated_tokens"]
                                           if select_label["generated_tokens"] else 0.0),
        "seconds": round(seconds, 2),
    }


# ---- part 2: old vs new code on the mini model ----

def recipe_settings() -> dict:
    """The mini recipe's stage settings (its `pdpo:` section less the questions and the training keys)."""
    section = yaml.safe_load(RECIPE.read_text())["pdpo"]
    return {k: v for k, v in section.items() if k not in ("questions", "beta", "sft_weight")}


def old_vs_new(args: argparse.Namespace) -> dict:
    sizes = [int(b) for b in args.ab_batch_sizes.split(",")]
    trees = {"old": args.old_src.resolve(), **{f"new@{b}": (ROOT / "src").resolve() for b in sizes}}
    runs: dict[str, list[dict]] = {name: [] for name in trees}
    checked = False
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.ab_rounds):
            for name in (list(trees) if r % 2 == 0 else list(reversed(trees))):
                out = Path(tmp) / f"{name}{r}.json"
                command = [sys.executable, __file__, "--worker", name, "--worker-out", str(out),
                           "--ab-questions", str(args.ab_questions), "--ab-threads", str(args.ab_threads),
                           "--seed", str(args.seed)]
                if name != "old":
                    command += ["--ab-batch-size", name.split("@")[1]]
                if name == "old" or checked or args.no_batch_check:
                    command.append("--no-batch-check")
                checked = checked or name != "old"
                env = {**os.environ, "PYTHONPATH": str(trees[name]), "OMP_NUM_THREADS": str(args.ab_threads)}
                started = time.perf_counter()
                subprocess.run(command, env=env, check=True)
                runs[name].append(json.loads(out.read_text()))
                print(f"  {name} run {r + 1}: {time.perf_counter() - started:.0f} s", flush=True)
    new = f"new@{sizes[0]}"
    result = {"settings": {**recipe_settings(), "questions": args.ab_questions, "rounds": args.ab_rounds,
                           "threads": args.ab_threads, "new_batch_sizes": sizes, "old_src": str(trees["old"]),
                           "model": str(MINI)},
              "runs": runs, "stages": {}, "speedup": {}}
    for stage in (*STAGES, "data half"):
        result["stages"][stage] = {name: _median_stage(runs[name], stage) for name in runs}
        old = result["stages"][stage]["old"]["seconds"]
        result["speedup"][stage] = {name: round(old / row["seconds"], 2) if row["seconds"] else None
                                    for name, row in result["stages"][stage].items() if name != "old"}
    result["goals"] = {stage: {"goal": goal, "at": new, "speedup": result["speedup"][stage][new],
                               "met": (result["speedup"][stage][new] or 0) >= goal} for stage, goal in GOALS.items()}
    result["statistics"] = {name: runs[name][0]["statistics"] for name in runs}
    result["batch_check"] = next((rs[0]["batch_check"] for rs in runs.values() if rs[0].get("batch_check")), None)
    print_old_vs_new(result)
    return result


def _median_stage(runs: list[dict], stage: str) -> dict:
    keys = runs[0]["stages"][stage].keys()
    return {k: statistics.median(r["stages"][stage][k] for r in runs) for k in keys}


def print_old_vs_new(result: dict) -> None:
    s = result["settings"]
    print(f"\nold vs new, mini model, {s['questions']} questions x {s['paths']} paths, rollouts {s['rollouts']}, "
          f"top_t {s['top_t']}, max_paths {s['max_paths']}, {s['threads']} threads, {s['rounds']} round(s)")
    print(f"{'stage':<10}{'code':<10}{'s':>8}{'x old':>7}{'generated':>10}{'forwards':>9}{'positions':>10}"
          f"{'prefill':>9}")
    for stage, rows in result["stages"].items():
        for name, row in rows.items():
            x = result["speedup"][stage].get(name)
            print(f"{stage:<10}{name:<10}{row['seconds']:>8.1f}{'' if x is None else f'{x:.2f}':>7}"
                  f"{row['generated_tokens']:>10}{row['forward_passes']:>9}{row['forward_positions']:>10}"
                  f"{row['prefill_positions']:>9}")
    for stage, goal in result["goals"].items():
        print(f"goal {stage} ({goal['at']}): >= {goal['goal']}x, measured {goal['speedup']}x "
              f"({'met' if goal['met'] else 'NOT met'})")
    names = list(result["statistics"])
    print("statistics under seeded sampling (" + " | ".join(names) + "):")
    for key in result["statistics"][names[-1]]:
        print(f"  {key:<30}" + " | ".join(f"{result['statistics'][n][key]!s:>8}" for n in names))
    if result["batch_check"] is not None:
        print(f"label records, batch size 1 vs {result['batch_check']['batch_size']}: "
              f"{'identical' if result['batch_check']['identical'] else 'DIFFERENT'}")


class _Forwards:
    """LLM forwards of one stage, counted by a hook on the model's forward (the same in both trees)."""

    def __init__(self, model):
        self.passes = self.positions = self.prefill = 0
        self.handle = model.register_forward_hook(self.hook, with_kwargs=True)

    def hook(self, module, args, kwargs, output):
        x = kwargs.get("inputs_embeds")
        x = kwargs.get("input_ids", args[0] if args else None) if x is None else x
        self.passes += 1
        if x is not None:
            self.positions += int(x.shape[0] * x.shape[1])
            self.prefill += int(x.shape[0] * x.shape[1]) if x.shape[1] > 1 else 0


def data_half(args: argparse.Namespace) -> dict:
    """One tree's run (in a subprocess, this tree's salmonn_o1 on PYTHONPATH): the four stages, timed."""
    from salmonn_o1.data.synthetic.pdpo_questions import avr_synth_questions
    from salmonn_o1.pdpo.label import run_label
    from salmonn_o1.pdpo.pairing import run_pairs
    from salmonn_o1.pdpo.questions import PDPOQuestion
    from salmonn_o1.pdpo.rollout import run_rollout
    from salmonn_o1.pdpo.select import run_select
    from salmonn_o1.train.recipe import PDPOSettings

    torch.set_num_threads(args.ab_threads)
    model, processor = load_model_and_processor(str(MINI), device="cpu")
    pipeline = SalmonnO1Pipeline(model, processor)
    start = yaml.safe_load(RECIPE.read_text())["pdpo"]["questions"].get("start", 0)
    questions = [PDPOQuestion.from_dict(q) for q in avr_synth_questions(processor, "train", args.ab_questions, start)]
    names = {f.name for f in dataclasses.fields(PDPOSettings)}
    chosen = {} if args.ab_batch_size is None else {"batch_size": args.ab_batch_size}  # the old code has none
    settings = PDPOSettings(**{k: v for k, v in recipe_settings().items() if k in names}, **chosen,
                            seed=args.seed, model=str(MINI))
    stages, summaries = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "run"
        runners = {"rollout": lambda: run_rollout(folder, pipeline, questions, settings, progress=False),
                   "select": lambda: run_select(folder, pipeline, settings, progress=False),
                   "label": lambda: run_label(folder, pipeline, settings, progress=False),
                   "pairs": lambda: run_pairs(folder, pipeline, settings, progress=False)}
        for stage in STAGES:
            forwards = _Forwards(model)
            started = time.perf_counter()
            try:
                summaries[stage] = runners[stage]()
            finally:
                forwards.handle.remove()
            cost = summaries["pairs"]["cost_by_stage"][stage] if stage == "pairs" else summaries[stage]["cost"]
            stages[stage] = {"seconds": round(time.perf_counter() - started, 2),
                             "generated_tokens": cost["generated_tokens"], "forward_passes": forwards.passes,
                             "forward_positions": forwards.positions, "prefill_positions": forwards.prefill}
        stages["data half"] = {k: round(sum(stages[s][k] for s in STAGES), 2) for k in stages["rollout"]}
        check = None if args.no_batch_check else batch_check(folder, pipeline, settings, run_label)
    rollout, label, pairs = summaries["rollout"], summaries["label"], summaries["pairs"]
    kept = max(rollout["kept"], 1)
    return {"tree": args.worker, "stages": stages, "batch_check": check, "statistics": {
        "path_accuracy": _round(rollout["path_accuracy"]), "kept_questions": rollout["kept"],
        "steps_valued": label["steps"], "with_alternative": label["with_alternative"],
        "mean_value_original": _round(label["mean_value_original"]),
        "mean_value_alternative": _round(label["mean_value_alternative"]),
        "tie_rate": _round(label["ties"] / label["with_alternative"]) if label["with_alternative"] else None,
        "pairs_per_kept_question": round(pairs["pairs"] / kept, 2),
        "step_pairs_per_kept_question": round(pairs["step_pairs"] / kept, 2)}}


def batch_check(folder: Path, pipeline, settings, run_label) -> dict:
    """The label stage again at batch size 1 over the same select.jsonl: records equal (cost aside)?"""
    one = folder.parent / "batch1"
    one.mkdir()
    for stage in ("rollout", "select"):
        for suffix in (".jsonl", "_settings.json", "_summary.json"):
            shutil.copy(folder / f"{stage}{suffix}", one / f"{stage}{suffix}")
    started = time.perf_counter()
    run_label(one, pipeline, dataclasses.replace(settings, batch_size=1), progress=False)
    seconds = time.perf_counter() - started

    def records(path: Path) -> list[dict]:
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        return [{k: v for k, v in r.items() if k != "cost"} for r in rows]

    a, b = records(folder / "label.jsonl"), records(one / "label.jsonl")
    return {"batch_size": settings.batch_size, "identical": a == b, "questions": len(a),
            "differing_questions": sum(x != y for x, y in zip(a, b)) + abs(len(a) - len(b)),
            "seconds_batch_size_1": round(seconds, 2)}


def _round(value):
    return None if value is None else round(value, 4)


if __name__ == "__main__":
    main()
