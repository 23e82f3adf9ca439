"""Faults in the middle of training, through the real CLI: kill -9 during LM epoch 2 or during fold 1,
then the same command again, ends with exactly what an uninterrupted run writes; a fold whose model
folder is gone is trained again; Ctrl-C is one line naming where it stopped, exit 130."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import cli_env, read_raw_csv
from kagglebert.core.paths import REPO_ROOT

pytestmark = pytest.mark.slow  # eight tiny CLI runs in all: about a minute of CPU

POLL_S = 0.005


def start_cli(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "kagglebert", *map(str, args)], cwd=REPO_ROOT, env=cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stop_when(proc: subprocess.Popen, ready, sig: int, timeout: float = 240) -> tuple[str, str]:
    """Send `sig` to `proc` as soon as `ready()` holds (polled every few ms), then wait for it."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, f"the run ended before the moment to stop it: {proc.stderr.read()[-3000:]}"
        assert time.monotonic() < deadline, "the moment to stop the run never came"
        time.sleep(POLL_S)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    return out, err


def same_tensors(a: Path, b: Path) -> None:
    left, right = load_file(str(a)), load_file(str(b))
    assert left.keys() == right.keys()
    for name in left:
        assert torch.equal(left[name], right[name]), name


def short_test_copy(sample_dir: Path, folder: Path) -> Path:
    """The sample with 100 test rows: the faults are about training, not about test predictions."""
    folder.mkdir()
    (folder / "train.csv").write_bytes((sample_dir / "train.csv").read_bytes())
    for name in ("test.csv", "sample_submission.csv"):
        read_raw_csv(sample_dir / name).head(100).to_csv(folder / name, index=False)
    return folder


@pytest.fixture()
def data_dir(sample_dir, tmp_path):
    return short_test_copy(sample_dir, tmp_path / "data")


def lm_args(data_dir, model_dir, work, small_run_args):
    return ["lm", "--config", "demo", *small_run_args(data_dir, model_dir, work, **{
        "lm.epochs": 2, "lm.include_test": "false", "lm.batch_size": 8, "data.max_rows": 120})]


@pytest.fixture(scope="module")
def lm_reference(tmp_path_factory, sample_dir, tiny_model_dir, run_cli, small_run_args) -> Path:
    """One uninterrupted 2-epoch LM stage (its `_lm/<key>` folder), the reference both killed LM
    runs must equal: same settings, same file contents, so the same LM key (each test asserts it)."""
    work = tmp_path_factory.mktemp("lm-reference")
    data = short_test_copy(sample_dir, work / "data")
    whole = run_cli(*lm_args(data, tiny_model_dir, work, small_run_args))
    assert whole.returncode == 0, whole.stderr[-3000:]
    [reference] = (work / "runs" / "_lm").iterdir()
    return reference


