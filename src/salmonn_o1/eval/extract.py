"""Answer extraction: the chosen letter (or YES/NO) out of free-form model text.

Models conclude in many ways ("5. Therefore, the answer is **D. Fire**.",
"Answer: (C)", "So the answer is YES.", a bare option text...). The rule is:
find the LAST conclusion phrase ("answer is", "Answer:", "final answer") and
read the first answer after it; failing that, read a text that is nothing but
an answer; failing that, the last line. Ambiguous text returns None, which
scores as wrong and is listed in the report.
"""

from __future__ import annotations

import re

from salmonn_o1.prompts import END_OF_STEP, IM_END, IM_START, OPTION_LETTERS

# "the answer is", "answer:", "final answer -", "the correct option is", "I choose", "Answer would be"...
_CONCLUSION = re.compile(
    r"(?:answer|correct\s+(?:option|choice)|I\s+(?:choose|pick|select))"
    r"\s*(?:to\s+the\s+question\s*)?(?:is|would\s+be|should\s+be|will\s+be|=|:|-)?\s*:?",
    re.IGNORECASE,
)
# Weaker conclusions, used only when no "answer" phrase exists: "... is option B", "Choice: C".
_WEAK_CONCLUSION = re.compile(r"(?:option|choice)\s*(?:is|:)?", re.IGNORECASE)
# A letter answer at the start of a span: "B", "(B)", "[B]", "B.", "B)", "Option B", "**B**".
_LEADING_LETTER = re.compile(r"^\W{0,3}(?:option\s+|choice\s+)?\(?\[?([A-Ja-j])\]?\)?(?=$|[\s.,:;)!*\]])")
_YES_NO = re.compile(r"\b(yes|no)\b", re.IGNORECASE)
_NOISE = re.compile(r"\*\*|__|`")


def clean(text: str) -> str:
    """Drop markers, chat tokens and markdown emphasis; keep line breaks."""
    for token in (END_OF_STEP, IM_END, IM_START, "<|endoftext|>"):
        text = text.replace(token, "\n" if token == END_OF_STEP else " ")
    return _NOISE.sub("", text).strip()


def _normalise(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def _letter_at(span: str, letters: str) -> str | None:
    """The letter answer that `span` starts with, if any. A lower-case "a"
    followed by a word is the article, not option A."""
    match = _LEADING_LETTER.match(span.strip())
    if not match:
        return None
    letter = match.group(1)
    rest = span.strip()[match.end() :]
    if letter.islower() and re.match(r"^\s+[a-z]", rest):
        return None  # "the answer is a red square"
    if letter.upper() == "I" and re.match(r"^\s+[a-z]", rest):
        return None  # "I think"
    letter = letter.upper()
    return letter if letter in letters else None


def _option_in(span: str, options: list[str]) -> str | None:
    """The letter of the single option whose text `span` contains (longest wins ties)."""
    norm = f" {_normalise(span)} "
    hits = [(len(_normalise(o)), OPTION_LETTERS[i]) for i, o in enumerate(options) if _normalise(o)]
    hits = [(n, letter) for n, letter in hits if f" {_normalise(options[OPTION_LETTERS.index(letter)])} " in norm]
    if not hits:
        return None
    hits.sort(reverse=True)
    if len(hits) > 1 and hits[0][0] == hits[1][0]:
        return None
    # A longer option containing a shorter one ("red" vs "red square") wins; true ties are ambiguous.
    return hits[0][1]


def _choice(text: str, options: list[str]) -> str | None:
    letters = OPTION_LETTERS[: len(options)] if options else OPTION_LETTERS[:5]
    conclusions = list(_CONCLUSION.finditer(text)) or list(_WEAK_CONCLUSION.finditer(text))
    for match in reversed(conclusions):
        span = text[match.end() :].split("\n", 1)[0]
        letter = _letter_at(span, letters)
        if letter:
            return letter
        option = _option_in(span, options)
        if option:
            return option
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return None
    # The whole text (or its last line, minus a step number) is just an answer: "B", "(C)", "D. Fire", "fire".
    last = re.sub(r"^\s*(?:step\s*)?\d+\s*[.):]\s+", "", lines[-1])
    for candidate in (text.strip(), last):
        letter = _letter_at(candidate, letters)
        if letter and len(_normalise(candidate)) <= max((len(_normalise(o)) for o in options), default=0) + 3:
            return letter
        if options:
            norm = _normalise(candidate).removeprefix("the ").removeprefix("a ")
            for i, option in enumerate(options):
                if norm and norm == _normalise(option).removeprefix("the ").removeprefix("a "):
                    return OPTION_LETTERS[i]
    letter = _letter_at(last, letters)
    if letter:
        return letter
    return None


def _yes_no(text: str) -> str | None:
    conclusions = list(_CONCLUSION.finditer(text))
    for match in reversed(conclusions):
        span = text[match.end() :].split("\n", 1)[0]
        found = _YES_NO.search(span[:40])
        if found:
            return found.group(1).upper()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return None
    last = lines[-1]
    # A short final line that says yes or no, once: "YES", "So, no.", "5. So the video is AI generated: YES".
    words = _YES_NO.findall(last)
    if len({w.lower() for w in words}) == 1 and (len(last.split()) <= 3 or last.split()[-1].strip(".!").lower() in ("yes", "no")):
        return words[-1].upper()
    return None


def _open(text: str) -> str | None:
    conclusions = list(_CONCLUSION.finditer(text))
    span = text[conclusions[-1].end() :] if conclusions else text
    span = span.strip().split("\n", 1)[0].strip().rstrip(".").strip()
    return span or None


def extract_answer(text: str | None, options: list[str] | None = None, kind: str = "choice") -> str | None:
    """The answer in `text`: a letter for kind "choice", "YES"/"NO" for "yes_no",
    the concluding phrase for "open"; None when it cannot be read."""
    if text is None:
        return None
    text = clean(text)
    if not text:
        return None
    if kind == "choice":
        return _choice(text, list(options or []))
    if kind == "yes_no":
        return _yes_no(text)
    if kind == "open":
        return _open(text)
    raise ValueError(f"unknown answer kind {kind!r}; expected choice, yes_no or open")


def open_answer_matches(predicted: str, gold: str) -> bool:
    """Open answers: equal after normalisation, or the gold phrase inside the prediction."""
    p, g = _normalise(predicted), _normalise(gold)
    return bool(g) and (p == g or f" {g} " in f" {p} ")
