"""Stage 2 — corpus LM fine-tuning (within-task pre-training, "ITPT"; ULMFiT's middle step).

Data: the competition's own comments (train + test text), packed into fixed-length blocks; 5% of
the blocks are held out. Model: the checkpoint as a masked LM (a fresh MLM head when it has none).
Loss: masked-LM cross-entropy at the masked positions, a fresh mask every epoch. Writes: the model
with `save_pretrained` to `runs/_lm/<key>/` (`Run.lm_dir`, shared by every run whose LM settings and
inputs agree), with `lm_metrics.json` (held-out perplexity before and after), where the classifier
stage picks it up when `lm.epochs > 0`. After every epoch, and inside an epoch every
`lm.checkpoint_minutes` (on a GPU by default), a resumable state is saved beside it
(`runs/_lm/.<key>.partial/`): the same command after a crash or a Colab disconnect resumes from the
last checkpoint and ends with the same weights as an uninterrupted run.

    python -m kagglebert lm --config demo --set lm.epochs=4
"""
from __future__ import annotations

import logging
import math
import pickle
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_model, save_model

from ..core import distributed
from ..core.atomic import atomic_dir, read_json, write_json
from ..core.batching import LengthBucketBatchSampler, MaskingCollator, pack_blocks
from ..core.config import Config
from ..core.engine import Batches, Training, autocast, fit, move, param_groups, precision_of, start
from ..core.errors import Interrupted, RunError
from ..core.modeling import load_masked_lm, masked_lm_loss
from ..core.paths import cache_dir, resolve_model
from ..core.runs import Run, open_run
from ..core.tokenization import load_tokenizer, tokenize

log = logging.getLogger("kagglebert")

HELDOUT_MASK_SEED = 1234  # the same held-out mask before and after training: comparable perplexities


def build_corpus(run: Run, tokenizer) -> tuple[np.ndarray, np.ndarray, int]:
    """(train blocks, held-out blocks, corpus tokens)."""
    cfg = run.cfg
    data = run.load_data()
    # train and test tokenized (and cached) apart: the same entries the EDA and the classifier's
    # truncated ids read, so each text goes through the tokenizer once per run
    parts = [tokenize(tokenizer, data.train_texts, cache_dir=cache_dir(cfg))]
    if cfg.lm.include_test:
        parts.append(tokenize(tokenizer, data.test_texts, cache_dir=cache_dir(cfg)))
    n_tokens = sum(int(part.lengths.sum()) for part in parts)
    blocks = pack_blocks(parts, cfg.lm.block_size, tokenizer.cls_token_id, tokenizer.sep_token_id)
    if len(blocks) < 2:
        raise RunError(f"LM corpus too small: {n_tokens} tokens make {len(blocks)} block(s) of {cfg.lm.block_size}")
    # shuffled in place (the order permutation() gives for this seed) and split as views: no second copy of the corpus
    np.random.default_rng(cfg.run.seed).shuffle(blocks)
    n_heldout = max(1, int(round(len(blocks) * cfg.lm.heldout_frac)))
    return blocks[n_heldout:], blocks[:n_heldout], n_tokens


@torch.no_grad()
def perplexity(model, blocks: np.ndarray, tokenizer, cfg: Config, device, precision: str) -> float:
    """exp(mean cross-entropy over the masked tokens of the held-out blocks), one fixed mask."""
    model.eval()
    collate = MaskingCollator(blocks, tokenizer, cfg.lm.mlm_probability, cfg.lm.whole_word_mask, seed=HELDOUT_MASK_SEED)
    total = torch.zeros((), device=device, dtype=torch.float64)
    count = 0
    for first in range(0, len(blocks), cfg.lm.batch_size):
        batch = collate(list(range(first, min(first + cfg.lm.batch_size, len(blocks)))))
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


# ---- the resumable state after each epoch -------------------------------------------------------
RESUME_FORMAT = 1


