"""A reasoning path as step *segments*: raw pieces of its text, one per step.

`reasoning.split_steps` gives the steps a person reads (stripped). pDPO also
needs to know which *tokens* belong to which step, and needs two continuations
of one prefix to share that prefix token for token. Both follow from one rule:
the assistant text is cut into segments whose concatenation is the text, and
each segment is tokenised on its own. A cut right after `<end_of_step>` (an
added token, split out before BPE) or at a line end (a pre-tokeniser
boundary) leaves the ids of marker-delimited text unchanged, and every stage
tokenises the same segments the same way.
"""

from __future__ import annotations

import re

from transformers import PreTrainedTokenizerBase

from salmonn_o1.prompts import END_OF_STEP, MEDIA_TOKEN
from salmonn_o1.reasoning import _NUMBERED_LINE, strip_step_number


def clean_generated(text: str) -> str:
    """Generated text without the media placeholder: a model can sample `<image>`, but in
    assistant text re-tokenised for scoring or training it would read as a media slot."""
    return text.replace(MEDIA_TOKEN, "")


def step_segments(text: str) -> list[str]:
    """Raw segments of `text`, one per step of `split_steps(text)`, joining back to `text`.

    A segment holds its step, the step's `<end_of_step>` and the whitespace
    before the next step's first character; text that makes no step of its own
    (empty steps, trailing blanks) joins the segment before it.
    """
    if not text.strip():
        return []
    if END_OF_STEP in text:
        parts = text.split(END_OF_STEP)
        pieces = [p + END_OF_STEP for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])
        return _merge_empty(pieces, lambda p: p.replace(END_OF_STEP, "").strip() != "")
    lines = text.splitlines(keepends=True)
    numbered = any(_NUMBERED_LINE.match(line) for line in lines if line.strip())
    segments: list[str] = []
    pending = ""  # blank lines before the first step
    for line in lines:
        starts = line.strip() and (not numbered or _NUMBERED_LINE.match(line) or not segments)
        if starts:
            segments.append(pending + line)
            pending = ""
        elif segments:
            segments[-1] += line
        else:
            pending += line
    return segments


def _merge_empty(pieces: list[str], has_step) -> list[str]:
    segments: list[str] = []
    carry = ""
    for piece in pieces:
        if has_step(piece):
            segments.append(carry + piece)
            carry = ""
        elif segments:
            segments[-1] += piece
        else:
            carry += piece
    if carry and segments:
        segments[-1] += carry
    return segments


def segment_text(segment: str) -> str:
    """The step a person reads, exactly as `split_steps` writes it."""
    if END_OF_STEP in segment:
        return segment.replace(END_OF_STEP, "").strip()
    return "\n".join(line.strip() for line in segment.splitlines() if line.strip())


def piece_ids(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"] if text else []


def path_ids(
    tokenizer: PreTrainedTokenizerBase, segments: list[str], ends_turn: bool, im_end_id: int
) -> tuple[list[int], list[tuple[int, int]]]:
    """Assistant ids of a path and each step's [start, end) span in them.

    The closing `<|im_end|>` (when the path finished) belongs to the last step,
    so the spans partition every token the model was trained to produce.
    """
    ids: list[int] = []
    spans: list[tuple[int, int]] = []
    for segment in segments:
        start = len(ids)
        ids += piece_ids(tokenizer, segment)
        spans.append((start, len(ids)))
    if ends_turn:
        ids.append(im_end_id)
        if spans:
            spans[-1] = (spans[-1][0], len(ids))
    return ids, spans


_WS = re.compile(r"\s+")


def same_step(a: str, b: str) -> bool:
    """Two step texts equal up to whitespace and step numbering."""
    return _WS.sub(" ", strip_step_number(segment_text(a))) == _WS.sub(" ", strip_step_number(segment_text(b)))
