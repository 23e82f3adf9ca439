"""The notebooks: each .py and its paired .ipynb hold the same cells, the committed .ipynb
carry no outputs, every notebook starts with the same install cell (which fails in one line, never
a traceback), and each stage notebook runs top to bottom on the quick profile shrunk to a tiny
slice (tiny BERT, 120 rows, 2 folds, 1 epoch) — alone, in a fresh runs folder, through jupytext and
nbclient with this venv's python as the kernel."""
from __future__ import annotations

import json
import re
import shlex
import sys
import time
from pathlib import Path

import jupytext
import pytest

from kagglebert.core.config import Config
from kagglebert.core.runs import read_run
from kagglebert.core.paths import REPO_ROOT

NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
NAMES = [p.stem for p in NOTEBOOKS]
# the four stage notebooks run here on a tiny slice; 05_inference needs an exported run and is
# executed by tests/test_predict_export.py
STAGES = [p for p in NOTEBOOKS if p.stem < "05"]
TEST_ROWS = 200
# CPU seconds of the kernel process: the budget holds however many other jobs share the machine
CPU_SECONDS_PER_NOTEBOOK = 60
WALL_SECONDS_LIMIT = 300  # only a guard against a hang or a notebook that ignored the overrides


def test_the_stage_notebooks_exist():
    assert [p.stem for p in STAGES] == ["01_eda", "02_lm_finetune", "03_train_kfold", "04_submission"]
    assert 'formats = "ipynb,py:percent"' in (REPO_ROOT / "jupytext.toml").read_text()


def cells(notebook) -> list[tuple[str, str]]:
    return [(cell.cell_type, cell.source.strip()) for cell in notebook.cells]


@pytest.mark.parametrize("script", NOTEBOOKS, ids=NAMES)
def test_py_and_ipynb_agree(script):
    paired = script.with_suffix(".ipynb")
    assert paired.is_file(), f"{paired} missing: run `make sync-notebooks`"
    from_py, from_ipynb = jupytext.read(script), jupytext.read(paired)
    assert cells(from_py) == cells(from_ipynb), f"{script.name} and {paired.name} differ: run `make sync-notebooks`"
    assert [c.metadata.get("tags") for c in from_py.cells] == [c.metadata.get("tags") for c in from_ipynb.cells]


@pytest.mark.parametrize("script", NOTEBOOKS, ids=NAMES)
def test_committed_ipynb_has_no_outputs(script):
    notebook = jupytext.read(script.with_suffix(".ipynb"))
    dirty = [i for i, c in enumerate(notebook.cells) if c.cell_type == "code" and (c.get("outputs") or c.get("execution_count"))]
    assert not dirty, f"{script.with_suffix('.ipynb').name}: cells {dirty} carry outputs; clear them before committing"


def first_code_cell(script) -> str:
    return next(c.source for c in jupytext.read(script).cells if c.cell_type == "code")


def test_the_install_cell_is_the_same_in_every_notebook():
    first = {script.name: first_code_cell(script) for script in NOTEBOOKS}
    assert len(set(first.values())) == 1, f"first code cells differ: {sorted(first)}"
    cell = next(iter(first.values()))
    assert 'KAGGLEBERT_PIP_SOURCE = ""' in cell  # no default pointing at a repository
    assert "git clone" not in cell and "github.com/kagglebert" not in cell


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory) -> str:
    """An interpreter without kagglebert and without pip: the notebook's first cell as it starts
    on a machine where nothing is installed yet."""
    import subprocess
    import venv

    folder = tmp_path_factory.mktemp("bare-venv")
    venv.EnvBuilder(with_pip=False).create(folder)
    python = str(folder / "bin" / "python")
    assert subprocess.run([python, "-c", "import kagglebert"], capture_output=True).returncode != 0
    return python


