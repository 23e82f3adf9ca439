"""A blend served: its manifest (`blend.json`, written by `python -m kagglebert blend`) names the
member runs — folders beside the blend's own, in the same runs/ folder or export — the method and
one weight per member and label. `blend` ranked each member's test predictions per label column,
scaled the ranks to [0, 1] and took the weighted mean. Serving does the same with a fixed
reference: each member scores the texts (its own fold models), each score is placed among that
member's own test predictions (test_pred.csv, which travels in its folder) — its average rank
there, scaled to [0, 1] — and the blend is the weighted mean. A text of the blend's test set gets
exactly the rank it had when the blend was fitted (to the member's reproduction: exact for tfidf
and features runs, fp16 rounding for transformer runs, which can move a score past a near-tie), so
any part of the test file scores as in the blend's submission, and one sentence alone gets a
meaningful number: where it falls among the test comments."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.stats import rankdata

from ...core.atomic import read_json, write_json
from ...core.data import read_predictions
from ...core.errors import RunError
from ...core.runs import Run, read_run
from ...core.tasks import TaskSpec
from . import single
from .common import ServedRun

log = logging.getLogger("kagglebert")

MANIFEST = "blend.json"
FORMAT = 1
COMBINE = "rank"  # members' per-column ranks scaled to [0, 1], then a weighted mean


def is_blend(folder: Path) -> bool:
    return (Path(folder) / MANIFEST).is_file()


def scaled_ranks(pred: np.ndarray) -> np.ndarray:
    """Each column ranked (ties share their mean rank) and mapped onto [0, 1]."""
    ranks = rankdata(pred, axis=0)
    return (ranks - 1.0) / max(1, len(pred) - 1)


def reference_ranks(reference: np.ndarray, values: np.ndarray) -> np.ndarray:
    """`values` (rows × labels) placed among `reference` (rows × labels, each column sorted): the
    average rank a value has among the reference's (as `rankdata` gives a value that is one of them;
    between two neighbours for one that is not), scaled as `scaled_ranks` scales, clipped to [0, 1]."""
    out = np.empty(values.shape, dtype=np.float64)
    n = len(reference)
    for j in range(values.shape[1]):
        left = np.searchsorted(reference[:, j], values[:, j], side="left")
        right = np.searchsorted(reference[:, j], values[:, j], side="right")
        rank = left + (right - left + 1) / 2.0  # 1-based, ties at their mean rank
        out[:, j] = np.clip((rank - 1.0) / max(1, n - 1), 0.0, 1.0)
    return out


def blend_ranks(weights: np.ndarray, member_ranks: list[np.ndarray]) -> np.ndarray:
    """member × label weights: each label column is its own weighted mean of the members' ranks."""
    return np.einsum("ml,mrl->rl", weights, np.stack(member_ranks))


def blend_folder_run(first: Run, runs_dir: str | Path, name: str) -> Run:
    """The `Run` of a blend folder: the first member's settings under the blend's name (a blend has
    no config.toml of its own: it was fitted on other runs' predictions, not trained)."""
    folder = Path(runs_dir) / name
    return Run(first.cfg.replace(run={"name": name, "runs_dir": str(runs_dir)}), folder, first.task, read_only=True)


def write_manifest(folder: Path, members: list[str], weights: np.ndarray, method: str, task: TaskSpec) -> None:
    """What serving the blend needs: member names (folders beside the blend), `weights` (member ×
    label), the method that chose them and how members combine."""
    write_json(folder / MANIFEST, {
        "format": FORMAT, "combine": COMBINE, "method": method, "task": task.name,
        "label_columns": list(task.label_columns), "members": list(members),
        "weights": {m: dict(zip(task.label_columns, map(float, w))) for m, w in zip(members, weights)},
    })


@dataclass
class Manifest:
    folder: Path
    members: list[str]
    weights: np.ndarray  # member × label
    method: str
    task: str
    label_columns: list[str]

    def member_folder(self, member: str) -> Path:
        return self.folder.parent / member


