"""Stage 4, pairs: preference pairs from the labelled steps and the rollout's paths.

Step pairs continue a path's prefix with the original step or its alternative,
oriented so `chosen` has the higher value (ties make no pair); full-path pairs
prefer a correct whole path to a wrong one. With `reference_logps` the SFT
model (the frozen reference) scores every pair once and the log-probs are
stored in the records, so training needs no second model.

    pairs.jsonl: one `pairs.PairRecord` per pair
    pairs_questions.jsonl: one line per question handled (with or without pairs): what resuming
        skips, and the reference passes' cost, which belongs to no single pair
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from salmonn_o1.pdpo.costs import Cost, count_forward
from salmonn_o1.pdpo.folder import (
    finish_stage,
    held_ids,
    keyed_records,
    mean,
    need_model,
    open_stage,
    progress_bar,
    stage_file,
    total_cost,
)
from salmonn_o1.pdpo.label import LabelRecord
from salmonn_o1.pdpo.loss import has_adapters, precompute_reference_logps
from salmonn_o1.pdpo.objective import DPOObjective
from salmonn_o1.pdpo.pairs import Continuation, PairRecord, oriented_pair, pair_label
from salmonn_o1.pdpo.reference import shared_prefix_reference_logps
from salmonn_o1.pdpo.rollout import QuestionRollout
from salmonn_o1.pdpo.sharding import my_file, my_share
from salmonn_o1.records import RecordWriter, read_records
from salmonn_o1.train.recipe import PDPOSettings


def full_path_pairs(rollout: QuestionRollout, mode: str = "hard", mu: float = 0.1,
                    max_pairs: int | None = None) -> list[PairRecord]:
    """Correct paths preferred to wrong ones, each path used at most once (min(#correct, #wrong) pairs).

    A path's value is its own outcome (1 or 0), so a soft label is sigma(1 / mu).
    Paths without steps and duplicate texts are skipped.
    """
    seen: set[str] = set()
    correct, wrong = [], []
    for path in rollout.paths:
        if not path.segments or path.reasoning in seen:
            continue
        seen.add(path.reasoning)
        (correct if path.correct else wrong).append(path)
    q = rollout.question
    pairs = []
    for good, bad in list(zip(correct, wrong))[:max_pairs]:
        chosen = Continuation("".join(good.segments), good.ends_turn, 1.0)
        rejected = Continuation("".join(bad.segments), bad.ends_turn, 0.0)
        pairs.append(PairRecord(
            pair_id=f"{q.id}/path/{good.index}-{bad.index}", kind="path", question_id=q.id, prompt=q.prompt,
            reference=q.reference, media=q.media, prefix=[], chosen=chosen, rejected=rejected,
            label=pair_label(1.0, 0.0, mode, mu), label_mode=mode, mu=mu if mode == "soft" else None,
            extras={"chosen_path": good.index, "rejected_path": bad.index,
                    "chosen_answer": good.answer, "rejected_answer": bad.answer},
        ))
    return pairs


def step_pairs(labelled: LabelRecord, mode: str = "hard", mu: float = 0.1) -> list[PairRecord]:
    """One pair per labelled step whose alternative's value differs from the original's."""
    q = labelled.question
    pairs: list[PairRecord] = []
    for step in labelled.steps:
        if step.alternative is None:
            continue
        oriented = oriented_pair(step.original, step.alternative, mode, mu)
        if oriented is None:  # equal values: no preference
            continue
        chosen, rejected, label = oriented
        pairs.append(PairRecord(
            pair_id=f"{q.id}/step/{step.path}-{step.step_index}", kind="step", question_id=q.id,
            prompt=labelled.prompt, reference=q.reference, media=q.media, prefix=step.prefix, chosen=chosen,
            rejected=rejected, label=label, label_mode=mode, mu=mu if mode == "soft" else None,
            step_index=step.step_index, kl=step.kl,
            extras={"path": step.path, "chosen_is_original": chosen is step.original,
                    "selection": labelled.selection},
        ))
    return pairs


def question_pairs(labelled: LabelRecord, rollout: QuestionRollout | None, settings: PDPOSettings) -> list[PairRecord]:
    """A question's step pairs, then its full-path pairs."""
    pairs = step_pairs(labelled, settings.label_mode, settings.mu)
    if rollout is not None:
        pairs += full_path_pairs(rollout, settings.label_mode, settings.mu)
    return pairs


def reference_pass(pipeline, objective, pending: list[tuple[str, list[dict[str, Any]]]],
                   settings: PDPOSettings) -> list[Cost]:
    """Reference log-probs of several questions' pairs, in batches of batch_size sequences (a pair is two),
    stored in the records in place; each question's share of the forwards (by its pairs). Through the
    pipeline's decoder (`reference`: each prompt and video once), or, for a model with adapters, as
    training runs it."""
    weights = [len(records) for _, records in pending]
    if objective is None or not sum(weights):
        return [Cost() for _ in pending]
    cost = Cost()
    records = [r for _, rs in pending for r in rs]
    with count_forward(pipeline.model, cost):
        if has_adapters(pipeline.model):  # the reference is the model with its adapters off
            scored = precompute_reference_logps(pipeline.model, objective, records,
                                                batch_size=max(1, settings.batch_size // 2))
        else:
            scored = shared_prefix_reference_logps(pipeline.decoder, objective, records, settings.batch_size)
    start = 0
    for _, records in pending:
        records[:] = scored[start:start + len(records)]
        start += len(records)
    return cost.split(weights)


def run_pairs(out_dir: str | Path, pipeline, settings: PDPOSettings, progress: bool = True) -> dict[str, Any]:
    """Stage 4 from out_dir/label.jsonl and rollout.jsonl (resumable); returns the stage summary.

    With settings.reference_logps, `pipeline.model` (the SFT model = the frozen
    reference) scores every pair once and the log-probs are stored in the records.
    """
    if settings.reference_logps:
        need_model(pipeline, "pairs", "storing reference log-probs (reference_logps=False skips them)")
    settings = settings.resolved()
    out_dir, path = open_stage(out_dir, "pairs", settings)
    ledger_path = out_dir / "pairs_questions.jsonl"
    done = held_ids(ledger_path) | held_ids(path, "question_id")
    rollouts = {r["id"]: r for r in keyed_records(stage_file(out_dir, "rollout"))}
    labels = keyed_records(stage_file(out_dir, "label"))  # pairs never change it: read once
    todo = my_share([r for r in labels if r["id"] not in done])
    objective = DPOObjective(pipeline.processor) if settings.reference_logps else None
    writer, ledger = RecordWriter(my_file(path)), RecordWriter(my_file(ledger_path))
    started = time.perf_counter()
    pending: list[tuple[str, list[dict[str, Any]]]] = []  # questions scored together: pairs fill batch_size
    sequences = 0  # a pair is two
    for number, record in enumerate(progress_bar(todo, "pairs", progress), start=1):
        rollout = rollouts.get(record["id"])
        rollout = QuestionRollout.from_dict(rollout) if rollout is not None and "error" not in rollout else None
        records = [p.to_dict() for p in question_pairs(LabelRecord.from_dict(record), rollout, settings)]
        pending.append((record["id"], records))
        sequences += 2 * len(records)
        if number < len(todo) and sequences < settings.batch_size:
            continue
        for (question_id, records), cost in zip(pending, reference_pass(pipeline, objective, pending, settings)):
            writer.write(records)
            ledger.write([{"id": question_id, "pairs": len(records), "cost": cost.to_dict()}])
        pending, sequences = [], 0
    return finish_stage(out_dir, "pairs", len(todo), started, lambda n, s: pairs_summary(
        read_records(path), labels, read_records(ledger_path), out_dir, n, s), files={"pairs": "question_id",
                                                                                     "pairs_questions": "id"})


def pairs_summary(pairs: list[dict[str, Any]], labels: list[dict[str, Any]], ledger: list[dict[str, Any]],
                  out_dir: Path, processed: int = 0, seconds: float = 0.0) -> dict[str, Any]:
    by_step = [p for p in pairs if p["kind"] == "step"]
    stage_costs = {}
    for stage in ("rollout", "select", "label"):
        summary_path = out_dir / f"{stage}_summary.json"
        if summary_path.exists():
            stage_costs[stage] = json.loads(summary_path.read_text())["cost"]
    stage_costs["pairs"] = total_cost(ledger)
    total = Cost()
    for c in stage_costs.values():
        total.add(c)
    return {
        "pairs": len(pairs), "step_pairs": len(by_step), "path_pairs": len(pairs) - len(by_step),
        "questions_with_pairs": len({p["question_id"] for p in pairs}),
        "ties_dropped": sum(1 for r in labels for s in r["steps"] if s["alternative"] is not None
                            and s["original"]["value"] == s["alternative"]["value"]),
        "label_mean": mean([p["label"] for p in pairs]),
        "step_label_balance": {  # which side of the branch won: a skew here is a bias of the data
            "original_chosen": sum(1 for p in by_step if p["extras"]["chosen_is_original"]),
            "alternative_chosen": sum(1 for p in by_step if not p["extras"]["chosen_is_original"]),
        },
        "mean_value_gap_step": mean([p["value_gap"] for p in by_step]),
        "with_reference_logps": sum(p["ref_logps"] is not None for p in pairs),
        "cost_by_stage": stage_costs, "cost_total": total.to_dict(),
        "pairs_per_1k_generated_tokens": (1000 * len(pairs) / total.generated_tokens
                                          if total.generated_tokens else None),
        "step_pairs_per_1k_generated_tokens": (1000 * len(by_step) / total.generated_tokens
                                               if total.generated_tokens else None),
        "processed_this_run": processed, "seconds_this_run": round(seconds, 3),
    }
