"""Many questions' rows in calls of `batch_size` sequences, each question's record in input order.

A stage's forward passes cost about the same for 1 row as for 16 on an accelerator, and a question
has only a few rows (P paths, its branched paths), so the stages pack the rows of consecutive
questions into calls of `pdpo.batch_size` sequences: a question's rows may span two calls, and a
question with more rows than a call holds is cut over several. Each question's record is ready once
its last row has run, and is handed out in input order (a question with no rows, e.g. one whose
media failed, waits for the questions before it), so the stage file is the same for any batch size.
The rows' seeds depend on the question and the row only (`folder.question_seed`), never on the call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Generic, TypeVar

Work = TypeVar("Work")


class Part(Generic[Work]):
    """Rows [start, stop) of one question's work, run in one call."""

    __slots__ = ("work", "start", "stop")

    def __init__(self, work: Work, start: int, stop: int):
        self.work, self.start, self.stop = work, start, stop

    @property
    def rows(self) -> int:
        return self.stop - self.start

    def __repr__(self) -> str:
        return f"Part({self.work!r}, {self.start}, {self.stop})"


def row_calls(works: Iterable[Work], rows_of: Callable[[Work], int], batch_size: int
              ) -> Iterator[tuple[list[Part[Work]], list[Work]]]:
    """(call, finished) pairs: run `call` (up to batch_size rows; empty when there is nothing to run),
    then `finished`, the works complete once it has run, in input order.

    `works` is read lazily, only as far as the next call needs (so a question's media is loaded
    when its call is being filled, not all at once).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    waiting: list[list] = []  # [work, rows not yet in a call], in input order, not yet handed out
    call: list[Part[Work]] = []
    filled = 0

    def finished() -> list[Work]:
        done = 0
        while done < len(waiting) and waiting[done][1] == 0:
            done += 1
        ready = [work for work, _ in waiting[:done]]
        del waiting[:done]
        return ready

    for work in works:
        rows = rows_of(work)
        entry = [work, rows]
        waiting.append(entry)
        start = 0
        while start < rows:
            take = min(rows - start, batch_size - filled)
            call.append(Part(work, start, start + take))
            start += take
            entry[1] -= take
            filled += take
            if filled == batch_size:
                yield call, finished()
                call, filled = [], 0
        if not call and waiting:  # nothing waits to run: the works with no rows are ready now
            yield [], finished()
    if call or waiting:
        yield call, finished()


def length_chunks(lengths: Sequence[int], batch_size: int, waste: float = 0.25) -> list[list[int]]:
    """Row indices in calls of at most batch_size rows, longest first, a call cut before padding to its
    longest row would make more than `waste` of its positions padding.

    A left-padded teacher-forced call costs its longest row for every row, so whole paths (hundreds of
    tokens) and single steps (tens) scored together would make the steps pay for the paths.
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    chunks: list[list[int]] = []
    current: list[int] = []
    real = 0
    for i in order:
        if current and (len(current) >= batch_size
                        or real + lengths[i] < (1 - waste) * lengths[current[0]] * (len(current) + 1)):
            chunks.append(current)
            current, real = [], 0
        current.append(i)
        real += lengths[i]
    if current:
        chunks.append(current)
    return chunks


def tail_calls(decoder, rows: Sequence[Sequence[int]], media_sets: Sequence[Sequence[Any]], need: Sequence[int],
               batch_size: int) -> Iterator[tuple[list[int], int, list[Any]]]:
    """Teacher-forced tails of `rows` (row i's last need[i] positions) through `decoder`, for each media
    set (select scores a path with the real and the perturbed media): what comes before each row's tail
    is pinned once per media input (when >= `decoder.min_shared_prefix` positions), then the rows go in
    calls of similar tail length (`length_chunks`). Yields (row indices, keep, [logits (n, keep, V) per
    media set]); the pins are freed when the calls are done."""
    heads: dict[tuple, Any] = {}
    for media in media_sets:
        for row, m, n in zip(rows, media, need):
            if len(row) - n >= decoder.min_shared_prefix:
                heads.setdefault((tuple(row[:len(row) - n]), id(m)), m)
    pinned_before = len(decoder.pinned)
    if heads:
        decoder.pin_prefixes([list(ids) for ids, _ in heads], list(heads.values()))
    try:
        for chunk in length_chunks(need, batch_size):
            keep = max(need[i] for i in chunk)
            yield chunk, keep, [decoder.tail_logits([rows[i] for i in chunk], [media[i] for i in chunk], keep,
                                                    [need[i] for i in chunk]) for media in media_sets]
    finally:
        decoder.unpin(keep=pinned_before)  # a caller's own pins stay
