"""The `accelerate launch` this process runs in (if any): its rank, device and collectives.

`salmonn-o1 infer` and pDPO's stages (`pdpo.sharding`) split their work over the processes of a
launch: CPU processes over gloo, one process per GPU, or several machines (accelerate's machine
config). Both need the same few things: which process this is, the device it loads the model on,
a barrier, and sending a value from the main process or gathering one from each; accelerate's
`PartialState` provides them, started here once, with a barrier timeout fit for long runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from typing import Any

# A barrier waits for the slowest process, which can finish hours after the fastest on a long stage;
# torch's default (30 min on gloo, 10 min on NCCL) would end the run there. A process that dies
# ends the launch anyway (torchrun stops the others), so a long wait hides no failure.
BARRIER_TIMEOUT = timedelta(hours=48)


@dataclass(frozen=True)
class Processes:
    """This process's place in the launch: rank `rank` of `world_size` (0 of 1 without a launch)."""

    rank: int = 0
    world_size: int = 1

    @property
    def launched(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def device(self) -> str:
        """The device this process loads the model on: its own GPU under a launch, else "auto"."""
        if self.launched:
            device = _state().device
            if device.type == "cuda":
                return str(device)
        return "auto"

    def barrier(self) -> None:
        if self.launched:
            _state().wait_for_everyone()

    def gather(self, value: Any) -> list[Any]:
        """Every process's `value`, in rank order (a collective: all processes must call it)."""
        if not self.launched:
            return [value]
        from accelerate.utils import gather_object

        return gather_object([value])

    def broadcast(self, value: Any) -> Any:
        """The main process's `value`, on every process (a collective)."""
        if not self.launched:
            return value
        from accelerate.utils import broadcast_object_list

        return broadcast_object_list([value], from_process=0)[0]


@lru_cache(maxsize=1)
def _state():
    import torch
    from accelerate import PartialState

    # CPU processes (gloo) must say so: `accelerate launch` on a machine without CUDA.
    return PartialState(cpu=not torch.cuda.is_available(), timeout=BARRIER_TIMEOUT)


def current_processes() -> Processes:
    """The launch this process runs in: `accelerate launch` (torchrun) sets WORLD_SIZE and RANK;
    under one, the process group is started here (once), with a barrier timeout fit for long stages."""
    import os

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return Processes()
    state = _state()
    return Processes(state.process_index, state.num_processes)
