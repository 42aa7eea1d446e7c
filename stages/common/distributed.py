"""Sharding extraction over processes, GPUs and machines with torch.distributed.

Under `torchrun` (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE in the environment) every
process is one shard: it encodes its share of the units of work that `resume_store` plans, on
its own device (`cuda:LOCAL_RANK` with NCCL, the CPU with gloo), and saves them as the usual
resume units in the shared parts folder; once all have finished, rank 0 assembles the cache. On one
machine with several GPUs, `python -m stages.extract` (so `dvc repro`) starts one process per
visible GPU itself (`spawn`), with the same code. Without either, the world is one process.
"""
from __future__ import annotations

import contextlib
import os
import socket
from dataclasses import dataclass
from datetime import timedelta
from typing import Callable, Iterator

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from stages.common.errors import InputError

# Rank 0 waits at the barrier while the slowest shard finishes: allow a long extraction.
BARRIER_TIMEOUT = timedelta(hours=48)


@dataclass(frozen=True)
class Shard:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self, requested: str) -> str:
        """This process's device: its own GPU when several processes share a machine's GPUs."""
        cuda = requested == "cuda" or (requested == "auto" and torch.cuda.is_available())
        if cuda and self.local_world > 1:
            return f"cuda:{self.local_rank}"
        return requested


ONE_PROCESS = Shard()


def resolve_device(device: str) -> torch.device:
    """`auto` picks CUDA when present; asking for CUDA without one is an error, not a fallback."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise InputError("clip.device is cuda, but no CUDA device is available")
    return torch.device(device)


def from_env() -> Shard:
    env = os.environ
    world = int(env.get("WORLD_SIZE", 1))
    return Shard(rank=int(env.get("RANK", 0)), world=world,
                 local_rank=int(env.get("LOCAL_RANK", 0)),
                 local_world=int(env.get("LOCAL_WORLD_SIZE", world)))


@contextlib.contextmanager
def process_group(shard: Shard, device: str) -> Iterator[None]:
    """Joins the process group for the block (nothing to join in a world of one)."""
    if shard.world == 1:
        yield
        return
    backend = "nccl" if device.startswith("cuda") else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(shard.local_rank)
    dist.init_process_group(backend, timeout=BARRIER_TIMEOUT)
    try:
        yield
    finally:
        dist.destroy_process_group()


def barrier(shard: Shard) -> None:
    if shard.world > 1:
        dist.barrier()


def local_processes(requested: str) -> int:
    """How many processes `python -m stages.extract` starts by itself: one per visible GPU,
    unless torchrun already started them or the CPU was asked for."""
    if "WORLD_SIZE" in os.environ or requested == "cpu" or not torch.cuda.is_available():
        return 1
    return torch.cuda.device_count()


def spawn(processes: int, target: Callable, *args) -> None:
    """Run target(*args) in `processes` processes on this machine, as torchrun would set
    them up; a process that fails fails the call with its error."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()))
    try:
        mp.spawn(_worker, args=(processes, target, args), nprocs=processes, join=True)
    except mp.ProcessExitedException as err:
        raise InputError(f"extraction process {err.error_index} of {processes} failed "
                         f"(exit code {err.exit_code}); its message is above") from None


def _worker(rank: int, processes: int, target: Callable, args: tuple) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(processes), LOCAL_RANK=str(rank),
                      LOCAL_WORLD_SIZE=str(processes))
    target(*args)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