def run_install_cell(python: str, inputs, source: str = ""):
    import subprocess

    cell = first_code_cell(NOTEBOOKS[0]).replace('KAGGLEBERT_PIP_SOURCE = ""', f"KAGGLEBERT_PIP_SOURCE = {source!r}")
    env = {"PATH": "/usr/bin:/bin", "KAGGLEBERT_KAGGLE_INPUT": str(inputs)}
    # run outside the clone: `python -c` puts the working folder first on sys.path
    return subprocess.run([python, "-c", cell], capture_output=True, text=True, env=env, timeout=120, cwd=inputs.parent)


def test_install_cell_without_a_source_says_what_to_attach(bare_python, tmp_path):
    done = run_install_cell(bare_python, tmp_path / "no-inputs")  # a folder that does not exist
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().count("\n") == 0  # one line
    assert "attach the wheel dataset" in done.stderr and "KAGGLEBERT_PIP_SOURCE" in done.stderr


def test_install_cell_failure_is_one_line_not_a_traceback(bare_python, tmp_path):
    inputs = tmp_path / "input"
    (inputs / "my-wheels").mkdir(parents=True)
    (inputs / "my-wheels" / "kagglebert-0.1.0-py3-none-any.whl").write_bytes(b"not a wheel")
    from_wheels = run_install_cell(bare_python, inputs)  # the attached wheel folder is tried first
    assert from_wheels.returncode == 1 and "Traceback" not in from_wheels.stderr
    assert from_wheels.stderr.strip().splitlines()[-1].startswith("pip could not install kagglebert")
    from_source = run_install_cell(bare_python, tmp_path / "no-inputs", source="git+https://example.invalid/x")
    assert from_source.returncode == 1 and "Traceback" not in from_source.stderr
    assert "pip could not install git+https://example.invalid/x" in from_source.stderr


@pytest.mark.parametrize("script", NOTEBOOKS, ids=NAMES)
def test_code_cells_stay_thin(script):
    """No class or function definitions and no loops in the cells: the library does the work."""
    for cell in jupytext.read(script).cells:
        if cell.cell_type != "code":
            continue
        for line in cell.source.splitlines():
            assert not line.lstrip().startswith(("class ", "def ", "for ", "while ")), f"{script.name}: {line!r}"


@pytest.fixture(scope="session")
def notebook_data(sample_dir, tmp_path_factory) -> Path:
    """The shared sample with its test set cut to TEST_ROWS rows (and sample_submission to match):
    every fold predicts the whole test set, and the notebooks train four fold models."""
    import pandas as pd

    from kagglebert.core.paths import BUNDLED_SAMPLE

    folder = tmp_path_factory.mktemp("notebook-data")
    (folder / "train.csv").write_bytes((sample_dir / "train.csv").read_bytes())
    for name in ("test.csv", "sample_submission.csv"):
        frame = pd.read_csv(sample_dir / name, dtype=str, keep_default_na=False, na_filter=False)
        frame.head(TEST_ROWS).to_csv(folder / name, index=False)
    # the released labels of those rows, every 5th marked -1 (unscored): notebook 4 scores on them
    labels = pd.read_csv(BUNDLED_SAMPLE / "test_labels.csv", dtype=str, keep_default_na=False, na_filter=False).head(TEST_ROWS)
    labels.loc[labels.index % 5 == 0, labels.columns[1:]] = "-1"
    labels.to_csv(folder / "test_labels.csv", index=False)
    return folder


@pytest.fixture()
def notebook_env(monkeypatch, tiny_model_dir, notebook_data, tmp_path):
    """The quick profile shrunk to a tiny slice, writing only under tmp_path."""
    overrides = {
        "data.dir": notebook_data,
        "model.name": tiny_model_dir,
        "data.max_rows": 120,
        "data.n_folds": 2,
        "train.epochs": 1,
        "lm.epochs": 1,
        "lm.include_test": "false",  # 120 train texts are corpus enough; the 600 test texts would be 5x the LM work
        "run.runs_dir": tmp_path / "runs",
        "submit.dir": tmp_path / "submissions",
    }
    monkeypatch.setenv("KAGGLEBERT_PROFILE", "quick")
    monkeypatch.setenv("KAGGLEBERT_WORKING", str(tmp_path))  # exports/ too (a clone's default is its root)
    monkeypatch.setenv("KAGGLEBERT_OVERRIDES", " ".join(shlex.quote(f"{k}={v}") for k, v in overrides.items()))
    # headless like Agg, and renders a returned Figure as PNG the way Jupyter does
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    # one intra-op thread: the kernel's CPU seconds (budgeted below) do not grow with another pytest worker's load
    for key, value in dict(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false", PYTHONWARNINGS="ignore",
                           OMP_NUM_THREADS="1").items():
        monkeypatch.setenv(key, value)
    return tmp_path


