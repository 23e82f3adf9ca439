"""Reading and checking competition files: the loader on real rows, each bad input as a one-line
error naming file, row and column (in-process and through the real CLI), empty text kept."""
from __future__ import annotations

import json
import logging
from types import SimpleNamespace

import numpy as np
import pytest

from kagglebert import cli
from kagglebert.core.data import load_competition
from kagglebert.core.errors import DataError
from kagglebert.core.tasks import JIGSAW_TOXIC_2018

from conftest import SAMPLE_TRAIN_ROWS, read_raw_csv

TASK = JIGSAW_TOXIC_2018
LABELS = TASK.label_columns


def test_loads_the_real_sample(sample_dir):
    data = load_competition(TASK, str(sample_dir))
    assert len(data.train) == SAMPLE_TRAIN_ROWS and len(data.test) == 600
    assert list(data.train.columns) == ["id", "comment_text", *LABELS]
    assert data.labels.dtype == np.float32 and data.labels.shape == (SAMPLE_TRAIN_ROWS, 6)
    assert set(np.unique(data.labels)) <= {0.0, 1.0}
    raw = read_raw_csv(sample_dir / "train.csv")
    assert list(data.train["id"]) == list(raw["id"])  # ids stay strings, order kept
    np.testing.assert_array_equal(data.labels, raw[LABELS].astype(np.float32).to_numpy())
    assert len(data.train_texts) == SAMPLE_TRAIN_ROWS and isinstance(data.test_texts[0], str)


def test_max_rows_is_a_stratified_subsample_in_file_order(sample_dir):
    full = load_competition(TASK, str(sample_dir))
    small = load_competition(TASK, str(sample_dir), max_rows=150, seed=3)
    assert len(small.train) == 150
    position = {id_: i for i, id_ in enumerate(full.train["id"])}
    rows = [position[id_] for id_ in small.train["id"]]
    assert rows == sorted(rows)
    # half the rows → half the positives of each common label (±2)
    for j, label in enumerate(LABELS):
        if full.labels[:, j].sum() >= 20:
            assert abs(small.labels[:, j].sum() - full.labels[:, j].sum() / 2) <= 2, label
    again = load_competition(TASK, str(sample_dir), max_rows=150, seed=3)
    assert list(again.train["id"]) == list(small.train["id"])


def drop_toxic(train, test, sample):
    del train["toxic"]


def duplicate_id(train, test, sample):
    train.loc[7, "id"] = train.loc[2, "id"]


def label_two(train, test, sample):
    train.loc[4, "obscene"] = "2"


def unknown_test_id(train, test, sample):
    test.loc[5, "id"] = "not-in-sample"


# (edit, file, one-line message the loader must give); rows count from 1 = first data row
BAD_INPUTS = {
    "missing column": (drop_toxic, "train.csv", "row 0 (header), column 'toxic': missing (found: id, comment_text, severe_toxic"),
    "duplicate id": (duplicate_id, "train.csv", "row 8, column 'id': duplicate id '{train_id_2}' (first at row 3)"),
    "label 2": (label_two, "train.csv", "row 5, column 'obscene': value '2' is not 0 or 1"),
    "test id not in sample_submission": (unknown_test_id, "test.csv", "row 6, column 'id': id 'not-in-sample' is not in sample_submission.csv"),
}


def expected_message(sample_dir, template: str) -> str:
    return template.format(train_id_2=read_raw_csv(sample_dir / "train.csv")["id"][2])


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_a_one_line_error(case, broken_copy, sample_dir):
    edit, file, message = BAD_INPUTS[case]
    folder = broken_copy(edit)
    with pytest.raises(DataError) as err:
        load_competition(TASK, str(folder))
    assert str(err.value).startswith(f"{folder / file}: ")
    assert expected_message(sample_dir, message) in str(err.value)
    assert "\n" not in str(err.value)


