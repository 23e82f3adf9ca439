"""The training step and everything around it, shared by the LM and classifier stages: the
optimizer with layer-wise learning-rate decay, schedules, the epoch loop (`train_epoch`) and `fit`,
which runs it for a stage — optimizer, scheduler, epochs, a per-epoch callback (evaluate, keep the
best epoch, save a resumable state), checkpoints inside an epoch, and resumption from either.

accelerate's `Accelerator` owns the device work: device placement, mixed precision (bf16 autocast;
fp16 autocast with its loss scaler), DDP wrapping and `no_sync` during accumulation, gradient
clipping of unscaled gradients. What stays written here, each because accelerate lacks it:
- the accumulation window's size (`Training.step`): accelerate's `backward` divides every loss by
  the full `gradient_accumulation_steps`, so an epoch's last, partial window would step undersized;
- the scheduler is stepped here, once per optimizer step: a prepared `AcceleratedScheduler` steps
  `num_processes` times per step (it expects a schedule counted in single-process steps; ours counts
  this rank's steps);
- batches are sharded by `distributed.ShardedBatchSampler` and never go through `prepare`:
  accelerate's `BatchSamplerShard` fills the last round by repeating rows, and the length buckets,
  the skip to a checkpoint's position and the LM masks' generator are ours;
- checkpoints inside an epoch (`Checkpoints`, `SkipBatches`): accelerate's `save_state` /
  `skip_first_batches` expect prepared dataloaders and write their own folder layout; ours hold the
  stage's bookkeeping too (a fold's best epoch so far) and read back with `weights_only=True`.
A stage says what data, what model, what loss, and what it writes; this module says how a model is
trained."""
from __future__ import annotations

import contextlib
import math
import os
import random
import re
import signal
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from . import distributed
from .errors import RunError
from .progress import ProgressBar


def resolve_device(name: str = "auto") -> torch.device:
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_precision(name: str, device: torch.device) -> str:
    """auto: bf16 where the GPU has it (A100/H100), fp16 with a loss scaler on T4/P100, fp32 on CPU."""
    if name != "auto":
        return name
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "fp32"


def autocast(device: torch.device, precision: str):
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def layer_of(param_name: str, n_layers: int) -> int:
    """Depth of a parameter: 0 = embeddings, 1..n = transformer layers, n + 1 = anything above."""
    if "embeddings" in param_name:
        return 0
    match = re.search(r"\.layers?\.(\d+)\.", param_name)
    return int(match.group(1)) + 1 if match else n_layers + 1


def param_groups(model: torch.nn.Module, encoder: torch.nn.Module, lr: float, head_lr: float, layer_decay: float, weight_decay: float) -> list[dict]:
    """Layer-wise lr decay (Sun et al. 2019: factor 0.95): the top encoder layer gets `lr`, each layer
    below `layer_decay` times the one above; parameters outside the encoder (a fresh head) get
    `head_lr`. Biases and LayerNorm weights get no weight decay."""
    n_layers = getattr(encoder.config, "num_hidden_layers", 12)
    encoder_ids = {id(p) for p in encoder.parameters()}
    groups: dict[tuple, dict] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if id(param) in encoder_ids:
            depth = layer_of(name, n_layers)
            group_lr = lr * layer_decay ** max(0, n_layers - depth)
        else:
            group_lr = head_lr
        decay = 0.0 if param.ndim < 2 else weight_decay
        key = (group_lr, decay)
        groups.setdefault(key, {"params": [], "lr": group_lr, "weight_decay": decay})["params"].append(param)
    return list(groups.values())


def make_optimizer(groups: list[dict], device: torch.device) -> torch.optim.Optimizer:
    # fused AdamW: one kernel per step for all parameters on CUDA, and one vectorised loop per
    # tensor on the CPU (the plain CPU AdamW launches ~10 elementwise ops per tensor: about a
    # fifth of a tiny model's step; measured with torch.profiler in kagglebert.bench --quick)
    return torch.optim.AdamW(groups, fused=device.type in ("cuda", "cpu"))


