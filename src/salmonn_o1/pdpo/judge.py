"""Did a completed path reach the reference answer?

Paths and rollout completions are judged the same way: the answer turn's text
first, the reasoning's conclusion when the answer turn says nothing readable
(as the pipeline reads answers). Multiple choice and YES/NO compare the
extracted answer exactly; free-form answers default to a normalised
containment match, and any callable with the `Judge` signature (an LLM judge,
a numeric tolerance) can replace it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from salmonn_o1.data.schema import answer_kind
from salmonn_o1.eval.extract import extract_answer, open_answer_matches


@dataclass(frozen=True)
class Target:
    """What a question counts as correct."""

    reference: str
    options: list[str] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return answer_kind(list(self.options), self.reference)


@dataclass(frozen=True)
class Verdict:
    answer: str | None
    correct: bool


Judge = Callable[[str, str, Target], Verdict]  # (reasoning, answer_text, target) -> verdict


def read_answer(reasoning: str, answer_text: str, target: Target) -> str | None:
    kind = target.kind
    answer = extract_answer(answer_text, target.options, kind)
    if answer is None and reasoning:
        answer = extract_answer(reasoning, target.options, kind)
    return answer


def exact_match_judge(reasoning: str, answer_text: str, target: Target) -> Verdict:
    """The default judge: exact letter / YES-NO match, normalised containment for open answers."""
    answer = read_answer(reasoning, answer_text, target)
    if answer is None:
        return Verdict(None, False)
    if target.kind == "open":
        return Verdict(answer, open_answer_matches(answer, target.reference))
    return Verdict(answer, answer.strip().upper() == target.reference.strip().upper())
