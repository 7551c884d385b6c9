"""`salmonn-o1 reproduce mini`: every run behind the shipped miniature model, then docs/results.md.

    mini-perception  encoder pretraining on AVR-Synth labels (recipes/mini-perception.yaml)
    mini-copy     the LLM learns to copy from its prompt, one short target (recipes/mini-copy.yaml)
    mini-text     the LLM learns to reason over clip descriptions in words (recipes/mini-text.yaml)
    mini-answer   it learns to map its conclusion to the option letter (recipes/mini-answer.yaml)
    mini-ground   it learns to read the same facts from the media (recipes/mini-ground.yaml)
    mini-sft      reasoning SFT on the frozen pretrained encoders (recipes/mini-sft.yaml)
    mini-options  the option-letter look-up alone, on short items (recipes/mini-options.yaml)
    mini-letters  back to SFT's items, the option letters weighted (recipes/mini-letters.yaml)
    mini-lookup   the cross-modal steps as look-ups of the frame at a time (recipes/mini-lookup.yaml)
    mini-checks   counting and glitch detection as checks of looked-up facts (recipes/mini-checks.yaml)
    mini-refine   the check stage's data again at half its learning rate (recipes/mini-refine.yaml)
    mini-anneal   and again at a quarter of it (recipes/mini-anneal.yaml); the "reasoning SFT"
                  variant and pDPO's start
    mini-direct   the same data budget trained to answer directly (recipes/mini-direct.yaml)
    mini-pdpo     pDPO from mini-anneal with contrastive step selection (recipes/mini-pdpo.yaml)
    mini-pdpo-all, mini-pdpo-random, mini-pdpo-top1
                  the same pDPO with all-steps / random selection, and contrastive selection of
                  one step per path instead of two, on the *same* rollouts (copied, not
                  re-sampled), so the cost table compares selection alone
    mini-grpo     with --grpo: GRPO from mini-anneal on pDPO's questions with pDPO's generation
                  budget (recipes/mini-grpo.yaml), then docs/results-grpo.md (test and dev)

Every run resumes where it stopped and a finished run (its `final/` exists) is
skipped, so the command can be re-run after an interruption. `--ship` copies
the better reasoning model on the test split (pDPO, or reasoning SFT where pDPO
lost accuracy) into the package (the default model of `ask`, `infer`, `demo`).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from salmonn_o1.errors import OutputError

ROLLOUT_FILES = ("rollout.jsonl", "rollout_settings.json", "rollout_summary.json")
SFT_NAME, PDPO_NAME, GRPO_NAME = "reasoning SFT", "SFT + pDPO", "SFT + GRPO"


@dataclass(frozen=True)
class Selection:
    """One pDPO step selection of the cost comparison: its run, report name and recipe overrides."""

    run: str
    name: str
    overrides: tuple[str, ...]


# The shipped recipe first; the others differ from it only in how steps are selected for valuing.
SELECTIONS = {
    "contrastive": Selection("mini-pdpo", PDPO_NAME, ()),
    "all": Selection("mini-pdpo-all", f"{PDPO_NAME} (all steps)", ("pdpo.selection=all",)),
    "random": Selection("mini-pdpo-random", f"{PDPO_NAME} (random steps)", ("pdpo.selection=random",)),
    # half the recipe's steps valued (the higher-scoring pick of each path): a cheaper contrastive point
    "top1": Selection("mini-pdpo-top1", f"{PDPO_NAME} (contrastive, 1 step per path)",
                      ("pdpo.selection=contrastive", "pdpo.top_t=1")),
}
STRATEGIES = tuple(SELECTIONS)
# The SFT-engine stages after grounding, in order, each from the one before (recipes/<stage>.yaml);
# the last is the "reasoning SFT" variant and pDPO's start.
REASONING_STAGES = ("mini-sft", "mini-options", "mini-letters", "mini-lookup", "mini-checks", "mini-refine",
                    "mini-anneal")


@dataclass
class MiniPlan:
    """Where the recipes are read and the runs written; what to run."""

    recipes: Path = Path("recipes")
    runs: Path = Path("runs")
    n: int = 1000
    strategies: tuple[str, ...] = STRATEGIES
    direct: bool = True
    results: Path = Path("docs/results.md")
    dev_results: Path | None = Path("docs/dev/results.md")  # the same variants on the dev split
    ship: Path | None = None
    force: bool = False  # let --ship replace a folder that is not a shipped model
    grpo: bool = False  # also GRPO at pDPO's generation budget, reported in grpo_results
    grpo_results: Path = Path("docs/results-grpo.md")

    def run_dir(self, name: str) -> Path:
        return self.runs / name


def train_perception(plan: MiniPlan) -> Path:
    from salmonn_o1_mini.perception import run_perception

    run_dir = plan.run_dir("mini-perception")
    return run_perception(plan.recipes / "mini-perception.yaml", [f"run.out_dir={run_dir}"], resume=True).final_dir


def train_sft(plan: MiniPlan, recipe_name: str, run_name: str, source: Path) -> Path:
    """An SFT-engine run (text stage, reasoning or direct SFT) starting from `source`."""
    from salmonn_o1.train.sft import run_sft
    from salmonn_o1.train.trainer import final_dir, finished

    run_dir = plan.run_dir(run_name)
    if not finished(run_dir):
        run_sft(plan.recipes / recipe_name, [f"run.out_dir={run_dir}", f"model.source={source}"], resume=True)
    return final_dir(run_dir)


def share_rollouts(source: Path, target: Path) -> None:
    """Give a pDPO run the rollouts of another, so only selection differs (and is costed)."""
    target.mkdir(parents=True, exist_ok=True)
    for name in ROLLOUT_FILES:
        if (source / name).exists() and not (target / name).exists():
            shutil.copy2(source / name, target / name)


def train_pdpo(plan: MiniPlan, sft_model: Path, strategy: str) -> Path:
    from salmonn_o1.pdpo.pipeline import run_pdpo
    from salmonn_o1.train.trainer import finished

    selection = SELECTIONS[strategy]
    run_dir = plan.run_dir(selection.run)
    if strategy != "contrastive":
        share_rollouts(plan.run_dir(SELECTIONS["contrastive"].run) / "stages", run_dir / "stages")
    if not finished(run_dir):
        run_pdpo(plan.recipes / "mini-pdpo.yaml",
                 [f"model.source={sft_model}", f"run.out_dir={run_dir}", *selection.overrides], resume=True)
    return run_dir


def pdpo_generated_tokens(run_dir: Path) -> int | None:
    """Tokens a pDPO run sampled in its stages (rollouts, selection, values): GRPO's budget."""
    from salmonn_o1_mini.results import stage_json

    by_stage = stage_json(run_dir, "pairs").get("cost_by_stage", {})
    total = sum(by_stage.get(s, {}).get("generated_tokens", 0) for s in ("rollout", "select", "label"))
    return total or None


