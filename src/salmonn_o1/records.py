"""Resumable JSONL record files: what `salmonn-o1 infer` and the pDPO stages write.

A job that takes hours appends one record (or one question's records) at a
time and flushes it, so a killed run loses at most what was in flight; a rerun
reads the ids already written and skips them. A kill can leave the last line
half-written, without its newline: readers ignore it and a writer cuts it off
before appending, so it is redone rather than kept broken. A damaged line
elsewhere (an edit, a disk error) does not cost the records after it:
`scan_records` keeps every readable record and names the bad lines, and
`set_aside_lines` moves them to a side file instead of deleting them.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
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


@dataclass
class RecordScan:
    """What a tolerant read of a JSONL record file found (see `scan_records`)."""

    records: list[Record] = field(default_factory=list)
    record_lines: list[int] = field(default_factory=list)  # the line number of each record
    bad_lines: list[int] = field(default_factory=list)  # lines that are not a JSON object with the key
    other_json_lines: list[int] = field(default_factory=list)  # those of them that are JSON nonetheless
    interrupted: bytes | None = None  # a last line without newline that does not parse: a write cut short


def scan_records(path: str | Path, key: str = "id") -> RecordScan:
    """Every readable record of a file, and the numbers of the lines that are not one.

    A record is a JSON object holding `key`. Unlike `read_records`, an unreadable
    line is not an error: a resumed job keeps every good record, wherever the
    bad one is, and the caller decides what to do with the bad lines.
    """
    path = Path(path)
    scan = RecordScan()
    if not path.exists():
        return scan
    data = path.read_bytes()
    lines = data.split(b"\n")
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            if number == len(lines):  # no newline after it: the write was interrupted
                scan.interrupted = raw
            else:
                scan.bad_lines.append(number)
            continue
        if isinstance(record, dict) and key in record:
            scan.records.append(record)
            scan.record_lines.append(number)
        else:
            scan.bad_lines.append(number)
            scan.other_json_lines.append(number)
    return scan


def set_aside_lines(path: str | Path, line_numbers: Iterable[int]) -> Path:
    """Move lines out of a file into `<file>.bad-lines.<UTC time>.txt`; returns that file.

    The lines are copied out first, then the file is rewritten without them
    through a temporary file and an atomic rename, so a crash at any point
    leaves every line in one of the two files. An interrupted last line (no
    newline) is dropped with them, since appends must start on a fresh line.
    """
    path = Path(path)
    wanted = set(line_numbers)
    lines = path.read_bytes().split(b"\n")
    interrupted = lines[-1] != b""
    body = lines[:-1]  # complete lines (each had a newline)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    aside = path.with_name(f"{path.name}.bad-lines.{stamp}.txt")
    counter = 1
    while aside.exists():
        counter += 1
        aside = path.with_name(f"{path.name}.bad-lines.{stamp}-{counter}.txt")
    moved = [line for number, line in enumerate(body, start=1) if number in wanted]
    if interrupted:
        moved.append(lines[-1])
    aside.write_bytes(b"".join(line + b"\n" for line in moved))
    kept = [line for number, line in enumerate(body, start=1) if number not in wanted]
    replace_file(path, b"".join(line + b"\n" for line in kept))
    return aside


def replace_file(path: str | Path, data: bytes) -> None:
    """Write `data` to a temporary file beside `path`, then rename it over `path` (atomic on POSIX)."""
    path = Path(path)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        if path.exists():
            os.chmod(temporary, path.stat().st_mode & 0o7777)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


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
        self.write_lines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)

    def write_lines(self, lines: Iterable[str]) -> None:
        """Append lines already serialised (each ending in a newline) in a single write, then flush."""
        text = "".join(lines)
        if not text:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
