"""Property-based tests (hypothesis) for the two places where user files meet kagglebert: the CSV
loader (core/data.py) and the submission validator (stages/submit.build_submission)."""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from kagglebert.core.data import load_competition, read_csv, read_predictions
from kagglebert.core.errors import DataError
from kagglebert.core.tasks import JIGSAW_TOXIC_2018 as TASK
from kagglebert.stages.submit import build_submission

LABELS = TASK.label_columns
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# any text a CSV cell can hold: quotes, commas, newlines, non-ASCII, and the strings pandas would
# otherwise read as missing. Not "\r": a lone carriage return is a line ending to every CSV reader.
NA_LIKE = ["NA", "N/A", "null", "NULL", "None", "nan", "NaN", "#N/A", "<NA>", "-nan", "1.#IND", "n/a"]
cell_text = st.one_of(
    st.sampled_from(NA_LIKE),
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\x00"), max_size=30),
)
ids = st.one_of(st.sampled_from(NA_LIKE), st.text(st.characters(blacklist_categories=("Cs", "Zs", "Cc")), min_size=1, max_size=12))


def write(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False)
    return path


# ---- the CSV loader ----


@FAST
@given(st.lists(st.tuples(cell_text, cell_text), min_size=1, max_size=20))
def test_every_cell_reads_back_as_the_string_written(rows):
    frame = pd.DataFrame(rows, columns=["id", "comment_text"])
    with tempfile.TemporaryDirectory() as folder:
        back = read_csv(write(frame, Path(folder) / "x.csv"))
    assert back["id"].tolist() == frame["id"].tolist()
    assert back["comment_text"].tolist() == frame["comment_text"].tolist()


def competition(train_ids, labels, test_ids) -> dict[str, pd.DataFrame]:
    train = pd.DataFrame({"id": train_ids, "comment_text": [f"text {i}" for i in range(len(train_ids))]})
    for j, label in enumerate(LABELS):
        train[label] = [str(v) for v in labels[:, j]]
    test = pd.DataFrame({"id": test_ids, "comment_text": ["t"] * len(test_ids)})
    sample = pd.DataFrame({"id": test_ids, **{label: "0.5" for label in LABELS}})
    return {"train": train, "test": test, "sample_submission": sample}


competitions = st.integers(2, 25).flatmap(lambda n: st.tuples(
    st.lists(ids, min_size=n, max_size=n, unique=True),
    st.lists(st.lists(st.sampled_from([0, 1]), min_size=6, max_size=6), min_size=n, max_size=n).map(np.array),
    st.lists(ids, min_size=1, max_size=8, unique=True),
))


def load(frames: dict[str, pd.DataFrame], folder: Path):
    for name, frame in frames.items():
        write(frame, folder / f"{name}.csv")
    return load_competition(TASK, str(folder))


@FAST
@given(competitions)
def test_loader_keeps_ids_order_and_labels(case):
    train_ids, labels, test_ids = case
    with tempfile.TemporaryDirectory() as folder:
        data = load(competition(train_ids, labels, test_ids), Path(folder))
    assert data.train["id"].tolist() == train_ids
    assert data.test["id"].tolist() == test_ids
    np.testing.assert_array_equal(data.labels, labels.astype(np.float32))


@FAST
@given(competitions, st.data())
def test_the_first_bad_label_is_named_by_row_and_column(case, draw):
    train_ids, labels, test_ids = case
    frames = competition(train_ids, labels, test_ids)
    bad = draw.draw(st.sampled_from(["2", "yes", "-1", "inf", "nan", "", "0.5", "1e3", " 1x"]))
    row = draw.draw(st.integers(0, len(train_ids) - 1))
    column = draw.draw(st.sampled_from(LABELS))
    frames["train"].loc[row, column] = bad
    with tempfile.TemporaryDirectory() as folder:
        with pytest.raises(DataError) as err:
            load(frames, Path(folder))
    # labels are checked column by column: the first bad cell of the first bad column
    assert f"train.csv: row {row + 1}, column {column!r}: value {bad!r} is not 0 or 1" in str(err.value)


@FAST
@given(competitions, st.data())
def test_a_non_utf8_byte_is_named_by_row_and_column(case, draw):
    train_ids, labels, test_ids = case
    frames = competition(train_ids, labels, test_ids)
    row = draw.draw(st.integers(0, len(train_ids) - 1))
    frames["train"].loc[row, "comment_text"] = "MARK" + frames["train"].loc[row, "comment_text"]
    byte = draw.draw(st.sampled_from([0x80, 0xC3, 0xE9, 0xFF]))
    assume(not any("MARK" in str(i) for i in train_ids + test_ids))
    with tempfile.TemporaryDirectory() as folder:
        path = write(frames["train"], Path(folder) / "train.csv")
        path.write_bytes(path.read_bytes().replace(b"MARK", bytes([byte]) + b"x", 1))
        with pytest.raises(DataError) as err:
            read_csv(path)
    assert str(err.value) == f"{path}: row {row + 1}, column 'comment_text': not UTF-8 (byte 0x{byte:02x}); save the file as UTF-8"