def train_grpo(plan: MiniPlan, sft_model: Path, budget: int | None) -> Path:
    """GRPO from the reasoning SFT, stopping when it has sampled `budget` tokens (the recipe's
    generation_budget, pDPO's documented one, when the pDPO run's stage costs are not there)."""
    from salmonn_o1.grpo.pipeline import run_grpo
    from salmonn_o1.train.trainer import finished

    run_dir = plan.run_dir("mini-grpo")
    overrides = [f"model.source={sft_model}", f"run.out_dir={run_dir}"]
    if budget is not None:
        overrides.append(f"grpo.generation_budget={budget}")
    if not finished(run_dir):
        run_grpo(plan.recipes / "mini-grpo.yaml", overrides, resume=True)
    return run_dir


def grpo_report_arguments(plan: MiniPlan, sft_model: Path, pdpo_run: Path, grpo_run: Path) -> list[str]:
    """The `salmonn_o1_mini.grpo_report` command line: SFT vs pDPO vs GRPO on test and dev."""
    tokens = pdpo_generated_tokens(pdpo_run)
    cost = [] if tokens is None else ["--cost", f"{PDPO_NAME}=tokens:{tokens},note:rollouts + selection + values"]
    return ["--variant", f"{SFT_NAME}={sft_model}", "--variant", f"{PDPO_NAME}={pdpo_run / 'final'}",
            "--variant", f"{GRPO_NAME}={grpo_run / 'final'}", *cost, "--grpo-run", f"{GRPO_NAME}={grpo_run}",
            "--n", str(plan.n), "--work", str(plan.runs / "results-grpo"), "--out", str(plan.grpo_results)]


def results_arguments(plan: MiniPlan, sft_model: Path, pdpo_runs: dict[str, Path], split: str = "test") -> list[str]:
    """The `salmonn_o1_mini.results` command line for everything that was trained, on `split`
    (test: docs/results.md; dev: plan.dev_results, its own prediction cache)."""
    args = ["--variant", f"{SFT_NAME}={sft_model}:reasoning"]
    if plan.direct:
        args += ["--variant", f"direct SFT={plan.run_dir('mini-direct') / 'final'}:direct"]
    for strategy, run_dir in pdpo_runs.items():
        name = SELECTIONS[strategy].name
        args += ["--variant", f"{name}={run_dir / 'final'}:reasoning", "--pdpo-run", f"{name}={run_dir}"]
    runs = [*(plan.run_dir(stage) for stage in REASONING_STAGES),
            *([plan.run_dir("mini-direct")] if plan.direct else []), *pdpo_runs.values()]
    for run_dir in runs:
        args += ["--run", str(run_dir)]
    work, out = (plan.runs / "results", plan.results) if split == "test" else (plan.runs / f"results-{split}",
                                                                               plan.dev_results)
    return args + ["--baseline", SFT_NAME, "--family-pairs", "--split", split, "--n", str(plan.n),
                   "--work", str(work), "--out", str(out)]


