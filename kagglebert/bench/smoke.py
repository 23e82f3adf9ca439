"""`python -m kagglebert.bench --gpu-smoke` (`make gpu-smoke`): the checks for the day a GPU is lent,
in under 5 minutes on one GPU, as one table.

- classifier training steps through the engine's own step (`engine.Training.step`: accelerate's
  autocast and loss scaler, clipping, fused AdamW) in fp32, fp16 and bf16, from the same weights on
  the same batches; then `modeling.predict` of the same rows: the fp16/bf16 predictions must stay
  within PREDICTION_TOLERANCE of fp32's;
- a 2-process run (DDP through accelerate, `ShardedBatchSampler`): nccl over 2 GPUs when the machine
  has them, else gloo on the CPU, said in the row; both ranks must end with the same weights;
- masked-LM steps (`masked_lm_loss`, the LM stage's loss and step) in the device's precision;
- `modeling.predict` (sorted no-grad inference) over a few batches.

Every row: step time, samples/s, peak memory (CUDA allocator peak; RSS growth on a CPU), whether
every loss was finite. What the machine lacks is skipped with a line saying so. Models are
BERT-base shapes built from a config (nothing downloaded) on a GPU, a tiny BERT on a CPU (`--tiny`,
the tests' dry run): no figure from the tiny size is a measurement."""
from __future__ import annotations

import json
import math
import os
import socket
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..core import distributed
from ..core.batching import LengthBucketBatchSampler, MaskingCollator, PadCollator, pack_blocks
from ..core.engine import Training, make_accelerator, move, param_groups, precision_of, resolve_precision, train_epoch
from ..core.modeling import Classifier, masked_lm_loss, predict
from ..core.paths import resolve_model
from ..core.tasks import bce_loss
from ..core.tokenization import load_tokenizer, quiet_transformers
from .harness import PeakMemory, sync
from .profiles import N_LABELS
from .workload import synthetic_tokens

SIZES = {  # model shape, sequence length, batch, untimed and timed steps
    "gpu": dict(hidden=768, layers=12, heads=12, intermediate=3072, max_length=128, batch=32, warmup=3, timed=10),
    "tiny": dict(hidden=32, layers=2, heads=2, intermediate=64, max_length=32, batch=8, warmup=1, timed=2),
}
PREDICTION_TOLERANCE = 0.02  # max |p − p_fp32| over all rows and labels, after the same steps from the same weights
LR = 1e-4


@dataclass
class Row:
    check: str
    status: str  # ok | FAILED | skipped
    step_ms: float | None = None
    samples_per_s: float | None = None
    peak_mib: float | None = None
    loss_finite: bool | None = None
    max_diff: float | None = None  # predictions vs fp32
    note: str = ""


