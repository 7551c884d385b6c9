"""Stage 1, rollout: sample P reasoning paths per question from the SFT policy.

Each path is recorded with its text, its step segments (see `steps`), its
final answer and whether that answer is correct. Questions the policy always
answers correctly teach nothing about its mistakes and are dropped; the kept
ones give full-path pairs (a correct path preferred to a wrong one) and the
paths whose steps are scored and branched in the later stages.

    rollout.jsonl: one `QuestionRollout` per question (or a `FailedQuestion`
    when its media could not be read)
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from salmonn_o1.errors import SalmonnError
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


def rollout_question(
    pipeline,
    question: PDPOQuestion,
    features: MediaFeatures | None,
    num_paths: int,
    judge: Judge = exact_match_judge,
    **generation,
) -> QuestionRollout:
    """`num_paths` sampled paths (one batch through `pipeline.sample`), judged against the reference.

    generation: max_new_tokens, answer_max_new_tokens, temperature, top_p, seed (do_sample is on).
    """
    cost = Cost()
    max_new = generation.get("max_new_tokens", 512)
    with count_forward(pipeline.model, cost):
        results = pipeline.sample(features, question.question, question.options or None,
                                  num_return_sequences=num_paths, **generation)
    paths = []
    for index, result in enumerate(results):
        reasoning = clean_generated(result.reasoning or "")
        segments = step_segments(reasoning)
        verdict = judge(reasoning, result.answer_text, question.target)
        cost.generated_tokens += result.tokens["reasoning"] + result.tokens["answer"]
        paths.append(PathRecord(
            index=index, reasoning=reasoning, segments=segments, steps=[segment_text(s) for s in segments],
            # The pipeline drops the stop token from the text; a turn shorter than the limit stopped on it.
            ends_turn=result.tokens["reasoning"] < max_new, answer_text=result.answer_text,
            answer=verdict.answer, correct=verdict.correct, tokens=dict(result.tokens),
        ))
    return QuestionRollout(question, paths, cost)


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
    for question in progress_bar(todo, "rollout", progress):
        try:
            features = load_features(question.media, pipeline.processor)
        except (SalmonnError, ValueError, OSError) as error:
            writer.write([FailedQuestion(question.id, str(error)).to_dict()])
            continue
        result = rollout_question(pipeline, question, features, settings.paths, judge,
                                  seed=question_seed(settings.seed, question.id), **settings.generation())
        writer.write([result.to_dict()])
    return finish_stage(out_dir, "rollout", len(todo), started,
                        lambda n, s: rollout_summary(read_records(path), n, s), [q.id for q in questions])


def rollout_summary(records: list[dict[str, Any]], processed: int = 0, seconds: float = 0.0) -> dict[str, Any]:
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
