"""Stage 3, label: the value of each selected step and of one alternative to it.

At every selected step k of a path, the policy samples one alternative step
from the same prefix (steps 1..k-1), then N completions from the original and
from the alternative branch; a branch's value is the fraction of completions
that reach the reference answer (`values.label_sites`). Questions are valued
together until their selected steps fill `batch_size` rows; each row is seeded
by its question, path and step, so the records do not depend on the batching.

    label.jsonl: one `LabelRecord` per selected question
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import asdict, dataclass, fields
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
from salmonn_o1.pdpo.judge import Judge, exact_match_judge
from salmonn_o1.pdpo.media import load_features
from salmonn_o1.pdpo.pairs import Continuation
from salmonn_o1.pdpo.questions import PDPOQuestion
from salmonn_o1.pdpo.select import SelectRecord
from salmonn_o1.pdpo.sharding import my_file, my_share
from salmonn_o1.pdpo.values import ModelPolicy, Site, StepValues, label_sites
from salmonn_o1.records import RecordWriter, read_records
from salmonn_o1.train.recipe import PDPOSettings


@dataclass
class StepLabel:
    """One valued step: where it is, the original step and the alternative with their values."""

    path: int
    path_correct: bool
    step_index: int
    kl: float | None  # the step's contrastive score, when one was computed
    prefix: list[str]  # the path's steps before it (raw segments)
    original: Continuation
    alternative: Continuation | None  # None: no alternative differing from the original was sampled
    details: dict[str, Any]  # the rest of the values' record: completions' answers, tokens, tries, note

    @classmethod
    def of(cls, path: int, path_correct: bool, step_index: int, kl: float | None, prefix: list[str],
           values: StepValues) -> StepLabel:
        return cls.from_dict({"path": path, "path_correct": path_correct, "step_index": step_index, "kl": kl,
                              "prefix": prefix, **values.to_dict()})

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "path_correct": self.path_correct, "step_index": self.step_index,
                "kl": self.kl, "prefix": self.prefix, "original": asdict(self.original),
                "alternative": asdict(self.alternative) if self.alternative is not None else None, **self.details}

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> StepLabel:
        names = [f.name for f in fields(cls) if f.name != "details"]
        alternative = record["alternative"]
        return cls(record["path"], record["path_correct"], record["step_index"], record["kl"], record["prefix"],
                   Continuation(**record["original"]),
                   Continuation(**alternative) if alternative is not None else None,
                   {k: v for k, v in record.items() if k not in names})


@dataclass
class LabelRecord:
    question: PDPOQuestion
    prompt: str
    selection: str
    steps: list[StepLabel]
    cost: Cost

    def to_dict(self) -> dict[str, Any]:
        return {**self.question.to_dict(), "prompt": self.prompt, "selection": self.selection,
                "steps": [s.to_dict() for s in self.steps], "cost": self.cost.to_dict()}

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> LabelRecord:
        return cls(PDPOQuestion.from_dict(record), record["prompt"], record["selection"],
                   [StepLabel.from_dict(s) for s in record["steps"]], Cost(**record["cost"]))


def label_questions(policy: ModelPolicy, selected: list[SelectRecord], settings: PDPOSettings,
                    judge: Judge = exact_match_judge) -> list[LabelRecord]:
    """The label records of several questions, their steps valued together (`values.label_sites`,
    settings.batch_size rows a call): each row is seeded by its question, path, step (and try, or
    branch and rollout), so the records are those of one question at a time, at any batch size."""
    costs = [Cost() for _ in selected]
    sites, where = [], []
    try:
        for q, record in enumerate(selected):
            question = record.question
            todo = [(p, k) for p in record.paths for k in p.selected]
            if not todo:
                continue
            with count_forward(policy.model, costs[q]):  # the prompt's prefill, once for all its calls
                context = policy.prepare(question.prompt, load_features(question.media, policy.processor))
            for path, k in todo:
                last = k == len(path.segments) - 1
                original = Continuation(path.segments[k], last and path.ends_turn)
                sites.append(Site(context, path.segments[:k], original, question.target,
                                  (settings.seed, question.id, path.index, k), costs[q]))
                where.append((q, path, k))
        values = label_sites(policy, sites, settings.rollouts, judge, settings.alternative_tries,
                             settings.batch_size)
    finally:
        policy.release()
    steps: list[list[StepLabel]] = [[] for _ in selected]
    for (q, path, k), v in zip(where, values):
        costs[q].generated_tokens += v.generated
        steps[q].append(StepLabel.of(path.index, path.correct, k, path.scores[k] if path.scores is not None else None,
                                     path.segments[:k], v))
    return [LabelRecord(r.question, r.question.prompt, r.selection, s, c) for r, s, c in zip(selected, steps, costs)]


def label_question(policy: ModelPolicy, selected: SelectRecord, settings: PDPOSettings,
                   judge: Judge = exact_match_judge) -> LabelRecord:
    return label_questions(policy, [selected], settings, judge)[0]


def selected_steps(record: dict[str, Any]) -> int:
    """The steps a select record branches (the rows of its alternatives' batch)."""
    return sum(len(p["selected"]) for p in record["paths"])


def run_label(out_dir: str | Path, pipeline, settings: PDPOSettings, judge: Judge = exact_match_judge,
              progress: bool = True) -> dict[str, Any]:
    """Stage 3 over out_dir/select.jsonl (resumable); returns the stage summary."""
    need_model(pipeline, "label", "sampling alternatives and rollouts")
    settings = settings.resolved()
    out_dir, path = open_stage(out_dir, "label", settings)
    done = held_ids(path)
    todo = my_share([r for r in keyed_records(stage_file(out_dir, "select")) if r["id"] not in done])
    policy = ModelPolicy(pipeline.model, pipeline.processor, settings.temperature, settings.top_p,
                         settings.max_new_tokens, settings.answer_max_new_tokens, settings.max_step_tokens)
    writer = RecordWriter(my_file(path))
    started = time.perf_counter()
    pending: list[SelectRecord] = []  # questions valued together: their steps fill settings.batch_size
    steps = 0
    for number, record in enumerate(progress_bar(todo, "label", progress), start=1):
        pending.append(SelectRecord.from_dict(record))
        steps += selected_steps(record)
        if number == len(todo) or steps >= settings.batch_size:
            writer.write([r.to_dict() for r in label_questions(policy, pending, settings, judge)])
            pending, steps = [], 0
    return finish_stage(out_dir, "label", len(todo), started, lambda n, s: label_summary(read_records(path), n, s))


def label_summary(records: list[dict[str, Any]], processed: int = 0, seconds: float = 0.0) -> dict[str, Any]:
    steps = [s for r in records for s in r["steps"]]
    branched = [s for s in steps if s["alternative"] is not None]
    gaps = [s["original"]["value"] - s["alternative"]["value"] for s in branched]
    return {
        "questions": len(records), "steps": len(steps), "with_alternative": len(branched),
        "no_alternative": len(steps) - len(branched), "ties": sum(g == 0 for g in gaps),
        "original_better": sum(g > 0 for g in gaps), "alternative_better": sum(g < 0 for g in gaps),
        "mean_value_original": mean([s["original"]["value"] for s in branched]),
        "mean_value_alternative": mean([s["alternative"]["value"] for s in branched]),
        "mean_abs_value_gap": mean([abs(g) for g in gaps]),
        "value_gap_histogram": {f"{g:+.3f}": n for g, n in sorted(Counter(round(g, 3) for g in gaps).items())},
        "cost": total_cost(records), "processed_this_run": processed, "seconds_this_run": round(seconds, 3),
    }
