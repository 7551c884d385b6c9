"""`salmonn-o1 synth`: write an AVR-Synth split (mp4s + items.jsonl)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "synth",
        help="generate AVR-Synth audio-visual reasoning clips (mp4 + items.jsonl)",
        description="Write clips START..START+N-1 of a split to OUT/videos/*.mp4 and OUT/items.jsonl. "
        "Clips already written are skipped, so re-running resumes; the generation settings are recorded in "
        "OUT/synth_settings.json and a rerun with other settings is refused (it would pair new questions "
        "with the old clips).",
    )
    parser.add_argument("--split", choices=["train", "dev", "test"], default="test")
    parser.add_argument("--n", type=int, default=500, help="number of clips (default 500)")
    parser.add_argument("--start", type=int, default=0, help="first clip index (default 0)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--options", type=int, default=4, choices=[2, 3, 4, 5], help="options per question")
    parser.add_argument("--min-duration", type=float, default=6.0)
    parser.add_argument("--max-duration", type=float, default=12.0)
    parser.add_argument("--min-scenes", type=int, default=5)
    parser.add_argument("--max-scenes", type=int, default=6)
    parser.add_argument("--families", nargs="+", default=None, help="question families (default: all six)")
    parser.add_argument("--seed", type=int, default=0, help="global seed (default 0)")
    parser.add_argument("--fps", type=int, default=10, help="frame rate of the written mp4s")
    parser.add_argument("--size", type=int, default=128, help="frame side of the written mp4s (even)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from salmonn_o1.data.synthetic import FAMILIES, SynthConfig, generate_split
    from salmonn_o1.errors import DataError

    try:
        config = SynthConfig(
            num_options=args.options,
            min_scenes=args.min_scenes,
            max_scenes=args.max_scenes,
            min_duration=args.min_duration,
            max_duration=args.max_duration,
            families=tuple(args.families) if args.families else FAMILIES,
            seed=args.seed,
        )
    except ValueError as error:
        raise DataError(f"synth settings: {error}") from None
    if args.n < 1 or args.start < 0:
        raise DataError("synth settings: --n must be >= 1 and --start >= 0")
    if args.fps < 1 or args.size < 16 or args.size % 2:
        raise DataError("synth settings: --fps must be >= 1 and --size an even number >= 16 (H.264 yuv420p)")
    path = generate_split(
        args.split, args.n, args.out, config, start=args.start, fps=args.fps, size=args.size, progress=not args.quiet
    )
    print(f"wrote {args.n} {args.split} items to {path}")
    return 0
