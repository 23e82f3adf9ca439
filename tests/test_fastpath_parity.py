"""The training engine computes what it should: the fast paths equal the plain ones (the masked-LM
loss that projects only the masked positions, mean pooling over a padded batch, gradient
accumulation), the schedules and layer-wise learning rates have their documented values, and a
non-finite loss stops training within `log_every` steps with the hint that fits."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from kagglebert.core.batching import MaskingCollator, PadCollator, pack_blocks
from kagglebert.core.engine import Training, make_accelerator, train_epoch
from kagglebert.core.errors import RunError
from kagglebert.core.modeling import Classifier, masked_lm_loss
from kagglebert.core.tasks import bce_loss
from kagglebert.core.tokenization import tokenize

TEXTS = [
    "You are a wonderful person and I thank you for the edits.",
    "Stop it.",
    "This article is a mess; the sources in the second section do not say what the text claims they say.",
    "ok",
    "Please read the talk page before you revert again, the consensus there was clear enough for everybody involved.",
    "Why?",
]
NO_DROPOUT = dict(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


@pytest.fixture(scope="module")
def tokens(tokenizer):
    return tokenize(tokenizer, TEXTS, max_length=32, truncation="head")


def test_masked_lm_loss_equals_full_projection_loss(tiny_model_dir, tokenizer):
    from transformers import BertForMaskedLM

    model = BertForMaskedLM.from_pretrained(tiny_model_dir).eval()
    blocks = pack_blocks(tokenize(tokenizer, TEXTS * 3), 16, tokenizer.cls_token_id, tokenizer.sep_token_id)
    batch = MaskingCollator(blocks, tokenizer, probability=0.3, seed=0)(list(range(len(blocks))))
    assert (batch["labels"] != -100).sum() > 5
    with torch.no_grad():
        fast = masked_lm_loss(model, batch)
        reference = model(**batch).loss
    torch.testing.assert_close(fast, reference, rtol=1e-5, atol=1e-5)


def test_mean_pooling_on_a_padded_batch_equals_rows_alone(tiny_model_dir, tokens, tokenizer):
    from transformers import AutoModel

    torch.manual_seed(0)
    model = Classifier(AutoModel.from_pretrained(tiny_model_dir, add_pooling_layer=False), n_labels=6, pooling="mean").eval()
    batch = PadCollator(tokens, tokenizer.pad_token_id, pad_multiple=8)(list(range(len(tokens))))
    assert (batch["attention_mask"] == 0).any()  # the batch really has padding
    with torch.no_grad():
        padded = model(batch["input_ids"], batch["attention_mask"])
        alone = torch.cat([model(torch.as_tensor(tokens[i], dtype=torch.long)[None], torch.ones(1, len(tokens[i]), dtype=torch.long))
                           for i in range(len(tokens))])
    torch.testing.assert_close(padded, alone, rtol=1e-4, atol=1e-5)


def cpu_training(model, compute_loss, lr: float, steps: int, precision: str = "fp32") -> Training:
    """The engine's training step on the CPU: AdamW over all parameters at a constant `lr`."""
    groups = [{"params": list(model.parameters()), "lr": lr, "weight_decay": 0.01}]
    return Training(make_accelerator("cpu", precision), model, compute_loss, groups, total_steps=steps, warmup_ratio=0.0, schedule="constant")


def updates(model, batches, grad_accum: int, steps: int) -> Classifier:
    """`train_epoch` over `batches` with a constant learning rate: exactly `steps` optimizer steps."""
    training = cpu_training(model, lambda m, b: bce_loss(m(b["input_ids"], b["attention_mask"]), b["labels"]), 1e-3, steps)
    stats = train_epoch(training, batches, grad_accum=grad_accum, progress=False)
    assert len(stats.lr_factors) == steps
    return model


@pytest.mark.parametrize("micro, steps", [([[0, 1, 2], [3, 4, 5]], [[0, 1, 2, 3, 4, 5]]),
                                          # 3 windows of 2; the last one partial (one micro-batch)
                                          ([[0, 1], [2, 3], [4], [5], [0, 2]], [[0, 1, 2, 3], [4, 5], [0, 2]])])
def test_gradient_accumulation_equals_steps_on_the_concatenated_batches(tiny_model_dir, tokens, tokenizer, micro, steps):
    """grad_accum 2 over the micro-batches = one step per concatenated pair, the epoch's last,
    partial window (one micro-batch) included: its loss is divided by its own size, not by 2."""
    from transformers import AutoModel

    torch.manual_seed(0)
    start = Classifier(AutoModel.from_pretrained(tiny_model_dir, add_pooling_layer=False, **NO_DROPOUT), n_labels=6, dropout=0.0)
    labels = (np.arange(len(tokens) * 6).reshape(len(tokens), 6) % 3 == 0).astype(np.float32)
    collate = PadCollator(tokens, tokenizer.pad_token_id, labels, pad_multiple=8)
    # equal-sized micro-batches in each window: the mean of their mean losses is the pair's mean loss
    accumulated = updates(copy.deepcopy(start), [collate(rows) for rows in micro], grad_accum=2, steps=len(steps))
    whole = updates(copy.deepcopy(start), [collate(rows) for rows in steps], grad_accum=1, steps=len(steps))
    moved = 0
    for (name, a), b, s in zip(accumulated.named_parameters(), whole.parameters(), start.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=2e-6, msg=name)
        moved += int(not torch.equal(a, s))
    assert moved > 10  # the step changed the weights: the comparison is not between two untouched models


