"""Data parallel training (e.g. Kaggle's 2×T4), launched by torchrun, `accelerate launch` or a
notebook's `accelerate.notebook_launcher`:

    torchrun --nproc_per_node 2 -m kagglebert train --config demo

Every rank runs the same stage code. accelerate does the device work (`engine.make_accelerator`:
this process's GPU, DDP wrapping, gradient all-reduce); this module keeps what accelerate lacks:
the batch sampler sharded so that every rank runs the same number of steps without repeating rows
(rank r takes every world_size-th batch; accelerate's shard would pad the last round with repeated
rows), predictions computed on a shard per rank (`shard_rows`, balanced by length) and gathered
with accelerate's `gather_object` (`gather_rows`, used by `modeling.predict`), and `main_first`,
which unlike accelerate's `main_process_first` stops the other ranks with rank 0's error instead of
leaving them at a barrier. Only rank 0 writes files. Without WORLD_SIZE > 1 every helper is a
no-op. This module imports nothing of kagglebert's but its error type.
"""
from __future__ import annotations

import contextlib
import datetime
import os

import numpy as np
import torch
import torch.distributed as dist

from .errors import RunError


def init_from_env() -> bool:
    """Join the process group torchrun describes in the environment (WORLD_SIZE, RANK, LOCAL_RANK,
    MASTER_ADDR/PORT); nccl on GPUs, gloo on CPUs. True when running distributed."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if not dist.is_initialized():
        cuda = torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))  # one GPU per process
        # long timeout: rank 0 alone may tokenize and write the cache while the others wait
        dist.init_process_group("nccl" if cuda else "gloo", timeout=datetime.timedelta(minutes=60))
    return True


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    if is_distributed():
        dist.barrier()


@contextlib.contextmanager
def main_first():
    """Rank 0 runs the block first (e.g. writes a cache or a run folder), the others after it: no two
    processes write the same file at once, and the others then find what rank 0 wrote. When rank 0's
    block fails (a refused input, a full disk), the others stop with its message instead of waiting
    at a collective rank 0 will never reach."""
    if not is_distributed():
        yield
        return
    if not is_main():
        failure = [None]
        dist.broadcast_object_list(failure, src=0)  # doubles as the barrier: sent when rank 0's block ended
        if failure[0] is not None:
            raise RunError(f"rank {rank()} stopped: rank 0 failed: {failure[0]}")
        yield
        return
    try:
        yield
    except BaseException as err:
        dist.broadcast_object_list([str(err) or type(err).__name__], src=0)
        raise
    dist.broadcast_object_list([None], src=0)


class ShardedBatchSampler(torch.utils.data.Sampler):
    """Rank r of w takes batches r, r + w, r + 2w, … of the wrapped batch sampler, which every rank
    draws with the same seed; the tail that does not fill all ranks is dropped, so every rank runs
    the same number of steps."""

    def __init__(self, batch_sampler, rank: int, world_size: int):
        self.batch_sampler, self.rank, self.world_size = batch_sampler, rank, world_size

    def set_epoch(self, epoch: int) -> None:
        self.batch_sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.batch_sampler) // self.world_size

    def __iter__(self):
        for i, batch in enumerate(self.batch_sampler):
            if i >= len(self) * self.world_size:
                break
            if i % self.world_size == self.rank:
                yield batch


def shard(batch_sampler):
    """The sampler itself when not distributed, else this rank's `ShardedBatchSampler`."""
    return ShardedBatchSampler(batch_sampler, rank(), world_size()) if is_distributed() else batch_sampler


def gather_rows(local: np.ndarray, rows: np.ndarray, n_rows: int) -> np.ndarray:
    """Each rank's predictions for its `rows` → the full (n_rows, ...) array on every rank."""
    if not is_distributed():
        out = np.zeros((n_rows, *local.shape[1:]), dtype=local.dtype)
        out[rows] = local
        return out
    from accelerate.utils import gather_object  # every rank's (rows, predictions), in rank order

    out = np.zeros((n_rows, *local.shape[1:]), dtype=local.dtype)
    for part_rows, part in gather_object([(rows, local)]):
        out[part_rows] = part
    return out


def shard_rows(lengths: np.ndarray) -> np.ndarray:
    """This rank's rows for inference: every world_size-th row of the length order, so each rank
    gets a similar mix of lengths (all rows when not distributed)."""
    order = np.argsort(-np.asarray(lengths), kind="stable")
    return order[rank() :: world_size()]