def best_reasoning_model(results_json: Path, models: dict[str, Path]) -> Path:
    """The model of the variant with the highest overall test accuracy in `results_json`.

    The paper ships its pDPO model; at miniature scale pDPO can lose accuracy (docs/results.md),
    and the default model should be the one that answers best. pDPO wins ties.
    """
    accuracy = json.loads(results_json.read_text())["accuracy"]
    name = max(models, key=lambda n: (accuracy[n]["overall"]["accuracy"], n == PDPO_NAME))
    return models[name]


def is_shipped_model(directory: Path) -> bool:
    """Whether `directory` holds a model `ship` wrote: our config.json and weights, files only."""
    try:
        config = json.loads((directory / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return (isinstance(config, dict) and config.get("model_type") == "salmonn_o1"
            and (directory / "model.safetensors").is_file() and all(p.is_file() for p in directory.iterdir()))


def check_ship_target(target: Path, force: bool = False) -> None:
    """Refuse (before any training) to replace a non-empty `target` that is not a shipped model:
    shipping deletes the folder, and a mistyped path must not cost the user a folder of their own."""
    if force or not target.exists():
        return
    if not target.is_dir():
        raise OutputError(f"--ship {target}: exists and is not a folder; choose another path")
    if any(target.iterdir()) and not is_shipped_model(target):
        raise OutputError(f"--ship {target}: not empty and not a previously shipped model (shipping replaces the "
                          "whole folder); choose an empty or new folder, or pass --force to replace it")


def ship(model_dir: Path, target: Path, force: bool = False) -> Path:
    """Copy a trained model directory into the package as the default model (replacing a shipped one)."""
    check_ship_target(target, force)
    if target.exists():
        shutil.rmtree(target)
    from salmonn_o1.remote_code import SHIMS  # the shim modules every save writes beside auto_map

    # config, safetensors, tokenizer, processor, recipe.yaml; not the remote-code shims: inside the
    # package the model loads through the installed classes, and .py files there would be modules
    shutil.copytree(model_dir, target, ignore=shutil.ignore_patterns(*(f"{name}.py" for name in SHIMS)))
    config = json.loads((target / "config.json").read_text())
    if config.pop("auto_map", None) is not None:
        (target / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    from salmonn_o1.checkpoints import write_checksums  # torch: not at import (the CLI registers this module)

    write_checksums(target)  # a shipped model is verified against them on every load
    return target


def reproduce_mini(plan: MiniPlan) -> Path:
    """Train (or resume) every variant, write the results, optionally ship; returns the best reasoning model."""
    from salmonn_o1_mini import results

    if plan.ship is not None:
        check_ship_target(plan.ship, plan.force)  # hours before shipping replaces it
    encoders = train_perception(plan)
    copying = train_sft(plan, "mini-copy.yaml", "mini-copy", encoders)
    text = train_sft(plan, "mini-text.yaml", "mini-text", copying)
    answering = train_sft(plan, "mini-answer.yaml", "mini-answer", text)
    start = train_sft(plan, "mini-ground.yaml", "mini-ground", answering)
    sft_model = start
    for stage in REASONING_STAGES:
        sft_model = train_sft(plan, f"{stage}.yaml", stage, sft_model)
    if plan.direct:
        train_sft(plan, "mini-direct.yaml", "mini-direct", start)
    pdpo_runs = {strategy: train_pdpo(plan, sft_model, strategy) for strategy in plan.strategies}
    results.main(results_arguments(plan, sft_model, pdpo_runs))
    if plan.dev_results is not None:
        results.main(results_arguments(plan, sft_model, pdpo_runs, split="dev"))
    if plan.grpo and "contrastive" in pdpo_runs:
        from salmonn_o1_mini import grpo_report

        grpo_run = train_grpo(plan, sft_model, pdpo_generated_tokens(pdpo_runs["contrastive"]))
        grpo_report.main(grpo_report_arguments(plan, sft_model, pdpo_runs["contrastive"], grpo_run))
    candidates = {SFT_NAME: sft_model}
    if "contrastive" in pdpo_runs:
        candidates[PDPO_NAME] = pdpo_runs["contrastive"] / "final"
    best = best_reasoning_model(results.results_json(plan.results), candidates)
    if plan.ship is not None:
        ship(best, plan.ship, plan.force)
    return best