def test_a_fresh_mlm_head_gets_its_own_lr_and_the_tied_decoder_stays_with_the_encoder(tiny_model_dir):
    from kagglebert.core.config import Config
    from kagglebert.stages.lm import lm_param_groups
    from kagglebert.core.modeling import load_masked_lm

    model, _ = load_masked_lm(str(tiny_model_dir))
    cfg = Config().replace(lm={"lr": 1e-4, "head_lr": 1e-3})
    names = {id(p): n for n, p in model.named_parameters()}

    def lr_of(groups):
        return {names[id(p)]: g["lr"] for g in groups for p in g["params"]}

    fresh = lr_of(lm_param_groups(model, cfg, fresh_head=True))
    assert fresh["cls.predictions.transform.dense.weight"] == 1e-3
    assert fresh["cls.predictions.bias"] == 1e-3
    assert fresh["bert.embeddings.word_embeddings.weight"] == 1e-4  # = the tied decoder weight
    assert fresh["bert.encoder.layer.0.attention.self.query.weight"] == 1e-4
    trained = lr_of(lm_param_groups(model, cfg, fresh_head=False))
    assert set(trained.values()) == {1e-4}


class CountingLoader(list):
    """Batches handed out, counted: how far training got before it stopped."""

    taken = 0

    def __iter__(self):
        for batch in super().__iter__():
            self.taken += 1
            yield batch


def run_until_stopped(model, loader, compute_loss, lr: float, precision: str, log_every: int, section: str = "train") -> str:
    training = cpu_training(model, compute_loss, lr, len(loader))
    training.section, training.precision = section, precision  # fp16 needs a GPU: its hint is checked on the CPU
    with pytest.raises(RunError) as err:
        train_epoch(training, loader, log_every=log_every, desc="fold 0 epoch 1/1", progress=False)
    return str(err.value)


def test_a_diverging_learning_rate_stops_within_log_every_steps(tiny_model_dir, tokens, tokenizer):
    from transformers import AutoModel

    torch.manual_seed(0)
    model = Classifier(AutoModel.from_pretrained(tiny_model_dir, add_pooling_layer=False), n_labels=6)
    labels = (np.arange(len(tokens) * 6).reshape(len(tokens), 6) % 3 == 0).astype(np.float32)
    collate = PadCollator(tokens, tokenizer.pad_token_id, labels, pad_multiple=8)
    losses = []

    def compute_loss(model, batch):
        loss = bce_loss(model(batch["input_ids"], batch["attention_mask"]), batch["labels"])
        losses.append(loss.detach())
        return loss

    loader = CountingLoader([collate([i % len(tokens), (i + 1) % len(tokens)]) for i in range(40)])
    message = run_until_stopped(model, loader, compute_loss, lr=1e30, precision="fp32", log_every=3)
    first_bad = next(i for i, loss in enumerate(losses) if not torch.isfinite(loss)) + 1
    assert first_bad < loader.taken <= first_bad + 2  # stopped at the first log window holding it, not at the epoch's end
    assert loader.taken < len(loader)
    assert message.startswith(f"fold 0 epoch 1/1, step {loader.taken}: the loss became nan")
    assert "the learning rate is too high: lower train.lr / train.head_lr (largest now 1e+30)" in message
    assert "\n" not in message


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\(\)` before")  # the scaler skipped the inf step, as it should
def test_a_non_finite_loss_in_fp16_suggests_bf16_or_fp32():
    model = torch.nn.Linear(4, 1)
    loader = CountingLoader([{"input_ids": torch.ones(2, 4), "attention_mask": torch.ones(2, 4)} for _ in range(10)])

    def overflowing(model, batch):  # what an fp16 forward pass that overflowed yields
        return (model(batch["input_ids"]) ** 2).sum() * (torch.inf if loader.taken >= 4 else 1.0)

    message = run_until_stopped(model, loader, overflowing, lr=1e-3, precision="fp16", log_every=5, section="lm")
    assert loader.taken == 5
    assert "step 5: the loss became " in message  # inf, or nan once the inf step reached the weights (no scaler on a CPU)
    assert "fp16 overflowed: set lm.precision=bf16 on a GPU that has it (A100, H100, L4), else fp32" in message


def test_fp16_off_a_gpu_is_refused_in_one_line():
    from kagglebert.core.engine import make_accelerator

    with pytest.raises(RunError) as err:
        make_accelerator("cpu", "fp16", section="lm")
    assert str(err.value) == "lm.precision = fp16 needs a CUDA GPU (this run is on cpu); use bf16 or fp32"


def test_fp16_on_a_cpu_run_is_refused_before_anything_is_written(sample_dir, tiny_model_dir, tmp_path, run_cli, small_run_args):
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    proc = run_cli("train", "--config", "demo", *small_run_args(sample_dir, tiny_model_dir, tmp_path, **{
        "lm.epochs": 0, "run.device": "cpu", "train.precision": "fp16"}))
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1] == "error: train.precision = fp16 needs a CUDA GPU (this run is on cpu); use bf16 or fp32"
    assert not (tmp_path / "runs").exists()
