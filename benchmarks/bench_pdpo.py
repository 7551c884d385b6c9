"""Cost of producing pDPO pairs: contrastive step selection vs all steps vs random steps.

For N AVR-Synth questions the rollout stage runs once (its paths are shared);
then select -> label -> pairs run once per strategy, each in its own folder.
Reported per strategy: steps branched, LLM forward passes and generated tokens
(per stage and in total), pairs made, and pairs per 1k generated tokens.

The model is the tiny random model nudged to write short steps (pdpo.toy):
costs are those of the real procedure, but its step scores carry no meaning,
so this measures cost, not the quality of the selected steps.

Prints a table and writes JSON (default benchmarks/results/bench_pdpo.json).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
import time
from pathlib import Path

import torch

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--questions", type=int, default=8)
    parser.add_argument("--paths", type=int, default=4)
    parser.add_argument("--rollouts", type=int, default=6)
    parser.add_argument("--top-t", type=int, default=3)
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--answer-max-new-tokens", type=int, default=1)
    parser.add_argument("--max-step-tokens", type=int, default=24)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results/bench_pdpo.json")
    args = parser.parse_args()
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
    report = {
        "benchmark": "bench_pdpo", "model": args.model + (" (step-structured toy bias)" if args.model == "tiny" else ""),
        "settings": {**base, "questions": args.questions, "threads": args.threads},
        "machine": {"platform": platform.platform(), "torch": torch.__version__, "device": "cpu"},
        "rollout": rollout, "rollout_seconds": round(rollout_seconds, 2), "strategies": results,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written to {out}")


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


if __name__ == "__main__":
    main()
