"""docs/results.md, generated: the miniature model's variants on a held-out AVR-Synth test split.

    .venv/bin/python -m salmonn_o1_mini.results \\
        --variant "reasoning SFT=runs/mini-sft/final:reasoning" \\
        --variant "direct (same SFT model)=runs/mini-sft/final:direct" \\
        --baseline "reasoning SFT" --n 1000 --out docs/results.md

Each variant's predictions are cached under --work (append-and-resume), so a
rerun only scores. Accuracy per category with 95% Wilson intervals, paired
exact McNemar tests and bootstrap intervals against each --baseline (overall,
the cross-modal families, and with --family-pairs every family), glitch
detection as detection (precision, recall, F1 with YES = manipulated as the
positive class, and accuracy per kind of planted glitch), the chance level per
category, the pDPO cost table from pDPO stage summaries, and training curves
from the runs' metrics logs. `--split dev --out docs/dev/results.md` writes the
dev split's report (its JSON beside it, named after it).
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from salmonn_o1.data.schema import Item, read_predictions
from salmonn_o1.eval.metrics import Accuracy, accuracy, detection_metrics, score_predictions
from salmonn_o1.eval.paired import compare

CROSS_MODAL = ("cross_modal_alignment", "cross_modal_counting", "temporal_order")
GLITCH = "glitch_detection"
GLITCH_KINDS = (None, "teleport", "colour_change", "early_sound")


@dataclass
class Variant:
    name: str
    model: str
    reasoning: bool

    @classmethod
    def parse(cls, text: str) -> Variant:
        name, _, rest = text.partition("=")
        model, _, mode = rest.rpartition(":")
        if not name or not model or mode not in ("reasoning", "direct"):
            raise SystemExit(f"--variant {text!r}: expected NAME=MODEL_DIR:reasoning|direct")
        return cls(name, model, mode == "reasoning")

    @property
    def slug(self) -> str:
        return "".join(c if c.isalnum() else "-" for c in self.name.lower()).strip("-")


def chance(item: Item) -> float:
    return 1 / len(item.options) if item.options else 0.5


def cell(acc: Accuracy) -> str:
    return f"{100 * acc.value:.1f} [{100 * acc.low:.1f}, {100 * acc.high:.1f}]"


def predict(variants: list[Variant], split: str, items: list[Item], work: Path, batch_size: int,
            device: str = "auto", dtype: str = "auto") -> tuple[dict[str, Path], int]:
    """Each variant's prediction file for `items` (the first of `split`), and how many of the
    predictions were already in the cache (the report says so: its scoring time covers only what
    was generated)."""
    from salmonn_o1.inference import SalmonnO1Pipeline
    from salmonn_o1_mini.synth_predict import done_ids, predict_synthetic

    wanted = {item.id for item in items}
    paths, cached = {}, 0
    for variant in variants:
        cache = work / f"{variant.slug}.jsonl"
        cached += len(done_ids(cache) & wanted)
        pipe = SalmonnO1Pipeline.from_pretrained(variant.model, device=device, dtype=dtype)
        paths[variant.name] = predict_synthetic(pipe, split, len(items), cache, reasoning=variant.reasoning,
                                                batch_size=batch_size)
    return paths, cached


def accuracy_section(items: list[Item], variants: list[Variant], paths: dict[str, Path]) -> tuple[list[str], dict]:
    scores = {v.name: score_predictions(items, read_predictions(paths[v.name])).items for v in variants}
    groups = sorted({item.category for item in items})
    lines = ["| category | n | chance | " + " | ".join(v.name for v in variants) + " |",
             "|---|---:|---:|" + "---|" * len(variants)]
    table: dict = {}
    for group in [*groups, "overall"]:
        members = [i for i, item in enumerate(items) if group in ("overall", item.category)]
        level = sum(chance(items[i]) for i in members) / len(members)
        cells = []
        for v in variants:
            acc = accuracy([scores[v.name][i] for i in members])
            table.setdefault(v.name, {})[group] = {"correct": acc.correct, "total": acc.total,
                                                  "accuracy": acc.value, "low": acc.low, "high": acc.high}
            cells.append(cell(acc))
        label = f"**{group}**" if group == "overall" else group
        lines.append(f"| {label} | {len(members)} | {100 * level:.1f} | " + " | ".join(cells) + " |")
    return lines, {"accuracy": table, "scores": scores}


def glitch_section(items: list[Item], variants: list[Variant], scores: dict) -> tuple[list[str], dict]:
    """Glitch detection as a detector: YES (manipulated) is the positive class, and accuracy per
    kind of planted glitch ("none" are the unmanipulated clips), so a model that always says one
    word shows up as such."""
    members = [i for i, item in enumerate(items) if item.category == GLITCH]
    if not members:
        return [], {}
    kinds = {kind: [i for i in members if items[i].extras.get("glitch") == kind] for kind in GLITCH_KINDS}
    names = [kind or "none" for kind in GLITCH_KINDS]
    lines = ["YES (manipulated) is the positive class; an unreadable answer counts as NO. Accuracy per kind of "
             "planted glitch (%; n in brackets).", "",
             "| variant | precision | recall | F1 | " + " | ".join(f"{k} ({len(kinds[g])})"
                                                         for k, g in zip(names, GLITCH_KINDS)) + " |",
             "|---|---:|---:|---:|" + "---:|" * len(names)]
    table: dict = {}
    for v in variants:
        scored = [scores[v.name][i] for i in members]
        found = detection_metrics([s.gold for s in scored], [s.predicted for s in scored])
        per_kind = {name: accuracy([scores[v.name][i] for i in kinds[kind]]).value if kinds[kind] else None
                    for name, kind in zip(names, GLITCH_KINDS)}
        table[v.name] = {**found.__dict__, "accuracy_by_kind": per_kind}
        lines.append(f"| {v.name} | {found.precision:.2f} | {found.recall:.2f} | {found.f1:.2f} | "
                     + " | ".join("-" if per_kind[n] is None else f"{100 * per_kind[n]:.1f}" for n in names) + " |")
    return lines, table


def paired_section(items: list[Item], variants: list[Variant], baseline: str, scores: dict,
                   families: bool = False) -> tuple[list[str], dict]:
    lines = [f"Paired against **{baseline}** on the same items: accuracy difference (other - baseline) with a "
             "95% paired-bootstrap interval, and the exact McNemar p-value.", "",
             "| variant | subset | n | difference (points) | 95% CI | only baseline right | only variant right "
             "| McNemar p |", "|---|---|---:|---:|---|---:|---:|---:|"]
    results: dict = {}
    base = scores[baseline]
    subsets = {"overall": lambda item: True,
               "cross-modal families": lambda item: item.category in CROSS_MODAL}
    if families:
        for family in sorted({item.category for item in items}):
            subsets[family] = lambda item, family=family: item.category == family
    for v in variants:
        if v.name == baseline:
            continue
        for subset, keep in subsets.items():
            idx = [i for i, item in enumerate(items) if keep(item)]
            result = compare([base[i].correct for i in idx], [scores[v.name][i].correct for i in idx])
            results.setdefault(v.name, {})[subset] = result.__dict__
            lines.append(f"| {v.name} | {subset} | {result.n} | {100 * result.diff:+.1f} | "
                         f"[{100 * result.diff_low:+.1f}, {100 * result.diff_high:+.1f}] | {result.only_a} | "
                         f"{result.only_b} | {result.p_value:.3g} |")
    return lines, results


def stage_json(run_dir: Path, stage: str, kind: str = "summary") -> dict:
    """A pDPO run's `stages/<stage>_<kind>.json` (kind: summary or settings); {} where missing."""
    path = run_dir / "stages" / f"{stage}_{kind}.json"
    return json.loads(path.read_text()) if path.exists() else {}


