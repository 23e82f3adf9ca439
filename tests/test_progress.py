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
from kagglebert.core import progress as progress_module
from kagglebert.core.data import load_competition, read_table
from kagglebert.core.folds import make_folds
from kagglebert.core.progress import ProgressBar, elapsed_bar
from kagglebert.core.tasks import JIGSAW_TOXIC_2018
from kagglebert.stages import eda

from conftest import small_run_overrides


class RecordedBar(ProgressBar):
    """A real bar that records what it was told: (desc, total, n) when a drawn bar closes, each postfix, and
    its redraws. The tests read these, not the text tqdm drew: where and whether tqdm draws depends
    on its version and on the bars other tests in the same worker left open."""
    closed: list = []
    postfixes: list = []
    redraws = 0

    def set_postfix_str(self, s="", refresh=True):
        RecordedBar.postfixes.append(s)
        super().set_postfix_str(s, refresh)

    def refresh(self, *args, **kwargs):
        RecordedBar.redraws += 1
        return super().refresh(*args, **kwargs)

    def close(self):
        if not getattr(self, "_recorded", False) and not self.disable:  # a bar that was drawn (a disabled one keeps no desc)
            self._recorded = True
            RecordedBar.closed.append((self.desc, self.total, self.n))
        super().close()


@pytest.fixture()
def recorded(monkeypatch):
    RecordedBar.closed, RecordedBar.postfixes, RecordedBar.redraws = [], [], 0
    for module in (data_module, progress_module, eda):
        monkeypatch.setattr(module, "ProgressBar", RecordedBar)
    return RecordedBar


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
    assert ("read " + path.name, size, size) in recorded.closed


def test_below_the_thresholds_a_load_draws_nothing(sample_dir, capsys):
    load_competition(JIGSAW_TOXIC_2018, str(sample_dir))
    assert capsys.readouterr().err == ""


def test_a_large_fold_split_shows_its_elapsed_time_and_gives_the_same_folds(sample_dir, monkeypatch, recorded):
    data = load_competition(JIGSAW_TOXIC_2018, str(sample_dir))
    ids, targets = data.train["id"], JIGSAW_TOXIC_2018.stratify_targets(data.train)
    quiet = make_folds(ids, targets, 5, seed=7)
    assert [bar for bar in recorded.closed if bar[0].startswith("5 folds")] == []  # below the threshold: no bar at all
    monkeypatch.setattr(folds_module, "PROGRESS_FROM_FOLD_ROWS", 0)
    shown = make_folds(ids, targets, 5, seed=7)
    make_folds(ids, targets, 5, seed=7, valid_frac=0.2)
    assert [desc for desc, _, _ in recorded.closed] == [f"5 folds of {len(ids):,} rows", f"one validation split of {len(ids):,} rows"]
    assert np.array_equal(shown["fold"].to_numpy(), quiet["fold"].to_numpy())
    assert not [t for t in threading.enumerate() if t.name.startswith("kagglebert-")]  # the redrawing thread has stopped


def test_the_elapsed_bar_redraws_while_its_step_runs(recorded):
    """A step that reports nothing still shows time passing: the bar is redrawn on a timer."""
    redrawn = threading.Event()
    with elapsed_bar("silent step", every_s=0.01):
        start = recorded.redraws
        for _ in range(500):  # a busy step; it ends as soon as two redraws have come from the timer
            if recorded.redraws >= start + 2:
                redrawn.set()
                break
            redrawn.wait(0.01)
    assert redrawn.is_set()
    assert recorded.closed == [("silent step", None, 0)]


def test_the_eda_bar_names_each_phase(sample_dir, tiny_model_dir, tmp_path, monkeypatch, recorded):
    overrides = small_run_overrides(sample_dir, tiny_model_dir, tmp_path, **{"run.progress": "true"})[1::2]  # the values after each --set
    cfg = config_module.load("demo", overrides)
    monkeypatch.setattr(eda, "PROGRESS_FROM_TEXTS", 0)
    eda.main(cfg)
    assert recorded.postfixes == ["train token lengths", "test token lengths", "duplicates, empty texts, identities"]
    assert ("eda", 3, 3) in recorded.closed
