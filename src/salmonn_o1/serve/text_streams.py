"""Turn-1 tokens to the text a response carries, piece by piece.

A streamed response must add up to exactly what the same request answers without streaming, so
each stream here is built on the function that makes the final text (`numbered_steps`,
`final_content`) and only ever sends a prefix of it that later tokens cannot change: a piece of a
stop string, trailing whitespace (the final text is stripped) or the start of an `<end_of_step>`
marker is held back until what follows decides it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from salmonn_o1.prompts import END_OF_STEP
from salmonn_o1.reasoning import split_steps, strip_step_number

# The start of a step that may still become self-numbered ("3", "3.", "Step 3:" without the space
# that must follow): until more text decides it, the step's number cannot be shown.
_UNDECIDED_NUMBER = re.compile(r"s|st|ste|step|(?:step\s*)?\d+(?:\s*[.):])?", re.IGNORECASE)


def number_step(step: str, number: int) -> str:
    """`N. step`, unless the step carries its own number ("3. ...", "Step 3: ...")."""
    return step if strip_step_number(step) != step else f"{number}. {step}"


def numbered_steps(steps: Sequence[str]) -> str:
    """`reasoning_content`: one numbered step a line (a step's own line breaks kept)."""
    return "\n".join(number_step(step, i) for i, step in enumerate(steps, start=1))


def final_content(text: str, stop: Sequence[str] = ()) -> tuple[str, bool]:
    """`content`: the stripped answer cut before the first stop string, and whether one cut it."""
    text = text.lstrip()
    cuts = [i for i in (text.find(s) for s in stop) if i >= 0]
    if not cuts:
        return text.rstrip(), False
    return text[: min(cuts)].rstrip(), True


def _held_suffix(text: str, words: Sequence[str]) -> int:
    """The length of the longest end of `text` that could grow into one of `words`."""
    best = 0
    for word in words:
        for n in range(min(len(word) - 1, len(text)), best, -1):
            if word.startswith(text[-n:]):
                best = n
                break
    return best


class _PrefixStream:
    """Sends the growing stable prefix of a final text; `close` sends the rest of the final text."""

    def __init__(self):
        self.text = ""
        self.sent = ""

    def feed(self, piece: str) -> str:
        self.text += piece
        return self._send(self.stable())

    def close(self) -> str:
        return self._send(self.final())

    def _send(self, prefix: str) -> str:
        if not prefix.startswith(self.sent):  # cannot happen: stable() is always a prefix of final()
            raise AssertionError(f"stream sent {self.sent!r}, now {prefix!r}")
        piece, self.sent = prefix[len(self.sent):], prefix
        return piece

    def stable(self) -> str:
        raise NotImplementedError

    def final(self) -> str:
        raise NotImplementedError


class StepStream(_PrefixStream):
    """Reasoning text in, `numbered_steps(split_steps(text))` out as it becomes certain.

    Once an `<end_of_step>` marker has been seen the text is split on markers only, so each step
    streams as it is written; until then a line break may or may not end a step (`split_steps`
    reads unmarked text by lines), so nothing is sent before the first marker or the end.
    """

    def stable(self) -> str:
        if END_OF_STEP not in self.text:
            return ""
        *done, tail = self.text.split(END_OF_STEP)
        steps = [part.strip() for part in done if part.strip()]
        tail = tail[: len(tail) - _held_suffix(tail, [END_OF_STEP])].strip()
        shown = numbered_steps(steps)
        if tail and not _UNDECIDED_NUMBER.fullmatch(tail):
            shown += ("\n" if steps else "") + number_step(tail, len(steps) + 1)
        return shown

    def final(self) -> str:
        return numbered_steps(split_steps(self.text))


class AnswerStream(_PrefixStream):
    """Answer text in, `final_content(text, stop)` out; `stopped` once a stop string has cut it."""

    def __init__(self, stop: Sequence[str] = ()):
        super().__init__()
        self.stop = list(stop)
        self.stopped = False

    def stable(self) -> str:
        content, self.stopped = final_content(self.text, self.stop)
        if self.stopped:
            return content
        text = self.text.lstrip()
        return text[: len(text) - _held_suffix(text, self.stop)].rstrip()

    def final(self) -> str:
        content, self.stopped = final_content(self.text, self.stop)
        return content
