"""The scale benchmark's pieces on tiny sizes: synthetic competition folders (both schemas) that
the loader accepts, and `python -m kagglebert.bench --scale` writing its table and JSON."""
from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd

from kagglebert.bench.synthetic import COLUMNS_2019, build
from kagglebert.core.data import load_competition
from kagglebert.core.tasks import JIGSAW_TOXIC_2018

from conftest import REPO_ROOT, cli_env


def test_synthetic_2018_folder_is_a_valid_competition(tmp_path):
    folder = build(tmp_path / "d", rows=500, test_rows=120, schema="2018", progress=False)
    data = load_competition(JIGSAW_TOXIC_2018, str(folder))
    assert len(data.train) == 500 and len(data.test) == 120 and len(data.sample_submission) == 120
    assert data.train["id"].is_unique and data.train["comment_text"].str.contains(" zq").all()
    assert data.train["comment_text"].nunique() > 450  # texts are (almost all) distinct, not 300 repeated
    assert set(data.train[JIGSAW_TOXIC_2018.label_columns].to_numpy().ravel()) <= {0.0, 1.0}


def test_synthetic_2019_folder_has_the_45_columns(tmp_path):
    folder = build(tmp_path / "d", rows=300, test_rows=50, schema="2019", progress=False)
    train = pd.read_csv(folder / "train.csv")
    assert len(COLUMNS_2019) == 45 and len(train.columns) == 45 and len(train) == 300
    assert train["target"].between(0, 1).all() and train["id"].is_unique
    assert list(pd.read_csv(folder / "sample_submission.csv").columns) == ["id", "prediction"]
    assert list(pd.read_csv(folder / "test.csv").columns) == ["id", "comment_text"]


def test_bench_scale_times_each_step_in_its_own_process(tmp_path):
    out = tmp_path / "scale.json"
    proc = subprocess.run([sys.executable, "-m", "kagglebert.bench", "--scale", "400", "--test-rows", "100", "--work", str(tmp_path / "w"),
                           "--steps", "load,submit,predict-prep", "--json", str(out)], cwd=REPO_ROOT, env=cli_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| load |" in proc.stdout and "| submit |" in proc.stdout
    report = json.loads(out.read_text())
    steps = {s["step"]: s for s in report["steps"]}
    assert steps["load"]["rc"] == 0 and steps["load"]["train_rows"] == 400 and steps["load"]["peak_rss_gb"] > 0
    assert steps["submit"]["rows"] == 100
    assert steps["predict-prep"]["rc"] == 0 and steps["predict-prep"]["texts"] == 100, steps["predict-prep"]
