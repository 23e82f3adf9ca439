"""Leaderboard scores offline (2018): `test_labels.csv` in the data folder → `run`, `submit` and
`ablate` report the test score of what they wrote, equal to an independent scoring of the written
submission file (sklearn's ROC AUC per label on the rows not marked -1, then the mean); without
the file nothing is scored and nothing fails; a bad label file is one line naming file, row and
column, before anything is written."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from kagglebert import cli
from kagglebert.core.errors import DataError
from kagglebert.core.leaderboard import describe
from kagglebert.core.paths import BUNDLED_SAMPLE
from kagglebert.core.tasks import JIGSAW_TOXIC_2018

from conftest import read_raw_csv

TASK = JIGSAW_TOXIC_2018
LABELS = TASK.label_columns
UNSCORED_EVERY = 7  # every 7th test row marked -1 (unscored), as in the competition's file


def independent_score(submission_csv: Path, labels_csv: Path) -> tuple[float, int]:
    """The 2018 leaderboard's metric from the two files alone: mean over labels of ROC AUC on the
    rows whose labels are not -1. (score, scored rows)."""
    sub = pd.read_csv(submission_csv, dtype={"id": str})
    truth = pd.read_csv(labels_csv, dtype={"id": str}).set_index("id").loc[sub["id"]]
    scored = (truth[LABELS] != -1).all(axis=1).to_numpy()
    aucs = [roc_auc_score(truth[label].to_numpy()[scored], sub[label].to_numpy()[scored]) for label in LABELS]
    return float(np.mean(aucs)), int(scored.sum())


def labels_with_unscored_rows(folder: Path) -> Path:
    """The bundled sample's released labels with every UNSCORED_EVERY-th row set to -1."""
    labels = read_raw_csv(BUNDLED_SAMPLE / "test_labels.csv")
    labels.loc[labels.index % UNSCORED_EVERY == 0, LABELS] = "-1"
    path = folder / "test_labels.csv"
    labels.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def labelled_dir(sample_dir, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("labelled")
    for name in ("train.csv", "test.csv", "sample_submission.csv"):
        shutil.copy(sample_dir / name, folder / name)
    labels_with_unscored_rows(folder)
    return folder


def overrides(data_dir: Path, work: Path, **extra) -> list[str]:
    values = {"data.dir": data_dir, "data.n_folds": 2, "run.runs_dir": work / "runs", "submit.dir": work / "submissions",
              "data.cache_dir": work / "cache", "run.progress": "false", **extra}
    return [a for k, v in values.items() for a in ("--set", f"{k}={v}")]


def random_submission(seed: int = 0) -> pd.DataFrame:
    sub = read_raw_csv(BUNDLED_SAMPLE / "sample_submission.csv")
    rng = np.random.default_rng(seed)
    for label in LABELS:
        sub[label] = rng.random(len(sub))
    return sub


# --- the task's scoring --------------------------------------------------------------------------


def test_bundled_sample_ships_the_released_labels_for_its_test_rows():
    labels = read_raw_csv(BUNDLED_SAMPLE / "test_labels.csv")
    assert list(labels.columns) == ["id", *LABELS] and len(labels) == 600
    assert list(labels["id"]) == list(read_raw_csv(BUNDLED_SAMPLE / "test.csv")["id"])


def test_2018_scores_every_row_not_marked_unscored(tmp_path):
    labels = labels_with_unscored_rows(tmp_path)
    sub = random_submission()
    sub_path = tmp_path / "sub.csv"
    sub.to_csv(sub_path, index=False)
    board = TASK.leaderboard(tmp_path, sub)
    expected, rows = independent_score(sub_path, labels)
    assert set(board) == {"metric", "files", "splits", "note"} and board["files"] == ["test_labels.csv"]
    assert list(board["splits"]) == ["all"]  # the public/private split is not published
    assert board["splits"]["all"]["rows"] == rows == 600 - len(range(0, 600, UNSCORED_EVERY))
    assert board["splits"]["all"]["score"] == pytest.approx(expected, abs=1e-12)
    assert "not published" in board["note"] and "unscored" in board["note"]
    assert f"all {expected:.4f} ({rows} rows)" in describe(board)


def test_2018_without_labels_scores_nothing(tmp_path):
    assert TASK.leaderboard(tmp_path, random_submission()) is None


def test_2018_submission_of_a_subset_scores_its_own_rows(tmp_path):
    labels = labels_with_unscored_rows(tmp_path)
    sub = random_submission().iloc[::3].reset_index(drop=True)  # e.g. a test set cut by data.max_rows
    sub_path = tmp_path / "sub.csv"
    sub.to_csv(sub_path, index=False)
    board = TASK.leaderboard(tmp_path, sub)
    expected, rows = independent_score(sub_path, labels)
    assert board["splits"]["all"]["rows"] == rows and board["splits"]["all"]["score"] == pytest.approx(expected, abs=1e-12)


def edit_labels(edit):
    def make(folder: Path) -> Path:
        labels = read_raw_csv(BUNDLED_SAMPLE / "test_labels.csv")
        edit(labels)
        labels.to_csv(folder / "test_labels.csv", index=False)
        return folder / "test_labels.csv"
    return make


BAD_LABELS = {
    "missing column": (edit_labels(lambda df: df.drop(columns=["threat"], inplace=True)),
                       r"test_labels\.csv: row 0 \(header\), column 'threat': missing"),
    "not a label": (edit_labels(lambda df: df.__setitem__("insult", df["insult"].where(df.index != 4, "0.7"))),
                    r"test_labels\.csv: row 5, column 'insult': value '0\.7' is not 0 or 1 or -1"),
    "empty cell": (edit_labels(lambda df: df.__setitem__("toxic", df["toxic"].where(df.index != 9, ""))),
                   r"test_labels\.csv: row 10, column 'toxic': value '' is not 0 or 1 or -1"),
    "partly unscored row": (edit_labels(lambda df: df.__setitem__("obscene", df["obscene"].where(df.index != 2, "-1"))),
                            r"test_labels\.csv: row 3, column 'obscene': -1 in some label columns of this row only"),
    "duplicate id": (edit_labels(lambda df: df.__setitem__("id", df["id"].where(df.index != 7, df["id"].iloc[1]))),
                     r"test_labels\.csv: row 8, column 'id': duplicate id"),
    "other test rows": (edit_labels(lambda df: df.__setitem__("id", df["id"].where(df.index != 0, "not-a-test-id"))),
                        r"test_labels\.csv: column 'id': no row for id '\w+' \(submission row 1\)"),
    "not a csv": (lambda folder: (folder / "test_labels.csv").write_bytes(b"id,toxic\n\"unclosed\n") and None,
                  r"test_labels\.csv: "),
}


@pytest.mark.parametrize("case", BAD_LABELS, ids=list(BAD_LABELS))
def test_bad_label_file_is_one_line_naming_file_row_and_column(case, tmp_path):
    make, message = BAD_LABELS[case]
    make(tmp_path)
    with pytest.raises(DataError, match=message) as caught:
        TASK.leaderboard(tmp_path, random_submission())
    assert "\n" not in str(caught.value)


# --- run, submit, ablate ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tfidf_run(labelled_dir, tmp_path_factory, run_cli):
    """`run --config tfidf` on the labelled copy of the sample: seconds on a CPU."""
    work = tmp_path_factory.mktemp("lb-run")
    proc = run_cli("run", "--config", "tfidf", *overrides(labelled_dir, work))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return work, proc


def test_run_reports_the_test_score_of_the_submission_it_wrote(tfidf_run, labelled_dir):
    work, proc = tfidf_run
    expected, rows = independent_score(work / "submissions" / "tfidf.csv", labelled_dir / "test_labels.csv")
    board = json.loads((work / "runs" / "tfidf" / "metrics.json").read_text())["leaderboard"]
    assert board["splits"]["all"]["score"] == pytest.approx(expected, abs=1e-12) and board["splits"]["all"]["rows"] == rows
    assert f"test mean column ROC AUC (test_labels.csv): all {expected:.4f} ({rows} rows)" in proc.stdout
    assert expected > 0.6  # TF-IDF on 300 real rows does rank the real test rows (measured 0.81)


def test_submit_reports_the_test_score_of_the_file_it_writes(tfidf_run, labelled_dir, run_cli):
    work, _ = tfidf_run
    proc = run_cli("submit", "--config", "tfidf", *overrides(labelled_dir, work, **{"submit.name": "again"}))
    assert proc.returncode == 0, proc.stderr[-3000:]
    expected, rows = independent_score(work / "submissions" / "again.csv", labelled_dir / "test_labels.csv")
    assert f"all {expected:.4f} ({rows} rows)" in proc.stdout and "public/private split" in proc.stdout


def test_without_labels_nothing_is_scored_and_nothing_fails(sample_dir, tmp_path, run_cli):
    assert not (sample_dir / "test_labels.csv").exists()
    proc = run_cli("run", "--config", "tfidf", *overrides(sample_dir, tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "leaderboard" not in json.loads((tmp_path / "runs" / "tfidf" / "metrics.json").read_text())
    assert "test_labels" not in proc.stdout and "test mean column ROC AUC" not in proc.stdout + proc.stderr
    assert (tmp_path / "submissions" / "tfidf.csv").is_file()


def test_bad_label_file_stops_run_before_anything_is_written(labelled_dir, tmp_path, run_cli):
    data = tmp_path / "data"
    shutil.copytree(labelled_dir, data)
    labels = read_raw_csv(data / "test_labels.csv")
    labels.loc[3, "threat"] = "yes"
    labels.to_csv(data / "test_labels.csv", index=False)
    proc = run_cli("run", "--config", "tfidf", *overrides(data, tmp_path / "work"))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == f"error: {data / 'test_labels.csv'}: row 4, column 'threat': value 'yes' is not 0 or 1 or -1"
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "work").exists()


@pytest.mark.slow
def test_ablate_reports_each_variants_test_score_beside_oof(labelled_dir, tiny_model_dir, tmp_path, capsys):
    args = overrides(labelled_dir, tmp_path, **{
        "run.name": "abl", "model.name": tiny_model_dir, "data.max_rows": 150, "train.epochs": 1, "model.max_length": 64,
        "lm.block_size": 64, "lm.include_test": "false", "run.device": "cpu"})
    code = cli.main(["ablate", "--config", "demo", *args, "--seeds", "0", "--lm-epochs", "0", "1"])
    out = capsys.readouterr().out
    assert code == 0
    summary = json.loads((tmp_path / "runs" / "abl" / "ablation.json").read_text())
    assert summary["test"]["files"] == ["test_labels.csv"] and "not published" in summary["test"]["note"]
    scores = {}
    for key, variant in summary["variants"].items():
        # the variant's own submission, written by `submit`, scored independently
        name = f"abl-{key}-s0"
        # the CLI's own main in this process, like the ablate above (no interpreter start per variant)
        code = cli.main(["submit", "--config", "demo", *args, "--set", f"run.name={name}",
                         "--set", "run.seed=0", "--set", "lm.epochs=" + key[2:]])
        assert code == 0, capsys.readouterr().err[-3000:]
        expected, rows = independent_score(tmp_path / "submissions" / f"{name}.csv", labelled_dir / "test_labels.csv")
        test = variant["test"]["all"]
        assert test["per_seed"] == [pytest.approx(expected, abs=1e-12)] and test["score"] == pytest.approx(expected, abs=1e-12)
        assert test["rows"] == rows
        assert f"{expected:.4f} ({rows} rows)" in out
        scores[key] = expected
    assert summary["variants"]["lm1"]["test"]["all"]["diff_vs_fit"] == pytest.approx(scores["lm1"] - scores["lm0"], abs=1e-12)
