"""Where this process stands in a `torchrun` job (rank, world size, local rank), read from the
environment torchrun sets; a plain `python` run is rank 0 of 1."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from stillmotion.errors import UsageError


@dataclass(frozen=True)
class Rank:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def current() -> Rank:
    """This process's place, from RANK / WORLD_SIZE / LOCAL_RANK."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if not 0 <= rank < world:
        raise UsageError(f"RANK={rank} is outside WORLD_SIZE={world}; start several processes with torchrun")
    return Rank(rank, world, int(os.environ.get("LOCAL_RANK", "0")))


def start(backend: str = "gloo") -> Rank:
    """Join the process group when started by torchrun (a no-op for one process). Under NCCL
    each rank first takes its own GPU (LOCAL_RANK), so its collectives run there."""
    here = current()
    if here.world > 1 and not dist.is_initialized():
        if backend == "nccl":
            torch.cuda.set_device(here.local_rank)
        dist.init_process_group(backend)
    return here


def reduce_device() -> torch.device:
    """Where tensors for collectives must live: this rank's GPU under NCCL, else the CPU."""
    if dist.is_initialized() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def barrier() -> None:
    if dist.is_initialized():
        device = reduce_device()
        dist.barrier(device_ids=[device.index]) if device.type == "cuda" else dist.barrier()


def sum_over_ranks(values: list[float]) -> list[float]:
    """Element-wise sum of `values` over all ranks (the values themselves for one process)."""
    if not dist.is_initialized():
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=reduce_device())
    dist.all_reduce(t)
    return t.cpu().tolist()


def mean_over_ranks(value: float) -> float:
    return sum_over_ranks([value])[0] / current().world


def gather_objects(items: list) -> list:
    """Every rank's list, concatenated in rank order, on every rank (picklable items)."""
    if not dist.is_initialized():
        return list(items)
    parts = [None] * dist.get_world_size()
    dist.all_gather_object(parts, items)
    return [item for part in parts for item in part]


def stop() -> None:
    """Leave the process group once every rank is done: without the barrier a rank that
    finishes first could tear its gloo connections down under another rank's last collective,
    which aborts that process."""
    if dist.is_initialized():
        barrier()
        dist.destroy_process_group()
