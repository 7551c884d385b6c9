"""`salmonn-o1` command line: parses arguments and calls the library.

Each subcommand lives in `salmonn_o1/commands/<name>.py` and exposes
`register(subparsers)`, which adds its parser and sets `func`. Heavy imports
(torch, transformers) happen inside the command functions so `--help` is fast. A command's
`--threads` is applied here, once, before torch is imported (`salmonn_o1.runtime`).

Other installed packages add subcommands through the `salmonn_o1.commands`
entry-point group (`[project.entry-points."salmonn_o1.commands"]` in their
pyproject, `name = "package.module:register"`, the same `register` contract):
the miniature model's research package registers `reproduce` this way, so the
core never imports it.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from importlib.metadata import entry_points

from salmonn_o1.errors import SalmonnError, os_reason

COMMAND_MODULES = [
    "salmonn_o1.commands.demo",
    "salmonn_o1.commands.ask",
    "salmonn_o1.commands.infer",
    "salmonn_o1.commands.synth",
    "salmonn_o1.commands.eval",
    "salmonn_o1.commands.pdpo",
    "salmonn_o1.commands.train",
    "salmonn_o1.commands.convert",
    "salmonn_o1.commands.data",
    "salmonn_o1.commands.serve",
    "salmonn_o1.commands.ui",
    "salmonn_o1.commands.datagen",
]
PLUGIN_GROUP = "salmonn_o1.commands"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="salmonn-o1", description="Reasoning-enhanced audio-visual LLMs (video-SALMONN-o1)."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    for plugin in sorted(entry_points(group=PLUGIN_GROUP), key=lambda ep: ep.name):
        try:
            plugin.load()(subparsers)
        except Exception as error:  # a broken plugin must not take the core commands down with it
            print(f"salmonn-o1: skipped the {plugin.name!r} command of {plugin.value} ({error})", file=sys.stderr)
    return parser


def _version() -> str:
    """The installed distribution's version; the source tree's when run from a checkout (PYTHONPATH=src)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("salmonn-o1")
    except PackageNotFoundError:
        from salmonn_o1 import __version__

        return __version__


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
        if getattr(args, "threads", None) is not None:
            # an explicit --threads is set before anything imports torch (OpenMP reads it when torch loads)
            from salmonn_o1.runtime import configure_threads

            configure_threads(args.threads)
        result = args.func(args)
    except SalmonnError as error:
        print(f"salmonn-o1 {args.command}: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        # The last net for the environment (a read-only folder, a full disk, a file where a folder
        # belongs) where no command turned it into a SalmonnError: one line naming the path. An
        # OSError without a path is not known to be the user's and keeps its traceback.
        if error.filename is None:
            raise
        print(f"salmonn-o1 {args.command}: error: {error.filename}: {os_reason(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    code = int(result or 0)
    if argv is None and getattr(args, "exit_at_once", False):
        exit_at_once(code)
    return code


def exit_at_once(code: int) -> None:
    """End the process without the interpreter's teardown of torch and transformers (module and C++
    static teardown: about a second, several on a busy machine, docs/performance.md), for a command
    that has written everything it writes to stdout and stderr and holds nothing else (`ask`).
    Only from the command line (`main()` without argv), never for a caller of `main([...])`."""
    import contextlib
    import os

    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing more can be written anyway
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
