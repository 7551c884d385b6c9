"""How many CPU threads torch uses: chosen once per process, at start-up.

Why this exists: torch starts one intra-op thread per core, and its OpenMP threads spin-wait
between parallel regions. Decoding a small model is thousands of tiny matrix products, each
too small to split; with a second thread on a machine whose cores are busy (other jobs, a
server's other requests) the spinning thread takes the core the work needed, and decoding the
miniature model was several times slower with 2 threads than with 1. A big model's products
do split well, so it gets every core. The numbers and the threshold are in docs/performance.md
("Threads").

The setting is made once: changing the pool's size mid-run re-creates OpenMP's threads, and
two parts of one process disagreeing about it (a command, a server, a loader) is a bug, so the
first call decides and later calls return what it decided. An explicit choice wins: a count
given here (a command's `--threads`), else the `OMP_NUM_THREADS` the user set. On a CUDA device
torch's threads only feed the GPU, so they are left as torch set them unless a count is given.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

# Below this many parameters a model decodes fastest on one thread (docs/performance.md, "Threads").
SMALL_MODEL_PARAMETERS = 100_000_000


@dataclass(frozen=True)
class ThreadSetting:
    """What `configure_threads` decided, and why (for a command's --verbose line or a server's log)."""

    threads: int
    reason: str

    def describe(self) -> str:
        return f"{self.threads} CPU thread{'s' if self.threads != 1 else ''} ({self.reason})"


_setting: ThreadSetting | None = None


def available_cores() -> int:
    """The cores this process may run on (its affinity mask, as a container or `taskset` limits it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def default_threads(num_parameters: int | None) -> int:
    """The measured choice: 1 thread for a model below `SMALL_MODEL_PARAMETERS`, else every core
    (unknown size: every core, torch's own default)."""
    if num_parameters is not None and num_parameters < SMALL_MODEL_PARAMETERS:
        return 1
    return available_cores()


def _environment_threads() -> int | None:
    text = os.environ.get("OMP_NUM_THREADS", "").strip()
    try:
        value = int(text.split(",")[0])
    except ValueError:
        return None
    return value if value >= 1 else None


def _is_cuda(device) -> bool:
    return str(getattr(device, "type", device)).startswith("cuda")


def configure_threads(threads: int | None, num_parameters: int | None = None, device="cpu") -> int:
    """Set torch's intra-op (and, while it still can be set, inter-op) thread count once per process;
    returns the count in use.

    threads: an explicit count (>= 1; a command's --threads), or None for the default:
    `OMP_NUM_THREADS` when the user set it, torch's own setting on a CUDA device, else
    `default_threads(num_parameters)`. Only the first call of a process sets anything; later calls
    return its count. Called before torch is imported, it also exports `OMP_NUM_THREADS`, which
    OpenMP reads only when it starts, so torch's pool starts at that size and child processes
    (DataLoader workers) inherit it.
    """
    global _setting
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ValueError(f"threads must be an integer >= 1, got {threads!r}")
    if _setting is not None:
        return _setting.threads
    from_environment = _environment_threads()
    if threads is not None:
        count, reason = threads, "--threads"
    elif from_environment is not None:
        count, reason = from_environment, "OMP_NUM_THREADS"
    elif _is_cuda(device):
        count, reason = None, "torch's default; the model runs on CUDA"
    elif num_parameters is not None:
        count = default_threads(num_parameters)
        reason = (f"default for a model of {num_parameters / 1e6:.1f}M parameters: "
                  + ("one thread below " if count == 1 else "every core from ")
                  + f"{SMALL_MODEL_PARAMETERS / 1e6:.0f}M")
    else:
        count, reason = available_cores(), "default: every core"
    if count is not None and "torch" not in sys.modules:
        os.environ["OMP_NUM_THREADS"] = str(count)  # read by OpenMP when torch loads it
    import torch

    if count is None:
        count = torch.get_num_threads()
    elif torch.get_num_threads() != count:
        torch.set_num_threads(count)
    if count is not None:
        try:
            if torch.get_num_interop_threads() > count:
                torch.set_num_interop_threads(count)
        except RuntimeError:  # settable only before the first inter-op work; the intra-op count is what matters
            pass
    _setting = ThreadSetting(count, reason)
    return count


def thread_setting() -> ThreadSetting | None:
    """What this process's `configure_threads` decided (None before it is called)."""
    return _setting
