"""Stage 1, rollout: sample P reasoning paths per question from the SFT policy.

Each path is recorded with its text, its step segments (see `steps`), its
final answer and whether that answer is correct. Questions the policy always
answers correctly teach nothing about its mistakes and are dropped; the kept
ones give full-path pairs (a correct path preferred to a wrong one) and the
paths whose steps are scored and branched in the later stages. The paths of
consecutive questions are sampled `pdpo.batch_size` at a time, each seeded by
its question and index, so the records do not depend on the batch size.

    rollout.jsonl: one `QuestionRollout` per question (or a `FailedQuestion`
    when its media could not be read)
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from salmonn_o1.errors import SalmonnError
from salmonn_o1.inference import Question
from salmonn_o1.pdpo.batching import Part, row_calls
from salmonn_o1.pdpo.costs import Cost, count_forward
from salmonn_o1.pdpo.folder import (
    finish_stage,
    held_ids,
    mean,
    need_model,
    open_stage,
    progress_bar,
    question_seed,
    total_cost,
)
from salmonn_o1.pdpo.judge import Judge, exact_match_judge
from salmonn_o1.pdpo.media import load_features
from salmonn_o1.pdpo.questions import PDPOQuestion
from salmonn_o1.pdpo.sharding import my_file, my_share
from salmonn_o1.pdpo.steps import clean_generated, segment_text, step_segments
from salmonn_o1.processor import MediaFeatures
from salmonn_o1.records import RecordWriter, read_records
from salmonn_o1.train.recipe import PDPOSettings


@dataclass
class PathRecord:
    index: int
    reasoning: str
    segments: list[str]  # raw step segments; "".join(segments) == reasoning
    steps: list[str]  # the same steps as a person reads them
    ends_turn: bool  # the reasoning turn ended with <|im_end|> (not cut at max_new_tokens)
    answer_text: str
    answer: str | None
    correct: bool
    tokens: dict[str, int] = field(default_factory=dict)


@dataclass
class QuestionRollout:
    question: PDPOQuestion
    paths: list[PathRecord]
    cost: Cost

    @property
    def num_correct(self) -> int:
        return sum(p.correct for p in self.paths)

    @property
    def kept(self) -> bool:
        """Wrong at least once (and answered at all)."""
        return bool(self.paths) and self.num_correct < len(self.paths)

    def to_dict(self) -> dict[str, Any]:
        return {**self.question.to_dict(), "num_paths": len(self.paths), "num_correct": self.num_correct,
                "kept": self.kept, "paths": [asdict(p) for p in self.paths], "cost": self.cost.to_dict()}

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> QuestionRollout:
        return cls(PDPOQuestion.from_dict(record), [PathRecord(**p) for p in record["paths"]],
                   Cost(**record["cost"]))


@dataclass
class FailedQuestion:
    """A question whose media could not be read: recorded (so a rerun skips it), never kept."""

    id: str
    error: str

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "error": self.error, "kept": False, "paths": [], "cost": Cost().to_dict()}


def path_record(index: int, result, question: PDPOQuestion, judge: Judge, max_new_tokens: int) -> PathRecord:
    """One sampled path (an `AnswerResult`), split into steps and judged against the reference."""
    reasoning = clean_generated(result.reasoning or "")
    segments = step_segments(reasoning)
    verdict = judge(reasoning, result.answer_text, question.target)
    return PathRecord(
        index=index, reasoning=reasoning, segments=segments, steps=[segment_text(s) for s in segments],
        # The pipeline drops the stop token from the text; a turn shorter than the limit stopped on it.
        ends_turn=result.tokens["reasoning"] < max_new_tokens, answer_text=result.answer_text,
        answer=verdict.answer, correct=verdict.correct, tokens=dict(result.tokens),
    )


class _Pending:
    """A question whose paths are being sampled: its media (loaded and encoded once), paths, cost."""

    def __init__(self, question: PDPOQuestion, features: MediaFeatures | None, media, num_paths: int):
        self.question, self.features, self.media = question, features, media
        self.paths: list[PathRecord | None] = [None] * num_paths
        self.cost = Cost()

    def record(self) -> QuestionRollout:
        return QuestionRollout(self.question, list(self.paths), self.cost)


def _prepare(pipeline, question: PDPOQuestion, num_paths: int) -> _Pending | FailedQuestion:
    try:
        features = load_features(question.media, pipeline.processor)
    except (SalmonnError, ValueError, OSError) as error:
        return FailedQuestion(question.id, str(error))
    return _Pending(question, features, pipeline.decoder.encode_media([features])[0], num_paths)


def _rows_of(work: _Pending | FailedQuestion) -> int:
    return len(work.paths) if isinstance(work, _Pending) else 0


def _sample_call(pipeline, call: list[Part[_Pending]], seed: int, judge: Judge, **generation) -> None:
    """One batched call over the paths in `call` (each seeded by its question and index); fills in
    their records, each question's exact generated tokens and its row share of the call's passes."""
    questions, media, seeds = [], [], []
    for part in call:
        q = part.work.question
        rows = range(part.start, part.stop)
        questions += [Question(part.work.features, q.question, q.options or None, True)] * part.rows
        media += [part.work.media] * part.rows
        seeds += [question_seed(seed, q.id, index) for index in rows]
    counted = Cost()
    with count_forward(pipeline.model, counted):
        results = pipeline.ask_batch(questions, row_seeds=seeds, media=media, **{"do_sample": True, **generation})
    max_new = generation.get("max_new_tokens", 512)
    row = 0
    for part, share in zip(call, counted.split([p.rows for p in call])):
        pending = part.work
        pending.cost.add(share)
        for index in range(part.start, part.stop):
            result = results[row]
            row += 1
            pending.cost.generated_tokens += result.tokens["reasoning"] + result.tokens["answer"]
            pending.paths[index] = path_record(index, result, pending.question, judge, max_new)


def rollout_records(pipeline, questions: Iterable[PDPOQuestion], num_paths: int, batch_size: int, seed: int,
                    judge: Judge = exact_match_judge, **generation) -> Iterator[QuestionRollout | FailedQuestion]:
    """Each question's `num_paths` sampled paths, judged against its reference, in input order.

    The paths of consecutive questions go through the pipeline `batch_size` rows at a time
    (`batching.row_calls`); path i of a question is seeded `question_seed(seed, id, i)`, so its
    record does not depend on the batch size or on the other questions. A question's media is
    loaded and encoded once; one whose media fails is a `FailedQuestion`, the others go on.
    generation: max_new_tokens, answer_max_new_tokens, temperature, top_p (do_sample is on).
    """
    works = (_prepare(pipeline, question, num_paths) for question in questions)
    for call, finished in row_calls(works, _rows_of, batch_size):
        if call:
            _sample_call(pipeline, call, seed, judge, **generation)
        for work in finished:
            yield work.record() if isinstance(work, _Pending) else work


def rollout_question(
    pipeline,
    question: PDPOQuestion,
    num_paths: int,
    judge: Judge = exact_match_judge,
    seed: int = 0,
    batch_size: int = 16,
    **generation,
) -> QuestionRollout | FailedQuestion:
    """One question's rollout, as the stage samples it (the same paths whatever the batch size)."""
    return next(rollout_records(pipeline, [question], num_paths, batch_size, seed, judge, **generation))


