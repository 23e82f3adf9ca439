"""The 2019 task (`jigsaw-bias-2019`) through the real CLI on a slice of the bundled synthetic 2019
fixture, tiny BERT, 2 folds, 1 epoch: every stage — eda, LM, train (auxiliary targets + identity
weights), OOF, submit, predict, export, ablate, the TF-IDF and features baselines, blend — with the
same loops as 2018. The run's metrics.json agrees with an independent kernel-style scoring of its
oof.csv; bad 2019 files are one line naming file, row and column, with nothing written."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from safetensors import safe_open

from conftest import read_raw_csv
from test_bias_metric import kernel_score

from kagglebert import cli
from kagglebert.core import bias, config as config_mod
from kagglebert.core.batching import PadCollator
from kagglebert.core.data import load_competition
from kagglebert.core.paths import SAMPLE_DATA
from kagglebert.core.tasks import JIGSAW_BIAS_2019
from kagglebert.stages import train as train_stage

FIXTURE = SAMPLE_DATA / "jigsaw-bias-2019-sample"
TRAIN_ROWS, TEST_ROWS = 400, 120
AUX = bias.SUBTYPE_COLUMNS


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """The first rows of the fixture's files (ids kept), label files restricted to those test ids."""
    folder = tmp_path_factory.mktemp("bias-data")
    read_raw_csv(FIXTURE / "train.csv").head(TRAIN_ROWS).to_csv(folder / "train.csv", index=False)
    test = read_raw_csv(FIXTURE / "test.csv").head(TEST_ROWS)
    test.to_csv(folder / "test.csv", index=False)
    sample = read_raw_csv(FIXTURE / "sample_submission.csv")
    sample[sample["id"].isin(test["id"])].to_csv(folder / "sample_submission.csv", index=False)
    for name in (bias.PUBLIC_LABELS, bias.PRIVATE_LABELS):
        labels = read_raw_csv(FIXTURE / name)
        labels[labels["id"].isin(test["id"])].to_csv(folder / name, index=False)
    return folder


def overrides(data_dir: Path, work: Path, model_dir: Path, **extra) -> list[str]:
    values = {"data.dir": data_dir, "model.name": model_dir, "data.max_rows": 0, "data.n_folds": 2, "train.epochs": 1,
              "lm.epochs": 1, "model.max_length": 64, "run.runs_dir": work / "runs", "submit.dir": work / "submissions",
              "data.cache_dir": work / "cache", "run.progress": "false", "run.device": "cpu", **extra}
    return [a for k, v in values.items() for a in ("--set", f"{k}={v}")]


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("bias-work")


@pytest.fixture(scope="module")
def bias_run(work, data_dir, tiny_model_dir, run_cli):
    """`run --config bias-demo` (eda, lm, train with aux targets and identity weights, submit)."""
    done = run_cli("run", "--config", "bias-demo", *overrides(data_dir, work, tiny_model_dir))
    assert done.returncode == 0, done.stderr[-3000:]
    return work / "runs" / "bias-demo", done


def oof_frame(folder: Path) -> pd.DataFrame:
    return pd.read_csv(folder / "oof.csv", dtype={"id": str})


@pytest.mark.slow
def test_run_writes_the_bias_metrics_and_they_match_the_kernel(bias_run, data_dir):
    folder, done = bias_run
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["metric"] == "bias AUC"
    assert set(metrics["per_identity"]) == set(bias.SCORED_IDENTITIES)
    for row in metrics["per_identity"].values():
        assert {"subgroup_auc", "bpsn_auc", "bnsp_auc", "subgroup_size", "subgroup_positives", "background_negatives", "reason"} <= set(row)
    # an independent scoring of the written oof.csv against train.csv, as the kernel did it
    train = pd.read_csv(data_dir / "train.csv", dtype={"id": str})
    oof = oof_frame(folder).set_index("id").loc[train["id"]]
    assert list(oof.columns) == ["target"]  # the auxiliary outputs are never written
    expected, table = kernel_score(train["target"], train[bias.SCORED_IDENTITIES], oof["target"].to_numpy(), drop_undefined=True)
    assert metrics["oof_auc"] == pytest.approx(expected, abs=1e-9)
    for _, row in table.iterrows():
        mine = metrics["per_identity"][row["subgroup"]]
        for key in ("subgroup_auc", "bpsn_auc", "bnsp_auc"):
            assert (mine[key] is None) == bool(np.isnan(row[key]))
            if mine[key] is not None:
                assert mine[key] == pytest.approx(row[key], abs=1e-9)
    record = json.loads((folder / "folds" / "fold0_record.json").read_text())
    assert set(record["per_identity"]) == set(bias.SCORED_IDENTITIES)  # each fold's table, too
    assert "bias AUC" in done.stderr + done.stdout
    # the suggested Kaggle message names the task's metric, not the 2018 one
    assert f"OOF bias AUC {metrics['oof_auc']:.4f}" in done.stdout and "OOF AUC" not in done.stdout


