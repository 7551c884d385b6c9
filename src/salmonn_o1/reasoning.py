"""Splitting reasoning text into steps.

Our models end each step with `<end_of_step>`; the released model and other
systems number their steps instead ("1. ... 2. ..."). pDPO, evaluation and the
pipeline all need the same split, so it lives here.
"""

from __future__ import annotations

import re

from salmonn_o1.prompts import END_OF_STEP

_NUMBERED_LINE = re.compile(r"^\s*(?:step\s*)?\d+\s*[.):]\s+", re.IGNORECASE)


def split_steps(text: str) -> list[str]:
    """Steps of a reasoning text, stripped, empty ones dropped.

    Marker-delimited text is split on `<end_of_step>` (a marker inside a line
    still ends the step). Without markers, lines that start a new number
    ("3. ...", "Step 3:") begin a new step and unnumbered lines continue the
    current one; text with neither is one step per non-empty line.
    """
    text = text.replace("<|im_end|>", "")
    if END_OF_STEP in text:
        return [p.strip() for p in text.split(END_OF_STEP) if p.strip()]
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return []
    if not any(_NUMBERED_LINE.match(line) for line in lines):
        return [line.strip() for line in lines]
    steps: list[str] = []
    for line in lines:
        if _NUMBERED_LINE.match(line) or not steps:
            steps.append(line.strip())
        else:
            steps[-1] = f"{steps[-1]}\n{line.strip()}"
    return steps


def strip_step_number(step: str) -> str:
    """`"3. The tone is high"` → `"The tone is high"`."""
    return _NUMBERED_LINE.sub("", step, count=1).strip()
