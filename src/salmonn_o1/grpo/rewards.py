"""Rewards of a sampled path: the pDPO judge's verdict, plus an optional format reward.

The correctness reward is the one pDPO's rollouts are judged by (`pdpo.judge`): 1 when the
answer turn (or, where it says nothing readable, the reasoning's conclusion) matches the
reference, else 0. The format reward asks for what the SFT data taught: numbered steps
1, 2, 3, ... whose last one reads "The answer is X." It is off unless a recipe weights it
(`grpo.format_weight`), since the miniature SFT model already writes that format nearly always.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from salmonn_o1.pdpo.judge import Judge, Target, exact_match_judge
from salmonn_o1.pdpo.steps import segment_text, step_segments

_NUMBER = re.compile(r"^\s*(\d+)\s*[.):]\s+")
_CONCLUSION = re.compile(r"The answer is \S.*\.\s*$", re.IGNORECASE)


def format_ok(reasoning: str) -> bool:
    """Numbered steps 1..n in order, the last one ending "The answer is X."."""
    segments = step_segments(reasoning)
    if not segments:
        return False
    for index, segment in enumerate(segments, start=1):
        match = _NUMBER.match(segment_text(segment))
        if match is None or int(match.group(1)) != index:
            return False
    return bool(_CONCLUSION.search(segment_text(segments[-1])))


@dataclass(frozen=True)
class Reward:
    total: float
    correct: bool
    formatted: bool
    answer: str | None


def path_reward(reasoning: str, answer_text: str, target: Target, format_weight: float = 0.0,
                judge: Judge = exact_match_judge) -> Reward:
    """correct (0/1) + format_weight * formatted (0/1)."""
    verdict = judge(reasoning, answer_text, target)
    formatted = format_ok(reasoning)
    return Reward(float(verdict.correct) + format_weight * float(formatted), verdict.correct, formatted,
                  verdict.answer)
