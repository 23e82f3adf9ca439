"""Throughput benchmark: kagglebert's training loops against transformers' `Trainer`, in one process,
on the same token ids, model shapes, batch size and max length.

    python -m kagglebert.bench --quick --json bench-quick.json      # tiny BERT, CPU, < 2 minutes
    python -m kagglebert.bench --gpu --json bench-gpu.json          # BERT-base shapes, bf16/fp16
    python -m kagglebert.bench --gpu --tiny                         # the GPU profile end to end, tiny sizes

Fair by construction: every classifier contender warms up on the same separate rows, then makes one
full pass over one shared timed row set (each orders and batches those rows its own way — random,
length-grouped, bucketed — which is what is being compared), at the same batch size; every
masked-LM contender does the same over one shared set of packed blocks. So samples, real tokens
and the work per sample are identical across contenders, and throughput ratios compare like with
like (an 8-step window drawn from a larger pool did not: each contender's window had a different
mix of lengths).

Contenders (classifier: 6 sigmoid labels, BCE): kagglebert's `engine.train_epoch` with
`LengthBucketBatchSampler` + `PadCollator` + `modeling.Classifier`; `Trainer` padded to max length
(the tutorial way); `Trainer` with `DataCollatorWithPadding` and group-by-length sampling. Masked LM
on packed blocks: kagglebert's `MaskingCollator` + `pack_blocks` + `masked_lm_loss` through
`train_epoch`; `Trainer` with `BertForMaskedLM` + `DataCollatorForLanguageModeling` (run_mlm.py's
default). All use a constant learning rate (the schedule costs nothing and the warm-up pass must
not leave the timed pass at lr 0). Also: `tokenization.tokenize` cold vs cached, and sorted no-grad
inference (`modeling.predict`) over the timed rows.

Timing: every contender is warmed up first, then `repeats` rounds of one timed pass each, taken
round-robin across contenders (so load from other processes falls on all alike); the fastest pass
is reported, every pass's seconds are in the JSON. Peak memory, per timed pass (the largest over
the passes), above what was allocated when the pass started (model, optimizer state): on CUDA
`torch.cuda.max_memory_allocated` minus `memory_allocated` at the start; on the CPU the peak
resident set size (RSS, sampled every 20 ms by a thread via psutil) minus the RSS at the start.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import itertools
import json
import logging
import os
import platform
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from ..core.batching import LengthBucketBatchSampler, MaskingCollator, PadCollator, pack_blocks
from ..core.engine import make_optimizer, make_scaler, make_scheduler, param_groups, resolve_precision, train_epoch
from ..core.modeling import Classifier, masked_lm_loss, predict, quiet_transformers
from ..core.paths import BUNDLED_SAMPLE, resolve_model
from ..core.tasks import JIGSAW_TOXIC_2018, bce_loss
from ..core.tokenization import TokenizedTexts, load_tokenizer, tokenize

log = logging.getLogger("kagglebert")


@dataclass(frozen=True)
class Profile:
    name: str
    hidden: int
    layers: int
    heads: int
    intermediate: int
    max_length: int  # one for all contenders: the padded Trainer's width, the cut, the LM block size
    batch_sizes: tuple[int, ...]
    warmup_batches: int  # on rows (blocks) of their own, never timed
    timed_batches: int  # classifier: the shared timed row set is this many batches' worth of rows
    lm_timed_batches: int  # masked LM: the shared timed block set, in batches
    precision: str  # fp32 | auto (bf16 where supported, else fp16)
    synthetic: bool  # synthetic token ids with the competition's length distribution
    tokenize_rows: int  # bundled train rows for the tokenization timing
    repeats: int = 2  # timed passes per contender, round-robin across contenders; the fastest is reported
    lr: float = 5e-5


# max length 256 like the --gpu profile and GUIDE §3's "padded to 256" tutorial baseline (the
# comments' long tail is what padding to max length pays for); a few hundred bundled rows
QUICK = Profile("quick", hidden=128, layers=2, heads=4, intermediate=512, max_length=256, batch_sizes=(32,),
                warmup_batches=2, timed_batches=8, lm_timed_batches=3, precision="fp32", synthetic=False,
                tokenize_rows=6400)
GPU = Profile("gpu", hidden=768, layers=12, heads=12, intermediate=3072, max_length=256, batch_sizes=(32, 128),
              warmup_batches=20, timed_batches=120, lm_timed_batches=120, precision="auto", synthetic=True,
              tokenize_rows=12000)
# the GPU profile's code path at a size a CPU runs in about a minute (a dry run, not a measurement)
TINY = dict(hidden=64, layers=2, heads=2, intermediate=128, batch_sizes=(8, 16), warmup_batches=1, timed_batches=3,
            lm_timed_batches=3, tokenize_rows=1000, repeats=1)

N_LABELS = len(JIGSAW_TOXIC_2018.label_columns)


# ---------------------------------------------------------------- measurement helpers


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
    pass_seconds: list[float] = field(default_factory=list)  # every timed pass; `seconds` is the fastest
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


def chunks(rows: np.ndarray, size: int) -> list[list[int]]:
    return [rows[i : i + size].tolist() for i in range(0, len(rows), size)]


# ---------------------------------------------------------------- contenders
#
# Each contender is a generator: building it and the first `next` warm it up; every further `next`
# runs one timed pass over the shared timed set and yields its Result. `race` steps them
# round-robin, so load from other processes on a shared machine falls on all of them alike.


def own_contender(name: str, task: str, model, warm_batches, warm_collate, timed_batches, timed_collate, compute_loss,
                  profile: Profile, batch_size: int, device, precision: str, exclude_cudnn: bool):
    """`engine.train_epoch` over the warm-up batches, then one `train_epoch` over the timed set per pass."""
    encoder = model.encoder if isinstance(model, Classifier) else model
    optimizer = make_optimizer(param_groups(model, encoder, profile.lr, profile.lr, 1.0, 0.01), device)
    scheduler = make_scheduler(optimizer, 1, 0.0, kind="constant")
    scaler = make_scaler(device, precision)
    args = (compute_loss, optimizer, scheduler, scaler, device, precision)
    with attention_backends(device, exclude_cudnn):
        train_epoch(model, loader_over(warm_batches, warm_collate, device), *args, log_every=10**9, progress=False)
        sync(device)
    yield None
    for epoch in itertools.count(1):
        if hasattr(timed_collate, "set_epoch"):
            timed_collate.set_epoch(epoch)  # a fresh mask each pass, like the Trainer's collator
        tally = Tally(timed_collate)
        with attention_backends(device, exclude_cudnn), PeakMemory(device) as memory:
            stats = train_epoch(model, loader_over(timed_batches, tally, device), *args, log_every=10**9, progress=False)
        yield Result(name, task, batch_size, len(tally.batches), stats.seconds, *tally.window(0, len(tally.batches)),
                     memory.peak_mib)


def trainer_contender(name: str, task: str, model, warm: list[dict], timed: list[dict], collate, profile: Profile,
                      batch_size: int, device, precision: str, sampling: str = "random"):
    """`trainer.train()` for the warm-up steps on the warm-up rows, then per pass `train()` again for
    one epoch over the timed rows (same Trainer: its optimizer, already stepped, is reused), clocked
    from `on_epoch_begin` to `on_epoch_end`."""
    from transformers import PrinterCallback, Trainer, TrainerCallback, TrainingArguments

    clock: dict[str, float] = {}

    class EpochClock(TrainerCallback):
        def on_epoch_begin(self, args, state, control, **kwargs):
            sync(device)
            clock["begin"] = time.perf_counter()

        def on_epoch_end(self, args, state, control, **kwargs):
            sync(device)
            clock["end"] = time.perf_counter()

    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out, per_device_train_batch_size=batch_size, max_steps=profile.warmup_batches,
            learning_rate=profile.lr, weight_decay=0.01, warmup_steps=0, lr_scheduler_type="constant",
            max_grad_norm=1.0, bf16=precision == "bf16", fp16=precision == "fp16", use_cpu=device.type == "cpu",
            logging_strategy="no", save_strategy="no", eval_strategy="no", report_to="none", disable_tqdm=True,
            train_sampling_strategy=sampling, dataloader_pin_memory=device.type == "cuda", seed=0,
        )
        trainer = Trainer(model=model, args=args, train_dataset=warm, data_collator=collate, callbacks=[EpochClock()])
        trainer.remove_callback(PrinterCallback)  # its end-of-training dict would interleave with the table
        trainer.train()
        yield None
        trainer.train_dataset = timed
        trainer.args.max_steps = -1
        trainer.args.num_train_epochs = 1
        while True:
            tally = Tally(collate)
            trainer.data_collator = tally
            with PeakMemory(device) as memory:
                trainer.train()
            yield Result(name, task, batch_size, len(tally.batches), clock["end"] - clock["begin"],
                         *tally.window(0, len(tally.batches)), memory.peak_mib)


def race(contenders: list, repeats: int) -> list[Result]:
    """Warm every contender up, then `repeats` rounds of one timed pass each; per contender the
    fastest pass, with the largest peak memory and every pass's seconds."""
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
        results.append(replace(best, peak_mib=max(r.peak_mib for r in done), pass_seconds=[r.seconds for r in done]))
    return results


