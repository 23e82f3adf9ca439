"""The real CLI end to end on a tiny BERT and a few hundred real rows: every output file of
`python -m kagglebert run`, reuse on a second run, refusal of a changed config, resumed training."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from kagglebert.core.config import tomllib  # tomli on Python 3.10
from kagglebert.core.runs import read_run
from kagglebert.core.tasks import JIGSAW_TOXIC_2018

from conftest import read_raw_csv

LABELS = JIGSAW_TOXIC_2018.label_columns
# the LM corpus without the 600 (long) test comments: the e2e run stays well under a minute on 2 cores
FAST = {"lm.include_test": "false"}


@pytest.fixture(scope="module")
def e2e(tmp_path_factory, sample_dir, tiny_model_dir, run_cli, small_run_args):
    """One full `run`, shared by every assertion of this module."""
    work = tmp_path_factory.mktemp("e2e")
    args = ["run", "--config", "demo", *small_run_args(sample_dir, tiny_model_dir, work, **FAST)]
    proc = run_cli(*args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {"work": work, "run": work / "runs" / "demo", "submission": work / "submissions" / "demo.csv",
            "args": args, "proc": proc}


def test_config_toml_is_the_resolved_config(e2e, sample_dir, tiny_model_dir):
    saved = tomllib.loads((e2e["run"] / "config.toml").read_text())
    assert saved["data"]["dir"] == str(sample_dir)
    assert saved["model"]["name"] == str(tiny_model_dir)
    assert saved["data"]["n_folds"] == 2 and saved["train"]["epochs"] == 1 and saved["lm"]["epochs"] == 1
    assert saved["model"]["truncation"] == "head+tail"  # from configs/demo.toml, not a default


def test_folds_csv_covers_the_subsample(e2e):
    folds = pd.read_csv(e2e["run"] / "folds.csv", dtype={"id": str})
    assert list(folds.columns) == ["id", "fold"]
    assert len(folds) == 200 and folds["id"].is_unique
    assert sorted(folds["fold"].unique()) == [0, 1]
    assert abs((folds["fold"] == 0).sum() - 100) <= 5


def test_eda_outputs(e2e):
    eda = e2e["run"] / "eda"
    summary = json.loads((eda / "summary.json").read_text())
    assert summary["train_rows"] == 200 and summary["test_rows"] == 200  # data.max_rows bounds test rows too
    prevalence = pd.read_csv(eda / "prevalence.csv")
    assert list(prevalence["label"]) == LABELS
    assert ((prevalence["share"] >= 0) & (prevalence["share"] <= 1)).all()
    lengths = pd.read_csv(eda / "lengths.csv")
    assert len(lengths) == 400 and set(lengths["split"]) == {"train", "test"}
    assert (lengths["tokens"] > 0).mean() > 0.99
    cooccurrence = pd.read_csv(eda / "cooccurrence.csv", index_col=0)
    assert list(cooccurrence.index) == LABELS and list(cooccurrence.columns) == LABELS
    assert (eda / "length_summary.csv").stat().st_size > 0


def test_lm_stage_outputs(e2e):
    lm = read_run(e2e["work"] / "runs", "demo").lm_dir
    assert json.loads((lm / "config.json").read_text())["hidden_size"] == 32
    assert (lm / "model.safetensors").stat().st_size > 0
    assert (lm / "tokenizer.json").is_file()
    metrics = json.loads((lm / "lm_metrics.json").read_text())
    assert metrics["perplexity_before"] > 1 and metrics["perplexity_after"] > 1
    assert metrics["lm_tokens_per_s"] > 0 and metrics["train_blocks"] > 0 and metrics["heldout_blocks"] >= 1
    # the classifier folds started from the LM stage's output, not from model.name
    record = json.loads((e2e["run"] / "folds" / "fold0_record.json").read_text())
    assert record["checkpoint"] == str(lm)


def test_oof_predictions(e2e):
    folds = pd.read_csv(e2e["run"] / "folds.csv", dtype={"id": str})
    oof = pd.read_csv(e2e["run"] / "oof.csv", dtype={"id": str})
    assert list(oof.columns) == ["id", *LABELS]
    assert list(oof["id"]) == list(folds["id"])  # the (subsampled) train ids, in train order
    values = oof[LABELS].to_numpy()
    assert np.isfinite(values).all() and (values >= 0).all() and (values <= 1).all()


def test_test_predictions_and_submission(e2e, sample_dir):
    sample = pd.read_csv(sample_dir / "sample_submission.csv", dtype={"id": str})
    test_pred = pd.read_csv(e2e["run"] / "test_pred.csv", dtype={"id": str})
    assert list(test_pred.columns) == ["id", *LABELS] and len(test_pred) == 200  # data.max_rows=200 of 600
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


def test_metrics_json(e2e):
    metrics = json.loads((e2e["run"] / "metrics.json").read_text())
    for key in ("oof_auc", "fold_auc", "per_label_auc", "train_samples_per_s",
                "perplexity_before", "perplexity_after", "lm_tokens_per_s"):
        assert key in metrics, key
    assert 0 <= metrics["oof_auc"] <= 1
    assert len(metrics["fold_auc"]) == 2
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
    assert {p: p.stat().st_mtime_ns for p in before} == before


def test_changed_config_under_same_name_is_refused(e2e, run_cli):
    before = e2e["submission"].read_bytes()
    proc = run_cli(*e2e["args"], "--set", "train.lr=0.001")
    assert proc.returncode == 2
    error = proc.stderr.strip().splitlines()[-1]
    assert error.startswith("error: ")
    assert "this run was made with another config (train.lr: 6e-05 → 0.001)" in error
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
    assert len(metrics["fold_auc"]) == 2 and 0 <= metrics["oof_auc"] <= 1
    assert len(pd.read_csv(run / "oof.csv")) == 120
