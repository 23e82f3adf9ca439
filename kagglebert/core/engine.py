"""The training step and everything around it, shared by the LM and classifier stages: device and
precision choice, the optimizer with layer-wise learning-rate decay, schedules, the epoch loop
(`train_epoch`) and `fit`, which runs it for a stage — loader, optimizer, scheduler, loss scaler, DDP
wrap, epochs, a per-epoch callback (evaluate, keep the best epoch, save a resumable state) and
resumption from such a state. A stage says what data, what model, what loss, and what it writes;
this module says how a model is trained."""
from __future__ import annotations

import contextlib
import math
import random
import re
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from . import distributed
from .errors import RunError


class ProgressBar(tqdm):
    # what close() (run again by __del__) reads on a bar whose __init__ a Ctrl-C cut short: tqdm up
    # to 4.67 reads self.disable unguarded there and prints an AttributeError after the one-line message
    disable = True


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



def make_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler:
    # only fp16 needs loss scaling; for bf16/fp32 the scaler is a pass-through
    return torch.amp.GradScaler(device.type if device.type in ("cuda", "cpu") else "cpu", enabled=precision == "fp16")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def start(*, seed: int, device: str, precision: str) -> tuple[torch.device, str]:
    """The first step of every training stage, before its model is built (a fresh head's
    initialisation draws from the seeded generator): seed, device (this process's GPU under
    torchrun), precision."""
    seed_everything(seed)
    chosen = distributed.local_device(resolve_device(device))
    return chosen, resolve_precision(precision, chosen)