def bert(size: dict, vocab_size: int, pad_id: int, masked_lm: bool = False):
    from transformers import BertConfig, BertForMaskedLM, BertModel

    config = BertConfig(vocab_size=vocab_size, hidden_size=size["hidden"], num_hidden_layers=size["layers"],
                        num_attention_heads=size["heads"], intermediate_size=size["intermediate"], max_position_embeddings=512,
                        pad_token_id=pad_id, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    torch.manual_seed(0)
    return BertForMaskedLM(config) if masked_lm else BertModel(config, add_pooling_layer=False)


def classifier_loss(model, batch):
    return bce_loss(model(batch["input_ids"], batch["attention_mask"]), batch["labels"])


def timed_steps(training: Training, batches: list[dict], size: dict, device: torch.device) -> tuple[float, bool, float]:
    """(seconds per step over the timed steps, every loss finite, peak MiB) of `training.step` on `batches`."""
    training.module.train()
    losses = []
    with PeakMemory(device) as memory:
        for batch in batches[: size["warmup"]]:
            losses.append(training.step(move(batch, device), 1, True))
        sync(device)
        began = time.perf_counter()
        for batch in batches[size["warmup"]:]:
            losses.append(training.step(move(batch, device), 1, True))
        sync(device)
        seconds = (time.perf_counter() - began) / max(1, len(batches) - size["warmup"])
    finite = bool(torch.isfinite(torch.stack(losses).float()).all())  # one host sync, after the clock
    return seconds, finite, memory.peak_mib


def skip_reason(precision: str, device: torch.device) -> str | None:
    if precision == "fp16" and device.type != "cuda":
        return "fp16 needs a CUDA GPU"
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return f"this GPU has no bf16 ({torch.cuda.get_device_name(device)})"
    return None


def precision_rows(size: dict, device: torch.device, tokenizer, tokens, labels) -> list[Row]:
    collate = PadCollator(tokens, tokenizer.pad_token_id, labels, pad_multiple=8)
    n_steps = size["warmup"] + size["timed"]
    batches = [collate(list(range(i * size["batch"], (i + 1) * size["batch"]))) for i in range(n_steps)]
    eval_tokens = tokens.subset(np.arange(n_steps * size["batch"], len(tokens)))
    start = Classifier(bert(size, len(tokenizer), tokenizer.pad_token_id), N_LABELS, "mean", 0.0).state_dict()
    rows, reference = [], None
    for precision in ("fp32", "fp16", "bf16"):
        reason = skip_reason(precision, device)
        if reason:
            rows.append(Row(f"classifier {precision}", "skipped", note=reason))
            continue
        model = Classifier(bert(size, len(tokenizer), tokenizer.pad_token_id), N_LABELS, "mean", 0.0)
        model.load_state_dict(start)
        training = Training(make_accelerator(str(device), precision), model, classifier_loss,
                            param_groups(model, model.encoder, LR, LR, 1.0, 0.01), total_steps=n_steps, warmup_ratio=0.0,
                            schedule="constant")
        seconds, finite, peak = timed_steps(training, batches, size, device)
        predictions = predict(model, eval_tokens, tokenizer.pad_token_id, size["batch"], device, precision)
        row = Row(f"classifier {precision}", "ok", seconds * 1000, size["batch"] / seconds, peak, finite)
        if precision == "fp32":
            reference = predictions
        else:
            row.max_diff = float(np.abs(predictions - reference).max())
            if row.max_diff > PREDICTION_TOLERANCE:
                row.status, row.note = "FAILED", f"predictions differ from fp32 by more than {PREDICTION_TOLERANCE}"
        if not finite:
            row.status, row.note = "FAILED", "a loss was not finite"
        rows.append(row)
        del training, model
    return rows


def lm_row(size: dict, device: torch.device, tokenizer, tokens) -> Row:
    precision = resolve_precision("auto", device)
    blocks = pack_blocks(tokens, size["max_length"], tokenizer.cls_token_id, tokenizer.sep_token_id)
    collate = MaskingCollator(blocks, tokenizer, 0.15, seed=0)
    n_steps = size["warmup"] + size["timed"]
    batches = [collate(list(np.arange(i * size["batch"], (i + 1) * size["batch"]) % len(blocks))) for i in range(n_steps)]
    model = bert(size, len(tokenizer), tokenizer.pad_token_id, masked_lm=True)
    training = Training(make_accelerator(str(device), precision, "lm"), model, masked_lm_loss,
                        param_groups(model, model.bert, LR, LR, 1.0, 0.01), total_steps=n_steps, warmup_ratio=0.0, schedule="constant")
    seconds, finite, peak = timed_steps(training, batches, size, device)
    return Row(f"masked-LM {precision}", "ok" if finite else "FAILED", seconds * 1000, size["batch"] / seconds, peak, finite,
               note="" if finite else "a loss was not finite")


def predict_row(size: dict, device: torch.device, tokenizer, tokens) -> Row:
    precision = resolve_precision("auto", device)
    model = Classifier(bert(size, len(tokenizer), tokenizer.pad_token_id), N_LABELS, "mean", 0.0).to(device)
    predict(model, tokens.subset(np.arange(size["batch"])), tokenizer.pad_token_id, size["batch"], device, precision)  # warm-up
    with PeakMemory(device) as memory:
        sync(device)
        began = time.perf_counter()
        predictions = predict(model, tokens, tokenizer.pad_token_id, size["batch"], device, precision)
        seconds = time.perf_counter() - began
    finite = bool(np.isfinite(predictions).all())
    batches = math.ceil(len(tokens) / size["batch"])
    return Row(f"predict {precision}", "ok" if finite else "FAILED", seconds / batches * 1000, len(tokens) / seconds, memory.peak_mib,
               finite, note="" if finite else "a prediction was not finite")


# ---- 2 processes ----------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def two_process_worker(rank: int, port: int, size_name: str, use_cuda: bool, out: str) -> None:
    os.environ.update(WORLD_SIZE="2", RANK=str(rank), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    if not use_cuda:
        torch.set_num_threads(1)
    quiet_transformers()
    distributed.init_from_env()
    try:
        size = SIZES[size_name]
        tokenizer = load_tokenizer(resolve_model("packaged-minilm"))
        n_rows = 2 * size["batch"] * (size["warmup"] + size["timed"])
        tokens = synthetic_tokens(n_rows, size["max_length"], len(tokenizer), tokenizer.cls_token_id, tokenizer.sep_token_id, seed=0)
        labels = (np.random.default_rng(1).random((n_rows, N_LABELS)) < 0.1).astype(np.float32)
        accelerator = make_accelerator("cuda" if use_cuda else "cpu", "auto")
        model = Classifier(bert(size, len(tokenizer), tokenizer.pad_token_id), N_LABELS, "mean", 0.0)
        training = Training(accelerator, model, classifier_loss, param_groups(model, model.encoder, LR, LR, 1.0, 0.01),
                            total_steps=size["warmup"] + size["timed"], warmup_ratio=0.0, schedule="constant")
        sampler = distributed.shard(LengthBucketBatchSampler(tokens.lengths, size["batch"], seed=0))
        loader = torch.utils.data.DataLoader(range(n_rows), batch_sampler=sampler,
                                             collate_fn=PadCollator(tokens, tokenizer.pad_token_id, labels))
        with PeakMemory(accelerator.device) as memory:
            stats = train_epoch(training, loader, log_every=10**9, progress=False)
        checksum = float(sum(p.detach().double().sum() for p in model.parameters()))
        Path(f"{out}.{rank}").write_text(json.dumps({
            "checksum": checksum, "seconds": stats.seconds, "steps": len(loader), "samples": stats.samples,
            "finite": math.isfinite(stats.loss), "peak_mib": memory.peak_mib, "precision": precision_of(accelerator)}))
    finally:
        torch.distributed.destroy_process_group()


def two_process_row(size_name: str, device: torch.device) -> Row:
    import torch.multiprocessing as mp

    use_cuda = device.type == "cuda" and torch.cuda.device_count() >= 2
    where = "2 GPUs, nccl" if use_cuda else (f"on the CPU, gloo: this machine has {torch.cuda.device_count()} GPU(s)"
                                            if device.type == "cuda" else "on the CPU, gloo")
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "rank")
        mp.spawn(two_process_worker, args=(free_port(), size_name, use_cuda, out), nprocs=2, join=True)
        ranks = [json.loads(Path(f"{out}.{r}").read_text()) for r in range(2)]
    first = ranks[0]
    same = ranks[0]["checksum"] == ranks[1]["checksum"]
    finite = all(r["finite"] for r in ranks)
    status = "ok" if same and finite else "FAILED"
    note = where if status == "ok" else ("the ranks ended with different weights" if not same else "a loss was not finite")
    seconds = first["seconds"] / max(1, first["steps"])
    return Row(f"2 processes {first['precision']}", status, seconds * 1000, 2 * first["samples"] / first["seconds"],
               max(r["peak_mib"] for r in ranks), finite, note=note)


# ---- the whole smoke -----------------------------------------------------------------------------
def run(device: torch.device, size_name: str) -> list[Row]:
    quiet_transformers()
    size = SIZES[size_name]
    tokenizer = load_tokenizer(resolve_model("packaged-minilm"))
    n_rows = size["batch"] * (size["warmup"] + size["timed"] + 4)  # the training batches, then 4 batches to predict
    tokens = synthetic_tokens(n_rows, size["max_length"], len(tokenizer), tokenizer.cls_token_id, tokenizer.sep_token_id, seed=0)
    labels = (np.random.default_rng(1).random((n_rows, N_LABELS)) < 0.1).astype(np.float32)
    rows = precision_rows(size, device, tokenizer, tokens, labels)
    rows.append(two_process_row(size_name, device))
    rows.append(lm_row(size, device, tokenizer, tokens))
    rows.append(predict_row(size, device, tokenizer, tokens))
    return rows


def table(rows: list[Row], device: torch.device, size_name: str) -> str:
    def cell(value, fmt: str, width: int) -> str:
        text = "-" if value is None else ("yes" if value is True else "NO" if value is False else format(value, fmt))
        return text.rjust(width)

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({os.cpu_count()} cores)"
    lines = [f"GPU smoke on {name}, {size_name} model (predictions within {PREDICTION_TOLERANCE} of fp32's)",
             f"{'check':<20} {'status':<8} {'step ms':>9} {'samples/s':>10} {'peak MiB':>9} {'finite':>6} {'max Δp':>8}  note"]
    for r in rows:
        lines.append(f"{r.check:<20} {r.status:<8} {cell(r.step_ms, '.1f', 9)} {cell(r.samples_per_s, '.1f', 10)} "
                     f"{cell(r.peak_mib, '.0f', 9)} {cell(r.loss_finite, '', 6)} {cell(r.max_diff, '.4f', 8)}  {r.note}".rstrip())
    for r in rows:
        if r.status == "skipped":
            lines.append(f"{r.check}: skipped, {r.note}")
    return "\n".join(lines)


def report(rows: list[Row]) -> dict:
    return {"tolerance": PREDICTION_TOLERANCE, "rows": [asdict(r) for r in rows], "ok": all(r.status != "FAILED" for r in rows)}
