"""Model + processor together: by preset name ("tiny") or checkpoint directory, ours or the release's.

A checkpoint directory holds `config.json` + safetensors (the model) and the
tokenizer (the processor, which reads the same `config.json`), so one path is
enough to run, evaluate or continue training a model. This is the one place
that decides which layout a directory holds: ours goes to `from_pretrained`,
the released layout to its adapter (`salmonn_o1.release`), which the model
itself never imports.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path

import torch

from salmonn_o1.config import PRESETS, preset_config
from salmonn_o1.errors import CheckpointError
from salmonn_o1.model import SalmonnO1ForConditionalGeneration
from salmonn_o1.processor import SalmonnO1Processor
from salmonn_o1.release.loading import find_release_checkpoint, load_release_model_and_processor
from salmonn_o1.tokenizer import has_tokenizer_files, load_tokenizer, time_text_ids

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
CHECKSUMS = "checksums.sha256"  # `sha256sum` format; shipped beside the default model
# Bytes per element of each safetensors dtype name (the ones a model of ours can hold).
SAFETENSORS_DTYPES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1, "I64": 8, "I32": 4,
                      "I16": 2, "I8": 1, "U64": 8, "U32": 4, "U16": 2, "U8": 1, "BOOL": 1}
MAX_HEADER_BYTES = 100_000_000  # the safetensors format's own limit


def verify_safetensors(path: str | os.PathLike) -> None:
    """CheckpointError naming `path` unless it is a well-formed safetensors file with finite weights.

    Checks what costs no more than reading the file: the header parses, every
    dtype is known, every tensor's byte span matches its shape and dtype, the
    spans tile the data area exactly up to the end of the file. The values are
    checked once they are loaded (`check_finite`), so the weights are read
    once. A flipped byte in the header or one that makes a weight non-finite is
    caught; one that leaves a finite value is only caught by a recorded
    checksum (`verify_checksums`).
    """
    path = Path(path)
    size = path.stat().st_size

    def bad(what: str) -> CheckpointError:
        return CheckpointError(f"{path}: corrupt safetensors file ({what}); re-download or re-save the checkpoint")

    with path.open("rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise bad("shorter than its 8-byte header length")
        header_size = int.from_bytes(prefix, "little")
        if header_size > min(MAX_HEADER_BYTES, size - 8):
            raise bad(f"header length {header_size} does not fit in the file of {size} bytes")
        raw = handle.read(header_size)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise bad(f"header is not valid JSON: {error}") from None
    if not isinstance(header, dict):
        raise bad("header is not a JSON object")
    spans = []
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(entry, dict) or not {"dtype", "shape", "data_offsets"} <= entry.keys():
            raise bad(f"tensor {name!r} lacks dtype, shape or data_offsets")
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if dtype not in SAFETENSORS_DTYPES:
            raise bad(f"tensor {name!r} has unknown dtype {dtype!r}")
        if not (isinstance(shape, list) and all(isinstance(d, int) and d >= 0 for d in shape)):
            raise bad(f"tensor {name!r} has shape {shape!r}")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)
                and 0 <= offsets[0] <= offsets[1]):
            raise bad(f"tensor {name!r} has data_offsets {offsets!r}")
        expected = math.prod(shape) * SAFETENSORS_DTYPES[dtype]
        if offsets[1] - offsets[0] != expected:
            raise bad(f"tensor {name!r} spans {offsets[1] - offsets[0]} bytes; {dtype} {shape} needs {expected}")
        spans.append((offsets[0], offsets[1], name))
    end = 0
    for begin, stop, name in sorted(spans):
        if begin != end:
            raise bad(f"tensor {name!r} starts at byte {begin} of the data; expected {end}")
        end = stop
    if end != size - 8 - header_size:
        raise bad(f"the tensors end at data byte {end} but the file holds {size - 8 - header_size}")


def check_finite(model: torch.nn.Module, directory: Path) -> None:
    """No loaded floating weight holds NaN or infinity (a flipped exponent byte): checked on the weights
    `from_pretrained` has just read, naming the safetensors file that holds the tensor."""
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not tensor.is_meta and not torch.isfinite(tensor).all():
            raise CheckpointError(f"{_file_holding(directory, name)}: corrupt safetensors file (tensor {name!r} "
                                  "holds NaN or infinite values); re-download or re-save the checkpoint")


def _file_holding(directory: Path, name: str) -> Path:
    index = directory / "model.safetensors.index.json"
    if index.is_file():
        shard = json.loads(index.read_text(encoding="utf-8")).get("weight_map", {}).get(name)
        if shard:
            return directory / shard
    files = sorted(directory.glob("*.safetensors"))
    return files[0] if len(files) == 1 else directory


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def write_checksums(directory: str | os.PathLike) -> Path:
    """Record the sha256 of every safetensors file of a checkpoint directory (for a model to ship)."""
    directory = Path(directory)
    lines = [f"{file_sha256(p)}  {p.name}\n" for p in sorted(directory.glob("*.safetensors"))]
    path = directory / CHECKSUMS
    path.write_text("".join(lines), encoding="utf-8")
    return path


def verify_checksums(directory: str | os.PathLike) -> bool:
    """Check the files listed in the directory's `checksums.sha256`; False when there is none."""
    directory = Path(directory)
    listing = directory / CHECKSUMS
    if not listing.is_file():
        return False
    for number, line in enumerate(listing.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        digest, _, name = line.partition("  ")
        if not name or len(digest) != 64:
            raise CheckpointError(f"{listing} line {number}: expected '<sha256>  <file name>'")
        target = directory / name.strip()
        if not target.is_file():
            raise CheckpointError(f"{target}: listed in {listing} but missing")
        if file_sha256(target) != digest.lower():
            raise CheckpointError(f"{target}: its sha256 differs from the one recorded in {listing}; "
                                  "the file is corrupt or was changed (re-install or re-download it)")
    return True


def verify_checkpoint_files(directory: str | os.PathLike) -> None:
    """The load-time checks of a checkpoint directory of ours: recorded checksums, then each safetensors file."""
    directory = Path(directory)
    verify_checksums(directory)
    for path in sorted(directory.glob("*.safetensors")):
        verify_safetensors(path)


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


def is_preset(source: str) -> bool:
    """Whether `source` names a preset to build fresh (a directory of that name wins)."""
    return source in PRESETS and not Path(source).exists()


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
    if not has_tokenizer_files(path):
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
    if is_preset(source):
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
        verify_checkpoint_files(path)  # a corrupt file is an error, not a model that answers garbage
        model = SalmonnO1ForConditionalGeneration.from_pretrained(path, **model_kwargs)
        check_finite(model, path)
        processor = SalmonnO1Processor.from_pretrained(path, config=model.config)
    if model_kwargs.get("device_map") is not None:
        return model.eval(), processor  # accelerate has placed the weights
    model = model.to(device=torch_device, dtype=torch_dtype).eval()
    return model, processor


def save_model_and_processor(
    model: SalmonnO1ForConditionalGeneration, processor: SalmonnO1Processor, path: str | os.PathLike
) -> Path:
    """Write a checkpoint directory; a checksum listing already there would no longer match, so it goes."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / CHECKSUMS).unlink(missing_ok=True)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path
