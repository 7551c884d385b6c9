"""`salmonn-o1 infer`: answer every item of a JSONL file, append-and-resume.

Results are appended and flushed line by line, so a killed run loses at most
the batch in flight; re-running skips the ids already written. A bad item
(missing or corrupt video) becomes an error record and the run goes on.
Media decoding runs in DataLoader workers, overlapping with generation. Under
`accelerate launch` each process takes every P-th item, writes its own part
file, and the main process merges the parts at the end.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from salmonn_o1.errors import SalmonnError
from salmonn_o1.records import RecordWriter, done_ids


@dataclass
class InferenceSummary:
    total: int
    done: int
    skipped: int
    failed: int
    seconds: float

    @property
    def items_per_second(self) -> float:
        return self.done / self.seconds if self.seconds > 0 else 0.0

    def __str__(self) -> str:
        return (f"{self.done} done, {self.skipped} already in the output, {self.failed} failed "
                f"(of {self.total}); {self.items_per_second:.2f} items/s")


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
) -> InferenceSummary:
    from salmonn_o1.data.schema import read_items
    from salmonn_o1.inference import Question

    started = time.perf_counter()
    items = read_items(items_path)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    part_path = out_path if world_size == 1 else out_path.with_name(f"{out_path.name}.part{rank}")
    already = done_ids(out_path) | done_ids(part_path)
    todo = _shard([i for i in items if i.id not in already], rank, world_size)
    skipped = len(items) - len([i for i in items if i.id not in already])
    loader = DataLoader(_MediaDataset(todo, pipeline.processor), batch_size=None, shuffle=False,
                        num_workers=num_workers, collate_fn=lambda x: x)
    done = failed = 0
    bar = tqdm(total=len(todo), desc=f"infer{'' if world_size == 1 else f' [{rank}]'}", unit="item",
               disable=not progress)
    out = RecordWriter(part_path)  # one flushed append per record
    out.touch()
    pending: list = []

    def flush_batch() -> None:
        nonlocal done, failed
        questions = [Question(f, item.question, item.options or None, reasoning) for item, f, _ in pending]
        try:
            results = pipeline.ask_batch(questions, **(generation or {}))
        except (SalmonnError, ValueError, RuntimeError) as error:
            results = [error] * len(pending)
        for (item, _, _), result in zip(pending, results):
            if isinstance(result, Exception):
                out.write([{"id": item.id, "error": f"{type(result).__name__}: {result}"}])
                failed += 1
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
        if len(pending) >= batch_size:
            flush_batch()
    if pending:
        flush_batch()
    bar.close()
    return InferenceSummary(len(items), done, skipped, failed, time.perf_counter() - started)


def merge_parts(out_path: str | os.PathLike, world_size: int) -> None:
    """Append every process's part file to the output (ids not yet there), then remove the parts."""
    out_path = Path(out_path)
    seen = done_ids(out_path)
    with out_path.open("a", encoding="utf-8") as out:
        for rank in range(world_size):
            part = out_path.with_name(f"{out_path.name}.part{rank}")
            if not part.exists():
                continue
            done_ids(part)  # cut a half-written line
            for line in part.read_text(encoding="utf-8").splitlines():
                record = json.loads(line)
                if str(record["id"]) not in seen:
                    out.write(line + "\n")
                    seen.add(str(record["id"]))
            part.unlink()

