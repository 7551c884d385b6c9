"""`salmonn-o1 pdpo rollout|select|label|pairs`: the pDPO data stages, one folder, resumable.

The stage options are generated from `PDPOSettings`, the dataclass of a
recipe's `pdpo:` section: one flag per field (`top_t` -> `--top-t`), with its
type, default, choices and help, so the command and the recipe cannot drift.

Under `accelerate launch` (`accelerate launch --config_file
recipes/accelerate/cpu-2proc.yaml -m salmonn_o1 pdpo rollout ...`) each
process handles its share of the questions and the main process merges the
shards into OUT/<stage>.jsonl (`pdpo.sharding`).
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing

from salmonn_o1.train.recipe import PDPOSettings


def _flag_type(hint: typing.Any) -> type:
    """`int | None` -> int: the type argparse converts a flag's text with."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return next(a for a in typing.get_args(hint) if a is not type(None))
    return hint


def cli_fields(cls: type = PDPOSettings) -> list[dataclasses.Field]:
    """The fields that are stage options (not the training-only ones, nor `model`, which --model gives)."""
    return [f for f in dataclasses.fields(cls) if f.metadata.get("cli", True)]


def add_settings_arguments(parser: argparse.ArgumentParser, cls: type = PDPOSettings) -> None:
    """One flag per stage option of `cls`; a bool field is a switch away from its default."""
    hints = typing.get_type_hints(cls)
    for f in cli_fields(cls):
        flag = f.metadata.get("flag", "--" + f.name.replace("_", "-"))
        help_text = f.metadata.get("help")
        kind = _flag_type(hints[f.name])
        if kind is bool:
            parser.add_argument(flag, dest=f.name, action="store_false" if f.default else "store_true",
                                help=help_text)
        else:
            parser.add_argument(flag, dest=f.name, type=kind, default=f.default, choices=f.metadata.get("choices"),
                                help=help_text if f.default is None else f"{help_text} (default: {f.default})")


def _common(parser: argparse.ArgumentParser) -> None:
    from salmonn_o1.commands.common import add_model_arguments, add_threads_argument

    add_model_arguments(parser)
    add_threads_argument(parser)
    parser.add_argument("--out", required=True, help="stage folder (each stage reads the previous stage's JSONL)")
    add_settings_arguments(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "pdpo", help="process DPO data: rollouts, contrastive step selection, step values, pairs",
        description="Each stage reads OUT/<previous>.jsonl, appends to OUT/<stage>.jsonl (questions already "
        "there are skipped, so re-running resumes) and writes OUT/<stage>_summary.json. Under `accelerate "
        "launch` each process takes its share of the questions into its own OUT/<stage>.shard-RR-of-WW.jsonl, "
        "merged into OUT/<stage>.jsonl when all are done.",
    )
    stages = parser.add_subparsers(dest="stage", required=True)
    helps = {
        "rollout": "sample P paths per question; keep questions answered wrong at least once",
        "select": "score steps by KL(real || perturbed media) and pick the top T (or all / random)",
        "label": "alternative step + N rollouts from each branch at the selected steps",
        "pairs": "step pairs (hard/soft labels) + full-path pairs with reference log-probs",
    }
    for stage, text in helps.items():
        sub = stages.add_parser(stage, help=text, description=text)
        _common(sub)
        if stage == "rollout":
            source = sub.add_mutually_exclusive_group(required=True)
            source.add_argument("--data", help="items JSONL (toolkit schema)")
            source.add_argument("--synthetic-split", choices=["train", "dev", "test"], help="AVR-Synth split")
            sub.add_argument("--n", type=int, default=100, help="synthetic: number of items")
            sub.add_argument("--start", type=int, default=0, help="synthetic: first index")
        sub.set_defaults(func=run)


def settings_from_args(args: argparse.Namespace) -> PDPOSettings:
    """The stage settings the flags give; the model recorded is --model's, the seed 0 unless --seed."""
    settings = PDPOSettings(**{f.name: getattr(args, f.name) for f in cli_fields()})
    return settings.resolved(model=args.model, seed=0)


def questions_from_args(args: argparse.Namespace) -> dict:
    """`pdpo.questions` as a recipe would write it: the items file, or AVR-Synth's question source."""
    if args.data:
        return {"path": args.data}
    from salmonn_o1.components import COMPONENT_KEY
    from salmonn_o1.data.synthetic import pdpo_questions

    return {COMPONENT_KEY: f"{pdpo_questions.__name__}.avr_synth_questions", "split": args.synthetic_split,
            "n": args.n, "start": args.start}


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from salmonn_o1.commands.common import load_pipeline
    from salmonn_o1.errors import ensure_writable_dir
    from salmonn_o1.launch import current_processes
    from salmonn_o1.pdpo.folder import require_previous
    from salmonn_o1.pdpo.label import run_label
    from salmonn_o1.pdpo.pairing import run_pairs
    from salmonn_o1.pdpo.questions import load_questions
    from salmonn_o1.pdpo.rollout import run_rollout
    from salmonn_o1.pdpo.select import run_select

    settings = settings_from_args(args)
    progress = not args.quiet
    require_previous(Path(args.out), args.stage)  # before the model loads: an empty folder says what to run
    ensure_writable_dir(args.out, "--out folder")
    needs_model = not (args.stage == "select" and settings.selection != "contrastive") and not (
        args.stage == "pairs" and not settings.reference_logps)
    processes = current_processes()  # under `accelerate launch`: starts the process group
    if args.device == "auto":
        args.device = processes.device  # each process its own GPU
    pipeline = load_pipeline(args) if needs_model else None
    if args.stage == "rollout":
        questions = load_questions(questions_from_args(args), pipeline.processor, "--data/--synthetic-split")
        summary = run_rollout(args.out, pipeline, questions, settings, progress=progress)
    elif args.stage == "select":
        summary = run_select(args.out, pipeline, settings, progress=progress)
    elif args.stage == "label":
        summary = run_label(args.out, pipeline, settings, progress=progress)
    else:
        summary = run_pairs(args.out, pipeline, settings, progress=progress)
    if processes.is_main:  # every process returns the merged summary; one prints it
        print(json.dumps(summary, indent=2))
    return 0
