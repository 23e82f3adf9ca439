"""The device cell: which accelerator(s), precision and memory a run will use, a few timed warm-up
steps and each stage's projected duration for the chosen profile, a warning when all the data is
about to train on a CPU — and training on every GPU of the machine from the notebook.

    from kagglebert.notebook import environment
    environment.device_report(cfg)            # in a notebook cell
    python -m kagglebert.notebook.environment --probe CONFIG.toml   # the measuring child (JSON)

The measuring runs in a child process. A notebook that initialises CUDA cannot fork workers any
more, and `accelerate.notebook_launcher` forks one process per GPU, so the kernel itself never
touches a GPU before `launch` (torch.cuda.is_available/device_count do not initialise it).

`launch` runs a stage on every GPU through `accelerate.notebook_launcher`: with more than one
process it starts them through torch's elastic launcher (the one behind torchrun), which sets
WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR and MASTER_PORT in each worker — the variables
`core.distributed.init_from_env` reads — so the stages run data-parallel exactly as under
`torchrun --nproc_per_node N`.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..core import config as config_mod
from ..core.config import Config, fold_count
from ..core.errors import KagglebertError

log = logging.getLogger("kagglebert")

WARMUP_STEPS = 1  # the first step pays for kernel selection, allocation and caches: not timed
TIMED_STEPS = 2  # enough for a projection in minutes; a CPU step of a real model takes seconds
SAMPLE_TEXTS = 512  # comments tokenized to estimate lengths and tokenizer speed


def typical_rows(lengths, n: int) -> list[int]:
    """The `n` comments closest to the mean length. Training and prediction batch comments of
    similar length (length-bucketed), so a batch costs about what one of mean-length comments costs;
    the first `n` comments padded to their longest would cost the longest's, 3-5x too slow a projection."""
    lengths = np.asarray(lengths, dtype=float)
    closest = np.argsort(np.abs(lengths - lengths.mean()), kind="stable")[: min(n, len(lengths))]
    return sorted(int(i) for i in closest)


def fork_safe_cuda_checks() -> None:
    """Make torch's "is there a GPU?" checks in this process go through NVML. The default check
    (cudaGetDeviceCount) initialises the CUDA driver, and a process that has done so cannot fork
    workers that use CUDA — which is what `launch` does. torch documents this switch for exactly
    that case; it only changes how availability is detected."""
    os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")


def gpu_count() -> int:
    """CUDA devices visible, without initialising CUDA in this process (NVML-based count)."""
    import torch

    fork_safe_cuda_checks()
    return torch.cuda.device_count()


# --- the measuring child -----------------------------------------------------------------------

def _memory(device) -> dict:
    import torch

    if device.type == "cuda":
        free, total = torch.cuda.mem_get_info(device)
        return {"name": torch.cuda.get_device_name(device), "memory_gb": total / 2**30, "free_gb": free / 2**30}
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")  # system memory, which MPS shares
    name = "Apple MPS (unified memory)" if device.type == "mps" else f"CPU ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"
    available = _available_memory()
    return {"name": name, "memory_gb": total / 2**30, "free_gb": None if available is None else available / 2**30}