def test_sample_submission_id_missing_from_test(broken_copy):
    def drop_test_row(train, test, sample):
        test.drop(index=9, inplace=True)

    folder = broken_copy(drop_test_row)
    sample_id = read_raw_csv(folder / "sample_submission.csv")["id"][9]
    with pytest.raises(DataError, match=rf"sample_submission\.csv: row 10, column 'id': id '{sample_id}' is not in test\.csv"):
        load_competition(TASK, str(folder))


def test_empty_text_is_kept_and_counted(broken_copy, caplog):
    def blank_texts(train, test, sample):
        train.loc[3, "comment_text"] = ""
        train.loc[10, "comment_text"] = "   "

    folder = broken_copy(blank_texts)
    with caplog.at_level(logging.WARNING, logger="kagglebert"):
        data = load_competition(TASK, str(folder))
    assert len(data.train) == SAMPLE_TRAIN_ROWS
    assert data.train_texts[3] == "" and data.train_texts[10].strip() == ""
    assert "2 row(s) with empty 'comment_text' kept as empty strings (first: row 4)" in caplog.text


def test_missing_file_is_named(tmp_path):
    (tmp_path / "train.csv").write_text("id,comment_text\n")
    with pytest.raises(DataError, match=r"test\.csv: file not found"):
        load_competition(TASK, str(tmp_path))


# ---- the same inputs through the real CLI: exit status 2, one `error:` line, nothing submitted ----


def assert_cli_error(proc, *fragments: str) -> str:
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == errors[0]
    for fragment in fragments:
        assert fragment in errors[0]
    return errors[0]


def cli_in_process(capsys, *args) -> SimpleNamespace:
    """The CLI's own `main` in this process, answered like `run_cli`'s process (no interpreter
    start, ~4 s of imports, per bad-input case)."""
    capsys.readouterr()
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return SimpleNamespace(returncode=code, stdout=out, stderr=err)


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_cli_rejects_bad_input(case, broken_copy, sample_dir, tiny_model_dir, tmp_path, run_cli, small_run_args, capsys):
    edit, file, message = BAD_INPUTS[case]
    folder = broken_copy(edit)
    args = ["run", "--config", "demo", *small_run_args(folder, tiny_model_dir, tmp_path)]
    # the first case through `python -m kagglebert`, the others through the same main in this process
    proc = run_cli(*args) if case == next(iter(BAD_INPUTS)) else cli_in_process(capsys, *args)
    assert_cli_error(proc, f"error: {folder / file}: ", expected_message(sample_dir, message))
    submissions = tmp_path / "submissions"
    assert not submissions.exists() or not any(submissions.iterdir())


def test_cli_rejects_unknown_set_key(sample_dir, tiny_model_dir, tmp_path, small_run_args, capsys):
    proc = cli_in_process(capsys, "run", "--config", "demo", *small_run_args(sample_dir, tiny_model_dir, tmp_path), "--set", "train.lrr=1e-4")
    assert_cli_error(proc, "error: --set train.lrr=1e-4: unknown key 'train.lrr'; train has ")
    assert not (tmp_path / "runs").exists() and not (tmp_path / "submissions").exists()


def test_cli_keeps_rows_with_empty_text(broken_copy, tiny_model_dir, tmp_path, run_cli, small_run_args):
    def blank_texts(train, test, sample):
        train.loc[3, "comment_text"] = ""
        test.loc[0, "comment_text"] = ""

    folder = broken_copy(blank_texts)
    proc = run_cli("eda", "--config", "demo", *small_run_args(folder, tiny_model_dir, tmp_path, **{"data.max_rows": 0, "data.max_test_rows": 0}))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "1 row(s) with empty 'comment_text' kept as empty strings (first: row 4)" in proc.stderr
    assert "1 row(s) with empty 'comment_text' kept as empty strings (first: row 1)" in proc.stderr
    summary = json.loads((tmp_path / "runs" / "demo" / "eda" / "summary.json").read_text())
    assert summary["train_rows"] == SAMPLE_TRAIN_ROWS and summary["test_rows"] == 600
    assert summary["empty_train_texts"] == 1 and summary["empty_test_texts"] == 1
    assert summary["test_subsampled"] is False  # data.max_rows = 0: every test row


