"""Load a released-layout checkpoint into our model, shard by shard.

The model is built with empty (meta) parameters; each weight file is then
opened in turn and each tensor renamed by the key table, checked against the
parameter's shape, cast and written in place, so host memory holds about one
copy of the model plus one tensor (safetensors) or one memory-mapped shard
(`.bin`). SigLIP and Whisper weights missing from the checkpoint come from
their own checkpoints, as the release loads them; the checkpoint's copies
win, except SigLIP's when `config.json` does not mark the vision tower as
trained (`mm_tunable_parts` / `unfreeze_mm_vision_tower`): the release then
uses the published SigLIP, and so do we. LoRA adapters found in the
checkpoint are merged into their base weights.
"""

from __future__ import annotations

import json
import logging
import math
import pickle
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from torch import nn
from transformers import (
    AutoTokenizer,
    PreTrainedTokenizerBase,
    Qwen2Config,
    SiglipVisionConfig,
    WhisperConfig,
)

from salmonn_o1.errors import CheckpointError
from salmonn_o1.model import SalmonnO1ForConditionalGeneration
from salmonn_o1.processor import SalmonnO1Processor
from salmonn_o1.prompts import IM_END, IM_START, MEDIA_TOKEN
from salmonn_o1.release.config import (
    DEFAULT_SIGLIP,
    DEFAULT_WHISPER,
    EXTENSION_FIELD,
    is_release_config,
    release_to_native,
    uses_checkpoint_vision_tower,
)
from salmonn_o1.release.keys import (
    RELEASE_RULES,
    SIGLIP_RULES,
    WHISPER_RULES,
    KeyMapping,
    Rule,
    map_keys,
    strip_wrappers,
    to_release,
)
from salmonn_o1.tokenizer import CHAT_TEMPLATE, PAD_TOKEN, has_tokenizer_files

logger = logging.getLogger(__name__)

INDEX_FILES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
SINGLE_FILES = ("model.safetensors", "pytorch_model.bin")
ADAPTER_FILES = ("adapter_model.safetensors", "adapter_model.bin")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_AUTO_DEVICE_MAPS = ("auto", "balanced", "balanced_low_0", "sequential")
_SHOWN = 12
_RELEASED_ENCODERS = {"vision": DEFAULT_SIGLIP.split("/")[-1], "audio": DEFAULT_WHISPER.split("/")[-1]}


# ---------------------------------------------------------------- files and shards
def weight_files(directory: Path) -> dict[Path, list[str]]:
    """Every weight file of a checkpoint and the tensor names it holds, in shard order.

    An index file (`*.index.json`) is trusted for the names without opening
    the shards; a shard it lists that is absent is an error naming it.
    """
    directory = Path(directory)
    for index_name in INDEX_FILES:
        index_file = directory / index_name
        if not index_file.exists():
            continue
        try:
            weight_map = json.loads(index_file.read_text())["weight_map"]
        except (ValueError, KeyError) as error:
            raise CheckpointError(f"{index_file}: not a weight index ({error})") from error
        files: dict[Path, list[str]] = {}
        for key, name in weight_map.items():
            files.setdefault(directory / name, []).append(key)
        absent = [path for path in files if not path.exists()]
        if absent:
            raise CheckpointError("; ".join(
                f"{directory}: shard {path.name} listed in {index_name} is missing "
                f"({len(files[path])} tensors, e.g. {files[path][0]})" for path in absent
            ))
        return dict(sorted(files.items()))
    for name in SINGLE_FILES:
        if (directory / name).exists():
            with ShardReader(directory / name) as shard:
                return {directory / name: shard.keys()}
    raise CheckpointError(f"{directory}: no weights found (looked for {', '.join(INDEX_FILES + SINGLE_FILES)})")


