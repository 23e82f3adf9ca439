"""Full-size workflows on the bundled rows: a model trained on a training subsample still predicts
every test row (a complete submission), and one stratified validation split (data.valid_frac)
instead of k folds, end to end through the real CLI, with blend on such runs."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from kagglebert import cli
from kagglebert.core.folds import TRAIN_ONLY, make_folds
from kagglebert.core.tasks import JIGSAW_TOXIC_2018

from conftest import read_raw_csv

LABELS = JIGSAW_TOXIC_2018.label_columns


def overrides(data_dir, work, **extra) -> list[str]:
    values = {"data.dir": data_dir, "run.runs_dir": work / "runs", "submit.dir": work / "submissions",
              "data.cache_dir": work / "cache", "run.progress": "false", **extra}
    return [a for k, v in values.items() for a in ("--set", f"{k}={v}")]


def test_single_split_is_stratified_and_marks_train_only_rows(sample_dir):
    train = read_raw_csv(sample_dir / "train.csv")
    targets = train[LABELS].astype(int).to_numpy()
    folds = make_folds(train["id"], targets, n_folds=5, seed=3, valid_frac=0.2)
    valid = folds["fold"].to_numpy() == 0
    assert set(folds["fold"]) == {0, TRAIN_ONLY} and valid.sum() == 60  # 20% of 300
    assert folds["id"].tolist() == train["id"].tolist()
    # stratified like the folds: the toxic share of the validation rows is the file's, within a row
    assert abs(targets[valid, 0].sum() - 0.2 * targets[:, 0].sum()) <= 1
    again = make_folds(train["id"], targets, n_folds=5, seed=3, valid_frac=0.2)
    assert again.equals(folds)


@pytest.fixture(scope="module")
def split_runs(sample_dir, tmp_path_factory, run_cli):
    """Two TF-IDF runs through the real CLI, trained on a 200-row subsample with one 20% split."""
    work = tmp_path_factory.mktemp("scale")
    common = {"data.max_rows": 200, "data.valid_frac": 0.2}
    procs = {}
    for name, extra in (("split-a", {}), ("split-b", {"train.C": 0.5})):
        procs[name] = run_cli("run", "--config", "tfidf", *overrides(sample_dir, work, **common, **{"run.name": name}, **extra))
        assert procs[name].returncode == 0, procs[name].stderr[-3000:]
    return work, procs


def test_subsample_trained_single_split_run_writes_a_complete_submission(split_runs, sample_dir):
    work, procs = split_runs
    run = work / "runs" / "split-a"
    metrics = json.loads((run / "metrics.json").read_text())
    # one model over 80% of the 200 rows, out-of-fold predictions on the other 40 only, and said so
    assert metrics["train_rows"] == 200 and metrics["oof_rows"] == 40 and metrics["valid_frac"] == 0.2
    assert metrics["oof_scope"].startswith("single split: oof.csv holds the validation rows only")
    assert len(metrics["fold_auc"]) == 1 and metrics["fold_auc"][0] == pytest.approx(metrics["oof_auc"])
    folds = pd.read_csv(run / "folds.csv", dtype={"id": str})
    assert len(folds) == 200 and (folds["fold"] == 0).sum() == 40 and (folds["fold"] == TRAIN_ONLY).sum() == 160
    oof = pd.read_csv(run / "oof.csv", dtype={"id": str})
    assert oof["id"].tolist() == folds.loc[folds["fold"] == 0, "id"].tolist()  # the validation rows, in file order
    assert not (run / "folds" / "fold1_record.json").exists()
    # data.max_rows cut the training rows only: every one of the 600 test rows is predicted, and the
    # submission was validated against the full sample_submission (same ids, same order)
    sample = read_raw_csv(sample_dir / "sample_submission.csv")
    assert len(pd.read_csv(run / "test_pred.csv")) == 600
    submission = read_raw_csv(work / "submissions" / "split-a.csv")
    assert list(submission.columns) == list(sample.columns) and submission["id"].tolist() == sample["id"].tolist()
    assert np.isfinite(submission[LABELS].astype(float).to_numpy()).all()
    assert "40 validation rows of one split" in procs["split-a"].stderr


def test_blend_of_single_split_runs_scores_the_validation_rows(split_runs, capsys):
    work, _ = split_runs
    code = cli.main(["blend", "--runs", "split-a", "split-b", "--name", "split-blend", "--runs-dir", str(work / "runs"),
                     "--submissions-dir", str(work / "submissions")])
    assert code == 0, capsys.readouterr().err
    metrics = json.loads((work / "runs" / "split-blend" / "metrics.json").read_text())
    assert metrics["oof_rows"] == 40 and metrics["train_rows"] == 200 and metrics["oof_auc_nested"] is not None
    assert len(pd.read_csv(work / "runs" / "split-blend" / "oof.csv")) == 40


def test_blend_refuses_runs_with_other_validation_rows(split_runs, sample_dir, run_cli, capsys):
    work, _ = split_runs
    proc = run_cli("run", "--config", "tfidf", *overrides(sample_dir, work, **{
        "data.max_rows": 200, "data.valid_frac": 0.2, "data.fold_seed": 7, "run.name": "split-other"}))
    assert proc.returncode == 0, proc.stderr[-3000:]
    for other in ("split-other",):
        code = cli.main(["blend", "--runs", "split-a", other, "--name", "bad-split-blend", "--runs-dir", str(work / "runs"),
                         "--submissions-dir", str(work / "submissions")])
        err = capsys.readouterr().err.strip()
        assert code == 2 and err.startswith("error: ") and "\n" not in err
        assert "other validation rows" in err and "data.valid_frac" in err
    assert not (work / "runs" / "bad-split-blend").exists()


@pytest.mark.slow
def test_single_split_transformer_run_end_to_end(sample_dir, tiny_model_dir, tmp_path, run_cli, small_run_args):
    """The transformer path: one fold model, its OOF on the validation rows, all 600 test rows predicted."""
    args = small_run_args(sample_dir, tiny_model_dir, tmp_path, **{
        "data.valid_frac": 0.25, "data.max_test_rows": 0, "lm.epochs": 0, "model.max_length": 64, "run.device": "cpu"})
    proc = run_cli("run", "--config", "demo", *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = tmp_path / "runs" / "demo"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["oof_rows"] == 50 and len(pd.read_csv(run / "oof.csv")) == 50
    assert (run / "folds" / "fold0_model").is_dir() and not (run / "folds" / "fold1_record.json").exists()
    assert len(pd.read_csv(run / "test_pred.csv")) == 600
