"""pDPO's data stages spread over the processes of an `accelerate launch`: shares, shard files, merge.

Under `accelerate launch` (CPU processes over gloo, one process per GPU, or
several machines: accelerate's own machine config) every process runs the
same stage on its share of the questions. The share is fixed by the question
id alone (`in_share`: a hash of the id modulo the process count), so it does
not depend on the order of the questions or on what an earlier run finished.
Each process appends to its own shard of the stage file,
`<stage>.shard-RR-of-WW.jsonl`, which resumes like any stage file. When every
process is done (`folder.finish_stage`: a barrier), the main process appends
the shards' records to `<stage>.jsonl` in the order of the stage's input
(`folder.merge_shards`), deletes the shards and writes the summary over the
whole file; the others wait for it, so the next stage reads a complete file.
Each question is seeded by its id (`folder.question_seed`), so a sharded run
writes the same records as one process.

Resuming: the questions already in `<stage>.jsonl` or in any shard file are
done. Rerun with the same process count, each process continues its shard;
with another count, the old shards are still counted as done and merged at
the end, and only the questions in no file are shared out anew
(`folder.held_ids`). The merge appends only the questions the stage file does
not hold yet, so a merge cut short by a kill is finished by the next run
without writing a question twice.

Without a launch (one process) the stage appends to `<stage>.jsonl` itself and
no shard file is made; shards left by a killed launch are merged at its end.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from salmonn_o1.launch import Processes, current_processes

T = TypeVar("T")

def in_share(question_id: Any, rank: int, world_size: int) -> bool:
    """Whether question `question_id` is process `rank`'s: a hash of the id alone, so every process
    agrees without talking and a share does not depend on the order of the questions."""
    if world_size <= 1:
        return True
    # A cryptographic hash: crc32 is linear, so ids differing in their last digit share its low bits
    # and would all land on one process.
    digest = hashlib.blake2b(str(question_id).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % world_size == rank


def my_share(items: Iterable[T], key: Callable[[T], Any] | str = "id", processes: Processes | None = None) -> list[T]:
    """The items (questions or stage records) this process handles; all of them without a launch."""
    processes = processes or current_processes()
    get = key if callable(key) else (lambda item: item[key] if isinstance(item, dict) else getattr(item, key))
    return [item for item in items if in_share(get(item), processes.rank, processes.world_size)]


def shard_file(path: Path, rank: int, world_size: int) -> Path:
    """`stages/rollout.jsonl` -> `stages/rollout.shard-00-of-02.jsonl`."""
    return path.with_name(f"{path.stem}.shard-{rank:02d}-of-{world_size:02d}{path.suffix}")


def shard_files(path: Path) -> list[Path]:
    """The shards of `path` in the folder, of any process count, in (count, rank) order."""
    def order(shard: Path) -> tuple[int, int]:
        rank, _, world = shard.name[len(path.stem) + len(".shard-"):-len(path.suffix)].partition("-of-")
        return int(world), int(rank)

    found = [p for p in path.parent.glob(f"{path.stem}.shard-*-of-*{path.suffix}")
             if p.name[len(path.stem) + 7:-len(path.suffix)].replace("-of-", "").isdigit()]
    return sorted(found, key=order)


def my_file(path: Path, processes: Processes | None = None) -> Path:
    """The file this process appends a stage's records to: its shard under a launch, else `path`."""
    processes = processes or current_processes()
    return shard_file(path, processes.rank, processes.world_size) if processes.launched else path
