"""Answer extraction: the chosen letter (or YES/NO) out of free-form model text.

Models conclude in many ways ("5. Therefore, the answer is **D. Fire**.",
"Answer: (C)", "So the answer is YES.", a bare option text...). The rule is:
find the LAST conclusion phrase ("answer is", "Answer:", "final answer") and
read the first answer after it (an option's text, else a letter, else the one
option the phrase mentions); failing that, read a text that is nothing but an
answer; failing that, a last line that opens with a letter. Ambiguous text
("A or B", two different options named, no conclusion at all) returns None,
which scores as wrong and is listed in the report. A letter beyond the item's
options ("E" with four) is not an answer.

Which text is read (`read_answer`, the one rule `ask`, `infer` and `eval`
share): the answer turn's text first; when it gives no readable answer, the
conclusion of the reasoning text; when neither does, the answer is
unreadable (None: `ask` says so, `infer` writes `"prediction": null`, `eval`
counts the item as unparsed, i.e. wrong).
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
_NOISE = re.compile(r"\*\*|__|`|\$")
_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")
# "A or B", "B and C", "A/B": two letters offered, no choice made.
_ALTERNATIVE = re.compile(r"^\W*(?:or|and|/|,)\s*\(?\[?[A-Ja-j]\b")
_ARTICLES = ("a ", "an ", "the ")
# A final line that starts with the verdict: "No, the video is not manipulated." / "Yes, it is."
_LEADING_YES_NO = re.compile(r"^\W*(yes|no)\b(?:$|\s*[.,!:;-])", re.IGNORECASE)


def clean(text: str) -> str:
    """Drop markers, chat tokens and markdown emphasis; keep line breaks."""
    for token in (END_OF_STEP, IM_END, IM_START, "<|endoftext|>"):
        text = text.replace(token, "\n" if token == END_OF_STEP else " ")
    text = _BOXED.sub(r"\1", text)  # LaTeX "\boxed{B}" (math-tuned models)
    return _NOISE.sub("", text).strip()


def _normalise(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def _letter_at(span: str, letters: str, article_a: bool = False) -> str | None:
    """The letter answer that `span` starts with, if any. A lower-case "a"
    followed by a word is the article, not option A; with `article_a` (text
    that is not a stated conclusion) so is a capital "A" followed by a word."""
    match = _LEADING_LETTER.match(span.strip())
    if not match:
        return None
    letter = match.group(1)
    rest = span.strip()[match.end() :]
    if letter.islower() and re.match(r"^\s+[a-z]", rest):
        return None  # "the answer is a red square"
    if letter.upper() == "I" and re.match(r"^\s+[a-z]", rest):
        return None  # "I think"
    if article_a and letter == "A" and re.match(r"^\s+[a-z]", rest):
        return None  # "A red square appears ..."
    if _ALTERNATIVE.match(rest):
        return None  # "A or B": no single answer
    letter = letter.upper()
    return letter if letter in letters else None


def _core(text: str) -> str:
    """Normalised text without a leading article: "The Blue circle." -> "blue circle"."""
    norm = _normalise(text)
    for article in _ARTICLES:
        if norm.startswith(article):
            return norm[len(article) :]
    return norm


def _option_at_start(span: str, options: list[str]) -> str | None:
    """The letter of the (longest) option whose text the span starts with:
    "A blue circle." is the option "a blue circle", not option A."""
    norm = _core(span)
    best: tuple[int, str] | None = None
    for i, option in enumerate(options):
        core = _core(option)
        if core and (norm == core or norm.startswith(core + " ")) and (best is None or len(core) > best[0]):
            best = (len(core), OPTION_LETTERS[i])
    if best is None or re.match(r"^(?:or|and)\b", norm[best[0] :].strip()):
        return None  # "fire or water": no single answer
    return best[1]


def _option_in(span: str, options: list[str]) -> str | None:
    """The letter of the single option whose text `span` contains. A longer
    option containing a shorter one ("red" vs "red square") wins; two different
    options mentioned is ambiguous (None)."""
    norm = f" {_normalise(span)} "
    hits = [(len(_core(o)), OPTION_LETTERS[i], _core(o)) for i, o in enumerate(options) if _core(o)]
    hits = [(n, letter, core) for n, letter, core in hits if f" {core} " in norm]
    if not hits:
        return None
    hits.sort(reverse=True)
    longest = hits[0][2]
    if any(f" {core} " not in f" {longest} " for _, _, core in hits[1:]):
        return None
    return hits[0][1]


def _choice(text: str, options: list[str]) -> str | None:
    letters = OPTION_LETTERS[: len(options)] if options else OPTION_LETTERS[:5]
    conclusions = list(_CONCLUSION.finditer(text)) or list(_WEAK_CONCLUSION.finditer(text))
    for match in reversed(conclusions):
        span = text[match.end() :].split("\n", 1)[0]
        # an option's text first ("A blue circle" is that option, not A), then a letter, then a mention
        answer = _option_at_start(span, options) or _letter_at(span, letters) or _option_in(span, options)
        if answer:
            return answer
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return None
    # The whole text (or its last line, minus a step number) is just an answer: "B", "(C)", "D. Fire", "fire".
    last = re.sub(r"^\s*(?:step\s*)?\d+\s*[.):]\s+", "", lines[-1])
    longest = max((len(_normalise(o)) for o in options), default=0)
    for candidate in (text.strip(), last):
        core = _core(candidate)
        for i, option in enumerate(options):
            if core and core == _core(option):
                return OPTION_LETTERS[i]
        letter = _letter_at(candidate, letters)
        if letter and len(_normalise(candidate)) <= longest + 3:
            return letter
    # A last line that opens with a letter answer ("B, because ..."); a sentence opening
    # with the article ("A red square appears ...") is not one.
    return _letter_at(last, letters, article_a=True)


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
    # A final line that says yes or no, once, briefly, at its end or as its opening verdict:
    # "YES", "So, no.", "5. So the video is AI generated: YES", "No, the video is not manipulated."
    words = _YES_NO.findall(last)
    if len({w.lower() for w in words}) != 1:
        return None
    if (
        len(last.split()) <= 3
        or last.split()[-1].strip(".!").lower() in ("yes", "no")
        or _LEADING_YES_NO.match(last)
    ):
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


def answer_kinds(options: list[str] | None, kind: str | None = None) -> tuple[str, ...]:
    """The kinds to try, in order: the item's own kind when known; else a letter when there are
    options, YES/NO then the concluding phrase when there are none (a question without a gold answer)."""
    if kind is not None:
        return (kind,)
    return ("choice",) if options else ("yes_no", "open")


def read_answer(answer_text: str | None, reasoning: str | None = None, options: list[str] | None = None,
                kind: str | None = None) -> str | None:
    """The one answer-reading rule (module docstring): the answer turn, else the reasoning's
    conclusion, else None (unreadable)."""
    for text in (answer_text, reasoning):
        for k in answer_kinds(options, kind):
            found = extract_answer(text, options, k)
            if found is not None:
                return found
    return None


def open_answer_matches(predicted: str, gold: str) -> bool:
    """Open answers: equal after normalisation, or the gold phrase inside the prediction."""
    p, g = _normalise(predicted), _normalise(gold)
    return bool(g) and (p == g or f" {g} " in f" {p} ")
