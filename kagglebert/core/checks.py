"""Preflight: everything a stage will read is checked before anything is written. `open_run` calls
`preflight(cfg)` before it creates the run folder or its config.toml, so a typo in `data.dir` or
`model.name`, a bad file or an impossible setting ends as one line (exit 2) with nothing on disk,
and the corrected command starts clean.

Checked here (config ranges and types were checked when the config was loaded):
- the device exists (`cuda` without a GPU, `mps` missing);
- the data files (core/data.py: ids and labels as strings, headers, encoding, header-only files,
  corrupt zips, sample_submission's columns and ids), rows per fold, and labels too rare to score
  in every fold (a warning: quick runs on small samples are legitimate);
- the model folder: config.json, weights, a tokenizer whose vocabulary fits the embedding matrix
  (a folder without tokenizer files once trained on a 5-token vocabulary, every word `[UNK]`), and
  `model.max_length` / `lm.block_size` within the model's position embeddings;
- `model.kind = tfidf` on more texts than the TF-IDF baseline is made for (core/linear.TFIDF_MAX_TEXTS).

It also fingerprints the inputs (sha256 of the data files and of the checkpoint's files, and the
kagglebert version) so a run is bound to what it was made from. Results are memoised per process
by the files' size and modification time: the stages of one `run` check once.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .config import MIN_ROWS_PER_FOLD, Config
from .data import CompetitionData, find_file, load_competition
from .errors import ConfigError, DataError
from .linear import TFIDF_MAX_TEXTS
from .paths import find_data_dir, kagglebert_version, resolve_model
from .tasks import TaskSpec, get_task

log = logging.getLogger("kagglebert")

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model", "sentencepiece.bpe.model", "tokenizer.model")
# position ids of these architectures start after the padding index: usable length = max - pad - 1
OFFSET_POSITION_TYPES = {"roberta", "xlm-roberta", "camembert", "longformer", "data2vec-text", "xlm-roberta-xl"}
MIN_TOKENIZER_SHARE = 0.5  # a tokenizer covering less than half the embedding rows is not the model's
MIN_POSITIVES_PER_FOLD = 2  # fewer: some fold's AUC for that label is undefined or rests on one comment


_hashes: dict[tuple, str] = {}


def file_sha256(path: Path) -> str:
    """sha256 of a file, memoised by (path, size, mtime, inode): stages of one process hash once."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ino)
    if key not in _hashes:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _hashes[key] = digest.hexdigest()
    return _hashes[key]


def folder_fingerprints(folder: Path) -> dict[str, str]:
    """file name → sha256 for the regular, non-hidden files directly in `folder` (a checkpoint:
    config, weights, tokenizer)."""
    return {p.name: file_sha256(p) for p in sorted(Path(folder).iterdir()) if p.is_file() and not p.name.startswith(".")}


# ---- task ----


def check_task_settings(cfg: Config, task: TaskSpec) -> None:
    """The task-specific training keys name what this task has: auxiliary targets from its
    auxiliary columns, identity weights only where there are identities."""
    aux = cfg.train.aux_columns
    for column in aux:
        if column not in task.aux_columns:
            offered = ", ".join(task.aux_columns) if task.aux_columns else "none (leave it [])"
            raise ConfigError(f"config: train.aux_columns = {aux!r}: {column!r} is not an auxiliary column of {task.name} "
                              f"(it has: {offered})")
    if len(set(aux)) != len(aux):
        raise ConfigError(f"config: train.aux_columns = {aux!r}: a column is listed twice")
    if cfg.train.identity_weights != "off" and not task.score_columns:
        raise ConfigError(f"config: train.identity_weights = {cfg.train.identity_weights!r}: {task.name} has no identity "
                          f"columns; use \"off\"")


# ---- device ----


def check_device(name: str) -> None:
    import torch

    if name.startswith("cuda"):
        index = int(name.split(":", 1)[1]) if ":" in name else 0
        if not torch.cuda.is_available():
            raise ConfigError(f"run.device = {name!r}: no CUDA GPU is visible to torch here; use run.device=auto (or cpu)")
        if index >= torch.cuda.device_count():
            raise ConfigError(f"run.device = {name!r}: only {torch.cuda.device_count()} CUDA device(s) (cuda:0..cuda:{torch.cuda.device_count() - 1})")
    elif name == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ConfigError("run.device = 'mps': Apple's MPS backend is not available here; use run.device=auto (or cpu)")


