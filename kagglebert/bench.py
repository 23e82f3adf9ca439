"""Throughput benchmark: kagglebert's training loops against transformers' `Trainer`, in one process,
on the same token ids, model shapes, batch size and max length, each contender run for the same
number of timed steps after the same number of warm-up steps.

    python -m kagglebert.bench --quick --json bench-quick.json      # tiny BERT, CPU, < 2 minutes
    python -m kagglebert.bench --gpu --json bench-gpu.json          # BERT-base shapes, bf16/fp16
    python -m kagglebert.bench --gpu --tiny                         # the GPU profile end to end, tiny sizes

Contenders (classifier: 6 sigmoid labels, BCE): kagglebert's `engine.train_epoch` with
`LengthBucketBatchSampler` + `PadCollator` + `modeling.Classifier`; `Trainer` padded to max length
(the tutorial way); `Trainer` with `DataCollatorWithPadding` and group-by-length sampling. Masked LM
on packed blocks: kagglebert's `MaskingCollator` + `pack_blocks` + `masked_lm_loss` through
`train_epoch`; `Trainer` with `BertForMaskedLM` + `DataCollatorForLanguageModeling` (run_mlm.py's
default). Also: `tokenization.tokenize` cold vs cached, and sorted no-grad inference (`modeling.predict`).

Peak memory: `torch.cuda.max_memory_allocated` on CUDA; on the CPU the peak resident set size
(RSS, sampled every 20 ms by a thread via psutil) above the RSS when the contender started.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import json
import logging
import os
import platform
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from .batching import LengthBucketBatchSampler, MaskingCollator, PadCollator, pack_blocks
from .engine import make_optimizer, make_scaler, make_scheduler, param_groups, resolve_precision, train_epoch
from .modeling import Classifier, masked_lm_loss, predict, quiet_transformers
from .paths import BUNDLED_SAMPLE, resolve_model
from .tasks import JIGSAW_TOXIC_2018, bce_loss
from .tokenization import TokenizedTexts, load_tokenizer, tokenize

log = logging.getLogger("kagglebert")


@dataclass(frozen=True)
class Profile:
    name: str
    hidden: int
    layers: int
    heads: int
    intermediate: int
    max_length: int
    batch_sizes: tuple[int, ...]
    warmup_steps: int
    timed_steps: int
    precision: str  # fp32 | auto (bf16 where supported, else fp16)
    synthetic: bool  # synthetic token ids with the competition's length distribution
    tokenize_rows: int  # bundled train rows for the tokenization timing
    pool_batches: int = 200  # rows = this many batches, so length grouping (ours and Trainer's, 50-batch
    # mega-batches) works on the pools it would see in a real epoch; only the timed steps are run
    lr: float = 5e-5


QUICK = Profile("quick", hidden=128, layers=2, heads=4, intermediate=512, max_length=256, batch_sizes=(32,),
                warmup_steps=2, timed_steps=8, precision="fp32", synthetic=False, tokenize_rows=6400)
GPU = Profile("gpu", hidden=768, layers=12, heads=12, intermediate=3072, max_length=256, batch_sizes=(32, 128),
              warmup_steps=20, timed_steps=120, precision="auto", synthetic=True, tokenize_rows=12000)
# the GPU profile's code path at a size a CPU runs in about a minute (a dry run, not a measurement)
TINY = dict(hidden=64, layers=2, heads=2, intermediate=128, batch_sizes=(8, 16), warmup_steps=1, timed_steps=3, tokenize_rows=1000, pool_batches=8)

N_LABELS = len(JIGSAW_TOXIC_2018.label_columns)


# ---------------------------------------------------------------- measurement helpers


class PeakMemory:
    """Peak memory of one contender in MiB: CUDA allocator peak, or sampled RSS growth on the CPU."""

    def __init__(self, device: torch.device):
        self.device = device
        self.peak_mib = 0.0

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)
            return self
        import psutil

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
            self.peak_mib = torch.cuda.max_memory_allocated(self.device) / 2**20
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


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


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
    ratio: float | None = None  # throughput / the Trainer baseline's (samples/s for cls, tokens/s for lm)

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.seconds

    @property
    def tokens_per_s(self) -> float:
        return self.real_tokens / self.seconds

    @property
    def padding_fraction(self) -> float:
        return 1 - self.real_tokens / self.padded_tokens if self.padded_tokens else 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "samples_per_s": self.samples_per_s, "tokens_per_s": self.tokens_per_s,
                "padding_fraction": self.padding_fraction}


# ---------------------------------------------------------------- data and models


def bert_config(profile: Profile, vocab_size: int, pad_id: int, **extra):
    from transformers import BertConfig

    return BertConfig(vocab_size=vocab_size, hidden_size=profile.hidden, num_hidden_layers=profile.layers,
                      num_attention_heads=profile.heads, intermediate_size=profile.intermediate,
                      max_position_embeddings=512, pad_token_id=pad_id, **extra)


def bundled_texts(n_rows: int) -> tuple[list[str], np.ndarray]:
    import pandas as pd

    frame = pd.read_csv(BUNDLED_SAMPLE / "train.csv", dtype=str, keep_default_na=False, nrows=n_rows)
    labels = frame[JIGSAW_TOXIC_2018.label_columns].astype(np.float32).to_numpy()
    return frame[JIGSAW_TOXIC_2018.text_column].tolist(), labels


def synthetic_tokens(n_rows: int, max_length: int, vocab_size: int, cls_id: int, sep_id: int, seed: int) -> TokenizedTexts:
    """Word-piece counts log-normal like the 2018 comments (median 48, mean 92: sigma² = 2 ln(92/48)),
    cut at `max_length` with [CLS] … [SEP]; ids drawn from the ordinary part of the vocabulary."""
    rng = np.random.default_rng(seed)
    full = np.maximum(1, np.round(rng.lognormal(np.log(48), np.sqrt(2 * np.log(92 / 48)), n_rows))).astype(np.int64)
    kept = np.minimum(full, max_length - 2)
    pieces = [np.concatenate([[cls_id], rng.integers(1000, vocab_size, k), [sep_id]]).astype(np.int32) for k in kept]
    offsets = np.concatenate([[0], np.cumsum([len(p) for p in pieces])]).astype(np.int64)
    return TokenizedTexts(np.concatenate(pieces), offsets, full)


def loader_over(batches: list[list[int]], collate, device: torch.device):
    return torch.utils.data.DataLoader(range(max(map(max, batches)) + 1), batch_sampler=batches, collate_fn=collate,
                                       pin_memory=device.type == "cuda")


# ---------------------------------------------------------------- kagglebert contenders


def run_own(name: str, task: str, model, batches, collate, compute_loss, profile: Profile, device, precision: str,
            exclude_cudnn: bool) -> Result:
    """`engine.train_epoch` over the warm-up batches, then over the timed ones (timed alone)."""
    encoder = model.encoder if isinstance(model, Classifier) else model
    optimizer = make_optimizer(param_groups(model, encoder, profile.lr, profile.lr, 1.0, 0.01), device)
    total = profile.warmup_steps + profile.timed_steps
    scheduler = make_scheduler(optimizer, total, 0.0)
    scaler = make_scaler(device, precision)
    tally = Tally(collate)
    warm, timed = batches[: profile.warmup_steps], batches[profile.warmup_steps : total]
    with attention_backends(device, exclude_cudnn), PeakMemory(device) as memory:
        args = (compute_loss, optimizer, scheduler, scaler, device, precision)
        train_epoch(model, loader_over(warm, tally, device), *args, log_every=10**9, progress=False)
        sync(device)
        tally.batches.clear()
        stats = train_epoch(model, loader_over(timed, tally, device), *args, log_every=10**9, progress=False)
    samples, real, padded = tally.window(0, len(timed))
    return Result(name, task, len(batches[0]), len(timed), stats.seconds, samples, real, padded, memory.peak_mib)


def classifier_loss(model, batch):
    return bce_loss(model(batch["input_ids"], batch["attention_mask"]), batch["labels"])


# ---------------------------------------------------------------- Trainer contenders


def run_trainer(name: str, task: str, model, dataset: list[dict], collate, profile: Profile, batch_size: int, device,
                precision: str, sampling: str = "random") -> Result:
    from transformers import PrinterCallback, Trainer, TrainerCallback, TrainingArguments

    total = profile.warmup_steps + profile.timed_steps
    clock: dict[str, float] = {}

    class StepClock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step in (profile.warmup_steps, total):
                sync(device)
                clock[state.global_step] = time.perf_counter()

    tally = Tally(collate)
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out, per_device_train_batch_size=batch_size, max_steps=total, learning_rate=profile.lr,
            weight_decay=0.01, warmup_steps=0, lr_scheduler_type="linear", max_grad_norm=1.0,
            bf16=precision == "bf16", fp16=precision == "fp16", use_cpu=device.type == "cpu",
            logging_strategy="no", save_strategy="no", eval_strategy="no", report_to="none", disable_tqdm=True,
            train_sampling_strategy=sampling, dataloader_pin_memory=device.type == "cuda", seed=0,
        )
        trainer = Trainer(model=model, args=args, train_dataset=dataset, data_collator=tally, callbacks=[StepClock()])
        trainer.remove_callback(PrinterCallback)  # its end-of-training dict would interleave with the table
        with PeakMemory(device) as memory:
            trainer.train()
    samples, real, padded = tally.window(profile.warmup_steps, total)
    return Result(name, task, batch_size, profile.timed_steps, clock[total] - clock[profile.warmup_steps],
                  samples, real, padded, memory.peak_mib)


# ---------------------------------------------------------------- the benchmark


def classifier_rows(tokens: TokenizedTexts, labels: np.ndarray, tokenizer, profile: Profile, batch_size: int,
                    device, precision: str) -> tuple[list[Result], Classifier]:
    from transformers import BertForSequenceClassification, BertModel, DataCollatorWithPadding

    n_rows = batch_size * max(profile.pool_batches, profile.warmup_steps + profile.timed_steps)
    rows = np.arange(n_rows) % len(tokens)  # cycles when the profile has fewer rows than steps × batch
    tokens, labels = tokens.subset(rows), labels[rows]
    config = bert_config(profile, len(tokenizer), tokenizer.pad_token_id)
    results = []

    def own(name: str, pad_multiple: int, exclude_cudnn: bool):
        torch.manual_seed(0)
        model = Classifier(BertModel(config, add_pooling_layer=False), N_LABELS).to(device)
        sampler = LengthBucketBatchSampler(tokens.lengths, batch_size, bucket_size=100, seed=0)
        collate = PadCollator(tokens, tokenizer.pad_token_id, labels, pad_multiple)
        results.append(run_own(name, "cls", model, list(sampler), collate, classifier_loss, profile, device, precision, exclude_cudnn))
        return model

    dataset = [{"input_ids": tokens[i].tolist(), "labels": labels[i].tolist()} for i in range(len(tokens))]
    cls_config = copy.deepcopy(config)
    cls_config.num_labels = N_LABELS
    cls_config.problem_type = "multi_label_classification"  # BCE with logits over the 6 labels, like kagglebert
    for name, collate, sampling in (
        ("Trainer, padded to max length", DataCollatorWithPadding(tokenizer, padding="max_length", max_length=profile.max_length), "random"),
        ("Trainer, dynamic padding + group by length", DataCollatorWithPadding(tokenizer), "group_by_length"),
    ):
        torch.manual_seed(0)
        model = BertForSequenceClassification(cls_config)
        results.append(run_trainer(name, "cls", model, dataset, collate, profile, batch_size, device, precision, sampling))
        del model
    own("kagglebert, buckets, exact lengths", 1, False)
    model = own("kagglebert, buckets, lengths to a multiple of 8", 8, False)
    if device.type == "cuda":
        model = own("kagglebert, buckets, multiple of 8, no cuDNN attention", 8, True)
    baseline = results[0].samples_per_s
    for r in results:
        r.ratio = r.samples_per_s / baseline
    return results, model


def lm_rows(tokens: TokenizedTexts, tokenizer, profile: Profile, batch_size: int, device, precision: str) -> list[Result]:
    from transformers import BertForMaskedLM, DataCollatorForLanguageModeling

    corpus = TokenizedTexts(tokens.flat, tokens.offsets, tokens.full_lengths)
    blocks = pack_blocks(corpus, profile.max_length, tokenizer.cls_token_id, tokenizer.sep_token_id)
    needed = batch_size * (profile.warmup_steps + profile.timed_steps)
    blocks = np.resize(blocks, (max(needed, len(blocks)), blocks.shape[1]))  # repeats blocks when the corpus is short
    config = bert_config(profile, len(tokenizer), tokenizer.pad_token_id)
    results = []

    torch.manual_seed(0)
    dataset = [{"input_ids": block.tolist()} for block in blocks]
    hf_collate = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15)
    results.append(run_trainer("Trainer, packed blocks (run_mlm.py)", "lm", BertForMaskedLM(config), dataset, hf_collate,
                               profile, batch_size, device, precision))
    for name, exclude_cudnn in (("kagglebert, packed, loss at masked positions only", False),
                                ("kagglebert, packed, masked positions, no cuDNN attention", True)):
        if exclude_cudnn and device.type != "cuda":
            continue
        torch.manual_seed(0)
        model = BertForMaskedLM(config).to(device)
        collate = MaskingCollator(blocks, tokenizer, 0.15, seed=0)
        batches = list(LengthBucketBatchSampler(np.zeros(len(blocks)), batch_size, bucket_size=1, seed=0))
        results.append(run_own(name, "lm", model, batches, collate, masked_lm_loss, profile, device, precision, exclude_cudnn))
    baseline = results[0].tokens_per_s
    for r in results:
        r.ratio = r.tokens_per_s / baseline
    return results


def tokenization_timing(tokenizer, texts: list[str], max_length: int) -> dict:
    """`tokenize` of the same texts: first call (tokenizes and writes the cache) vs cached (best of 3)."""
    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        tokenize(tokenizer, texts, max_length, "head", cache_dir=Path(cache))
        cold = time.perf_counter() - start
        cached = []
        for _ in range(3):
            start = time.perf_counter()
            tokenize(tokenizer, texts, max_length, "head", cache_dir=Path(cache))
            cached.append(time.perf_counter() - start)
    return {"texts": len(texts), "cold_s": cold, "cached_s": min(cached), "tokenize_cache_speedup": cold / min(cached)}


def inference_timing(model: Classifier, tokens: TokenizedTexts, pad_id: int, batch_size: int, device, precision: str) -> dict:
    predict(model, tokens.subset(np.arange(min(len(tokens), batch_size))), pad_id, batch_size, device, precision)  # warm-up
    sync(device)
    start = time.perf_counter()
    predict(model, tokens, pad_id, batch_size, device, precision)
    seconds = time.perf_counter() - start
    return {"comments": len(tokens), "batch_size": batch_size, "seconds": seconds, "comments_per_s": len(tokens) / seconds}


def run(profile: Profile, device: torch.device) -> dict:
    quiet_transformers()
    precision = resolve_precision(profile.precision, device)  # auto: bf16/fp16 on CUDA, fp32 on a CPU dry run
    tokenizer = load_tokenizer(resolve_model("packaged-minilm"))
    texts, labels = bundled_texts(profile.tokenize_rows)
    most_rows = max(profile.batch_sizes) * max(profile.pool_batches, profile.warmup_steps + profile.timed_steps)
    if profile.synthetic:
        tokens = synthetic_tokens(most_rows, profile.max_length, len(tokenizer), tokenizer.cls_token_id, tokenizer.sep_token_id, seed=0)
        labels = (np.random.default_rng(1).random((most_rows, N_LABELS)) < 0.1).astype(np.float32)
        lm_tokens = TokenizedTexts(tokens.flat, tokens.offsets, tokens.full_lengths)
    else:
        tokens = tokenize(tokenizer, texts[:most_rows], profile.max_length, "head")
        labels = labels[:most_rows]
        lm_tokens = tokenize(tokenizer, texts[:most_rows])  # whole comments, no special tokens: the LM corpus
    report = {"profile": asdict(profile), "device": describe(device), "precision": precision, "date": time.strftime("%Y-%m-%d"),
              "peak_memory": "torch.cuda.max_memory_allocated" if device.type == "cuda" else "sampled RSS growth above the start (psutil, every 20 ms)",
              "median_length": float(np.median(tokens.lengths)), "mean_length": float(tokens.lengths.mean()), "results": []}
    model = None
    for batch_size in profile.batch_sizes:
        cls, model = classifier_rows(tokens, labels, tokenizer, profile, batch_size, device, precision)
        report["results"] += [r.to_dict() for r in cls]
        report.setdefault("cls_ratio_by_batch", {})[batch_size] = best_own(cls).ratio
        lm = lm_rows(lm_tokens, tokenizer, profile, batch_size, device, precision)
        report["results"] += [r.to_dict() for r in lm]
        report.setdefault("lm_ratio_by_batch", {})[batch_size] = best_own(lm).ratio
    first = profile.batch_sizes[0]
    report["cls_ratio_vs_trainer_padded"] = report["cls_ratio_by_batch"][first]
    report["lm_ratio_vs_trainer_packed"] = report["lm_ratio_by_batch"][first]
    report["tokenization"] = tokenization_timing(tokenizer, texts, profile.max_length)
    report["tokenize_cache_speedup"] = report["tokenization"]["tokenize_cache_speedup"]
    report["inference"] = inference_timing(model, tokens, tokenizer.pad_token_id, 128, device, precision)
    return report


def best_own(results: list[Result]) -> Result:
    """The default kagglebert setting (multiple of 8, and no cuDNN attention on CUDA): the last row."""
    return [r for r in results if r.contender.startswith("kagglebert")][-1]


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}"
    return f"CPU ({os.cpu_count()} cores, {platform.processor() or platform.machine()}), torch {torch.__version__}"


def table(report: dict) -> str:
    lines = [f"{report['device']} · {report['precision']} · profile {report['profile']['name']} · "
             f"{report['profile']['warmup_steps']} warm-up + {report['profile']['timed_steps']} timed steps · "
             f"peak memory: {report['peak_memory']}",
             "| contender | task | batch | samples/s | real tokens/s | padding | peak MiB | × Trainer |",
             "|---|---|---|---|---|---|---|---|"]
    for r in report["results"]:
        lines.append(f"| {r['contender']} | {r['task']} | {r['batch_size']} | {r['samples_per_s']:,.1f} | {r['tokens_per_s']:,.0f} | "
                     f"{r['padding_fraction']:.0%} | {r['peak_mib']:,.0f} | {r['ratio']:.2f} |")
    t, i = report["tokenization"], report["inference"]
    lines.append(f"tokenize {t['texts']} texts: cold {t['cold_s']:.2f} s, cached {t['cached_s'] * 1000:.0f} ms → {t['tokenize_cache_speedup']:.0f}×")
    lines.append(f"inference (modeling.predict, sorted, no grad, batch {i['batch_size']}): {i['comments_per_s']:,.0f} comments/s")
    lines.append(f"cls_ratio_vs_trainer_padded {report['cls_ratio_vs_trainer_padded']:.2f} · "
                 f"lm_ratio_vs_trainer_packed {report['lm_ratio_vs_trainer_packed']:.2f} · "
                 f"tokenize_cache_speedup {report['tokenize_cache_speedup']:.0f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m kagglebert.bench", description=__doc__.split("\n\n")[0])
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument("--quick", action="store_true", help="tiny BERT, bundled rows, fp32 (default)")
    kind.add_argument("--gpu", action="store_true", help="BERT-base shapes, synthetic competition lengths, bf16/fp16, batch 32 and 128")
    parser.add_argument("--tiny", action="store_true", help="shrink the model and steps (a dry run of the profile's code path)")
    parser.add_argument("--device", default="", help="default: cuda for --gpu when available, else cpu")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    profile = GPU if args.gpu else QUICK
    if args.tiny:
        profile = replace(profile, name=profile.name + "-tiny", **TINY)
    device = torch.device(args.device or ("cuda" if args.gpu and torch.cuda.is_available() else "cpu"))
    report = run(profile, device)
    print(table(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
