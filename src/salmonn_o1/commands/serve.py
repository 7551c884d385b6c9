"""`salmonn-o1 serve`: an OpenAI-compatible HTTP server (FastAPI + uvicorn) for the model.

    salmonn-o1 serve --port 8000 [--model DIR] [--api-key KEY] [--allowed-local-media-path DIR]

Requests go to POST /v1/chat/completions in OpenAI's shape with vLLM's `video_url`,
`image_url` and `input_audio` content parts; see `salmonn_o1.serve` and the README's
"Serve it". The server needs the `serve` extra (`pip install 'salmonn-o1[serve]'`).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from salmonn_o1.commands.common import add_model_arguments, add_threads_argument, int_at_least, positive_float


def port_number(text: str) -> int:
    """An argparse type: a TCP port, 0 (any free one) to 65535."""
    value = int_at_least(0)(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"must be <= 65535, got {value}")
    return value


def non_negative_float(text: str) -> float:
    """An argparse type: a finite number >= 0 (a wait in milliseconds)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("serve", help="serve the model behind an OpenAI-compatible HTTP API")
    add_model_arguments(parser)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=port_number, default=8000, help="default: 8000")
    parser.add_argument("--served-model-name", default=None, metavar="NAME",
                        help="the `model` requests name (default: the model folder's name, `salmonn-o1-mini` "
                             "for the shipped model)")
    parser.add_argument("--api-key", default=None, metavar="KEY",
                        help="require `Authorization: Bearer KEY` on /v1 routes")
    parser.add_argument("--allowed-local-media-path", type=Path, default=None, metavar="DIR",
                        help="serve file:// media URLs from under this folder (default: file:// URLs are refused)")
    parser.add_argument("--max-video-seconds", type=positive_float, default=600.0, metavar="S",
                        help="refuse longer media (default: 600)")
    parser.add_argument("--max-request-mb", type=positive_float, default=64.0, metavar="M",
                        help="refuse larger request bodies, base64 media included (default: 64)")
    parser.add_argument("--max-batch-size", type=int_at_least(1), default=16, metavar="N",
                        help="rows (requests x n) decoded together (default: 16)")
    parser.add_argument("--batch-wait-ms", type=non_negative_float, default=30.0, metavar="MS",
                        help="a batch starts once no request has arrived for this long (and at the latest 4x "
                             "this after its first request; default: 30)")
    parser.add_argument("--max-tokens", type=int_at_least(1), default=512,
                        help="the reasoning turn's tokens when a request names no max_tokens (default: 512)")
    parser.add_argument("--answer-max-tokens", type=int_at_least(1), default=64,
                        help="the answer turn's tokens after reasoning (default: 64)")
    parser.add_argument("--media-cache-mb", type=int_at_least(0), default=256, metavar="M",
                        help="decoded media kept for repeated clips (default: 256; 0: none)")
    parser.add_argument("--media-workers", type=int_at_least(1), default=2, metavar="N",
                        help="threads decoding media (default: 2)")
    add_threads_argument(parser)
    parser.add_argument("--quiet", action="store_true", help="no loading progress bars")
    parser.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    parser.set_defaults(func=run)


def served_model_name(args: argparse.Namespace) -> str:
    if args.served_model_name:
        return args.served_model_name
    if args.model is None:
        return "salmonn-o1-mini"
    return Path(args.model.rstrip("/")).name or args.model


def run(args: argparse.Namespace) -> int:
    from salmonn_o1.errors import SalmonnError

    if args.allowed_local_media_path is not None and not args.allowed_local_media_path.is_dir():
        raise SalmonnError(f"--allowed-local-media-path {args.allowed_local_media_path}: not a folder")
    try:
        import uvicorn

        from salmonn_o1.serve.app import ServeSettings, create_app
    except ImportError as error:
        raise SalmonnError(f"serving needs FastAPI and uvicorn ({error.name} is missing): "
                           "pip install 'salmonn-o1[serve]'") from None
    from salmonn_o1.commands.common import load_pipeline

    pipeline = load_pipeline(args)
    settings = ServeSettings(
        model_name=served_model_name(args), api_key=args.api_key,
        allowed_local_media_path=args.allowed_local_media_path, max_video_seconds=args.max_video_seconds,
        max_request_bytes=int(args.max_request_mb * (1 << 20)), max_batch_size=args.max_batch_size,
        batch_wait_s=args.batch_wait_ms / 1000, max_tokens=args.max_tokens, answer_max_tokens=args.answer_max_tokens,
        media_cache_bytes=args.media_cache_mb << 20, media_workers=args.media_workers,
    )
    uvicorn.run(create_app(pipeline, settings), host=args.host, port=args.port, log_level=args.log_level)
    return 0
