"""How an lmms-eval request becomes our two-turn protocol, and how the answer goes back.

Pure text and numbers (no torch, no lmms-eval), so the rules are tested on their own.

- The task's context is the user turn. In reasoning mode the task's trailing
  "answer directly" line (Video-MME's "Answer with the option's letter from the
  given choices directly.", ours, "Answer YES or NO directly.") contradicts
  step-by-step reasoning, so it is replaced by the model's reasoning instruction;
  the question, options and any other wording stay as the task wrote them.
- Token limits: tasks size `max_new_tokens` for a direct answer (Video-MME: 16). In
  reasoning mode that limit applies to the answer turn only; the reasoning turn gets
  `max(reasoning_max_new_tokens, the task's limit)`, so a short task limit never cuts
  the reasoning off.
- The returned text is `<think>REASONING</think>` followed by the answer turn's text:
  lmms-eval's `--reasoning_tags` (by default `<think>`) strips the block before the
  task's scorer reads the answer, and the logged sample keeps the raw text, reasoning
  included, in `resps`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from salmonn_o1.prompts import reasoning_instruction

THINK_START = "<think>"
THINK_END = "</think>"

# A last line asking for a bare answer: "Answer with the option's letter ... directly.",
# "Answer YES or NO directly.", "Respond with the option letter only."
_DIRECT_LINE = re.compile(r"^\s*(?:please\s+)?(?:answer|respond|reply)\b.*\b(?:directly|only)\b\W*$",
                          re.IGNORECASE)


def strip_direct_instruction(context: str) -> str:
    """The context without its trailing direct-answer instruction line(s)."""
    lines = context.rstrip().splitlines()
    while lines and (not lines[-1].strip() or _DIRECT_LINE.match(lines[-1])):
        lines.pop()
    return "\n".join(lines).strip()


def user_turn(context: str, reasoning: bool, prompt: str | None = None) -> str:
    """The user-turn text for one request: the task's context as it is (direct mode), or with
    its direct-answer line replaced by the reasoning instruction (`prompt`: a preset name or text)."""
    if not reasoning:
        return context.strip()
    return f"{strip_direct_instruction(context)}\n{reasoning_instruction(prompt)}"


def join_reasoning(reasoning: str | None, answer: str) -> str:
    """What the model returns to lmms-eval: the reasoning in think tags, then the answer."""
    if reasoning is None:
        return answer
    return f"{THINK_START}\n{reasoning}\n{THINK_END}\n\n{answer}"


def split_reasoning(text: str) -> tuple[str | None, str]:
    """(reasoning, answer) of a returned text; (None, text) without a think block."""
    if THINK_END not in text:
        return None, text.strip()
    head, _, answer = text.rpartition(THINK_END)
    start = head.find(THINK_START)
    reasoning = head[start + len(THINK_START):] if start != -1 else head
    return reasoning.strip(), answer.strip()


def cut_at_stop(text: str, until: list[str]) -> str:
    """The text up to the first stop string (lmms-eval's `until`; empty strings ignored)."""
    for stop in until:
        if stop:
            text = text.split(stop)[0]
    return text


@dataclass(frozen=True)
class TurnSettings:
    """Generation settings of one request: token limits per turn, sampling, stop strings."""

    max_new_tokens: int  # the first turn: the reasoning, or the direct answer
    answer_max_new_tokens: int  # the answer turn (reasoning mode)
    do_sample: bool
    temperature: float
    top_p: float
    until: tuple[str, ...]

    def generation(self, seed: int | None) -> dict:
        """Keyword arguments of `SalmonnO1Pipeline.ask_batch`."""
        return {"max_new_tokens": self.max_new_tokens, "answer_max_new_tokens": self.answer_max_new_tokens,
                "do_sample": self.do_sample, "temperature": self.temperature if self.do_sample else 1.0,
                "top_p": self.top_p, "seed": seed}


def turn_settings(gen_kwargs: dict, reasoning: bool, reasoning_max_new_tokens: int,
                  default_max_new_tokens: int) -> TurnSettings:
    """A task's `generation_kwargs` read for our protocol (module docstring: token limits).

    `default_max_new_tokens` applies when the task gives no `max_new_tokens`. Beam search is
    not implemented by our decoder: `num_beams` above 1 is refused rather than silently ignored.
    """
    task_limit = int(gen_kwargs.get("max_new_tokens") or default_max_new_tokens)
    if task_limit < 1:
        raise ValueError(f"max_new_tokens must be at least 1, got {task_limit}")
    beams = int(gen_kwargs.get("num_beams") or 1)
    if beams > 1:
        raise ValueError(f"num_beams={beams}: salmonn_o1 decodes greedily or by sampling, not by beam search")
    temperature = float(gen_kwargs.get("temperature") or 0.0)
    do_sample = bool(gen_kwargs.get("do_sample", False)) or temperature > 0
    if do_sample and temperature <= 0:
        temperature = 1.0
    top_p = gen_kwargs.get("top_p")
    until = gen_kwargs.get("until") or []
    if isinstance(until, str):
        until = [until]
    first = max(reasoning_max_new_tokens, task_limit) if reasoning else task_limit
    return TurnSettings(first, task_limit, do_sample, temperature, float(top_p) if top_p else 1.0, tuple(until))
