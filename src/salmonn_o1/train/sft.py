"""Reasoning SFT: `run_sft(recipe)` = model + planned examples + CE objective on the shared engine."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from salmonn_o1.chat import IGNORE_INDEX
from salmonn_o1.data.schema import Item
from salmonn_o1.inference import Question, SalmonnO1Pipeline
from salmonn_o1.processor import MediaFeatures, SalmonnO1Processor
from salmonn_o1.train.model_setup import build_model
from salmonn_o1.train.objective import batch_to
from salmonn_o1.train.recipe import DataSource, Recipe, load_recipe
from salmonn_o1.train.sft_data import (
    STEPS_TARGET,
    SFTExamples,
    SFTObjective,
    build_objective,
    open_source,
    sft_conversation,
)
from salmonn_o1.train.trainer import Trainer, TrainResult


def token_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Share of labelled tokens that are the argmax prediction (teacher-forced).

    Unlike the loss, which the boilerplate of the steps dominates, this moves when the
    few tokens that must be copied or looked up (an entity, a time) start to come right.
    """
    predicted, target = logits[:, :-1].argmax(-1), labels[:, 1:]
    labelled = target != IGNORE_INDEX
    return float(((predicted == target) & labelled).sum()) / max(1, int(labelled.sum()))


class DevEvaluation:
    """Dev loss and answer accuracy (two-turn reasoning through the inference pipeline) on a fixed subset."""

    def __init__(self, spec: DataSource, processor: SalmonnO1Processor, n: int, max_new_tokens: int = 256):
        source = open_source(spec, processor)
        count = n if source.size is None else min(n, source.size)
        self.items: list[Item] = [source.item(i) for i in range(count)]
        self.features: list[MediaFeatures | None] = [source.media(i) for i in range(count)]
        self.processor = processor
        self.max_new_tokens = max_new_tokens

    @torch.no_grad()
    def __call__(self, model: nn.Module) -> dict[str, float]:
        objective = SFTObjective(self.processor)
        samples = [self.processor.encode(sft_conversation(item, True), f, add_generation_prompt=False)
                   for item, f in zip(self.items, self.features)]
        batch = objective.collate(samples)
        inputs = {k: v for k, v in batch_to(batch, model.device).items() if k != "num_tokens"}
        out = model(**inputs)
        report = {"dev_loss": round(float(out.loss), 5),
                  "dev_token_accuracy": round(token_accuracy(out.logits, inputs["labels"]), 4)}
        if any(item.extras.get(STEPS_TARGET) for item in self.items):
            return report  # steps-only targets (descriptions, solution prefixes) have no answer to score
        pipe = SalmonnO1Pipeline(model, self.processor)
        questions = [Question(f, item.question, item.options or None, True) for item, f in zip(self.items, self.features)]
        results = pipe.ask_batch(questions, max_new_tokens=self.max_new_tokens)
        hits = [r.answer == item.answer for r, item in zip(results, self.items)]
        report.update({"dev_accuracy": round(sum(hits) / max(1, len(hits)), 4), "dev_items": len(hits)})
        # Per category: whether the picture-only and sound-only controls rise tells perception apart
        # from the text prior, long before overall accuracy moves.
        for category in sorted({item.category for item in self.items if item.category}):
            mine = [h for h, item in zip(hits, self.items) if item.category == category]
            report[f"dev_accuracy/{category}"] = round(sum(mine) / len(mine), 4)
        return report


def build_sft(recipe: Recipe) -> Trainer:
    model, processor = build_model(recipe.model)
    total = recipe.optim.max_steps * recipe.optim.batch_size * recipe.optim.grad_accum
    dataset = SFTExamples(recipe.data, processor, total, recipe.run.seed)
    evaluate = None
    if recipe.data.dev is not None and recipe.run.eval_every:
        evaluate = DevEvaluation(recipe.data.dev, processor, recipe.data.dev_items)
    objective = build_objective(recipe, processor)
    return Trainer(recipe, model, processor, dataset, objective, evaluate)


def run_sft(recipe: Recipe | str | Path, overrides: list[str] | None = None, resume: bool | str = False,
            stop_at_step: int | None = None) -> TrainResult:
    """From Python: `run_sft("recipes/tiny-sft.yaml", ["optim.max_steps=10"])`."""
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe, overrides)
    return build_sft(recipe).train(resume=resume, stop_at_step=stop_at_step)
