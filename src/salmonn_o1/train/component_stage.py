"""A training stage whose objective a recipe names: `objective: {_component_: pkg.mod.Name, **options}`.

SFT and pDPO are the library's own stages. Any other stage (the miniature model's
perception pretraining, say) brings its objective as a component and runs on the
same `Trainer`, so it gets exact resume, `--stop-at`, checkpoints and metrics
without a loop of its own, and the core never imports the package it comes from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from torch import nn
from torch.utils.data import Dataset

from salmonn_o1.components import build
from salmonn_o1.errors import RecipeError
from salmonn_o1.processor import SalmonnO1Processor
from salmonn_o1.train.model_setup import build_model
from salmonn_o1.train.objective import Objective
from salmonn_o1.train.recipe import Recipe, load_recipe
from salmonn_o1.train.trainer import Trainer, TrainResult, final_dir, finished


class StageObjective(Objective, Protocol):
    """An `Objective` that also says what is trained on which examples, and what follows the run."""

    def prepare(self, recipe: Recipe, model: nn.Module, processor: SalmonnO1Processor) -> tuple[nn.Module, Dataset]:
        """(module the Trainer optimises, examples). The module is the model, or one that holds it
        and extra parts (read-out heads), whose `save_pretrained` saves the model alone: that is what
        checkpoints and the final export hold."""

    def finish(self, trained: nn.Module, processor: SalmonnO1Processor, out_dir: Path) -> None:
        """After the run reached optim.max_steps and its final model was exported (a dev evaluation)."""


def build_stage_objective(recipe: Recipe) -> StageObjective:
    if recipe.objective is None:
        raise RecipeError(f"stage {recipe.stage!r}: the recipe names no objective; stages other than sft and "
                          "pdpo need `objective: {_component_: package.module.Name, ...}`")
    return build(recipe.objective, "objective")


def run_component_stage(recipe: Recipe | str | Path, overrides: list[str] | None = None,
                        resume: bool | str = False, stop_at_step: int | None = None) -> TrainResult:
    """Train `recipe` with the objective it names; a finished run (its `final` exists) is not redone on resume."""
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe, overrides)
    objective = build_stage_objective(recipe)
    out_dir = Path(recipe.run.out_dir)
    if resume and finished(out_dir):
        return TrainResult(step=recipe.optim.max_steps, out_dir=out_dir, final_dir=final_dir(out_dir), skipped=0)
    model, processor = build_model(recipe.model)
    trained, dataset = objective.prepare(recipe, model, processor)
    result = Trainer(recipe, trained, processor, dataset, objective).train(resume=resume, stop_at_step=stop_at_step)
    if result.final_dir is not None:
        objective.finish(trained, processor, out_dir)
    return result
