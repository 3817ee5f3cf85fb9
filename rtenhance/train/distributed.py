"""Distributed data-parallel training under ``torchrun``: which process this is, and the process group.

``torchrun`` sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` (plus the rendezvous address) for every
process; without them the run is a single process. The backend is gloo on CPU and NCCL on CUDA.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Distributed:
    """This process's place in the job.

    Attributes:
        rank: global rank, 0 .. world_size - 1 (rank 0 validates, logs and writes checkpoints).
        world_size: number of processes; 1 for a plain run.
        local_rank: rank on this machine (selects the GPU).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """True for the process that validates, logs and writes files."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        """True when more than one process trains."""
        return self.world_size > 1

    @classmethod
    def from_env(cls) -> "Distributed":
        """Read ``torchrun``'s environment (absent: a single process).

        Raises:
            ValueError: the variables are not integers or are inconsistent.
        """
        try:
            world = int(os.environ.get("WORLD_SIZE", "1"))
            rank = int(os.environ.get("RANK", "0"))
            local = int(os.environ.get("LOCAL_RANK", str(rank)))
        except ValueError:
            raise ValueError("RANK, WORLD_SIZE and LOCAL_RANK must be integers (as torchrun sets them)") from None
        if world < 1 or not 0 <= rank < world:
            raise ValueError(f"RANK {rank} is not in 0..WORLD_SIZE-1 (WORLD_SIZE {world})")
        return cls(rank, world, local)

    def device(self, name: str) -> torch.device:
        """The device of this process for the config's ``device`` ("auto": CUDA when present)."""
        if name == "auto":
            name = "cuda" if torch.cuda.is_available() else "cpu"
        if name == "cuda":
            return torch.device("cuda", self.local_rank)
        return torch.device(name)

    def start(self, device: torch.device, init_method: str = "env://") -> None:
        """Join the process group (gloo on CPU, NCCL on CUDA); nothing for a single process."""
        if self.active and not dist.is_initialized():
            backend = "nccl" if device.type == "cuda" else "gloo"
            if device.type == "cuda":
                torch.cuda.set_device(device)
            dist.init_process_group(backend, init_method=init_method, rank=self.rank, world_size=self.world_size)

    def any(self, flag: bool) -> bool:
        """True when ``flag`` is True on any process (every process must call this at the same point)."""
        if not self.active:
            return flag
        on_gpu = dist.get_backend() == "nccl"
        value = torch.tensor([1.0 if flag else 0.0], device=f"cuda:{self.local_rank}" if on_gpu else "cpu")
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())

    def stop(self) -> None:
        """Leave the process group."""
        if self.active and dist.is_initialized():
            dist.destroy_process_group()
