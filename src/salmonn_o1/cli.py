"""`salmonn-o1` command line: parses arguments and calls the library.

Each subcommand lives in `salmonn_o1/commands/<name>.py` and exposes
`register(subparsers)`, which adds its parser and sets `func`. Heavy imports
(torch, transformers) happen inside the command functions so `--help` is fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from salmonn_o1.errors import SalmonnError

COMMAND_MODULES = [
    "salmonn_o1.commands.demo",
    "salmonn_o1.commands.ask",
    "salmonn_o1.commands.infer",
    "salmonn_o1.commands.synth",
    "salmonn_o1.commands.eval",
    "salmonn_o1.commands.pdpo",
    "salmonn_o1.commands.train",
    "salmonn_o1.commands.convert",
    "salmonn_o1.commands.reproduce",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="salmonn-o1", description="Reasoning-enhanced audio-visual LLMs (video-SALMONN-o1)."
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        # `train sft --config R a.b=1 c=2`: key=value overrides may follow the options
        if hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
            args.overrides = [*args.overrides, *extra]
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        result = args.func(args)
    except SalmonnError as error:
        print(f"salmonn-o1 {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
