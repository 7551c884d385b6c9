"""`salmonn-o1 train pdpo --config RECIPE`: the four data stages, then DPO on the shared engine.

The recipe's `model.source` is the SFT model: it samples the rollouts, scores
the steps, labels them, provides the frozen reference log-probs, and is the
starting point of the trained policy (LoRA or full, as the recipe says).
`stage_options` holds the pDPO settings (docs/pdpo.md) plus `questions`
(`{synthetic: train, n: 200, start: 0}` or `{path: items.jsonl}`), `beta`,
`sft_weight` and `label_mode`. Stage files live in `run.out_dir/stages/`;
each stage skips the questions it already holds, so rerunning resumes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from salmonn_o1.errors import DataError, RecipeError
from salmonn_o1.pdpo import stages
from salmonn_o1.pdpo.objective import DEFAULT_BETA, DPOObjective
from salmonn_o1.train.recipe import Recipe, load_recipe
from salmonn_o1.train.trainer import Trainer, TrainResult

TRAINING_OPTIONS = ("questions", "beta", "sft_weight")


class PlannedPairs(Dataset):
    """`total` training positions over the pair records, in seeded per-epoch shuffles."""

    def __init__(self, pairs: list[dict[str, Any]], total: int, seed: int):
        if not pairs:
            raise DataError("no preference pairs: the policy answered every kept question the same way in all "
                            "paths, or no question was kept (more questions, more paths or a weaker policy help)")
        self.pairs = pairs
        rng = np.random.default_rng(seed)
        order: list[int] = []
        while len(order) < total:
            order += rng.permutation(len(pairs)).tolist()
        self.order = order[:total]

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, position: int) -> dict[str, Any]:
        return self.pairs[self.order[position]]

    def describe(self, position: int) -> str:
        pair = self.pairs[self.order[position]]
        return f"{pair.get('question_id', '?')}:{pair.get('kind', '?')}"

    def length_of(self, position: int) -> int:
        pair = self.pairs[self.order[position]]
        return len(str(pair.get("chosen", ""))) + len(str(pair.get("rejected", "")))


def split_options(recipe: Recipe) -> tuple[stages.PDPOSettings, dict[str, Any]]:
    options = dict(recipe.stage_options)
    training = {key: options.pop(key) for key in TRAINING_OPTIONS if key in options}
    options.setdefault("model", recipe.model.source)
    options.setdefault("seed", recipe.run.seed)
    try:
        settings = stages.PDPOSettings.from_dict(options)
    except DataError as error:
        raise RecipeError(f"recipe.stage_options: {error}") from None
    return settings, training


def stage_questions(spec: dict[str, Any] | None, processor) -> list:
    spec = spec or {"synthetic": "train", "n": 32}
    if "path" in spec:
        return stages.file_questions(spec["path"])
    if "synthetic" in spec:
        return stages.synthetic_questions(spec["synthetic"], int(spec.get("n", 32)), processor,
                                          int(spec.get("start", 0)))
    raise RecipeError("stage_options.questions: give {path: items.jsonl} or {synthetic: SPLIT, n: N}")


def run_stages(recipe: Recipe, progress: bool = True) -> dict[str, dict[str, Any]]:
    """rollout -> select -> label -> pairs with the SFT model; returns each stage's summary."""
    from salmonn_o1.inference import SalmonnO1Pipeline

    settings, training = split_options(recipe)
    out = Path(recipe.run.out_dir) / "stages"
    out.mkdir(parents=True, exist_ok=True)
    # The stages' values and reference log-probs must come from the model the trainer starts from, so
    # they use the training precision (float32 unless run.precision asks for bf16/fp16), also on a GPU.
    dtype = {"bf16": "bfloat16", "fp16": "float16"}.get(recipe.run.precision, "float32")
    pipeline = SalmonnO1Pipeline.from_pretrained(recipe.model.source, dtype=dtype)
    questions = stage_questions(training.get("questions"), pipeline.processor)
    return {
        "rollout": stages.run_rollout(out, pipeline, questions, settings, progress=progress),
        "select": stages.run_select(out, pipeline, settings, progress=progress),
        "label": stages.run_label(out, pipeline, settings, progress=progress),
        "pairs": stages.run_pairs(out, pipeline, settings, progress=progress),
    }


def run_pdpo(recipe: Recipe | str | Path, overrides: list[str] | None = None, resume: bool | str = False,
             stop_at_step: int | None = None, progress: bool = True) -> TrainResult:
    """The whole pDPO recipe: data stages (resumable), then DPO training (resumable)."""
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe, overrides)
    run_stages(recipe, progress)
    return train_on_pairs(recipe, resume, stop_at_step)


def train_on_pairs(recipe: Recipe, resume: bool | str = False, stop_at_step: int | None = None) -> TrainResult:
    """DPO training on the pairs already in `run.out_dir/stages` (written by `run_stages`, or
    merged from shards by scripts/pdpo_sharded.py)."""
    from salmonn_o1.train.model_setup import build_model

    settings, training = split_options(recipe)
    pairs = stages.read_jsonl(stages.stage_file(Path(recipe.run.out_dir) / "stages", "pairs"))
    model, processor = build_model(recipe.model)
    total = recipe.optim.max_steps * recipe.optim.batch_size * recipe.optim.grad_accum
    dataset = PlannedPairs(pairs, total, recipe.run.seed)
    objective = DPOObjective(processor, beta=float(training.get("beta", DEFAULT_BETA)),
                             sft_weight=float(training.get("sft_weight", 0.0)), label_mode=settings.label_mode,
                             mu=settings.mu, max_length=recipe.data.max_length)
    return Trainer(recipe, model, processor, dataset, objective).train(resume=resume, stop_at_step=stop_at_step)
