"""Training recipes: one YAML file + `key=value` overrides -> typed dataclasses.

A recipe is the whole description of a run (model, data, what is trained,
optimisation, cadence), saved beside every checkpoint so a run can be read,
repeated and resumed. Unknown keys and wrong types are errors naming the key:
a typo in a recipe must not silently train the wrong thing.
"""

from __future__ import annotations

import dataclasses
import math
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
    """One SFT data source: a JSONL items file (`path`), or a component the recipe names.

    `component` is `{"_component_": "package.module.Name", **kwargs}`; it is built with
    `processor=` added and must have the shape of `salmonn_o1.train.sft_data.ItemSource`
    (items and media by index). Generated data and curriculum devices come in this way, so the
    core data code knows no data set by name.
    """

    path: str | None = None
    component: dict[str, Any] | None = None
    weight: float = 1.0  # share of the run's examples drawn from this source


@dataclass
class DataRecipe:
    sources: list[DataSource] = field(default_factory=list)
    direct_fraction: float = 0.0  # share of items with steps trained in direct-answer mode
    max_length: int = 4096  # longer samples are skipped and counted
    num_workers: int = 0
    length_grouping: bool = True
    group_factor: int = 16  # batches per length-sorted pool
    cache_media: int = 0  # keep this many decoded items' features in memory (small sets, many epochs)
    dev: DataSource | None = None  # a fixed dev subset for periodic evaluation
    dev_items: int = 16


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


def _option(default: Any, help: str, **metadata: Any) -> Any:
    """A recipe field with its `--flag` help (and, in metadata, choices or cli=False)."""
    return field(default=default, metadata={"help": help, **metadata})


@dataclass
class PDPOSettings:
    """The `pdpo:` section of a recipe, and the options of `salmonn-o1 pdpo <stage>`.

    The stage settings are everything that changes a stage's output (each stage
    records the ones it reads in `<stage>_settings.json`); defaults are the
    paper's where published (P = 10 paths, top T = 3, N = 6 rollouts, frames
    diffusion noise at t = 100; docs/pdpo.md). `questions`, `beta` and
    `sft_weight` concern `train pdpo` only. The CLI flags are generated from
    these fields (`--top-t` for `top_t`; `metadata["flag"]` renames one).
    """

    questions: dict[str, Any] | None = _option(
        None, "where the questions come from: {path: items.jsonl}, or a question-source component "
        "{_component_: package.module.Name, ...} called with processor=...", cli=False)
    pairs: str | None = _option(
        None, "train on this pairs file (e.g. from `salmonn-o1 data import`) instead of running the stages",
        cli=False)
    paths: int = _option(10, "sampled paths per question (paper: 10)")
    rollouts: int = _option(6, "completions per step and branch (paper: 6)")
    top_t: int = _option(3, "steps selected per path (paper: 3)")
    selection: str = _option("contrastive", "which steps are valued", choices=("contrastive", "all", "random"))
    perturb: str = _option("frames-noise", "the media perturbation of contrastive selection",
                           choices=("frames-noise", "audio-noise", "audio-mute", "frame-shuffle"))
    noise_step: int = _option(100, "diffusion noise step t of 1000 (release: 100)")
    max_paths: int | None = _option(None, "paths per question to branch (wrong first); unset: all")
    temperature: float = _option(1.0, "sampling temperature")
    top_p: float = _option(1.0, "nucleus sampling mass")
    max_new_tokens: int = _option(512, "reasoning turn")
    answer_max_new_tokens: int = _option(64, "final-answer turn")
    max_step_tokens: int = _option(128, "an alternative step")
    alternative_tries: int = _option(3, "samples tried for an alternative step that differs from the original")
    label_mode: str = _option("hard", "hard 1[p > p'] or soft sigma((p - p') / mu) labels",
                              choices=("hard", "soft"))
    mu: float = _option(0.1, "soft-label temperature (not published)")
    reference_logps: bool = _option(True, "pairs: do not store reference log-probs", flag="--no-ref-logps")
    batch_size: int = _option(64, "sequences per forward in every stage (questions are batched to fill it); "
                              "changes speed and memory, not the records")
    seed: int | None = _option(None, "seed of every sampling and selection (unset: the recipe's run.seed, "
                               "on the command line 0)")
    model: str | None = _option(None, "recorded, so a resumed stage cannot switch models silently "
                                "(unset: the recipe's model.source, on the command line --model)", cli=False)
    beta: float = _option(0.1, "DPO temperature (not published)", cli=False)
    sft_weight: float = _option(0.0, "weight of a cross-entropy term on the chosen continuations", cli=False)

    def __post_init__(self):
        for f in dataclasses.fields(self):
            choices = f.metadata.get("choices")
            if choices and getattr(self, f.name) not in choices:
                raise RecipeError(f"pdpo.{f.name} must be one of {', '.join(choices)}, got {getattr(self, f.name)!r}")
        checks = [(self.paths >= 1 and self.rollouts >= 1 and self.top_t >= 1, "paths, rollouts, top_t must be >= 1"),
                  (self.mu > 0 and self.temperature > 0, "mu and temperature must be > 0"),
                  (self.beta > 0, "beta must be > 0"),
                  (self.batch_size >= 1, "batch_size must be >= 1")]
        for ok, message in checks:
            if not ok:
                raise RecipeError(f"pdpo: {message}")

    def resolved(self, model: str | None = None, seed: int = 0) -> PDPOSettings:
        """These settings with `model` and `seed` filled in where unset (the stages record both)."""
        return dataclasses.replace(self, model=self.model if self.model is not None else model,
                                   seed=self.seed if self.seed is not None else seed)

    def generation(self) -> dict[str, Any]:
        return {"max_new_tokens": self.max_new_tokens, "answer_max_new_tokens": self.answer_max_new_tokens,
                "temperature": self.temperature, "top_p": self.top_p}


