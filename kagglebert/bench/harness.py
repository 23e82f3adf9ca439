"""How a pass is measured: the clock's result record, padding counted per batch, peak memory above
the pass's start, and the round-robin race that times every contender on the same data.

A contender is a generator: building it and the first `next` warm it up; every further `next` runs
one timed pass over the shared timed set and yields its `Result`. `race` steps them round-robin, so
load from other processes on a shared machine falls on all of them alike.
"""
from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import asdict, dataclass, field, replace

import torch


@dataclass
class Result:
    contender: str
    task: str  # cls | lm
    batch_size: int
    steps: int
    seconds: float
    samples: int
    real_tokens: int
    padded_tokens: int
    peak_mib: float
    # CPU time the process spent in the pass (CPU runs only): unlike wall time it barely moves when
    # other processes share the cores, so its ratios stay comparable on a busy machine
    cpu_seconds: float | None = None
    pass_seconds: list[float] = field(default_factory=list)  # every timed pass; `seconds` is the fastest
    pass_cpu_seconds: list[float] = field(default_factory=list)  # every pass; `cpu_seconds` is the least
    ratio: float | None = None  # throughput / the Trainer baseline's (samples/s for cls, tokens/s for lm)
    cpu_ratio: float | None = None  # the same per CPU-second

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.seconds

    @property
    def tokens_per_s(self) -> float:
        return self.real_tokens / self.seconds

    @property
    def samples_per_cpu_s(self) -> float | None:
        return self.samples / self.cpu_seconds if self.cpu_seconds else None

    @property
    def tokens_per_cpu_s(self) -> float | None:
        return self.real_tokens / self.cpu_seconds if self.cpu_seconds else None

    @property
    def padding_fraction(self) -> float:
        return 1 - self.real_tokens / self.padded_tokens if self.padded_tokens else 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "samples_per_s": self.samples_per_s, "tokens_per_s": self.tokens_per_s,
                "samples_per_cpu_s": self.samples_per_cpu_s, "tokens_per_cpu_s": self.tokens_per_cpu_s,
                "padding_fraction": self.padding_fraction}


class PeakMemory:
    """Peak memory of one timed pass in MiB above its start: CUDA allocator peak, or sampled RSS growth on the CPU."""

    def __init__(self, device: torch.device):
        self.device = device
        self.peak_mib = 0.0

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)  # other contenders' models stay resident
            return self
        import psutil  # the CPU path only: a GPU run needs no psutil

        process = psutil.Process()
        self._base = process.memory_info().rss
        self._peak = self._base
        self._stop = threading.Event()

        def sample():
            while not self._stop.wait(0.02):
                self._peak = max(self._peak, process.memory_info().rss)

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            self.peak_mib = (torch.cuda.max_memory_allocated(self.device) - self._base) / 2**20
        else:
            self._stop.set()
            self._thread.join()
            self.peak_mib = (self._peak - self._base) / 2**20


class Tally:
    """Wraps a collator and records (rows, real tokens, padded tokens) of every batch it builds, in
    order, so the timed steps' padding can be read off even when a loader prefetches."""

    def __init__(self, collate):
        self.collate = collate
        self.batches: list[tuple[int, int, int]] = []

    def __call__(self, rows):
        batch = self.collate(rows)
        mask = batch["attention_mask"]
        self.batches.append((len(mask), int(mask.sum()), mask.numel()))
        return batch

    def window(self, start: int, stop: int) -> tuple[int, int, int]:
        part = self.batches[start:stop]
        return sum(b[0] for b in part), sum(b[1] for b in part), sum(b[2] for b in part)


def attention_backends(device: torch.device, exclude_cudnn: bool):
    """On CUDA, SDPA without the cuDNN backend: it plans afresh for every new sequence length."""
    if device.type != "cuda" or not exclude_cudnn:
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH])


def cpu_clock(device: torch.device) -> float | None:
    """This process's CPU time (all its threads), on a CPU run; None on CUDA, where the work is the GPU's."""
    return None if device.type == "cuda" else time.process_time()


def sync(device: torch.device) -> None:
    """Wait for queued GPU work, so a clock read after it includes that work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def race(contenders: list, repeats: int) -> list[Result]:
    """Warm every contender up, then `repeats` rounds of one timed pass each; per contender the
    fastest pass, with the largest peak memory, the least CPU time and every pass's seconds."""
    for contender in contenders:
        next(contender)
    passes: list[list[Result]] = [[] for _ in contenders]
    for _ in range(repeats):
        for contender, done in zip(contenders, passes):
            done.append(next(contender))
    results = []
    for contender, done in zip(contenders, passes):
        contender.close()
        best = min(done, key=lambda r: r.seconds)
        if any((r.samples, r.real_tokens) != (best.samples, best.real_tokens) for r in done):
            raise RuntimeError(f"{best.contender}: timed passes saw different data")
        cpu = [r.cpu_seconds for r in done if r.cpu_seconds is not None]
        results.append(replace(best, peak_mib=max(r.peak_mib for r in done), pass_seconds=[r.seconds for r in done],
                               cpu_seconds=min(cpu) if cpu else None, pass_cpu_seconds=cpu))
    return results


def with_ratios(results: list[Result], work) -> list[Result]:
    """Each result's `ratio` (and `cpu_ratio`): its `work(result)` (samples or real tokens) per
    second (per CPU-second) over the first result's, the Trainer baseline's."""
    first = results[0]
    for r in results:
        r.ratio = (work(r) / r.seconds) / (work(first) / first.seconds)
        if r.cpu_seconds and first.cpu_seconds:
            r.cpu_ratio = (work(r) / r.cpu_seconds) / (work(first) / first.cpu_seconds)
    return results
