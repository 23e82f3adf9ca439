"""Data parallel training (e.g. Kaggle's 2×T4) with torch.distributed DDP, launched by torchrun:

    torchrun --nproc_per_node 2 -m kagglebert train --config demo

Every rank runs the same stage code. The batch sampler is sharded (rank r takes every
world_size-th batch, all ranks the same count, so no rank waits on a collective that never comes);
the model is wrapped in DistributedDataParallel (gradients averaged across ranks, so one step sees
the global batch); predictions are computed on a shard per rank and all-gathered (`shard_rows`,
`gather_rows`, used by `modeling.predict`); only rank 0 writes files while the others wait on a
barrier. Without WORLD_SIZE > 1 every helper is a no-op. This module imports nothing of
kagglebert's but its error type: the engine and the model code stand on it.
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


def local_device(device: torch.device) -> torch.device:
    """`cuda` → this process's GPU (cuda:LOCAL_RANK) under torchrun."""
    if is_distributed() and device.type == "cuda" and device.index is None:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


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


class LossModule(torch.nn.Module):
    """The model plus its loss function as one module, so that DDP's forward (which arms the
    gradient all-reduce) covers whatever the loss calls — `masked_lm_loss` calls the encoder and
    the MLM head separately, not `model.forward`."""

    def __init__(self, model: torch.nn.Module, compute_loss):
        super().__init__()
        self.model = model
        self.compute_loss = compute_loss

    def forward(self, batch: dict) -> torch.Tensor:
        return self.compute_loss(self.model, batch)


def wrap(model: torch.nn.Module, compute_loss, device: torch.device):
    """(module, compute_loss) for `engine.train_epoch`: unchanged when not distributed, else the
    model and loss wrapped in DistributedDataParallel. Keep using the bare `model` for
    predictions and saving: it shares the parameters."""
    if not is_distributed():
        return model, compute_loss
    ddp = torch.nn.parallel.DistributedDataParallel(
        LossModule(model, compute_loss), device_ids=[device.index] if device.type == "cuda" else None)
    return ddp, lambda module, batch: module(batch)


def gather_rows(local: np.ndarray, rows: np.ndarray, n_rows: int) -> np.ndarray:
    """Each rank's predictions for its `rows` → the full (n_rows, ...) array on every rank."""
    if not is_distributed():
        out = np.zeros((n_rows, *local.shape[1:]), dtype=local.dtype)
        out[rows] = local
        return out
    parts: list = [None] * world_size()
    dist.all_gather_object(parts, (rows, local))
    out = np.zeros((n_rows, *local.shape[1:]), dtype=local.dtype)
    for part_rows, part in parts:
        out[part_rows] = part
    return out


def mean_over_ranks(value: torch.Tensor) -> torch.Tensor:
    """The mean of a tensor over all ranks (the tensor itself when not distributed)."""
    if not is_distributed():
        return value
    total = value.detach().clone()
    dist.all_reduce(total)
    return total / world_size()


def shard_rows(lengths: np.ndarray) -> np.ndarray:
    """This rank's rows for inference: every world_size-th row of the length order, so each rank
    gets a similar mix of lengths (all rows when not distributed)."""
    order = np.argsort(-np.asarray(lengths), kind="stable")
    return order[rank() :: world_size()]
