"""`salmonn-o1 ui`: the browser page (gradio) around the pipeline `ask` uses.

gradio is an optional extra (`pip install 'salmonn-o1[ui]'`): it is imported only when this
command runs, and its absence is one clear error naming the extra to install.
"""

from __future__ import annotations

import argparse
import os

from salmonn_o1.commands.common import add_model_arguments, add_threads_argument, int_at_least


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("ui", help="a browser page: watch a video, ask, see the reasoning on its timeline")
    add_model_arguments(parser)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=port_number, default=7860, help="default: 7860")
    add_threads_argument(parser)
    parser.add_argument("--max-new-tokens", type=int_at_least(1), default=512,
                        help="the page's starting limit for the reasoning turn (default: 512, as ask)")
    parser.add_argument("--max-upload-mb", type=int_at_least(1), default=200,
                        help="largest video the page accepts, in MiB (default: 200)")
    parser.set_defaults(func=run)


def port_number(text: str) -> int:
    """An argparse type: a TCP port, 1 to 65535."""
    value = int_at_least(1)(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"must be <= 65535, got {value}")
    return value


def run(args: argparse.Namespace) -> int:
    from salmonn_o1.errors import SalmonnError

    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home from a local page
    try:
        import gradio  # noqa: F401
    except ImportError as error:
        raise SalmonnError(f"the web page needs gradio: pip install 'salmonn-o1[ui]' ({error})") from error
    from salmonn_o1.commands.ask import DEFAULT_MODEL_NOTE
    from salmonn_o1.commands.common import load_pipeline
    from salmonn_o1.ui.app import build_app, launch

    pipeline = load_pipeline(args)  # --threads was set at start-up (cli.main); else the default for its size
    note = None
    if args.model is None:  # ask's note, less its --quiet hint
        note = DEFAULT_MODEL_NOTE.removeprefix("note: ").removesuffix("; --quiet hides this note.") + "."
    app = build_app(pipeline, model_note=note, max_upload_mb=args.max_upload_mb,
                    model_name=args.model or "the shipped miniature model",
                    max_new_tokens=args.max_new_tokens)
    try:
        launch(app, args.host, args.port, args.max_upload_mb)
    except OSError as error:  # gradio's "Cannot find empty port": the port is taken or the host is not ours
        raise SalmonnError(f"cannot serve on {args.host}:{args.port}: {error}") from error
    return 0
