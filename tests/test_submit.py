"""Submission checks: reordered to sample_submission, every mismatch a one-line DataError, a
different existing file never overwritten, an identical rerun reused."""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from kagglebert.core.errors import DataError, RunError
from kagglebert.stages.submit import build_submission, submit_predictions, write_new
from kagglebert.core.tasks import JIGSAW_TOXIC_2018

from conftest import read_raw_csv

TASK = JIGSAW_TOXIC_2018
LABELS = TASK.label_columns


@pytest.fixture()
def sample(sample_dir) -> pd.DataFrame:
    return read_raw_csv(sample_dir / "sample_submission.csv")


@pytest.fixture()
def pred(sample) -> pd.DataFrame:
    """Predictions for every sample id, shuffled, with the label columns in another order."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.random((len(sample), len(LABELS))), columns=LABELS)
    frame.insert(0, "id", sample["id"].to_numpy())
    return frame.sample(frac=1.0, random_state=1)[["id", *LABELS[::-1]]].reset_index(drop=True)


def test_reordered_to_sample_order(pred, sample, tmp_path):
    out = build_submission(pred, tmp_path / "p.csv", sample, TASK)
    assert list(out.columns) == list(sample.columns)
    assert list(out["id"]) == list(sample["id"])
    expected = pred.set_index("id").loc[sample["id"], LABELS].to_numpy()
    np.testing.assert_array_equal(out[LABELS].to_numpy(), expected)


def test_missing_id(pred, sample, tmp_path):
    dropped = sample["id"][17]
    with pytest.raises(DataError) as err:
        build_submission(pred[pred["id"] != dropped], tmp_path / "p.csv", sample, TASK)
    assert str(err.value) == f"{tmp_path / 'p.csv'}: column 'id': id '{dropped}' (sample_submission row 18) has no prediction"


def test_extra_id(pred, sample, tmp_path):
    extra = pd.concat([pred.iloc[:5], pred.iloc[[0]].assign(id="stranger"), pred.iloc[5:]], ignore_index=True)
    with pytest.raises(DataError) as err:
        build_submission(extra, tmp_path / "p.csv", sample, TASK)
    assert str(err.value) == f"{tmp_path / 'p.csv'}: row 6, column 'id': id 'stranger' is not in sample_submission"


def test_duplicate_id(pred, sample, tmp_path):
    doubled = pd.concat([pred, pred.iloc[[3]]], ignore_index=True)
    with pytest.raises(DataError, match=rf"row {len(pred) + 1}, column 'id': duplicate id '{pred['id'][3]}'"):
        build_submission(doubled, tmp_path / "p.csv", sample, TASK)


def test_missing_column(pred, sample, tmp_path):
    with pytest.raises(DataError, match=r"p\.csv: row 0 \(header\), column 'threat': missing \(sample_submission has it\)"):
        build_submission(pred.drop(columns="threat"), tmp_path / "p.csv", sample, TASK)


@pytest.mark.parametrize("bad, shown", [(np.nan, "nan"), (1.5, "1.5"), (-0.1, "-0.1")])
def test_value_outside_probability_range(pred, sample, tmp_path, bad, shown):
    target = sample["id"][42]
    broken = pred.copy()
    broken.loc[broken["id"] == target, "insult"] = bad
    with pytest.raises(DataError) as err:
        build_submission(broken, tmp_path / "p.csv", sample, TASK)
    assert str(err.value) == f"{tmp_path / 'p.csv'}: id '{target}', column 'insult': value {shown} is not a probability in [0, 1]"


def test_never_overwrites_a_different_file_and_reuses_an_identical_one(pred, sample, tmp_path):
    out = build_submission(pred, tmp_path / "p.csv", sample, TASK)
    path = tmp_path / "sub" / "run.csv"
    assert write_new(out, path) is False
    written = path.read_bytes()
    stamp = path.stat().st_mtime_ns
    assert write_new(out, path) is True  # identical rerun: reused
    assert path.stat().st_mtime_ns == stamp

    other = out.copy()
    other.loc[0, "toxic"] = 0.0 if other.loc[0, "toxic"] != 0.0 else 1.0
    with pytest.raises(RunError, match=r"run\.csv: exists with other predictions; choose another name"):
        write_new(other, path)
    assert path.read_bytes() == written
    assert [p.name for p in path.parent.iterdir()] == ["run.csv"]  # no temporary file left behind


def test_submit_predictions_from_a_file(pred, sample_dir, tmp_path):
    pred_path = tmp_path / "test_pred.csv"
    pred.to_csv(pred_path, index=False)
    out_path = tmp_path / "submissions" / "x.csv"
    first = submit_predictions(pred_path, TASK, str(sample_dir), out_path, "msg")
    assert not first.reused and out_path.is_file()
    # the sample's 600 rows are not the competition's 153,164, wherever the files were found
    assert first.sample_run
    assert first.command == f"kaggle competitions submit -c {TASK.competition_slug} -f {out_path} -m 'msg (sample run, not the full test set)'"
    full_size = dataclasses.replace(TASK, test_rows=len(first.frame))  # as if these were the competition's rows
    assert not submit_predictions(pred_path, full_size, str(sample_dir), tmp_path / "full.csv", "msg").sample_run
    written = pd.read_csv(out_path, dtype={"id": str})
    assert list(written["id"]) == list(read_raw_csv(sample_dir / "sample_submission.csv")["id"])
    np.testing.assert_allclose(written[LABELS].to_numpy(), first.frame[LABELS].to_numpy(), rtol=1e-5)
    assert submit_predictions(pred_path, TASK, str(sample_dir), out_path, "msg").reused

    with pytest.raises(RunError, match=r"missing\.csv: not found; run `python -m kagglebert train`"):
        submit_predictions(tmp_path / "missing.csv", TASK, str(sample_dir), out_path, "msg")