def make_scheduler(optimizer, total_steps: int, warmup_ratio: float, kind: str = "linear", stlr_ratio: float = 32.0):
    """linear: warm-up then linear decay to 0; stlr: ULMFiT's slanted triangular (cut_frac =
    warmup_ratio, from peak/ratio up to the peak and back down); constant: warm-up then flat."""
    warmup = max(1, int(round(total_steps * warmup_ratio))) if warmup_ratio > 0 else 0

    def factor(step: int) -> float:
        if kind == "stlr":
            cut = max(1, warmup)
            p = step / cut if step < cut else 1 - (step - cut) / max(1, total_steps - cut)
            return (1 + p * (stlr_ratio - 1)) / stlr_ratio
        if step < warmup:
            return (step + 1) / warmup
        if kind == "constant":
            return 1.0
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)



def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


MIXED_PRECISION = {"fp32": "no", "fp16": "fp16", "bf16": "bf16"}  # ours → accelerate's names


def precision_problem(section: str, precision: str, device: torch.device) -> str | None:
    """Why `<section>.precision` cannot run on `device` (preflight asks too, before anything is written)."""
    wanted = resolve_precision(precision, device)
    if wanted not in MIXED_PRECISION:
        return f"{section}.precision = {precision!r}; choose one of auto, {', '.join(MIXED_PRECISION)}"
    if wanted == "fp16" and device.type != "cuda":
        return f"{section}.precision = fp16 needs a CUDA GPU (this run is on {device.type}); use bf16 or fp32"
    return None


def make_accelerator(device: str = "auto", precision: str = "auto", section: str = "train"):
    """An `Accelerator` for one stage (or fold): the device (`run.device`; this process's GPU under
    torchrun / `accelerate launch` / `notebook_launcher`) and the precision (`<section>.precision`).
    Every call starts from a clean `AcceleratorState`: it is process-wide, and a second Accelerator
    with another precision is refused ("already initialized") — successive stages, folds and tests
    in one process each get their own. `PartialState` (the process group) is kept when distributed."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    chosen = resolve_device(device)
    wanted = resolve_precision(precision, chosen)
    problem = precision_problem(section, precision, chosen)
    if problem:
        raise RunError(problem)
    AcceleratorState._reset_state(reset_partial_state=not distributed.is_distributed())
    if chosen.type == "cuda" and chosen.index is not None and not distributed.is_distributed():
        torch.cuda.set_device(chosen)  # run.device = cuda:1
    return Accelerator(cpu=chosen.type == "cpu", mixed_precision=MIXED_PRECISION[wanted])


def precision_of(accelerator) -> str:
    return {"no": "fp32"}.get(accelerator.mixed_precision, accelerator.mixed_precision)


def start(*, seed: int, device: str, precision: str, section: str = "train"):
    """The first step of every training stage, before its model is built (a fresh head's
    initialisation draws from the seeded generator): seed, then the stage's Accelerator."""
    seed_everything(seed)
    return make_accelerator(device, precision, section)


def move(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


@dataclass
class Batches:
    """What `fit` trains on: a batch sampler over `rows` row indices (with `set_epoch`: a new order
    every epoch) and the collate function that turns a batch of indices into tensors."""

    sampler: object
    collate: Callable[[list[int]], dict]
    rows: int


@dataclass
class EpochStats:
    loss: float
    samples: int
    tokens: int  # real (non-pad) tokens
    seconds: float  # training steps only
    lr_factors: list[float] = field(default_factory=list)  # schedule multiplier after each optimizer step
    loss_curve: list[float] = field(default_factory=list)  # mean loss over each `log_every` window
    batches: int = 0  # batches done in this epoch (a checkpoint's position)
    window: list[float] = field(default_factory=lambda: [0.0, 0])  # loss sum and steps of the open log window

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.seconds if self.seconds else 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("loss", "samples", "tokens", "seconds", "lr_factors", "loss_curve", "batches", "window")}


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