# ---- data.max_test_rows bounds the test rows (data.max_rows only the training rows) ----


def test_max_test_rows_subsamples_test_deterministically_and_restricts_sample_submission(sample_dir):
    full = load_competition(TASK, str(sample_dir))
    small = load_competition(TASK, str(sample_dir), max_rows=150, seed=3, max_test_rows=150)
    assert len(small.test) == 150 and small.test_subsampled and small.sample_run
    assert not full.test_subsampled and not full.sample_run  # a copy of the sample, not the bundled folder
    position = {id_: i for i, id_ in enumerate(full.test["id"])}
    rows = [position[id_] for id_ in small.test["id"]]
    assert rows == sorted(rows) and len(set(rows)) == 150  # file order, no repeats
    sample_order = [i for i in full.sample_submission["id"] if i in set(small.test["id"])]
    assert small.sample_submission["id"].tolist() == sample_order
    assert list(small.sample_submission.columns) == ["id", *LABELS]
    again = load_competition(TASK, str(sample_dir), seed=3, max_test_rows=150)
    assert again.test["id"].tolist() == small.test["id"].tolist()
    other_seed = load_competition(TASK, str(sample_dir), seed=4, max_test_rows=150)
    assert other_seed.test["id"].tolist() != small.test["id"].tolist()
    assert len(load_competition(TASK, str(sample_dir), max_test_rows=1000).test) == 600  # larger than the file: all rows


def test_max_rows_cuts_training_rows_only(sample_dir):
    """A model trained on a subsample still predicts every test row: a complete submission."""
    sub = load_competition(TASK, str(sample_dir), max_rows=150, seed=3)
    assert len(sub.train) == 150 and len(sub.test) == 600 and not sub.test_subsampled and not sub.sample_run
    assert len(sub.sample_submission) == 600


def test_rare_labels_are_warned_about_once_per_label(sample_dir, caplog):
    from kagglebert.core.data_checks import warn_rare_labels

    data = load_competition(TASK, str(sample_dir))  # 300 rows: threat has 1 positive
    with caplog.at_level(logging.WARNING, logger="kagglebert"):
        rare = warn_rare_labels(data, 5)
    counts = dict(zip(LABELS, (data.labels >= 0.5).sum(0)))
    assert rare == [label for label in LABELS if counts[label] < 10]
    assert "threat" in rare and "toxic" not in rare
    assert (f"data: label 'threat' has {counts['threat']} positive(s) in 300 training rows: fewer than 2 per fold for 5 folds"
            in caplog.text)


def test_zipped_files_are_read_like_plain_ones(sample_dir, tmp_path):
    import zipfile

    for name in ("train.csv", "test.csv", "sample_submission.csv"):
        with zipfile.ZipFile(tmp_path / f"{name}.zip", "w", zipfile.ZIP_DEFLATED) as archive:
            archive.write(sample_dir / name, name)
    zipped = load_competition(TASK, str(tmp_path))
    plain = load_competition(TASK, str(sample_dir))
    assert zipped.train.equals(plain.train) and zipped.test.equals(plain.test)
    assert zipped.fingerprints == plain.fingerprints  # the same content, whatever the packaging


def test_a_byte_order_mark_is_not_part_of_the_first_column(sample_dir, tmp_path):
    for name in ("train.csv", "test.csv", "sample_submission.csv"):
        (tmp_path / name).write_bytes(b"\xef\xbb\xbf" + (sample_dir / name).read_bytes())
    data = load_competition(TASK, str(tmp_path))
    assert list(data.train.columns)[0] == "id"
