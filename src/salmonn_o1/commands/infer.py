"""`salmonn-o1 infer --data ITEMS.jsonl --out PREDICTIONS.jsonl`: a whole benchmark, resumable."""

from __future__ import annotations

import argparse

from salmonn_o1.commands.common import (
    add_generation_arguments,
    add_majority_argument,
    add_model_arguments,
    add_threads_argument,
    generation_kwargs,
    int_at_least,
    load_pipeline,
)
from salmonn_o1.data.benchmarks import FORMATS
from salmonn_o1.launch import current_processes


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "infer",
        help="answer every item of a JSONL file (append-and-resume)",
        description="Answer every item of --data, appending one record per item to --out. Re-running resumes: "
        "items already in --out are skipped, unreadable lines of --out are moved to a side file (never deleted), "
        "and a second run on the same --out is refused while the first holds its lock.",
    )
    parser.add_argument("--data", required=True, help="items JSONL (the toolkit's item schema; 'answer' optional)")
    parser.add_argument("--items-format", choices=FORMATS,
                        default="items", help="read --data with a benchmark loader (docs/evaluation.md); its items "
                        "are written to OUT's name with .items.jsonl, for `eval --items` (default: items JSONL)")
    parser.add_argument("--out", required=True, help="predictions JSONL (appended; re-running resumes)")
    parser.add_argument("--batch-size", type=int_at_least(1), default=1)
    parser.add_argument("--num-workers", type=int_at_least(0), default=0, help="DataLoader workers decoding media")
    parser.add_argument("--retry-errors", action="store_true",
                        help="compute again the items whose earlier record is an error (kept and skipped by default)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace --out instead of resuming it (also a file that is not a predictions file)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_majority_argument(parser)
    add_model_arguments(parser)
    add_threads_argument(parser)
    add_generation_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from salmonn_o1.batch_inference import OutputLock, merge_parts, prepare_output, run_inference
    from salmonn_o1.data.schema import read_items
    from salmonn_o1.errors import DataError, SalmonnError
    from salmonn_o1.runtime import thread_setting

    if args.items_format != "items":
        args.data = str(benchmark_items(args.data, args.items_format, args.out))
    read_items(args.data)  # a malformed file fails here, before any model is loaded
    if args.majority is not None and args.no_reasoning:
        raise DataError("--majority votes over sampled reasoning paths; it cannot be used with --no-reasoning")
    processes = current_processes()  # an `accelerate launch`: this process's share of the items
    rank, world_size = processes.rank, processes.world_size
    if args.device == "auto":
        args.device = processes.device
    # The main process locks and prepares the output before any model is loaded; the
    # other processes learn its verdict, so a refused run stops everywhere.
    lock = OutputLock(args.out) if rank == 0 else None
    problem: SalmonnError | None = None
    if lock is not None:
        try:
            lock.acquire()
            prepare_output(args.out, args.data, overwrite=args.overwrite, retry_errors=args.retry_errors)
        except SalmonnError as error:
            problem = error
    if processes.launched:
        verdict = processes.broadcast(str(problem) if problem is not None else None)
        if verdict is not None and problem is None:
            problem = DataError(verdict)
    if problem is not None:
        if lock is not None:
            lock.release()
        raise problem
    try:
        pipeline = load_pipeline(args)
        generation = generation_kwargs(args, sample=args.majority is not None)
        summary = run_inference(
            args.data, args.out, pipeline, batch_size=args.batch_size, num_workers=args.num_workers,
            reasoning=not args.no_reasoning, generation=generation, rank=rank, world_size=world_size,
            progress=not args.quiet, majority=args.majority,
        )
        if processes.launched:
            processes.barrier()
            if processes.is_main:
                merge_parts(args.out)
    finally:
        if lock is not None:
            lock.release()
    print(f"infer{f' [{rank}]' if world_size > 1 else ''}: {summary}; {thread_setting().describe()}")
    return 0


def benchmark_items(path: str, fmt: str, out: str):
    """A benchmark file read by its loader and written as items JSONL beside `out` (video paths
    absolute), so inference, resuming and `eval --items` all read the same items and ids."""
    from pathlib import Path

    from salmonn_o1.data.benchmarks import load_benchmark
    from salmonn_o1.data.schema import write_items
    from salmonn_o1.errors import writing

    items = load_benchmark(path, fmt)
    for item in items:
        if item.video:
            item.video = str(Path(item.video).absolute())
    target = Path(out).with_suffix(".items.jsonl")
    with writing(target):
        write_items(target, items)
    print(f"infer: {len(items)} {fmt} items from {path} written to {target}")
    return target