@pytest.mark.slow
def test_folds_are_stratified_on_toxic_times_identity(bias_run, data_dir):
    folder, _ = bias_run
    train = pd.read_csv(data_dir / "train.csv", dtype={"id": str})
    folds = pd.read_csv(folder / "folds.csv", dtype={"id": str}).set_index("id").loc[train["id"], "fold"].to_numpy()
    classes = bias.stratify_classes(train["target"].to_numpy(), train[bias.SCORED_IDENTITIES].to_numpy()).argmax(1)
    for c in range(4):
        counts = np.bincount(folds[classes == c], minlength=2)
        assert abs(counts[0] - counts[1]) <= 1, (c, counts)


@pytest.mark.slow
def test_eda_lm_and_saved_models(bias_run, data_dir):
    folder, _ = bias_run
    eda = folder / "eda"
    identities = pd.read_csv(eda / "identities.csv")
    assert list(identities["identity"]) == bias.IDENTITY_COLUMNS
    train = pd.read_csv(data_dir / "train.csv")
    male = identities.set_index("identity").loc["male"]
    assert male["members"] == int((train["male"] >= 0.5).sum())
    assert male["toxic_rate"] == pytest.approx((train.loc[train["male"] >= 0.5, "target"] >= 0.5).mean())
    distribution = pd.read_csv(eda / "target_distribution.csv")
    assert distribution["rows"].sum() == TRAIN_ROWS
    assert json.loads((eda / "summary.json").read_text())["train_rows"] == TRAIN_ROWS
    resolved = (folder / "config.toml").read_text()
    assert 'identity_weights = "bpsn-bnsp"' in resolved and '"sexual_explicit"' in resolved  # the run's recipe, recorded
    meta = json.loads((folder / "folds" / "fold0_model" / "kagglebert.json").read_text())
    assert meta["task"] == "jigsaw-bias-2019" and meta["label_columns"] == ["target"]
    with safe_open(str(folder / "folds" / "fold0_model" / "head.safetensors"), framework="pt") as handle:
        assert handle.get_slice("head.weight").get_shape()[0] == 1  # trained with 1 + 6 outputs; the target's is kept
    lm = json.loads((folder / "metrics.json").read_text())
    assert "perplexity_after" in lm


@pytest.mark.slow
def test_submission_predict_and_leaderboard(bias_run, work, data_dir, run_cli):
    folder, _ = bias_run
    submission = pd.read_csv(work / "submissions" / "bias-demo.csv", dtype={"id": str})
    sample = pd.read_csv(data_dir / "sample_submission.csv", dtype={"id": str})
    assert list(submission.columns) == ["id", "prediction"] and list(submission["id"]) == list(sample["id"])
    test_pred = pd.read_csv(folder / "test_pred.csv", dtype={"id": str}).set_index("id")
    np.testing.assert_allclose(submission["prediction"], test_pred.loc[submission["id"], "target"], atol=1e-6)

    out = work / "predicted.csv"
    done = run_cli("predict", "--run", "bias-demo", "--runs-dir", work / "runs", "--input", data_dir / "test.csv",
                   "--output", out, "--device", "cpu")
    assert done.returncode == 0, done.stderr[-3000:]
    predicted = pd.read_csv(out, dtype={"id": str})
    assert list(predicted.columns) == ["id", "prediction"]
    np.testing.assert_allclose(predicted["prediction"], submission["prediction"], atol=1e-4)

    board = JIGSAW_BIAS_2019.leaderboard(data_dir, submission)
    for split, name in (("public", bias.PUBLIC_LABELS), ("private", bias.PRIVATE_LABELS)):
        labels = pd.read_csv(data_dir / name, dtype={"id": str})
        pred = submission.set_index("id").loc[labels["id"], "prediction"].to_numpy()
        expected, _ = kernel_score(labels["toxicity"], labels[bias.SCORED_IDENTITIES], pred, drop_undefined=True)
        assert board["splits"][split]["score"] == pytest.approx(expected, abs=1e-9) and board["splits"][split]["rows"] == len(labels)
        # the run's own metrics.json scores the same written predictions
        recorded = json.loads((folder / "metrics.json").read_text())["leaderboard"]["splits"][split]
        assert recorded["score"] == pytest.approx(expected, abs=1e-9) and recorded["rows"] == len(labels)


