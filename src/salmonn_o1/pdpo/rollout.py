"""Stage 1: sample P reasoning paths per question from the SFT policy.

Each path is recorded with its text, its step segments (see `steps`), its
final answer and whether that answer is correct. Questions the policy always
answers correctly teach nothing about its mistakes and are dropped; the kept
ones give full-path pairs (a correct path preferred to a wrong one) and the
paths whose steps are scored and branched in the later stages.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from salmonn_o1.pdpo.costs import Cost, count_forward
from salmonn_o1.pdpo.judge import Judge, Target, exact_match_judge
from salmonn_o1.pdpo.pairs import Continuation, PairRecord, pair_label
from salmonn_o1.pdpo.steps import clean_generated, segment_text, step_segments
from salmonn_o1.processor import MediaFeatures
from salmonn_o1.prompts import format_question


@dataclass
class PDPOQuestion:
    """One training question: what the model is asked, what counts as correct, where the media is."""

    id: str
    question: str
    options: list[str]
    reference: str
    media: dict[str, Any] | None  # see pdpo.media

    @property
    def prompt(self) -> str:
        """The user-turn text, exactly as the pipeline asks it (step-marked reasoning prompt)."""
        return format_question(self.question, self.options or None, reasoning=True)

    @property
    def target(self) -> Target:
        return Target(self.reference, list(self.options))


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
        q = self.question
        return {"id": q.id, "question": q.question, "options": q.options, "reference": q.reference,
                "prompt": q.prompt, "media": q.media, "num_paths": len(self.paths), "num_correct": self.num_correct,
                "kept": self.kept, "paths": [asdict(p) for p in self.paths], "cost": self.cost.to_dict()}

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> QuestionRollout:
        question = PDPOQuestion(record["id"], record["question"], record["options"], record["reference"],
                                record["media"])
        return cls(question, [PathRecord(**p) for p in record["paths"]], Cost(**record["cost"]))


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
