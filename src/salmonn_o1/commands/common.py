"""Arguments several commands share: model, device, dtype, threads, generation settings.

Numeric options are checked by their argparse types, so a bad value (`--max-new-tokens 0`,
`--temperature -1`, `--top-p 0`, `--num-workers -1`) is one usage error (exit 2) before
any model loads, not a traceback from deep inside generation.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def _number(text: str, kind: type) -> int | float:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, "
                                         f"got {text!r}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer >= `minimum` (the message says which bound was broken)."""

    def parse(text: str) -> int:
        value = _number(text, int)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


def positive_float(text: str) -> float:
    """An argparse type: a finite number > 0 (a sampling temperature)."""
    value = _number(text, float)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value:g}")
    return value


def probability(text: str) -> float:
    """An argparse type: a number in (0, 1] (nucleus sampling's top-p)."""
    value = _number(text, float)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {value:g}")
    return value


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None,
                        help="checkpoint directory, hub id or preset (default: the shipped miniature model)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="default: auto")
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"],
                        help="auto: bf16 on CUDA, float32 on CPU")
    parser.add_argument("--strict", action=argparse.BooleanOptionalAction, default=True,
                        help="--no-strict: load a checkpoint whose tensors do not all fit the config, listing "
                             "what was missing, unexpected or misshapen (missing ones stay freshly initialised). "
                             "Default: --strict")


def add_threads_argument(parser: argparse.ArgumentParser) -> None:
    """`--threads N`: torch's CPU threads, set once at start-up (`salmonn_o1.runtime.configure_threads`)."""
    parser.add_argument("--threads", type=int_at_least(1), default=None, metavar="N",
                        help="CPU threads for torch (default: OMP_NUM_THREADS if set, else 1 for a small model "
                             "on CPU and every core for a big one; see docs/performance.md)")


def apply_threads(args: argparse.Namespace, model=None, num_parameters: int | None = None) -> str:
    """The process's thread count, set once: an explicit --threads at start-up (cli.main, before torch
    loads), else here, after the model is loaded, from its size (or the size given) and device.
    Returns the line `--verbose` prints."""
    from salmonn_o1.runtime import configure_threads, thread_setting

    if model is None:
        configure_threads(getattr(args, "threads", None), num_parameters=num_parameters)
    else:
        configure_threads(getattr(args, "threads", None), num_parameters=sum(p.numel() for p in model.parameters()),
                          device=model.device)
    return thread_setting().describe()


def parameters_before_loading(source: str | None) -> int | None:
    """A model's size before it is built, for the thread default of commands that build their model
    late (training): a preset's counted on the meta device (no memory, no weights), a checkpoint
    directory's from its safetensors files at 4 bytes a parameter (a bf16 checkpoint counts half:
    still far above the line for a big model); None when it cannot be told."""
    from pathlib import Path

    if not source:
        return None
    path = Path(source)
    if path.is_dir():
        size = sum(f.stat().st_size for f in path.rglob("*.safetensors"))
        return size // 4 or None
    from salmonn_o1.config import PRESETS, preset_config

    if source not in PRESETS:
        return None
    import torch

    from salmonn_o1.model import SalmonnO1ForConditionalGeneration

    with torch.device("meta"):
        return sum(p.numel() for p in SalmonnO1ForConditionalGeneration(preset_config(source)).parameters())


def add_generation_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-reasoning", action="store_true", help="answer directly in one turn")
    parser.add_argument("--max-new-tokens", type=int_at_least(1), default=512, help="reasoning turn")
    parser.add_argument("--answer-max-new-tokens", type=int_at_least(1), default=64, help="final-answer turn")
    parser.add_argument("--temperature", type=positive_float, default=None,
                        help="sample with this temperature (> 0; default: greedy)")
    parser.add_argument("--top-p", type=probability, default=1.0, help="in (0, 1]; default 1")
    parser.add_argument("--seed", type=int, default=0)


def majority_count(text: str) -> int:
    """An argparse type: K >= 2 paths to vote over."""
    value = _number(text, int)
    if value < 2:
        raise argparse.ArgumentTypeError(f"must be >= 2 (a vote needs at least two sampled paths), got {value}")
    return value


def add_majority_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--majority", type=majority_count, default=None, metavar="K",
                        help="Major@k: sample K >= 2 reasoning paths and answer by their vote (sampling turns on, "
                             "temperature 1 unless --temperature; --seed makes it reproducible)")


def generation_kwargs(args: argparse.Namespace, sample: bool = False) -> dict:
    """The generation settings the flags give; `sample`: sampling on even without --temperature
    (--majority), at temperature 1 unless one is given."""
    sampling = sample or args.temperature is not None
    return {"max_new_tokens": args.max_new_tokens, "answer_max_new_tokens": args.answer_max_new_tokens,
            "do_sample": sampling,
            "temperature": args.temperature if args.temperature is not None else 1.0, "top_p": args.top_p,
            "seed": args.seed}


def silence_progress_bars() -> None:
    """transformers' "Loading weights" bar and huggingface_hub's download bars (for --quiet)."""
    from huggingface_hub.utils import disable_progress_bars
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    disable_progress_bars()


def load_pipeline(args: argparse.Namespace):
    """The model --model names (--quiet: without loading bars; --no-strict: what fits), with the
    process's CPU threads set for it (`apply_threads`)."""
    from salmonn_o1.inference import SalmonnO1Pipeline

    if getattr(args, "quiet", False):
        silence_progress_bars()

    options = {} if getattr(args, "strict", True) else {"strict": False}
    pipeline = SalmonnO1Pipeline.from_pretrained(args.model, device=args.device, dtype=args.dtype, **options)
    apply_threads(args, pipeline.model)  # before any decoding; a no-op when --threads was applied at start-up
    return pipeline
