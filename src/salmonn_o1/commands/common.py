"""Arguments several commands share: model, device, dtype, generation settings."""

from __future__ import annotations

import argparse


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None,
                        help="checkpoint directory, hub id or preset (default: the shipped miniature model)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="default: auto")
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"],
                        help="auto: bf16 on CUDA, float32 on CPU")


def add_generation_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-reasoning", action="store_true", help="answer directly in one turn")
    parser.add_argument("--max-new-tokens", type=int, default=512, help="reasoning turn")
    parser.add_argument("--answer-max-new-tokens", type=int, default=64, help="final-answer turn")
    parser.add_argument("--temperature", type=float, default=None, help="sample with this temperature (default: greedy)")
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)


def generation_kwargs(args: argparse.Namespace) -> dict:
    sampling = args.temperature is not None
    return {"max_new_tokens": args.max_new_tokens, "answer_max_new_tokens": args.answer_max_new_tokens,
            "do_sample": sampling,
            "temperature": args.temperature if sampling else 1.0, "top_p": args.top_p, "seed": args.seed}


def load_pipeline(args: argparse.Namespace):
    from salmonn_o1.inference import SalmonnO1Pipeline

    return SalmonnO1Pipeline.from_pretrained(args.model, device=args.device, dtype=args.dtype)
