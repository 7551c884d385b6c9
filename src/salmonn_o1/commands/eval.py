"""`salmonn-o1 eval`: score a predictions JSONL against an items JSONL."""

from __future__ import annotations

import argparse

from salmonn_o1.data.benchmarks import FORMATS

PLOT_FORMATS = (".png", ".svg", ".pdf")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="score predictions (any model's JSONL) against items: accuracy, CIs, F1, paired test",
        description="Accuracy overall and per group with 95% Wilson intervals, YES/NO detection "
        "precision/recall/F1, and with --compare an exact McNemar test plus a paired bootstrap CI.",
    )
    parser.add_argument("--items", required=True, help="items JSONL (toolkit schema), or a benchmark file with --items-format")
    parser.add_argument(
        "--items-format",
        choices=FORMATS,
        default="items",
        help="read --items with a benchmark loader (ids as the loader assigns them; default: items JSONL)",
    )
    parser.add_argument("--predictions", required=True, help="predictions JSONL: id, reasoning, answer, error")
    parser.add_argument("--by", default="category", help="group by an item field or extras key (default category)")
    parser.add_argument(
        "--mode",
        choices=["answer", "reasoning"],
        default="answer",
        help="score the second-turn 'answer' (falling back to the reasoning's conclusion when it is "
        "unreadable, as infer's 'prediction' does) or the conclusion of the 'reasoning' text",
    )
    parser.add_argument("--out", help="write the report: .md for markdown, .json for JSON")
    parser.add_argument("--plot", help="write a per-group accuracy bar chart (.png, .svg or .pdf)")
    parser.add_argument("--compare", help="a second predictions JSONL to compare against, paired by item")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    parser.add_argument("--bootstrap", type=int, default=10_000, help="bootstrap resamples (default 10000)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json
    import sys
    from pathlib import Path

    from salmonn_o1.data.benchmarks import load_benchmark
    from salmonn_o1.data.schema import read_predictions
    from salmonn_o1.errors import DataError, writing
    from salmonn_o1.eval.report import evaluate, plot_accuracy, to_json, to_markdown

    if args.bootstrap < 1:
        raise DataError(f"--bootstrap must be >= 1, got {args.bootstrap}")
    if args.plot and Path(args.plot).suffix.lower() not in PLOT_FORMATS:
        raise DataError(f"--plot {args.plot}: a chart is written as {', '.join(PLOT_FORMATS)}; "
                        f"not {Path(args.plot).suffix or 'a file without an extension'}")
    items = load_benchmark(args.items, args.items_format)
    if not items:
        raise DataError(f"{args.items}: no items")
    predictions = read_predictions(args.predictions)
    other = read_predictions(args.compare) if args.compare else None
    report = evaluate(
        items,
        predictions,
        mode=args.mode,
        by=args.by,
        label=Path(args.predictions).stem,
        other=other,
        other_label=Path(args.compare).stem if args.compare else "other",
        seed=args.seed,
        bootstrap_samples=args.bootstrap,
    )
    markdown = to_markdown(report)
    print(markdown, end="")
    if report.unknown_ids:
        print(f"warning: {len(report.unknown_ids)} prediction id(s) are not in {args.items} "
              f"(e.g. {report.unknown_ids[0]!r}); they are listed in the report, not scored", file=sys.stderr)
    missing = len(report.with_status("missing"))
    if missing:
        print(f"warning: {missing} of {len(items)} items have no prediction in {args.predictions}; "
              "they count as wrong", file=sys.stderr)
    if args.out:
        out = Path(args.out)
        with writing(out):
            out.parent.mkdir(parents=True, exist_ok=True)
            if out.suffix == ".json":
                out.write_text(json.dumps(to_json(report), indent=2) + "\n", encoding="utf-8")
            else:
                out.write_text(markdown, encoding="utf-8")
        print(f"report written to {out}")
    if args.plot:
        with writing(args.plot):
            print(f"chart written to {plot_accuracy(report, args.plot)}")
    return 0