def check_precision(cfg: Config) -> None:
    """fp16 needs a CUDA GPU: refused now, not when the first fold starts."""
    from .engine import precision_problem, resolve_device  # torch only when checking, as in check_device

    device = resolve_device(cfg.run.device)
    used = [s for s, on in (("train", cfg.model.kind == "transformer"), ("lm", cfg.lm.epochs > 0)) if on]
    for section in used:
        problem = precision_problem(section, getattr(cfg, section).precision, device)
        if problem:
            raise ConfigError(problem)


# ---- model ----


@dataclass
class ModelCheck:
    name: str  # model.name as configured
    path: str  # the folder (or hub id) the stages load
    vocab_size: int
    max_positions: int | None  # usable sequence length; None when the architecture has no limit
    files: dict[str, str] = field(default_factory=dict)  # file name → sha256 (a hub id: the config's hash)
    word_marker: str | None = None  # how its tokenizer marks words (batching.word_marker): whole-word masking needs one


def usable_positions(model_config) -> int | None:
    limit = getattr(model_config, "max_position_embeddings", None)
    if not isinstance(limit, int) or limit <= 0:
        return None
    if getattr(model_config, "model_type", "") in OFFSET_POSITION_TYPES:
        limit -= (getattr(model_config, "pad_token_id", None) or 1) + 1
    return limit


def _one_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[-1].strip() if text else type(err).__name__


def _embedding_rows(folder: Path) -> int | None:
    """Rows of the word-embedding matrix as stored in model.safetensors (read from the header only);
    a corrupt weights file is an error here rather than at the first fold."""
    weights = folder / "model.safetensors"
    if not weights.is_file():
        return None
    from safetensors import safe_open

    try:
        with safe_open(str(weights), framework="pt") as handle:
            for key in handle.keys():
                if key.endswith("word_embeddings.weight"):
                    return int(handle.get_slice(key).get_shape()[0])
    except Exception as err:  # safetensors raises its own error types for a damaged header
        raise ConfigError(f"{weights}: not a readable safetensors file ({_one_line(err)})") from None
    return None


def _check_tokenizer_fits(label: str, tokenizer, vocab_size: int) -> None:
    size = len(tokenizer)
    if size > vocab_size:
        raise ConfigError(
            f"{label}: the tokenizer has {size} tokens but the model's embedding matrix has {vocab_size} rows; "
            f"the tokenizer files do not belong to these weights"
        )
    if size < MIN_TOKENIZER_SHARE * vocab_size:
        raise ConfigError(
            f"{label}: the tokenizer has only {size} tokens for an embedding matrix of {vocab_size} rows "
            f"(every other word would become [UNK]); copy the tokenizer that belongs to these weights into the folder"
        )


def check_model_folder(name: str, folder: Path) -> ModelCheck:
    from transformers import AutoConfig

    from .tokenization import load_tokenizer, quiet_transformers

    label = f"model.name = {name!r} ({folder})" if str(folder) != name else f"model.name = {name!r}"
    present = {p.name for p in folder.iterdir()} if folder.is_dir() else set()
    if not present:
        raise ConfigError(f"{label}: the folder is empty; it needs config.json, the weights ({WEIGHT_FILES[0]} or {WEIGHT_FILES[2]}) and the tokenizer files")
    if "config.json" not in present:
        raise ConfigError(f"{label}: no config.json in the folder (is it a Hugging Face checkpoint folder?)")
    if not present & set(WEIGHT_FILES):
        raise ConfigError(f"{label}: no weights in the folder ({' or '.join(WEIGHT_FILES[::2])})")
    if not present & set(TOKENIZER_FILES):
        raise ConfigError(
            f"{label}: no tokenizer files in the folder ({', '.join(TOKENIZER_FILES[:2])}, …); "
            f"save the matching tokenizer there (tokenizer.save_pretrained(folder))"
        )
    quiet_transformers()
    try:
        model_config = AutoConfig.from_pretrained(str(folder))
    except Exception as err:  # transformers raises OSError, ValueError, JSONDecodeError, KeyError … for a bad config
        raise ConfigError(f"{folder / 'config.json'}: cannot be loaded: {_one_line(err)}") from None
    try:
        tokenizer = load_tokenizer(str(folder))
    except Exception as err:
        raise ConfigError(f"{label}: the tokenizer cannot be loaded: {_one_line(err)}") from None
    vocab_size = _embedding_rows(folder) or getattr(model_config, "vocab_size", None)
    if not isinstance(vocab_size, int):
        raise ConfigError(f"{folder / 'config.json'}: no vocab_size")
    _check_tokenizer_fits(label, tokenizer, vocab_size)
    from .batching import word_marker

    return ModelCheck(name, str(folder), vocab_size, usable_positions(model_config), folder_fingerprints(folder), word_marker(tokenizer))