def classifier_loss(model, batch):
    return bce_loss(model(batch["input_ids"], batch["attention_mask"]), batch["labels"])


# ---------------------------------------------------------------- the benchmark


def classifier_rows(tokens: TokenizedTexts, labels: np.ndarray, tokenizer, profile: Profile, batch_size: int,
                    device, precision: str) -> tuple[list[Result], Classifier, TokenizedTexts]:
    """Rows [0, warm) warm every contender up; rows [warm, warm + timed) are the one timed set."""
    from transformers import BertForSequenceClassification, BertModel, DataCollatorWithPadding

    n_warm, n_timed = batch_size * profile.warmup_batches, batch_size * profile.timed_batches
    rows = np.arange(n_warm + n_timed) % len(tokens)  # cycles only when the profile has too few rows
    warm_rows, timed_rows = rows[:n_warm], rows[n_warm:]
    warm_tokens, timed_tokens = tokens.subset(warm_rows), tokens.subset(timed_rows)
    warm_labels, timed_labels = labels[warm_rows], labels[timed_rows]
    config = bert_config(profile, len(tokenizer), tokenizer.pad_token_id)
    models = []

    def own(name: str, pad_multiple: int, exclude_cudnn: bool):
        torch.manual_seed(0)
        model = Classifier(BertModel(config, add_pooling_layer=False), N_LABELS).to(device)
        models.append(model)
        warm = list(LengthBucketBatchSampler(warm_tokens.lengths, batch_size, bucket_size=100, seed=0))
        timed = list(LengthBucketBatchSampler(timed_tokens.lengths, batch_size, bucket_size=100, seed=0))
        return own_contender(name, "cls", model,
                             warm, PadCollator(warm_tokens, tokenizer.pad_token_id, warm_labels, pad_multiple),
                             timed, PadCollator(timed_tokens, tokenizer.pad_token_id, timed_labels, pad_multiple),
                             classifier_loss, profile, batch_size, device, precision, exclude_cudnn)

    def as_dataset(subset: TokenizedTexts, subset_labels: np.ndarray) -> list[dict]:
        return [{"input_ids": subset[i].tolist(), "labels": subset_labels[i].tolist()} for i in range(len(subset))]

    warm_set, timed_set = as_dataset(warm_tokens, warm_labels), as_dataset(timed_tokens, timed_labels)
    cls_config = copy.deepcopy(config)
    cls_config.num_labels = N_LABELS
    cls_config.problem_type = "multi_label_classification"  # BCE with logits over the 6 labels, like kagglebert
    contenders = []
    for name, collate, sampling in (
        ("Trainer, padded to max length", DataCollatorWithPadding(tokenizer, padding="max_length", max_length=profile.max_length), "random"),
        ("Trainer, dynamic padding + group by length", DataCollatorWithPadding(tokenizer), "group_by_length"),
    ):
        torch.manual_seed(0)
        contenders.append(trainer_contender(name, "cls", BertForSequenceClassification(cls_config), warm_set, timed_set,
                                            collate, profile, batch_size, device, precision, sampling))
    if device.type == "cuda":  # exact lengths vs rounding to a multiple of 8 is a GPU kernel-shape question
        contenders.append(own("kagglebert, buckets, exact lengths", 1, False))
    contenders.append(own("kagglebert, buckets, lengths to a multiple of 8", 8, False))
    if device.type == "cuda":
        contenders.append(own("kagglebert, buckets, multiple of 8, no cuDNN attention", 8, True))
    results = race(contenders, profile.repeats)
    baseline = results[0].samples_per_s
    for r in results:
        r.ratio = r.samples_per_s / baseline
    return results, models[-1], timed_tokens


