"""Two CPU processes (gloo; accelerate's DDP through `engine.Training`) end in the same weights as one
process stepping on the same global batches, with accumulation too; the sharded sampler gives every
rank the same number of batches."""
from __future__ import annotations

import copy
import os
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from kagglebert.core import distributed
from kagglebert.core.batching import LengthBucketBatchSampler, PadCollator
from kagglebert.core.engine import Training, make_accelerator, train_epoch
from kagglebert.core.modeling import Classifier, predict
from kagglebert.core.tasks import bce_loss
from kagglebert.core.tokenization import load_tokenizer, tokenize

TEXTS = [f"comment number {i} says " + "something rather long " * (i % 7) for i in range(16)]
PER_RANK_BATCH = 4
WORLD = 2


def test_sharded_sampler_splits_batches_evenly():
    base = LengthBucketBatchSampler(np.arange(23), batch_size=4, bucket_size=2, seed=3)  # 6 batches, the last short
    shards = [list(distributed.ShardedBatchSampler(base, r, WORLD)) for r in range(WORLD)]
    everything = list(base)
    assert [len(s) for s in shards] == [3, 3]
    assert shards[0] == everything[0::2] and shards[1] == everything[1::2]
    odd = LengthBucketBatchSampler(np.arange(20), batch_size=4, bucket_size=2, seed=3)  # 5 batches
    assert [len(list(distributed.ShardedBatchSampler(odd, r, WORLD))) for r in range(WORLD)] == [2, 2]
    assert len(distributed.ShardedBatchSampler(odd, 0, WORLD)) == 2


def test_helpers_are_no_ops_in_one_process(monkeypatch):
    # outside torchrun (no WORLD_SIZE, or WORLD_SIZE=1) no process group is joined
    for world in (None, "1"):
        if world is None:
            monkeypatch.delenv("WORLD_SIZE", raising=False)
        else:
            monkeypatch.setenv("WORLD_SIZE", world)
        assert distributed.init_from_env() is False
        assert not torch.distributed.is_initialized()
    assert (distributed.rank(), distributed.world_size(), distributed.is_main()) == (0, 1, True)
    sampler = LengthBucketBatchSampler(np.arange(8), 4)
    assert distributed.shard(sampler) is sampler
    model = torch.nn.Linear(2, 1)
    training = training_for(model, lambda m, b: m(b).sum(), steps=1)
    assert training.module.model is model  # one process: no DDP around the model and its loss
    predictions = np.arange(6, dtype=np.float32).reshape(3, 2)
    np.testing.assert_array_equal(distributed.gather_rows(predictions[[2, 0]], np.array([2, 0]), 3)[[0, 2]], predictions[[0, 2]])


