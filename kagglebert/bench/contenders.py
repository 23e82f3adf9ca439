"""The contenders and their races: kagglebert's training loop (`engine.train_epoch` with length
buckets, `PadCollator` and `modeling.Classifier`; or `MaskingCollator` over packed blocks with the
loss at masked positions only) against transformers' `Trainer` (padded to max length; dynamic
padding with group-by-length sampling; `BertForMaskedLM` + `DataCollatorForLanguageModeling`, as
run_mlm.py does). All use a constant learning rate: the schedule costs nothing, and the warm-up pass
must not leave a linear schedule at 0 for the timed pass.

kagglebert's contender times `engine.train_epoch`, the step loop `engine.fit` runs once per epoch,
over a loader built the way `fit` builds it. It does not call `fit` itself: like the Trainer, it
keeps one optimizer across the warm-up and the timed passes, so no pass pays for (or counts in its
peak memory) a fresh optimizer's state."""
from __future__ import annotations

import copy
import dataclasses
import itertools
import tempfile
import time

import numpy as np
import torch

from ..core.batching import LengthBucketBatchSampler, MaskingCollator, PadCollator
from ..core.engine import Training, make_accelerator, param_groups, train_epoch
from ..core.modeling import Classifier, masked_lm_loss
from ..core.tasks import bce_loss
from ..core.tokenization import TokenizedTexts
from .harness import PeakMemory, Result, Tally, attention_backends, cpu_clock, race, sync, with_ratios
from .profiles import N_LABELS, Profile
from .workload import bert_config

NEVER = 10**9  # train_epoch's log_every: no loss read-back (a host sync) inside a timed pass


def loader_over(batches: list[list[int]], collate, device: torch.device):
    """A loader that yields exactly these batches of row indices, in this order (built like `engine.fit`'s)."""
    return torch.utils.data.DataLoader(range(max(map(max, batches)) + 1), batch_sampler=batches, collate_fn=collate,
                                       pin_memory=device.type == "cuda")


def chunks(rows: np.ndarray, size: int) -> list[list[int]]:
    return [rows[i : i + size].tolist() for i in range(0, len(rows), size)]


def own_contender(name: str, task: str, model, warm_batches, warm_collate, timed_batches, timed_collate, compute_loss,
                  profile: Profile, batch_size: int, device, precision: str, exclude_cudnn: bool):
    """`engine.train_epoch` over the warm-up batches, then one `train_epoch` over the timed set per pass."""
    encoder = model.encoder if isinstance(model, Classifier) else model
    training = Training(make_accelerator(str(device), precision), model, compute_loss,
                        param_groups(model, encoder, profile.lr, profile.lr, 1.0, 0.01), total_steps=1, warmup_ratio=0.0,
                        schedule="constant")
    step = dict(log_every=NEVER, progress=False)
    with attention_backends(device, exclude_cudnn):
        train_epoch(training, loader_over(warm_batches, warm_collate, device), **step)
        sync(device)
    yield None
    for epoch in itertools.count(1):
        if hasattr(timed_collate, "set_epoch"):
            timed_collate.set_epoch(epoch)  # a fresh mask each pass, like the Trainer's collator
        tally = Tally(timed_collate)
        with attention_backends(device, exclude_cudnn), PeakMemory(device) as memory:
            cpu_start = cpu_clock(device)
            stats = train_epoch(training, loader_over(timed_batches, tally, device), **step)
            cpu_end = cpu_clock(device)
        yield Result(name, task, batch_size, len(tally.batches), stats.seconds, *tally.window(0, len(tally.batches)),
                     memory.peak_mib, None if cpu_start is None else cpu_end - cpu_start)


def sampling_arguments(training_arguments, sampling: str) -> dict:
    """`TrainingArguments` keywords for the Trainer's sampler: transformers 5 takes
    `train_sampling_strategy`; 4.x had `group_by_length=True` for the same length-grouped sampler."""
    fields = {f.name for f in dataclasses.fields(training_arguments)}
    if "train_sampling_strategy" in fields:
        return {"train_sampling_strategy": sampling}
    return {"group_by_length": sampling == "group_by_length"}


def trainer_contender(name: str, task: str, model, warm: list[dict], timed: list[dict], collate, profile: Profile,
                      batch_size: int, device, precision: str, sampling: str = "random"):
    """`trainer.train()` for the warm-up steps on the warm-up rows, then per pass `train()` again for
    one epoch over the timed rows (same Trainer: its optimizer, already stepped, is reused), clocked
    from `on_epoch_begin` to `on_epoch_end`."""
    from transformers import PrinterCallback, Trainer, TrainerCallback, TrainingArguments

    clock: dict[str, float | None] = {}

    class EpochClock(TrainerCallback):
        def on_epoch_begin(self, args, state, control, **kwargs):
            sync(device)
            clock["begin"], clock["cpu_begin"] = time.perf_counter(), cpu_clock(device)

        def on_epoch_end(self, args, state, control, **kwargs):
            sync(device)
            clock["end"], clock["cpu_end"] = time.perf_counter(), cpu_clock(device)

    with tempfile.TemporaryDirectory() as out:  # Trainer wants an output_dir; it writes nothing with these settings
        args = TrainingArguments(
            output_dir=out, per_device_train_batch_size=batch_size, max_steps=profile.warmup_batches,
            learning_rate=profile.lr, weight_decay=0.01, warmup_steps=0, lr_scheduler_type="constant",
            max_grad_norm=1.0, bf16=precision == "bf16", fp16=precision == "fp16", use_cpu=device.type == "cpu",
            logging_strategy="no", save_strategy="no", eval_strategy="no", report_to="none", disable_tqdm=True,
            dataloader_pin_memory=device.type == "cuda", seed=0, **sampling_arguments(TrainingArguments, sampling),
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
            cpu = None if clock["cpu_begin"] is None else clock["cpu_end"] - clock["cpu_begin"]
            yield Result(name, task, batch_size, len(tally.batches), clock["end"] - clock["begin"],
                         *tally.window(0, len(tally.batches)), memory.peak_mib, cpu)


def classifier_loss(model, batch):
    return bce_loss(model(batch["input_ids"], batch["attention_mask"]), batch["labels"])


def classifier_race(tokens: TokenizedTexts, labels: np.ndarray, tokenizer, profile: Profile, batch_size: int,
                    device, precision: str) -> tuple[list[Result], Classifier, TokenizedTexts]:
    """Rows [0, warm) warm every contender up; rows [warm, warm + timed) are the one timed set.
    Returns the results (ratios over the padded Trainer's samples/s), kagglebert's last trained
    classifier and the timed rows (for the inference timing)."""
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
    results = with_ratios(race(contenders, profile.repeats), lambda r: r.samples)
    return results, models[-1], timed_tokens


def lm_race(blocks: np.ndarray, tokenizer, profile: Profile, batch_size: int, device, precision: str) -> list[Result]:
    """Blocks [0, warm) warm every contender up; blocks [warm, warm + timed) are the one timed set.
    Ratios are over the Trainer's real tokens/s."""
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
    return with_ratios(race(contenders, profile.repeats), lambda r: r.real_tokens)


def best_own(results: list[Result]) -> Result:
    """The default kagglebert setting (multiple of 8, and no cuDNN attention on CUDA): the last row."""
    return [r for r in results if r.contender.startswith("kagglebert")][-1]
