"""Progress bars on the CPU-side steps that take seconds at full size (reading train.csv, the fold
split, the EDA): each shown from its size threshold (lowered here to the test's few hundred rows),
none below it, and what each one counts."""
from __future__ import annotations

import threading
import zipfile

import numpy as np
import pytest

from kagglebert.core import config as config_module
from kagglebert.core import data as data_module
from kagglebert.core import folds as folds_module
from kagglebert.core.data import load_competition, read_table
from kagglebert.core.folds import make_folds
from kagglebert.core.progress import ProgressBar
from kagglebert.core.tasks import JIGSAW_TOXIC_2018
from kagglebert.stages import eda

from conftest import small_run_overrides


class RecordedBar(ProgressBar):
    """A real bar that keeps (desc, total, n) when it closes."""
    closed: list = []

    def close(self):
        if not getattr(self, "_recorded", False) and hasattr(self, "total"):
            self._recorded = True
            RecordedBar.closed.append((self.desc, self.total, self.n))
        super().close()


@pytest.fixture()
def recorded(monkeypatch):
    RecordedBar.closed = []
    monkeypatch.setattr(data_module, "ProgressBar", RecordedBar)
    return RecordedBar.closed


@pytest.mark.parametrize("zipped", [False, True])
def test_the_read_bar_counts_every_byte_of_the_file(sample_dir, tmp_path, monkeypatch, recorded, zipped):
    monkeypatch.setattr(data_module, "PROGRESS_FROM_BYTES", 0)
    source = sample_dir / "train.csv"
    path = source
    if zipped:
        path = tmp_path / "train.csv.zip"
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.write(source, "train.csv")
    frame, _ = read_table(path, ["id", "comment_text"])
    assert len(frame) > 100
    size = source.stat().st_size  # a zip's bar counts the unpacked bytes the parser reads
    assert ("read " + path.name, size, size) in recorded


def test_below_the_thresholds_a_load_draws_nothing(sample_dir, capsys):
    load_competition(JIGSAW_TOXIC_2018, str(sample_dir))
    assert capsys.readouterr().err == ""


def test_a_large_fold_split_shows_its_elapsed_time_and_gives_the_same_folds(sample_dir, monkeypatch, capsys):
    data = load_competition(JIGSAW_TOXIC_2018, str(sample_dir))
    ids, targets = data.train["id"], JIGSAW_TOXIC_2018.stratify_targets(data.train)
    quiet = make_folds(ids, targets, 5, seed=7)
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(folds_module, "PROGRESS_FROM_FOLD_ROWS", 0)
    shown = make_folds(ids, targets, 5, seed=7)
    assert f"5 folds of {len(ids):,} rows: 00:00 elapsed" in capsys.readouterr().err
    assert np.array_equal(shown["fold"].to_numpy(), quiet["fold"].to_numpy())
    make_folds(ids, targets, 5, seed=7, valid_frac=0.2)
    assert f"one validation split of {len(ids):,} rows" in capsys.readouterr().err
    assert not [t for t in threading.enumerate() if t.name.startswith("kagglebert-")]  # the redrawing thread has stopped


def test_the_eda_bar_names_each_phase(sample_dir, tiny_model_dir, tmp_path, monkeypatch, capsys):
    overrides = small_run_overrides(sample_dir, tiny_model_dir, tmp_path, **{"run.progress": "true"})[1::2]  # the values after each --set
    cfg = config_module.load("demo", overrides)
    monkeypatch.setattr(eda, "PROGRESS_FROM_TEXTS", 0)
    RecordedBar.closed = []
    monkeypatch.setattr(eda, "ProgressBar", RecordedBar)
    eda.main(cfg)
    err = capsys.readouterr().err  # each phase's name is drawn when it starts (set_postfix_str refreshes at once)
    for phase in ("train token lengths", "test token lengths", "duplicates, empty texts, identities"):
        assert phase in err, phase
    assert RecordedBar.closed == [("eda", 3, 3)]  # every phase counted (a redraw of 3/3 may fall inside tqdm's mininterval)