def local_kernel(folder: Path):
    """A kernel of this interpreter reached over Unix sockets in `folder`: TCP ports are picked free
    and released before the kernel binds them, so two pytest workers starting kernels at once could
    draw the same one."""
    from jupyter_client.manager import AsyncKernelManager

    return AsyncKernelManager(kernel_name=python_kernel_name(), transport="ipc", ip=str(folder / "kernel-ipc"))


def python_kernel_name() -> str:
    """A kernelspec that runs this interpreter; installed into this venv only if there is none."""
    from jupyter_client.kernelspec import KernelSpecManager

    specs = KernelSpecManager().get_all_specs()
    for name, spec in specs.items():
        argv0 = spec["spec"]["argv"][0]
        if argv0 in (sys.executable, "python", "python3") or Path(argv0).resolve() == Path(sys.executable).resolve():
            return name
    import subprocess

    subprocess.run([sys.executable, "-m", "ipykernel", "install", "--sys-prefix", "--name", "kagglebert-venv"], check=True)
    return "kagglebert-venv"


def outputs_text(notebook) -> str:
    parts = []
    for cell in notebook.cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text", ""))
            parts.extend(str(v) for v in out.get("data", {}).values())
    return "\n".join(parts)



def run_notebook_05(working: Path, monkeypatch, **env) -> str:
    """Notebook 05 executed top to bottom in a new folder `working` (its KAGGLEBERT_WORKING), offline
    and on one thread, with `env` set too; asserts no cell failed and returns every output's text."""
    import jupytext
    from nbclient import NotebookClient

    from kagglebert.core.paths import REPO_ROOT

    working.mkdir()
    settings = dict(KAGGLEBERT_WORKING=working, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
                    PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")
    for key, value in {**settings, **env}.items():
        monkeypatch.setenv(key, str(value))
    notebook = jupytext.read(REPO_ROOT / "notebooks" / "05_inference.py")
    NotebookClient(notebook, km=local_kernel(working), timeout=300, resources={"metadata": {"path": str(working)}}).execute()
    assert not [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    return outputs_text(notebook)

@pytest.mark.parametrize("script", STAGES, ids=[p.stem for p in STAGES])
def test_notebook_runs_alone_on_a_tiny_slice(script, notebook_env):
    import psutil
    from nbclient import NotebookClient

    notebook = jupytext.read(script)
    cpu = {}

    def record_kernel_cpu(**_):  # after each cell, while the kernel is alive
        times = psutil.Process(client.km.provisioner.pid).cpu_times()
        cpu["seconds"] = times.user + times.system + times.children_user + times.children_system

    client = NotebookClient(notebook, km=local_kernel(notebook_env), timeout=WALL_SECONDS_LIMIT,
                            resources={"metadata": {"path": str(notebook_env)}}, on_cell_executed=record_kernel_cpu)
    started = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - started
    print(f"{script.name}: {seconds:.1f} s wall, {cpu['seconds']:.1f} s kernel CPU")
    assert cpu["seconds"] < CPU_SECONDS_PER_NOTEBOOK, f"{script.name} used {cpu['seconds']:.0f} s of CPU"
    assert seconds < WALL_SECONDS_LIMIT

    code_cells = [c for c in notebook.cells if c.cell_type == "code"]
    errors = [o for c in code_cells for o in c.outputs if o.output_type == "error"]
    assert not errors
    figures = sum("image/png" in o.get("data", {}) for c in code_cells for o in c.outputs)
    expected_figures = {"01_eda": 3, "02_lm_finetune": 2, "03_train_kfold": 3, "04_submission": 3}[script.stem]
    assert figures == expected_figures, f"{script.name}: {figures} figures shown"

    runs = notebook_env / "runs"
    text = outputs_text(notebook)
    assert str(notebook_env) in text  # the overrides reached the notebook's config
    if script.stem == "01_eda":
        assert (runs / "quick" / "eda" / "summary.json").is_file()
    if script.stem == "02_lm_finetune":
        assert read_run(runs, "quick-itpt").lm_complete()
        assert "Please do not" in text  # the fill-mask table
    if script.stem == "03_train_kfold":
        for arm in ("quick-fit", "quick-itpt"):
            assert (runs / arm / "metrics.json").is_file()
        assert "paired difference" in text
    if script.stem == "04_submission":
        written = notebook_env / "submissions" / "quick-itpt.csv"
        assert written.is_file()
        ranked = {name: json.loads((runs / name / "metrics.json").read_text()) for name in
                  ("quick-itpt", "quick-tfidf", "quick-features", "quick-blend")}
        honest = {name: m.get("oof_auc_nested") or m["oof_auc"] for name, m in ranked.items()}
        best = max(honest, key=honest.get)  # the notebook ends with the best candidate's file
        assert f"kaggle competitions submit -c jigsaw-toxic-comment-classification-challenge -f {notebook_env / 'submissions' / best}.csv" in text
        rows = len((notebook_env / "submissions" / f"{best}.csv").read_text().splitlines()) - 1
        assert f"has {rows} rows; the competition's test set has 153,164" in text  # a sample run is flagged
        best_file = notebook_env / "submissions" / f"{best}.csv"
        commands = set(re.findall(rf"kaggle competitions submit -c \S+ -f {re.escape(str(best_file))} [^\n]*", text))
        assert len(commands) == 1, commands  # one command for the recommended file, however often it is printed
        assert "['" not in outputs_text_of(notebook, "final.command")  # no raw Python list of warnings
        assert (notebook_env / "exports" / best / "kagglebert-export.json").is_file()  # the last cell exports it
        assert "False" not in outputs_text_of(notebook, "validate_submission")
        for baseline in ("quick-tfidf", "quick-features"):
            assert (runs / baseline / "oof.csv").is_file()
        blended = json.loads((runs / "quick-blend" / "metrics.json").read_text())
        assert blended["members"] == ["quick-itpt", "quick-tfidf", "quick-features"]
        assert (notebook_env / "submissions" / "quick-blend.csv").is_file()
        assert "weights from the other folds" in outputs_text_of(notebook, "report.blend_table")
        # the leaderboard table: the submission file's test score, scored here independently
        import numpy as np
        import pandas as pd
        from sklearn.metrics import roc_auc_score

        sub = pd.read_csv(written, dtype={"id": str})
        labels_file = Path(read_run(runs, "quick-itpt").cfg.data.dir) / "test_labels.csv"
        truth = pd.read_csv(labels_file, dtype={"id": str}).set_index("id").loc[sub["id"]]
        labels = list(sub.columns[1:])
        scored = (truth[labels] != -1).all(axis=1).to_numpy()
        expected = np.mean([roc_auc_score(truth[c].to_numpy()[scored], sub[c].to_numpy()[scored]) for c in labels])
        board = outputs_text_of(notebook, "report.leaderboard_table")
        assert f"{expected:.4f}" in board and f"all ({scored.sum()} rows)" in board
        assert all(name in board for name in ("quick-itpt", "quick-tfidf", "quick-features", "quick-blend"))
        assert "public/private split of these rows is not published" in text


def outputs_text_of(notebook, call: str) -> str:
    """Outputs of the code cell whose source contains `call`."""
    cell = next(c for c in notebook.cells if c.cell_type == "code" and call in c.source)
    return "\n".join(str(v) for o in cell.outputs for v in o.get("data", {}).values())


def test_profile_environment_wins_over_the_notebook(monkeypatch):
    from kagglebert.notebook import profiles

    monkeypatch.delenv("KAGGLEBERT_OVERRIDES", raising=False)
    monkeypatch.setenv("KAGGLEBERT_PROFILE", "full")
    monkeypatch.setenv("KAGGLEBERT_OVERRIDES", f"data.max_rows=70 'model.name=/tmp/my model' train.folds=[0,1] data.dir={REPO_ROOT}")
    cfg = profiles.load("quick")
    assert (cfg.run.name, cfg.data.max_rows, cfg.model.name, cfg.train.folds) == ("full", 70, "/tmp/my model", [0, 1])
    monkeypatch.delenv("KAGGLEBERT_PROFILE")
    monkeypatch.delenv("KAGGLEBERT_OVERRIDES")
    quick = profiles.load("quick")
    assert quick.run.name == "quick" and quick.model.name == "packaged-minilm" and quick.data.max_rows > 0
    assert Path(quick.run.runs_dir) == REPO_ROOT / "runs"  # a clone: the same runs/ from any working folder


def test_profile_mistakes_are_config_errors(monkeypatch):
    from kagglebert.notebook import profiles
    from kagglebert.core.errors import ConfigError

    monkeypatch.delenv("KAGGLEBERT_PROFILE", raising=False)
    monkeypatch.delenv("KAGGLEBERT_OVERRIDES", raising=False)
    with pytest.raises(ConfigError, match="profile 'fast'"):
        profiles.load("fast")
    with pytest.raises(ConfigError, match="train.epoch"):
        profiles.load("quick", ["train.epoch=1"])
    monkeypatch.setenv("KAGGLEBERT_OVERRIDES", "data.n_folds=1")
    with pytest.raises(ConfigError, match="n_folds"):
        profiles.load("quick")


def test_the_two_arms_differ_only_in_the_lm_stage(monkeypatch):
    from kagglebert.notebook import profiles
    from kagglebert.core.binding import flat

    monkeypatch.delenv("KAGGLEBERT_PROFILE", raising=False)
    monkeypatch.delenv("KAGGLEBERT_OVERRIDES", raising=False)
    arms = profiles.variants(profiles.load("quick"))
    fit, itpt = (flat(arms[k].to_dict()) for k in ("FiT", "ITPT-FiT"))
    assert {k for k in fit if fit[k] != itpt[k]} == {"run.name", "lm.epochs"}
    assert (fit["lm.epochs"], itpt["run.name"]) == (0, "quick-itpt") and itpt["lm.epochs"] > 0


# --- the notebook helpers' numbers and figures -----------------------------------------------------

def test_threshold_table_counts_precision_and_recall():
    import numpy as np

    from kagglebert.notebook import report

    oof = report.OOF(["a"], np.array([[1], [1], [0], [0]], dtype=float), np.array([[0.9], [0.4], [0.6], [0.1]]))
    table = report.threshold_table(oof, thresholds=(0.5, 0.95))
    assert table.loc[("a", 0.5)].to_dict() == {"positives": 2, "flagged": 2, "precision": 0.5, "recall": 0.5}
    assert table.loc[("a", 0.95), "flagged"] == 0 and np.isnan(table.loc[("a", 0.95), "precision"])


def test_ranking_uses_the_nested_score_and_flags_weak_transformers():
    from kagglebert.notebook import report

    runs = {"itpt": {"oof_auc": 0.90}, "tfidf": {"oof_auc": 0.93},
            "blend": {"oof_auc": 0.95, "oof_auc_nested": 0.91, "members": ["itpt", "tfidf"], "method": "weighted"}}
    scores = report.run_scores(runs)
    assert list(scores.index) == ["tfidf", "blend", "itpt"]  # the blend's 0.95 flatters it; 0.91 ranks it
    recipe = Config()  # mean pooling, lr 6e-5, head 1e-3, 2 epochs: only what differs is suggested
    recipe.train.pos_weight_power, recipe.model.truncation = 0.5, "head+tail"
    off = recipe.replace(model={"pooling": "cls"}, train={"epochs": 1}, data={"max_rows": 600})
    flags = report.health_flags({"itpt": (runs["itpt"], off), "weak": ({"oof_auc": 0.55}, recipe)}, {"tfidf": runs["tfidf"]})
    assert len(flags) == 2
    assert flags[0].startswith("itpt: OOF AUC 0.9000 is below the tfidf baseline (0.9300) on the same folds: on a subsample")
    assert "model.pooling = 'cls' now" in flags[0] and "train.epochs = 1 now" in flags[0] and "data.max_rows = 600" in flags[0]
    assert "train.lr" not in flags[0] and "head_lr" not in flags[0] and "pos_weight" not in flags[0]
    assert flags[1].startswith("weak: OOF AUC 0.5500 is near chance") and "follow the recipe" in flags[1]
    assert report.health_flags({"itpt": ({"oof_auc": 0.97}, recipe)}, {"tfidf": runs["tfidf"]}) == []
    assert report.submission_warnings("jigsaw-toxic-2018", 153_164, "x.csv") == []
    assert "600 rows; the competition's test set has 153,164" in report.submission_warnings("jigsaw-toxic-2018", 600, "x.csv")[0]


def test_figures_say_what_they_show():
    import math

    import numpy as np
    import pandas as pd

    from kagglebert.notebook import plots

    labels = ["toxic", "threat"]
    table = pd.DataFrame({"weight": [0.6, 0.4, None, None], "OOF AUC": [0.97, 0.95, 0.975, 0.971], "toxic": [0.96, 0.95, 0.97, None],
                          "threat": [0.98, 0.94, 0.985, None]},
                         index=["bert", "tfidf", "blend (weighted)", "blend, weights from the other folds"])
    ax = plots.blend_per_label(table).axes[0]
    assert ax.get_ylim()[0] == 0.5 and all(bar.get_y() == 0.5 for bar in ax.patches)  # bars start at chance
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [  # the honest (nested) score beside the fitted one
        "bert: 0.9700", "tfidf: 0.9500", "blend (weighted): 0.9750 (0.9710 with weights from the other folds)"]
    legend = ax.get_legend().get_window_extent()
    assert legend.x0 >= ax.get_window_extent().x1  # outside the axes: it hides no bar

    cooccurrence = pd.DataFrame([[1.0, 0.05], [1.0, 1.0]], index=labels, columns=labels)
    ax = plots.label_cooccurrence(cooccurrence, pd.Series({"toxic": 400, "threat": 3})).axes[0]
    texts = [t.get_text() for t in ax.texts]
    assert "1.00\n3/3" in texts and "0.05" in texts  # the 3-comment row shows its counts
    assert [t.get_text() for t in ax.get_yticklabels()] == ["toxic (n=400)", "threat (n=3)"]

    metrics = {"train_blocks": 64, "perplexity_before": 100.0, "perplexity_after": 50.0,
               "epochs": [{"epoch": 1, "loss_curve": [5.0, 4.0, 3.5, 3.0]}]}
    cfg = type("Cfg", (), {"lm": type("LM", (), {"batch_size": 16, "log_every": 1})()})()
    ax = plots.lm_loss_curve(metrics, cfg).axes[0]
    assert list(ax.lines[0].get_xdata()) == [1, 2, 3, 4] and "per step" in ax.get_title()
    ax = plots.lm_loss_curve({**metrics, "perplexity_before": 30_000.0}, cfg).axes[0]  # a fresh head: before ≫ the curve
    assert ax.get_ylim()[1] > math.log(30_000.0) + 0.1  # the "before" line inside the axes, not on its edge

    ax = plots.lr_schedule(np.array([1e-5, 2e-5, 1.5e-5, 1e-5, 0.5e-5])).axes[0]
    assert "warm-up: 2 of 5 steps" in [t.get_text() for t in ax.get_legend().get_texts()]
    assert ax.lines[0].get_ydata()[0] == 0.0  # from 0 before the first step

    lengths = pd.DataFrame({"split": ["train"] * 3 + ["test"] * 2, "chars": [10, 100, 5000, 20, 30], "tokens": [3, 30, 1500, 6, 8]})
    fig = plots.comment_lengths(lengths, max_length=128)
    assert all(ax.get_xscale() == "log" for ax in fig.axes)
    assert max(p.get_x() + p.get_width() for p in fig.axes[1].patches) > 1500  # nothing clipped
    assert fig.axes[0].get_xlim()[0] == 9.5 and fig.axes[1].get_xlim()[0] == 2.5  # from the shortest comment, not from 1
    legend = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert [t for t in legend if "(this run)" in t] == ["max_length 128 (this run): cuts train 33.3%, test 0.0%"]
    capped = pd.DataFrame({"split": ["train"] * 6, "chars": [10, 20, 30, 5000, 5000, 5000], "tokens": [3, 5, 7, 900, 900, 900]})
    legend = [t.get_text() for t in plots.comment_lengths(capped).axes[0].get_legend().get_texts()]
    assert "3 comments at exactly 5,000 (cut there by the data's source)" in legend


def test_figures_say_what_their_data_is():
    """The sample's label balance against the competition's, the number of comments a length
    histogram counts, and per-label AUCs resting on few positives marked as such."""
    import numpy as np
    import pandas as pd

    from kagglebert.core.data import read_csv
    from kagglebert.core.paths import BUNDLED_SAMPLE
    from kagglebert.core.tasks import JIGSAW_TOXIC_2018 as task
    from kagglebert.notebook import plots, report
    from kagglebert.stages.eda import prevalence_note

    train = read_csv(BUNDLED_SAMPLE / "train.csv")
    labels = train[task.label_columns].to_numpy(dtype=float)
    prevalence = pd.DataFrame({"label": task.label_columns, "positives": labels.sum(0).astype(int), "share": labels.mean(0),
                               "competition_share": [task.competition_prevalence[label] for label in task.label_columns]})
    note = prevalence_note(prevalence)
    toxic = 100 * labels[:, 0].mean()
    assert note.startswith(f"toxic {toxic:.1f}% of these train rows vs 9.6% in the competition: toxic-enriched")
    ax = plots.label_prevalence(prevalence, note).axes[0]
    assert "toxic-enriched" in ax.get_title() and len(ax.collections) == 1  # the competition's shares as ticks
    even = prevalence.assign(share=prevalence["competition_share"])
    assert prevalence_note(even).endswith("like the competition")

    lengths = pd.DataFrame({"split": ["train"] * 3 + ["test"] * 2, "chars": [10, 100, 50, 20, 30], "tokens": [3, 30, 15, 6, 8]})
    assert plots.comment_lengths(lengths).axes[0].get_title() == "Characters per comment (3 train + 2 test comments)"

    metrics = {"method": "weighted", "weights": {"bert": 0.6, "tfidf": 0.4}, "member_oof_auc": {"bert": 0.9, "tfidf": 0.8},
               "member_per_label_auc": {"bert": {"toxic": 0.9, "threat": 0.7}, "tfidf": {"toxic": 0.8, "threat": 0.9}},
               "oof_auc": 0.91, "oof_auc_nested": 0.9, "per_label_auc": {"toxic": 0.92, "threat": 0.8},
               "label_positives": {"toxic": 400, "threat": 5}}
    table = report.blend_table(metrics)
    assert table.loc[report.POSITIVES_ROW, ["toxic", "threat"]].tolist() == [400, 5]
    ax = plots.blend_per_label(table).axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["toxic\n(n=400)", "threat\n(n=5, few)"]
    hatched = [bar for bar in ax.patches if bar.get_hatch()]
    assert len(hatched) == 3 and all(np.isclose(bar.get_x() + bar.get_width() / 2, 1, atol=0.4) for bar in hatched)  # threat's bars only
    assert "under 30 positive comments" in ax.get_title()
    assert len(ax.get_legend().get_texts()) == 3  # the positives row is not drawn as a member
