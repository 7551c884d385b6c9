"""The `pdpo:` recipe section: one dataclass for the recipe, the stages and the CLI flags."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from salmonn_o1.commands.pdpo import add_settings_arguments, settings_from_args
from salmonn_o1.errors import RecipeError
from salmonn_o1.pdpo.objective import DEFAULT_BETA
from salmonn_o1.pdpo.pairs import DEFAULT_MU, LABEL_MODES
from salmonn_o1.pdpo.perturb import DEFAULT_NOISE_STEP, PERTURBATIONS
from salmonn_o1.pdpo.pipeline import stage_settings
from salmonn_o1.pdpo.scoring import SELECTIONS
from salmonn_o1.train.recipe import PDPOSettings, load_recipe

# Every flag `salmonn-o1 pdpo <stage>` had when its options were written by hand.
OLD_FLAGS = {"--paths", "--rollouts", "--top-t", "--selection", "--perturb", "--noise-step", "--max-paths",
             "--temperature", "--top-p", "--max-new-tokens", "--answer-max-new-tokens", "--max-step-tokens",
             "--label-mode", "--mu", "--no-ref-logps", "--seed"}


def settings_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=None)
    add_settings_arguments(parser)
    return parser


def test_the_section_agrees_with_the_stage_modules():
    fields = {f.name: f for f in dataclasses.fields(PDPOSettings)}
    assert fields["selection"].metadata["choices"] == SELECTIONS
    assert fields["perturb"].metadata["choices"] == PERTURBATIONS
    assert fields["label_mode"].metadata["choices"] == LABEL_MODES
    defaults = PDPOSettings()
    assert (defaults.noise_step, defaults.mu, defaults.beta) == (DEFAULT_NOISE_STEP, DEFAULT_MU, DEFAULT_BETA)


def test_flags_are_generated_from_the_fields_and_keep_their_names():
    parser = settings_parser()
    flags = {s for action in parser._actions for s in action.option_strings}
    assert flags >= OLD_FLAGS
    assert not {"--beta", "--sft-weight", "--questions"} & flags  # training-only fields are no stage options
    defaults = settings_from_args(parser.parse_args([]))
    assert defaults == PDPOSettings(seed=0)  # the CLI's seed is 0 unless given
    args = parser.parse_args(["--top-t", "1", "--selection", "random", "--no-ref-logps", "--max-paths", "2",
                              "--mu", "0.5", "--seed", "7", "--model", "tiny"])
    settings = settings_from_args(args)
    assert (settings.top_t, settings.selection, settings.reference_logps, settings.max_paths) == (1, "random", False, 2)
    assert (settings.mu, settings.seed, settings.model) == (0.5, 7, "tiny")
    with pytest.raises(SystemExit):
        parser.parse_args(["--perturb", "blur"])


def test_recipe_section_is_typed_and_checked(tmp_path):
    recipe = load_recipe("recipes/tiny-pdpo.yaml", ["pdpo.top_t=1", "run.seed=5", "model.source=tiny"])
    settings = stage_settings(recipe)
    assert settings.top_t == 1 and settings.seed == 5 and settings.model == "tiny" and settings.beta == 0.1
    assert stage_settings(load_recipe("recipes/tiny-pdpo.yaml", ["run.seed=5", "pdpo.seed=0"])).seed == 0
    with pytest.raises(RecipeError, match="recipe.pdpo: unknown key"):
        load_recipe("recipes/tiny-pdpo.yaml", ["pdpo.topt=1"])
    with pytest.raises(RecipeError, match="pdpo.selection must be one of"):
        load_recipe("recipes/tiny-pdpo.yaml", ["pdpo.selection=best"])
    with pytest.raises(RecipeError, match="unknown key.*stage_options"):
        load_recipe("recipes/tiny-pdpo.yaml", ["stage_options={paths: 4}"])


def test_train_pdpo_passes_stop_at(monkeypatch, tmp_path):
    """`salmonn-o1 train pdpo --stop-at N` reaches the trainer (it used to be dropped)."""
    from salmonn_o1.cli import main
    from salmonn_o1.pdpo import pipeline
    from salmonn_o1.train.trainer import TrainResult

    seen = {}

    def fake_run_pdpo(recipe, resume=False, stop_at_step=None, **kwargs):
        seen.update(resume=resume, stop_at_step=stop_at_step)
        return TrainResult(step=stop_at_step, out_dir=tmp_path, final_dir=None, skipped=0)

    monkeypatch.setattr(pipeline, "run_pdpo", fake_run_pdpo)
    assert main(["train", "pdpo", "--config", "recipes/tiny-pdpo.yaml", "--stop-at", "2"]) == 0
    assert seen == {"resume": False, "stop_at_step": 2}
