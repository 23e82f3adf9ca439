"""Finding things where Kaggle puts them, in a fake `/kaggle/input` tree (KAGGLEBERT_KAGGLE_INPUT):
competition files by name and header in any of the layouts Kaggle has used, the full profile's
refusal to fall back to the bundled sample, and earlier notebooks' run folders attached as inputs."""
from __future__ import annotations

import logging
import zipfile
from pathlib import Path

import pytest

from kagglebert.core import paths
from kagglebert.core.errors import ConfigError
from kagglebert.core.tasks import JIGSAW_TOXIC_2018 as TASK

SLUG = TASK.competition_slug
FILES = (TASK.train_file, TASK.test_file, TASK.sample_submission_file)


@pytest.fixture()
def kaggle_root(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "kaggle" / "input"
    root.mkdir(parents=True)
    monkeypatch.setenv(paths.KAGGLE_INPUT_ENV, str(root))
    paths._reported.clear()
    return root


def put_competition(folder: Path, source: Path, zipped: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        if zipped:  # how Kaggle ships the 2018 files: one CSV per zip
            with zipfile.ZipFile(folder / f"{name}.zip", "w") as archive:
                archive.write(source / name, name)
        else:
            (folder / name).write_bytes((source / name).read_bytes())
    return folder


def test_kaggle_input_is_overridable(monkeypatch, tmp_path):
    monkeypatch.delenv(paths.KAGGLE_INPUT_ENV, raising=False)
    assert paths.kaggle_input() == Path("/kaggle/input")
    monkeypatch.setenv(paths.KAGGLE_INPUT_ENV, str(tmp_path))
    assert paths.kaggle_input() == tmp_path


@pytest.mark.parametrize("layout, zipped", [
    (SLUG, True),  # the classic mount, zipped CSVs
    (f"competitions/{SLUG}", False),  # the newer competitions/ prefix
    ("my-copy-of-jigsaw/data", False),  # a dataset a user uploaded under another name
])
def test_competition_found_by_names_and_header(kaggle_root, sample_dir, layout, zipped, caplog):
    expected = put_competition(kaggle_root / layout, sample_dir, zipped)
    with caplog.at_level(logging.INFO, logger="kagglebert"):
        found = paths.find_data_dir("", SLUG, require_competition=True)
    assert found == expected
    assert f"competition files found in {expected}" in caplog.text  # the notebook says where


def test_another_competitions_train_csv_is_not_taken(kaggle_root, sample_dir):
    """The 2019 competition also has a train.csv with id and comment_text, but no 2018 labels."""
    other = kaggle_root / "jigsaw-unintended-bias-in-toxicity-classification"
    other.mkdir()
    (other / "train.csv").write_text("id,target,comment_text\n1,0.5,hello\n")
    (other / "test.csv").write_text("id,comment_text\n2,hi\n")
    (other / "sample_submission.csv").write_text("id,prediction\n2,0.5\n")
    assert paths.discover_competition(TASK) is None
    with pytest.raises(ConfigError, match="Add Input"):
        paths.find_data_dir("", SLUG, require_competition=True)
    real = put_competition(kaggle_root / "zz-later" / SLUG, sample_dir)
    assert paths.discover_competition(TASK) == real


def test_missing_file_or_column_is_not_a_match(kaggle_root, sample_dir):
    folder = put_competition(kaggle_root / SLUG, sample_dir)
    (folder / TASK.sample_submission_file).unlink()
    assert paths.discover_competition(TASK) is None
    put_competition(folder, sample_dir)
    header, *rows = (folder / TASK.train_file).read_text().splitlines(keepends=True)
    (folder / TASK.train_file).write_text(header.replace("threat", "threatening") + "".join(rows))
    assert paths.discover_competition(TASK) is None


def test_too_deep_is_not_searched(kaggle_root, sample_dir):
    put_competition(kaggle_root.joinpath(*["d"] * (paths.SEARCH_DEPTH + 1)), sample_dir)
    assert paths.discover_competition(TASK) is None


def test_quick_falls_back_to_the_sample_full_never(kaggle_root, caplog):
    with caplog.at_level(logging.INFO, logger="kagglebert"):
        assert paths.find_data_dir("", SLUG) == paths.BUNDLED_SAMPLE
    assert "using the bundled sample" in caplog.text
    with pytest.raises(ConfigError) as err:
        paths.find_data_dir("", SLUG, require_competition=True)
    message = str(err.value)
    assert "\n" not in message and str(kaggle_root) in message and "data.dir" in message


def test_explicit_data_dir_wins(kaggle_root, sample_dir, tmp_path):
    put_competition(kaggle_root / SLUG, sample_dir)
    assert paths.find_data_dir(str(sample_dir), SLUG, require_competition=True) == sample_dir
    with pytest.raises(ConfigError, match="no such folder"):
        paths.find_data_dir(str(tmp_path / "nope"), SLUG)