@FAST
@given(st.lists(ids, min_size=2, max_size=15, unique=True), st.data())
def test_a_repeated_id_is_named_with_both_rows(train_ids, draw):
    first = draw.draw(st.integers(0, len(train_ids) - 2))
    second = draw.draw(st.integers(first + 1, len(train_ids) - 1))
    train_ids = list(train_ids)
    train_ids[second] = train_ids[first]
    frames = competition(train_ids, np.zeros((len(train_ids), 6), dtype=int), ["t1"])
    with tempfile.TemporaryDirectory() as folder:
        with pytest.raises(DataError) as err:
            load(frames, Path(folder))
    assert f"row {second + 1}, column 'id': duplicate id {train_ids[first]!r} (first at row {first + 1})" in str(err.value)


# ---- the submission validator ----

samples = st.lists(ids, min_size=1, max_size=20, unique=True).map(
    lambda sample_ids: pd.DataFrame({"id": sample_ids, **{label: "0.5" for label in LABELS}}))
probabilities = st.floats(0.0, 1.0, allow_nan=False)


def predictions(sample: pd.DataFrame, draw) -> pd.DataFrame:
    values = np.array(draw.draw(st.lists(probabilities, min_size=len(sample) * 6, max_size=len(sample) * 6))).reshape(len(sample), 6)
    frame = pd.DataFrame(values, columns=LABELS)
    frame.insert(0, "id", sample["id"].to_numpy())
    rows = draw.draw(st.permutations(range(len(sample))))
    columns = draw.draw(st.permutations(LABELS))
    return frame.iloc[list(rows)][["id", *columns]].reset_index(drop=True)


@FAST
@given(samples, st.data())
def test_submission_follows_sample_order_whatever_the_prediction_order(sample, draw):
    pred = predictions(sample, draw)
    out = build_submission(pred, Path("p.csv"), sample, TASK)
    assert out.columns.tolist() == sample.columns.tolist()
    assert out["id"].tolist() == sample["id"].tolist()
    expected = pred.set_index("id").loc[sample["id"], LABELS].to_numpy()
    np.testing.assert_array_equal(out[LABELS].to_numpy(), expected)


@FAST
@given(samples, st.data())
def test_submission_survives_a_file_round_trip(sample, draw):
    """Predictions written by kagglebert and read back (ids such as `NA` stay ids)."""
    pred = predictions(sample, draw)
    with tempfile.TemporaryDirectory() as folder:
        path = write(pred, Path(folder) / "test_pred.csv")
        out = build_submission(read_predictions(path, "id"), path, sample, TASK)
    assert out["id"].tolist() == sample["id"].tolist()
    np.testing.assert_allclose(out[LABELS].to_numpy(), pred.set_index("id").loc[sample["id"], LABELS].to_numpy())


@FAST
@given(samples, st.data())
def test_a_missing_or_foreign_id_is_refused(sample, draw):
    pred = predictions(sample, draw)
    if draw.draw(st.booleans()) and len(sample) > 1:
        dropped = draw.draw(st.sampled_from(sample["id"].tolist()))
        with pytest.raises(DataError, match="has no prediction") as err:
            build_submission(pred[pred["id"] != dropped], Path("p.csv"), sample, TASK)
        assert repr(dropped) in str(err.value)
    else:
        stranger = draw.draw(ids.filter(lambda i: i not in set(sample["id"])))
        extra = pd.concat([pred, pred.iloc[[0]].assign(id=stranger)], ignore_index=True)
        with pytest.raises(DataError, match="is not in sample_submission") as err:
            build_submission(extra, Path("p.csv"), sample, TASK)
        assert f"row {len(pred) + 1}, column 'id': id {stranger!r}" in str(err.value)


@FAST
@given(samples, st.data())
def test_a_value_that_is_not_a_probability_is_named(sample, draw):
    pred = predictions(sample, draw)
    bad = draw.draw(st.one_of(st.just(float("nan")), st.just(float("inf")), st.floats(1.0001, 1e6), st.floats(-1e6, -1e-6)))
    row = draw.draw(st.integers(0, len(pred) - 1))
    column = draw.draw(st.sampled_from(LABELS))
    pred.loc[row, column] = bad
    with pytest.raises(DataError) as err:
        build_submission(pred, Path("p.csv"), sample, TASK)
    message = str(err.value)
    assert "is not a probability in [0, 1]" in message
    # the first bad cell in sample order, column by column: here the only one
    assert f"id {pred['id'][row]!r}, column {column!r}" in message
