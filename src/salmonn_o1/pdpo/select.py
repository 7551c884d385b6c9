"""Stage 2, select: which steps of each kept question's paths get valued.

Contrastive selection scores every step by how much the media matters to it,
KL(policy | real media || policy | perturbed media) over the step's tokens
(`scoring.path_kl_scores`, the paths of several questions per call), and keeps the top T per path; "all" and "random"
are the baselines and need no model. Only distinct paths with steps are
branched, the wrong ones first (that is where the errors are), at most
`max_paths` of them.

    select.jsonl: one `SelectRecord` per kept question
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from salmonn_o1.pdpo.batching import Part, row_calls
from salmonn_o1.pdpo.costs import Cost, count_forward
from salmonn_o1.pdpo.folder import (
    finish_stage,
    held_ids,
    keyed_records,
    mean,
    need_model,
    open_stage,
    progress_bar,
    question_seed,
    stage_file,
    total_cost,
)
from salmonn_o1.pdpo.media import load_features
from salmonn_o1.pdpo.perturb import Perturbation
from salmonn_o1.pdpo.questions import PDPOQuestion
from salmonn_o1.pdpo.rollout import PathRecord, QuestionRollout
from salmonn_o1.pdpo.scoring import ScoredPath, StepSelector, encode_media_once, path_kl_scores
from salmonn_o1.pdpo.sharding import my_file, my_share
from salmonn_o1.pdpo.steps import path_ids
from salmonn_o1.prompts import IM_END
from salmonn_o1.records import RecordWriter, read_records
from salmonn_o1.train.recipe import PDPOSettings


@dataclass
class PathSelection:
    """One branched path: its steps, their scores (contrastive only) and the selected step indices."""

    index: int
    correct: bool
    answer: str | None
    ends_turn: bool
    segments: list[str]
    steps: list[str]
    scores: list[float] | None
    selected: list[int]


@dataclass
class SelectRecord:
    question: PDPOQuestion
    num_paths: int
    num_correct: int
    kept: bool
    selection: str
    paths: list[PathSelection]
    cost: Cost
    note: str = ""  # why no scores were computed (e.g. frames noise on an audio-only input)

    def to_dict(self) -> dict[str, Any]:
        record = {**self.question.to_dict(), "num_paths": self.num_paths, "num_correct": self.num_correct,
                  "kept": self.kept, "selection": self.selection, "paths": [asdict(p) for p in self.paths],
                  "cost": self.cost.to_dict()}
        if self.note:
            record["note"] = self.note
        return record

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> SelectRecord:
        return cls(PDPOQuestion.from_dict(record), record["num_paths"], record["num_correct"], record["kept"],
                   record["selection"], [PathSelection(**p) for p in record["paths"]], Cost(**record["cost"]),
                   record.get("note", ""))


def paths_to_branch(rollout: QuestionRollout, max_paths: int | None) -> list[PathRecord]:
    """Distinct paths with steps, wrong ones first (that is where the errors are), at most max_paths."""
    seen, chosen = set(), []
    for path in sorted(rollout.paths, key=lambda p: (p.correct, p.index)):
        if path.segments and path.reasoning not in seen:
            seen.add(path.reasoning)
            chosen.append(path)
    return chosen[:max_paths]


class _Scoring:
    """A kept question on its way through selection: its branched paths and, for contrastive
    selection, the rows to score (media loaded, perturbed and encoded once), their scores, its cost."""

    def __init__(self, rollout: QuestionRollout, paths: list[PathRecord]):
        self.rollout, self.paths = rollout, paths
        self.rows: list[ScoredPath] = []
        self.scores: list[list[float] | None] = [None] * len(paths)
        self.cost = Cost()
        self.note = ""  # why no scores were computed (e.g. frames noise on an audio-only input)

    def record(self, selector: StepSelector) -> SelectRecord:
        question, entries = self.rollout.question, []
        for path, path_scores in zip(self.paths, self.scores):
            if selector.needs_scores and path_scores is None:
                selected: list[int] = []
            else:
                selected = selector.select(len(path.segments), path_scores, key=f"{question.id}/{path.index}")
            entries.append(PathSelection(path.index, path.correct, path.answer, path.ends_turn, path.segments,
                                         path.steps, path_scores, selected))
        return SelectRecord(question, len(self.rollout.paths), self.rollout.num_correct, self.rollout.kept,
                            selector.strategy, entries, self.cost, self.note)


def _prepare(pipeline, rollout: QuestionRollout, selector: StepSelector, perturbation: Perturbation,
             settings: PDPOSettings) -> _Scoring:
    work = _Scoring(rollout, paths_to_branch(rollout, settings.max_paths))
    if not (selector.needs_scores and work.paths):
        return work
    question, processor, model = rollout.question, pipeline.processor, pipeline.model
    features = load_features(question.media, processor)
    try:
        perturbed = perturbation(features, seed=question_seed(settings.seed, question.id))
    except ValueError as error:  # e.g. frames noise on an audio-only input
        work.note = str(error)
        return work
    tokenizer = processor.tokenizer
    im_end = tokenizer.convert_tokens_to_ids(IM_END)
    real_media, perturbed_media = encode_media_once(model, features), encode_media_once(model, perturbed)
    prompt = processor.encode(question.prompt, features).input_ids
    work.rows = [ScoredPath(prompt, real_media, perturbed_media, *path_ids(tokenizer, p.segments, p.ends_turn,
                                                                          im_end)) for p in work.paths]
    return work


def _score_call(pipeline, call: list[Part[_Scoring]]) -> None:
    """One real and one perturbed pass over the rows in `call`; each question gets its rows' scores
    and its row share of the passes."""
    counted = Cost()
    with count_forward(pipeline.model, counted):
        scores = path_kl_scores(pipeline.model, [row for p in call for row in p.work.rows[p.start:p.stop]],
                                pipeline.processor.tokenizer.pad_token_id)
    row = 0
    for part, share in zip(call, counted.split([p.rows for p in call])):
        part.work.cost.add(share)
        part.work.scores[part.start:part.stop] = scores[row:row + part.rows]
        row += part.rows


def select_records(pipeline, rollouts: Iterable[QuestionRollout], selector: StepSelector,
                   perturbation: Perturbation, settings: PDPOSettings) -> Iterator[SelectRecord]:
    """Each kept question's selection, in input order. Contrastive scores: the paths of consecutive
    questions are scored `settings.batch_size` rows per call (`batching.row_calls`), each question's
    media perturbed with its own seed, so a record does not depend on the batch size."""
    works = (_prepare(pipeline, rollout, selector, perturbation, settings) for rollout in rollouts)
    for call, finished in row_calls(works, lambda work: len(work.rows), settings.batch_size):
        if call:
            _score_call(pipeline, call)
        for work in finished:
            yield work.record(selector)


def select_question(pipeline, rollout: QuestionRollout, selector: StepSelector, perturbation: Perturbation,
                    settings: PDPOSettings) -> SelectRecord:
    """One question's selection, as the stage makes it."""
    return next(select_records(pipeline, [rollout], selector, perturbation, settings))


