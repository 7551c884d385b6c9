"""Concurrent requests answered in shared batches by one thread that owns the model.

The model answers a left-padded batch of B questions in far less than B times one question's time
(on CPU the small matrix products leave most of each core idle; on a GPU even more so), so requests
that arrive together should be decoded together. Requests wait in one queue; the model thread
takes the oldest and every later one with the same generation settings, up to `max_batch_size`
rows, and runs them as one `SalmonnO1Pipeline.ask_batch`. It starts a batch once the burst is
over: no request has arrived for `wait_s` and none is still decoding its media (or the batch is
full, or the oldest has waited `max_wait_s`). Clients that each send their next request when
the last is answered come back a few milliseconds apart, not all at once; starting at the first
of them would split them into a full batch and a small one, which costs nearly as much again
(a batch's cost is mostly per step, not per row). And right after a batch the model thread
waits (up to `max_wait_s`) for that batch's clients to come back before it starts the next:
otherwise clients that happened to arrive during a batch keep forming a small batch of their
own, batch after batch, while the others' requests are on their way. Only requests with equal settings share a batch:
`ask_batch` decodes a batch with one `SamplingConfig`. A sampled request with a seed runs alone,
so its samples depend on its seed only.

A request whose client went away is dropped before its batch starts; a running batch whose
clients all went away stops at its next token. (A running batch is not split: the rows of a
cancelled request finish with the others.)
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field

from salmonn_o1.inference import Question

log = logging.getLogger("salmonn_o1.serve")


@dataclass(frozen=True)
class Generation:
    """How to generate; requests with equal settings can share a batch."""

    max_new_tokens: int  # the reasoning turn (or the direct answer)
    answer_max_new_tokens: int  # the answer turn after reasoning
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None

    @classmethod
    def of(cls, max_new_tokens: int, answer_max_new_tokens: int, temperature: float | None = None,
           top_p: float | None = None, seed: int | None = None) -> Generation:
        """Greedy unless a temperature > 0 is given; greedy settings ignore top_p and seed, so every
        greedy request with the same token limits can share a batch."""
        if not temperature:
            return cls(max_new_tokens, answer_max_new_tokens)
        return cls(max_new_tokens, answer_max_new_tokens, True, float(temperature),
                   1.0 if top_p is None else float(top_p), seed)

    @property
    def alone(self) -> bool:
        """A seeded sampled request runs in a batch of its own (its samples then depend on its seed only)."""
        return self.do_sample and self.seed is not None

    def kwargs(self) -> dict:
        seed = self.seed
        if self.do_sample and seed is None:
            seed = secrets.randbits(31)  # unseeded sampling differs from batch to batch
        return {"max_new_tokens": self.max_new_tokens, "answer_max_new_tokens": self.answer_max_new_tokens,
                "do_sample": self.do_sample, "temperature": self.temperature, "top_p": self.top_p, "seed": seed}


@dataclass(eq=False)
class Job:
    """One request: its `n` questions (rows), settings, and where its tokens and results go.

    emit(choice, token) is called on the model thread for each turn-1 token of a streaming request,
    then emit(None, None) once the future holds the results (or the exception).
    """

    questions: list[Question]
    generation: Generation
    emit: Callable[[int | None, int | None], None] | None = None
    future: Future = field(default_factory=Future)
    cancelled: bool = False
    submitted: float = field(default_factory=time.monotonic)

    def cancel(self) -> None:
        """The client went away: drop the request if it has not started, stop its batch if it is alone."""
        self.cancelled = True
        self.future.cancel()

    def _finish(self) -> None:
        if self.emit is not None:
            self.emit(None, None)


class BatchAbandoned(Exception):
    """Raised from inside a running batch whose requests were all cancelled."""


class ServerClosing(Exception):
    """The server stopped before the request ran."""


class Batcher:
    """The queue and the model thread (`start`, `submit`, `stop`)."""

    def __init__(self, pipeline, max_batch_size: int = 16, wait_s: float = 0.03, max_wait_s: float | None = None):
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be at least 1")
        self.pipeline = pipeline
        self.max_batch_size = max_batch_size
        self.wait_s = wait_s
        self.max_wait_s = 4 * wait_s if max_wait_s is None else max_wait_s
        self.preparing = 0  # requests whose media is being decoded (the server counts them)
        self._last_arrival = 0.0
        self._expected = 0  # rows expected back right after a batch (its clients' next requests)
        self._expect_until = 0.0
        self._waiting: list[Job] = []
        self._changed = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="salmonn-o1-model", daemon=True)
        self.stats: Counter[str] = Counter()  # batches, rows, requests, cancelled, abandoned, failed, largest_batch
        self.running_rows = 0

    # ---- the server's side ----
    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        with self._changed:
            self._stopping = True
            left, self._waiting = self._waiting, []
            self._changed.notify_all()
        for job in left:
            self._fail(job, ServerClosing("the server is shutting down"))
        if self._thread.is_alive():
            self._thread.join(timeout)

    def submit(self, job: Job) -> Job:
        if len(job.questions) > self.max_batch_size:
            raise ValueError(f"{len(job.questions)} rows do not fit a batch of {self.max_batch_size}")
        with self._changed:
            if self._stopping:
                raise ServerClosing("the server is shutting down")
            self._waiting.append(job)
            self._last_arrival = job.submitted
            self._changed.notify_all()
        return job

    @contextmanager
    def preparing_request(self) -> Iterator[None]:
        """Around a request's media decoding: a batch about to start waits a little for it."""
        with self._changed:
            self.preparing += 1
        try:
            yield
        finally:
            with self._changed:
                self.preparing -= 1
                self._changed.notify_all()

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    # ---- the model thread ----
    def _loop(self) -> None:
        while True:
            jobs = self._next_batch()
            if jobs is None:
                return
            self._run(jobs)

    def _next_batch(self) -> list[Job] | None:
        """The oldest request and those that can join it, once the oldest has waited long enough."""
        with self._changed:
            while True:
                self._drop_cancelled()
                if self._stopping:
                    return None
                if not self._waiting:
                    self._changed.wait()
                    continue
                batch = self._compatible(self._waiting[0])
                rows = sum(len(job.questions) for job in batch)
                if rows >= self.max_batch_size or batch[0].generation.alone:
                    break
                now = time.monotonic()
                if now < self._expect_until:  # just after a batch: are its clients back?
                    if rows >= self._expected:
                        break
                    self._changed.wait(self._expect_until - now)
                    continue
                quiet_at = self._last_arrival + self.wait_s  # no request for wait_s: the burst is over
                if self.preparing > 0:  # requests decoding their media will want to join
                    quiet_at = now + self.wait_s
                left = min(quiet_at, self._waiting[0].submitted + self.max_wait_s) - now
                if left <= 0:
                    break
                self._changed.wait(left)
            for job in batch:
                self._waiting.remove(job)
            self._expect_until = 0.0
        started = [job for job in batch if job.future.set_running_or_notify_cancel()]
        self.stats["cancelled"] += len(batch) - len(started)
        return started

    def _drop_cancelled(self) -> None:
        kept = [job for job in self._waiting if not job.cancelled]
        self.stats["cancelled"] += len(self._waiting) - len(kept)
        self._waiting = kept

    def _compatible(self, head: Job) -> list[Job]:
        if head.generation.alone:
            return [head]
        batch, rows = [], 0
        for job in self._waiting:
            fits = rows + len(job.questions) <= self.max_batch_size
            if job.generation == head.generation and fits:
                batch.append(job)
                rows += len(job.questions)
        return batch

    def _run(self, jobs: list[Job]) -> None:
        if not jobs:
            return
        questions = [q for job in jobs for q in job.questions]
        owners = [(job, choice) for job in jobs for choice in range(len(job.questions))]

        def on_token(row: int, token: int) -> None:
            if all(job.cancelled for job in jobs):
                raise BatchAbandoned
            job, choice = owners[row]
            if job.emit is not None and not job.cancelled:
                job.emit(choice, token)

        self.running_rows = len(questions)
        started = time.perf_counter()
        try:
            results = self.pipeline.ask_batch(questions, on_token=on_token, **jobs[0].generation.kwargs())
        except BatchAbandoned:
            self.stats["abandoned"] += 1
            self.stats["cancelled"] += len(jobs)
            for job in jobs:
                self._fail(job, BatchAbandoned("every client of the batch went away"))
            return
        except Exception as error:  # the requests fail; the server and its model thread go on
            log.exception("a batch of %d rows failed", len(questions))
            self.stats["failed"] += 1
            for job in jobs:
                self._fail(job, error)
            return
        finally:
            self.running_rows = 0
            with self._changed:  # closed-loop clients send their next request as soon as they are answered
                waiting = sum(len(job.questions) for job in self._waiting if job.generation == jobs[0].generation)
                self._expected = min(self.max_batch_size, waiting + len(questions))
                self._expect_until = time.monotonic() + self.max_wait_s
        log.debug("batch of %d requests, %d rows: %.2f s", len(jobs), len(questions), time.perf_counter() - started)
        self.stats["batches"] += 1
        self.stats["requests"] += len(jobs)
        self.stats["rows"] += len(questions)
        self.stats["largest_batch"] = max(self.stats["largest_batch"], len(questions))
        first = 0
        for job in jobs:
            rows = results[first:first + len(job.questions)]
            first += len(job.questions)
            job.future.set_result(rows)
            job._finish()

    @staticmethod
    def _fail(job: Job, error: Exception) -> None:
        if job.future.running() or job.future.set_running_or_notify_cancel():
            job.future.set_exception(error)
        job._finish()