def lm_rows(blocks: np.ndarray, tokenizer, profile: Profile, batch_size: int, device, precision: str) -> list[Result]:
    """Blocks [0, warm) warm every contender up; blocks [warm, warm + timed) are the one timed set."""
    from transformers import BertForMaskedLM, DataCollatorForLanguageModeling

    n_warm, n_timed = batch_size * profile.warmup_batches, batch_size * profile.lm_timed_batches
    blocks = np.resize(blocks, (n_warm + n_timed, blocks.shape[1]))  # repeats blocks only when the corpus is short
    warm_blocks, timed_blocks = blocks[:n_warm], blocks[n_warm:]
    config = bert_config(profile, len(tokenizer), tokenizer.pad_token_id)
    torch.manual_seed(0)
    hf_collate = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15)
    contenders = [trainer_contender("Trainer, packed blocks (run_mlm.py)", "lm", BertForMaskedLM(config),
                                    [{"input_ids": b.tolist()} for b in warm_blocks],
                                    [{"input_ids": b.tolist()} for b in timed_blocks],
                                    hf_collate, profile, batch_size, device, precision)]
    for name, exclude_cudnn in (("kagglebert, packed, loss at masked positions only", False),
                                ("kagglebert, packed, masked positions, no cuDNN attention", True)):
        if exclude_cudnn and device.type != "cuda":
            continue
        torch.manual_seed(0)
        model = BertForMaskedLM(config).to(device)
        order = np.random.default_rng(0).permutation  # shuffled like the Trainer's random sampler
        contenders.append(own_contender(
            name, "lm", model,
            chunks(order(n_warm), batch_size), MaskingCollator(warm_blocks, tokenizer, 0.15, seed=0),
            chunks(order(n_timed), batch_size), MaskingCollator(timed_blocks, tokenizer, 0.15, seed=1),
            masked_lm_loss, profile, batch_size, device, precision, exclude_cudnn))
    results = race(contenders, profile.repeats)
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


