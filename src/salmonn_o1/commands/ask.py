"""`salmonn-o1 ask VIDEO "QUESTION"`: steps and answer for one question."""

from __future__ import annotations

import argparse
import json
import sys

from salmonn_o1.commands.common import (
    add_generation_arguments,
    add_model_arguments,
    generation_kwargs,
    load_pipeline,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("ask", help="ask a question about a video, audio file or image")
    parser.add_argument("media", help="video, audio or image file")
    parser.add_argument("question")
    parser.add_argument("--options", nargs="+", default=None, metavar="OPTION",
                        help='answer options, e.g. --options "A. red" "B. blue" (letters optional)')
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--prompt", default=None, metavar="{release,step-marked}|TEXT",
                        help="reasoning instruction: 'release' (the released model's demos), 'step-marked' "
                             "(ours, asks for <end_of_step> after each step) or the text itself "
                             "(default: the one the model's config.json names)")
    add_model_arguments(parser)
    add_generation_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from salmonn_o1.errors import MediaError

    pipeline = load_pipeline(args)
    if args.prompt is not None:
        pipeline.prompt = args.prompt
    try:
        features = pipeline.features(args.media)
    except FileNotFoundError as error:
        raise MediaError(f"{args.media}: no such file") from error
    streaming = sys.stdout.isatty() and not args.json and not args.no_reasoning
    if streaming:
        print("Reasoning:", flush=True)
    result = pipeline.ask(
        features, args.question, options=args.options, reasoning=not args.no_reasoning,
        stream=(lambda piece: print(piece, end="", flush=True)) if streaming else None,
        **generation_kwargs(args),
    )
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
        return 0
    if streaming:
        print()
    elif result.reasoning is not None:
        print("Reasoning:")
        for i, step in enumerate(result.steps, start=1):
            print(f"  {step}" if step[:1].isdigit() else f"  {i}. {step}")
    print(f"Answer: {result.answer if result.answer is not None else result.answer_text}")
    return 0