@pytest.mark.slow
def test_export(bias_run, work, run_cli, tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "kagglebert-0.0.0-py3-none-any.whl").write_bytes(b"placeholder: export copies it")
    dest = tmp_path / "export"
    done = run_cli("export", "--run", "bias-demo", "--runs-dir", work / "runs", "--to", dest, "--wheels", wheels)
    assert done.returncode == 0, done.stderr[-3000:]
    described = json.loads((dest / "kagglebert-export.json").read_text())
    assert described["folds"] == 2
    assert json.loads((dest / "runs" / "bias-demo" / "folds" / "fold1_model" / "kagglebert.json").read_text())["label_columns"] == ["target"]


@pytest.mark.slow
def test_baselines_blend_and_ablate(bias_run, work, data_dir, tiny_model_dir, run_cli, capsys):
    task = ["--set", "run.task=jigsaw-bias-2019"]
    done = run_cli("run", "--config", "tfidf", *task, *overrides(data_dir, work, tiny_model_dir, **{"run.name": "bias-tfidf", "lm.epochs": 0}))
    assert done.returncode == 0, done.stderr[-3000:]
    done = run_cli("train", "--config", "features", *task, *overrides(data_dir, work, tiny_model_dir, **{"run.name": "bias-features", "lm.epochs": 0}))
    assert done.returncode == 0, done.stderr[-3000:]
    for name in ("bias-tfidf", "bias-features"):
        metrics = json.loads((work / "runs" / name / "metrics.json").read_text())
        assert metrics["metric"] == "bias AUC" and set(metrics["per_identity"]) == set(bias.SCORED_IDENTITIES)
    # blend: the CLI's own main in this process (numpy and pandas only: no interpreter start for it)
    code = cli.main([str(a) for a in ("blend", "--runs", "bias-demo", "bias-tfidf", "--name", "bias-blend", "--method", "per-label",
                                      "--runs-dir", work / "runs", "--submissions-dir", work / "submissions")])
    assert code == 0, capsys.readouterr().err[-3000:]
    blended = json.loads((work / "runs" / "bias-blend" / "metrics.json").read_text())
    assert blended["metric"] == "bias AUC" and np.isfinite(blended["oof_auc"])
    assert set(blended["per_identity"]) == set(bias.SCORED_IDENTITIES)
    assert list(pd.read_csv(work / "submissions" / "bias-blend.csv").columns) == ["id", "prediction"]

    done = run_cli("ablate", "--config", "bias-demo", "--lm-epochs", "0", "1", *overrides(data_dir, work, tiny_model_dir, **{"run.name": "bias-ablate"}))
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((work / "runs" / "bias-ablate" / "ablation.json").read_text())
    assert summary["metric"] == "bias AUC" and len(summary["variants"]) == 2
    assert all(np.isfinite(v["oof_auc"]) for v in summary["variants"].values())


# ---- units: the fixture, the weights in the batch, the config keys ----

def test_bundled_fixture_loads_with_every_column_checked():
    data = load_competition(JIGSAW_BIAS_2019)  # no data.dir, no /kaggle/input: the bundled 2019 fixture
    assert data.dir == FIXTURE and data.sample_run
    assert len(data.train) == 5000 and len(data.test) == 1000
    header = pd.read_csv(FIXTURE / "train.csv", nrows=0).columns
    assert len(header) == 45
    # only the columns the task reads are held: no metadata
    assert "created_date" not in data.train.columns and "rating" not in data.train.columns
    assert data.train["male"].isna().mean() > 0.5  # most rows were never annotated for identity
    assert data.truth.shape == (5000, 10) and data.targets(AUX).shape == (5000, 7)
    assert list(data.sample_submission.columns) == ["id", "prediction"]