def run_rollout(out_dir: str | Path, pipeline, questions: list[PDPOQuestion], settings: PDPOSettings,
                judge: Judge = exact_match_judge, progress: bool = True) -> dict[str, Any]:
    """Stage 1 over `questions` into out_dir/rollout.jsonl (resumable); returns the stage summary."""
    need_model(pipeline, "rollout", "sampling paths")
    settings = settings.resolved()
    out_dir, path = open_stage(out_dir, "rollout", settings)
    done = held_ids(path)
    writer = RecordWriter(my_file(path))
    todo = my_share([q for q in questions if q.id not in done])
    started = time.perf_counter()
    for result in rollout_records(pipeline, progress_bar(todo, "rollout", progress), settings.paths,
                                  settings.batch_size, settings.seed, judge, **settings.generation()):
        writer.write([result.to_dict()])  # each question as soon as its last path is sampled, in order
    return finish_stage(out_dir, "rollout", len(todo), started,
                        lambda n, s: rollout_summary(read_records(path), n, s), [q.id for q in questions])


def rollout_summary(records: list[dict[str, Any]], processed: int = 0, seconds: float = 0.0) -> dict[str, Any]:
    """The stage's numbers over every record. `cost` adds up the questions' costs: generated tokens
    exactly, and each batched call's passes, positions and prefill positions shared out among its
    questions by rows (`Cost.split`; a prefix the rows share is counted once, in prefill_positions)."""
    ok = [r for r in records if "error" not in r]
    paths = [p for r in ok for p in r["paths"]]
    kept = [r for r in ok if r["kept"]]
    correct_counts = [r["num_correct"] for r in kept]
    return {
        "questions": len(records), "errors": len(records) - len(ok), "kept": len(kept),
        "all_correct": sum(1 for r in ok if r["paths"] and r["num_correct"] == len(r["paths"])),
        "all_wrong": sum(1 for r in ok if r["paths"] and r["num_correct"] == 0),
        "paths": len(paths), "path_accuracy": mean([p["correct"] for p in paths]),
        "unreadable_answers": sum(p["answer"] is None for p in paths),
        "steps_per_path": mean([len(p["segments"]) for p in paths]),
        "paths_cut_at_max_new_tokens": sum(not p["ends_turn"] for p in paths),
        "full_path_pairs_possible": sum(min(c, r["num_paths"] - c) for r, c in zip(kept, correct_counts)),
        "cost": total_cost(records), "processed_this_run": processed, "seconds_this_run": round(seconds, 3),
    }
