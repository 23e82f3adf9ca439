"""The quality gate: on the bundled real sample (no planted marker words), the TF-IDF baseline and a
short fine-tuning of the packaged MiniLM must score above floors set from measured values, both
out of fold and on the sample's 600 test rows against the competition's released labels
(sample_data/.../test_labels.csv). A change that quietly damages learning (a learning rate off by
100×, a weaker vectorizer: BREAKS below) fails here, where the marker-word tests elsewhere, which a
tiny model learns from planted words, may still pass.

Both scores are computed here, independently of kagglebert's own metric code: the OOF score from
the run's oof.csv against train.csv's labels, the test score from the written submission against
test_labels.csv (mean over the six labels of ROC AUC, rows labelled -1 left out, as Kaggle scored).
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from kagglebert.core.paths import BUNDLED_SAMPLE
from kagglebert.core.tasks import JIGSAW_TOXIC_2018 as TASK

LABELS = TASK.label_columns

# Floors = the lowest value measured over runs with different seeds, minus a margin. Measured on
# the 2-core CPU machine, 2026-12-01 (python -m kagglebert run with the settings below):
#   TF-IDF, data.fold_seed 42 / 1 / 2:  OOF 0.9564 / 0.9574 / 0.9557   test 0.9432 / 0.9436 / 0.9434
# The gate runs fold_seed 42, and TF-IDF + logistic regression is deterministic on one machine;
# the spread over fold seeds (0.0017 OOF, 0.0004 test) stands in for what another machine or the
# oldest supported scikit-learn might move. Margin 0.006: over 3× the OOF spread, yet far below
# what damage costs (BREAKS below).
TFIDF_FLOORS = {"oof": 0.950, "test": 0.937}
# The packaged MiniLM fine-tuned briefly: 600 rows, 2 folds, 1 epoch, 64 tokens (58-64 s of CPU
# user time per run, one thread; wall time not measured: the machine was shared). run.seed 0 / 1 / 2:
#   OOF 0.8881 / 0.8822 / 0.9015   test 0.8539 / 0.8436 / 0.8546
# The gate runs seed 0 (rerun through this test: the same 0.8881 / 0.8539); the spread over seeds (0.019 OOF, 0.011
# test) is the run-to-run margin another machine or library version could move it by. Margins of
# about 1.5× / 2× that spread: floors 0.85 OOF, 0.82 test. Damage lands well below them: the same
# run trained less (lr 6e-5, batch 32: 10 steps per fold) scored OOF 0.716, test 0.704; BREAKS below.
TRANSFORMER_SETTINGS = {
    "run.seed": 0, "data.max_rows": 600, "data.n_folds": 2, "train.epochs": 1, "model.max_length": 64,
    "model.head_tokens": 32, "train.batch_size": 16, "train.lr": 1.5e-4, "train.head_lr": 3e-3,
}
TRANSFORMER_FLOORS = {"oof": 0.85, "test": 0.82}

# BREAKS: the gate tried against deliberate damage (each a local edit, not kept), 2026-12-01:
#   TF-IDF cut to 2,000 word + 2,000 char features (baselines.py):  OOF 0.9434, test 0.9350 → fails
#   every encoder and head learning rate × 100 (engine.param_groups): OOF 0.4944, test 0.4904 → fails
#   the loss scaled by 1e-4 before backward (engine.train_epoch):    OOF 0.8642, test 0.8344 → PASSES:
#     AdamW divides the gradient scale out (the damage, 0.024 OOF, is the size of the seed spread);
#     a short run cannot tell that from another seed, so the floors do not claim to.


def mean_column_auc(labels: pd.DataFrame, scores: pd.DataFrame) -> float:
    """Mean over the labels of ROC AUC, rows whose label is -1 (not scored by Kaggle) left out."""
    aucs = []
    for label in LABELS:
        keep = labels[label].to_numpy() != -1
        aucs.append(roc_auc_score(labels[label].to_numpy()[keep], scores[label].to_numpy()[keep]))
    return float(np.mean(aucs))


def scores_of_a_run(run_cli, tmp_path, config: str, settings: dict) -> dict:
    work = tmp_path / "work"
    args = ["run", "--config", config, "--set", f"data.dir={BUNDLED_SAMPLE}", "--set", f"run.runs_dir={work / 'runs'}",
            "--set", f"submit.dir={work / 'submissions'}", "--set", f"data.cache_dir={work / 'cache'}",
            "--set", "run.name=gate", "--set", "run.progress=false"]
    for key, value in settings.items():
        args += ["--set", f"{key}={value}"]
    proc = run_cli(*args, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = work / "runs" / "gate"
    ids = {"dtype": {"id": str}, "keep_default_na": False}
    oof = pd.read_csv(run / "oof.csv", **ids).set_index("id")
    train = pd.read_csv(BUNDLED_SAMPLE / "train.csv", **ids).set_index("id").loc[oof.index]
    assert len(oof) == (settings.get("data.max_rows") or len(pd.read_csv(BUNDLED_SAMPLE / "train.csv", usecols=["id"])))
    submission = pd.read_csv(work / "submissions" / "gate.csv", **ids).set_index("id")
    truth = pd.read_csv(BUNDLED_SAMPLE / "test_labels.csv", **ids).set_index("id")
    assert set(submission.index) == set(truth.index)  # every labelled test row was predicted
    scores = {"oof": mean_column_auc(train[LABELS].astype(int), oof[LABELS]),
              "test": mean_column_auc(truth[LABELS].astype(int), submission.loc[truth.index, LABELS])}
    # kagglebert's own OOF figure agrees with the independent one
    assert json.loads((run / "metrics.json").read_text())["oof_auc"] == pytest.approx(scores["oof"], abs=1e-6)
    print(f"quality gate, {config}: OOF {scores['oof']:.4f}, test {scores['test']:.4f}")
    return scores


def test_tfidf_baseline_stays_above_its_floors(run_cli, tmp_path):
    scores = scores_of_a_run(run_cli, tmp_path, "tfidf", {})
    assert scores["oof"] >= TFIDF_FLOORS["oof"], scores
    assert scores["test"] >= TFIDF_FLOORS["test"], scores


@pytest.mark.slow
def test_fine_tuned_minilm_stays_above_its_floors(run_cli, tmp_path):
    scores = scores_of_a_run(run_cli, tmp_path, "demo", TRANSFORMER_SETTINGS)
    assert scores["oof"] >= TRANSFORMER_FLOORS["oof"], scores
    assert scores["test"] >= TRANSFORMER_FLOORS["test"], scores
