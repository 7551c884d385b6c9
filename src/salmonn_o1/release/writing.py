"""Write the released layout, and convert checkpoints between it and ours.

Our layout -> released: tensors are streamed file by file, renamed by the key
table and written in shards (no model is built). Released -> ours: the
release loader builds the model (one copy in memory) and `save_pretrained`
writes it, so the result loads without the key map. Dtypes are kept, so a
round trip is lossless.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

import torch
from safetensors.torch import save_file

from salmonn_o1.config import SalmonnO1Config
from salmonn_o1.errors import CheckpointError
from salmonn_o1.processor import SalmonnO1Processor
from salmonn_o1.prompts import MEDIA_TOKEN
from salmonn_o1.release.config import native_to_release
from salmonn_o1.release.keys import to_release
from salmonn_o1.release.loading import (
    ShardReader,
    is_release_checkpoint,
    load_release_model,
    load_release_tokenizer,
    weight_files,
)
from salmonn_o1.tokenizer import has_tokenizer_files

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                   "vocab.json", "merges.txt", "chat_template.jinja", "chat_template.json")
WEIGHT_FORMATS = {"safetensors": ("model", ".safetensors"), "bin": ("pytorch_model", ".bin")}
_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}


def parse_size(size: str | int) -> int:
    """"5GB" / "500MB" / 1000 -> bytes."""
    if isinstance(size, int):
        return size
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", str(size))
    if match is None or match.group(2).upper() not in _UNITS:
        raise CheckpointError(f"max shard size {size!r}: write it like 5GB or 500MB")
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def write_weights(
    named_tensors: Iterable[tuple[str, torch.Tensor]],
    directory: str | Path,
    max_shard_size: str | int = "5GB",
    weights_format: str = "safetensors",
) -> list[Path]:
    """Write tensors into shards of at most `max_shard_size` (+ an index when more than one), as HF does.

    Tensors arrive one at a time and a shard is written as soon as it is
    full, so at most one shard is held in memory.
    """
    if weights_format not in WEIGHT_FORMATS:
        raise CheckpointError(f"weights format {weights_format!r}: choose from {', '.join(WEIGHT_FORMATS)}")
    stem, suffix = WEIGHT_FORMATS[weights_format]
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    limit = parse_size(max_shard_size)
    parts: list[tuple[Path, list[str]]] = []
    shard: dict[str, torch.Tensor] = {}
    size = total = 0

    def flush() -> None:
        nonlocal shard, size
        if not shard:
            return
        path = directory / f".part-{len(parts):05d}{suffix}"
        if weights_format == "safetensors":
            save_file(shard, str(path), metadata={"format": "pt"})
        else:
            torch.save(shard, path)
        parts.append((path, list(shard)))
        shard, size = {}, 0

    for name, tensor in named_tensors:
        nbytes = tensor.numel() * tensor.element_size()
        if shard and size + nbytes > limit:
            flush()
        shard[name] = tensor.detach().contiguous()
        size += nbytes
        total += nbytes
    flush()
    if len(parts) == 1:
        final = [directory / f"{stem}{suffix}"]
    else:
        final = [directory / f"{stem}-{i + 1:05d}-of-{len(parts):05d}{suffix}" for i in range(len(parts))]
    weight_map = {}
    for (temporary, keys), path in zip(parts, final):
        temporary.replace(path)
        weight_map.update({key: path.name for key in keys})
    if len(parts) > 1:
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        (directory / f"{stem}{suffix}.index.json").write_text(json.dumps(index, indent=2, sort_keys=True))
    return final


def _release_named(native_named: Iterable[tuple[str, torch.Tensor]]) -> Iterator[tuple[str, torch.Tensor]]:
    for name, tensor in native_named:
        release = to_release(name)
        if release is None:
            raise CheckpointError(f"{name}: the released layout has no name for this tensor")
        yield release, tensor


def _release_config(config, dtype: torch.dtype) -> dict:
    raw = native_to_release(config)
    raw["torch_dtype"] = str(dtype).removeprefix("torch.")
    return raw


def save_release_checkpoint(
    model, directory: str | Path, tokenizer=None, max_shard_size: str | int = "5GB",
    weights_format: str = "safetensors",
) -> Path:
    """A model in memory, written in the released layout (config.json, weights, tokenizer)."""
    directory = Path(directory)
    raw = _release_config(model.config, model.dtype)  # refuses configs the release cannot run, before writing
    write_weights(_release_named(model.state_dict().items()), directory, max_shard_size, weights_format)
    (directory / "config.json").write_text(json.dumps(raw, indent=2))
    if tokenizer is not None:
        tokenizer.save_pretrained(directory)
    return directory


def convert_native_to_release(
    source: str | Path, destination: str | Path, max_shard_size: str | int = "5GB",
    weights_format: str = "safetensors",
) -> Path:
    """Our checkpoint directory -> the released layout, streamed file by file."""
    source, destination = Path(source), Path(destination)
    config = SalmonnO1Config.from_pretrained(source)
    files = weight_files(source)
    unnamed = sorted(key for keys in files.values() for key in keys if to_release(key) is None)
    if unnamed:
        raise CheckpointError(f"{source}: the released layout has no name for: {', '.join(unnamed)}")
    dtypes: dict[torch.dtype, int] = {}

    def tensors() -> Iterator[tuple[str, torch.Tensor]]:
        for path, keys in files.items():
            with ShardReader(path) as shard:
                for key in keys:
                    tensor = shard.get(key)
                    dtypes[tensor.dtype] = dtypes.get(tensor.dtype, 0) + tensor.numel()
                    yield key, tensor

    raw = native_to_release(config)
    write_weights(_release_named(tensors()), destination, max_shard_size, weights_format)
    raw["torch_dtype"] = str(max(dtypes, key=dtypes.get)).removeprefix("torch.")
    (destination / "config.json").write_text(json.dumps(raw, indent=2))
    _copy_tokenizer(source, destination)
    return destination


def convert_release_to_native(
    source: str | Path, destination: str | Path, strict: bool = True, max_shard_size: str | int = "5GB",
    **load_kwargs,
) -> tuple[Path, dict]:
    """The released layout -> ours (config.json + safetensors + tokenizer + processor config).

    Tensors keep their stored dtypes unless `dtype=` is given. Returns the
    destination and the loading report (what was merged, dropped or, with
    strict=False, initialised).
    """
    source, destination = Path(source), Path(destination)
    tokenizer = load_release_tokenizer(source) if has_tokenizer_files(source) else None
    if tokenizer is not None:
        load_kwargs.setdefault("media_token_id", int(tokenizer.convert_tokens_to_ids(MEDIA_TOKEN)))
    model, info = load_release_model(source, strict=strict, output_loading_info=True, **load_kwargs)
    model.save_pretrained(destination, max_shard_size=max_shard_size)
    if tokenizer is not None:
        SalmonnO1Processor(tokenizer, model.config).save_pretrained(destination)
    return destination, info


def detect_layout(directory: str | Path) -> str:
    """"release" or "native" (ours), from config.json."""
    directory = Path(directory)
    if not (directory / "config.json").is_file():
        raise CheckpointError(f"{directory}: no config.json (not a checkpoint directory)")
    if is_release_checkpoint(directory):
        return "release"
    model_type = json.loads((directory / "config.json").read_text()).get("model_type")
    if model_type == "salmonn_o1":
        return "native"
    raise CheckpointError(f"{directory}: model_type {model_type!r} is neither ours (salmonn_o1) nor the released layout")


def convert_checkpoint(
    source: str | Path, destination: str | Path, to: str | None = None, strict: bool = True,
    max_shard_size: str | int = "5GB", weights_format: str = "safetensors", **load_kwargs,
) -> dict:
    """Convert `source` to the other layout (or the one named by `to`); returns a summary."""
    layout = detect_layout(source)
    to = to or ("native" if layout == "release" else "release")
    if to not in ("native", "release"):
        raise CheckpointError(f"--to {to!r}: choose native or release")
    if to == layout:
        raise CheckpointError(f"{source} is already in the {layout} layout")
    destination = Path(destination)
    if destination.exists() and any(destination.iterdir()):
        raise CheckpointError(f"{destination}: exists and is not empty; choose a new directory")
    if to == "release":
        if load_kwargs:
            raise CheckpointError(f"{', '.join(sorted(load_kwargs))}: only used when converting from the release")
        convert_native_to_release(source, destination, max_shard_size, weights_format)
        return {"from": layout, "to": to, "destination": str(destination)}
    if weights_format != "safetensors":
        raise CheckpointError("our layout is written as safetensors only")
    _, info = convert_release_to_native(source, destination, strict, max_shard_size, **load_kwargs)
    return {"from": layout, "to": to, "destination": str(destination), **info}


def _copy_tokenizer(source: Path, destination: Path) -> None:
    for name in TOKENIZER_FILES:
        if (source / name).exists():
            shutil.copy2(source / name, destination / name)
