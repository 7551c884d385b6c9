"""Converters from benchmarks' released files (local copies) to the item schema.

Each loader reads one published format and returns `Item`s, so evaluation
and inference never see benchmark-specific fields. Every error names the
file, the line (or list entry) and the field.

- RivaBench: a JSON list of {"video", "conversations": [{"from": "human",
  "value": "<image>\\nQUESTION Choose from:\\nA. ...\\nB. ..."}, {"from": "gpt",
  "value": ANSWER}]} (the released test-item format; options inline).
- Video-MME: JSON list or JSONL (parquet when pyarrow is installed) of
  {"videoID", "question_id", "question", "options": ["A. ...", ...], "answer": "A", ...}.
- NExT-QA multiple choice: CSV with video, qid, question, a0..a4, answer (index), type.
- Demo format: JSON list or JSONL of {"video", "question" with options inline
  after "Choose from:", "answer"}, as in the paper's demo page.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from salmonn_o1 import prompts
from salmonn_o1.data.schema import Item, read_items, validate_item
from salmonn_o1.errors import DataError

_OPTION_LINE = re.compile(r"^\s*\(?([A-J])[.):]\s*(.*?)\s*\\?\s*$")
_INLINE_OPTION = re.compile(r"(?:^|\s)\(?([A-J])[.)]\s+")
_CHOOSE_FROM = re.compile(r"choose from\s*:?", re.IGNORECASE)
# Instruction sentences that prompts append after the options; not part of the question.
_INSTRUCTION_PREFIXES = (
    "answer the question",
    "answer with the option",
    "answer step by step",
    "please answer",
    "output each thinking step",
)
_NEXTQA_GROUPS = {"C": "causal", "T": "temporal", "D": "descriptive"}


def parse_inline_question(text: str) -> tuple[str, list[str]]:
    """Split "QUESTION Choose from:\\nA. x\\nB. y" into (question, [x, y]).

    Accepts the media placeholder, markdown line-end backslashes, options on
    one line ("A. x B. y") and trailing instruction lines, because released
    files and demo pages use all of these. Text without "Choose from:" is
    returned whole with no options.
    """
    text = text.replace(prompts.MEDIA_TOKEN, "").strip()
    match = _CHOOSE_FROM.search(text)
    if not match:
        return _strip_instructions(text), []
    question = text[: match.start()].strip().rstrip("\\").strip()
    rest = text[match.end() :].strip()
    options: list[str] = []
    lines = [line for line in rest.splitlines() if line.strip()]
    if len(lines) <= 1 and lines:
        # All options on one line: split at " B. " style markers.
        marks = list(_INLINE_OPTION.finditer(lines[0]))
        for i, mark in enumerate(marks):
            end = marks[i + 1].start() if i + 1 < len(marks) else len(lines[0])
            options.append(lines[0][mark.end() : end].strip())
        return question, _check_letters(options, marks)
    letters = []
    for line in lines:
        option = _OPTION_LINE.match(line)
        if option:
            letters.append(option.group(1))
            options.append(option.group(2).strip())
        elif line.strip().lower().startswith(_INSTRUCTION_PREFIXES):
            break
        elif options:  # a wrapped option continues on the next line
            options[-1] = f"{options[-1]} {line.strip().rstrip(chr(92)).strip()}"
    if letters != list(prompts.OPTION_LETTERS[: len(letters)]):
        raise ValueError(f"options are not lettered A, B, C... in order (got {''.join(letters)})")
    return question, options


def _check_letters(options: list[str], marks: list[re.Match[str]]) -> list[str]:
    letters = [m.group(1) for m in marks]
    if letters != list(prompts.OPTION_LETTERS[: len(letters)]):
        raise ValueError(f"options are not lettered A, B, C... in order (got {''.join(letters)})")
    return options


def _strip_instructions(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    while lines and lines[-1].strip().lower().startswith(_INSTRUCTION_PREFIXES):
        lines.pop()
    return "\n".join(lines).strip()


def answer_to_letter(answer: str, options: list[str]) -> str:
    """A gold answer given as "B", "(B)", "B. text" or the option text → "B"."""
    text = answer.strip()
    letters = prompts.OPTION_LETTERS[: len(options)]
    match = re.match(r"^\(?([A-J])(?:[.):]|\s*$)", text)
    if match and match.group(1) in letters:
        return match.group(1)
    norm = _normalise(text)
    for letter, option in zip(letters, options):
        if _normalise(option) == norm:
            return letter
    raise ValueError(f"answer {answer!r} is not a letter in {letters!r} nor an option's text")


def _normalise(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def strip_option_letter(option: str, letter: str) -> str:
    """"A. Fire" → "Fire" (Video-MME ships options with their letters)."""
    match = re.match(rf"^\s*\(?{letter}[.):]\s*(.*)$", option, re.DOTALL)
    return match.group(1).strip() if match else option.strip()


def _records(path: Path) -> Iterable[tuple[str, Any]]:
    """(location, record) pairs of a JSON list or JSONL file; location names the line or entry."""
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    text = path.read_text(encoding="utf-8")
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise DataError(f"{path} line {error.lineno}: invalid JSON ({error.msg})") from None
        for index, record in enumerate(data):
            yield f"{path} entry {index}", record
        return
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield f"{path} line {number}", json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(f"{path} line {number}: invalid JSON ({error.msg})") from None


def _field(record: Any, name: str, where: str, types: type | tuple[type, ...] = str) -> Any:
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(record).__name__}")
    if name not in record:
        raise DataError(f"{where}: missing field '{name}'")
    value = record[name]
    if not isinstance(value, types):
        raise DataError(f"{where}: field '{name}' has type {type(value).__name__}")
    return value


def _video_path(name: str, video_dir: str | Path | None, base: Path, ext: str = "") -> str:
    file_name = name if not ext or Path(name).suffix else f"{name}{ext}"
    if video_dir is not None:
        return str(Path(video_dir) / file_name)
    return str(base / file_name) if not Path(file_name).is_absolute() else file_name


def load_rivabench(path: str | Path, video_dir: str | Path | None = None, category: str = "") -> list[Item]:
    """RivaBench's released test JSON. The category (e.g. "academic", "standup",
    "synthdec") defaults to the file name's stem, since each subset ships as its own file."""
    path = Path(path)
    category = category or path.stem.lower()
    items = []
    for index, (where, record) in enumerate(_records(path)):
        video = _field(record, "video", where)
        turns = _field(record, "conversations", where, list)
        human = next((t for t in turns if isinstance(t, dict) and t.get("from") == "human"), None)
        gpt = next((t for t in turns if isinstance(t, dict) and t.get("from") == "gpt"), None)
        if human is None or not isinstance(human.get("value"), str):
            raise DataError(f"{where}: field 'conversations' has no human turn with a 'value'")
        if gpt is None or not isinstance(gpt.get("value"), str):
            raise DataError(f"{where}: field 'conversations' has no gpt turn with a 'value'")
        try:
            question, options = parse_inline_question(human["value"])
            answer = answer_to_letter(gpt["value"], options) if options else gpt["value"].strip()
        except ValueError as error:
            raise DataError(f"{where}: field 'conversations': {error}") from None
        if not options and answer.upper().rstrip(".") in ("YES", "NO"):
            answer = answer.upper().rstrip(".")
        item = Item(
            id=str(record.get("id", f"{category or 'riva'}-{index:05d}")),
            video=_video_path(video, video_dir, path.parent),
            question=question,
            options=options,
            answer=answer,
            category=category,
            source="rivabench",
        )
        validate_item(item, where)
        items.append(item)
    return items


