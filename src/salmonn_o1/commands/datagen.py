"""`salmonn-o1 datagen VIDEOS... --out ITEMS.jsonl --base-url URL --model NAME`: reasoning data from videos."""

from __future__ import annotations

import argparse
import os

from salmonn_o1.commands.common import int_at_least


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "datagen",
        help="generate checked reasoning questions from videos with any OpenAI-compatible endpoint",
        description="For each video, send sampled frames and the audio to --model with a prompt asking for a "
        "reasoning-intensive multiple-choice question with numbered steps (JSON); a second call (--check-model, "
        "by default the same) checks the answer is supported and the steps consistent; a rejected or malformed "
        "reply is regenerated up to --retries times. Accepted items go to --out (the item schema with steps: "
        "`train sft` reads it), the rest to OUT.failures.jsonl; re-running resumes (docs/data.md).",
    )
    parser.add_argument("videos", nargs="+", help="video files, or folders searched for them")
    parser.add_argument("--out", required=True, help="items JSONL (appended; re-running resumes)")
    parser.add_argument("--base-url", required=True, help="the generator's OpenAI-compatible URL (…/v1)")
    parser.add_argument("--model", required=True, help="the generator's model name")
    parser.add_argument("--api-key", default=None,
                        help="the generator's API key (default: $OPENAI_API_KEY, else 'EMPTY')")
    parser.add_argument("--check-base-url", default=None, help="the checker's URL (default: --base-url)")
    parser.add_argument("--check-model", default=None, help="the checker's model (default: --model)")
    parser.add_argument("--check-api-key", default=None, help="the checker's API key (default: --api-key)")
    parser.add_argument("--frames", type=int_at_least(1), default=8, help="frames sampled per video (default 8)")
    parser.add_argument("--audio", choices=["input_audio", "transcript", "none"], default="input_audio",
                        help="send the audio as input_audio (default), as the transcript in a .srt/.txt file "
                        "beside the video (for an endpoint that takes no audio), or not at all")
    parser.add_argument("--retries", type=int_at_least(0), default=2,
                        help="regenerate a rejected or malformed item up to K times (default 2)")
    parser.add_argument("--prompt-file", default=None, help="the generation prompt (default: the shipped one)")
    parser.add_argument("--check-prompt-file", default=None, help="the check prompt (default: the shipped one)")
    parser.add_argument("--max-tokens", type=int_at_least(1), default=1024, help="per reply (default 1024)")
    parser.add_argument("--temperature", type=float, default=0.7, help="generator temperature (default 0.7)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per request (default 300)")
    parser.add_argument("--workers", type=int_at_least(1), default=1,
                        help="videos in flight at once (default 1); each waits on its own requests")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from salmonn_o1.datagen.pipeline import DatagenSettings, Endpoint, failures_path, read_prompt, run_datagen

    key = args.api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY"
    generator = Endpoint(args.base_url, args.model, key, args.max_tokens, args.temperature, args.timeout)
    checker = Endpoint(args.check_base_url or args.base_url, args.check_model or args.model,
                       args.check_api_key or key, args.max_tokens, 0.0, args.timeout)
    settings = DatagenSettings(
        generator=generator, checker=checker, generate_prompt=read_prompt(args.prompt_file, "generate"),
        check_prompt=read_prompt(args.check_prompt_file, "check"), frames=args.frames, audio=args.audio,
        retries=args.retries, workers=args.workers,
    )
    summary = run_datagen(args.videos, args.out, settings, progress=not args.quiet)
    print(f"datagen: {summary}; items in {args.out}, failures in {failures_path(args.out)}")
    return 0