def _available_memory() -> int | None:
    """Bytes of system memory available to a new process now (Linux's MemAvailable: free memory
    plus reclaimable caches); None where /proc/meminfo does not say (macOS, Windows)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    return None


def _timed(step, device) -> float:
    """Seconds per call of `step` after WARMUP_STEPS untimed calls."""
    import torch

    for _ in range(WARMUP_STEPS):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(TIMED_STEPS):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / TIMED_STEPS


def measure(cfg: Config) -> dict:
    """Device, precision, memory; rows and token lengths of the data; seconds per training step,
    per masked-LM step and per prediction batch, timed on the profile's model with real comments."""
    import numpy as np
    import torch

    from ..core.batching import PadCollator, pack_blocks, MaskingCollator
    from ..core.data import load_competition
    from ..core.engine import Training, autocast, make_accelerator, param_groups, resolve_device, resolve_precision
    from ..core.modeling import build_classifier, load_masked_lm, masked_lm_loss
    from ..core.paths import resolve_model
    from ..core.tasks import get_task
    from ..core.tokenization import load_tokenizer, tokenize

    device = resolve_device(cfg.run.device)
    out = {"device": str(device), "gpus": gpu_count(), "precision": resolve_precision(cfg.train.precision, device),
           "lm_precision": resolve_precision(cfg.lm.precision, device), **_memory(device)}
    task = get_task(cfg.run.task)
    data = load_competition(task, cfg.data.dir, cfg.data.max_rows, cfg.data.fold_seed, cfg.data.require_competition,
                            max_test_rows=cfg.data.max_test_rows)
    out.update(train_rows=len(data.train), test_rows=len(data.test), data_dir=str(data.dir))
    model_path = resolve_model(cfg.model.name)
    tokenizer = load_tokenizer(model_path)
    texts = data.train_texts[:SAMPLE_TEXTS]
    started = time.perf_counter()
    whole = tokenize(tokenizer, texts)  # untruncated: the LM corpus
    out["tokenize_texts_per_s"] = len(texts) / max(time.perf_counter() - started, 1e-9)
    out["mean_tokens"] = float(whole.lengths.mean()) if len(texts) else 0.0
    cut = tokenize(tokenizer, texts, cfg.model.max_length, cfg.model.truncation, cfg.model.head_tokens)

    tc = cfg.train
    rows = typical_rows(cut.lengths, tc.batch_size)
    batch = {k: v.to(device) for k, v in PadCollator(cut, tokenizer.pad_token_id, data.labels[: len(texts)], tc.pad_multiple)(rows).items()}
    model = build_classifier(model_path, len(task.label_columns), cfg.model.pooling, cfg.model.dropout).to(device)
    # the training step itself (engine.Training.step: accelerate's autocast and loss scaler, clipping,
    # fused AdamW, the schedule), at a tiny lr: timing only, nothing is kept
    training = Training(make_accelerator(cfg.run.device, tc.precision, "train"), model,
                        lambda m, b: task.loss(m(b["input_ids"], b["attention_mask"]), b["labels"]),
                        param_groups(model, model.encoder, 1e-7, 1e-7, 1.0, 0.0), total_steps=1, warmup_ratio=0.0, schedule="constant")
    training.module.train()
    out["train_step_s"] = _timed(lambda: training.step(batch, 1, True), device)
    out["train_batch"] = len(rows)
    eval_rows = typical_rows(cut.lengths, tc.eval_batch_size)
    eval_batch = {k: v.to(device) for k, v in PadCollator(cut, tokenizer.pad_token_id, pad_multiple=tc.pad_multiple)(eval_rows).items()}

    @torch.no_grad()
    def predict_step():
        with autocast(device, out["precision"]):
            model(eval_batch["input_ids"], eval_batch["attention_mask"])

    model.eval()
    out["predict_batch_s"] = _timed(predict_step, device)
    out["predict_batch"] = len(eval_rows)
    if cfg.lm.epochs > 0:
        blocks = pack_blocks(whole, cfg.lm.block_size, tokenizer.cls_token_id, tokenizer.sep_token_id)
        if len(blocks):
            lm_model, _ = load_masked_lm(model_path)
            lm_model.to(device)
            collate = MaskingCollator(blocks, tokenizer, cfg.lm.mlm_probability, seed=0)
            lm_batch = {k: v.to(device) for k, v in collate(list(np.arange(min(cfg.lm.batch_size, len(blocks))))).items()}
            lm_training = Training(make_accelerator(cfg.run.device, cfg.lm.precision, "lm"), lm_model, masked_lm_loss,
                                   param_groups(lm_model, getattr(lm_model, lm_model.base_model_prefix), 1e-7, 1e-7, 1.0, 0.0),
                                   total_steps=1, warmup_ratio=0.0, schedule="constant")
            lm_training.module.train()
            out["lm_step_s"] = _timed(lambda: lm_training.step(lm_batch, 1, True), device)
            out["lm_batch"] = len(lm_batch["input_ids"])
    return out


