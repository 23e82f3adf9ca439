"""One benchmark run as a report (the dict `--json` writes): the classifier and masked-LM races at
every batch size of the profile, then `tokenization.tokenize` cold vs cached and sorted no-grad
inference (`modeling.predict`) over the timed rows."""
from __future__ import annotations

import os
import platform
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from ..core.engine import resolve_precision
from ..core.modeling import Classifier, predict
from ..core.paths import resolve_model
from ..core.tokenization import TokenizedTexts, load_tokenizer, quiet_transformers, tokenize
from .contenders import best_own, classifier_race, lm_race
from .harness import sync
from .profiles import Profile
from .workload import bundled_texts, classifier_workload, lm_blocks


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


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}"
    return f"CPU ({os.cpu_count()} cores, {platform.processor() or platform.machine()}), torch {torch.__version__}"


def run(profile: Profile, device: torch.device) -> dict:
    quiet_transformers()
    precision = resolve_precision(profile.precision, device)  # auto: bf16/fp16 on CUDA, fp32 on a CPU dry run
    tokenizer = load_tokenizer(resolve_model("packaged-minilm"))
    texts, labels = bundled_texts(profile.tokenize_rows)
    tokens, labels = classifier_workload(profile, tokenizer, texts, labels)
    blocks = lm_blocks(profile, tokenizer, None if profile.synthetic else texts)
    report = {"profile": asdict(profile), "device": describe(device), "precision": precision, "date": time.strftime("%Y-%m-%d"),
              "peak_memory": "torch.cuda.max_memory_allocated above the pass's start" if device.type == "cuda" else "sampled RSS growth above the pass's start (psutil, every 20 ms)",
              "torch_threads": torch.get_num_threads(), "results": [], "timed_sets": {},
              "cls_ratio_by_batch": {}, "lm_ratio_by_batch": {}, "cls_cpu_ratio_by_batch": {}, "lm_cpu_ratio_by_batch": {}}
    model = timed_tokens = None
    for batch_size in profile.batch_sizes:
        cls, model, timed_tokens = classifier_race(tokens, labels, tokenizer, profile, batch_size, device, precision)
        report["results"] += [r.to_dict() for r in cls]
        report["cls_ratio_by_batch"][batch_size] = best_own(cls).ratio
        report["cls_cpu_ratio_by_batch"][batch_size] = best_own(cls).cpu_ratio
        report["timed_sets"][f"cls_{batch_size}"] = {"rows": len(timed_tokens), "median_length": float(np.median(timed_tokens.lengths)),
                                                     "mean_length": float(timed_tokens.lengths.mean())}
        lm = lm_race(blocks, tokenizer, profile, batch_size, device, precision)
        report["results"] += [r.to_dict() for r in lm]
        report["lm_ratio_by_batch"][batch_size] = best_own(lm).ratio
        report["lm_cpu_ratio_by_batch"][batch_size] = best_own(lm).cpu_ratio
        report["timed_sets"][f"lm_{batch_size}"] = {"blocks": batch_size * profile.lm_timed_batches, "block_length": profile.max_length,
                                                    "distinct_blocks_available": len(blocks)}
    first = profile.batch_sizes[0]
    report["cls_ratio_vs_trainer_padded"] = report["cls_ratio_by_batch"][first]
    report["lm_ratio_vs_trainer_packed"] = report["lm_ratio_by_batch"][first]
    # the same ratios per CPU-second (CPU runs; None on CUDA): comparable across a busy and a quiet machine
    report["cls_cpu_ratio_vs_trainer_padded"] = report["cls_cpu_ratio_by_batch"][first]
    report["lm_cpu_ratio_vs_trainer_packed"] = report["lm_cpu_ratio_by_batch"][first]
    report["tokenization"] = tokenization_timing(tokenizer, texts, profile.max_length)
    report["tokenize_cache_speedup"] = report["tokenization"]["tokenize_cache_speedup"]
    report["inference"] = inference_timing(model, timed_tokens, tokenizer.pad_token_id, 128, device, precision)
    return report