class Training:
    """What one fit steps: the Accelerator, the bare `model` (to evaluate or save; DDP shares its
    parameters), `module` (model + loss, prepared: DDP under several processes), the prepared
    optimizer (its loss scaler for fp16) and the schedule."""

    def __init__(self, accelerator, model: torch.nn.Module, compute_loss, groups: list[dict], *, total_steps: int,
                 warmup_ratio: float, schedule: str = "linear", stlr_ratio: float = 32.0, max_grad_norm: float = 1.0,
                 section: str = "train"):
        self.accelerator, self.model, self.section, self.max_grad_norm = accelerator, model, section, max_grad_norm
        model.to(accelerator.device)  # before the optimizer: fused AdamW checks its parameters' device
        self.module, self.optimizer = accelerator.prepare(LossModule(model, compute_loss), make_optimizer(groups, accelerator.device))
        self.scheduler = make_scheduler(self.optimizer.optimizer, total_steps, warmup_ratio, schedule, stlr_ratio)
        self.precision = precision_of(accelerator)

    def step(self, batch: dict, window: int, last: bool) -> torch.Tensor:
        """One micro-batch of a `window`-batch accumulation window: forward and backward of
        loss / window (the window's true size); on its `last` batch, gradients all-reduced (DDP skips
        them before, `no_sync`), unscaled and clipped, then the optimizer and the schedule step."""
        accelerator = self.accelerator
        with contextlib.nullcontext() if last else accelerator.no_sync(self.module):
            with accelerator.autocast():
                loss = self.module(batch)
            accelerator.backward(loss / window)
        if last:
            accelerator.clip_grad_norm_(self.model.parameters(), self.max_grad_norm)
            self.optimizer.step()  # skipped by the fp16 scaler when the gradients overflowed
            self.optimizer.zero_grad(set_to_none=True)
            if not accelerator.optimizer_step_was_skipped:
                self.scheduler.step()
        return loss.detach()

    def resume_state(self) -> dict:
        """Optimizer, schedule, loss scaler and random-generator states, as tensors and plain
        numbers only: `torch.load(..., weights_only=True)` reads them back, no pickled objects."""
        scaler = self.accelerator.scaler
        return {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": scaler.state_dict() if scaler is not None else {},
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        }

    def load_resume_state(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if state["scaler"] and self.accelerator.scaler is not None:  # empty when saved without fp16
            self.accelerator.scaler.load_state_dict(state["scaler"])
        self.load_rng(state)

    @staticmethod
    def load_rng(state: dict) -> None:
        torch.set_rng_state(state["torch_rng"])
        if torch.cuda.is_available() and state["cuda_rng"]:
            for index, rng in enumerate(state["cuda_rng"][: torch.cuda.device_count()]):
                torch.cuda.set_rng_state(rng, index)


def non_finite_loss(value: float, where: str, precision: str, section: str, peak_lr: float) -> RunError:
    """The hint that fits: in fp16 the forward pass overflowed (the loss scaler only protects the
    gradients); in fp32/bf16, whose range is wide, the weights diverged — the learning rate."""
    if precision == "fp16":
        hint = f"fp16 overflowed: set {section}.precision=bf16 on a GPU that has it (A100, H100, L4), else fp32"
    else:
        hint = f"the learning rate is too high: lower {section}.lr / {section}.head_lr (largest now {peak_lr:g})"
    return RunError(f"{where}: the loss became {value}; training stopped. {hint}")



def train_epoch(training: Training, loader, *, grad_accum: int = 1, log_every: int = 20, desc: str = "train",
                progress: bool = True, stats: EpochStats | None = None, checkpoint: Callable[[EpochStats], None] | None = None,
                checkpoint_due: Callable[[], bool] = lambda: False) -> EpochStats:
    """One pass over `loader`. The loss is summed on the device and read back once per `log_every`
    steps (the only host sync): that is when a NaN/inf loss stops the run. A resumed epoch passes the
    `stats` saved at its checkpoint and a `loader` that skips the batches they count. After an
    optimizer step inside the epoch, `checkpoint(stats)` runs when `checkpoint_due()`."""
    training.module.train()
    stats = stats or EpochStats(0.0, 0, 0, 0.0)
    device, done = training.accelerator.device, stats.batches
    steps = done + len(loader)
    window_loss = torch.full((), stats.window[0], device=device)
    bar = ProgressBar(total=steps, initial=done, desc=desc, disable=not progress, leave=False, dynamic_ncols=True)
    began = time.perf_counter() - stats.seconds
    try:  # the bar is closed however the epoch ends (Ctrl-C, a non-finite loss): its line is cleared
        for step, batch in enumerate(loader, start=done):
            stats.samples += len(batch["input_ids"])
            stats.tokens += int(batch["attention_mask"].sum())  # counted on the CPU copy, before the transfer
            first = step - step % grad_accum  # this accumulation window's first batch
            last = step + 1 == min(first + grad_accum, steps)
            window_loss += training.step(move(batch, device), min(grad_accum, steps - first), last)
            stats.window[1] += 1
            stats.batches = step + 1
            if last:
                stats.lr_factors.append(training.scheduler.get_last_lr()[0] / training.scheduler.base_lrs[0])
            if (step + 1) % log_every == 0 or step + 1 == steps:
                # the one host sync per window; the mean over ranks, so every rank stops together
                window_mean = training.accelerator.reduce(window_loss, "mean").item() / stats.window[1]
                if not math.isfinite(window_mean):
                    raise non_finite_loss(window_mean, f"{desc}, step {step + 1}", training.precision, training.section,
                                          max(training.scheduler.base_lrs))
                stats.loss_curve.append(window_mean)
                window_loss.zero_()
                stats.window = [0.0, 0]
                elapsed = time.perf_counter() - began
                bar.set_postfix(loss=f"{window_mean:.4f}", lr=f"{max(training.scheduler.get_last_lr()):.2e}", sps=f"{stats.samples / elapsed:.0f}")
                bar.update((step + 1) - bar.n)
            if last and checkpoint is not None and step + 1 < steps and checkpoint_due():
                stats.seconds = time.perf_counter() - began
                stats.window[0] = float(window_loss)  # a host sync, only when a checkpoint is written
                checkpoint(stats)
    finally:
        bar.close()
    if device.type == "cuda":
        torch.cuda.synchronize(device)  # the clock must include the queued GPU work
    stats.seconds = time.perf_counter() - began
    stats.loss = float(sum(stats.loss_curve) / max(1, len(stats.loss_curve)))
    return stats


class SkipBatches(torch.utils.data.Sampler):
    """The batch sampler without its first `skip` batches: a resumed epoch goes on where its
    checkpoint stopped (the sampler draws the same order from its seed and epoch)."""

    def __init__(self, batch_sampler, skip: int):
        self.batch_sampler, self.skip = batch_sampler, skip

    def __len__(self) -> int:
        return max(0, len(self.batch_sampler) - self.skip)

    def __iter__(self):
        for i, batch in enumerate(self.batch_sampler):
            if i >= self.skip:
                yield batch


KILL_AFTER_CHECKPOINTS = "KAGGLEBERT_TEST_KILL_AFTER_CHECKPOINTS"  # tests only: SIGKILL this process after N checkpoints


class Checkpoints:
    """When to save inside an epoch: every `minutes` of training (wall clock) or every `steps`
    optimizer steps (tests: a deterministic point); `save(training, position)` writes the
    checkpoint. position = {"epoch": epochs done, "stats": the open epoch's stats, "collate_rng":
    the LM masks' generator state (None for the classifier)}."""

    def __init__(self, save: Callable[[Training, dict], None], minutes: float, steps: int, collate):
        self.save, self.seconds, self.steps, self.collate = save, minutes * 60, steps, collate
        self.last, self.count, self.written = time.monotonic(), 0, 0

    def due(self) -> bool:
        self.count += 1
        if self.steps > 0:
            return self.count % self.steps == 0
        return self.seconds > 0 and time.monotonic() - self.last >= self.seconds

    def __call__(self, training: Training, epoch: int, stats: EpochStats) -> None:
        generator = getattr(self.collate, "generator", None)
        self.save(training, {"epoch": epoch, "stats": stats.to_dict(), "collate_rng": None if generator is None else generator.get_state()})
        self.last, self.written = time.monotonic(), self.written + 1
        if self.written == int(os.environ.get(KILL_AFTER_CHECKPOINTS, "0")):
            os.kill(os.getpid(), signal.SIGKILL)  # a crash at a known point, for the resume tests


def checkpoint_minutes(setting: float, device: torch.device) -> float:
    """`<section>.checkpoint_minutes`: -1 (auto) = every 20 minutes on a GPU, never on a CPU."""
    return (20.0 if device.type == "cuda" else 0.0) if setting < 0 else setting


def fit(model: torch.nn.Module, compute_loss: Callable[[torch.nn.Module, dict], torch.Tensor], batches: Batches, cfg, *,
        accelerator, groups: list[dict], desc: str, progress: bool = True,
        on_epoch: Callable[[int, EpochStats, Training], None] = lambda epoch, stats, training: None,
        save: Callable[[Training, dict], None] | None = None, resume: dict | None = None) -> list[EpochStats]:
    """Train `model` on `batches` with its stage's settings `cfg` (TrainConfig or LMConfig: epochs,
    warm-up and schedule, grad_accum, max_grad_norm, log_every, checkpoint_minutes/_steps): AdamW over
    `groups`, on `accelerator`'s device and precision. After each epoch `on_epoch(epoch, stats,
    training)` runs (epoch counts from 1); inside an epoch `save(training, position)` writes a
    checkpoint when one is due. `resume` = a saved {"epoch", "stats" (None at an epoch's end),
    "state" (`Training.resume_state()`)}, the model's weights already restored by the caller.
    Returns the stats of the epochs (or the rest of the epoch) it ran."""
    section = "lm" if type(cfg).__name__ == "LMConfig" else "train"
    sampler = distributed.shard(batches.sampler)  # this rank's batches under several processes
    per_epoch = len(sampler)
    training = Training(accelerator, model, compute_loss, groups, total_steps=cfg.epochs * math.ceil(per_epoch / cfg.grad_accum),
                        warmup_ratio=cfg.warmup_ratio, schedule=getattr(cfg, "schedule", "linear"),
                        stlr_ratio=getattr(cfg, "stlr_ratio", 32.0), max_grad_norm=cfg.max_grad_norm, section=section)
    start_epoch, open_stats = 0, None
    if resume is not None:
        try:
            training.load_resume_state(resume["state"])
        except (KeyError, ValueError, RuntimeError) as err:  # saved by another version, for other parameters
            raise RunError(f"{desc}: the saved training state does not fit this model and optimizer ({str(err).splitlines()[0]})") from None
        start_epoch = resume["epoch"]
        open_stats = EpochStats(**resume["stats"]) if resume.get("stats") else None
    minutes = checkpoint_minutes(getattr(cfg, "checkpoint_minutes", 0.0), accelerator.device)
    checkpoints = Checkpoints(save, minutes, getattr(cfg, "checkpoint_steps", 0), batches.collate) if save is not None else None
    ran = []
    for epoch in range(start_epoch, cfg.epochs):
        batches.sampler.set_epoch(epoch)  # a new order every epoch
        collate = batches.collate
        if hasattr(collate, "set_epoch"):
            collate.set_epoch(epoch)  # a fresh LM mask every epoch (RoBERTa's dynamic masking)
        skip = open_stats.batches if open_stats is not None else 0
        if skip and resume.get("collate_rng") is not None:
            collate.generator.set_state(resume["collate_rng"])  # the mask draws of the batches already done
        loader = torch.utils.data.DataLoader(range(batches.rows), batch_sampler=SkipBatches(sampler, skip), collate_fn=collate,
                                             pin_memory=accelerator.device.type == "cuda")
        if skip:
            # a DataLoader draws its base seed from the torch generator when its iterator starts: the
            # checkpoint's generator state (saved after that draw) is restored after it
            loader = iter(loader)
            training.load_rng(resume["state"])
        stats = train_epoch(training, loader, grad_accum=cfg.grad_accum, log_every=cfg.log_every,
                            desc=f"{desc} epoch {epoch + 1}/{cfg.epochs}", progress=progress, stats=open_stats,
                            checkpoint=None if checkpoints is None else lambda stats, epoch=epoch: checkpoints(training, epoch, stats),
                            checkpoint_due=checkpoints.due if checkpoints is not None else lambda: False)
        open_stats = None
        ran.append(stats)
        on_epoch(epoch + 1, stats, training)
    return ran
