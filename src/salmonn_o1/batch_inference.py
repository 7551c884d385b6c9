"""`salmonn-o1 infer`: answer every item of a JSONL file, append-and-resume.

Results are appended and flushed line by line, so a killed run loses at most
the batch in flight; re-running skips the ids already written. A bad item
(missing or corrupt video) becomes an error record and the run goes on; a
rerun keeps it unless asked to retry errors. Media decoding runs in DataLoader
workers, overlapping with generation. Under `accelerate launch` each process
takes every P-th item, writes its own part file, and the main process merges
the parts at the end.

Before a run, the main process takes `OutputLock` (a second run on the same
file would compute every item again) and calls `prepare_output`, which refuses
a file that is not a predictions file of ours and sets aside damaged lines, so
resuming never deletes a readable result.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from salmonn_o1.errors import DataError, SalmonnError
from salmonn_o1.records import RecordWriter, replace_file, scan_records, set_aside_lines

# A record of ours has an id and at least one of these (see data/schema.py's prediction line).
PREDICTION_KEYS = ("answer", "prediction", "reasoning", "error")


@dataclass
class InferenceSummary:
    total: int
    done: int
    skipped: int
    failed: int
    seconds: float
    errors_kept: int = 0  # earlier error records left as they are (not retried)

    @property
    def items_per_second(self) -> float:
        return self.done / self.seconds if self.seconds > 0 else 0.0

    def __str__(self) -> str:
        text = (f"{self.done} done, {self.skipped} already in the output, {self.failed} failed "
                f"(of {self.total}); {self.items_per_second:.2f} items/s")
        if self.errors_kept:
            text += (f"; {self.errors_kept} earlier error record(s) kept, not retried "
                     "(rerun with --retry-errors to retry them)")
        return text


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def is_prediction_record(record: dict) -> bool:
    """An id and a prediction field, and no 'question': an items file has answers too, but it is not ours to write."""
    return "id" in record and "question" not in record and any(k in record for k in PREDICTION_KEYS)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return a.resolve() == b.resolve()


def _not_ours(path: Path) -> str | None:
    """Why a non-empty file is not a predictions file of ours (None when it is one)."""
    scan = scan_records(path)
    if not scan.records:
        if scan.bad_lines:
            return f"line {scan.bad_lines[0]} is not a JSON record with an 'id'"
        if scan.interrupted is not None and not scan.interrupted.lstrip().startswith(b'{"id"'):
            return "its only line is not a JSON record with an 'id'"
        return None  # blank, or one record cut short by a kill
    foreign = [n for n, r in zip(scan.record_lines, scan.records) if not is_prediction_record(r)]
    foreign += scan.other_json_lines
    if foreign:
        return (f"line {min(foreign)} is JSON but not a prediction record (an 'id' and one of "
                f"{', '.join(PREDICTION_KEYS[:-1])} or {PREDICTION_KEYS[-1]}, no 'question')")
    return None


def part_files(out_path: str | os.PathLike) -> list[Path]:
    """Part files an `accelerate launch` run left beside the output (`<out>.part0`, ...)."""
    out_path = Path(out_path)
    parts = [p for p in out_path.parent.glob(f"{out_path.name}.part*") if p.name[len(out_path.name) + 5:].isdigit()]
    return sorted(parts, key=lambda p: int(p.name[len(out_path.name) + 5:]))


def prepare_output(
    out_path: str | os.PathLike,
    data_path: str | os.PathLike | None = None,
    overwrite: bool = False,
    retry_errors: bool = False,
    warn: Callable[[str], None] = _warn,
) -> None:
    """Make `out_path` ready to be appended to, losing nothing; call it holding `OutputLock`.

    Refuses (DataError) an output that is the items file itself, a directory,
    or an existing file that is not a predictions file of ours (prose, other
    JSON), unless `overwrite`, which starts the file afresh. In a file of ours
    every readable record is kept: damaged lines are moved to a side file
    (`set_aside_lines`) with a warning naming them; parts left by a killed
    multi-process run are merged in; with `retry_errors` the error records are
    removed so their items are computed again.
    """
    out = Path(out_path)
    if data_path is not None and _same_file(out, Path(data_path)):
        raise DataError(f"--out {out} is the --data file; write the predictions to another file")
    if out.is_dir():
        raise DataError(f"--out {out} is a directory; expected a predictions JSONL file")
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists() and out.stat().st_size > 0:
        if overwrite:
            warn(f"--overwrite: replacing {out}")
            replace_file(out, b"")
            for part in part_files(out):
                part.unlink()
            return
        if (why := _not_ours(out)) is not None:
            raise DataError(f"--out {out} is not a predictions file of salmonn-o1 infer ({why}); "
                            "choose another --out, or pass --overwrite to replace it")
    elif overwrite:
        for part in part_files(out):
            part.unlink()
    for part in part_files(out):
        merge_part(out, part, warn)
    scan = scan_records(out)
    if scan.bad_lines:
        aside = set_aside_lines(out, scan.bad_lines)
        warn(f"{out}: line(s) {', '.join(map(str, scan.bad_lines))} could not be read; moved them to "
             f"{aside} and kept the {len(scan.records)} readable record(s); their items are computed again")
        scan = scan_records(out)
    errors = {n for n, r in zip(scan.record_lines, scan.records) if r.get("error")}
    if errors and retry_errors:
        lines = out.read_bytes().split(b"\n")  # numbered as scan_records numbers them
        kept = [line for number, line in enumerate(lines, start=1) if number not in errors and line]
        replace_file(out, b"".join(line + b"\n" for line in kept))


class OutputLock:
    """An exclusive lock on `<out>.lock` while a run writes `out`: a second run is refused, not run twice.

    The lock is the operating system's (released when the process ends, even
    when it is killed), through the `filelock` package.
    """

    def __init__(self, out_path: str | os.PathLike):
        from filelock import FileLock

        self.out_path = Path(out_path)
        self.path = self.out_path.with_name(self.out_path.name + ".lock")
        self._lock = FileLock(str(self.path), timeout=0)

    def acquire(self) -> OutputLock:
        from filelock import Timeout

        self.out_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire()
        except Timeout:
            raise DataError(f"--out {self.out_path} is being written by another salmonn-o1 infer run "
                            f"(it holds {self.path}); wait for it to finish or choose another --out") from None
        except OSError as error:
            raise DataError(f"--out {self.out_path}: cannot create the lock file {self.path}: "
                            f"{error.strerror or error}") from None
        return self

    def release(self) -> None:
        self._lock.release()

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, *exc_info) -> None:
        self.release()


class _MediaDataset(Dataset):
    """Decodes and featurises one item per worker call; errors travel back as data."""

    def __init__(self, items, processor):
        self.items, self.processor = items, processor

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        item = self.items[index]
        try:
            features = self.processor.media_features(item.video) if item.video else None
            return item, features, None
        except (SalmonnError, OSError) as error:
            return item, None, str(error)


def _shard(items: list, rank: int, world: int) -> list:
    return items[rank::world]


def run_inference(
    items_path: str | os.PathLike,
    out_path: str | os.PathLike,
    pipeline,
    batch_size: int = 1,
    num_workers: int = 0,
    reasoning: bool = True,
    generation: dict | None = None,
    rank: int = 0,
    world_size: int = 1,
    progress: bool = True,
    majority: int | None = None,
) -> InferenceSummary:
    """Answer every item of `items_path` not yet in `out_path`, appending one record per item.

    The caller holds `OutputLock` and has run `prepare_output` (the `infer`
    command does both, in the main process); here the output is only read,
    tolerantly, for the ids already done. Error records count as done (kept):
    `prepare_output(retry_errors=True)` has removed them when they are to be
    computed again.

    majority: K (>= 2) sampled reasoning paths per item and their vote (`majority_record`); the
    item's K paths are its batch, so items go one at a time and `batch_size` is not used.
    """
    from salmonn_o1.data.schema import read_items
    from salmonn_o1.inference import Question

    started = time.perf_counter()
    items = read_items(items_path)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    part_path = out_path if world_size == 1 else out_path.with_name(f"{out_path.name}.part{rank}")
    written = scan_records(out_path).records + (scan_records(part_path).records if part_path != out_path else [])
    errors = {str(r["id"]) for r in written if r.get("error")}
    results = {str(r["id"]) for r in written if not r.get("error")}
    already = results | errors
    wanted = {i.id for i in items}
    todo = _shard([i for i in items if i.id not in already], rank, world_size)
    skipped = len(items) - len([i for i in items if i.id not in already])
    errors_kept = len((errors - results) & wanted)
    loader = DataLoader(_MediaDataset(todo, pipeline.processor), batch_size=None, shuffle=False,
                        num_workers=num_workers, collate_fn=lambda x: x)
    done = failed = 0
    bar = tqdm(total=len(todo), desc=f"infer{'' if world_size == 1 else f' [{rank}]'}", unit="item",
               disable=not progress)
    out = RecordWriter(part_path)  # one flushed append per record
    out.touch()
    pending: list = []

    def answer_pending() -> list:
        if majority is not None:
            answers = []
            for item, f, _ in pending:
                try:
                    answers.append(pipeline.ask_majority(f, item.question, item.options or None, k=majority,
                                                         **(generation or {})))
                except (SalmonnError, ValueError, RuntimeError) as error:
                    answers.append(error)
            return answers
        questions = [Question(f, item.question, item.options or None, reasoning) for item, f, _ in pending]
        try:
            return pipeline.ask_batch(questions, **(generation or {}))
        except (SalmonnError, ValueError, RuntimeError) as error:
            return [error] * len(pending)

    def flush_batch() -> None:
        nonlocal done, failed
        for (item, _, _), result in zip(pending, answer_pending()):
            if isinstance(result, Exception):
                out.write([{"id": item.id, "error": f"{type(result).__name__}: {result}"}])
                failed += 1
            elif majority is not None:
                out.write([majority_record(item.id, result)])
                done += 1
            else:
                out.write([{"id": item.id, "reasoning": result.reasoning, "answer": result.answer_text,
                            "prediction": result.answer, "steps": result.steps, "tokens": result.tokens,
                            "seconds": round(result.timings["total_s"], 4)}])
                done += 1
        bar.update(len(pending))
        pending.clear()

    for item, features, error in loader:
        if error is not None:
            out.write([{"id": item.id, "error": error}])
            failed += 1
            bar.update(1)
            continue
        pending.append((item, features, None))
        if len(pending) >= (1 if majority is not None else batch_size):
            flush_batch()
    if pending:
        flush_batch()
    bar.close()
    return InferenceSummary(len(items), done, skipped, failed, time.perf_counter() - started, errors_kept)


def majority_record(item_id: str, majority) -> dict:
    """One item's Major@k record: the vote's winner as its `prediction` and `answer` (so `eval` scores
    the vote unchanged), the reasoning of the first path that voted for it, the vote counts, and each
    path's answer, reasoning and answer text (the order they were sampled in)."""
    results = majority.results
    winner = next((r for r in results if majority.answer is not None and r.answer == majority.answer), None)
    return {
        "id": item_id,
        "reasoning": winner.reasoning if winner is not None else None,
        "answer": majority.answer,
        "prediction": majority.answer,
        "majority": len(results),
        "votes": majority.counts,
        "path_answers": [r.answer for r in results],
        "paths": [{"reasoning": r.reasoning, "answer": r.answer_text} for r in results],
        "tokens": {key: sum(r.tokens.get(key, 0) for r in results) for key in ("reasoning", "answer")},
        "seconds": round(results[0].timings["total_s"], 4) if results else 0.0,
    }


