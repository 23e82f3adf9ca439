"""The real CLI end to end on a tiny BERT and a few hundred real rows: every output file of
`python -m kagglebert run`, reuse on a second run, refusal of a changed config, resumed training.

The rows are real comments whose labels the tiny model can learn in a few steps: every positive
comment starts with its labels' marker words (a toxic one with "idiot idiot idiot", …). So the LM's
held-out perplexity must fall and the classifier must beat chance by a wide margin; a pipeline
that trained nothing, or trained on shuffled labels, fails here."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from safetensors.torch import load_file

from kagglebert.core.config import tomllib  # tomli on Python 3.10
from kagglebert.core.runs import read_run
from kagglebert.core.tasks import JIGSAW_TOXIC_2018, mean_column_auc

from conftest import read_raw_csv

LABELS = JIGSAW_TOXIC_2018.label_columns
MARKERS = {"toxic": "idiot", "severe_toxic": "moron", "obscene": "crap", "threat": "kill", "insult": "loser", "identity_hate": "bigot"}
# the LM corpus without the test comments (the e2e run stays well under a minute on 2 cores), and
# learning rates and batches at which a random hidden-32 BERT learns the markers in 2 short epochs
LEARNABLE = {"lm.include_test": "false", "lm.lr": 3e-3, "lm.head_lr": 3e-2, "lm.batch_size": 8,
             "train.lr": 3e-3, "train.head_lr": 3e-2, "train.batch_size": 16, "train.epochs": 2}


@pytest.fixture(scope="module")
def learnable_dir(sample_dir, tmp_path_factory):
    """The sample's rows with each positive comment prefixed by its labels' marker words."""
    folder = tmp_path_factory.mktemp("learnable")
    train = read_raw_csv(sample_dir / "train.csv")
    prefix = train[LABELS].apply(lambda row: " ".join(f"{MARKERS[label]} " * 3 for label in LABELS if row[label] == "1"), axis=1)
    train["comment_text"] = prefix + train["comment_text"]
    train.to_csv(folder / "train.csv", index=False)
    for name in ("test.csv", "sample_submission.csv"):
        (folder / name).write_bytes((sample_dir / name).read_bytes())
    return folder


@pytest.fixture(scope="module")
def e2e(tmp_path_factory, learnable_dir, tiny_model_dir, run_cli, small_run_args):
    """One full `run`, shared by every assertion of this module."""
    work = tmp_path_factory.mktemp("e2e")
    args = ["run", "--config", "demo", *small_run_args(learnable_dir, tiny_model_dir, work, **LEARNABLE)]
    proc = run_cli(*args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {"work": work, "run": work / "runs" / "demo", "submission": work / "submissions" / "demo.csv",
            "args": args, "proc": proc}


def test_config_toml_is_the_resolved_config(e2e, learnable_dir, tiny_model_dir):
    saved = tomllib.loads((e2e["run"] / "config.toml").read_text())
    assert saved["data"]["dir"] == str(learnable_dir)
    assert saved["model"]["name"] == str(tiny_model_dir)
    assert saved["data"]["n_folds"] == 2 and saved["train"]["epochs"] == 2 and saved["lm"]["epochs"] == 1
    assert saved["model"]["truncation"] == "head+tail"  # from configs/demo.toml, not a default


def test_folds_csv_covers_the_subsample(e2e):
    folds = pd.read_csv(e2e["run"] / "folds.csv", dtype={"id": str})
    assert list(folds.columns) == ["id", "fold"]
    assert len(folds) == 200 and folds["id"].is_unique
    assert sorted(folds["fold"].unique()) == [0, 1]
    assert abs((folds["fold"] == 0).sum() - 100) <= 5


def train_subsample(e2e, learnable_dir) -> pd.DataFrame:
    """The 200 train rows the run used (folds.csv's ids), with their labels as numbers."""
    ids = pd.read_csv(e2e["run"] / "folds.csv", dtype={"id": str})["id"]
    train = read_raw_csv(learnable_dir / "train.csv").set_index("id").loc[ids]
    return train[LABELS].astype(int).reset_index()


def test_eda_outputs(e2e, learnable_dir):
    eda = e2e["run"] / "eda"
    summary = json.loads((eda / "summary.json").read_text())
    # data.max_test_rows = 200 draws 200 test rows (a quick run, marked as a sample run)
    assert summary["train_rows"] == 200 and summary["test_rows"] == 200 and summary["test_subsampled"]
    prevalence = pd.read_csv(eda / "prevalence.csv").set_index("label")
    assert list(prevalence.index) == LABELS
    train = train_subsample(e2e, learnable_dir)
    assert prevalence["positives"].to_dict() == train[LABELS].sum().to_dict()
    np.testing.assert_allclose(prevalence["share"], train[LABELS].mean().to_numpy())
    assert summary["any_label_share"] == pytest.approx((train[LABELS].sum(axis=1) > 0).mean())
    lengths = pd.read_csv(eda / "lengths.csv")
    assert len(lengths) == 400 and (lengths["split"] == "train").sum() == 200
    assert (lengths["tokens"] > 0).mean() > 0.99
    cooccurrence = pd.read_csv(eda / "cooccurrence.csv", index_col=0)
    assert list(cooccurrence.index) == LABELS and list(cooccurrence.columns) == LABELS
    length_summary = pd.read_csv(eda / "length_summary.csv", index_col=[0, 1])
    assert length_summary.loc[("chars", "count"), "train"] == 200 and length_summary.loc[("chars", "count"), "test"] == 200


def test_lm_stage_outputs(e2e, tiny_model_dir):
    lm = read_run(e2e["work"] / "runs", "demo").lm_dir
    assert json.loads((lm / "config.json").read_text())["hidden_size"] == 32
    assert (lm / "tokenizer.json").is_file()
    trained, start = load_file(str(lm / "model.safetensors")), load_file(str(tiny_model_dir / "model.safetensors"))
    name = "bert.encoder.layer.0.attention.self.query.weight"
    assert trained[name].shape == start[name].shape == (32, 32) and not torch.equal(trained[name], start[name])
    metrics = json.loads((lm / "lm_metrics.json").read_text())
    # a random model starts near the vocabulary size (~30k); one epoch on the corpus must cut that a lot
    assert metrics["perplexity_before"] > 20_000
    assert metrics["perplexity_after"] < 0.75 * metrics["perplexity_before"]
    total = metrics["train_blocks"] + metrics["heldout_blocks"]
    assert metrics["heldout_blocks"] == max(1, round(total * 0.05)) and metrics["train_blocks"] > 100
    assert metrics["lm_tokens_per_s"] > 0 and not metrics["fresh_mlm_head"]
    assert not list(lm.parent.glob(".*")), "no resumable state or temporary folder left once the LM is complete"
    # the classifier folds started from the LM stage's output, not from model.name
    record = json.loads((e2e["run"] / "folds" / "fold0_record.json").read_text())
    assert record["checkpoint"] == str(lm)


def test_oof_predictions(e2e, learnable_dir):
    folds = pd.read_csv(e2e["run"] / "folds.csv", dtype={"id": str})
    oof = pd.read_csv(e2e["run"] / "oof.csv", dtype={"id": str})
    assert list(oof.columns) == ["id", *LABELS]
    assert list(oof["id"]) == list(folds["id"])  # the (subsampled) train ids, in train order
    values = oof[LABELS].to_numpy()
    assert np.isfinite(values).all() and (values >= 0).all() and (values <= 1).all()
    # the markers were learned: toxic (54 positives of 200) is ranked far above chance out of fold
    labels = train_subsample(e2e, learnable_dir)
    assert mean_column_auc(labels[["toxic"]].to_numpy(), oof[["toxic"]].to_numpy(), ["toxic"])["score"] > 0.75


def test_fold_weights_are_saved_and_predict_the_fold(e2e):
    from kagglebert.core.checkpoint import load_classifier
    from kagglebert.core.modeling import predict
    from kagglebert.core.tokenization import tokenize

    run = read_run(e2e["work"] / "runs", "demo")
    record = json.loads(run.fold_file(0, "record.json").read_text())
    model, tokenizer, meta = load_classifier(run.fold_model_dir(0), device=torch.device("cpu"), task=JIGSAW_TOXIC_2018)
    assert meta["dtype"] == "fp16" and meta["truncation"] == "head+tail"
    fold_test = pd.read_csv(run.fold_file(0, "test.csv"), dtype={"id": str})
    texts = read_raw_csv(f"{run.cfg.data.dir}/test.csv").set_index("id").loc[fold_test["id"], "comment_text"].tolist()
    tokens = tokenize(tokenizer, texts, max_length=meta["max_length"], truncation=meta["truncation"], head_tokens=meta["head_tokens"])
    # the saved fp16 weights reproduce the fold's own test predictions to within fp16 rounding
    np.testing.assert_allclose(predict(model, tokens, tokenizer.pad_token_id, 64, torch.device("cpu"), "fp32"),
                               fold_test[LABELS].to_numpy(), atol=2e-3)
    assert record["best_epoch"] in (1, 2)


def test_test_predictions_and_submission(e2e, learnable_dir):
    sample = pd.read_csv(learnable_dir / "sample_submission.csv", dtype={"id": str})
    test_pred = pd.read_csv(e2e["run"] / "test_pred.csv", dtype={"id": str})
    assert list(test_pred.columns) == ["id", *LABELS] and len(test_pred) == 200  # data.max_test_rows=200 of 600
    submission = pd.read_csv(e2e["submission"], dtype={"id": str})
    assert list(submission.columns) == list(sample.columns)
    kept = set(test_pred["id"])
    assert list(submission["id"]) == [i for i in sample["id"] if i in kept]  # sample_submission's row order
    assert "(sample run: not the full test set" in e2e["proc"].stdout
    values = submission[LABELS].to_numpy()
    assert np.isfinite(values).all() and (values >= 0).all() and (values <= 1).all()
    by_id = test_pred.set_index("id").loc[submission["id"], LABELS].to_numpy()
    np.testing.assert_allclose(values, by_id, rtol=1e-5, atol=1e-6)
    assert "kaggle competitions submit -c jigsaw-toxic-comment-classification-challenge" in e2e["proc"].stdout


def test_metrics_json(e2e, learnable_dir):
    metrics = json.loads((e2e["run"] / "metrics.json").read_text())
    for key in ("oof_auc", "fold_auc", "per_label_auc", "train_samples_per_s",
                "perplexity_before", "perplexity_after", "lm_tokens_per_s"):
        assert key in metrics, key
    # the OOF score is the metric recomputed from oof.csv, and each fold learned the markers
    oof = pd.read_csv(e2e["run"] / "oof.csv", dtype={"id": str})
    labels = train_subsample(e2e, learnable_dir)
    assert metrics["oof_auc"] == pytest.approx(mean_column_auc(labels[LABELS].to_numpy(), oof[LABELS].to_numpy(), LABELS)["score"])
    assert len(metrics["fold_auc"]) == 2 and min(metrics["fold_auc"]) > 0.8
    assert set(metrics["per_label_auc"]) == set(LABELS)
    assert metrics["train_samples_per_s"] > 0
    lm_metrics = json.loads((read_run(e2e["work"] / "runs", "demo").lm_metrics_path).read_text())
    assert metrics["perplexity_after"] == lm_metrics["perplexity_after"]


def test_second_run_reuses_outputs(e2e, run_cli):
    before = {p: p.stat().st_mtime_ns for p in (e2e["submission"], e2e["run"] / "metrics.json", read_run(e2e["work"] / "runs", "demo").lm_metrics_path)}
    proc = run_cli(*e2e["args"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "lm: reusing" in proc.stderr
    assert "train: reusing" in proc.stderr
    assert "submit: reusing" in proc.stderr
    assert "near chance" not in proc.stderr  # this run learned the markers
    assert {p: p.stat().st_mtime_ns for p in before} == before


def test_a_transformer_near_chance_is_flagged_with_fixes_on_the_command_line(e2e, run_cli, tmp_path):
    """The CLI says what notebook 04 says: a transformer at OOF AUC 0.55 learned next to nothing."""
    work = tmp_path / "copy"
    shutil.copytree(e2e["work"], work)
    metrics_path = work / "runs" / "demo" / "metrics.json"
    metrics_path.write_text(json.dumps({**json.loads(metrics_path.read_text()), "oof_auc": 0.55}))
    args = [str(a).replace(str(e2e["work"]), str(work)) for a in e2e["args"]]
    proc = run_cli("train", *args[1:])
    assert proc.returncode == 0, proc.stderr[-3000:]
    warning = next(line for line in proc.stderr.splitlines() if "near chance" in line)
    assert "demo: OOF AUC 0.5500 is near chance (0.5)" in warning and "likely fixes: more rows (data.max_rows = 200 now" in warning


def test_changed_config_under_same_name_is_refused(e2e, run_cli):
    before = e2e["submission"].read_bytes()
    proc = run_cli(*e2e["args"], "--set", "train.lr=0.001")
    assert proc.returncode == 2
    error = proc.stderr.strip().splitlines()[-1]
    assert error.startswith("error: ")
    assert "this run was made with another config (train.lr: 0.003 → 0.001)" in error
    assert "--set run.name=" in error
    assert e2e["submission"].read_bytes() == before


@pytest.fixture()
def short_test_dir(sample_dir, tmp_path):
    """The sample with only 100 test rows: resuming is about folds, not about test predictions."""
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "train.csv").write_bytes((sample_dir / "train.csv").read_bytes())
    for name in ("test.csv", "sample_submission.csv"):
        read_raw_csv(sample_dir / name).head(100).to_csv(folder / name, index=False)
    return folder


def test_resumed_training_skips_finished_folds(tmp_path, short_test_dir, tiny_model_dir, run_cli, small_run_args):
    overrides = {"lm.epochs": 0, "run.name": "resume", "data.max_rows": 120}
    base = ["--config", "demo", *small_run_args(short_test_dir, tiny_model_dir, tmp_path, **overrides)]
    run = tmp_path / "runs" / "resume"

    first = run_cli("train", *base, "--set", "train.folds=[0]")
    assert first.returncode == 0, first.stderr[-3000:]
    record = run / "folds" / "fold0_record.json"
    assert record.is_file()
    assert not (run / "folds" / "fold1_record.json").exists()
    assert not (run / "metrics.json").exists()  # one fold of two: no OOF score yet
    stamp = record.stat().st_mtime_ns

    second = run_cli("train", *base)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "train: folds [0] already complete" in second.stderr
    assert "fold 0 epoch" not in second.stderr and "fold 1 epoch 1/1" in second.stderr
    assert record.stat().st_mtime_ns == stamp
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["fold_auc"][0] == json.loads(record.read_text())["score"]  # fold 0's score from the first command
    assert len(pd.read_csv(run / "oof.csv")) == 120


def test_a_deleted_oof_csv_is_assembled_again_from_the_fold_files(e2e, run_cli):
    """A finished run whose oof.csv is gone is not called finished: `train` assembles it again from
    the fold files, without training a fold."""
    oof = e2e["run"] / "oof.csv"
    before = oof.read_bytes()
    oof.unlink()
    proc = run_cli("train", *e2e["args"][1:])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert oof.read_bytes() == before
    assert "already complete" in proc.stderr and "epoch 1/1" not in proc.stderr