def run_select(out_dir: str | Path, pipeline, settings: PDPOSettings, progress: bool = True) -> dict[str, Any]:
    """Stage 2 over the kept questions of out_dir/rollout.jsonl (resumable); returns the stage summary."""
    settings = settings.resolved()
    out_dir, path = open_stage(out_dir, "select", settings)
    done = held_ids(path)
    todo = my_share([r for r in keyed_records(stage_file(out_dir, "rollout")) if r.get("kept") and r["id"] not in done])
    selector = StepSelector(settings.selection, settings.top_t, settings.seed)
    if selector.needs_scores:
        need_model(pipeline, "select", "contrastive selection")
    perturbation = Perturbation(settings.perturb, settings.noise_step, settings.seed)
    writer = RecordWriter(my_file(path))
    started = time.perf_counter()
    rollouts = (QuestionRollout.from_dict(record) for record in progress_bar(todo, "select", progress))
    for result in select_records(pipeline, rollouts, selector, perturbation, settings):
        writer.write([result.to_dict()])  # each question as soon as its paths are scored, in order
    return finish_stage(out_dir, "select", len(todo), started, lambda n, s: select_summary(read_records(path), n, s))


def select_summary(records: list[dict[str, Any]], processed: int = 0, seconds: float = 0.0) -> dict[str, Any]:
    """The stage's numbers over every record. `cost` adds up the questions' costs: each scoring call's
    passes, positions and prefill positions shared out among its questions by rows (`Cost.split`;
    a prompt the rows of a question share is counted once, in prefill_positions)."""
    paths = [p for r in records for p in r["paths"]]
    selected_scores, other_scores = [], []
    for p in paths:
        if p["scores"] is None:
            continue
        for k, s in enumerate(p["scores"]):
            (selected_scores if k in p["selected"] else other_scores).append(s)
    return {
        "questions": len(records), "paths": len(paths), "steps": sum(len(p["segments"]) for p in paths),
        "selected_steps": sum(len(p["selected"]) for p in paths),
        "selected_step_positions": dict(sorted(Counter(k for p in paths for k in p["selected"]).items())),
        "mean_score_selected": mean(selected_scores), "mean_score_other": mean(other_scores),
        "notes": sum(1 for r in records if r.get("note")),
        "cost": total_cost(records), "processed_this_run": processed, "seconds_this_run": round(seconds, 3),
    }