@pytest.mark.parametrize("edit, message", [
    (lambda ids: ids.where(ids.index != 4, ids.iloc[1]), "row 5, column 'id': duplicate id '{id1}' (first at row 2)"),
    (lambda ids: ids.where(ids.index != 2, " "), "row 3, column 'id': empty id"),
], ids=["duplicate id", "empty id"])
def test_a_2019_label_file_follows_the_id_rule_of_every_table(edit, message, tmp_path):
    """The released label files are checked by the same id rule as train.csv (core/tables.py)."""
    from kagglebert.core.errors import DataError

    frame = read_raw_csv(FIXTURE / bias.PRIVATE_LABELS).head(20)
    frame["id"] = edit(frame["id"])
    path = tmp_path / bias.PRIVATE_LABELS
    frame.to_csv(path, index=False)
    with pytest.raises(DataError) as err:
        bias.read_label_file(path, "id")
    assert str(err.value) == f"{path}: " + message.format(id1=frame["id"].iloc[1])

def test_loss_weights_travel_in_the_batch(tokenizer):
    cfg = config_mod.load("bias-demo")
    data = load_competition(JIGSAW_BIAS_2019)
    weights = train_stage.task_loss_weights(cfg, data)
    assert weights.shape == (5000, 1 + len(AUX))
    assert np.allclose(weights[:, 1:], 1.0) and weights[:, 0].mean() == pytest.approx(1.0, abs=1e-5)
    assert train_stage.task_loss_weights(cfg.replace(train={"identity_weights": "off"}), data) is None
    from kagglebert.core.tokenization import tokenize

    tokens = tokenize(tokenizer, data.train_texts[:4], max_length=32)
    batch = PadCollator(tokens, tokenizer.pad_token_id, data.targets(AUX)[:4], weights=weights[:4])([0, 2])
    assert batch["weights"].shape == (2, 7) and batch["labels"].shape == (2, 7)
    np.testing.assert_allclose(batch["weights"].numpy(), weights[[0, 2]])


def cli_in_process(capsys, *args) -> SimpleNamespace:
    """The CLI's own `main` in this process, answered like `run_cli`'s process: no interpreter
    start (~4 s of imports) for a case refused before any work."""
    capsys.readouterr()
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return SimpleNamespace(returncode=code, stdout=out, stderr=err)


def test_task_keys_are_checked_against_the_task(tmp_path, capsys):
    done = cli_in_process(capsys, "run", "--config", "demo", "--set", "train.aux_columns=['obscene']", "--set", f"run.runs_dir={tmp_path / 'runs'}")
    assert done.returncode == 2 and "train.aux_columns" in done.stderr and "jigsaw-toxic-2018" in done.stderr
    done = cli_in_process(capsys, "run", "--config", "demo", "--set", "train.identity_weights=bpsn-bnsp", "--set", f"run.runs_dir={tmp_path / 'runs'}")
    assert done.returncode == 2 and "no identity columns" in done.stderr
    done = cli_in_process(capsys, "run", "--config", "bias-demo", "--set", "train.aux_columns=['toxic']", "--set", f"run.runs_dir={tmp_path / 'runs'}")
    assert done.returncode == 2 and "'toxic' is not an auxiliary column" in done.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("column, value, message", [
    ("target", "1.2", "column 'target': value '1.2' is not a number in [0, 1]"),
    ("target", "", "column 'target': value '' is not a number in [0, 1]"),
    ("obscene", "x", "column 'obscene': value 'x' is not a number in [0, 1]"),
    ("muslim", "-0.1", "column 'muslim': value '-0.1' is not a number in [0, 1] or empty"),
])
def test_bad_2019_train_cells_are_one_line(data_dir, tmp_path, run_cli, capsys, column, value, message):
    folder = tmp_path / "data"
    folder.mkdir()
    train = read_raw_csv(data_dir / "train.csv")
    train.loc[6, column] = value
    train.to_csv(folder / "train.csv", index=False)
    for name in ("test.csv", "sample_submission.csv"):
        (folder / name).write_bytes((data_dir / name).read_bytes())
    work = tmp_path / "work"
    args = ("run", "--config", "bias-demo", "--set", f"data.dir={folder}", "--set", f"run.runs_dir={work / 'runs'}",
            "--set", f"submit.dir={work / 'submissions'}")
    # the first case through `python -m kagglebert`, the others through the same main in this process
    done = run_cli(*args) if (column, value) == ("target", "1.2") else cli_in_process(capsys, *args)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].endswith(f"train.csv: row 7, {message}")
    assert "Traceback" not in done.stderr
    assert not work.exists()