def looks_like_a_path(name: str) -> bool:
    """A hub id is `name` or `org/name`; anything else (absolute, ~, ./, two slashes) is a folder."""
    return name.startswith(("/", ".", "~")) or name.count("/") > 1 or "\\" in name


def check_hub_model(name: str) -> ModelCheck:
    """A hub id that is not a local folder: the cached snapshot when there is one (checked like a
    folder), else config and tokenizer as transformers can load them (from the cache or, online,
    the hub; the weights come when a stage loads them)."""
    try:
        from huggingface_hub import snapshot_download

        cached = Path(snapshot_download(name, local_files_only=True))
        if (cached / "config.json").is_file() and {p.name for p in cached.iterdir()} & set(WEIGHT_FILES):
            check = check_model_folder(name, cached)
            check.path = name  # stages load it by id, as configured
            return check
    except ConfigError:
        raise
    except Exception:  # not (fully) in the cache: fall through to what transformers can fetch
        pass
    from transformers import AutoConfig

    from .tokenization import load_tokenizer, quiet_transformers

    quiet_transformers()
    try:
        model_config = AutoConfig.from_pretrained(name)
        tokenizer = load_tokenizer(name)
    except Exception as err:
        raise ConfigError(
            f"model.name = {name!r}: not a local folder, and no Hugging Face model of that name could be loaded "
            f"from the cache or the hub ({_one_line(err)}); give a checkpoint folder or a hub id you can download"
        ) from None
    _check_tokenizer_fits(f"model.name = {name!r}", tokenizer, model_config.vocab_size)
    digest = hashlib.sha256(model_config.to_json_string().encode()).hexdigest()
    from .batching import word_marker

    return ModelCheck(name, name, model_config.vocab_size, usable_positions(model_config), {"config (hub)": digest}, word_marker(tokenizer))


_models: dict[tuple, ModelCheck] = {}


def check_model(cfg: Config) -> ModelCheck:
    name = cfg.model.name
    if not name.strip():
        raise ConfigError("model.name is empty; give packaged-minilm, a hub id or a checkpoint folder")
    resolved = resolve_model(name)  # packaged-minilm → its folder; an existing path → expanded
    folder = Path(resolved)
    if folder.exists():
        if not folder.is_dir():
            raise ConfigError(f"model.name = {name!r}: {folder} is a file; give the checkpoint's folder")
        key = ("folder", str(folder.resolve()), tuple(sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir() if p.is_file())))
    elif looks_like_a_path(name):
        raise ConfigError(f"model.name = {name!r}: no such folder")
    else:
        key = ("hub", name)
    if key not in _models:
        _models[key] = check_model_folder(name, folder) if key[0] == "folder" else check_hub_model(name)
    check = _models[key]
    if check.max_positions is not None:
        if cfg.model.max_length > check.max_positions:
            raise ConfigError(f"config: model.max_length = {cfg.model.max_length}; {name} has {check.max_positions} position embeddings: use at most {check.max_positions}")
        if cfg.lm.epochs > 0 and cfg.lm.block_size > check.max_positions:
            raise ConfigError(f"config: lm.block_size = {cfg.lm.block_size}; {name} has {check.max_positions} position embeddings: use at most {check.max_positions}")
    if cfg.lm.epochs > 0 and cfg.lm.whole_word_mask and check.word_marker is None:
        raise ConfigError(f"config: lm.whole_word_mask = true; the tokenizer of {name} marks no words in a way kagglebert reads "
                          f"(WordPiece '##', byte-level BPE '\u0120', SentencePiece '\u2581'): set lm.whole_word_mask = false")
    return check


