"""Resumable JSONL record files: what `salmonn-o1 infer` and the pDPO stages write.

A job that takes hours appends one record (or one question's records) at a
time and flushes it, so a killed run loses at most what was in flight; a rerun
reads the ids already written and skips them. A kill can leave the last line
half-written, without its newline: readers ignore it and a writer cuts it off
before appending, so it is redone rather than kept broken.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from salmonn_o1.errors import DataError

Record = dict[str, Any]


def read_records(path: str | Path) -> list[Record]:
    """Every record of a file (none when it does not exist).

    A last line cut off by an interrupted write is ignored; an unreadable line
    anywhere else is an error naming it, since it means the file was edited or
    mixed, not interrupted.
    """
    path = Path(path)
    if not path.exists():
        return []
    records = []
    lines = path.read_text(encoding="utf-8").split("\n")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number == len(lines):  # no newline after it: the write was interrupted
                break
            raise DataError(f"{path} line {number}: not valid JSON") from None
    return records


def record_ids(records: Iterable[Record], key: str = "id") -> set[Any]:
    """The ids (`record[key]`) of records read with `read_records`."""
    return {record[key] for record in records}


def cut_partial_line(path: str | Path) -> None:
    """Drop a last line that has no newline (a write interrupted mid-line)."""
    path = Path(path)
    if path.exists():
        data = path.read_bytes()
        if data and not data.endswith(b"\n"):
            path.write_bytes(data[: data.rfind(b"\n") + 1])


def done_ids(path: str | Path, key: str = "id") -> set[str]:
    """Ids (as strings) of the readable records at the head of a file; the file is cut after them.

    `infer`'s resume: reading stops at the first line that is not JSON (a kill
    mid-write) and everything from there on is removed, so the rerun redoes it.
    """
    path = Path(path)
    if not path.exists():
        return set()
    done: set[str] = set()
    good_bytes = 0
    with path.open("rb") as f:
        for raw in f:
            try:
                record = json.loads(raw)
            except json.JSONDecodeError:
                break
            done.add(str(record[key]))
            good_bytes += len(raw)
    if good_bytes != path.stat().st_size:
        with path.open("r+b") as f:
            f.truncate(good_bytes)
    return done


class RecordWriter:
    """Appends records to a JSONL file, each `write` one flushed append.

    Opening cuts off an interrupted last line first, so appends always start on
    a fresh line. The file is created by the first `write` (or by `touch`).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        cut_partial_line(self.path)

    def touch(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.touch(exist_ok=True)

    def write(self, records: Iterable[Record]) -> None:
        """Append `records` (one question's, say) in a single write, then flush."""
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
