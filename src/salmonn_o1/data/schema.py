"""The toolkit's one item schema and one predictions schema, as JSONL.

Every benchmark (RivaBench, Video-MME, NExT-QA, AVR-Synth, your own) is
converted to items; every model (ours, the released 7B, anything else) writes
predictions. Evaluation only ever joins the two by `id`, so neither side needs
to know about the other.

Item line (one JSON object per line)::

    {"id": "avr-test-000042",          # unique within the file
     "video": "videos/avr-test-000042.mp4",  # relative paths resolve against the file's folder; null allowed
     "question": "What was on screen when the high tone played?",
     "options": ["a red square", "a blue circle", ...],   # texts WITHOUT letters; [] for YES/NO and open
     "answer": "B",                    # a letter A.. within range of options, or "YES"/"NO", or free text;
                                       # optional (or null): an unlabelled item, which `infer` answers and
                                       # `eval` skips and counts; training and pDPO need it
     "steps": ["The high tone plays from 3.0 s to 4.0 s.", ...],  # optional; no numbering, no final
                                       # "The answer is X." step (prompts.format_steps adds it)
     "category": "cross_modal_alignment",
     "source": "avr-synth",
     "extras": {...}}                  # optional, free-form

Prediction line::

    {"id": "avr-test-000042",
     "reasoning": "1. ... 5. The answer is B.",  # turn-1 text; absent for direct answers
     "answer": "B",                              # turn-2 (or direct) answer text
     "error": "clip.mp4: no video stream"}       # optional: the item failed; it scores as wrong
    # any other fields are kept in `Prediction.extras`
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from salmonn_o1 import prompts
from salmonn_o1.errors import DataError

AnswerKind = Literal["choice", "yes_no", "open"]
YES_NO = ("YES", "NO")
MAX_OPTIONS = len(prompts.OPTION_LETTERS)

_REQUIRED = ("id", "question")


@dataclass
class Item:
    """One question about one video, in the toolkit's schema (see module docstring)."""

    id: str
    video: str | None
    question: str
    options: list[str] = field(default_factory=list)
    answer: str = ""  # "" for an unlabelled item (no gold answer)
    steps: list[str] | None = None
    category: str = ""
    source: str = ""
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def labelled(self) -> bool:
        """Whether the item has a gold answer (unlabelled items are answered, not scored)."""
        return bool(self.answer)

    @property
    def kind(self) -> AnswerKind:
        return answer_kind(self.options, self.answer)

    @property
    def letters(self) -> str:
        """The option letters this item uses ("ABCD" for four options)."""
        return prompts.OPTION_LETTERS[: len(self.options)]

    def model_question(self, reasoning: bool = True, step_marked: bool = True) -> str:
        """The user-turn text the model is asked with (one place for the wording)."""
        return prompts.format_question(self.question, self.options, reasoning=reasoning, step_marked=step_marked)

    def gold_reasoning(self) -> str | None:
        """The numbered, marker-ended gold solution, or None without steps."""
        if self.steps is None:
            return None
        return prompts.format_steps(self.steps, self.answer)

    def to_dict(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "id": self.id,
            "video": self.video,
            "question": self.question,
            "options": list(self.options),
        }
        if self.labelled:
            record["answer"] = self.answer
        if self.steps is not None:
            record["steps"] = list(self.steps)
        record["category"] = self.category
        record["source"] = self.source
        if self.extras:
            record["extras"] = self.extras
        return record


@dataclass
class Prediction:
    """One model output for one item (see module docstring)."""

    id: str
    answer: str | None = None
    reasoning: str | None = None
    error: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        record: dict[str, Any] = {"id": self.id}
        if self.reasoning is not None:
            record["reasoning"] = self.reasoning
        if self.answer is not None:
            record["answer"] = self.answer
        if self.error is not None:
            record["error"] = self.error
        record.update(self.extras)
        return record


def answer_kind(options: list[str], answer: str) -> AnswerKind:
    """Multiple choice when there are options, YES/NO when the gold is YES or NO, else open."""
    if options:
        return "choice"
    if answer.strip().upper() in YES_NO:
        return "yes_no"
    return "open"


def validate_question(question: str, options: list[str] | None, where: str | None,
                      names: tuple[str, str] = ("field 'question'", "field 'options'")) -> None:
    """The one check of a question and its options, for `infer`'s items and `ask`'s arguments alike.

    A question must say something; options, when given, are 2 to `MAX_OPTIONS` distinct non-empty
    texts (one option is no choice; more than the letters A-J cannot be named). `names` words the
    message for where they came from (item fields, or `ask`'s argument and `--options`).
    """
    question_name, options_name = names
    where = f"{where}: " if where else ""
    if not question.strip():
        raise DataError(f"{where}{question_name} is empty")
    if not options:
        return
    if len(options) == 1:
        raise DataError(f"{where}{options_name} has 1 entry; a choice needs at least 2 (or none, for an open "
                        "question)")
    if len(options) > MAX_OPTIONS:
        raise DataError(f"{where}{options_name} has {len(options)} entries; at most {MAX_OPTIONS}")
    if any(not o.strip() for o in options):
        raise DataError(f"{where}{options_name} has an empty option")
    if len(set(o.strip().lower() for o in options)) != len(options):
        raise DataError(f"{where}{options_name} has duplicate option texts")


