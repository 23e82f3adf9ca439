"""`export` from wherever kagglebert is installed: the kagglebert wheel is rebuilt from a clone, or
from the source pip recorded for an installed package (direct_url.json), or refused in one line that
says what to run instead. A real `pip install` of a copy of this source tree into a throwaway venv,
and faked install records for the other sources."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kagglebert.core.errors import RunError
from kagglebert.core.paths import REPO_ROOT
from kagglebert.deploy import wheels


class FakeDistribution:
    def __init__(self, direct_url: dict | None, version: str = "9.9.9"):
        self.version = version
        self.direct_url = direct_url

    def read_text(self, name: str):
        return json.dumps(self.direct_url) if name == "direct_url.json" and self.direct_url is not None else None


def source_for(monkeypatch, tmp_path, direct_url):
    monkeypatch.setattr(wheels.metadata, "distribution", lambda name: FakeDistribution(direct_url))
    return wheels.wheel_source(root=tmp_path / "site-packages")  # no pyproject.toml: an installed package


def test_the_wheel_source_of_each_kind_of_install(monkeypatch, tmp_path):
    assert wheels.wheel_source().root == REPO_ROOT  # a clone builds from itself
    git = source_for(monkeypatch, tmp_path, {"url": "https://github.com/me/kagglebert", "vcs_info": {"vcs": "git", "commit_id": "abc123"}})
    assert git.root is None and git.requirement == "git+https://github.com/me/kagglebert@abc123"
    assert source_for(monkeypatch, tmp_path, None).requirement == "kagglebert==9.9.9"  # from an index
    tree = tmp_path / "src"
    tree.mkdir()
    shutil.copy2(REPO_ROOT / "pyproject.toml", tree / "pyproject.toml")
    assert source_for(monkeypatch, tmp_path, {"url": tree.as_uri(), "dir_info": {}}).root == tree
    archive = tmp_path / "kagglebert-9.9.9-py3-none-any.whl"
    archive.write_bytes(b"x")
    assert source_for(monkeypatch, tmp_path, {"url": archive.as_uri(), "archive_info": {}}).requirement == str(archive)
    for gone in ({"url": (tmp_path / "deleted").as_uri(), "dir_info": {}}, {"url": (tmp_path / "gone.whl").as_uri(), "archive_info": {}}):
        with pytest.raises(RunError) as refused:
            source_for(monkeypatch, tmp_path, gone)
        message = str(refused.value)
        assert "\n" not in message and "python -m kagglebert.deploy.wheels wheels/" in message and "--wheels wheels/" in message


@pytest.mark.slow
def test_export_from_a_pip_installed_copy_rebuilds_its_wheel_or_refuses_in_one_line(tmp_path):
    """`pip install --no-deps --no-build-isolation <copy of the source>` into a venv that sees this
    venv's packages; from outside any clone the install's source builds the wheel; once that source
    is deleted, `export` refuses in one line before writing anything."""
    # --no-build-isolation builds with this venv's setuptools, which needs packaging >= 24.2
    # (packaging.licenses); the oldest-versions venv pins packaging 20.9
    pytest.importorskip("packaging.licenses", reason="this venv's packaging is too old for setuptools to build without isolation")
    source = tmp_path / "kagglebert-src"
    source.mkdir()
    for name in wheels.SOURCE_FILES:
        shutil.copy2(REPO_ROOT / name, source / name)
    shutil.copytree(REPO_ROOT / "kagglebert", source / "kagglebert", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", venv], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    import sysconfig
    (Path(site) / "host-venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")  # torch, pandas, pip, setuptools …
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path), "OMP_NUM_THREADS": "1", "PYTHONNOUSERSITE": "1"}
    done = subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                           "--disable-pip-version-check", source], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    work = tmp_path / "work"
    work.mkdir()
    probe = ("from kagglebert.deploy import wheels; import kagglebert, pathlib, sys; s = wheels.wheel_source(); "
             "print(kagglebert.__file__); print(s.root); "
             "d = pathlib.Path(sys.argv[1]); d.mkdir(); wheels.build_kagglebert_wheel(s.root, d, d); "
             "print(sorted(p.name for p in d.glob('*.whl')))")
    done = subprocess.run([python, "-c", probe, tmp_path / "built"], cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    where, root, built = done.stdout.splitlines()
    assert where.startswith(site) and Path(root) == source and "kagglebert-" in built

    shutil.rmtree(source)
    runs = work / "runs"
    done = subprocess.run([python, "-m", "kagglebert", "train", "--config", "tfidf", "--set", "data.max_rows=120", "--set",
                           "data.n_folds=2", "--set", f"run.runs_dir={runs}", "--set", "run.progress=false"],
                          cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    done = subprocess.run([python, "-m", "kagglebert", "export", "--run", "tfidf", "--runs-dir", runs, "--to", work / "export"],
                          cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert f"was installed from the folder {source} (no kagglebert source tree there now)" in done.stderr
    assert "python -m kagglebert.deploy.wheels wheels/" in done.stderr and not (work / "export").exists()
