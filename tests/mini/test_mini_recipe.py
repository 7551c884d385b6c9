"""The reproduction recipes (recipes/mini-perception.yaml, then recipes/mini-sft.yaml on its
encoders; recipes/mini-pdpo.yaml), CI-sized: same model, data mix and optimiser, short schedules,
small batches and few questions; the SFT loss and the DPO loss must fall."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

from salmonn_o1.inference import DEFAULT_MODEL_DIR
from salmonn_o1.pdpo.pipeline import run_pdpo
from salmonn_o1.train.recipe import load_recipe
from salmonn_o1.train.sft import run_sft
from salmonn_o1_mini.perception import run_perception

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
RECIPE = RECIPES / "mini-sft.yaml"


def test_the_mini_sft_recipe_reduces_the_loss_on_a_short_schedule(tmp_path):
    perception = run_perception(load_recipe(RECIPES / "mini-perception.yaml", [
        "optim.max_steps=10", "optim.batch_size=2", f"run.out_dir={tmp_path / 'perception'}",
        "objective.dev_items=2"]))
    result = run_sft(RECIPE, [f"model.source={perception.final_dir}", "optim.max_steps=60", "optim.batch_size=2", "optim.warmup_steps=10",
                              "data.num_workers=0", "run.eval_every=0", "run.save_every=1000",
                              f"run.out_dir={tmp_path / 'sft'}"])
    losses = [json.loads(line)["loss"] for line in (tmp_path / "sft" / "metrics.jsonl").read_text().splitlines()]
    assert result.step == 60 and len(losses) == 60
    first, last = statistics.fmean(losses[:10]), statistics.fmean(losses[-10:])
    assert last < 0.6 * first, (first, last)  # 60 steps from random weights on the full mix
    assert (result.final_dir / "model.safetensors").exists()


def test_the_copy_stage_recipe_reduces_the_loss_and_reports_token_accuracy(tmp_path):
    """recipes/mini-copy.yaml (text only, so the random mini preset stands in for the perception
    checkpoint): the curriculum's first stage learns, and its dev evaluation scores the teacher-forced
    tokens of the prefix targets instead of generating answers they do not contain."""
    result = run_sft(RECIPES / "mini-copy.yaml", [
        "model.source=mini", "optim.max_steps=60", "optim.batch_size=4", "optim.warmup_steps=10",
        "data.num_workers=0", "data.dev_items=4", "run.eval_every=60", "run.save_every=1000",
        f"run.out_dir={tmp_path / 'copy'}"])
    losses = [json.loads(line)["loss"] for line in (tmp_path / "copy" / "metrics.jsonl").read_text().splitlines()]
    assert result.step == 60
    assert statistics.fmean(losses[-10:]) < 0.5 * statistics.fmean(losses[:10])
    (report,) = [json.loads(line) for line in (tmp_path / "copy" / "eval.jsonl").read_text().splitlines()]
    assert 0.3 < report["dev_token_accuracy"] <= 1.0 and "dev_accuracy" not in report


def test_the_mini_pdpo_recipe_reduces_the_dpo_loss_on_a_short_schedule(tmp_path):
    """recipes/mini-pdpo.yaml as it is (contrastive selection, frame-noise perturbation, soft labels,
    beta, lr, SFT weight) on 8 questions from the shipped model (the CI has no reasoning SFT run):
    the stages must find pairs, and repeated passes over them must lower the DPO loss below its
    start at ln 2 (policy = reference)."""
    result = run_pdpo(RECIPES / "mini-pdpo.yaml", [
        f"model.source={DEFAULT_MODEL_DIR}", f"run.out_dir={tmp_path / 'pdpo'}", "pdpo.questions.n=8",
        "pdpo.paths=4", "pdpo.rollouts=2", "optim.max_steps=40", "optim.batch_size=4",
        "optim.warmup_steps=2", "run.save_every=1000"], progress=False)
    pairs = json.loads((tmp_path / "pdpo" / "stages" / "pairs_summary.json").read_text())
    assert pairs["pairs"] >= 2, pairs
    records = [json.loads(line) for line in (tmp_path / "pdpo" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["dpo_loss"] for r in records if "dpo_loss" in r]
    assert result.step == 40 and len(losses) == 40
    assert abs(losses[0] - math.log(2)) < 0.01, losses[0]  # the policy starts as the reference
    last = statistics.fmean(losses[-10:])
    assert last < losses[0] - 0.1, (losses[0], last)  # measured: 0.12 after 40 steps over 12 pairs