def validate_item(item: Item, where: str, require_answer: bool = True) -> None:
    """Raise DataError (prefixed by `where`, e.g. "items.jsonl line 3") for an inconsistent item.

    An item without a gold answer passes when `require_answer` is False (unlabelled data to answer).
    """
    if not item.id:
        raise DataError(f"{where}: field 'id' is empty")
    validate_question(item.question, item.options, where)
    if not item.labelled and not require_answer:
        return
    if item.options:
        if len(item.answer) != 1 or item.answer not in item.letters:
            raise DataError(
                f"{where}: field 'answer' is {item.answer!r}; expected a letter in {item.letters!r} "
                f"for {len(item.options)} options"
            )
    elif not item.answer.strip():
        raise DataError(f"{where}: field 'answer' is empty")


def item_from_dict(record: Any, where: str, base_dir: Path | None = None, require_answer: bool = False) -> Item:
    """Build and validate an Item from a parsed JSON object; relative video paths resolve against base_dir.

    A missing or null 'answer' makes an unlabelled item, refused when `require_answer`
    (training and pDPO); an empty string is an error either way, since it is more
    likely a conversion bug than a statement that the answer is unknown.
    """
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(record).__name__}")
    for name in _REQUIRED:
        if name not in record:
            raise DataError(f"{where}: missing field '{name}'")
    answer = record.get("answer")
    if answer is None and require_answer:
        raise DataError(f"{where}: missing field 'answer' (a gold answer is needed here)")
    if answer is not None and not isinstance(answer, str):
        raise DataError(f"{where}: field 'answer' must be a string, got {type(answer).__name__}")
    if answer is not None and not answer.strip():
        raise DataError(f"{where}: field 'answer' is empty (leave it out for an unlabelled item)")
    for name in ("id", "question"):
        if not isinstance(record[name], str):
            raise DataError(f"{where}: field '{name}' must be a string, got {type(record[name]).__name__}")
    options = record.get("options") or []
    if not isinstance(options, list) or not all(isinstance(o, str) for o in options):
        raise DataError(f"{where}: field 'options' must be a list of strings")
    steps = record.get("steps")
    if steps is not None and (not isinstance(steps, list) or not all(isinstance(s, str) for s in steps)):
        raise DataError(f"{where}: field 'steps' must be a list of strings")
    video = record.get("video")
    if video is not None and not isinstance(video, str):
        raise DataError(f"{where}: field 'video' must be a string or null")
    if video and base_dir is not None and not Path(video).is_absolute():
        video = str(base_dir / video)
    extras = record.get("extras") or {}
    if not isinstance(extras, dict):
        raise DataError(f"{where}: field 'extras' must be an object")
    item = Item(
        id=record["id"],
        video=video,
        question=record["question"],
        options=list(options),
        answer=(answer or "").strip(),
        steps=list(steps) if steps is not None else None,
        category=str(record.get("category") or ""),
        source=str(record.get("source") or ""),
        extras=dict(extras),
    )
    if item.kind == "yes_no":
        item.answer = item.answer.upper()
    validate_item(item, where, require_answer=require_answer)
    return item


def _json_lines(path: Path) -> Iterable[tuple[int, Any]]:
    """(line number, parsed object) for each non-blank line; DataError names the bad line."""
    if path.is_dir():
        raise DataError(f"{path}: is a directory, not a JSONL file")
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise DataError(f"{path} line {number}: not UTF-8 text (byte {raw[error.start]:#04x} at column "
                                f"{error.start + 1}); save the file as UTF-8") from None
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as error:
                raise DataError(f"{path} line {number}: invalid JSON ({error.msg})") from None


def read_items(path: str | Path, require_answer: bool = False) -> list[Item]:
    """All items of a JSONL file, validated; duplicate ids are an error.

    Items without a gold answer are accepted unless `require_answer` (for training data).
    """
    path = Path(path)
    items: list[Item] = []
    seen: dict[str, int] = {}
    for number, record in _json_lines(path):
        where = f"{path} line {number}"
        item = item_from_dict(record, where, base_dir=path.parent, require_answer=require_answer)
        if item.id in seen:
            raise DataError(f"{where}: field 'id' {item.id!r} duplicates line {seen[item.id]}")
        seen[item.id] = number
        items.append(item)
    return items


def write_items(path: str | Path, items: Iterable[Item]) -> None:
    """Write items as JSONL (video paths are written as given; make them relative to keep files portable)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for item in items:
            handle.write(json.dumps(item.to_dict(), ensure_ascii=False) + "\n")


def prediction_from_dict(record: Any, where: str) -> Prediction:
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(record).__name__}")
    if "id" not in record:
        raise DataError(f"{where}: missing field 'id'")
    for name in ("id", "answer", "reasoning", "error"):
        value = record.get(name)
        if value is not None and not isinstance(value, str):
            raise DataError(f"{where}: field '{name}' must be a string, got {type(value).__name__}")
    extras = {k: v for k, v in record.items() if k not in ("id", "answer", "reasoning", "error")}
    return Prediction(
        id=record["id"],
        answer=record.get("answer"),
        reasoning=record.get("reasoning"),
        error=record.get("error"),
        extras=extras,
    )


def read_predictions(path: str | Path) -> dict[str, Prediction]:
    """Predictions by id. A repeated id keeps the last line (a resumed run may append a retry)."""
    path = Path(path)
    predictions: dict[str, Prediction] = {}
    for number, record in _json_lines(path):
        prediction = prediction_from_dict(record, f"{path} line {number}")
        predictions[prediction.id] = prediction
    return predictions


def write_predictions(path: str | Path, predictions: Iterable[Prediction]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for prediction in predictions:
            handle.write(json.dumps(prediction.to_dict(), ensure_ascii=False) + "\n")
