"""docs/results-grpo.md, generated: reasoning SFT vs pDPO (contrastive) vs GRPO on test and dev.

    python -m salmonn_o1_mini.grpo_report \\
        --variant "reasoning SFT=/work/runs/mini-lookup-final" \\
        --variant "SFT + pDPO=src/salmonn_o1/assets/mini" \\
        --variant "SFT + GRPO=runs/mini-grpo/final" \\
        --cost "SFT + pDPO=tokens:1724351,minutes:56.6,note:..." --grpo-run "SFT + GRPO=runs/mini-grpo" \\
        --out docs/results-grpo.md

Every variant answers the first --n items of each split (two-turn reasoning, greedy, as
`salmonn_o1_mini.results` scores them); predictions are cached per split and variant under
--work (append-and-resume) with the seconds they took, so a rerun only scores and a variant can
be predicted early (`--predict-only`) while another still trains. The report has, per split,
accuracy per family with 95% Wilson intervals, paired tests (exact McNemar, paired bootstrap)
of each method against the first variant (the SFT baseline) and between the last two, and a
cost table: tokens generated while training and training wall time, read from a GRPO run's
metrics.jsonl or given with --cost for runs whose folders are gone (pDPO's are documented in
docs/results.md and src/salmonn_o1_mini/docs/notebook.md).
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
from pathlib import Path

from salmonn_o1_mini.results import Variant, accuracy_section, paired_section


def predict_timed(variant: Variant, split: str, n: int, work: Path, batch_size: int) -> Path:
    """The variant's cached predictions for `split`, generating what is missing; adds the seconds
    spent to `<slug>.timing.json` beside them (summed over resumed runs)."""
    from salmonn_o1.inference import SalmonnO1Pipeline
    from salmonn_o1_mini.synth_predict import done_ids, predict_synthetic, synth_items

    cache = work / split / f"{variant.slug}.jsonl"
    timing = cache.with_suffix(".timing.json")
    wanted = {item.id for item in synth_items(split, n)}
    if wanted <= done_ids(cache):
        return cache
    started = time.perf_counter()
    pipe = SalmonnO1Pipeline.from_pretrained(variant.model, device="cpu", dtype="float32")
    before = len(done_ids(cache))
    predict_synthetic(pipe, split, n, cache, reasoning=variant.reasoning, batch_size=batch_size)
    spent = time.perf_counter() - started
    record = json.loads(timing.read_text()) if timing.exists() else {"seconds": 0.0, "items": 0}
    record = {"seconds": record["seconds"] + spent, "items": record["items"] + len(done_ids(cache)) - before,
              "model": variant.model}
    timing.write_text(json.dumps(record))
    return cache


def inference_cost(path: Path) -> tuple[str, str]:
    """(seconds per 1,000 items, mean reasoning tokens) of a prediction cache."""
    timing = path.with_suffix(".timing.json")
    rate = "-"
    if timing.exists():
        record = json.loads(timing.read_text())
        if record["items"]:
            rate = f"{1000 * record['seconds'] / record['items']:.0f}"
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    # a prediction line carries its extras at the top level (`Prediction.to_dict`)
    tokens = [r.get("reasoning_tokens", r.get("extras", {}).get("reasoning_tokens", 0)) for r in records]
    return rate, f"{sum(tokens) / max(len(tokens), 1):.0f}"


def grpo_run_cost(run_dir: Path, upto: int | None = None) -> dict:
    """Tokens generated and training seconds of a GRPO run (up to step `upto`: a checkpoint's model),
    from its metrics.jsonl."""
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    records = [r for r in records if upto is None or r["step"] <= upto]
    if not records:
        return {"tokens": 0, "minutes": 0.0, "steps": 0, "note": "no steps logged"}
    last = records[-1]
    finished = upto is None and (run_dir / "final" / "config.json").exists()
    return {"tokens": int(last.get("generated_tokens_total", 0)),
            "minutes": sum(r.get("step_s", 0.0) for r in records) / 60, "steps": last["step"],
            "note": f"{last['step']} steps, 1 CPU thread{'' if finished else ' (not the finished run)'}; "
                    f"final mean reward {last.get('reward', float('nan')):.3f}"}


def parse_cost(text: str) -> tuple[str, dict]:
    """`NAME=tokens:N,minutes:M,note:free text` (the note last: it may hold commas)."""
    name, _, rest = text.partition("=")
    fields: dict = {}
    head, _, note = rest.partition("note:")
    for part in filter(None, (p.strip() for p in head.split(","))):
        key, _, value = part.partition(":")
        fields[key] = float(value)
    fields["note"] = note.strip()
    return name, fields


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", action="append", required=True,
                        help="NAME=MODEL_DIR (two-turn reasoning); the first is the baseline")
    parser.add_argument("--split", action="append", default=None, help="test and dev unless given")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--work", default="runs/results-grpo", help="prediction cache (append-and-resume)")
    parser.add_argument("--grpo-run", action="append", default=[],
                        help="NAME=RUN_DIR[@STEP]: a GRPO run's cost (up to STEP, for a checkpoint's model)")
    parser.add_argument("--cost", action="append", default=[], help="NAME=tokens:N,minutes:M,note:TEXT")
    parser.add_argument("--predict-only", action="store_true", help="fill the prediction caches, write nothing")
    parser.add_argument("--out", default="docs/results-grpo.md")
    args = parser.parse_args(argv)
    from salmonn_o1_mini.synth_predict import synth_items

    variants = [Variant.parse(v if v.endswith((":reasoning", ":direct")) else f"{v}:reasoning")
                for v in args.variant]
    splits = args.split or ["test", "dev"]
    work = Path(args.work)
    started = time.time()
    paths = {split: {v.name: predict_timed(v, split, args.n, work, args.batch_size) for v in variants}
             for split in splits}
    if args.predict_only:
        return
    baseline = variants[0].name
    command = "python -m salmonn_o1_mini.grpo_report " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    lines = ["# Results: reasoning SFT vs pDPO vs GRPO (miniature model, AVR-Synth)", "",
             f"Generated by `{command}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} "
             f"({platform.platform()}, CPU) in {time.time() - started:.0f} s (predictions cached in "
             f"`{args.work}`). Do not edit by hand: rerun the command.", ""]
    report: dict = {"variants": [v.__dict__ for v in variants], "n": args.n, "splits": {}}
    for split in splits:
        items = synth_items(split, args.n)
        acc_lines, acc = accuracy_section(items, variants, paths[split])
        paired_lines, paired = paired_section(items, variants, baseline, acc["scores"])
        lines += [f"## {split}: accuracy per family (%, 95% Wilson interval)", "", *acc_lines, "",
                  f"## {split}: paired tests", "", *paired_lines, ""]
        head_to_head = {}
        if len(variants) >= 3:
            last_two = variants[-2:]
            pair_lines, head_to_head = paired_section(items, last_two, last_two[0].name, acc["scores"])
            lines += [f"Head to head: **{last_two[1].name}** paired against **{last_two[0].name}**.", "",
                      *pair_lines[2:], ""]
        costs = [(v.name, *inference_cost(paths[split][v.name])) for v in variants]
        lines += [f"Inference on {split} (greedy, batch {args.batch_size}, 1 thread; seconds are wall time, "
                  "on a machine other jobs may share): " + "; ".join(
                      f"{name} {rate} s per 1,000 items, {tokens} reasoning tokens per item"
                      for name, rate, tokens in costs), ""]
        report["splits"][split] = {"accuracy": acc["accuracy"], "paired": paired, "head_to_head": head_to_head}
    training = dict(parse_cost(c) for c in args.cost)
    for spec in args.grpo_run:
        name, _, run = spec.partition("=")
        run, _, upto = run.partition("@")
        training[name] = grpo_run_cost(Path(run), int(upto) if upto else None)
    if training:
        lines += ["## Training cost", "",
                  "| method | tokens generated while training | training wall time (min) | notes |",
                  "|---|---:|---:|---|"]
        for name, cost in training.items():
            lines.append(f"| {name} | {int(cost.get('tokens', 0)):,} | {cost.get('minutes', 0):.1f} | "
                         f"{cost.get('note', '')} |")
        lines.append("")
    lines += ["## Variants", "", *[f"- **{v.name}**: `{v.model}`, two-turn reasoning, greedy" for v in variants], ""]
    report["training"] = training
    out = Path(args.out)
    (out.parent / "results").mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    (out.parent / "results" / "results-grpo.json").write_text(json.dumps(report, indent=2, default=str))
    print(out.read_text())


if __name__ == "__main__":
    main()