def build(model_dir: str, tokens, labels, pad_id: int):
    from transformers import AutoModel

    torch.manual_seed(0)
    encoder = AutoModel.from_pretrained(model_dir, add_pooling_layer=False, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    model = Classifier(encoder, n_labels=6, dropout=0.0)
    return model, PadCollator(tokens, pad_id, labels, pad_multiple=8)


def data(model_dir: str):
    tokenizer = load_tokenizer(model_dir)
    tokens = tokenize(tokenizer, TEXTS, max_length=32, truncation="head")
    labels = (np.arange(len(TEXTS) * 6).reshape(-1, 6) % 5 == 0).astype(np.float32)
    return tokens, labels, tokenizer.pad_token_id


def compute_loss(model, batch):
    return bce_loss(model(batch["input_ids"], batch["attention_mask"]), batch["labels"])


def training_for(model, compute_loss, steps: int) -> Training:
    """The engine's training step on the CPU in fp32: AdamW at a constant learning rate."""
    groups = [{"params": list(model.parameters()), "lr": 1e-3, "weight_decay": 0.01}]
    return Training(make_accelerator("cpu", "fp32"), model, compute_loss, groups, total_steps=steps, warmup_ratio=0.0, schedule="constant")


def worker(rank: int, port: int, model_dir: str, out: str, grad_accum: int = 1) -> None:
    os.environ.update(WORLD_SIZE=str(WORLD), RANK=str(rank), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    assert distributed.init_from_env()
    try:
        tokens, labels, pad_id = data(model_dir)
        model, collate = build(model_dir, tokens, labels, pad_id)
        sampler = LengthBucketBatchSampler(tokens.lengths, PER_RANK_BATCH // grad_accum, bucket_size=2, seed=0)
        loader = torch.utils.data.DataLoader(range(len(TEXTS)), batch_sampler=distributed.shard(sampler), collate_fn=collate)
        training = training_for(model, compute_loss, steps=len(loader))
        assert type(training.module).__name__ == "DistributedDataParallel"  # accelerate wrapped it
        stats = train_epoch(training, loader, grad_accum=grad_accum, progress=False, log_every=grad_accum)
        predictions = predict(model, tokens, pad_id, 3, torch.device("cpu"), "fp32")  # sharded across the ranks, gathered
        if distributed.is_main():
            torch.save({"state": model.state_dict(), "loss_curve": stats.loss_curve, "predictions": predictions}, out)
        distributed.barrier()
    finally:
        torch.distributed.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("grad_accum", [1, 2])
def test_two_gloo_processes_match_one_process_on_the_global_batch(tiny_model_dir, tmp_path, grad_accum):
    """2 ranks × `grad_accum` micro-batches of 4 / grad_accum rows = one process on batches of 8."""
    out = tmp_path / "rank0.pt"
    mp.spawn(worker, args=(free_port(), str(tiny_model_dir), str(out), grad_accum), nprocs=WORLD, join=True)
    result = torch.load(out, weights_only=False)

    # one process, the same seeds: global batch k = the k-th run of WORLD × grad_accum sampler batches
    # (rank r's micro-batches of step k are sampler batches r, r + WORLD, … of that run)
    tokens, labels, pad_id = data(str(tiny_model_dir))
    model, collate = build(str(tiny_model_dir), tokens, labels, pad_id)
    start = copy.deepcopy(model.state_dict())
    batches = list(LengthBucketBatchSampler(tokens.lengths, PER_RANK_BATCH // grad_accum, bucket_size=2, seed=0))
    per_step = WORLD * grad_accum
    global_batches = [sum(batches[i:i + per_step], []) for i in range(0, len(batches) - per_step + 1, per_step)]
    loader = torch.utils.data.DataLoader(range(len(TEXTS)), batch_sampler=global_batches, collate_fn=collate)
    stats = train_epoch(training_for(model, compute_loss, steps=len(loader)), loader, progress=False, log_every=1)

    assert len(global_batches) == 2 and len(result["loss_curve"]) == 2
    # the logged loss is the mean over both ranks' halves, and the update is the global batch's
    changed = 0
    for name, value in model.state_dict().items():
        torch.testing.assert_close(result["state"][name], value, rtol=1e-4, atol=5e-6, msg=name)
        changed += int(not torch.equal(value, start[name]))
    assert changed > 10
    # equal halves: the mean over ranks of each half's mean loss is the global batch's mean loss
    np.testing.assert_allclose(result["loss_curve"], stats.loss_curve, rtol=1e-5)
    # the gathered predictions cover every row, in the original order
    expected = predict(model, tokens, pad_id, 3, torch.device("cpu"), "fp32")
    np.testing.assert_allclose(result["predictions"], expected, rtol=1e-4, atol=1e-5)


def failing_rank0_worker(rank: int, port: int, out: str) -> None:
    """Rank 0 fails inside `main_first` (as a refused input does in open_run); every rank records
    what it raised, and then runs one more collective to prove nobody is left waiting."""
    from kagglebert.core.errors import RunError

    os.environ.update(WORLD_SIZE=str(WORLD), RANK=str(rank), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    assert distributed.init_from_env()
    try:
        try:
            with distributed.main_first():
                if distributed.is_main():
                    raise RunError("data/train.csv: row 3, column 'toxic': not 0 or 1")
            outcome = "went on"
        except RunError as err:
            outcome = str(err)
        with open(f"{out}.{rank}", "w") as f:
            f.write(outcome)
        distributed.barrier()
    finally:
        torch.distributed.destroy_process_group()


def test_a_failure_on_rank_0_stops_the_other_ranks_with_its_message(tmp_path):
    out = tmp_path / "outcome"
    mp.spawn(failing_rank0_worker, args=(free_port(), str(out)), nprocs=WORLD, join=True)
    assert (tmp_path / "outcome.0").read_text() == "data/train.csv: row 3, column 'toxic': not 0 or 1"
    assert (tmp_path / "outcome.1").read_text() == "rank 1 stopped: rank 0 failed: data/train.csv: row 3, column 'toxic': not 0 or 1"


def ordered_worker(rank: int, port: int, out: str) -> None:
    os.environ.update(WORLD_SIZE=str(WORLD), RANK=str(rank), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    assert distributed.init_from_env()
    try:
        with distributed.main_first():
            with open(out, "a") as f:
                f.write(str(rank))
    finally:
        torch.distributed.destroy_process_group()


def test_main_first_runs_rank_0_before_the_others(tmp_path):
    out = tmp_path / "order"
    mp.spawn(ordered_worker, args=(free_port(), str(out)), nprocs=WORLD, join=True)
    assert out.read_text() == "01"