@dataclass
class GRPOSettings:
    """The `grpo:` section of a recipe (`salmonn-o1 train grpo`; salmonn_o1.grpo, docs/grpo.md).

    The names and defaults follow TRL's `GRPOConfig` (beta, epsilon, epsilon_high,
    num_generations, loss_type, scale_rewards, num_iterations), except beta: 0.04, the
    GRPO paper's and TRL's earlier default, since the issue asks for a KL penalty.
    """

    questions: dict[str, Any] | None = None  # as pdpo.questions: {path: items.jsonl} or a question source
    num_generations: int = 8  # G: paths sampled per question
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 256  # the reasoning turn
    answer_max_new_tokens: int = 16  # the final-answer turn
    beta: float = 0.04  # KL penalty to the reference (0: no reference model)
    epsilon: float = 0.2  # lower clip of the ratio
    epsilon_high: float | None = None  # upper clip (unset: epsilon; DAPO: 0.28)
    loss_type: str = "dapo"  # grpo | bnpo | dr_grpo | dapo (TRL's default)
    scale_rewards: str = "group"  # group | batch | none
    num_iterations: int = 1  # policy updates per generation (only 1: see docs/grpo.md)
    format_weight: float = 0.0  # weight of the format reward (numbered steps ending "The answer is X.")
    generation_budget: int | None = None  # stop once this many tokens were sampled (reasoning + answer)
    seed: int | None = None  # sampling seed (unset: run.seed)

    def __post_init__(self):
        choices = {"loss_type": ("grpo", "bnpo", "dr_grpo", "dapo"), "scale_rewards": ("group", "batch", "none")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise RecipeError(f"grpo.{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        checks = [(self.num_generations >= 2, "num_generations must be >= 2 (advantages are relative to the group)"),
                  (self.temperature > 0 and 0 < self.top_p <= 1, "temperature must be > 0 and top_p in (0, 1]"),
                  (self.max_new_tokens >= 1 and self.answer_max_new_tokens >= 1, "max_new_tokens must be >= 1"),
                  (self.beta >= 0 and self.epsilon >= 0, "beta and epsilon must be >= 0"),
                  (self.epsilon_high is None or self.epsilon_high >= 0, "epsilon_high must be >= 0"),
                  (self.num_iterations == 1, "num_iterations: only 1 is supported (one update per generation)"),
                  (self.generation_budget is None or self.generation_budget > 0, "generation_budget must be > 0")]
        for ok, message in checks:
            if not ok:
                raise RecipeError(f"grpo: {message}")


@dataclass
class Recipe:
    stage: str = "sft"
    model: ModelRecipe = field(default_factory=ModelRecipe)
    data: DataRecipe = field(default_factory=DataRecipe)
    optim: OptimRecipe = field(default_factory=OptimRecipe)
    run: RunRecipe = field(default_factory=RunRecipe)
    pdpo: PDPOSettings | None = None  # stage pdpo: the data stages and DPO (defaults when absent)
    grpo: GRPOSettings | None = None  # stage grpo: sampling, rewards and the GRPO loss (defaults when absent)
    # A component in place of the stage's own loss, `{_component_: pkg.mod.Name, **options}`:
    # for sft a variant of the SFT objective (built with `processor=`, e.g. an extra loss on some
    # tokens); for any other stage, the objective it trains with (salmonn_o1.train.component_stage).
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
    recipe = build(Recipe, raw, "recipe")
    validate_recipe(recipe)
    return recipe


# (section, field, lowest allowed, highest allowed or None): checked when a recipe loads, so
# `optim.max_steps=-1` is one RecipeError, not a traceback from the data sampler minutes later.
_BOUNDS = [
    ("optim", "lr", 0.0, None), ("optim", "weight_decay", 0.0, None), ("optim", "warmup_steps", 0, None),
    ("optim", "min_lr_ratio", 0.0, 1.0), ("optim", "max_grad_norm", 0.0, None), ("optim", "batch_size", 1, None),
    ("optim", "grad_accum", 1, None), ("optim", "max_steps", 1, None),
    ("data", "direct_fraction", 0.0, 1.0), ("data", "max_length", 1, None), ("data", "num_workers", 0, None),
    ("data", "group_factor", 1, None), ("data", "cache_media", 0, None), ("data", "dev_items", 0, None),
    ("run", "log_every", 1, None), ("run", "save_every", 1, None), ("run", "keep_last", 1, None),
    ("run", "eval_every", 0, None),
]
SCHEDULES = ("cosine", "linear", "constant")  # OptimRecipe.schedule
_CHOICES = [("optim", "schedule", SCHEDULES), ("run", "precision", ("no", "bf16", "fp16"))]


def validate_recipe(recipe: Recipe) -> None:
    """Raise RecipeError naming the first field whose value is out of range (`optim.max_steps: -1 ...`)."""
    for section, name, low, high in _BOUNDS:
        value = getattr(getattr(recipe, section), name)
        finite = not isinstance(value, float) or math.isfinite(value)
        if not finite or value < low or (high is not None and value > high):
            bound = f"between {low} and {high}" if high is not None else f">= {low}"
            raise RecipeError(f"{section}.{name}: {value!r} is out of range; it must be {bound}")
    for section, name, choices in _CHOICES:
        value = getattr(getattr(recipe, section), name)
        if value not in choices:
            raise RecipeError(f"{section}.{name}: {value!r} is not one of {', '.join(choices)}")
    for i, source in enumerate(recipe.data.sources):
        if not (math.isfinite(source.weight) and source.weight > 0):
            raise RecipeError(f"data.sources[{i}].weight: {source.weight!r} is out of range; it must be > 0")


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