class ShardReader:
    """One weight file opened for reading tensors one at a time (safetensors lazily, `.bin` memory-mapped)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._handle = None
        self._tensors: dict[str, torch.Tensor] | None = None

    def __enter__(self) -> ShardReader:
        try:
            if self.path.suffix == ".safetensors":
                self._handle = safe_open(str(self.path), framework="pt", device="cpu")
                self._handle.__enter__()
            else:
                try:
                    self._tensors = torch.load(self.path, map_location="cpu", mmap=True, weights_only=True)
                except RuntimeError:  # an old (non-zip) torch.save file cannot be memory-mapped
                    self._tensors = torch.load(self.path, map_location="cpu", weights_only=True)
        except (SafetensorError, RuntimeError, OSError, pickle.UnpicklingError, EOFError) as error:
            raise CheckpointError(f"{self.path}: cannot read weights: {error}") from error
        if self._tensors is not None and not isinstance(self._tensors, dict):
            raise CheckpointError(f"{self.path}: holds a {type(self._tensors).__name__}, not a state dict")
        return self

    def __exit__(self, *exc) -> None:
        if self._handle is not None:
            self._handle.__exit__(*exc)
        self._handle = self._tensors = None

    def keys(self) -> list[str]:
        return list(self._handle.keys()) if self._handle is not None else list(self._tensors)

    def get(self, key: str) -> torch.Tensor:
        try:
            if self._handle is not None:
                return self._handle.get_tensor(key)
            # A memory-mapped tensor would keep the file mapped: copy it out.
            return self._tensors[key].clone()
        except (KeyError, SafetensorError) as error:
            raise CheckpointError(f"{self.path}: has no tensor {key} (the index says it does)") from error


# ---------------------------------------------------------------- where a checkpoint is
def is_release_checkpoint(directory: str | Path) -> bool:
    config_file = Path(directory) / "config.json"
    if not config_file.is_file():
        return False
    try:
        return is_release_config(json.loads(config_file.read_text()))
    except ValueError:
        return False


def resolve_directory(source: str | Path, what: str = "checkpoint") -> Path:
    """A local directory, or a hub id downloaded (or found in the cache) with `huggingface_hub`."""
    path = Path(str(source)).expanduser()
    if path.is_dir():
        return path
    if not _HUB_ID.match(str(source)):
        raise CheckpointError(f"{what} {source}: no such directory")
    try:
        from huggingface_hub import list_repo_files, snapshot_download

        files = list_repo_files(str(source))
        ignore = ["*.msgpack", "*.h5", "*.onnx", "*.ot", "*fp32*", "optimizer*", "training_args.bin", "rng_state*"]
        if any(name.endswith(".safetensors") for name in files):
            ignore.append("*.bin")
        return Path(snapshot_download(str(source), ignore_patterns=ignore))
    except Exception as error:  # noqa: BLE001 - any hub failure becomes one clear message
        raise CheckpointError(f"{what} {source}: not a local directory and could not be downloaded: {error}") from error


def find_release_checkpoint(source: str | Path) -> Path | None:
    """The directory of a released-layout checkpoint named by `source`, or None if it is not one."""
    path = Path(str(source)).expanduser()
    if path.is_dir():
        return path if is_release_checkpoint(path) else None
    if not _HUB_ID.match(str(source)):
        return None
    try:
        from huggingface_hub import hf_hub_download

        raw = json.loads(Path(hf_hub_download(str(source), "config.json")).read_text())
    except Exception:  # noqa: BLE001 - not a reachable hub repo: let the native loader report it
        return None
    return resolve_directory(source) if is_release_config(raw) else None


# ---------------------------------------------------------------- tokenizer
def load_release_tokenizer(directory: str | Path) -> PreTrainedTokenizerBase:
    """The checkpoint's own (Qwen2) tokenizer and chat template, with `<image>` as one token.

    The release splits the prompt text at "<image>" and splices the media in
    there (internal id -200); an added token id plays that role for us.
    """
    directory = Path(directory)
    if not has_tokenizer_files(directory):
        raise CheckpointError(f"{directory}: no tokenizer files (tokenizer.json, or vocab.json + merges.txt)")
    # A Qwen2 config stands in for config.json, whose model_type transformers does not know.
    tokenizer = AutoTokenizer.from_pretrained(str(directory), config=Qwen2Config())
    vocab = tokenizer.get_vocab()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = PAD_TOKEN if PAD_TOKEN in vocab else tokenizer.eos_token
    absent = [token for token in (IM_START, IM_END) if token not in vocab]
    if absent:
        raise CheckpointError(f"{directory}: the tokenizer lacks the ChatML token(s) {', '.join(absent)}")
    if MEDIA_TOKEN not in vocab:
        tokenizer.add_tokens([MEDIA_TOKEN], special_tokens=True)
    if not tokenizer.chat_template:
        tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


# ---------------------------------------------------------------- the loading report
@dataclass
class LoadReport:
    """What loading did, by name: the basis of strict errors and of `output_loading_info`."""

    sources: dict[str, str] = field(default_factory=dict)  # label -> directory
    loaded: dict[str, str] = field(default_factory=dict)  # our name -> "label: source name"
    missing: list[str] = field(default_factory=list)  # our names nothing provided
    unexpected: list[str] = field(default_factory=list)  # "label: source name" no rule covers
    mismatched: list[tuple[str, str, tuple, tuple]] = field(default_factory=list)  # source, ours, theirs, model
    dropped: dict[str, str] = field(default_factory=dict)  # "label: source name" -> why
    lora_merged: list[str] = field(default_factory=list)
    hints: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        out = []
        if self.missing:
            out.append("missing: " + _shown(f"{name} (released name {to_release(name) or '-'})" for name in self.missing))
        if self.unexpected:
            out.append("unexpected: " + _shown(self.unexpected))
        if self.mismatched:
            out.append("wrong shapes: " + _shown(
                f"{source} -> {native} (checkpoint {tuple(theirs)} vs model {tuple(ours)})"
                for source, native, theirs, ours in self.mismatched
            ))
        return out

    def as_info(self) -> dict[str, Any]:
        """In the shape of `transformers`' loading info (names are ours, or the source's when unmapped)."""
        return {"missing_keys": list(self.missing), "unexpected_keys": list(self.unexpected),
                "mismatched_keys": [(n, tuple(t), tuple(o)) for _, n, t, o in self.mismatched],
                "dropped_keys": dict(self.dropped), "lora_merged": list(self.lora_merged),
                "sources": dict(self.sources)}


def _shown(items) -> str:
    items = sorted(items)
    return ", ".join(items[:_SHOWN]) + (f" ... ({len(items)} in all)" if len(items) > _SHOWN else "")


# ---------------------------------------------------------------- loading
@dataclass
class _Source:
    label: str
    directory: Path
    files: dict[Path, list[str]]
    mapping: KeyMapping

    def name(self, key: str) -> str:
        """How a tensor is named in reports: bare for the main checkpoint, labelled for the others."""
        return key if self.label == "checkpoint" else f"{self.label}: {key}"


def _source(label: str, directory: Path, rules: tuple[Rule, ...], vision_layers: int | None,
            files: dict[Path, list[str]] | None = None) -> _Source:
    files = files if files is not None else weight_files(directory)
    keys = [key for names in files.values() for key in names]
    return _Source(label, directory, files, map_keys(keys, rules, vision_layers))


def _encoder_config(directory: Path, kind: str) -> SiglipVisionConfig | WhisperConfig:
    """The vision (SigLIP) or audio (Whisper) config of a separately loaded encoder checkpoint."""
    config_file = directory / "config.json"
    if not config_file.exists():
        raise CheckpointError(f"{directory}: no config.json for the {kind} encoder")
    raw = json.loads(config_file.read_text())
    if kind == "vision":
        raw = raw.get("vision_config", raw) if raw.get("model_type") == "siglip" else raw
        config = SiglipVisionConfig.from_dict({k: v for k, v in raw.items() if k != "model_type"})
        config.vision_use_head = False
        return config
    if raw.get("model_type") != "whisper":
        raise CheckpointError(f"{directory}: model_type {raw.get('model_type')!r} is not a Whisper checkpoint")
    return WhisperConfig.from_dict(raw)


def _encoder_config_for(reference: str | Path, kind: str) -> SiglipVisionConfig | WhisperConfig | None:
    """The config of an encoder checkpoint named by a path or hub id; None for the release's own
    encoders (their shapes are built in), so no download is needed just to build the model."""
    path = Path(str(reference)).expanduser()
    if path.is_dir():
        return _encoder_config(path, kind)
    if str(reference).rstrip("/").endswith(_RELEASED_ENCODERS[kind]):
        return None
    try:
        from huggingface_hub import hf_hub_download

        config_file = Path(hf_hub_download(str(reference), "config.json"))
    except Exception as error:  # noqa: BLE001 - any hub failure becomes one clear message
        raise CheckpointError(f"{kind} encoder {reference}: not a local directory and its config.json could "
                              f"not be fetched: {error}") from error
    return _encoder_config(config_file.parent, kind)


def _lora_scale(directory: Path, raw: dict, lora_scale: float | None) -> float:
    if lora_scale is not None:
        return float(lora_scale)
    adapter_config = directory / "adapter_config.json"
    if adapter_config.exists():
        settings = json.loads(adapter_config.read_text())
        rank, alpha = settings["r"], settings["lora_alpha"]
        return alpha / math.sqrt(rank) if settings.get("use_rslora") else alpha / rank
    args = raw.get("model_args") or {}
    if "lora_r" in args and "lora_alpha" in args:
        return args["lora_alpha"] / args["lora_r"]
    raise CheckpointError(
        f"{directory}: the checkpoint holds LoRA adapters but neither adapter_config.json nor "
        "model_args.lora_r/lora_alpha says their scale; pass lora_scale=alpha/r (the paper: r 64, alpha 256 -> 4.0)"
    )


def _lora_deltas(sources: list[_Source], scale: float, report: LoadReport) -> dict[str, torch.Tensor]:
    """Base weight name (wrappers stripped) -> scale * B @ A, read before the main pass (adapters are small)."""
    wanted = {key: (base, part) for source in sources for base, parts in source.mapping.lora.items()
              for part, key in parts.items()}
    parts: dict[str, dict[str, torch.Tensor]] = {}
    for source in sources:
        for path, keys in source.files.items():
            keys = [key for key in keys if key in wanted]
            if not keys:
                continue
            with ShardReader(path) as shard:
                for key in keys:
                    base, part = wanted[key]
                    parts.setdefault(strip_wrappers(base), {})[part] = shard.get(key).float()
    deltas = {}
    for base, pair in parts.items():
        if set(pair) != {"A", "B"}:
            report.unexpected.append(f"LoRA adapter without its partner: {base}")
            continue
        deltas[base] = scale * (pair["B"] @ pair["A"])
    return deltas


def _device_map(model: nn.Module, device_map, dtype: torch.dtype | None) -> dict[str, Any] | None:
    if device_map is None:
        return None
    if isinstance(device_map, dict):
        return dict(device_map)
    if device_map not in _AUTO_DEVICE_MAPS:
        return {"": device_map}
    from accelerate import infer_auto_device_map
    from accelerate.utils import get_balanced_memory

    options = {"no_split_module_classes": model._no_split_modules, "dtype": dtype}
    max_memory = None
    if device_map != "sequential":
        max_memory = get_balanced_memory(model, low_zero=device_map == "balanced_low_0", **options)
    placed = infer_auto_device_map(model, max_memory=max_memory, **options)
    if "disk" in placed.values():
        raise CheckpointError(
            "device_map='auto' needs disk offload for this model on this machine; the release loader does not "
            "offload to disk: convert to our layout (`salmonn-o1 convert`) and use from_pretrained(..., "
            "device_map='auto', offload_folder=...)"
        )
    return placed


def _device_for(name: str, device_map: dict[str, Any] | None) -> torch.device | str | int:
    if device_map is None:
        return "cpu"
    best = None
    for prefix in device_map:
        if (prefix == "" or name == prefix or name.startswith(prefix + ".")) and (best is None or len(prefix) > len(best)):
            best = prefix
    if best is None:
        raise CheckpointError(f"device_map does not place {name}")
    return device_map[best]


def _assign(model: nn.Module, name: str, value: torch.Tensor) -> None:
    module_name, _, attr = name.rpartition(".")
    module = model.get_submodule(module_name)
    old = module._parameters[attr]
    module._parameters[attr] = nn.Parameter(value, requires_grad=old.requires_grad)


def _initial_value(model: nn.Module, name: str, shape: torch.Size, dtype: torch.dtype) -> torch.Tensor:
    """A fresh value for a parameter the checkpoint lacks (strict=False), as our init would give it."""
    module_name, _, attr = name.rpartition(".")
    module = model.get_submodule(module_name)
    if name == "audio_encoder.embed_positions.weight":
        from transformers.models.whisper.modeling_whisper import sinusoids

        return sinusoids(*shape).to(dtype)
    if attr == "bias":
        return torch.zeros(shape, dtype=dtype)
    if "Norm" in type(module).__name__:
        return torch.ones(shape, dtype=dtype)
    std = model.config.initializer_range
    if name == "image_newline":
        std = 1.0 / math.sqrt(shape.numel())
    return torch.randn(shape, dtype=torch.float32).mul_(std).to(dtype)


def load_release_model(
    source: str | Path,
    *,
    strict: bool = True,
    dtype: torch.dtype | str | None = None,
    torch_dtype: torch.dtype | str | None = None,
    device_map: str | dict | None = None,
    siglip_path: str | Path | None = None,
    whisper_path: str | Path | None = None,
    lora_scale: float | None = None,
    media_token_id: int | None = None,
    attn_implementation: str | None = None,
    output_loading_info: bool = False,
    release_overrides: dict | None = None,
    **unsupported,
):
    """`SalmonnO1ForConditionalGeneration` from a released-layout directory (or hub id).

    dtype (alias torch_dtype): cast every tensor to it; None keeps each as stored.
    device_map: "auto"/"balanced"/"sequential" (accelerate), a device, or a dict
    of module prefix -> device. siglip_path / whisper_path: SigLIP / Whisper
    checkpoints (directory or hub id) giving the encoders' shapes and the
    weights the main checkpoint lacks (default: the config's `mm_vision_tower`
    / `whisper_path`; the released encoders' shapes are built in).
    strict=False loads what fits and initialises the rest (see the report).
    release_overrides: values for the config.json fields the released
    inference script overwrites (`mm_spatial_pool_mode`,
    `mm_spatial_pool_stride`, `mm_newline_position`, `mm_pooling_position`,
    `modality_max_length`), which otherwise take the release's values.
    """
    for harmless in ("low_cpu_mem_usage", "trust_remote_code"):  # loading is always lazy; no remote code
        unsupported.pop(harmless, None)
    if unsupported:
        quantise = {"quantization_config", "load_in_8bit", "load_in_4bit"} & set(unsupported)
        if quantise:
            raise CheckpointError(
                f"{', '.join(sorted(quantise))}: 8-/4-bit loading works on our layout: run `salmonn-o1 convert "
                "SRC DST --to native`, then from_pretrained(DST, quantization_config=BitsAndBytesConfig(...))"
            )
        raise TypeError(f"load_release_model got unsupported arguments: {', '.join(sorted(unsupported))}")
    from accelerate import init_empty_weights

    dtype = _as_dtype(dtype if dtype is not None else torch_dtype)
    directory = resolve_directory(source)
    config_file = directory / "config.json"
    if not config_file.exists():
        raise CheckpointError(f"{directory}: no config.json")
    raw = json.loads(config_file.read_text())
    report = LoadReport()
    main_files = weight_files(directory)

    # SigLIP / Whisper: shapes from their own checkpoints (given, else the ones config.json names),
    # weights from there only for what the main checkpoint lacks; its copies win, as in the release.
    # (A `salmonn_o1` field, written by our converter, states the shapes exactly: given paths still win.)
    written = raw.get(EXTENSION_FIELD) or {}
    given = {"vision": siglip_path, "audio": whisper_path}
    encoders = {"vision": siglip_path or raw.get("mm_vision_tower") or DEFAULT_SIGLIP,
                "audio": whisper_path or raw.get("whisper_path") or DEFAULT_WHISPER}
    published_siglip = not uses_checkpoint_vision_tower(raw)

    @contextmanager
    def reading_encoder(kind: str):
        """An unreadable published SigLIP, when config.json says to use it, is explained as such."""
        try:
            yield
        except CheckpointError as error:
            if kind != "vision" or not published_siglip:
                raise
            raise CheckpointError(
                f"{directory}: config.json's mm_tunable_parts does not name mm_vision_tower (nor is "
                "unfreeze_mm_vision_tower set), so the release ignores the checkpoint's SigLIP weights and uses the "
                f"published SigLIP from {encoders['vision']}, which could not be read ({error}); pass siglip_path= "
                f"(`--siglip` for convert) a local copy of {DEFAULT_SIGLIP}"
            ) from error

    encoder_configs = {}
    for kind, reference in encoders.items():
        with reading_encoder(kind):
            encoder_configs[kind] = (_encoder_config_for(reference, kind)
                                     if given[kind] is not None or f"{kind}_config" not in written else None)
    if media_token_id is None and has_tokenizer_files(directory):
        media_token_id = int(load_release_tokenizer(directory).convert_tokens_to_ids(MEDIA_TOKEN))
    config = release_to_native(raw, vision_config=encoder_configs["vision"], audio_config=encoder_configs["audio"],
                               media_token_id=media_token_id, release_overrides=release_overrides)
    config._name_or_path = str(directory)
    with init_empty_weights(include_buffers=False):
        model = SalmonnO1ForConditionalGeneration(config)
    expected = dict(model.named_parameters(remove_duplicate=False))
    tied = {"language_model.lm_head.weight"} if config.text_config.tie_word_embeddings else set()
    layers = config.vision_layers_used

    rules = RELEASE_RULES
    if published_siglip:  # the rules that map the checkpoint's SigLIP drop it instead, saying why
        why = ("config.json's mm_tunable_parts does not name mm_vision_tower (nor is unfreeze_mm_vision_tower set): "
               "the release uses the published SigLIP")
        rules = tuple(Rule(rule.release, None, why) if (rule.native or "").startswith("vision_tower.") else rule
                      for rule in RELEASE_RULES)
    sources = [_source("checkpoint", directory, rules, layers, main_files)]
    adapter = next((directory / name for name in ADAPTER_FILES if (directory / name).exists()), None)
    if adapter is not None:
        with ShardReader(adapter) as shard:
            sources.append(_source("adapter", directory, rules, layers, {adapter: shard.keys()}))
    provided = {native for source in sources for native in source.mapping.mapped.values()}
    for kind, label, prefix, encoder_rules in (("vision", "SigLIP", "vision_tower.", SIGLIP_RULES),
                                       ("audio", "Whisper", "audio_encoder.", WHISPER_RULES)):
        if all(name in provided for name in expected if name.startswith(prefix)):
            continue
        with reading_encoder(kind):
            encoder = _source(label, resolve_directory(encoders[kind], f"{label} checkpoint"), encoder_rules, layers)
        encoder.mapping.mapped = {k: v for k, v in encoder.mapping.mapped.items() if v not in provided}
        sources.append(encoder)
    for source in sources:
        report.sources[source.label] = str(source.directory)
        report.unexpected += [source.name(key) for key in source.mapping.unmapped]
        report.dropped.update({source.name(key): why for key, why in source.mapping.dropped.items()})

    deltas = {}
    if any(source.mapping.lora for source in sources):
        deltas = _lora_deltas(sources, _lora_scale(directory, raw, lora_scale), report)

    placement = _device_map(model, device_map, dtype)
    for source in sources:
        for path, keys in source.files.items():
            keys = [key for key in keys if key in source.mapping.mapped]
            if not keys:
                continue
            with ShardReader(path) as shard:
                for key in keys:
                    native = source.mapping.mapped[key]
                    label = source.name(key)
                    if native not in expected:
                        report.unexpected.append(label)
                        continue
                    tensor = shard.get(key)
                    delta = deltas.pop(strip_wrappers(key), None)
                    if delta is not None:
                        tensor = (tensor.float() + delta).to(tensor.dtype)
                        report.lora_merged.append(native)
                    target = expected[native]
                    if tuple(tensor.shape) != tuple(target.shape):
                        report.mismatched.append((label, native, tuple(tensor.shape), tuple(target.shape)))
                        continue
                    _assign(model, native, tensor.to(device=_device_for(native, placement),
                                                      dtype=dtype or tensor.dtype))
                    report.loaded[native] = label
    if deltas:
        report.unexpected += [f"LoRA adapter for {base}, which the checkpoint lacks" for base in sorted(deltas)]
    report.missing = sorted(name for name in expected if name not in report.loaded and name not in tied)
    if any(name.startswith("vision_tower.") for name in report.missing):
        report.hints.append(f"SigLIP weights came from {report.sources.get('SigLIP', 'nowhere')}; "
                            f"pass siglip_path= (the release uses {DEFAULT_SIGLIP})")
    if any(name.startswith("audio_encoder.") for name in report.missing):
        report.hints.append(f"Whisper weights came from {report.sources.get('Whisper', 'nowhere')}; "
                            f"pass whisper_path= (the release uses {DEFAULT_WHISPER})")

    problems = report.problems()
    if problems and strict:
        raise CheckpointError(
            f"{directory}: the released checkpoint does not fit the model its config.json describes: "
            + "; ".join(problems + report.hints) + " (pass strict=False to load the matching tensors only)"
        )
    if problems:
        logger.warning("%s: loaded partially: %s", directory, "; ".join(problems))
    for name in report.missing:
        target = expected[name]
        value = _initial_value(model, name, target.shape, dtype or torch.float32)
        _assign(model, name, value.to(_device_for(name, placement)))
    if tied:
        model.language_model.lm_head.weight = model.language_model.model.embed_tokens.weight
    if attn_implementation is not None:
        model.set_attn_implementation(attn_implementation)
    if placement is not None:
        from accelerate import dispatch_model

        model = dispatch_model(model, placement)
        model.hf_device_map = placement
    model.eval()
    model.set_trainable(vision_tower=not config.freeze_vision_tower, audio_encoder=not config.freeze_audio_encoder)
    return (model, report.as_info()) if output_loading_info else model


def load_release_model_and_processor(source: str | Path, tokenizer_path: str | Path | None = None, **kwargs):
    """The model (see `load_release_model`) and a processor on the checkpoint's own tokenizer."""
    directory = resolve_directory(source)
    tokenizer = load_release_tokenizer(tokenizer_path or directory)
    kwargs.setdefault("media_token_id", int(tokenizer.convert_tokens_to_ids(MEDIA_TOKEN)))
    model = load_release_model(directory, **kwargs)
    return model, SalmonnO1Processor(tokenizer, model.config)


def _as_dtype(dtype: torch.dtype | str | None) -> torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        return None
    value = getattr(torch, str(dtype), None)
    if not isinstance(value, torch.dtype):
        raise CheckpointError(f"unknown dtype {dtype!r}")
    return value