def move(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


@dataclass
class EpochStats:
    loss: float
    samples: int
    tokens: int  # real (non-pad) tokens
    seconds: float  # training steps only
    lr_factors: list[float] = field(default_factory=list)  # schedule multiplier after each optimizer step
    loss_curve: list[float] = field(default_factory=list)  # mean loss over each `log_every` window

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.seconds if self.seconds else 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


def non_finite_loss(value: float, where: str, precision: str, section: str, peak_lr: float) -> RunError:
    """The hint that fits: in fp16 the forward pass overflowed (the loss scaler only protects the
    gradients); in fp32/bf16, whose range is wide, the weights diverged — the learning rate."""
    if precision == "fp16":
        hint = f"fp16 overflowed: set {section}.precision=bf16 on a GPU that has it (A100, H100, L4), else fp32"
    else:
        hint = f"the learning rate is too high: lower {section}.lr / {section}.head_lr (largest now {peak_lr:g})"
    return RunError(f"{where}: the loss became {value}; training stopped. {hint}")


def train_epoch(
    *,
    model: torch.nn.Module,
    loader,
    compute_loss: Callable[[torch.nn.Module, dict], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    scheduler,
    scaler: torch.amp.GradScaler,
    device: torch.device,
    precision: str,
    grad_accum: int = 1,
    max_grad_norm: float = 1.0,
    log_every: int = 20,
    desc: str = "train",
    progress: bool = True,
    section: str = "train",  # the config section a non-finite-loss hint names (train | lm)
) -> EpochStats:
    """One pass over `loader`. The loss is summed on the device and read back once per `log_every`
    steps (the only host sync): that is when a NaN/inf loss stops the run."""
    model.train()
    window_loss = torch.zeros((), device=device)
    window_steps = 0
    samples = tokens = 0
    lr_factors: list[float] = []
    loss_curve: list[float] = []
    steps = len(loader)
    bar = ProgressBar(total=steps, desc=desc, disable=not progress, leave=False, dynamic_ncols=True)
    start_time = time.perf_counter()
    try:  # the bar is closed however the epoch ends (Ctrl-C, a non-finite loss): its line is cleared
        for step, batch in enumerate(loader):
            samples += len(batch["input_ids"])
            tokens += int(batch["attention_mask"].sum())  # counted on the CPU copy, before the transfer
            batch = move(batch, device)
            with autocast(device, precision):
                loss = compute_loss(model, batch)
            scaler.scale(loss / grad_accum).backward()
            window_loss += loss.detach()
            window_steps += 1
            if (step + 1) % grad_accum == 0 or step + 1 == steps:
                scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
                torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
                scaler.step(optimizer)  # skipped by the scaler if fp16 gradients overflowed
                scaler.update()
                optimizer.zero_grad(set_to_none=True)
                scheduler.step()
                lr_factors.append(scheduler.get_last_lr()[0] / scheduler.base_lrs[0])
            if (step + 1) % log_every == 0 or step + 1 == steps:
                # the one host sync per window; under DDP the mean over ranks, so every rank stops together
                window_mean = distributed.mean_over_ranks(window_loss).item() / window_steps
                if not math.isfinite(window_mean):
                    raise non_finite_loss(window_mean, f"{desc}, step {step + 1}", precision, section, max(scheduler.base_lrs))
                loss_curve.append(window_mean)
                window_loss.zero_()
                window_steps = 0
                elapsed = time.perf_counter() - start_time
                bar.set_postfix(loss=f"{window_mean:.4f}", lr=f"{max(scheduler.get_last_lr()):.2e}", sps=f"{samples / elapsed:.0f}")
                bar.update((step + 1) - bar.n)
    finally:
        bar.close()
    if device.type == "cuda":
        torch.cuda.synchronize(device)  # the clock must include the queued GPU work
    seconds = time.perf_counter() - start_time
    mean_loss = float(sum(loss_curve) / max(1, len(loss_curve)))
    return EpochStats(mean_loss, samples, tokens, seconds, lr_factors, loss_curve)


@dataclass
class Training:
    """What `fit` trains with, handed to its per-epoch callback: the bare `model` to evaluate or
    save (DDP shares its parameters), and the states a resumed run needs."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler

    def resume_state(self) -> dict:
        """Optimizer, schedule, loss scaler and random-generator states, as tensors and plain
        numbers only: `torch.load(..., weights_only=True)` reads them back, no pickled objects.
        The loops draw random numbers from torch alone (dropout); samplers and LM masks are
        reseeded every epoch, so these generators are all a resumed epoch needs."""
        return {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        }

    def load_resume_state(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if state["scaler"]:  # empty when saved without fp16
            self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["torch_rng"])
        if torch.cuda.is_available() and state["cuda_rng"]:
            for index, rng in enumerate(state["cuda_rng"][: torch.cuda.device_count()]):
                torch.cuda.set_rng_state(rng, index)


def fit(
    *,
    model: torch.nn.Module,
    compute_loss: Callable[[torch.nn.Module, dict], torch.Tensor],
    param_groups: list[dict],
    batch_sampler,
    collate: Callable[[list[int]], dict],
    rows: int,
    epochs: int,
    device: torch.device,
    precision: str,
    warmup_ratio: float,
    schedule: str = "linear",
    stlr_ratio: float = 32.0,
    grad_accum: int = 1,
    max_grad_norm: float = 1.0,
    log_every: int = 20,
    section: str,
    desc: str,
    progress: bool = True,
    on_epoch: Callable[[int, EpochStats, Training], None] = lambda epoch, stats, training: None,
    start_epoch: int = 0,
    resume_state: dict | None = None,
) -> list[EpochStats]:
    """Train `model` (already on `device`) for `epochs` passes over `rows` rows, batched by
    `batch_sampler` (sharded across ranks under torchrun) and `collate`; AdamW over `param_groups`
    with the `schedule`, a loss scaler for fp16, DDP when distributed. After each epoch
    `on_epoch(epoch, stats, training)` runs (epoch counts from 1). A resumed fit starts at
    `start_epoch` with the model's weights already restored by the caller and `resume_state`
    (`Training.resume_state()` saved after that epoch) restored here. Returns the stats of the
    epochs it ran."""
    loader = torch.utils.data.DataLoader(range(rows), batch_sampler=distributed.shard(batch_sampler), collate_fn=collate,
                                         pin_memory=device.type == "cuda")
    optimizer = make_optimizer(param_groups, device)
    scheduler = make_scheduler(optimizer, epochs * math.ceil(len(loader) / grad_accum), warmup_ratio, schedule, stlr_ratio)
    training = Training(model, optimizer, scheduler, make_scaler(device, precision))
    if resume_state is not None:
        try:
            training.load_resume_state(resume_state)
        except (KeyError, ValueError, RuntimeError) as err:  # saved by another version, for other parameters
            raise RunError(f"{desc}: the saved training state does not fit this model and optimizer ({str(err).splitlines()[0]})") from None
    train_module, train_loss = distributed.wrap(model, compute_loss, device)  # DDP under torchrun, else as is
    ran = []
    for epoch in range(start_epoch, epochs):
        batch_sampler.set_epoch(epoch)  # a new order every epoch
        if hasattr(collate, "set_epoch"):
            collate.set_epoch(epoch)  # a fresh LM mask every epoch (RoBERTa's dynamic masking)
        stats = train_epoch(model=train_module, loader=loader, compute_loss=train_loss, optimizer=optimizer,
                            scheduler=scheduler, scaler=training.scaler, device=device, precision=precision,
                            grad_accum=grad_accum, max_grad_norm=max_grad_norm, log_every=log_every,
                            desc=f"{desc} epoch {epoch + 1}/{epochs}", progress=progress, section=section)
        ran.append(stats)
        on_epoch(epoch + 1, stats, training)
    return ran
