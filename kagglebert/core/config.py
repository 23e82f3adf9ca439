"""Configuration: one dataclass per stage, loaded from TOML plus `--set section.key=value` overrides.

Unset paths are empty strings and "all rows" is 0, so every key has one concrete type that an
override can be checked against and TOML can store.
"""
from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10 (some Kaggle images)
    import tomli as tomllib
import tomli_w

from .errors import ConfigError
from .paths import BUNDLED_CONFIGS


@dataclass
class RunConfig:
    name: str = "demo"
    task: str = "jigsaw-toxic-2018"
    runs_dir: str = "runs"
    seed: int = 42
    device: str = "auto"  # auto (cuda → mps → cpu) | cpu | cuda | cuda:1 | mps
    progress: bool = True  # tqdm bars; off in tests and logs


@dataclass
class DataConfig:
    dir: str = ""  # "" → the competition's files found under /kaggle/input → the bundled sample
    require_competition: bool = False  # true (full-data configs): no competition files is an error, never the sample
    max_rows: int = 0  # label-stratified subsample of the TRAINING rows (quick runs, or 1M of 2019's 1.8M); 0 = all rows
    max_test_rows: int = 0  # test rows predicted (a random subsample, for quick runs); 0 = all rows: a complete submission
    n_folds: int = 5
    fold_seed: int = 42
    valid_frac: float = 0.0  # > 0: one stratified split instead of k folds (one model on 1 - valid_frac of the rows, OOF on the rest); 0 = data.n_folds folds
    cache_dir: str = ""  # tokenization cache; "" → <runs_dir>/.cache


@dataclass
class ModelConfig:
    name: str = "packaged-minilm"  # "packaged-minilm", a hub id, or a local folder
    kind: str = "transformer"  # transformer | tfidf | features
    max_length: int = 128
    truncation: str = "head"  # head | tail | head+tail
    head_tokens: int = 128  # tokens kept from the start in head+tail mode; the rest from the end
    pooling: str = "mean"  # mean | cls
    dropout: float = 0.1


@dataclass
class EDAConfig:
    examples_per_label: int = 3


@dataclass
class LMConfig:
    epochs: int = 0  # 0 = skip the LM stage; the classifier starts from model.name
    block_size: int = 128
    batch_size: int = 32
    lr: float = 1e-4
    head_lr: float = 1e-3  # an MLM head that starts fresh (the packaged MiniLM has none); a trained head gets lm.lr
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    mlm_probability: float = 0.15
    whole_word_mask: bool = False
    heldout_frac: float = 0.05
    include_test: bool = True  # the test comments are unlabelled text: fair game for the LM
    max_grad_norm: float = 1.0
    grad_accum: int = 1
    precision: str = "auto"  # auto | bf16 | fp16 | fp32
    log_every: int = 20  # steps between loss records / progress updates (each one syncs the device)
    checkpoint_minutes: float = -1.0  # a resumable checkpoint inside an epoch every N minutes; -1 = auto (20 on a GPU, off on a CPU); 0 = off
    checkpoint_steps: int = 0  # or every N optimizer steps (a fixed point: tests, reproducible kills); 0 = off; wins over minutes


@dataclass
class TrainConfig:
    epochs: int = 2
    batch_size: int = 32
    eval_batch_size: int = 128
    lr: float = 6e-5  # encoder top layer
    head_lr: float = 1e-3  # the fresh classification head
    layer_decay: float = 0.95  # lr multiplier per layer going down; 1.0 = none
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    schedule: str = "linear"  # linear (warm-up then linear decay) | stlr | constant
    stlr_ratio: float = 32.0  # STLR: lowest lr = peak / ratio
    max_grad_norm: float = 1.0
    grad_accum: int = 1
    pos_weight_power: float = 0.0  # BCE positives weighted ((1-p)/p)**power per label; 0.5 helps rare labels
    precision: str = "auto"  # auto | bf16 | fp16 | fp32
    folds: list = field(default_factory=list)  # which folds to train; [] = all
    bucket_size: int = 100  # batches per length-sorted pool; 1 = plain shuffle
    pad_multiple: int = 8  # round batch lengths up: fewer distinct shapes
    log_every: int = 20  # steps between progress updates (each one syncs the device)
    checkpoint_minutes: float = -1.0  # a resumable checkpoint inside an epoch every N minutes; -1 = auto (20 on a GPU, off on a CPU); 0 = off
    checkpoint_steps: int = 0  # or every N optimizer steps (a fixed point: tests, reproducible kills); 0 = off; wins over minutes
    C: float = 4.0  # inverse regularisation of the logistic regressions (tfidf, features)
    save_models: bool = True  # keep each fold's models for predict/export: best weights in folds/fold<k>_model/; tfidf/features: fold<k>_linear.npz (+ the TF-IDF vocabulary)
    save_dtype: str = "fp16"  # fp32 | fp16 | bf16: fp16 halves the files; predictions move by fp16 rounding only
    # 2019 task: train columns also learned as soft auxiliary targets (its subtypes, e.g. ["severe_toxicity",
    # "obscene", "identity_attack", "insult", "threat", "sexual_explicit"]); never scored or submitted. [] = none
    aux_columns: list = field(default_factory=list)
    # 2019 task: per-row loss weights from identity mentions: "off" = plain BCE on the target; "bpsn-bnsp" =
    # 1/4 + 1/4 identity + 1/4 toxic without identity + 1/4 non-toxic with identity, mean 1 (core/bias.py)
    identity_weights: str = "off"


