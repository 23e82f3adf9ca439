"""ROC AUC for the scorers (core/tasks.py's 2018 mean column AUC, core/bias.py's 2019 bias AUC).

The Mann-Whitney form: (rank sum of the positives − n₊(n₊+1)/2) / (n₊·n₋), tied scores sharing
their average rank (a tie counts one half), which is the value sklearn.metrics.roc_auc_score
returns, to rounding (tests/test_masking_metrics.py and tests/test_bias_metric.py check it against
sklearn). It skips sklearn's per-call input checks: a blend's weight search (analysis/blend.py)
scores a few hundred weight vectors, and the 2019 score takes 28 AUCs each time."""
from __future__ import annotations

import numpy as np
from scipy.stats import rankdata
from sklearn.metrics import roc_auc_score


def roc_auc(positive: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC of `score` for the boolean `positive`; the caller makes sure both classes occur."""
    positive = np.asarray(positive, dtype=bool)
    score = np.asarray(score)
    if not np.isfinite(score).all():
        return float(roc_auc_score(positive, score))  # NaN or inf predictions: sklearn's own error
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    ranks = rankdata(score)  # 1-based, ties averaged
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
