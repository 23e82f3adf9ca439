"""The competition data checked for a run before anything is written: the files as core/data.py
reads them (ids and labels as strings, headers, encoding, header-only files, corrupt zips,
sample_submission's columns and ids), rows per fold or validation rows, the released test labels
when present, and labels too rare to score in every fold (a warning: quick runs on small samples
are legitimate). Memoised per process by the files' size and modification time: the stages of one
`run` load the data once."""
from __future__ import annotations

import logging

from .config import MIN_ROWS_PER_FOLD, Config
from .data import CompetitionData, find_file, load_competition
from .errors import DataError
from .paths import find_data_dir
from .tasks import TaskSpec

log = logging.getLogger("kagglebert")

MIN_POSITIVES_PER_FOLD = 2  # fewer: some fold's AUC for that label is undefined or rests on one comment

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