def test_lm_killed_in_epoch_2_resumes_to_the_uninterrupted_result(lm_reference, data_dir, tiny_model_dir, tmp_path, run_cli, small_run_args):
    reference = lm_reference

    work = tmp_path / "killed"
    store = work / "runs" / "_lm"
    args = lm_args(data_dir, tiny_model_dir, work, small_run_args)

    def epoch_1_saved() -> bool:
        progress = list(store.glob(".*.partial/progress.json")) if store.is_dir() else []
        return bool(progress) and json.loads(progress[0].read_text())["epochs_done"] == 1

    killed = start_cli(*args)
    stop_when(killed, epoch_1_saved, signal.SIGKILL)
    assert killed.returncode == -signal.SIGKILL
    lm_dir = store / reference.name
    assert not (lm_dir / "lm_metrics.json").exists(), "epoch 2 ended before the kill: the test proved nothing"

    resumed = run_cli(*args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "lm: resuming after epoch 1 of 2" in resumed.stderr
    assert "lm epoch 1/2" not in resumed.stderr and "lm epoch 2/2" in resumed.stderr
    assert lm_dir.name == reference.name  # same settings and inputs: the same LM key
    got, expected = (json.loads((d / "lm_metrics.json").read_text()) for d in (lm_dir, reference))
    assert (got["perplexity_before"], got["perplexity_after"]) == (expected["perplexity_before"], expected["perplexity_after"])
    assert [e["loss_curve"] for e in got["epochs"]] == [e["loss_curve"] for e in expected["epochs"]]
    same_tensors(lm_dir / "model.safetensors", reference / "model.safetensors")
    assert not list(store.glob(".*")), "the resumable state and temporary folders are gone once the LM is complete"


def train_args(data_dir, model_dir, work, small_run_args, **extra):
    return ["train", "--config", "demo", *small_run_args(data_dir, model_dir, work, **{
        "lm.epochs": 0, "train.epochs": 2, "data.max_rows": 160, **extra})]


@pytest.fixture(scope="module")
def train_reference(tmp_path_factory, sample_dir, tiny_model_dir, run_cli, small_run_args):
    """One uninterrupted `train` (2 folds, 2 epochs), the reference the faulted runs must equal."""
    work = tmp_path_factory.mktemp("reference")
    data = short_test_copy(sample_dir, work / "data")
    proc = run_cli(*train_args(data, tiny_model_dir, work, small_run_args))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {"data": data, "run": work / "runs" / "demo"}


def test_training_killed_in_fold_1_resumes_byte_identical(train_reference, tiny_model_dir, tmp_path, run_cli, small_run_args):
    reference = train_reference["run"]
    work = tmp_path / "killed"
    run = work / "runs" / "demo"
    args = train_args(train_reference["data"], tiny_model_dir, work, small_run_args)
    killed = start_cli(*args)
    stop_when(killed, lambda: (run / "folds" / "fold0_record.json").is_file(), signal.SIGKILL)
    assert not (run / "folds" / "fold1_record.json").exists(), "fold 1 ended before the kill: the test proved nothing"
    assert (run / "folds" / "fold0_model").is_dir()  # written before its record

    resumed = run_cli(*args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "train: folds [0] already complete" in resumed.stderr and "fold 0 epoch" not in resumed.stderr
    for name in ("oof.csv", "test_pred.csv", "folds/fold1_oof.csv", "folds/fold1_test.csv"):
        assert (run / name).read_bytes() == (reference / name).read_bytes(), name
    for fold in (0, 1):
        for name in ("model.safetensors", "head.safetensors", "kagglebert.json"):
            assert (run / "folds" / f"fold{fold}_model" / name).read_bytes() == (reference / "folds" / f"fold{fold}_model" / name).read_bytes()
    assert not [p for p in (run / "folds").iterdir() if p.name.startswith(".")], "no temporary left behind"


def test_save_models_off_keeps_no_weights_and_the_same_predictions(train_reference, tiny_model_dir, tmp_path, run_cli, small_run_args):
    off = run_cli(*train_args(train_reference["data"], tiny_model_dir, tmp_path, small_run_args, **{"train.save_models": "false"}))
    assert off.returncode == 0, off.stderr[-3000:]
    assert not list((tmp_path / "runs" / "demo" / "folds").glob("*_model"))
    # saving never touches the weights that predict: the same bytes as the run that saved its models
    assert (tmp_path / "runs" / "demo" / "oof.csv").read_bytes() == (train_reference["run"] / "oof.csv").read_bytes()
    meta = json.loads((train_reference["run"] / "folds" / "fold0_model" / "kagglebert.json").read_text())
    assert (meta["dtype"], meta["max_length"], meta["truncation"], meta["pooling"]) == ("fp16", 128, "head+tail", "mean")


def test_a_fold_without_its_model_folder_is_not_complete(tmp_path):
    from kagglebert.core.config import Config
    from kagglebert.core.runs import reader

    cfg = Config().replace(run={"runs_dir": str(tmp_path)})
    run = reader(cfg)
    run.fold_file(0, "record.json").parent.mkdir(parents=True)
    run.fold_file(0, "record.json").write_text("{}")
    assert not run.fold_complete(0)  # train.save_models is on by default: the weights are part of the fold
    run.fold_model_dir(0).mkdir()
    assert run.fold_complete(0)
    assert reader(cfg.replace(train={"save_models": False})).fold_complete(0)
    tfidf = reader(cfg.replace(model={"kind": "tfidf"}))
    assert not tfidf.fold_complete(0)  # a baseline keeps its models too: logistic regressions, vocabulary, IDF
    for path in (tfidf.fold_linear_path(0), tfidf.vectorizer_path, tfidf.vectorizer_idf_path):
        path.write_text("")
    assert tfidf.fold_complete(0)
    features = reader(cfg.replace(model={"kind": "features"}))
    assert features.fold_complete(0) and not features.fold_complete(1)  # its models: the fold's arrays only
    assert not run.fold_complete(1)


def test_ctrl_c_in_a_fold_is_one_line_naming_it(data_dir, tiny_model_dir, tmp_path, small_run_args):
    work = tmp_path / "work"
    proc = start_cli(*train_args(data_dir, tiny_model_dir, work, small_run_args, **{"train.epochs": 4}))
    # the token cache is written inside the fold loop's stage, before fold 0 trains: train's and
    # test's untruncated ids and the truncated view of each, one finished folder per entry
    _, err = stop_when(proc, lambda: len([p for p in (work / "cache").glob("tokens/*") if not p.name.startswith(".")]) == 4, signal.SIGINT)
    assert proc.returncode == 130, err[-3000:]
    assert err.strip().splitlines()[-1] == "interrupted in fold 0; rerun the same command to resume"
    assert "Traceback" not in err


def test_ctrl_c_in_the_lm_stage_names_the_epoch(data_dir, tiny_model_dir, tmp_path, small_run_args):
    work = tmp_path / "work"
    proc = start_cli(*lm_args(data_dir, tiny_model_dir, work, small_run_args))
    _, err = stop_when(proc, lambda: any((work / "runs" / "_lm").glob(".*.partial/progress.json")), signal.SIGINT)
    assert proc.returncode == 130, err[-3000:]
    assert err.strip().splitlines()[-1] == "interrupted in LM epoch 2; rerun the same command to resume"
    assert "Traceback" not in err


def test_a_saved_lm_state_for_another_corpus_is_not_resumed(tmp_path, caplog):
    from kagglebert.core.atomic import write_json
    from kagglebert.stages.lm import RESUME_FORMAT, load_progress

    plan = {"format": RESUME_FORMAT, "epochs": 2, "train_blocks": 139, "heldout_blocks": 7}
    assert load_progress(tmp_path, plan) is None  # nothing saved: start over
    write_json(tmp_path / "progress.json", {**plan, "epochs_done": 1})
    assert load_progress(tmp_path, plan)["epochs_done"] == 1
    with caplog.at_level("WARNING", logger="kagglebert"):
        assert load_progress(tmp_path, {**plan, "train_blocks": 140}) is None
    assert "ignoring the saved state" in caplog.text and "train_blocks: 139 there, 140 now" in caplog.text


# ---- inside an epoch: train.checkpoint_steps / lm.checkpoint_steps, a self-kill at a known checkpoint
def killed_at_checkpoint(args: list[str], checkpoints: int) -> subprocess.CompletedProcess:
    """The run SIGKILLs itself right after writing its `checkpoints`-th checkpoint inside an epoch
    (engine.KILL_AFTER_CHECKPOINTS): a crash at a known point, no timing involved."""
    from kagglebert.core.engine import KILL_AFTER_CHECKPOINTS

    return subprocess.run([sys.executable, "-m", "kagglebert", *map(str, args)], cwd=REPO_ROOT,
                          env={**cli_env(), KILL_AFTER_CHECKPOINTS: str(checkpoints)}, capture_output=True, text=True, timeout=300)


def test_training_killed_inside_an_epoch_resumes_to_the_uninterrupted_result(train_reference, tiny_model_dir, tmp_path, run_cli, small_run_args):
    reference = train_reference["run"]
    work = tmp_path / "killed"
    run = work / "runs" / "demo"
    # 80 training rows a fold, batches of 32: 3 steps an epoch, a checkpoint after steps 1 and 2 of each;
    # the 3rd checkpoint is in fold 0's second epoch, after its first epoch was scored
    args = train_args(train_reference["data"], tiny_model_dir, work, small_run_args, **{"train.checkpoint_steps": 1})
    killed = killed_at_checkpoint(args, 3)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    progress = json.loads((run / "folds" / ".fold0.partial" / "progress.json").read_text())
    assert (progress["epoch"], progress["stats"]["batches"], progress["best"]["epoch"]) == (1, 1, 1)
    assert not (run / "folds" / "fold0_record.json").exists()

    resumed = run_cli(*args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "fold 0: resuming in epoch 2 after batch 1" in resumed.stderr
    assert "fold 0 epoch 1/2" not in resumed.stderr and "fold 0 epoch 2/2" in resumed.stderr
    for name in ("oof.csv", "test_pred.csv", "folds/fold0_oof.csv", "folds/fold0_test.csv"):
        assert (run / name).read_bytes() == (reference / name).read_bytes(), name
    for name in ("model.safetensors", "head.safetensors"):
        assert (run / "folds" / "fold0_model" / name).read_bytes() == (reference / "folds" / "fold0_model" / name).read_bytes()
    record, expected = (json.loads((r / "folds" / "fold0_record.json").read_text()) for r in (run, reference))
    assert record["history"][0]["loss_curve"] == expected["history"][0]["loss_curve"]
    assert [h["score"] for h in record["history"]] == [h["score"] for h in expected["history"]]
    assert record["lr_schedule"] == expected["lr_schedule"]
    assert not [p for p in (run / "folds").iterdir() if p.name.startswith(".")], "the checkpoints go once their folds are complete"


def test_lm_killed_inside_an_epoch_resumes_to_the_uninterrupted_result(lm_reference, data_dir, tiny_model_dir, tmp_path, run_cli, small_run_args):
    reference = lm_reference

    work = tmp_path / "killed"
    store = work / "runs" / "_lm"
    args = lm_args(data_dir, tiny_model_dir, work, small_run_args) + ["--set", "lm.checkpoint_steps=1"]
    # a checkpoint after every step but an epoch's last: steps − 1 in epoch 1, then the first of epoch 2
    steps = -(-json.loads((reference / "lm_metrics.json").read_text())["train_blocks"] // 8)
    assert steps >= 3
    killed = killed_at_checkpoint(args, steps + 1)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    [partial] = store.glob(".*.partial")
    progress = json.loads((partial / "progress.json").read_text())
    assert progress["epochs_done"] == 1 and progress["open_epoch"]["batches"] > 0  # killed inside epoch 2

    resumed = run_cli(*args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"lm: resuming in epoch 2 of 2 after batch {progress['open_epoch']['batches']}" in resumed.stderr
    lm_dir = store / reference.name
    got, expected = (json.loads((d / "lm_metrics.json").read_text()) for d in (lm_dir, reference))
    assert (got["perplexity_before"], got["perplexity_after"]) == (expected["perplexity_before"], expected["perplexity_after"])
    assert [e["loss_curve"] for e in got["epochs"]] == [e["loss_curve"] for e in expected["epochs"]]
    same_tensors(lm_dir / "model.safetensors", reference / "model.safetensors")
    assert not list(store.glob(".*"))


def test_checkpoint_minutes_auto_is_on_for_a_gpu_only():
    from kagglebert.core.engine import checkpoint_minutes

    assert checkpoint_minutes(-1, torch.device("cuda")) == 20.0 and checkpoint_minutes(-1, torch.device("cpu")) == 0.0
    assert checkpoint_minutes(5, torch.device("cpu")) == 5 and checkpoint_minutes(0, torch.device("cuda")) == 0
