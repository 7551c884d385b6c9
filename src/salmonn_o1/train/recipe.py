"""Training recipes: one YAML file + `key=value` overrides -> typed dataclasses.

A recipe is the whole description of a run (model, data, what is trained,
optimisation, cadence), saved beside every checkpoint so a run can be read,
repeated and resumed. Unknown keys and wrong types are errors naming the key:
a typo in a recipe must not silently train the wrong thing.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from salmonn_o1.errors import RecipeError


@dataclass
class LoraRecipe:
    """LoRA on the LLM via peft (the paper: r 64, alpha 256)."""

    enabled: bool = False
    r: int = 64
    alpha: int = 256
    dropout: float = 0.05
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )


@dataclass
class ModelRecipe:
    source: str = "tiny"  # a preset name or a checkpoint directory
    train: list[str] = field(default_factory=lambda: ["aligners", "llm"])  # parameter groups trained
    lora: LoraRecipe = field(default_factory=LoraRecipe)
    gradient_checkpointing: bool = False
    init_seed: int = 0  # initialisation of a preset model
    # Model components a recipe asks for by import path, `{_component_: pkg.mod.Name, **kwargs}`:
    # steps that initialise a fresh preset model or prepare it for training (a research device
    # such as a built-in circuit); see salmonn_o1.train.model_setup.ModelComponent.
    components: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class DataSource:
    """Items from a file on disk (`path`), or AVR-Synth rendered on the fly (`synthetic: train`)."""

    path: str | None = None
    synthetic: str | None = None
    weight: float = 1.0
    first_index: int = 0  # synthetic: index of the first clip of the split used
    task: str = "qa"  # synthetic: "qa" (its question), "describe" (dense timeline description) or
    # "text" (the question asked about the description, no media: reasoning learnt from text) or
    # "options" (no clip: "Which option is the purple circle?", the option-letter look-up alone)
    families: list[str] | None = None  # synthetic: only these question families (curriculum stages)
    first_steps: int = 0  # > 0: the target is only the first k gold steps, one turn (curriculum stages)
    loss_last_steps: int = 0  # > 0: the earlier steps stay as context but only the last k steps of
    # the reasoning turn and the answer turn carry the loss (curriculum stages)
    step_format: str = "gold"  # "lookup": the cross-modal families' gold steps rewritten as look-ups
    # of the frame at a time ("At 9.0 s the screen shows the green square."); other items unchanged


@dataclass
class DataRecipe:
    sources: list[DataSource] = field(default_factory=list)
    direct_fraction: float = 0.0  # share of items with steps trained in direct-answer mode
    max_length: int = 4096  # longer samples are skipped and counted
    num_workers: int = 0
    length_grouping: bool = True
    group_factor: int = 16  # batches per length-sorted pool
    synthetic_size: int = 64  # pixels of frames rendered on the fly
    cache_media: int = 0  # keep this many decoded items' features in memory (small sets, many epochs)
    dev: DataSource | None = None  # a fixed dev subset for periodic evaluation
    dev_items: int = 16
    option_letter_weight: float = 0.0  # > 0: SFT adds this times the mean loss on option letters


@dataclass
class OptimRecipe:
    lr: float = 1e-4
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    schedule: str = "cosine"  # cosine | linear | constant
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0
    max_grad_norm: float = 1.0
    batch_size: int = 4  # global samples per micro-step (split across processes)
    grad_accum: int = 1
    max_steps: int = 100


@dataclass
class RunRecipe:
    out_dir: str = "runs/sft"
    seed: int = 0
    precision: str = "no"  # no | bf16 | fp16 (accelerate mixed precision)
    log_every: int = 10
    save_every: int = 100
    keep_last: int = 2
    eval_every: int = 0  # 0 = never
    tensorboard: bool = True  # when tensorboard is installed


@dataclass
class Recipe:
    stage: str = "sft"
    model: ModelRecipe = field(default_factory=ModelRecipe)
    data: DataRecipe = field(default_factory=DataRecipe)
    optim: OptimRecipe = field(default_factory=OptimRecipe)
    run: RunRecipe = field(default_factory=RunRecipe)
    stage_options: dict[str, Any] = field(default_factory=dict)  # stage-specific (pDPO: beta, mu, ...)
    # Stages other than sft and pdpo: the objective component the stage trains with,
    # `{_component_: pkg.mod.Name, **options}` (see salmonn_o1.train.component_stage).
    objective: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))


def load_recipe(path: str | Path | None = None, overrides: list[str] | None = None) -> Recipe:
    """Read a YAML recipe (or the defaults when `path` is None) and apply `a.b.c=value` overrides."""
    raw: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise RecipeError(f"{path}: recipe file not found")
        try:
            loaded = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise RecipeError(f"{path}: not valid YAML ({exc})") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise RecipeError(f"{path}: a recipe is a mapping, got {type(loaded).__name__}")
        raw = loaded or {}
    for override in overrides or []:
        apply_override(raw, override)
    return build(Recipe, raw, "recipe")


def apply_override(raw: dict[str, Any], override: str) -> None:
    """`optim.lr=3e-4` -> raw["optim"]["lr"] = 3e-4 (the value parsed as YAML)."""
    key, sep, value = override.partition("=")
    if not sep or not key:
        raise RecipeError(f"override {override!r}: expected key=value, e.g. optim.lr=3e-4")
    parts = key.strip().split(".")
    node = raw
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise RecipeError(f"override {override!r}: {part} is not a section")
        node = child
    node[parts[-1]] = yaml.safe_load(value)


def build(cls: type, raw: Any, where: str) -> Any:
    """A dataclass from a mapping, checking every key and value type."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise RecipeError(f"{where}: expected a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise RecipeError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
    values = {name: _convert(hints[name], value, f"{where}.{name}") for name, value in raw.items()}
    return cls(**values)


def _convert(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        return _convert(options[0], value, where)
    if dataclasses.is_dataclass(hint):
        return build(hint, value, where)
    if origin is list:
        if not isinstance(value, list):
            raise RecipeError(f"{where}: expected a list, got {value!r}")
        return [_convert(args[0], v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise RecipeError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if hint is float and not isinstance(value, bool):
        try:  # YAML 1.1 reads "3e-4" (no dot) as a string
            return float(value)
        except (TypeError, ValueError):
            raise RecipeError(f"{where}: expected a number, got {value!r}") from None
    if hint is Any or isinstance(value, hint) and not (hint is int and isinstance(value, bool)):
        return value
    raise RecipeError(f"{where}: expected {hint.__name__}, got {value!r}")