def cost_section(pdpo_runs: list[str], accuracies: dict[str, Accuracy], baseline: str) -> tuple[list[str], dict]:
    """Per step-selection strategy: what selecting and valuing steps cost, and what it bought.

    The strategies share their rollouts, so the rollout cost is shown once and the
    comparison is select + label (the KL pass and the value rollouts from each step).
    """
    if not pdpo_runs:
        return ["No pDPO runs were given (--pdpo-run NAME=RUN_DIR)."], {}
    rows: dict[str, dict] = {}
    for spec in pdpo_runs:
        name, _, run = spec.partition("=")
        run_dir = Path(run)
        select, pairs = stage_json(run_dir, "select"), stage_json(run_dir, "pairs")
        by_stage = pairs.get("cost_by_stage", {})
        tokens = sum(by_stage.get(s, {}).get("generated_tokens", 0) for s in ("select", "label"))
        passes = sum(by_stage.get(s, {}).get("forward_passes", 0) for s in ("select", "label"))
        acc = accuracies.get(name)
        base = accuracies.get(baseline)
        rows[name] = {
            "run": str(run_dir), "selection": stage_json(run_dir, "select", "settings").get("selection"),
            "steps": select.get("steps"), "selected_steps": select.get("selected_steps"),
            "rollout_tokens": by_stage.get("rollout", {}).get("generated_tokens"),
            "select_label_tokens": tokens, "select_label_forward_passes": passes,
            "step_pairs": pairs.get("step_pairs"), "pairs": pairs.get("pairs"),
            "accuracy": acc.value if acc else None,
            "gain_points": 100 * (acc.value - base.value) if acc and base else None,
        }
    reference = next((r["select_label_tokens"] for r in rows.values()
                      if r["selection"] == "all" and r["select_label_tokens"]), None)
    lines = ["| selection | steps valued / all | tokens generated (select + label) | vs all-steps | "
             "forward passes | step pairs | accuracy % | gain over " + baseline + " (points) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in rows.items():
        ratio = f"{r['select_label_tokens'] / reference:.2f}x" if reference else "-"
        acc_text = f"{100 * r['accuracy']:.1f}" if r["accuracy"] is not None else "-"
        gain = f"{r['gain_points']:+.1f}" if r["gain_points"] is not None else "-"
        lines.append(f"| {name} | {r['selected_steps']} / {r['steps']} | {r['select_label_tokens']:,} | {ratio} | "
                     f"{r['select_label_forward_passes']:,} | {r['step_pairs']} | {acc_text} | {gain} |")
    rollout = next(iter(rows.values()))["rollout_tokens"]
    lines += ["", f"Shared rollouts (not in the table): {rollout} generated tokens."]
    return lines, rows


def plot_curves(runs: list[str], out_dir: Path) -> list[Path]:
    """Loss curves (and dev accuracy when logged) of each training run, one PNG per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for run in runs:
        run_dir = Path(run)
        metrics = run_dir / "metrics.jsonl"
        if not metrics.exists():
            continue
        records = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
        loss_key = "loss" if any("loss" in r for r in records) else next(iter(records[0]), "loss")
        fig, ax = plt.subplots(figsize=(6, 3.2))
        ax.plot([r["step"] for r in records if loss_key in r], [r[loss_key] for r in records if loss_key in r],
                lw=0.8, label="train loss")
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.set_yscale("log")
        evals = run_dir / "eval.jsonl"
        if evals.exists():
            points = [json.loads(line) for line in evals.read_text().splitlines() if line.strip()]
            twin = ax.twinx()
            twin.plot([p["step"] for p in points], [p.get("dev_accuracy", float("nan")) for p in points], "o-",
                      color="tab:orange", label="dev accuracy")
            twin.set_ylabel("dev accuracy")
            twin.set_ylim(0, 1)
        ax.set_title(run_dir.name)
        fig.tight_layout()
        path = out_dir / f"curve-{run_dir.name}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def layout(model_dir: str) -> str:
    """", interleave_mode release" for a model whose config lays audio and frames out as the release
    does (docs/released-model.md); empty for the time-aligned default or a model without a config."""
    try:
        mode = json.loads((Path(model_dir) / "config.json").read_text()).get("interleave_mode", "aligned")
    except (OSError, ValueError):
        return ""
    return f", interleave_mode {mode}" if mode != "aligned" else ""


def results_json(report: Path) -> Path:
    """Where the machine-readable results of the report `report` go (beside its PNGs), named after
    it: docs/results.md -> docs/results/results.json, docs/dev/results.md -> docs/dev/results/results.json,
    docs/x-dev.md -> docs/results/x-dev.json."""
    return report.parent / "results" / f"{report.stem}.json"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", action="append", required=True, help="NAME=MODEL_DIR:reasoning|direct")
    parser.add_argument("--baseline", action="append", default=[],
                        help="variant name the others are paired against (repeatable; default: the first)")
    parser.add_argument("--family-pairs", action="store_true", help="paired tests per family too")
    parser.add_argument("--split", default="test")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"],
                        help="auto: bf16 on a GPU; float32 there scores as on a CPU")
    parser.add_argument("--work", default="runs/results", help="prediction cache (append-and-resume)")
    parser.add_argument("--pdpo-run", action="append", default=[],
                        help="NAME=RUN_DIR: a pDPO run (its stages/) whose model is the variant NAME")
    parser.add_argument("--run", action="append", default=[], help="training run dir for curves")
    parser.add_argument("--note", action="append", default=[],
                        help="a sentence for the report's Notes section (a finding the tables show; repeatable)")
    parser.add_argument("--out", default="docs/results.md")
    args = parser.parse_args(argv)
    from salmonn_o1_mini.synth_predict import synth_items

    variants = [Variant.parse(v) for v in args.variant]
    baselines = args.baseline or [variants[0].name]
    unknown = [b for b in baselines if b not in {v.name for v in variants}]
    if unknown:
        raise SystemExit(f"--baseline {unknown[0]!r} is not a --variant name")
    baseline = baselines[0]
    out = Path(args.out)
    assets = results_json(out).parent
    assets.mkdir(parents=True, exist_ok=True)
    started = time.time()
    items = synth_items(args.split, args.n)
    paths, cached = predict(variants, args.split, items, Path(args.work), args.batch_size, args.device, args.dtype)
    acc_lines, acc = accuracy_section(items, variants, paths)
    paired_lines, paired = [], {}
    for name in baselines:
        lines_b, paired[name] = paired_section(items, variants, name, acc["scores"], args.family_pairs)
        paired_lines += [*lines_b, ""]
    glitch_lines, glitch = glitch_section(items, variants, acc["scores"])
    overall = {name: accuracy(scored) for name, scored in acc["scores"].items()}
    cost_lines, cost = cost_section(args.pdpo_run, overall, baseline)
    curves = plot_curves(args.run, assets)
    command = "python -m salmonn_o1_mini.results " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    lines = ["# Results: the miniature model on AVR-Synth", "",
             f"Generated by `{command}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} "
             f"({platform.platform()}, CPU); {args.n} held-out `{args.split}` items rendered in memory "
             f"(same content as `salmonn-o1 synth --split {args.split}`); scoring took "
             f"{time.time() - started:.0f} s including generation ({cached} of the "
             f"{args.n * len(variants)} predictions came from the cache in `{args.work}`). "
             "Do not edit by hand: rerun the command.", "",
             "## Accuracy per category (%, 95% Wilson interval)", "", *acc_lines, "",
             "## Paired tests", "", *paired_lines]
    if glitch_lines:
        lines += ["## Glitch detection", "", *glitch_lines, ""]
    lines += ["## pDPO cost", "", *cost_lines, ""]
    if curves:
        lines += ["## Training curves", ""] + [f"![{p.stem}](results/{p.name})" for p in curves] + [""]
    variant_lines = [f"- **{v.name}**: `{v.model}`, {'two-turn reasoning' if v.reasoning else 'direct answer'}"
                     f"{layout(v.model)}" for v in variants]
    lines += ["## Variants", "", *variant_lines, ""]
    if args.note:
        lines += ["## Notes", "", *(f"- {note}" for note in args.note), ""]
    if (out.parent / "results-grpo.md").exists():  # issue 28's comparison, generated by grpo_report
        lines += ["GRPO beside pDPO at the same generation budget, from the same SFT model (named there): "
                  "[results-grpo.md](results-grpo.md).", ""]
    out.write_text("\n".join(lines))
    results_json(out).write_text(json.dumps(
        {"variants": [v.__dict__ for v in variants], "n": args.n, "split": args.split,
         "accuracy": acc["accuracy"], "paired": paired[baseline], "paired_by_baseline": paired,
         "glitch_detection": glitch, "pdpo_cost": cost}, indent=2, default=str))
    print(out.read_text())


if __name__ == "__main__":
    main()
