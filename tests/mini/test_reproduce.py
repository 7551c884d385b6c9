"""`reproduce mini` end to end at tiny scale: three variants, three pDPO selections on shared
rollouts, the generated report with its cost table, shipping, and a rerun that retrains nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from salmonn_o1.checkpoints import CHECKSUMS
from salmonn_o1.commands.demo import SAMPLE_DIR
from salmonn_o1.inference import SalmonnO1Pipeline
from salmonn_o1.records import read_records
from salmonn_o1_mini.reproduce import MiniPlan, best_reasoning_model, reproduce_mini

SYNTH = "salmonn_o1.data.synthetic.sft_source.SynthSource"
CURRICULUM = "salmonn_o1_mini.curriculum.CurriculumSource"
OPTION_LETTERS = "salmonn_o1_mini.option_letters.OptionLetterObjective"


def curriculum(**kwargs) -> dict:
    return {"component": {"_component_": CURRICULUM, "split": "train", "frame_size": 32, **kwargs}}


SFT = {
    "stage": "sft",
    "model": {"source": "tiny", "train": ["aligners", "llm"]},
    "data": {"sources": [{"component": {"_component_": SYNTH, "split": "train", "frame_size": 32}}],
             "cache_media": 16, "direct_fraction": 0.0, "num_workers": 0},
    "optim": {"lr": 5e-3, "batch_size": 4, "max_steps": 40, "warmup_steps": 5},
    "run": {"out_dir": "unused", "save_every": 1000},
}
PERCEPTION = {
    "stage": "perception",
    "model": {"source": "tiny"},
    "objective": {"_component_": "salmonn_o1_mini.perception.PerceptionObjective", "dev_items": 2},
    # the schedule of the stage's first, separate loop: a tenth of the steps (at least one) of warm-up
    "optim": {"lr": 3e-3, "batch_size": 2, "max_steps": 4, "weight_decay": 0.01, "warmup_steps": 1},
    "run": {"out_dir": "unused"},
}
PDPO = {
    "stage": "pdpo",
    "model": {"source": "unused", "train": ["aligners", "llm"]},
    "data": {"length_grouping": False},
    "optim": {"lr": 1e-3, "schedule": "constant", "batch_size": 2, "max_steps": 2},
    "run": {"out_dir": "unused", "save_every": 2},
    "pdpo": {"questions": {"_component_": "salmonn_o1.data.synthetic.pdpo_questions.avr_synth_questions",
                           "split": "train", "n": 4, "start": 900000}, "paths": 4, "rollouts": 2,
             "top_t": 2, "max_new_tokens": 120, "answer_max_new_tokens": 8, "label_mode": "soft",
             "beta": 0.1, "temperature": 1.5, "selection": "contrastive"},
}


def write_recipes(folder: Path) -> Path:
    folder.mkdir()
    direct = {**SFT, "data": {**SFT["data"], "direct_fraction": 1.0}, "optim": {**SFT["optim"], "max_steps": 10}}
    text = {**SFT, "model": {"source": "unused", "train": ["llm"]},
            "data": {**SFT["data"], "sources": [curriculum(task="text")]},
            "optim": {**SFT["optim"], "max_steps": 5}}
    copying = {**text, "data": {**text["data"], "sources": [
        curriculum(task="text", families=["cross_modal_counting"], first_steps=1)]}}
    ground = {**SFT, "data": {**SFT["data"], "sources": [
        curriculum(task="describe"), curriculum(families=["cross_modal_counting"], first_steps=1)]},
        "optim": {**SFT["optim"], "max_steps": 5}}
    answer = {**text, "data": {**text["data"], "sources": [
        curriculum(task="text", loss_last_steps=2)]}}
    options = {**SFT, "model": {"source": "unused", "train": ["llm"]},
               "data": {**SFT["data"], "sources": [curriculum(task="options")]},
               "objective": {"_component_": OPTION_LETTERS, "weight": 5.0},
               "optim": {**SFT["optim"], "max_steps": 5}}
    letters = {**options, "data": SFT["data"], "objective": {"_component_": OPTION_LETTERS, "weight": 1.0}}
    lookup = {**letters, "data": {**letters["data"], "sources": [curriculum(step_format="lookup")]}}
    checks = {**letters, "data": {**letters["data"], "sources": [
        curriculum(step_format="checks"), curriculum(families=["cross_modal_counting", "glitch_detection"],
                                                     step_format="checks")]}}
    refine = {**checks, "optim": {**checks["optim"], "lr": checks["optim"]["lr"] / 2}}
    anneal = {**checks, "optim": {**checks["optim"], "lr": checks["optim"]["lr"] / 4}}
    recipes = {"mini-perception.yaml": PERCEPTION, "mini-copy.yaml": copying, "mini-text.yaml": text,
               "mini-answer.yaml": answer,
               "mini-ground.yaml": ground, "mini-sft.yaml": SFT, "mini-options.yaml": options,
               "mini-letters.yaml": letters, "mini-lookup.yaml": lookup, "mini-checks.yaml": checks,
               "mini-refine.yaml": refine, "mini-anneal.yaml": anneal,
               "mini-direct.yaml": direct, "mini-pdpo.yaml": PDPO}
    for name, recipe in recipes.items():
        (folder / name).write_text(yaml.safe_dump(recipe))
    return folder


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory):
    root = tmp_path_factory.mktemp("reproduce")
    plan = MiniPlan(recipes=write_recipes(root / "recipes"), runs=root / "runs", n=10,
                    results=root / "docs" / "results.md", dev_results=root / "docs" / "dev" / "results.md",
                    ship=root / "shipped")
    best = reproduce_mini(plan)
    return plan, best


def test_every_variant_is_trained_and_scored(reproduced):
    plan, best = reproduced
    report = plan.results.read_text()
    for variant in ("reasoning SFT", "direct SFT", "SFT + pDPO", "SFT + pDPO (all steps)", "SFT + pDPO (random steps)",
                    "SFT + pDPO (contrastive, 1 step per path)"):
        assert f"| {variant} |" in report, variant  # a row of the paired tests / cost table
    results = json.loads((plan.results.parent / "results" / "results.json").read_text())
    assert len(results["variants"]) == 6
    for variant in results["variants"]:
        assert results["accuracy"][variant["name"]]["overall"]["total"] == 10
    overall = {name: results["accuracy"][name]["overall"]["accuracy"] for name in ("reasoning SFT", "SFT + pDPO")}
    better = "mini-pdpo" if overall["SFT + pDPO"] >= overall["reasoning SFT"] else "mini-anneal"
    assert best == plan.runs / better / "final"
    dev = json.loads((plan.dev_results.parent / "results" / "results.json").read_text())
    assert dev["split"] == "dev" and dev["accuracy"]["SFT + pDPO"]["overall"]["total"] == 10
    assert "cross_modal_counting" in dev["paired"]["SFT + pDPO"]  # per-family pairs
    assert (plan.runs / "results-dev" / "sft---pdpo.jsonl").read_text().count('"avr-dev-') == 10
    assert (plan.results.parent / "results" / "curve-mini-sft.png").exists()
    assert (plan.results.parent / "results" / "curve-mini-anneal.png").exists()
    for stage, source in (("mini-letters", "mini-options"), ("mini-lookup", "mini-letters"),
                          ("mini-checks", "mini-lookup"), ("mini-refine", "mini-checks"),
                          ("mini-anneal", "mini-refine")):  # the chain's order
        recipe = yaml.safe_load((plan.runs / stage / "recipe.yaml").read_text())
        assert recipe["model"]["source"] == str(plan.runs / source / "final")
    pdpo_recipe = yaml.safe_load((plan.runs / "mini-pdpo" / "recipe.yaml").read_text())
    assert pdpo_recipe["model"]["source"] == str(plan.runs / "mini-anneal" / "final")


def test_selections_share_rollouts_and_all_steps_costs_most(reproduced):
    plan, _ = reproduced
    stages = {s: plan.runs / name / "stages" for s, name in
              (("contrastive", "mini-pdpo"), ("all", "mini-pdpo-all"), ("random", "mini-pdpo-random"),
               ("top1", "mini-pdpo-top1"))}
    rollouts = {s: (d / "rollout.jsonl").read_text() for s, d in stages.items()}
    assert rollouts["all"] == rollouts["contrastive"] == rollouts["random"] == rollouts["top1"]
    cost = json.loads((plan.results.parent / "results" / "results.json").read_text())["pdpo_cost"]
    tokens = {name: row["select_label_tokens"] for name, row in cost.items()}
    assert tokens["SFT + pDPO (all steps)"] >= tokens["SFT + pDPO"]
    selected = {name: row["selected_steps"] for name, row in cost.items()}
    assert selected["SFT + pDPO (all steps)"] >= selected["SFT + pDPO"] == selected["SFT + pDPO (random steps)"]
    top1 = "SFT + pDPO (contrastive, 1 step per path)"
    assert 0 < selected[top1] <= selected["SFT + pDPO"]
    assert tokens[top1] <= tokens["SFT + pDPO"]
    picks = {s: selected_steps(stages[s] / "select.jsonl") for s in ("contrastive", "top1")}
    assert picks["top1"] <= picks["contrastive"]  # one step per path: the higher-scoring of its two contrastive picks
    assert len(picks["top1"]) == selected[top1]
    assert "| selection |" in plan.results.read_text()
    all_row = next(line for line in plan.results.read_text().splitlines()
                   if line.startswith("| SFT + pDPO (all steps) | ") and "x |" in line)
    assert "| 1.00x |" in all_row  # the cost ratios are relative to the run that selected every step


def selected_steps(select_file: Path) -> set[tuple[str, int, int]]:
    """(question, path, step) of every step a selection stage picked for valuing."""
    return {(r["id"], path["index"], step) for r in read_records(select_file) for path in r.get("paths", [])
            for step in path.get("selected", [])}


def test_the_better_reasoning_model_is_chosen_and_pdpo_wins_ties(tmp_path):
    results = tmp_path / "results.json"
    models = {"reasoning SFT": tmp_path / "sft", "SFT + pDPO": tmp_path / "pdpo"}

    def choose(sft: float, pdpo: float) -> Path:
        accuracy = {"reasoning SFT": {"overall": {"accuracy": sft}}, "SFT + pDPO": {"overall": {"accuracy": pdpo}}}
        results.write_text(json.dumps({"accuracy": accuracy}))
        return best_reasoning_model(results, models)

    assert choose(0.42, 0.39) == tmp_path / "sft"
    assert choose(0.40, 0.45) == tmp_path / "pdpo"
    assert choose(0.40, 0.40) == tmp_path / "pdpo"


def test_the_shipped_model_is_the_best_reasoning_model_and_answers(reproduced):
    plan, best = reproduced
    assert (plan.ship / "model.safetensors").read_bytes() == (best / "model.safetensors").read_bytes()
    assert "model.safetensors" in (plan.ship / CHECKSUMS).read_text()  # verified on every load (below)
    assert (best / "modeling_salmonn_o1.py").exists() and "auto_map" in (best / "config.json").read_text()
    assert not list(plan.ship.glob("*.py")) and "auto_map" not in (plan.ship / "config.json").read_text()
    result = SalmonnO1Pipeline.from_pretrained(str(plan.ship)).ask(
        SAMPLE_DIR / "clip.mp4", "Which shape?", ["a circle", "a square"],
        max_new_tokens=32, answer_max_new_tokens=4)
    assert result.answer_text is not None


def test_a_rerun_trains_nothing_again(reproduced):
    plan, best = reproduced
    stamps = {p: p.stat().st_mtime_ns for p in plan.runs.glob("*/final/model.safetensors")}
    assert len(stamps) == 17  # perception, copy, text, answer, ground, sft, options, letters, lookup, checks,
    #                           refine, anneal, direct, 4 pDPO
    reproduce_mini(plan)
    assert {p: p.stat().st_mtime_ns for p in plan.runs.glob("*/final/model.safetensors")} == stamps
    assert "(60 of the 60 predictions came from the cache" in plan.results.read_text()  # 6 variants x 10 items
    assert "(60 of the 60 predictions came from the cache" in plan.dev_results.read_text()


def test_scoring_with_an_explicit_device_and_dtype_matches_the_default_on_a_cpu(reproduced, tmp_path):
    """`results --device cpu --dtype float32` (how a GPU machine scores as a CPU does) predicts the
    same answers as the default on this CPU, and writes its own prediction cache."""
    from salmonn_o1_mini import results

    plan, _ = reproduced
    sft = plan.runs / "mini-anneal" / "final"
    results.main(["--variant", f"reasoning SFT={sft}:reasoning", "--n", "10", "--device", "cpu",
                  "--dtype", "float32", "--work", str(tmp_path / "work"), "--out", str(tmp_path / "results.md")])
    mine = (tmp_path / "work" / "reasoning-sft.jsonl").read_text().splitlines()
    cached = (plan.runs / "results" / "reasoning-sft.jsonl").read_text().splitlines()
    assert len(mine) == 10 and mine == cached
    assert "(0 of the 10 predictions came from the cache" in (tmp_path / "results.md").read_text()