def load_videomme(path: str | Path, video_dir: str | Path | None = None, video_ext: str = ".mp4") -> list[Item]:
    """Video-MME's annotation (JSON list, JSONL, or parquet with pyarrow). Category = task_type."""
    path = Path(path)
    if path.suffix == ".parquet":
        records: Iterable[tuple[str, Any]] = _parquet_records(path)
    else:
        records = _records(path)
    items = []
    for where, record in records:
        video_id = _field(record, "videoID", where) if "videoID" in record else _field(record, "video_id", where)
        question = _field(record, "question", where)
        raw_options = _field(record, "options", where, (list, tuple))
        options = [strip_option_letter(str(o), letter) for o, letter in zip(raw_options, prompts.OPTION_LETTERS)]
        try:
            answer = answer_to_letter(str(_field(record, "answer", where)), options)
        except ValueError as error:
            raise DataError(f"{where}: field 'answer': {error}") from None
        extras = {k: record[k] for k in ("duration", "domain", "sub_category", "video_id") if k in record}
        item = Item(
            id=str(record.get("question_id", f"{video_id}-{len(items)}")),
            video=_video_path(str(video_id), video_dir, path.parent, video_ext),
            question=question,
            options=options,
            answer=answer,
            category=str(record.get("task_type", "") or record.get("duration", "")),
            source="videomme",
            extras=extras,
        )
        validate_item(item, where)
        items.append(item)
    return items


