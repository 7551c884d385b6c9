"""Model + processor together: by preset name ("tiny") or checkpoint directory, ours or the release's.

A checkpoint directory holds `config.json` + safetensors (the model) and the
tokenizer (the processor, which reads the same `config.json`), so one path is
enough to run, evaluate or continue training a model. This is the one place
that decides which layout a directory holds: ours goes to `from_pretrained`,
the released layout to its adapter (`salmonn_o1.release`), which the model
itself never imports.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from salmonn_o1.config import PRESETS, preset_config
from salmonn_o1.errors import CheckpointError
from salmonn_o1.model import SalmonnO1ForConditionalGeneration
from salmonn_o1.processor import SalmonnO1Processor
from salmonn_o1.release.loading import find_release_checkpoint, load_release_model_and_processor
from salmonn_o1.tokenizer import load_tokenizer, time_text_ids

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise CheckpointError(f"--device {device}: CUDA is not available on this machine")
    return torch.device(device)


def resolve_dtype(dtype: str | torch.dtype = "auto", device: torch.device | None = None) -> torch.dtype:
    """auto: bf16 on a CUDA device that supports it, float32 elsewhere (bf16 is slower on CPUs)."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        if device is not None and device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    if dtype not in DTYPES:
        raise CheckpointError(f"unknown dtype {dtype!r}; choose from auto, {', '.join(DTYPES)}")
    return DTYPES[dtype]


def looks_local(source: str) -> bool:
    """Whether `source` can only mean a local path, never a hub id (`org/name`): it starts with
    `.`, `/` or `~`, has more than one `/` or a backslash, or its first part is a local folder."""
    if source.startswith((".", "/", "~")) or "\\" in source or source.count("/") > 1:
        return True
    head = source.split("/", 1)[0]
    return "/" in source and Path(head).is_dir()


def check_checkpoint_files(path: Path) -> None:
    """A checkpoint directory of ours needs config.json and the tokenizer: say which one is missing."""
    if not (path / "config.json").is_file():
        raise CheckpointError(f"{path}: config.json is missing (a checkpoint directory holds config.json, "
                              "the weights and the tokenizer)")
    if not any((path / name).is_file() for name in ("tokenizer.json", "vocab.json")):
        raise CheckpointError(f"{path}: the tokenizer is missing (no tokenizer.json); copy it from the model "
                              "the checkpoint was trained from")


def load_model_and_processor(
    source: str | os.PathLike,
    device: str = "cpu",
    dtype: str | torch.dtype = "auto",
    seed: int = 0,
    **model_kwargs,
) -> tuple[SalmonnO1ForConditionalGeneration, SalmonnO1Processor]:
    """A preset name builds a randomly initialised model (seeded) with the bundled tokenizer;
    a directory loads a saved checkpoint strictly: ours through `from_pretrained`, the
    released layout (a hub id too) through `salmonn_o1.release.loading`, decided once here;
    `model_kwargs` go to that loader (strict, device_map; siglip_path, whisper_path... for
    the release)."""
    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, torch_device)
    source = str(source)
    if source in PRESETS and not Path(source).exists():
        config = preset_config(source)
        tokenizer = load_tokenizer()
        if config.time_tokens and config.time_token_mode == "text" and not config.time_text_ids:
            config.time_text_ids = time_text_ids(tokenizer, config.max_frames / config.frames_per_second,
                                                 config.time_text_step)
        torch.manual_seed(seed)
        model = SalmonnO1ForConditionalGeneration(config)
        processor = SalmonnO1Processor(tokenizer, config)
    elif looks_local(source) and not Path(source).expanduser().exists():
        # Not a hub id: fail now rather than after the hub's timeouts.
        raise CheckpointError(f"{source}: no such checkpoint directory")
    elif (release_dir := find_release_checkpoint(source)) is not None:
        # The released layout: its key map, its tokenizer (see salmonn_o1.release).
        model, processor = load_release_model_and_processor(release_dir, dtype=torch_dtype, **model_kwargs)
    else:
        path = Path(source).expanduser()
        if not path.is_dir():
            raise CheckpointError(
                f"{source}: no such checkpoint directory (or preset; presets: {', '.join(sorted(PRESETS))})"
            )
        check_checkpoint_files(path)
        model = SalmonnO1ForConditionalGeneration.from_pretrained(path, **model_kwargs)
        processor = SalmonnO1Processor.from_pretrained(path, config=model.config)
    if model_kwargs.get("device_map") is not None:
        return model.eval(), processor  # accelerate has placed the weights
    model = model.to(device=torch_device, dtype=torch_dtype).eval()
    return model, processor


def save_model_and_processor(
    model: SalmonnO1ForConditionalGeneration, processor: SalmonnO1Processor, path: str | os.PathLike
) -> Path:
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path
