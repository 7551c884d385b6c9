"""`salmonn-o1 convert SRC DST [--to native|release]`: between the released checkpoint layout and ours."""

from __future__ import annotations

import argparse


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value not in ("true", "false", "1", "0", "yes", "no"):
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return value in ("true", "1", "yes")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "convert", help="convert a checkpoint between the released video-SALMONN-o1 layout and ours",
        description="Convert SRC to the other layout (detected from its config.json) and write it to DST. "
                    "A converted model loads without the key map; a round trip is lossless.",
    )
    parser.add_argument("source", metavar="SRC", help="checkpoint directory (released layout or ours)")
    parser.add_argument("destination", metavar="DST", help="new directory to write")
    parser.add_argument("--to", choices=["native", "release"], default=None,
                        help="target layout (default: the one SRC is not in)")
    parser.add_argument("--strict", type=_bool, default=True, metavar="true|false", nargs="?", const=True,
                        help="false: convert even if tensors are missing, unknown or misshapen (they are listed; "
                             "missing ones are freshly initialised). Default: true")
    parser.add_argument("--no-strict", dest="strict", action="store_false", help="the same as --strict false")
    parser.add_argument("--siglip", default=None, metavar="DIR_OR_HUB_ID",
                        help="SigLIP checkpoint for vision weights the release checkpoint lacks "
                             "(default: its config's mm_vision_tower, only when needed)")
    parser.add_argument("--whisper", default=None, metavar="DIR_OR_HUB_ID",
                        help="Whisper checkpoint for audio-encoder weights the release checkpoint lacks")
    parser.add_argument("--lora-scale", type=float, default=None,
                        help="alpha/r of LoRA adapters in the checkpoint, when no adapter_config.json says it")
    parser.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16"],
                        help="cast the weights; converting FROM the released layout only (a model in our layout "
                             "is written in the dtype it was saved in). Default: keep each tensor's stored dtype")
    parser.add_argument("--max-shard-size", default="5GB", help="default: 5GB")
    parser.add_argument("--format", dest="weights_format", choices=["safetensors", "bin"], default="safetensors",
                        help="weight files of a released-layout output (default: safetensors)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from salmonn_o1.errors import writing
    from salmonn_o1.release.writing import convert_checkpoint

    load_options = {name: value for name, value in (
        ("siglip_path", args.siglip), ("whisper_path", args.whisper), ("lora_scale", args.lora_scale),
        ("dtype", args.dtype),
    ) if value is not None}
    destination = Path(args.destination)
    with writing(destination):
        destination.parent.mkdir(parents=True, exist_ok=True)
        summary = convert_checkpoint(
            args.source, destination, to=args.to, strict=args.strict, max_shard_size=args.max_shard_size,
            weights_format=args.weights_format, **load_options,
        )
    print(f"convert: {args.source} ({summary['from']}) -> {summary['destination']} ({summary['to']})")
    for label, key in (("merged LoRA into", "lora_merged"), ("initialised (missing)", "missing_keys"),
                       ("skipped (unknown)", "unexpected_keys"), ("skipped (wrong shape)", "mismatched_keys")):
        if summary.get(key):
            print(f"  {label}: {len(summary[key])} tensors, e.g. {summary[key][0]}")
    if summary.get("dropped_keys"):
        print(f"  dropped on purpose: {len(summary['dropped_keys'])} tensors (unused by the model)")
    return 0