def merge_part(out_path: Path, part: Path, warn: Callable[[str], None] = _warn) -> None:
    """Append a part file's records whose id the output lacks (or has only as an error), then remove it.

    Damaged lines of the part are set aside, not dropped.
    """
    out_scan = scan_records(out_path)
    seen = {str(r["id"]) for r in out_scan.records if not r.get("error")}
    failed = {str(r["id"]) for r in out_scan.records if r.get("error")}
    scan = scan_records(part)
    if scan.bad_lines:
        aside = set_aside_lines(part, scan.bad_lines)
        warn(f"{part}: line(s) {', '.join(map(str, scan.bad_lines))} could not be read; moved them to {aside}")
    lines = []
    for record in scan.records:
        key = str(record["id"])
        if key in seen or (record.get("error") and key in failed):
            continue
        lines.append(json.dumps(record, ensure_ascii=False) + "\n")
        (failed if record.get("error") else seen).add(key)
    RecordWriter(out_path).write_lines(lines)
    part.unlink()


def merge_parts(out_path: str | os.PathLike) -> None:
    """Append every process's part file to the output (ids not yet there), then remove the parts.

    Every `<out>.partN` is merged, not only ranks below `world_size`: a part an
    earlier, wider run left behind holds results too.
    """
    out_path = Path(out_path)
    for part in part_files(out_path):
        merge_part(out_path, part)