def lm_blocks(profile: Profile, tokenizer, texts: list[str] | None) -> np.ndarray:
    """Packed blocks for the largest batch size: whole bundled comments (or synthetic ones) joined
    with [SEP] and cut at `max_length`, as many comments as the blocks need."""
    n_blocks = max(profile.batch_sizes) * (profile.warmup_batches + profile.lm_timed_batches)
    n_comments = n_blocks * profile.max_length // 30 + 1  # comfortably enough: comments average ~90 word pieces
    if texts is None:
        corpus = synthetic_tokens(n_comments, 10**6, len(tokenizer), tokenizer.cls_token_id, tokenizer.sep_token_id, seed=2)
        corpus = TokenizedTexts(corpus.flat, corpus.offsets, corpus.full_lengths)
    else:
        corpus = tokenize(tokenizer, texts[:n_comments])  # whole comments, no special tokens: the LM corpus
    return pack_blocks(corpus, profile.max_length, tokenizer.cls_token_id, tokenizer.sep_token_id)


def run(profile: Profile, device: torch.device) -> dict:
    quiet_transformers()
    precision = resolve_precision(profile.precision, device)  # auto: bf16/fp16 on CUDA, fp32 on a CPU dry run
    tokenizer = load_tokenizer(resolve_model("packaged-minilm"))
    texts, labels = bundled_texts(profile.tokenize_rows)
    most_rows = max(profile.batch_sizes) * (profile.warmup_batches + profile.timed_batches)
    if profile.synthetic:
        tokens = synthetic_tokens(most_rows, profile.max_length, len(tokenizer), tokenizer.cls_token_id, tokenizer.sep_token_id, seed=0)
        labels = (np.random.default_rng(1).random((most_rows, N_LABELS)) < 0.1).astype(np.float32)
    else:
        tokens = tokenize(tokenizer, texts[:most_rows], profile.max_length, "head")
        labels = labels[:most_rows]
    blocks = lm_blocks(profile, tokenizer, None if profile.synthetic else texts)
    report = {"profile": asdict(profile), "device": describe(device), "precision": precision, "date": time.strftime("%Y-%m-%d"),
              "peak_memory": "torch.cuda.max_memory_allocated above the pass's start" if device.type == "cuda" else "sampled RSS growth above the pass's start (psutil, every 20 ms)",
              "torch_threads": torch.get_num_threads(), "results": [], "timed_sets": {}}
    model = timed_tokens = None
    for batch_size in profile.batch_sizes:
        cls, model, timed_tokens = classifier_rows(tokens, labels, tokenizer, profile, batch_size, device, precision)
        report["results"] += [r.to_dict() for r in cls]
        report["cls_ratio_by_batch"] = {**report.get("cls_ratio_by_batch", {}), batch_size: best_own(cls).ratio}
        report["timed_sets"][f"cls_{batch_size}"] = {"rows": len(timed_tokens), "median_length": float(np.median(timed_tokens.lengths)),
                                                     "mean_length": float(timed_tokens.lengths.mean())}
        lm = lm_rows(blocks, tokenizer, profile, batch_size, device, precision)
        report["results"] += [r.to_dict() for r in lm]
        report["lm_ratio_by_batch"] = {**report.get("lm_ratio_by_batch", {}), batch_size: best_own(lm).ratio}
        report["timed_sets"][f"lm_{batch_size}"] = {"blocks": batch_size * profile.lm_timed_batches, "block_length": profile.max_length,
                                                    "distinct_blocks_available": len(blocks)}
    first = profile.batch_sizes[0]
    report["cls_ratio_vs_trainer_padded"] = report["cls_ratio_by_batch"][first]
    report["lm_ratio_vs_trainer_packed"] = report["lm_ratio_by_batch"][first]
    report["tokenization"] = tokenization_timing(tokenizer, texts, profile.max_length)
    report["tokenize_cache_speedup"] = report["tokenization"]["tokenize_cache_speedup"]
    report["inference"] = inference_timing(model, timed_tokens, tokenizer.pad_token_id, 128, device, precision)
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
             f"warm-up {report['profile']['warmup_batches']} batches on rows of their own, then the fastest of {report['profile']['repeats']} round-robin passes over the shared timed set · "
             f"peak memory: {report['peak_memory']}",
             "| contender | task | batch | samples/s | real tokens/s | padding | peak MiB | × Trainer |",
             "|---|---|---|---|---|---|---|---|"]
    for r in report["results"]:
        lines.append(f"| {r['contender']} | {r['task']} | {r['batch_size']} | {r['samples_per_s']:,.1f} | {r['tokens_per_s']:,.0f} | "
                     f"{r['padding_fraction']:.0%} | {r['peak_mib']:,.0f} | {r['ratio']:.2f} |")
    for key, shared in report["timed_sets"].items():
        lines.append(f"timed set {key}: " + ", ".join(f"{k} {v:g}" for k, v in shared.items()))
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
