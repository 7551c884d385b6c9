"""The model a recipe trains: which groups learn, LoRA on the LLM, model components, gradient
checkpointing, export.

LoRA goes through `peft` on the language model only (the paper: r 64,
alpha 256 on the LLM, aligners trained, encoders frozen). Exports merge the
adapters into a copy, so every checkpoint loads in the inference pipeline
without peft.

Model components (`model.components` in a recipe) are how an idea that changes
the model's start or its training (a built-in circuit, a frozen slice) enters a
run without a field in the model's config or a branch here: the recipe names
the component, `build_model` calls its two hooks.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from torch import nn

from salmonn_o1.checkpoints import is_preset, load_model_and_processor, save_model_and_processor
from salmonn_o1.components import build
from salmonn_o1.errors import RecipeError
from salmonn_o1.model.modeling import PARAMETER_GROUPS, SalmonnO1ForConditionalGeneration
from salmonn_o1.processor import SalmonnO1Processor
from salmonn_o1.train.recipe import ModelRecipe


class ModelComponent(Protocol):
    """A step a recipe adds to building its model: `{_component_: pkg.mod.Name, **kwargs}`."""

    def initialize(self, model: nn.Module) -> None:
        """Called once on a model built fresh from a preset (random weights), before anything else.

        A checkpoint already holds what `initialize` wrote, so it is not called when loading one.
        """

    def prepare_for_training(self, model: nn.Module, trained_groups: Sequence[str]) -> None:
        """Called before training, after the trainable groups are set and LoRA is added.

        `trained_groups` are the parameter groups whose own weights train: the recipe's
        `model.train` without "llm" under LoRA (the adapters train, the LLM's weights are frozen).
        """


def model_components(recipe: ModelRecipe) -> list[ModelComponent]:
    return [build(spec, f"model.components[{index}]") for index, spec in enumerate(recipe.components)]


def build_model(recipe: ModelRecipe) -> tuple[SalmonnO1ForConditionalGeneration, SalmonnO1Processor]:
    components = model_components(recipe)
    unknown = sorted(set(recipe.train) - set(PARAMETER_GROUPS))
    if unknown:
        raise RecipeError(f"model.train: unknown group(s) {unknown}; choose from {sorted(PARAMETER_GROUPS)}")
    model, processor = load_model_and_processor(recipe.source, device="cpu", dtype="float32", seed=recipe.init_seed)
    if is_preset(str(recipe.source)):
        for component in components:  # right after the model's own initialisation: same RNG stream
            component.initialize(model)
    model.set_trainable(**{group: group in recipe.train for group in PARAMETER_GROUPS})
    if recipe.lora.enabled:
        add_lora(model, recipe)
    trained = [group for group in recipe.train if not (group == "llm" and recipe.lora.enabled)]
    for component in components:
        component.prepare_for_training(model, trained)
    if recipe.gradient_checkpointing:
        model.language_model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.language_model.config.use_cache = False
    model.train()
    return model, processor


def add_lora(model: SalmonnO1ForConditionalGeneration, recipe: ModelRecipe) -> None:
    """Wrap the LLM in LoRA adapters; its base weights freeze, whatever `train` says about "llm"."""
    from peft import LoraConfig, get_peft_model

    lora = recipe.lora
    config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                        target_modules=list(lora.target_modules), bias="none")
    model.language_model = get_peft_model(model.language_model, config)


def has_lora(model: nn.Module) -> bool:
    return any("lora_" in name for name, _ in model.named_parameters())


def merged_copy(model: SalmonnO1ForConditionalGeneration) -> SalmonnO1ForConditionalGeneration:
    """The model with LoRA merged into a copy of the base weights (the training model is untouched)."""
    if not has_lora(model):
        return model
    exported = copy.deepcopy(model)
    exported.language_model = exported.language_model.merge_and_unload()
    return exported


def export_model(model: SalmonnO1ForConditionalGeneration, processor: SalmonnO1Processor, path: str | Path) -> Path:
    """A plain checkpoint directory (config + safetensors + processor + tokenizer) the pipeline loads."""
    exported = merged_copy(model)
    was_training = exported.training
    path = save_model_and_processor(exported, processor, path)
    exported.train(was_training)
    return path


def trainable_parameter_names(model: nn.Module) -> list[str]:
    return [name for name, p in model.named_parameters() if p.requires_grad]
