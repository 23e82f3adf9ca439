"""Task specs: what a competition's files hold and how it is scored. The loops only ever ask a
spec for its columns, its loss, its fold-stratification targets and its score, so a new
competition is a new `TaskSpec`, not a new loop: `jigsaw-bias-2019` (the 2019 Unintended Bias
competition: a soft `target`, subtypes as auxiliary targets, identity columns, the bias AUC; its
pieces in core/bias.py) runs through the same stages as `jigsaw-toxic-2018`."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from . import leaderboard as lb
from . import bias
from .auc import roc_auc
from .errors import ConfigError


def mean_column_auc(y_true: np.ndarray, y_pred: np.ndarray, labels: list[str]) -> dict:
    """Mean over label columns of ROC AUC (the 2018 competition's score). A column with only one
    class in `y_true` has no AUC: it is left out of the mean and reported as None."""
    per_label = {}
    for j, label in enumerate(labels):
        column = y_true[:, j] >= 0.5
        per_label[label] = roc_auc(column, y_pred[:, j]) if 0 < column.sum() < len(column) else None
    scored = [v for v in per_label.values() if v is not None]
    return {"score": float(np.mean(scored)) if scored else float("nan"), "per_label": per_label}


def bce_loss(logits: torch.Tensor, targets: torch.Tensor, pos_weight: torch.Tensor | None = None,
             weights: torch.Tensor | None = None) -> torch.Tensor:
    """BCE on (soft) targets, the mean over rows and output columns. `weights` (rows × columns, from
    the batch): each term's weight, e.g. identity-aware row weights on the scored column and 1 on
    the auxiliary ones; None = plain BCE."""
    return torch.nn.functional.binary_cross_entropy_with_logits(
        logits.float(), targets.float(), weight=None if weights is None else weights.float(), pos_weight=pos_weight)


def positive_weights(labels: np.ndarray, power: float) -> np.ndarray | None:
    """Per-label weight of the positive term, ((1 - p) / p) ** power for prevalence p: with power 0.5
    a label at 0.75% (threat) weighs its positives ~11×, so its head learns in the few steps a
    short fine-tuning has; power 0 = plain BCE."""
    if power == 0:
        return None
    p = np.clip((labels >= 0.5).mean(0), 1e-4, 1 - 1e-4)
    return (((1 - p) / p) ** power).astype(np.float32)


@dataclass(frozen=True)
class TaskSpec:
    name: str
    competition_slug: str  # the folder under /kaggle/input and the `kaggle competitions submit -c` name
    id_column: str
    text_column: str
    label_columns: list[str]
    binary_labels: bool  # labels must be exactly 0 or 1 (else: floats in [0, 1])
    loss: Callable[..., torch.Tensor] = bce_loss  # (logits, targets, pos_weight=None) -> loss
    score: Callable[[np.ndarray, np.ndarray, list[str]], dict] = mean_column_auc
    metric_name: str = "mean column ROC AUC"
    train_file: str = "train.csv"
    test_file: str = "test.csv"
    sample_submission_file: str = "sample_submission.csv"
    extra_train_columns: list[str] = field(default_factory=list)  # e.g. identity columns (2019)
    # rows of the competition's test set: a submission of another length is a sample run's, which
    # Kaggle rejects (None: unknown)
    test_rows: int | None = None
    # label → share of the competition's full train.csv carrying it (its published counts): a
    # sample's own shares are compared with these (EDA), never replaced by them ({}: unknown)
    competition_prevalence: dict[str, float] = field(default_factory=dict)
    sample_folder: str = "jigsaw-toxic-2018-sample"  # the bundled sample under kagglebert/sample_data/
    # train columns the model may also learn as soft targets (train.aux_columns picks from these); never scored
    aux_columns: list[str] = field(default_factory=list)
    # train columns of rater shares in [0, 1], empty where not annotated (read as NaN): 2019's identities
    identity_columns: list[str] = field(default_factory=list)
    # identity columns the score reads after the labels: `truth` = label_columns + score_columns
    score_columns: list[str] = field(default_factory=list)
    # the label columns' names in sample_submission / a submission ([] = the label names themselves)
    submission_columns: list[str] = field(default_factory=list)
    # (data folder, a submission in sample_submission's format) -> test scores from the released
    # labels, or None when their files are absent; the returned dict's schema: core/leaderboard.py
    leaderboard: Callable[[Path, pd.DataFrame], dict | None] | None = None

    @property
    def submission_names(self) -> list[str]:
        return list(self.submission_columns or self.label_columns)

    def stratify_targets(self, train: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Binary matrix the folds (and data.max_rows subsamples) are stratified on, from the train
        frame: each label binarised; for a task with identities (2019) the four (toxic, mentions a
        scored identity) classes. Given only the label matrix: each label binarised."""
        if isinstance(train, pd.DataFrame):
            if self.score_columns:
                return bias.stratify_classes(train[self.label_columns[0]].to_numpy(), train[self.score_columns].to_numpy(np.float64))
            train = train[self.label_columns].to_numpy()
        return (np.asarray(train) >= 0.5).astype(np.int64)


def toxic_2018_leaderboard(data_dir: Path, submission: pd.DataFrame) -> dict | None:
    """`test_labels.csv` (released after the competition: 0/1 per label, -1 on rows that were not
    scored) → the mean column ROC AUC over every scored row, as one split "all"."""
    return lb.score_all_scored_rows(
        data_dir, submission, labels_file="test_labels.csv", id_column="id", label_columns=JIGSAW_TOXIC_2018.label_columns,
        score=mean_column_auc, metric="mean column ROC AUC",
        why_one_split="the leaderboard's public/private split of these rows is not published, so the whole scored set is one split")


JIGSAW_TOXIC_2018 = TaskSpec(
    name="jigsaw-toxic-2018",
    competition_slug="jigsaw-toxic-comment-classification-challenge",
    id_column="id",
    text_column="comment_text",
    label_columns=["toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate"],
    binary_labels=True,
    test_rows=153_164,
    # positives among the 159,571 rows of the competition's train.csv
    competition_prevalence={label: n / 159_571 for label, n in (("toxic", 15_294), ("severe_toxic", 1_595), ("obscene", 8_449),
                                                                 ("threat", 478), ("insult", 7_877), ("identity_hate", 1_405))},
    leaderboard=toxic_2018_leaderboard,
)

JIGSAW_BIAS_2019 = TaskSpec(
    name="jigsaw-bias-2019",
    competition_slug="jigsaw-unintended-bias-in-toxicity-classification",
    id_column="id",
    text_column="comment_text",
    label_columns=["target"],  # the share of raters who called the comment toxic
    binary_labels=False,
    score=bias.bias_score,
    metric_name="bias AUC",
    test_rows=97_320,
    sample_folder="jigsaw-bias-2019-sample",
    aux_columns=list(bias.SUBTYPE_COLUMNS),
    identity_columns=list(bias.IDENTITY_COLUMNS),
    score_columns=list(bias.SCORED_IDENTITIES),
    submission_columns=["prediction"],
    leaderboard=bias.leaderboard,
)

TASKS = {task.name: task for task in (JIGSAW_TOXIC_2018, JIGSAW_BIAS_2019)}


def get_task(name: str) -> TaskSpec:
    if name not in TASKS:
        raise ConfigError(f"run.task = {name!r}: known tasks are {', '.join(TASKS)}")
    return TASKS[name]