# ---- data ----

_data: dict[tuple, CompetitionData] = {}


def _data_key(cfg: Config, task: TaskSpec) -> tuple:
    folder = find_data_dir(cfg.data.dir, task.competition_slug, cfg.data.require_competition)
    files = []
    for name in (task.train_file, task.test_file, task.sample_submission_file):
        path = find_file(folder, name)
        stat = path.stat()
        files.append((str(path.resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ino))
    return (task.name, str(folder.resolve()), cfg.data.max_rows, cfg.data.max_test_rows, cfg.data.fold_seed, tuple(files))


def check_data(cfg: Config, task: TaskSpec) -> CompetitionData:
    key = _data_key(cfg, task)
    if key not in _data:
        data = load_competition(task, cfg.data.dir, cfg.data.max_rows, cfg.data.fold_seed, cfg.data.require_competition,
                                max_test_rows=cfg.data.max_test_rows)
        if cfg.data.valid_frac > 0:
            check_validation_rows(data, cfg.data.valid_frac)
            warn_rare_labels(data, max(2, round(1 / cfg.data.valid_frac)))  # the split's validation share, as if it were one of that many folds
        else:
            check_rows_per_fold(data, cfg.data.n_folds)
            warn_rare_labels(data, cfg.data.n_folds)
        check_test_labels(data)
        _data.clear()  # one data set per process is what stages share; do not hold several in memory
        _data[key] = data
    return _data[key]


def check_test_labels(data: CompetitionData) -> None:
    """The released test labels, when the data folder holds them (TaskSpec.leaderboard), read and
    matched to the test rows now, not when a finished run is scored after hours of training."""
    task = data.task
    if task.leaderboard is not None:
        placeholder = data.sample_submission.copy()  # the submission format, every prediction 0.5
        placeholder[[c for c in placeholder.columns if c != task.id_column]] = 0.5
        task.leaderboard(data.dir, placeholder)


def check_rows_per_fold(data: CompetitionData, n_folds: int) -> None:
    needed = n_folds * MIN_ROWS_PER_FOLD
    if len(data.train) < needed:
        raise DataError(
            f"{data.train_file}: {len(data.train)} data rows for data.n_folds = {n_folds}; need at least {needed} "
            f"({MIN_ROWS_PER_FOLD} per fold): lower data.n_folds or add rows"
        )


def check_validation_rows(data: CompetitionData, valid_frac: float) -> None:
    valid_rows = round(valid_frac * len(data.train))
    if valid_rows < MIN_ROWS_PER_FOLD:
        raise DataError(
            f"{data.train_file}: {len(data.train)} data rows for data.valid_frac = {valid_frac:g} leave {valid_rows} validation "
            f"row(s); need at least {MIN_ROWS_PER_FOLD}: raise data.valid_frac or add rows"
        )


def warn_rare_labels(data: CompetitionData, n_folds: int) -> list[str]:
    """A warning per label with fewer than MIN_POSITIVES_PER_FOLD positives per fold: its per-fold
    AUC is undefined where a fold has none, and its OOF AUC rests on a handful of comments. Not an
    error: quick runs on a small sample (threat: 1 positive in 200 rows) are meant to work."""
    positives = (data.labels >= 0.5).sum(0)
    rare = []
    for label, count in zip(data.task.label_columns, positives):
        if count < MIN_POSITIVES_PER_FOLD * n_folds:
            rare.append(label)
            log.warning(
                "data: label %r has %d positive(s) in %d training rows: fewer than %d per fold for %d folds; "
                "its per-fold AUC is undefined or noisy and its OOF AUC rests on %d comment(s) (more rows: data.max_rows)",
                label, count, len(data.train), MIN_POSITIVES_PER_FOLD, n_folds, count,
            )
    return rare


# ---- everything ----


@dataclass
class Preflight:
    data: CompetitionData
    model: ModelCheck

    def inputs(self) -> dict:
        """What the run is made from; stored as the run folder's inputs.json."""
        return {
            "kagglebert": kagglebert_version(),
            "data": dict(self.data.fingerprints),
            "model": {"name": self.model.name, "files": dict(self.model.files)},
        }


class _Held(logging.Handler):
    def __init__(self):
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def warnings_after_success():
    """Hold back what the checks log (rare labels, empty texts) until every check has passed: a
    failed preflight prints its one error line alone, a passing one prints its warnings."""
    held = _Held()
    propagate = log.propagate
    log.addHandler(held)
    log.propagate = False
    try:
        yield
    finally:
        log.removeHandler(held)
        log.propagate = propagate
    for record in held.records:  # reached only without an exception
        log.handle(record)


def preflight(cfg: Config) -> Preflight:
    """Check the task, the device, the data and the model; raises one-line KagglebertErrors."""
    with warnings_after_success():
        task = get_task(cfg.run.task)
        check_task_settings(cfg, task)
        check_device(cfg.run.device)
        check_precision(cfg)
        data = check_data(cfg, task)
        check_tfidf_size(cfg, data)
        # every kind is checked: TF-IDF needs no weights, but EDA measures token lengths with model.name's tokenizer
        model = check_model(cfg)
        check_writable_dir(cfg.submit.dir, "submit.dir")  # found now, not after hours of training
    return Preflight(data, model)


def check_tfidf_size(cfg: Config, data: CompetitionData) -> None:
    """model.kind = tfidf above TFIDF_MAX_TEXTS training + test texts: refused (its reason is next
    to the constant), with the data.max_rows that fits."""
    n_texts = len(data.train) + len(data.test)
    if cfg.model.kind == "tfidf" and n_texts > TFIDF_MAX_TEXTS:
        fits = TFIDF_MAX_TEXTS - len(data.test)
        advice = f"set data.max_rows (e.g. {fits:,})" if fits > 0 else "set data.max_rows and data.max_test_rows"
        raise ConfigError(f"config: model.kind = tfidf: {len(data.train):,} training + {len(data.test):,} test texts is above the "
                          f"{TFIDF_MAX_TEXTS:,} the TF-IDF baseline is made for (its matrices need over 12 GB of memory "
                          f"beyond that); {advice}")


def check_writable_dir(folder: str, key: str) -> None:
    """`folder` exists as a writable folder, or can be created: its nearest existing ancestor is a
    writable folder. Nothing is created here."""
    path = Path(folder).expanduser().absolute()
    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    if existing is None or not existing.is_dir():
        raise ConfigError(f"config: {key} = {folder!r}: {existing} is not a folder")
    try:  # a real probe, removed at once: permission bits say nothing for root or read-only mounts
        os.rmdir(tempfile.mkdtemp(prefix=".kagglebert-probe-", dir=existing))
    except OSError as err:
        raise ConfigError(f"config: {key} = {folder!r}: cannot write in {existing}: {err.strerror or err}") from None


def input_fingerprints(cfg: Config) -> dict:
    """inputs.json's content for `cfg` without opening a run (a reader asking where its LM is)."""
    return preflight(cfg).inputs()


def describe_changes(old: dict, new: dict) -> list[str]:
    """What differs between two inputs.json contents, in words (one item per file)."""
    changes = []
    if old.get("kagglebert") != new.get("kagglebert"):
        changes.append(f"kagglebert {old.get('kagglebert')} → {new.get('kagglebert')}")
    old_data, new_data = old.get("data") or {}, new.get("data") or {}
    for role in sorted(set(old_data) | set(new_data)):
        if old_data.get(role) != new_data.get(role):
            changes.append(f"{role}: sha256 {str(old_data.get(role))[:10]}… → {str(new_data.get(role))[:10]}…")
    old_model = (old.get("model") or {}).get("files") or {}
    new_model = (new.get("model") or {}).get("files") or {}
    changed = sorted(n for n in set(old_model) | set(new_model) if old_model.get(n) != new_model.get(n))
    if changed:
        changes.append(f"model files changed: {', '.join(changed)}")
    old_lm, new_lm = old.get("lm_output"), new.get("lm_output")
    if old_lm and new_lm and old_lm != new_lm:
        changes.append(f"LM stage output changed: {', '.join(sorted(n for n in set(old_lm) | set(new_lm) if old_lm.get(n) != new_lm.get(n)))}")
    return changes


def dumps_inputs(inputs: dict) -> str:
    return json.dumps(inputs, indent=2, sort_keys=True) + "\n"


def clear_memo() -> None:
    """Forget what was checked (tests that edit files in place within one second)."""
    _hashes.clear()
    _models.clear()
    _data.clear()

