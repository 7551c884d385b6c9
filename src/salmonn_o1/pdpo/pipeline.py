"""`salmonn-o1 train pdpo --config RECIPE`: the four data stages, then DPO on the shared engine.

The recipe's `model.source` is the SFT model: it samples the rollouts, scores
the steps, labels them, provides the frozen reference log-probs, and is the
starting point of the trained policy (LoRA or full, as the recipe says).
The recipe's `pdpo:` section (`PDPOSettings`, docs/pdpo.md) holds the stage
settings, `questions` (`{path: items.jsonl}` or a question-source component)
and the training options `beta` and `sft_weight`. Stage files live in
`run.out_dir/stages/`; each stage skips the questions it already holds, so
rerunning resumes.

Under `accelerate launch` every process runs the stages on its share of the
questions (`pdpo.sharding`: own shard files, merged by the main process at the
end of each stage) and then DPO training, which accelerate spreads itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from salmonn_o1.errors import DataError
from salmonn_o1.launch import current_processes
from salmonn_o1.pdpo.folder import stage_file
from salmonn_o1.pdpo.label import run_label
from salmonn_o1.pdpo.loss import has_adapters, precompute_reference_logps
from salmonn_o1.pdpo.objective import DPOObjective
from salmonn_o1.pdpo.pairing import run_pairs
from salmonn_o1.pdpo.questions import load_questions
from salmonn_o1.pdpo.rollout import run_rollout
from salmonn_o1.pdpo.select import run_select
from salmonn_o1.records import read_records
from salmonn_o1.train.batching import epoch_order
from salmonn_o1.train.recipe import PDPOSettings, Recipe, load_recipe
from salmonn_o1.train.trainer import Trainer, TrainResult


class PlannedPairs(Dataset):
    """`total` training positions over the pair records, in seeded per-epoch shuffles."""

    def __init__(self, pairs: list[dict[str, Any]], total: int, seed: int):
        if not pairs:
            raise DataError("no preference pairs: the policy answered every kept question the same way in all "
                            "paths, or no question was kept (more questions, more paths or a weaker policy help)")
        self.pairs = pairs
        self.order = epoch_order(len(pairs), total, seed)

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


def stage_settings(recipe: Recipe) -> PDPOSettings:
    """The recipe's `pdpo:` section, recording `model.source` and seeded by `run.seed` unless it says otherwise."""
    return (recipe.pdpo or PDPOSettings()).resolved(model=recipe.model.source, seed=recipe.run.seed)


def run_stages(recipe: Recipe, progress: bool = True) -> dict[str, dict[str, Any]]:
    """rollout -> select -> label -> pairs with the SFT model; returns each stage's summary (under
    `accelerate launch`: each process on its share, each stage's shards merged before the next)."""
    from salmonn_o1.inference import SalmonnO1Pipeline

    settings = stage_settings(recipe)
    out = Path(recipe.run.out_dir) / "stages"
    out.mkdir(parents=True, exist_ok=True)
    # The stages' values and reference log-probs must come from the model the trainer starts from, so
    # they use the training precision (float32 unless run.precision asks for bf16/fp16), also on a GPU.
    dtype = {"bf16": "bfloat16", "fp16": "float16"}.get(recipe.run.precision, "float32")
    device = current_processes().device  # under a launch on GPUs: this process's own GPU
    pipeline = SalmonnO1Pipeline.from_pretrained(recipe.model.source, device=device, dtype=dtype)
    questions = load_questions(settings.questions, pipeline.processor)
    summaries = {"rollout": run_rollout(out, pipeline, questions, settings, progress=progress)}
    check_pairs_possible(summaries["rollout"], None, settings)
    summaries["select"] = run_select(out, pipeline, settings, progress=progress)
    summaries["label"] = run_label(out, pipeline, settings, progress=progress)
    check_pairs_possible(summaries["rollout"], summaries["label"], settings)
    summaries["pairs"] = run_pairs(out, pipeline, settings, progress=progress)
    return summaries


def check_pairs_possible(rollout: dict[str, Any], label: dict[str, Any] | None, settings: PDPOSettings) -> None:
    """Stop as soon as the stage summaries show that no preference pair can come out, with the reason.

    After the rollouts: pairs come only from kept questions (answered wrong in at least one path).
    After labelling: a step pair needs an alternative whose value differs from the original's, and a
    full-path pair a kept question with right and wrong paths; with neither, training has nothing.
    """
    if rollout["kept"] == 0:
        raise DataError(
            f"no preference pairs are possible (checked after the rollouts): none of the "
            f"{rollout['questions']} question(s) was answered wrong in any of its {settings.paths} path(s) "
            f"({rollout['all_correct']} always right, {rollout['errors']} failed); more or harder questions, "
            "more paths (pdpo.paths) or a higher pdpo.temperature help"
        )
    if label is not None and rollout["full_path_pairs_possible"] == 0 and not (
        label["original_better"] or label["alternative_better"]
    ):
        raise DataError(
            f"no preference pairs are possible (checked after labelling): of {label['steps']} selected step(s), "
            f"{label['no_alternative']} got no alternative and {label['ties']} tied in value, and no kept question "
            "has both right and wrong paths; more questions, more rollouts (pdpo.rollouts) or more selected "
            "steps (pdpo.top_t) help"
        )


def run_pdpo(recipe: Recipe | str | Path, overrides: list[str] | None = None, resume: bool | str = False,
             stop_at_step: int | None = None, progress: bool = True) -> TrainResult:
    """The whole pDPO recipe: data stages (resumable), then DPO training (resumable)."""
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe, overrides)
    if stage_settings(recipe).pairs is None:  # `pdpo.pairs` names ready pairs: no stages to run
        run_stages(recipe, progress)
    return train_on_pairs(recipe, resume, stop_at_step)


def train_on_pairs(recipe: Recipe, resume: bool | str = False, stop_at_step: int | None = None) -> TrainResult:
    """DPO training on the pairs already in `run.out_dir/stages` (written by `run_stages`), or on
    the ready pairs `pdpo.pairs` names."""
    from salmonn_o1.train.model_setup import build_model

    settings = stage_settings(recipe)
    pairs_path = Path(settings.pairs) if settings.pairs else stage_file(Path(recipe.run.out_dir) / "stages", "pairs")
    if settings.pairs and not pairs_path.is_file():
        raise DataError(f"pdpo.pairs: {pairs_path}: no such file")
    pairs = read_records(pairs_path)
    model, processor = build_model(recipe.model)
    total = recipe.optim.max_steps * recipe.optim.batch_size * recipe.optim.grad_accum
    dataset = PlannedPairs(pairs, total, recipe.run.seed)
    objective = DPOObjective(processor, beta=settings.beta, sft_weight=settings.sft_weight,
                             label_mode=settings.label_mode, mu=settings.mu, max_length=recipe.data.max_length)
    if any(p.get("ref_logps") is None for p in pairs) and not has_adapters(model):
        # imported pairs carry no reference log-probs: the starting model is the reference, score them now
        dataset.pairs = precompute_reference_logps(model, objective, pairs)
    return Trainer(recipe, model, processor, dataset, objective).train(resume=resume, stop_at_step=stop_at_step)