# ---- the notebooks with TASK = "jigsaw-bias-2019" ----

@pytest.mark.slow
@pytest.mark.parametrize("stem, figures", [("01_eda", 5), ("04_submission", 4)])
def test_notebooks_run_the_2019_task(stem, figures, data_dir, tiny_model_dir, tmp_path, monkeypatch):
    """Notebooks 1 and 4 top to bottom with KAGGLEBERT_TASK (the first cell's TASK) on the 2019
    slice: 1 shows the soft target and the identity toxicity rates, 4 the per-identity bias AUCs
    and a submission in the 2019 format."""
    import shlex

    import jupytext
    from nbclient import NotebookClient

    from kagglebert.core.paths import REPO_ROOT
    from test_notebooks import local_kernel, outputs_text

    # notebook 4 trains three runs (ITPT-FiT with its LM stage, TF-IDF, features) and blends them; a
    # label-stratified 200 of the slice's 400 training rows (the quick profile's own data.max_rows
    # path) about halves that work: its checks read the 120 test rows' submission and scores, not the training size
    max_rows = 200 if stem == "04_submission" else 0
    values = {"data.dir": data_dir, "model.name": tiny_model_dir, "data.max_rows": max_rows, "data.n_folds": 2, "train.epochs": 1,
              "lm.epochs": 1, "lm.include_test": "false", "model.max_length": 64,
              "run.runs_dir": tmp_path / "runs", "submit.dir": tmp_path / "submissions"}
    monkeypatch.setenv("KAGGLEBERT_PROFILE", "quick")
    monkeypatch.setenv("KAGGLEBERT_TASK", "jigsaw-bias-2019")
    monkeypatch.setenv("KAGGLEBERT_WORKING", str(tmp_path))  # exports/ too (a clone's default is its root)
    monkeypatch.setenv("KAGGLEBERT_OVERRIDES", " ".join(shlex.quote(f"{k}={v}") for k, v in values.items()))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    for key, value in dict(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false", PYTHONWARNINGS="ignore",
                           OMP_NUM_THREADS="1").items():
        monkeypatch.setenv(key, value)
    notebook = jupytext.read(REPO_ROOT / "notebooks" / f"{stem}.py")
    NotebookClient(notebook, km=local_kernel(tmp_path), timeout=600, resources={"metadata": {"path": str(tmp_path)}}).execute()
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert not [o for c in code for o in c.outputs if o.output_type == "error"]
    assert sum("image/png" in o.get("data", {}) for c in code for o in c.outputs) == figures
    text = outputs_text(notebook)
    assert "2018:" not in text  # the 2019 cells drew their figures
    if stem == "01_eda":
        assert (tmp_path / "runs" / "quick-bias" / "eda" / "identities.csv").is_file()
    else:
        submission = pd.read_csv(tmp_path / "submissions" / "quick-bias-itpt.csv")
        assert list(submission.columns) == ["id", "prediction"] and len(submission) == TEST_ROWS
        assert "jigsaw-unintended-bias-in-toxicity-classification" in text
        # the leaderboard table: the written submission's public and private scores, scored here independently
        from test_notebooks import outputs_text_of

        board = outputs_text_of(notebook, "report.leaderboard_table")
        written = submission.astype({"id": str}).set_index("id")
        for name in (bias.PUBLIC_LABELS, bias.PRIVATE_LABELS):
            labels = pd.read_csv(data_dir / name, dtype={"id": str})
            expected, _ = kernel_score(labels["toxicity"], labels[bias.SCORED_IDENTITIES],
                                       written.loc[labels["id"], "prediction"].to_numpy(), drop_undefined=True)
            split = "public" if name == bias.PUBLIC_LABELS else "private"
            assert f"{split} ({len(labels)} rows)" in board and f"{expected:.4f}" in board, (split, expected, board[:2000])


