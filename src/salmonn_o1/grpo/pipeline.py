"""`salmonn-o1 train grpo --config RECIPE`: GRPO from the recipe's starting model on the shared engine.

The recipe's `model.source` is the SFT model: the policy starts from it (LoRA or full, as
the recipe's model section says) and, for beta > 0, it is the reference (a frozen copy made
before training, or the policy with its LoRA adapters off). The `grpo:` section
(`train.recipe.GRPOSettings`) names the questions (as `pdpo.questions`: a file or a question
source) and the GRPO settings. The questions are planned into `optim.max_steps x batch_size`
positions (seeded per-epoch shuffles), so a resumed run sees the same questions in the same
batches, and samples the same paths.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from salmonn_o1.errors import DataError
from salmonn_o1.grpo.objective import GRPOObjective
from salmonn_o1.pdpo.loss import disable_dropout, has_adapters
from salmonn_o1.pdpo.questions import PDPOQuestion, load_questions
from salmonn_o1.train.batching import epoch_order
from salmonn_o1.train.recipe import GRPOSettings, Recipe, load_recipe
from salmonn_o1.train.trainer import Trainer, TrainResult


class PlannedQuestions(Dataset):
    """`total` training positions over the questions, in seeded per-epoch shuffles."""

    def __init__(self, questions: list[PDPOQuestion], total: int, seed: int):
        if not questions:
            raise DataError("grpo.questions: no questions")
        self.questions = questions
        self.order = epoch_order(len(questions), total, seed)

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, position: int) -> dict[str, Any]:
        return {"position": position, "question": self.questions[self.order[position]]}

    def describe(self, position: int) -> str:
        return self.questions[self.order[position]].id


def build_grpo(recipe: Recipe) -> Trainer:
    from salmonn_o1.train.model_setup import build_model

    settings = recipe.grpo or GRPOSettings()
    model, processor = build_model(recipe.model)
    questions = load_questions(settings.questions, processor, where="grpo.questions")
    total = recipe.optim.max_steps * recipe.optim.batch_size * recipe.optim.grad_accum
    dataset = PlannedQuestions(questions, total, recipe.run.seed)
    reference = None
    if settings.beta > 0 and not has_adapters(model):
        reference = copy.deepcopy(model).requires_grad_(False).eval()  # the starting model, frozen
        disable_dropout(reference)
    objective = GRPOObjective(processor, settings, seed=recipe.run.seed, reference=reference)
    return Trainer(recipe, model, processor, dataset, objective)


def run_grpo(recipe: Recipe | str | Path, overrides: list[str] | None = None, resume: bool | str = False,
             stop_at_step: int | None = None) -> TrainResult:
    """From Python: `run_grpo("recipes/mini-grpo.yaml", ["optim.max_steps=10"])`."""
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe, overrides)
    return build_grpo(recipe).train(resume=resume, stop_at_step=stop_at_step)