def read_manifest(folder: Path) -> Manifest:
    path = Path(folder) / MANIFEST
    try:
        raw = read_json(path)
        members, labels = list(raw["members"]), list(raw["label_columns"])
        weights = np.array([[float(raw["weights"][m][label]) for label in labels] for m in members])
        combine, method, task = raw["combine"], str(raw["method"]), str(raw["task"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise RunError(f"{path}: not a readable blend description ({type(err).__name__}: {err})") from None
    if combine != COMBINE:
        raise RunError(f"{path}: combine = {combine!r}; this kagglebert serves {COMBINE!r} blends")
    if len(members) < 2 or not np.all(np.isfinite(weights)):
        raise RunError(f"{path}: a blend needs two or more members with finite weights")
    return Manifest(Path(folder), members, weights, method, task, labels)


def member_runs(manifest: Manifest) -> list[Run]:
    """The member runs, opened read-only from beside the blend; each checked for servability."""
    runs = []
    for member in manifest.members:
        folder = manifest.member_folder(member)
        if not (folder / "config.toml").is_file():
            raise RunError(f"{folder}: blend {manifest.folder.name!r} needs its member {member!r} here (members are "
                           f"run folders beside the blend; `export` packs them together)")
        run = read_run(folder.parent, str(folder.resolve()))
        if run.task.name != manifest.task or list(run.task.label_columns) != manifest.label_columns:
            raise RunError(f"{run.config_path}: task {run.task.name!r}, but blend {manifest.folder.name!r} is {manifest.task!r}")
        single.check_servable(run)
        if not run.test_pred_path.is_file():
            raise RunError(f"{run.test_pred_path}: missing; blend {manifest.folder.name!r} ranks member {member!r}'s "
                           f"scores among its test predictions")
        runs.append(run)
    return runs


def member_reference(run: Run, labels: list[str]) -> np.ndarray:
    """A member's test predictions as the blend read them (test_pred.csv), each column sorted."""
    frame = read_predictions(run.test_pred_path, run.task.id_column)
    missing = [c for c in labels if c not in frame.columns]
    if missing:
        raise RunError(f"{run.test_pred_path}: column {missing[0]!r} missing")
    values = frame[labels].to_numpy(np.float64)
    if not np.all(np.isfinite(values)):
        row, col = map(int, np.argwhere(~np.isfinite(values))[0])
        raise RunError(f"{run.test_pred_path}: row {row + 1}, column {labels[col]!r}: not a number")
    return np.sort(values, axis=0)


def check_servable(folder: Path) -> tuple[Manifest, list[Run]]:
    manifest = read_manifest(folder)
    return manifest, member_runs(manifest)


@dataclass
class BlendRun(ServedRun):
    """A blend's members, loaded once; `probabilities` is the weighted mean of their scaled ranks."""

    run: Run
    manifest: Manifest
    members: list[ServedRun]
    references: list[np.ndarray]  # each member's test predictions, columns sorted
    device: torch.device
    precision: str
    kind: str = "blend"

    @property
    def folds(self) -> list[int]:
        return self.members[0].folds

    @property
    def n_models(self) -> int:
        return sum(m.n_models for m in self.members)

    def probabilities(self, texts: list[str]) -> np.ndarray:
        ranks = [reference_ranks(ref, m.as_stored(texts)) for m, ref in zip(self.members, self.references)]
        return blend_ranks(self.manifest.weights, ranks).astype(np.float32)

    def fold_table(self) -> pd.DataFrame:
        """One row per member: its kind, weight (mean over labels) and OOF score."""
        rows = []
        for member, weights in zip(self.members, self.manifest.weights):
            metrics = read_json(member.run.metrics_path) if member.run.metrics_path.is_file() else {}
            rows.append({"member": member.name, "kind": member.kind, "weight": float(weights.mean()),
                         self.run.task.metric_name: metrics.get("oof_auc"), "models": member.n_models})
        return pd.DataFrame(rows).set_index("member")

    def describe(self) -> str:
        parts = ", ".join(f"{m.name} ({m.kind}, weight {w.mean():.2f})" for m, w in zip(self.members, self.manifest.weights))
        return f"blend {self.name} ({self.manifest.method}; ranks among each member's test predictions): {parts}"


def load(folder: Path, device: torch.device, batch_size: int) -> BlendRun:
    manifest, runs = check_servable(folder)
    references = [member_reference(run, manifest.label_columns) for run in runs]
    members = [single.load(run, device, batch_size) for run in runs]
    run = blend_folder_run(runs[0], folder.parent, folder.name)
    log.info("predict: blend %s of %s", folder, ", ".join(manifest.members))
    return BlendRun(run, manifest, members, references, device, members[0].precision)
