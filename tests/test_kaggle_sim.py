"""A simulated Kaggle: `make kaggle-sim` (pytest -m kaggle_sim; `make test` leaves it out).

The wheel dataset (`kagglebert.deploy.wheels`, the packaged MiniLM included) is attached as an
input; each notebook runs in a fresh virtual environment on a simulated Kaggle image
(tests/kaggle_image.py: this environment's packages minus kagglebert and what the wheel folder
adds), with no index, the hub offline and, where `unshare -n` works, no network at all; the kernel
talks to the test over Unix sockets. The notebook's own first cell installs kagglebert from the
attached wheels. Inputs sit in a fake `/kaggle/input` (KAGGLEBERT_KAGGLE_INPUT), the kernel's
working folder is the fake `/kaggle/working`:

- offline flow: each notebook alone, with the wheels, the competition files and a model folder
  (a tiny BERT, so the notebooks take seconds) attached;
- multi-notebook flow: the notebooks in order, each in its own fresh session, with the `runs/`
  of every earlier notebook's `/kaggle/working` attached as a dataset (read-only); then the ITPT
  run exported with `kagglebert export` and notebook 5 run with only that export (it carries the
  wheels) and the competition files attached.
"""
from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import time
from pathlib import Path

import jupytext
import pandas as pd
import pytest

from kaggle_image import (Machine, build_wheel_dataset, errors_of, kaggle_image, kernel_manager, network_off_prefix,  # noqa: F401
                          offline_env, text_of)
from kagglebert.core.paths import REPO_ROOT

pytestmark = pytest.mark.kaggle_sim

NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
INFERENCE = "05_inference"  # runs from an exported run (`kagglebert export`), not from a profile
STAGE_NOTEBOOKS = [p for p in NOTEBOOKS if p.stem != INFERENCE]
NAMES = [p.stem for p in STAGE_NOTEBOOKS]
EXPORTED_RUN = "quick-itpt"
COMPETITION = "jigsaw-toxic-comment-classification-challenge"
TEST_ROWS = 200  # every fold predicts the whole test set
CELL_TIMEOUT = 600  # a guard against a hang; a notebook on this slice takes seconds to a minute


@pytest.fixture(scope="module")
def wheel_dataset(tmp_path_factory) -> Path:
    return build_wheel_dataset(tmp_path_factory, packaged_model=True)


@pytest.fixture(scope="module")
def competition(sample_dir, tmp_path_factory) -> Path:
    """The competition's three files as Kaggle attaches them: 300 train rows, TEST_ROWS test rows."""
    folder = tmp_path_factory.mktemp("competition") / COMPETITION
    folder.mkdir()
    shutil.copy(sample_dir / "train.csv", folder / "train.csv")
    for name in ("test.csv", "sample_submission.csv"):
        frame = pd.read_csv(sample_dir / name, dtype=str, keep_default_na=False, na_filter=False)
        frame.head(TEST_ROWS).to_csv(folder / name, index=False)
    return folder


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under `folder` with a hash of its bytes: Kaggle inputs are read-only."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


