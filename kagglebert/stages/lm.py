"""Stage 2 — corpus LM fine-tuning (within-task pre-training, "ITPT"; ULMFiT's middle step):
masked-LM training of the checkpoint on the competition's own comments (train + test text), packed
into fixed-length blocks with a fresh mask every epoch. 5% of the blocks are held out and scored
(perplexity) before and after. The result is saved with `save_pretrained` to `runs/_lm/<key>/` (`Run.lm_dir`),
where the classifier stage picks it up when `lm.epochs > 0`.

    python -m kagglebert lm --config demo --set lm.epochs=4
"""
from __future__ import annotations

import logging
import math

import numpy as np
import torch

from ..core import distributed
from ..core.batching import LengthBucketBatchSampler, MaskingCollator, pack_blocks
from ..core.config import Config
from ..core.engine import (autocast, make_optimizer, make_scaler, make_scheduler, move, param_groups,
                     resolve_device, resolve_precision, seed_everything, train_epoch)
from ..core.errors import RunError
from ..core.modeling import load_masked_lm, masked_lm_loss
from ..core.paths import cache_dir, resolve_model
from ..core.atomic import atomic_dir, read_json, write_json
from ..core.runs import Run, open_run
from ..core.tokenization import load_tokenizer, tokenize

log = logging.getLogger("kagglebert")

HELDOUT_MASK_SEED = 1234  # the same held-out mask before and after training: comparable perplexities


def build_corpus(run: Run, tokenizer) -> tuple[np.ndarray, np.ndarray, int]:
    """(train blocks, held-out blocks, corpus tokens)."""
    cfg = run.cfg
    data = run.load_data()
    texts = data.train_texts + (data.test_texts if cfg.lm.include_test else [])
    tokens = tokenize(tokenizer, texts, cache_dir=cache_dir(cfg))
    blocks = pack_blocks(tokens, cfg.lm.block_size, tokenizer.cls_token_id, tokenizer.sep_token_id)
    if len(blocks) < 2:
        raise RunError(f"LM corpus too small: {int(tokens.lengths.sum())} tokens make {len(blocks)} block(s) of {cfg.lm.block_size}")
    order = np.random.default_rng(cfg.run.seed).permutation(len(blocks))
    n_heldout = max(1, int(round(len(blocks) * cfg.lm.heldout_frac)))
    return blocks[order[n_heldout:]], blocks[order[:n_heldout]], int(tokens.lengths.sum())


@torch.no_grad()
def perplexity(model, blocks: np.ndarray, tokenizer, cfg: Config, device, precision: str) -> float:
    """exp(mean cross-entropy over the masked tokens of the held-out blocks), one fixed mask."""
    model.eval()
    collate = MaskingCollator(blocks, tokenizer, cfg.lm.mlm_probability, cfg.lm.whole_word_mask, seed=HELDOUT_MASK_SEED)
    total = torch.zeros((), device=device, dtype=torch.float64)
    count = 0
    for start in range(0, len(blocks), cfg.lm.batch_size):
        batch = collate(list(range(start, min(start + cfg.lm.batch_size, len(blocks)))))
        n = int((batch["labels"] != -100).sum())
        if n == 0:
            continue
        with autocast(device, precision):
            loss = masked_lm_loss(model, move(batch, device))
        total += loss.double() * n
        count += n
    return float(math.exp(total.item() / max(1, count)))


def lm_param_groups(model, cfg: Config, fresh_head: bool) -> list[dict]:
    """lm.lr for the encoder; lm.head_lr for an MLM head that starts fresh. A random head at the
    encoder's small lr needs most of a short run to become useful, and until then the encoder
    learns from its noise. The decoder weight is tied to the word embeddings, so it counts as
    encoder and keeps lm.lr."""
    head_lr = cfg.lm.head_lr if fresh_head else cfg.lm.lr
    return param_groups(model, getattr(model, model.base_model_prefix), cfg.lm.lr, head_lr, 1.0, cfg.lm.weight_decay)


def loader(blocks: np.ndarray, collate: MaskingCollator, batch_size: int, seed: int, pin: bool):
    sampler = LengthBucketBatchSampler(np.zeros(len(blocks)), batch_size, bucket_size=1, seed=seed)
    return torch.utils.data.DataLoader(range(len(blocks)), batch_sampler=distributed.shard(sampler), collate_fn=collate, pin_memory=pin)