@dataclass
class SubmitConfig:
    dir: str = "submissions"
    name: str = ""  # file name without .csv; "" → run.name


@dataclass
class Config:
    run: RunConfig = field(default_factory=RunConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    eda: EDAConfig = field(default_factory=EDAConfig)
    lm: LMConfig = field(default_factory=LMConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    submit: SubmitConfig = field(default_factory=SubmitConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def replace(self, **sections: dict) -> "Config":
        """A copy with some keys changed: cfg.replace(lm={"epochs": 0})."""
        cfg = from_dict(self.to_dict())
        for section, values in sections.items():
            for key, value in values.items():
                set_key(cfg, f"{section}.{key}", value)
        return cfg


def needs_lm(cfg: Config) -> bool:
    """The LM stage runs when lm.epochs > 0 for the kinds that use an encoder: the transformer
    fine-tunes it, `features` embeds with it. TF-IDF has no encoder."""
    return cfg.lm.epochs > 0 and cfg.model.kind in ("transformer", "features")


def fold_count(cfg: Config) -> int:
    """How many models a run trains, numbered 0..n-1: one per fold, or one with data.valid_frac
    (a single split: its validation rows are fold 0 in folds.csv, the rest fold -1, train-only)."""
    return 1 if cfg.data.valid_frac > 0 else cfg.data.n_folds


SECTIONS = [f.name for f in dataclasses.fields(Config)]


def flat_keys() -> dict[str, type]:
    """`section.key` → its type, for every key."""
    return {f"{section}.{key}": kind for section in SECTIONS
            for key, kind in get_type_hints(type(getattr(Config(), section))).items()}


def _check_type(key: str, value: Any, expected: type, source: str) -> Any:
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is list and isinstance(value, list):
        return value
    if type(value) is not expected:
        raise ConfigError(f"{source}: {key} must be {expected.__name__}, got {type(value).__name__} {value!r}")
    return value


def set_key(cfg: Config, dotted: str, value: Any, source: str = "config") -> None:
    section, _, key = dotted.partition(".")
    if section not in SECTIONS or not key:
        raise ConfigError(f"{source}: unknown key {dotted!r}; sections are {', '.join(SECTIONS)}")
    obj = getattr(cfg, section)
    hints = get_type_hints(type(obj))
    if key not in hints:
        raise ConfigError(f"{source}: unknown key {dotted!r}; {section} has {', '.join(hints)}")
    setattr(obj, key, _check_type(dotted, value, hints[key], source))


def from_dict(raw: dict, source: str = "config") -> Config:
    cfg = Config()
    for section, values in raw.items():
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: top-level key {section!r} must be a [section] table")
        for key, value in values.items():
            set_key(cfg, f"{section}.{key}", value, source)
    return cfg


def parse_override(text: str) -> tuple[str, Any]:
    """`train.lr=3e-5` → ("train.lr", 3e-05). The value is read as TOML; a bare word is a string."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected section.key=value")
    key, raw = (part.strip() for part in text.split("=", 1))
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # unquoted string such as run.name=fold-test or model.name=/kaggle/input/bert
    return key, value


def bundled_configs() -> list[str]:
    return sorted(p.stem for p in BUNDLED_CONFIGS.glob("*.toml"))


def config_path(name: str | Path) -> Path:
    """A TOML file's path, or the name of a config that ships inside the package (`demo`,
    `kaggle-bert-base`, …). `configs/demo.toml`, the path in a clone before the configs moved into
    the package, still finds the bundled file (an alias kept for one release)."""
    path = Path(name).expanduser()
    if path.is_file():
        return path
    bundled = BUNDLED_CONFIGS / f"{path.name.removesuffix('.toml')}.toml"
    if bundled.is_file() and (path.parent in (Path("."), Path("configs")) or path.name == str(name)):
        return bundled
    what = "is a folder, not a config file" if path.is_dir() else "config file not found"
    raise ConfigError(f"{name}: {what} (bundled configs: {', '.join(bundled_configs())})")


def read_tables(path: str | Path) -> dict:
    """A config file's own tables, as written (a path or a bundled name), without the defaults."""
    path = config_path(path)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from None
    except UnicodeDecodeError as err:
        line = path.read_bytes()[: err.start].count(b"\n") + 1
        raise ConfigError(f"{path}: line {line}: not UTF-8 text (byte 0x{err.object[err.start]:02x}); save the file as UTF-8") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot be read: {err.strerror or err}") from None


def load(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Defaults ← TOML file ← `--set` overrides; every key must exist and keep its type."""
    raw = read_tables(path) if path is not None else {}
    if path is not None:
        path = config_path(path)
    cfg = from_dict(raw, source=str(path) if path else "config")
    for text in overrides:
        key, value = parse_override(text)
        set_key(cfg, key, value, source=f"--set {text}")
    validate(cfg)
    return cfg


CHOICES = {
    "model.kind": ("transformer", "tfidf", "features"),
    "model.truncation": ("head", "tail", "head+tail"),
    "model.pooling": ("mean", "cls"),
    "train.schedule": ("linear", "stlr", "constant"),
    "train.precision": ("auto", "bf16", "fp16", "fp32"),
    "lm.precision": ("auto", "bf16", "fp16", "fp32"),
    "train.save_dtype": ("fp32", "fp16", "bf16"),
    "train.identity_weights": ("off", "bpsn-bnsp"),
}


# Ranges per key: (low, high, low_inclusive, high_inclusive); None = unbounded. Every numeric key
# is listed, so a value that would crash a stage later (or silently do nothing) stops at load.
RANGES: dict[str, tuple[float | None, float | None, bool, bool]] = {
    "run.seed": (0, None, True, True),
    "data.fold_seed": (0, None, True, True),
    "data.max_test_rows": (0, None, True, True),
    "data.valid_frac": (0.0, 0.5, True, True),  # 0 = k folds
    "model.max_length": (8, None, True, True),
    "model.head_tokens": (0, None, True, True),
    "model.dropout": (0.0, 1.0, True, False),
    "eda.examples_per_label": (0, None, True, True),
    "lm.epochs": (0, None, True, True),
    "lm.block_size": (8, None, True, True),
    "lm.batch_size": (1, None, True, True),
    "lm.lr": (0.0, None, False, True),
    "lm.head_lr": (0.0, None, False, True),
    "lm.weight_decay": (0.0, None, True, True),
    "lm.warmup_ratio": (0.0, 1.0, True, False),
    "lm.mlm_probability": (0.0, 1.0, False, False),
    "lm.heldout_frac": (0.0, 0.5, False, True),
    "lm.max_grad_norm": (0.0, None, False, True),
    "lm.grad_accum": (1, None, True, True),
    "train.epochs": (1, None, True, True),
    "train.batch_size": (1, None, True, True),
    "train.eval_batch_size": (1, None, True, True),
    "train.lr": (0.0, None, False, True),
    "train.head_lr": (0.0, None, False, True),
    "train.layer_decay": (0.0, 1.0, False, True),
    "train.weight_decay": (0.0, None, True, True),
    "train.warmup_ratio": (0.0, 1.0, True, False),
    "train.stlr_ratio": (1.0, None, True, True),
    "train.max_grad_norm": (0.0, None, False, True),
    "train.grad_accum": (1, None, True, True),
    "train.pos_weight_power": (0.0, None, True, True),
    "train.bucket_size": (1, None, True, True),
    "train.pad_multiple": (1, None, True, True),
    "train.log_every": (1, None, True, True),
    "lm.log_every": (1, None, True, True),
    "train.checkpoint_minutes": (-1.0, None, True, True),
    "lm.checkpoint_minutes": (-1.0, None, True, True),
    "train.checkpoint_steps": (0, None, True, True),
    "lm.checkpoint_steps": (0, None, True, True),
    "train.C": (0.0, None, False, True),
}

MIN_ROWS_PER_FOLD = 10  # data.max_rows below n_folds × this leaves folds too small to score
DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
PLAIN_NAME_KEYS = ("run.name", "submit.name")


def describe_range(low, high, low_inclusive: bool, high_inclusive: bool) -> str:
    if high is None:
        return f"at least {low}" if low_inclusive else f"above {low}"
    left = "[" if low_inclusive else "("
    right = "]" if high_inclusive else ")"
    return f"in {left}{low}, {high}{right}"


def in_range(value: float, low, high, low_inclusive: bool, high_inclusive: bool) -> bool:
    if not math.isfinite(value):
        return False
    if low is not None and (value < low or (value == low and not low_inclusive)):
        return False
    if high is not None and (value > high or (value == high and not high_inclusive)):
        return False
    return True


def check_plain_name(key: str, name: str) -> None:
    """A run or submission name becomes one file or folder name under its directory: nothing that
    climbs out (`..`, `/`, an absolute path), hides (`.x`) or collides with kagglebert's own
    folders (`_lm`), no control characters."""
    if (not name or name in (".", "..") or any(c in name for c in "/\\:") or name.startswith((".", "_", "-"))
            or any(ord(c) < 32 or ord(c) == 127 for c in name) or name != name.strip()):
        raise ConfigError(f"config: {key} = {name!r}: use a plain folder name (no '/', '\\', ':', control characters "
                          f"or surrounding spaces; not starting with '.', '_' or '-')")


def validate(cfg: Config) -> None:
    """Every key's type was checked when it was set; here each value's range and choice, so a
    config that loads is one every stage can run."""
    for dotted, allowed in CHOICES.items():
        section, key = dotted.split(".")
        value = getattr(getattr(cfg, section), key)
        if value not in allowed:
            raise ConfigError(f"config: {dotted} = {value!r}; choose one of {', '.join(allowed)}")
    if cfg.data.n_folds < 2:
        raise ConfigError(f"config: data.n_folds = {cfg.data.n_folds}; need at least 2")
    for dotted, bounds in RANGES.items():
        section, key = dotted.split(".")
        value = getattr(getattr(cfg, section), key)
        if not in_range(value, *bounds):
            raise ConfigError(f"config: {dotted} = {value!r}; must be a finite number {describe_range(*bounds)}")
    if cfg.data.valid_frac > 0:
        smallest = math.ceil(MIN_ROWS_PER_FOLD / cfg.data.valid_frac)
        if cfg.data.max_rows != 0 and cfg.data.max_rows < smallest:
            raise ConfigError(
                f"config: data.max_rows = {cfg.data.max_rows}; use 0 (all rows) or at least {smallest} "
                f"({MIN_ROWS_PER_FOLD} validation rows for data.valid_frac = {cfg.data.valid_frac:g})"
            )
    else:
        smallest = cfg.data.n_folds * MIN_ROWS_PER_FOLD
        if cfg.data.max_rows != 0 and cfg.data.max_rows < smallest:
            raise ConfigError(
                f"config: data.max_rows = {cfg.data.max_rows}; use 0 (all rows) or at least {smallest} "
                f"({MIN_ROWS_PER_FOLD} per fold for data.n_folds = {cfg.data.n_folds})"
            )
    folds, n_models = cfg.train.folds, fold_count(cfg)
    for fold in folds:
        if type(fold) is not int:
            raise ConfigError(f"config: train.folds = {folds!r}; entries must be fold numbers (ints), got {fold!r}")
        if not 0 <= fold < n_models:
            if cfg.data.valid_frac > 0:
                raise ConfigError(f"config: train.folds = {folds!r}: with data.valid_frac = {cfg.data.valid_frac:g} (one split) the only fold is 0")
            raise ConfigError(f"config: train.folds = {folds!r}: fold {fold} is outside 0..{cfg.data.n_folds - 1} (data.n_folds = {cfg.data.n_folds})")
    if len(set(folds)) != len(folds):
        raise ConfigError(f"config: train.folds = {folds!r}: a fold is listed twice")
    if not DEVICE_PATTERN.match(cfg.run.device):
        raise ConfigError(f"config: run.device = {cfg.run.device!r}; choose auto, cpu, cuda, cuda:N or mps")
    check_plain_name("run.name", cfg.run.name)
    if cfg.submit.name:
        check_plain_name("submit.name", cfg.submit.name)
    for dotted in ("run.runs_dir", "submit.dir"):
        section, key = dotted.split(".")
        if not getattr(getattr(cfg, section), key).strip():
            raise ConfigError(f"config: {dotted} is empty; give a folder")


def dumps(cfg: Config) -> str:
    return tomli_w.dumps(cfg.to_dict())