class KaggleSession:
    """One Kaggle notebook session: a fresh machine (under `root`), `<kaggle>/input/<dataset>` for
    each attached folder (links, as Kaggle mounts them) and an empty `<kaggle>/working`. Sessions
    of one flow share `kaggle`, so every notebook sees the same paths, as on Kaggle (run settings
    that name a path, like model.name, then match); a session replaces the previous one's tree."""

    def __init__(self, root: Path, kaggle: Path, image: Path, inputs: dict[str, Path]):
        self.root = root
        self.input = kaggle / "input"
        self.working = kaggle / "working"
        shutil.rmtree(kaggle, ignore_errors=True)
        self.input.mkdir(parents=True)
        self.working.mkdir()
        for name, folder in inputs.items():
            (self.input / name).symlink_to(folder, target_is_directory=True)
        overrides = {  # the quick profile shrunk to a tiny slice; data, runs and submissions: the Kaggle defaults
            "model.name": self.input / "tiny-bert",  # a model folder attached as a dataset
            "data.max_rows": 120,
            "data.n_folds": 2,
            "train.epochs": 1,
            "lm.epochs": 1,
            "lm.include_test": "false",
        }
        self.env = offline_env(
            kaggle,
            KAGGLEBERT_PROFILE="quick",
            KAGGLEBERT_OVERRIDES=" ".join(shlex.quote(f"{k}={v}") for k, v in overrides.items()),
            MPLBACKEND="module://matplotlib_inline.backend_inline",
            HOME=str(root / "home"),
        )
        self.machine = Machine(root / "venv", image, self.env)
        self.env["PATH"] = f"{self.machine.python.parent}{os.pathsep}{self.env['PATH']}"  # `!pip` is this machine's

    def run(self, script: Path):
        """The notebook executed top to bottom; its cells' outputs are in the returned notebook."""
        from nbclient import NotebookClient

        notebook = jupytext.read(script)
        client = NotebookClient(notebook, km=kernel_manager(self.root, self.machine.python), timeout=CELL_TIMEOUT, allow_errors=True,
                                resources={"metadata": {"path": str(self.working)}})
        started = time.perf_counter()
        client.execute(env=self.env)
        print(f"{script.name}: {time.perf_counter() - started:.1f} s")
        return notebook

    def save_output(self) -> Path:
        """`/kaggle/working` as the dataset Kaggle makes of a notebook's output (moved out of the way
        of the next session)."""
        saved = self.root / "output"
        shutil.move(self.working, saved)
        return saved


def weights_written(folder: Path) -> list[Path]:
    """Model weight files written under `folder` itself; links to an attached input's folders
    (read-only reuse) are not followed."""
    found = []
    for parent, _, files in os.walk(folder):  # os.walk does not descend into linked folders
        found += [Path(parent, f) for f in files if f.endswith((".safetensors", ".bin", ".pt"))]
    return found


def check_session(session: KaggleSession, notebook, inputs_before: dict[str, dict]) -> str:
    """What every simulated session must show; returns the notebook's text output."""
    assert not errors_of(notebook), errors_of(notebook)
    installed = session.machine.site_packages / "kagglebert"
    assert installed.is_dir(), "the notebook did not install kagglebert from the attached wheels"
    for name, before in inputs_before.items():
        assert snapshot(session.input / name) == before, f"the notebook changed its input {name}"
    assert not Path("/kaggle").exists(), "the notebook wrote to this machine's /kaggle instead of its working folder"
    return text_of(notebook)


@pytest.fixture()
def no_real_kaggle():
    if Path("/kaggle").exists():
        pytest.skip("this machine has a /kaggle folder: the sim could not tell its writes from Kaggle's")


def test_network_is_off_in_the_sim(kaggle_image, tmp_path):
    """Recorded for the log: whether `unshare -n` isolates the sim here (else only the settings do)."""
    machine = Machine(tmp_path / "venv", kaggle_image, offline_env(tmp_path / "kaggle"))
    probe = machine.run("-c", "import socket; socket.create_connection(('pypi.org', 443), timeout=5)", cwd=tmp_path)
    print(f"network isolation: {'unshare -n' if network_off_prefix() else 'settings only (unshare -n unavailable)'}")
    if network_off_prefix():
        assert probe.returncode != 0
    refused = machine.run("-m", "pip", "download", "--no-deps", "-d", str(tmp_path / "d"), "tomli-w", cwd=tmp_path)
    assert refused.returncode != 0  # no index: nothing comes from PyPI