def main(cfg: Config) -> dict:
    distributed.init_from_env()  # under torchrun: join the process group; else nothing
    with distributed.main_first():
        run = open_run(cfg)
    out = run.lm_dir
    if run.lm_complete():
        metrics = read_json(out / "lm_metrics.json")
        log.info("lm: reusing %s (perplexity %.1f → %.1f)", out, metrics["perplexity_before"], metrics["perplexity_after"])
        return metrics
    if cfg.lm.epochs <= 0:
        raise RunError("lm.epochs = 0: nothing to train (set --set lm.epochs=N)")
    seed_everything(cfg.run.seed)
    device = distributed.local_device(resolve_device(cfg.run.device))
    precision = resolve_precision(cfg.lm.precision, device)
    model_path = resolve_model(cfg.model.name)
    tokenizer = load_tokenizer(model_path)
    with distributed.main_first():  # one writer for the tokenization cache
        train_blocks, heldout_blocks, corpus_tokens = build_corpus(run, tokenizer)
    log.info("lm: corpus %d tokens → %d blocks of %d (%d held out)", corpus_tokens, len(train_blocks) + len(heldout_blocks), cfg.lm.block_size, len(heldout_blocks))

    model, fresh_head = load_masked_lm(model_path)
    if fresh_head:
        log.warning("lm: %s has no trained MLM head; a fresh one is initialised (decoder tied to the input embeddings)", cfg.model.name)
    model.to(device)
    ppl_before = perplexity(model, heldout_blocks, tokenizer, cfg, device, precision)
    log.info("lm: held-out perplexity before: %.1f", ppl_before)

    collate = MaskingCollator(train_blocks, tokenizer, cfg.lm.mlm_probability, cfg.lm.whole_word_mask, seed=cfg.run.seed)
    batches = loader(train_blocks, collate, cfg.lm.batch_size, cfg.run.seed, pin=device.type == "cuda")
    groups = lm_param_groups(model, cfg, fresh_head)
    optimizer = make_optimizer(groups, device)
    total_steps = cfg.lm.epochs * math.ceil(len(batches) / cfg.lm.grad_accum)
    scheduler = make_scheduler(optimizer, total_steps, cfg.lm.warmup_ratio)
    scaler = make_scaler(device, precision)
    train_module, train_loss = distributed.wrap(model, masked_lm_loss, device)  # DDP under torchrun, else as is
    history, seconds, tokens = [], 0.0, 0
    for epoch in range(cfg.lm.epochs):
        collate.set_epoch(epoch)  # a fresh mask every epoch (Gururangan et al. 2020; RoBERTa's dynamic masking)
        batches.batch_sampler.set_epoch(epoch)
        stats = train_epoch(train_module, batches, train_loss, optimizer, scheduler, scaler, device, precision,
                            cfg.lm.grad_accum, cfg.lm.max_grad_norm, cfg.train.log_every,
                            desc=f"lm epoch {epoch + 1}/{cfg.lm.epochs}", progress=cfg.run.progress)
        seconds += stats.seconds
        tokens += stats.tokens
        history.append({"epoch": epoch + 1, "loss": stats.loss, "loss_curve": stats.loss_curve, "tokens_per_s": stats.tokens_per_s})
        log.info("lm epoch %d/%d: loss %.3f, %.0f tokens/s", epoch + 1, cfg.lm.epochs, stats.loss, stats.tokens_per_s)
    ppl_after = perplexity(model, heldout_blocks, tokenizer, cfg, device, precision)
    log.info("lm: held-out perplexity after: %.1f (before %.1f)", ppl_after, ppl_before)

    if not distributed.is_main():  # rank 0 saves; the others wait until lm/ is complete
        distributed.barrier()
        return read_json(out / "lm_metrics.json")
    metrics = {
        "perplexity_before": ppl_before,
        "perplexity_after": ppl_after,
        "lm_tokens_per_s": tokens / seconds if seconds else 0.0,
        "corpus_tokens": corpus_tokens,
        "train_blocks": len(train_blocks),
        "heldout_blocks": len(heldout_blocks),
        "block_size": cfg.lm.block_size,
        "fresh_mlm_head": fresh_head,
        "epochs": history,
        "device": str(device),
        "precision": precision,
    }
    with atomic_dir(out) as tmp:  # written whole, then renamed: a crash never leaves half a model
        model.to("cpu").save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_json(tmp / "lm_metrics.json", metrics)
    distributed.barrier()
    return metrics
