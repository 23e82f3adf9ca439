"""Blend finished runs: the average of their per-column ranks, equal weights (`rank`), one weight
vector chosen on the out-of-fold predictions alone (`weighted`), or one per label column chosen the
same way (`per-label`). Every member must have been trained on the same folds.csv, so each OOF row
was predicted by models that never saw it. Weights chosen on those rows flatter the blend's OOF
score a little, so fitted blends also report `oof_auc_nested`: each fold's rows blended with
weights chosen on the other folds only — the honest figure to compare with the members. The test
predictions never influence the weights.

Columns are ranked (then scaled to [0, 1]) before averaging because members' probabilities live
on different scales (a TF-IDF logistic regression vs a fine-tuned transformer) and the score,
ROC AUC, depends on ranks only.

    python -m kagglebert blend --runs tfidf features demo --name blend1 --method weighted
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.atomic import read_json, write_atomic, write_csv, write_json
from ..core.data import read_predictions
from ..core.errors import ConfigError, RunError
from ..core.leaderboard import describe
from ..core.paths import run_dir
from ..core.runs import Run, read_run
from ..core.tasks import TaskSpec
from ..stages.serving.blend import blend_folder_run, blend_ranks, scaled_ranks, write_manifest
from ..stages.submit import submit_predictions

log = logging.getLogger("kagglebert")

MAX_GRID_POINTS = 500  # weight vectors tried; each costs one OOF scoring (~10 ms on 12k rows)


@dataclass
class Member:
    run: Run  # opened read-only: a blend never writes into its members
    folds: pd.DataFrame
    oof: np.ndarray  # rows in the order of the training data
    test: pd.DataFrame  # id + label columns

    @property
    def name(self) -> str:
        return self.run.dir.name


METHODS = ("rank", "weighted", "per-label")


def require_file(path: Path, hint: str) -> Path:
    if not path.is_file():
        raise RunError(f"{path}: not found; {hint}")
    return path


def open_member(name: str, runs_dir: str) -> Run:
    """A member run, read-only (its config.toml only; the predictions come in `load_member`)."""
    folder = run_dir(runs_dir, name)
    if not folder.is_dir():
        raise RunError(f"{folder}: no such run folder (run names are folders under --runs-dir {runs_dir})")
    return read_run(runs_dir, name)


def read_member_predictions(path: Path, task: TaskSpec, hint: str) -> pd.DataFrame:
    """id + label columns of one of a member's prediction files, every label cell a finite number."""
    frame = read_predictions(require_file(path, hint), task.id_column)
    for column in [task.id_column, *task.label_columns]:
        if column not in frame.columns:
            raise RunError(f"{path}: column {column!r} missing")
    values = frame[task.label_columns].to_numpy(np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        row, col = map(int, np.argwhere(bad)[0])
        raise RunError(f"{path}: row {row + 1}, column {task.label_columns[col]!r}: not a number")  # 1 = first data row, as everywhere
    return frame


SAME_ROWS = "same data.dir, data.max_rows, data.n_folds, data.valid_frac, data.fold_seed"


def load_member(run: Run, task: TaskSpec, train_ids: np.ndarray, reference: Member | None = None) -> Member:
    """The member's folds, OOF predictions (reordered to `train_ids`: every training row, or the
    validation rows of a single split) and test predictions. With `reference` (the first member)
    its folds.csv must be the reference's: the same validation rows, predicted out of fold."""
    if run.cfg.run.task != task.name:
        raise RunError(f"{run.config_path}: run.task = {run.cfg.run.task!r}, the other runs are {task.name!r}")
    unfinished = f"finish run {run.dir.name!r} first (python -m kagglebert train)"
    folds = read_predictions(require_file(run.folds_path, unfinished), "id")
    if reference is not None and not same_folds(folds, reference.folds):
        raise RunError(f"{run.folds_path}: differs from {reference.run.folds_path} (other validation rows); blend only runs "
                       f"trained on the same folds or split ({SAME_ROWS})")
    oof = read_member_predictions(run.oof_path, task, unfinished)
    test = read_member_predictions(run.test_pred_path, task, unfinished)
    known = set(oof[task.id_column])
    absent = [i for i in train_ids if i not in known]
    if absent or len(oof) != len(train_ids):
        expected = set(train_ids)
        extra = next((i for i in oof[task.id_column] if i not in expected), None)
        detail = f"lacks id {absent[0]!r}" if absent else f"has id {extra!r}, which the first run does not"
        raise RunError(f"{run.oof_path}: {len(oof)} rows vs the first run's {len(train_ids)} ({detail}); blend runs trained "
                       f"on the same rows and folds ({SAME_ROWS})")
    oof = oof.set_index(task.id_column).loc[train_ids].reset_index()
    return Member(run, folds, oof[task.label_columns].to_numpy(np.float64), test)


def blend_run(first: Run, runs_dir: str, name: str) -> Run:
    """The blend's own folder. A blend is a run without a config: its folder holds a run's outputs
    (oof.csv, test_pred.csv, folds.csv, metrics.json), laid out and named by `Run` like any run's,
    and its manifest (blend.json: members, weights, method), which `predict` and `export` serve.
    It has no config.toml: it was fitted on other runs' predictions, not trained, so `read_run`
    refuses it and it cannot be retrained or be a member of another blend."""
    run_dir(runs_dir, name)  # a plain folder name
    blend = blend_folder_run(first, runs_dir, name)
    blend.read_only = False
    return blend


def same_folds(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    key = lambda f: f.sort_values("id").reset_index(drop=True)[["id", "fold"]]  # noqa: E731
    return len(a) == len(b) and key(a).equals(key(b))


def simplex_grid(n_members: int, max_points: int = MAX_GRID_POINTS) -> np.ndarray:
    """Weight vectors on the simplex with step 1/steps, as fine as `max_points` allows (0.05
    for two or three members). Includes every single member alone and the equal-ish mixes."""
    steps = 20
    while steps > 1 and math.comb(steps + n_members - 1, n_members - 1) > max_points:
        steps -= 1
    return np.array(list(compositions(steps, n_members)), dtype=np.float64) / steps


def compositions(total: int, parts: int):
    """Every way to write `total` as an ordered sum of `parts` non-negative integers."""
    if parts == 1:
        yield (total,)
        return
    for first in range(total + 1):
        for rest in compositions(total - first, parts - 1):
            yield (first, *rest)


def choose_weights(member_ranks: list[np.ndarray], labels: np.ndarray, task: TaskSpec) -> np.ndarray:
    """The grid point with the best OOF score; equal weights win ties (the least fitted choice)."""
    n = len(member_ranks)
    stacked = np.stack(member_ranks)  # member × row × label
    equal = np.full(n, 1.0 / n)
    best_w, best = equal, task.score(labels, np.tensordot(equal, stacked, axes=1), task.label_columns)["score"]
    for weights in simplex_grid(n):
        score = task.score(labels, np.tensordot(weights, stacked, axes=1), task.label_columns)["score"]
        if score > best + 1e-12:
            best_w, best = weights, score
    return best_w / best_w.sum()


def choose_label_weights(member_ranks: list[np.ndarray], labels: np.ndarray, task: TaskSpec) -> np.ndarray:
    """One weight vector per label column (member × label), each the grid point with the best OOF
    AUC of that column. The 2018 score is a mean over columns, so this maximises each of its terms:
    a transformer can lead on the frequent labels while TF-IDF leads on the rare ones (threat)."""
    n, n_labels = len(member_ranks), len(task.label_columns)
    stacked = np.stack(member_ranks)  # member × row × label
    weights = np.full((n, n_labels), 1.0 / n)
    for j in range(n_labels):
        column = np.concatenate([labels[:, [j]], labels[:, n_labels:]], axis=1)  # label j and the score's other columns (2019: identities)
        best = task.score(column, (weights[:, j] @ stacked[:, :, j])[:, None], task.label_columns[j:j + 1])["score"]
        if not np.isfinite(best):  # one class only in this column: nothing to choose
            continue
        for grid_weights in simplex_grid(n):
            score = task.score(column, (grid_weights @ stacked[:, :, j])[:, None], task.label_columns[j:j + 1])["score"]
            if score > best + 1e-12:
                weights[:, j], best = grid_weights, score
    return weights


def fitted_weights(method: str, member_ranks: list[np.ndarray], labels: np.ndarray, task: TaskSpec) -> np.ndarray:
    """member × label weights for `method`, chosen on these rows (`labels`: the task's truth)."""
    n, n_labels = len(member_ranks), len(task.label_columns)
    if method == "weighted":
        return np.repeat(choose_weights(member_ranks, labels, task)[:, None], n_labels, axis=1)
    if method == "per-label":
        return choose_label_weights(member_ranks, labels, task)
    return np.full((n, n_labels), 1.0 / n)


def nested_oof(method: str, member_ranks: list[np.ndarray], labels: np.ndarray, task: TaskSpec, fold_of: np.ndarray) -> np.ndarray:
    """The blend's OOF predictions with each fold's rows blended by weights chosen on the other
    folds' rows only, so the weight choice is scored on rows it never saw."""
    out = np.empty_like(member_ranks[0])
    for k in np.unique(fold_of):
        held = fold_of == k
        weights = fitted_weights(method, [r[~held] for r in member_ranks], labels[~held], task)
        out[held] = blend_ranks(weights, [r[held] for r in member_ranks])
    return out


def print_table(rows: list[tuple[str, float, float | None]], metric: str) -> None:
    width = max(len(r[0]) for r in rows)
    print(f"{'run':<{width}}  {'OOF AUC':>8}  {'weight':>6}   ({metric})")
    for name, score, weight in rows:
        print(f"{name:<{width}}  {score:8.4f}  {'' if weight is None else f'{weight:6.3f}'}")


def main(runs: list[str], name: str, method: str = "weighted", runs_dir: str = "runs", submissions_dir: str = "submissions") -> dict:
    if len(runs) < 2:
        raise ConfigError(f"blend --runs {' '.join(runs)}: give at least two runs")
    if len(set(runs)) != len(runs):
        raise ConfigError(f"blend --runs {' '.join(runs)}: a run is listed twice")
    if name in runs:
        raise ConfigError(f"blend --name {name}: that is one of the members; choose a new name")
    if method not in METHODS:
        raise ConfigError(f"blend --method {method}: choose one of {', '.join(METHODS)}")
    run_dir(runs_dir, name)  # --name is a plain folder name: checked before anything is read
    member_runs = [open_member(r, runs_dir) for r in runs]
    out = blend_run(member_runs[0], runs_dir, name)
    # refuse before any work: the name must be new, or this very blend again
    if out.config_path.is_file():
        raise RunError(f"{out.dir}: is a training run, not a blend; choose a new --name")
    if out.metrics_path.is_file():
        old = read_json(out.metrics_path)
        if old.get("members") != runs or old.get("method") != method:
            raise RunError(f"{out.dir}: holds another blend ({' '.join(old.get('members', []))}, {old.get('method')}); choose a new --name or delete it")

    first = member_runs[0]
    task = first.task
    data = first.load_data()  # the labels, from the first member's data settings
    unfinished = f"finish run {first.dir.name!r} first (python -m kagglebert train)"
    first_folds = read_predictions(require_file(first.folds_path, unfinished), "id").set_index("id")
    # the rows every member predicted out of fold: all training rows (k folds), or one split's validation rows
    scored = np.flatnonzero(first_folds.reindex(data.train[task.id_column].to_numpy())["fold"].fillna(0).to_numpy() >= 0)
    train_ids = data.train[task.id_column].to_numpy()[scored]
    members = [load_member(member_runs[0], task, train_ids)]
    members += [load_member(run, task, train_ids, reference=members[0]) for run in member_runs[1:]]
    test_ids = members[0].test[task.id_column].to_numpy()
    for member in members[1:]:
        if set(member.test[task.id_column]) != set(test_ids) or len(member.test) != len(test_ids):
            raise RunError(f"{member.run.test_pred_path}: its ids differ from {members[0].run.test_pred_path}")

    labels = data.truth[scored]  # what the score reads: the labels (2019: and the identities), on the scored rows
    oof_ranks = [scaled_ranks(m.oof) for m in members]
    test_ranks = [scaled_ranks(m.test.set_index(task.id_column).loc[test_ids, task.label_columns].to_numpy(np.float64)) for m in members]
    member_scores = {m.name: task.score(labels, m.oof, task.label_columns) for m in members}
    weights = fitted_weights(method, oof_ranks, labels, task)  # member × label
    oof = blend_ranks(weights, oof_ranks)
    test = blend_ranks(weights, test_ranks)

    scored = task.score(labels, oof, task.label_columns)
    fold_of = members[0].folds.set_index("id").loc[train_ids, "fold"].to_numpy()
    n_folds = int(fold_of.max()) + 1
    fold_auc = [task.score(labels[fold_of == k], oof[fold_of == k], task.label_columns)["score"] for k in range(n_folds)]
    # a single split has one fold: its validation rows are halved (alternate rows) to nest the weight choice
    nest_of = fold_of if n_folds > 1 else np.arange(len(fold_of)) % 2
    nested = None
    if method != "rank":  # equal weights fit nothing: their OOF score is already honest
        nested = task.score(labels, nested_oof(method, oof_ranks, labels, task, nest_of), task.label_columns)["score"]

    oof_frame = pd.DataFrame(oof, columns=task.label_columns)
    oof_frame.insert(0, task.id_column, train_ids)
    test_frame = pd.DataFrame(test, columns=task.label_columns)
    test_frame.insert(0, task.id_column, test_ids)
    write_csv(out.oof_path, oof_frame)
    write_csv(out.test_pred_path, test_frame)
    write_atomic(out.folds_path, first.folds_path.read_bytes())  # the members' folds (equal for all, checked above), byte for byte
    metrics = {
        "metric": task.metric_name,
        "method": method,
        "members": runs,
        "weights": {m.name: float(w.mean()) for m, w in zip(members, weights)},  # mean over labels
        "label_weights": {m.name: dict(zip(task.label_columns, map(float, w))) for m, w in zip(members, weights)},
        "oof_auc": scored["score"],
        "oof_auc_nested": nested,  # weights chosen without the scored fold; None for rank (nothing chosen)
        "fold_auc": fold_auc,
        "per_label_auc": scored["per_label"],
        **{key: scored[key] for key in ("overall_auc", "power_means", "per_identity") if key in scored},  # 2019: the bias table
        "member_oof_auc": {n: s["score"] for n, s in member_scores.items()},
        "member_per_label_auc": {n: s["per_label"] for n, s in member_scores.items()},
        "label_positives": dict(zip(task.label_columns, map(int, (labels >= 0.5).sum(0)))),  # what each label's AUC rests on
        "train_rows": len(data.train),
        "oof_rows": len(train_ids),  # < train_rows when the members were trained on one split (data.valid_frac)
        "valid_frac": first.cfg.data.valid_frac,
    }
    write_json(out.metrics_path, metrics)
    write_manifest(out.dir, [m.name for m in members], weights, method, task)
    # the score a submission is labelled with is the honest one: fitted weights are scored on folds they did not see
    honest_label = f"OOF AUC {scored['score']:.4f}" if nested is None else f"nested OOF AUC {nested:.4f}"
    submission = submit_predictions(out.test_pred_path, task, first.cfg.data.dir, Path(submissions_dir) / f"{name}.csv",
                                    f"kagglebert blend {name} ({method}: {' '.join(runs)}): {honest_label}",
                                    sample=data.sample_submission, sample_run=data.sample_run, data_folder=data.dir)
    metrics["submission"] = str(submission.path)
    metrics["submit_command"] = submission.command

    print_table([(m.name, member_scores[m.name]["score"], float(w.mean())) for m, w in zip(members, weights)]
                + [(f"blend {name} ({method})", scored["score"], None)]
                + ([] if nested is None else [("  weights chosen on the other folds", nested, None)]), task.metric_name)
    print(f"submission: {submission.path}\nsubmit with: {submission.command}")
    if submission.leaderboard is not None:
        print(f"{describe(submission.leaderboard)}; {submission.leaderboard['note']}")
    return metrics
