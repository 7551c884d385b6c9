"""Reading the models' replies: the generated question and the checker's verdict, in fixed JSON shapes.

A reply that is not the shape raises `ReplyError` with a sentence saying what is wrong; the
pipeline records it as that attempt's failure and asks again, so one malformed reply never
stops a run.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from salmonn_o1 import prompts

_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)
_NUMBERING = re.compile(r"^\s*(?:step\s*)?\d+\s*[.):]\s*", re.IGNORECASE)
_FINAL = re.compile(r"^the answer is\b", re.IGNORECASE)


class ReplyError(ValueError):
    """A reply that is not the JSON shape asked for."""


@dataclass
class Generated:
    question: str
    options: list[str]
    answer: str
    steps: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {"question": self.question, "options": self.options, "answer": self.answer, "steps": self.steps}


@dataclass
class Verdict:
    supported: bool
    consistent: bool
    reason: str

    @property
    def accepted(self) -> bool:
        return self.supported and self.consistent


def json_object(text: str | None) -> dict[str, Any]:
    """The JSON object a reply holds: the whole reply, a ```json fence, or the outermost {...} in it."""
    if not text or not text.strip():
        raise ReplyError("the reply is empty")
    text = text.strip()
    fenced = _FENCE.match(text)
    candidates = [fenced.group(1)] if fenced else [text]
    if "{" in text and "}" in text:
        candidates.append(text[text.index("{") : text.rindex("}") + 1])
    for candidate in candidates:
        try:
            value = json.loads(candidate)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
        raise ReplyError(f"the reply is JSON but not an object ({type(value).__name__})")
    raise ReplyError(f"the reply is not JSON: {text[:80]!r}")


def parse_generated(text: str | None, n_options: int = 4) -> Generated:
    """The generator's question, options, answer letter and steps; numbering is stripped from steps."""
    data = json_object(text)
    question = data.get("question")
    if not isinstance(question, str) or not question.strip():
        raise ReplyError("'question' is missing or not a non-empty string")
    options = data.get("options")
    if not isinstance(options, list) or not all(isinstance(o, str) and o.strip() for o in options):
        raise ReplyError("'options' is not a list of non-empty strings")
    if len(options) != n_options:
        raise ReplyError(f"'options' has {len(options)} entries; asked for {n_options}")
    options = [re.sub(r"^\s*\(?[A-J][.):]\s+", "", o).strip() for o in options]
    if len({o.lower() for o in options}) != len(options):
        raise ReplyError("'options' has duplicate texts")
    answer = data.get("answer")
    letters = prompts.OPTION_LETTERS[:n_options]
    if not isinstance(answer, str) or answer.strip().strip("().").upper() not in letters:
        raise ReplyError(f"'answer' is {answer!r}; expected a letter in {letters}")
    steps = data.get("steps")
    if not isinstance(steps, list) or not all(isinstance(s, str) and s.strip() for s in steps) or not steps:
        raise ReplyError("'steps' is not a non-empty list of non-empty strings")
    steps = [_NUMBERING.sub("", s).strip() for s in steps]
    steps = [s for s in steps if not _FINAL.match(s)]  # format_steps adds "The answer is X." itself
    if not steps:
        raise ReplyError("'steps' holds nothing but the final answer")
    return Generated(question.strip(), options, answer.strip().strip("().").upper(), steps)


def parse_verdict(text: str | None) -> Verdict:
    """The checker's {"supported": bool, "consistent": bool, "reason": str}."""
    data = json_object(text)
    flags = {}
    for name in ("supported", "consistent"):
        value = data.get(name)
        if not isinstance(value, bool):
            raise ReplyError(f"the check's '{name}' is {value!r}; expected true or false")
        flags[name] = value
    reason = data.get("reason", "")
    return Verdict(flags["supported"], flags["consistent"], str(reason))