def _parquet_records(path: Path) -> Iterable[tuple[str, Any]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError(f"{path}: reading parquet needs pyarrow (pip install pyarrow), or convert to JSON") from None
    for index, record in enumerate(pq.read_table(path).to_pylist()):
        yield f"{path} row {index}", record


def load_nextqa(
    path: str | Path,
    video_dir: str | Path | None = None,
    video_map: dict[str, str] | None = None,
    video_ext: str = ".mp4",
) -> list[Item]:
    """NExT-QA multiple-choice CSV. `video_map` maps the CSV's video id to a relative
    path (NExT-QA's map_vid_vidorID.json); category is causal/temporal/descriptive."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    items = []
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        needed = ["video", "qid", "question", "answer", "a0", "a1", "a2", "a3", "a4"]
        missing = [name for name in needed if name not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{path} line 1: missing column(s) {', '.join(missing)}")
        for row in reader:
            where = f"{path} line {reader.line_num}"
            options = [(row[f"a{i}"] or "").strip() for i in range(5)]
            try:
                index = int(row["answer"])
            except (TypeError, ValueError):
                raise DataError(f"{where}: field 'answer' is {row['answer']!r}; expected 0-4") from None
            if not 0 <= index < 5:
                raise DataError(f"{where}: field 'answer' is {index}; expected 0-4")
            video_id = (row["video"] or "").strip()
            if not video_id:
                raise DataError(f"{where}: field 'video' is empty")
            relative = video_map.get(video_id, video_id) if video_map else video_id
            qtype = (row.get("type") or "").strip()
            item = Item(
                id=f"{video_id}_{row['qid']}",
                video=_video_path(relative, video_dir, path.parent, video_ext),
                question=(row["question"] or "").strip().rstrip("?") + "?",
                options=options,
                answer=prompts.OPTION_LETTERS[index],
                category=_NEXTQA_GROUPS.get(qtype[:1], qtype),
                source="nextqa",
                extras={"type": qtype},
            )
            validate_item(item, where)
            items.append(item)
    return items


def load_demo(path: str | Path, video_dir: str | Path | None = None) -> list[Item]:
    """The paper's demo format: the question carries its options after "Choose from:"."""
    path = Path(path)
    items = []
    for index, (where, record) in enumerate(_records(path)):
        text = _field(record, "question", where)
        try:
            question, options = parse_inline_question(text)
            raw = _field(record, "answer", where)
            answer = answer_to_letter(raw, options) if options else raw.strip()
        except ValueError as error:
            raise DataError(f"{where}: field 'question'/'answer': {error}") from None
        video = record.get("video")
        item = Item(
            id=str(record.get("id", f"demo-{index:04d}")),
            video=_video_path(video, video_dir, path.parent) if isinstance(video, str) else None,
            question=question,
            options=options,
            answer=answer.upper() if answer.upper() in ("YES", "NO") else answer,
            category=str(record.get("category", "")),
            source="demo",
        )
        validate_item(item, where)
        items.append(item)
    return items


LOADERS = {
    "items": read_items,
    "rivabench": load_rivabench,
    "videomme": load_videomme,
    "nextqa": load_nextqa,
    "demo": load_demo,
}