def _probe_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m kagglebert.notebook.environment")
    parser.add_argument("--probe", type=Path, required=True, help="a resolved config (TOML) to measure")
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)  # stdout carries the JSON alone
    try:
        print(json.dumps(measure(config_mod.load(args.probe))))
    except KagglebertError as err:
        print(json.dumps({"error": str(err)}))
    return 0


# --- the report --------------------------------------------------------------------------------

@dataclass
class DeviceReport:
    device: pd.DataFrame  # item → value
    stages: pd.DataFrame  # stage → projected minutes and what it assumes
    warnings: list[str] = field(default_factory=list)
    measured: dict = field(default_factory=dict)

    def _repr_html_(self) -> str:
        notes = "".join(f"<p><b>warning:</b> {w}</p>" for w in self.warnings)
        return self.device._repr_html_() + self.stages._repr_html_() + notes

    def __repr__(self) -> str:
        notes = "".join(f"\nwarning: {w}" for w in self.warnings)
        return f"{self.device.to_string()}\n\n{self.stages.to_string()}{notes}"


def probe(cfg: Config, timeout: float = 900) -> dict:
    """`measure(cfg)` in a child process (this kernel stays free of CUDA); {"error": ...} when it fails."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "config.toml"
        path.write_text(config_mod.dumps(cfg))  # a temporary file only the child reads: not an output
        done = subprocess.run([sys.executable, "-m", "kagglebert.notebook.environment", "--probe", str(path)],
                              capture_output=True, text=True, timeout=timeout)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"the measuring process failed: {last}"}
    return json.loads(lines[-1])


def project(measured: dict, cfg: Config, world_size: int = 1) -> pd.DataFrame:
    """Minutes per stage for cfg, from the measured step times. Training and prediction divide
    over `world_size` data-parallel processes; the timed batches hold comments of about the mean
    length, as length-bucketed batches do on average."""
    train_rows, test_rows = measured["train_rows"], measured["test_rows"]
    k, epochs = fold_count(cfg), cfg.train.epochs
    predict_rate = measured["predict_batch"] / measured["predict_batch_s"]  # comments/s
    train_rate = measured["train_batch"] / measured["train_step_s"]
    # per arm: K folds × epochs over (K-1)/K of the rows, validation after every epoch, the test set once per fold
    # (one split, data.valid_frac = f: one model × epochs over 1 - f of the rows, validation on f)
    train_share, valid_share = ((1 - cfg.data.valid_frac), cfg.data.valid_frac) if cfg.data.valid_frac > 0 else ((k - 1) / k, 1.0)
    arm = (k * epochs * train_rows * train_share / train_rate
           + (epochs * train_rows * valid_share + k * test_rows) / predict_rate) / world_size
    folds_text = f"one split (valid_frac {cfg.data.valid_frac:g})" if cfg.data.valid_frac > 0 else f"{k} folds"
    rows = {
        "EDA (read, tokenize)": ((train_rows + test_rows) / measured["tokenize_texts_per_s"], "one process"),
        "classifier, one arm (FiT or ITPT-FiT)": (arm, f"{folds_text} × {epochs} epochs, {train_rate:.0f} training comments/s measured"),
    }
    if "lm_step_s" in measured:
        corpus = (train_rows + (test_rows if cfg.lm.include_test else 0)) * measured["mean_tokens"]
        steps = cfg.lm.epochs * corpus / (cfg.lm.block_size - 2) / measured["lm_batch"]
        rows["masked-LM stage"] = (steps * measured["lm_step_s"] / world_size,
                                   f"{cfg.lm.epochs} epoch(s), ~{corpus / 1e6:.1f}M tokens, {measured['lm_step_s']:.2f} s/step measured")
    rows["frozen-features baseline"] = ((train_rows + test_rows) / predict_rate, "one forward pass over every comment")
    table = pd.DataFrame({"minutes": {k: round(v[0] / 60, 1) for k, v in rows.items()},
                          "assumes": {k: v[1] for k, v in rows.items()}})
    table.index.name = "stage"
    return table


def device_report(cfg: Config, measured: dict | None = None) -> DeviceReport:
    """What the device cell shows: device(s), precision, memory, measured speed, projected stage
    durations, and warnings (all the data on a CPU; a measuring failure)."""
    measured = probe(cfg) if measured is None else measured
    if "error" in measured:
        table = pd.DataFrame({"value": {"device": "unknown", "gpus visible": gpu_count()}})
        return DeviceReport(table, pd.DataFrame(), [f"could not time the model: {measured['error']}"], measured)
    world = max(1, measured["gpus"]) if measured["device"].startswith("cuda") else 1
    device = pd.DataFrame({"value": {
        "device": measured["device"] + (f" × {measured['gpus']} (data-parallel: one process per GPU)" if world > 1 else ""),
        "accelerator": measured["name"],
        "memory (GiB)": round(measured["memory_gb"], 1),
        "free now (GiB)": ("not known here (no /proc/meminfo on this system)" if measured["free_gb"] is None
                           else round(measured["free_gb"], 1)),
        "classifier precision": measured["precision"],
        "masked-LM precision": measured["lm_precision"],
        "data": f"{measured['train_rows']:,} train / {measured['test_rows']:,} test rows from {measured['data_dir']}",
        "mean word pieces per comment": round(measured["mean_tokens"], 1),
        "training step (s)": round(measured["train_step_s"], 3),
    }})
    stages = project(measured, cfg, world)
    warnings = []
    full_data = cfg.data.max_rows == 0
    if full_data and measured["device"] == "cpu":
        hours = stages["minutes"].sum() / 60
        warnings.append(f"all {measured['train_rows']:,} training rows would train on a CPU (about {hours:.0f} h projected): "
                        "switch the notebook to a GPU (Kaggle: Settings → Accelerator; Colab: Runtime → Change runtime type) "
                        "or use PROFILE = \"quick\"")
    for text in warnings:
        log.warning("warning: %s", text)
    return DeviceReport(device, stages, warnings, measured)


# --- every GPU from the notebook -----------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stage_in_worker(stage, cfg: Config) -> None:
    """One worker of `launch`: join the process group the launcher describes, run the stage, leave."""
    import torch
    import torch.distributed as dist

    from ..core import distributed

    # One CPU thread per worker, as torchrun sets OMP_NUM_THREADS=1. It is also what keeps a forked
    # worker alive: once the notebook's process has run a parallel CPU op, GNU OpenMP's thread pool
    # does not survive fork, and the worker's first parallel op (DDP's parameter broadcast) waits forever.
    torch.set_num_threads(1)
    distributed.init_from_env()
    try:
        stage(cfg)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def launch(stage, cfg: Config, num_processes: int | None = None):
    """Run `stage(cfg)` (e.g. `lm.main`, `pipeline.fit`) data-parallel on every GPU through
    `accelerate.notebook_launcher`, then return `stage(cfg)` from this process — which reuses the
    finished outputs the workers wrote. One GPU or none: the stage runs here directly."""
    processes = gpu_count() if num_processes is None else num_processes
    if processes <= 1:
        return stage(cfg)
    from accelerate import notebook_launcher

    log.info("launching %s on %d processes (accelerate.notebook_launcher)", getattr(stage, "__qualname__", stage), processes)
    notebook_launcher(_stage_in_worker, args=(stage, cfg), num_processes=processes, use_port=str(free_port()))
    return stage(cfg)


if __name__ == "__main__":
    sys.exit(_probe_main(sys.argv[1:]))