def test_without_the_wheels_the_first_cell_says_what_to_attach(competition, kaggle_image, tiny_model_dir, tmp_path,
                                                              no_real_kaggle):
    """Internet off, nothing to install from: one line naming what to attach, no pip traceback."""
    inputs = {COMPETITION: competition, "tiny-bert": tiny_model_dir}
    session = KaggleSession(tmp_path, tmp_path / "kaggle", kaggle_image, inputs)
    notebook = session.run(STAGE_NOTEBOOKS[0])
    first_error = next(o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error")
    assert first_error["ename"] == "SystemExit"
    assert "attach the wheel dataset" in first_error["evalue"] and "\n" not in first_error["evalue"]


@pytest.mark.parametrize("script", STAGE_NOTEBOOKS, ids=NAMES)
def test_offline_flow_each_notebook_alone(script, wheel_dataset, competition, kaggle_image, tiny_model_dir, tmp_path,
                                          no_real_kaggle):
    inputs = {"kagglebert-wheels": wheel_dataset, COMPETITION: competition, "tiny-bert": tiny_model_dir}
    session = KaggleSession(tmp_path, tmp_path / "kaggle", kaggle_image, inputs)
    before = {name: snapshot(session.input / name) for name in inputs}
    text = check_session(session, session.run(script), before)
    assert str(session.input / COMPETITION) in text, "the notebook does not say where it found the competition files"
    assert f"from the attached wheels in {session.input / 'kagglebert-wheels'}" in text  # the first cell says what it installed
    assert (session.working / "runs").is_dir()
    if script.stem == "04_submission":  # alone, notebook 4 trains the chosen arm, never FiT: it says so
        assert "not found, and this notebook does not train it" in text and "left out of the ranking" in text and "quick-fit" in text
    if script.stem == "01_eda":  # the packaged model's wheel installed too, and resolves offline
        probe = session.machine.run("-c", "from kagglebert.core.paths import resolve_model; print(resolve_model('packaged-minilm'))",
                                    cwd=session.working)
        assert probe.returncode == 0 and Path(probe.stdout.strip()).is_relative_to(session.machine.site_packages), probe.stderr


def test_multi_notebook_flow(wheel_dataset, competition, kaggle_image, tiny_model_dir, tmp_path, no_real_kaggle):
    """Notebook N+1 gets the `runs/` of notebooks 1..N as attached datasets and reuses them; then
    the ITPT run is exported (`kagglebert export`, wheels inside) and notebook 5 scores the test
    file from that export alone, as a code competition's internet-off notebook would."""
    outputs: dict[str, Path] = {}  # dataset name → an earlier notebook's /kaggle/working
    for script in STAGE_NOTEBOOKS:
        inputs = {"kagglebert-wheels": wheel_dataset, COMPETITION: competition, "tiny-bert": tiny_model_dir, **outputs}
        session = KaggleSession(tmp_path / script.stem, tmp_path / "kaggle", kaggle_image, inputs)
        before = {name: snapshot(session.input / name) for name in inputs}
        text = check_session(session, session.run(script), before)
        if script.stem in ("03_train_kfold", "04_submission"):
            assert "attached (read-only)" in text, f"{script.stem} does not say it reused an earlier notebook's output"
        if script.stem == "03_train_kfold":  # the ITPT arm starts from notebook 2's LM instead of training one
            assert not weights_written(session.working / "runs" / "_lm"), "notebook 3 trained the LM again"
        if script.stem == "04_submission":  # the folds come from notebook 3: none is trained again
            assert not weights_written(session.working / "runs" / EXPORTED_RUN), "notebook 4 trained the folds again"
        outputs[f"{script.stem}-output"] = session.save_output()

    inference = next((p for p in NOTEBOOKS if p.stem == INFERENCE), None)
    if inference is None:
        return
    export = tmp_path / "export" / EXPORTED_RUN
    notebook_4 = outputs["04_submission-output"]
    exported = session.machine.run("-m", "kagglebert", "export", "--run", EXPORTED_RUN, "--to", str(export),
                                   "--wheels", str(wheel_dataset), cwd=notebook_4)
    assert exported.returncode == 0, exported.stderr[-2000:]
    inputs = {f"{EXPORTED_RUN}-export": export, COMPETITION: competition}  # the export carries the wheels
    session = KaggleSession(tmp_path / INFERENCE, tmp_path / "kaggle", kaggle_image, inputs)
    before = {name: snapshot(session.input / name) for name in inputs}
    check_session(session, session.run(inference), before)
    submission = pd.read_csv(session.working / "submission.csv", dtype={"id": str})
    expected = pd.read_csv(competition / "sample_submission.csv", dtype={"id": str})
    assert list(submission.columns) == list(expected.columns) and submission["id"].tolist() == expected["id"].tolist()
