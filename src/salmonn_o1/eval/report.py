"""The report layer: runs the pure scoring functions over one (or two)
prediction files and renders the result as markdown, JSON and a bar chart."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from salmonn_o1.data.schema import Item, Prediction
from salmonn_o1.eval.metrics import (
    Accuracy,
    Detection,
    ItemScore,
    Mode,
    accuracy,
    accuracy_by,
    detection_metrics,
    score_predictions,
)
from salmonn_o1.eval.paired import PairedResult, compare

MAX_LISTED = 20  # unparsed/missing ids shown in markdown; JSON lists them all


@dataclass
class EvalReport:
    mode: str
    by: str
    label: str
    overall: Accuracy
    groups: dict[str, Accuracy]
    scores: list[ItemScore]
    unknown_ids: list[str]
    detection: Detection | None = None
    unlabelled_ids: list[str] = field(default_factory=list)  # items without a gold answer, not scored
    other_label: str | None = None
    other_overall: Accuracy | None = None
    other_groups: dict[str, Accuracy] = field(default_factory=dict)
    comparison: PairedResult | None = None
    group_comparisons: dict[str, PairedResult] = field(default_factory=dict)

    def with_status(self, status: str) -> list[ItemScore]:
        return [s for s in self.scores if s.status == status]


def evaluate(
    items: list[Item],
    predictions: dict[str, Prediction],
    mode: Mode = "answer",
    by: str = "category",
    label: str = "predictions",
    other: dict[str, Prediction] | None = None,
    other_label: str = "other",
    seed: int = 0,
    bootstrap_samples: int = 10_000,
) -> EvalReport:
    """Score `predictions` (and optionally compare `other` against it, paired by item)."""
    scored = score_predictions(items, predictions, mode, by)
    labelled = [item for item in items if item.labelled]
    yes_no = [s for s, item in zip(scored.items, labelled) if item.kind == "yes_no"]
    detection = detection_metrics([s.gold for s in yes_no], [s.predicted for s in yes_no]) if yes_no else None
    report = EvalReport(
        mode=mode,
        by=by,
        label=label,
        overall=accuracy(scored.items),
        groups=accuracy_by(scored.items),
        scores=scored.items,
        unknown_ids=scored.unknown_ids,
        detection=detection,
        unlabelled_ids=scored.unlabelled_ids,
    )
    if other is not None:
        other_scored = score_predictions(items, other, mode, by).items
        report.other_label = other_label
        report.other_overall = accuracy(other_scored)
        report.other_groups = accuracy_by(other_scored)
        report.comparison = compare(
            [s.correct for s in scored.items], [s.correct for s in other_scored], bootstrap_samples, seed
        )
        for group in report.groups:
            mine = [s.correct for s in scored.items if s.group == group]
            theirs = [s.correct for s in other_scored if s.group == group]
            report.group_comparisons[group] = compare(mine, theirs, bootstrap_samples, seed)
    return report


def _pct(value: float) -> str:
    return f"{100 * value:.1f}"


def _acc_cell(acc: Accuracy) -> str:
    return f"{_pct(acc.value)} [{_pct(acc.low)}, {_pct(acc.high)}]"


def to_markdown(report: EvalReport) -> str:
    """A self-contained markdown report: the table, detection metrics, the paired test, problems."""
    lines = [f"# Evaluation: {report.label} (mode: {report.mode})", ""]
    header = f"| {report.by} | n | {report.label} acc % [95% CI] |"
    rule = "|---|---:|---|"
    if report.other_overall is not None:
        header += f" {report.other_label} acc % [95% CI] | diff (pp) | McNemar p |"
        rule += "---|---:|---:|"
    lines += [header, rule]
    rows = list(report.groups.items()) + [("**overall**", report.overall)]
    for name, acc in rows:
        row = f"| {name} | {acc.total} | {_acc_cell(acc)} |"
        if report.other_overall is not None:
            is_overall = name == "**overall**"
            other = report.other_overall if is_overall else report.other_groups[name]
            paired = report.comparison if is_overall else report.group_comparisons[name]
            assert paired is not None
            row += f" {_acc_cell(other)} | {100 * paired.diff:+.1f} | {paired.p_value:.3g} |"
        lines.append(row)
    if report.detection is not None:
        d = report.detection
        lines += [
            "",
            "## YES/NO detection (positive class: YES = manipulated / AI-generated)",
            "",
            "| precision | recall | F1 | TP | FP | FN | TN |",
            "|---:|---:|---:|---:|---:|---:|---:|",
            f"| {_pct(d.precision)} | {_pct(d.recall)} | {_pct(d.f1)} | {d.tp} | {d.fp} | {d.fn} | {d.tn} |",
        ]
    if report.comparison is not None:
        c = report.comparison
        lines += [
            "",
            f"## Paired comparison: {report.other_label} vs {report.label}",
            "",
            f"- items: {c.n}; both right {c.both}, only {report.label} {c.only_a}, "
            f"only {report.other_label} {c.only_b}, neither {c.neither}",
            f"- accuracy difference ({report.other_label} - {report.label}): {100 * c.diff:+.1f} points, "
            f"95% paired-bootstrap CI [{100 * c.diff_low:+.1f}, {100 * c.diff_high:+.1f}]",
            f"- exact McNemar p = {c.p_value:.4g}",
        ]
    problems = [
        ("Unparseable answers (counted wrong)", report.with_status("unparsed")),
        ("Missing predictions (counted wrong)", report.with_status("missing")),
        ("Failed items (prediction has an error; counted wrong)", report.with_status("error")),
    ]
    for title, listed in problems:
        if not listed:
            continue
        lines += ["", f"## {title}: {len(listed)}", ""]
        for score in listed[:MAX_LISTED]:
            snippet = " ".join((score.text or "").split())[:120]
            lines.append(f"- `{score.id}`" + (f": {snippet}" if snippet else ""))
        if len(listed) > MAX_LISTED:
            lines.append(f"- ... and {len(listed) - MAX_LISTED} more")
    if report.unlabelled_ids:
        lines += ["", f"## Unlabelled items (no gold answer; not scored): {len(report.unlabelled_ids)}", ""]
        lines += [f"- `{iid}`" for iid in report.unlabelled_ids[:MAX_LISTED]]
        if len(report.unlabelled_ids) > MAX_LISTED:
            lines.append(f"- ... and {len(report.unlabelled_ids) - MAX_LISTED} more")
    if report.unknown_ids:
        lines += ["", f"## Prediction ids not in the items file: {len(report.unknown_ids)}", ""]
        lines += [f"- `{pid}`" for pid in report.unknown_ids[:MAX_LISTED]]
        if len(report.unknown_ids) > MAX_LISTED:
            lines.append(f"- ... and {len(report.unknown_ids) - MAX_LISTED} more")
    return "\n".join(lines) + "\n"


def to_json(report: EvalReport) -> dict[str, Any]:
    """Everything in the report as plain data (accuracies as fractions)."""

    def acc(a: Accuracy) -> dict[str, Any]:
        return {"accuracy": a.value, "correct": a.correct, "total": a.total, "ci95": [a.low, a.high]}

    data: dict[str, Any] = {
        "label": report.label,
        "mode": report.mode,
        "by": report.by,
        "overall": acc(report.overall),
        "groups": {name: acc(a) for name, a in report.groups.items()},
        "unparsed": [s.id for s in report.with_status("unparsed")],
        "missing": [s.id for s in report.with_status("missing")],
        "errors": [s.id for s in report.with_status("error")],
        "unknown_ids": report.unknown_ids,
        "unlabelled": report.unlabelled_ids,
        "items": [
            {"id": s.id, "group": s.group, "gold": s.gold, "predicted": s.predicted, "correct": s.correct, "status": s.status}
            for s in report.scores
        ],
    }
    if report.detection is not None:
        data["detection"] = asdict(report.detection)
    if report.comparison is not None and report.other_overall is not None:
        data["other"] = {
            "label": report.other_label,
            "overall": acc(report.other_overall),
            "groups": {name: acc(a) for name, a in report.other_groups.items()},
        }
        data["comparison"] = asdict(report.comparison)
        data["group_comparisons"] = {name: asdict(c) for name, c in report.group_comparisons.items()}
    return data


def plot_accuracy(report: EvalReport, path: str | Path) -> Path:
    """Bar chart of per-group accuracy with Wilson error bars (two bars per group when comparing)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = list(report.groups) + ["overall"]
    series = [(report.label, [*report.groups.values(), report.overall])]
    if report.other_overall is not None:
        series.append((report.other_label or "other", [*(report.other_groups[n] for n in report.groups), report.other_overall]))
    x = np.arange(len(names))
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(names) + 2), 4.0))
    for i, (label, accs) in enumerate(series):
        values = np.array([100 * a.value for a in accs])
        errors = np.array([[100 * (a.value - a.low) for a in accs], [100 * (a.high - a.value) for a in accs]])
        errors = np.nan_to_num(np.clip(errors, 0.0, None))  # matplotlib rejects negative (or float-noise) bars
        values = np.nan_to_num(values)  # an empty group has no accuracy
        ax.bar(x + (i - (len(series) - 1) / 2) * width, values, width, yerr=errors, capsize=3, label=label)
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=30, ha="right")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(f"accuracy by {report.by} (mode: {report.mode}; 95% Wilson intervals)")
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