def save_progress(folder: Path, model, training: Training, progress: dict, collate_rng: torch.Tensor | None = None) -> None:
    """Weights (safetensors; tied weights stored once), the optimizer/schedule/scaler/RNG states
    (tensors and numbers only; with the masks' generator inside an epoch) and the bookkeeping,
    replacing the previous checkpoint whole."""
    with atomic_dir(folder) as tmp:
        save_model(model, str(tmp / "model.safetensors"))
        state = training.resume_state()
        if collate_rng is not None:
            state["collate_rng"] = collate_rng
        torch.save(state, tmp / "training_state.pt")
        write_json(tmp / "progress.json", progress)


def load_progress(folder: Path, expected: dict) -> dict | None:
    """The saved progress when `folder` holds a state for this very corpus and schedule, else None
    (a state written for other blocks would resume a different run)."""
    if not (folder / "progress.json").is_file():
        return None
    progress = read_json(folder / "progress.json")
    differs = {k: (progress.get(k), v) for k, v in expected.items() if progress.get(k) != v}
    if differs:
        log.warning("lm: ignoring the saved state in %s (%s); starting over", folder,
                    ", ".join(f"{k}: {old} there, {new} now" for k, (old, new) in differs.items()))
        return None
    return progress


# ---- the stage -----------------------------------------------------------------------------------
def main(cfg: Config) -> dict:
    distributed.init_from_env()  # under torchrun: join the process group; else nothing
    with distributed.main_first():
        run = open_run(cfg)
        if cfg.lm.epochs > 0 and not run.lm_complete():
            run.lock_lm()  # then checked again: another run sharing this LM may have just finished it
    out, lm = run.lm_dir, cfg.lm
    if run.lm_complete():
        metrics = read_json(run.lm_metrics_path)
        where = f"{out} → {out.resolve()}" if out.is_symlink() else str(out)  # an attached earlier output: say which
        log.info("lm: reusing %s (perplexity %.1f → %.1f)", where, metrics["perplexity_before"], metrics["perplexity_after"])
        return metrics
    if lm.epochs <= 0:
        raise RunError("lm.epochs = 0: nothing to train (set --set lm.epochs=N)")
    accelerator = start(seed=cfg.run.seed, device=cfg.run.device, precision=lm.precision, section="lm")
    device, precision = accelerator.device, precision_of(accelerator)

    # data: the corpus as packed blocks
    model_path = resolve_model(cfg.model.name)
    tokenizer = load_tokenizer(model_path)
    with distributed.main_first():  # one writer for the tokenization cache
        train_blocks, heldout_blocks, corpus_tokens = build_corpus(run, tokenizer)
    log.info("lm: corpus %d tokens → %d blocks of %d (%d held out)", corpus_tokens, len(train_blocks) + len(heldout_blocks), lm.block_size, len(heldout_blocks))

    # model: the checkpoint as a masked LM, or the last finished epoch's weights when resuming
    model, fresh_head = load_masked_lm(model_path)
    if fresh_head:
        log.warning("lm: %s has no trained MLM head; a fresh one is initialised (decoder tied to the input embeddings)", cfg.model.name)
    model.to(device)
    saved_state = run.lm_resume_dir
    plan = {"format": RESUME_FORMAT, "epochs": lm.epochs, "train_blocks": len(train_blocks), "heldout_blocks": len(heldout_blocks),
            "batch_size": lm.batch_size, "grad_accum": lm.grad_accum}
    progress = load_progress(saved_state, plan)
    if progress is None:
        progress = {**plan, "epochs_done": 0, "history": [], "seconds": 0.0, "tokens": 0,
                    "perplexity_before": perplexity(model, heldout_blocks, tokenizer, cfg, device, precision)}
        log.info("lm: held-out perplexity before: %.1f", progress["perplexity_before"])
        resume_state = None
    else:
        try:
            load_model(model, str(saved_state / "model.safetensors"), device=str(device))
            resume_state = torch.load(saved_state / "training_state.pt", map_location="cpu", weights_only=True)
        except (OSError, RuntimeError, SafetensorError, pickle.UnpicklingError) as err:
            raise RunError(f"{saved_state}: cannot resume the LM stage from it ({str(err).splitlines()[0]}); "
                           f"delete it to start the LM stage over") from None
        open_epoch = progress.get("open_epoch")
        if open_epoch:
            log.info("lm: resuming in epoch %d of %d after batch %d from %s", progress["epochs_done"] + 1, lm.epochs,
                     open_epoch["batches"], saved_state)
        else:
            log.info("lm: resuming after epoch %d of %d from %s", progress["epochs_done"], lm.epochs, saved_state)

    def end_of_epoch(epoch: int, stats, training: Training) -> None:
        progress["epochs_done"], progress["open_epoch"] = epoch, None
        progress["seconds"] += stats.seconds
        progress["tokens"] += stats.tokens
        progress["history"].append({"epoch": epoch, "loss": stats.loss, "loss_curve": stats.loss_curve, "tokens_per_s": stats.tokens_per_s})
        log.info("lm epoch %d/%d: loss %.3f, %.0f tokens/s", epoch, lm.epochs, stats.loss, stats.tokens_per_s)
        if distributed.is_main():
            save_progress(saved_state, model, training, progress)
        distributed.barrier()

    def inside_epoch(training: Training, position: dict) -> None:
        """A checkpoint inside an epoch (lm.checkpoint_minutes): the same folder, with the open
        epoch's position and stats."""
        if distributed.is_main():
            save_progress(saved_state, model, training, {**progress, "open_epoch": position["stats"]}, position["collate_rng"])

    # loss: masked-LM cross-entropy, at the masked positions only
    try:
        batches = Batches(LengthBucketBatchSampler(np.zeros(len(train_blocks)), lm.batch_size, bucket_size=1, seed=cfg.run.seed),
                          MaskingCollator(train_blocks, tokenizer, lm.mlm_probability, lm.whole_word_mask, seed=cfg.run.seed),
                          len(train_blocks))
        fit(model, masked_lm_loss, batches, lm, accelerator=accelerator, groups=lm_param_groups(model, cfg, fresh_head),
            desc="lm", progress=cfg.run.progress, on_epoch=end_of_epoch, save=inside_epoch,
            resume=None if resume_state is None else {"epoch": progress["epochs_done"], "state": resume_state,
                                                      "stats": progress.get("open_epoch"), "collate_rng": resume_state.get("collate_rng")})
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted in LM epoch {progress['epochs_done'] + 1}; rerun the same command to resume") from None
    ppl_after = perplexity(model, heldout_blocks, tokenizer, cfg, device, precision)
    log.info("lm: held-out perplexity after: %.1f (before %.1f)", ppl_after, progress["perplexity_before"])

    # writes: the LM folder whole, then the resumable state goes
    if not distributed.is_main():  # rank 0 saves; the others wait until the LM folder is complete
        distributed.barrier()
        return read_json(run.lm_metrics_path)
    metrics = {
        "perplexity_before": progress["perplexity_before"],
        "perplexity_after": ppl_after,
        "lm_tokens_per_s": progress["tokens"] / progress["seconds"] if progress["seconds"] else 0.0,
        "corpus_tokens": corpus_tokens,
        "train_blocks": len(train_blocks),
        "heldout_blocks": len(heldout_blocks),
        "block_size": lm.block_size,
        "fresh_mlm_head": fresh_head,
        "epochs": progress["history"],
        "device": str(device),
        "precision": precision,
    }
    with atomic_dir(out) as tmp:  # written whole, then renamed: a crash never leaves half a model
        model.to("cpu").save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_json(tmp / "lm_metrics.json", metrics)
    shutil.rmtree(saved_state, ignore_errors=True)
    run.unlock_lm()
    distributed.barrier()
    return metrics