@pytest.mark.parametrize("case, message", [
    ("lost_public_row", "test_public_expanded.csv: column 'id': no row for test id '{first}' (submission row {row}), "
                        "nor in test_private_expanded.csv"),
    ("shared_row", "test_private_expanded.csv: row {n}, column 'id': id '{first}' is also in test_public_expanded.csv (row 1); "
                   "a test row is public or private, not both"),
])
def test_released_label_files_must_split_the_test_rows(data_dir, tmp_path, run_cli, capsys, case, message):
    """A test id in neither *_expanded file would go unscored, one in both would be scored twice:
    each is one line naming the file, the row and the column, before anything is written."""
    folder = tmp_path / "data"
    folder.mkdir()
    for name in ("train.csv", "test.csv", "sample_submission.csv"):
        (folder / name).write_bytes((data_dir / name).read_bytes())
    public, private = read_raw_csv(data_dir / bias.PUBLIC_LABELS), read_raw_csv(data_dir / bias.PRIVATE_LABELS)
    first = public["id"].iloc[0]
    row = read_raw_csv(data_dir / "sample_submission.csv")["id"].tolist().index(first) + 1
    if case == "lost_public_row":
        public = public.iloc[1:]
    else:
        private = pd.concat([private, public.head(1)])
    public.to_csv(folder / bias.PUBLIC_LABELS, index=False)
    private.to_csv(folder / bias.PRIVATE_LABELS, index=False)
    work = tmp_path / "work"
    args = ("run", "--config", "tfidf", "--set", "run.task=jigsaw-bias-2019", "--set", f"data.dir={folder}",
            "--set", f"run.runs_dir={work / 'runs'}", "--set", f"submit.dir={work / 'submissions'}",
            "--set", f"data.cache_dir={work / 'cache'}", "--set", "data.n_folds=2")
    # the first case through `python -m kagglebert`, the other through the same main in this process
    done = run_cli(*args) if case == "lost_public_row" else cli_in_process(capsys, *args)
    assert done.returncode == 2, done.stderr[-2000:]
    expected = message.format(first=first, n=len(private), row=row)
    assert done.stderr.strip().splitlines()[-1].startswith(f"error: {folder}/") and expected in done.stderr.strip().splitlines()[-1]
    assert "Traceback" not in done.stderr
    assert not work.exists()


@pytest.mark.parametrize("max_rows", [150, 200, 1000, 2000])
def test_max_rows_is_the_number_of_training_rows(max_rows):
    """data.max_rows = N trains on N rows: the stratified splitter alone gave 149, 201, 1,001 and
    1,999 on the 2019 fixture's four (toxic × identity) classes."""
    data = load_competition(JIGSAW_BIAS_2019, "", max_rows)
    assert len(data.train) == max_rows and data.train["id"].is_unique
    classes = bias.stratify_classes(data.train["target"].to_numpy(), data.train[bias.SCORED_IDENTITIES].to_numpy()).mean(0)
    full = load_competition(JIGSAW_BIAS_2019)
    expected = bias.stratify_classes(full.train["target"].to_numpy(), full.train[bias.SCORED_IDENTITIES].to_numpy()).mean(0)
    assert np.abs(classes - expected).max() < 0.02  # still stratified


def test_released_label_files_are_read_from_the_zips_kaggle_ships(tmp_path):
    """test_public_expanded.csv.zip / test_private_expanded.csv.zip score exactly as the CSVs do."""
    import zipfile

    labels = {name: read_raw_csv(FIXTURE / name).head(200) for name in (bias.PUBLIC_LABELS, bias.PRIVATE_LABELS)}
    ids = pd.concat([frame["id"] for frame in labels.values()], ignore_index=True)
    submission = pd.DataFrame({"id": ids, "prediction": np.random.default_rng(0).random(len(ids))})
    plain, zipped = tmp_path / "plain", tmp_path / "zipped"
    for folder in (plain, zipped):
        folder.mkdir()
    for name, frame in labels.items():
        frame.to_csv(plain / name, index=False)
        with zipfile.ZipFile(zipped / f"{name}.zip", "w") as archive:
            archive.writestr(name, frame.to_csv(index=False))
    from_csv, from_zip = bias.leaderboard(plain, submission), bias.leaderboard(zipped, submission)
    assert from_zip["files"] == [f"{bias.PUBLIC_LABELS}.zip", f"{bias.PRIVATE_LABELS}.zip"]
    for split in ("public", "private"):
        assert from_zip["splits"][split]["rows"] == 200
        assert from_zip["splits"][split]["score"] == from_csv["splits"][split]["score"] is not None
