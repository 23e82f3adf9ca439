"""The 2019 competition, "Jigsaw Unintended Bias in Toxicity Classification": its columns, its score
(the benchmark kernel's bias AUC), the identity-aware sample weights, the fold stratification and
the offline leaderboard from the released test labels. `tasks.JIGSAW_BIAS_2019` puts these together.

The score, exactly as the competition's benchmark kernel computed it:

    0.25 × overall ROC AUC + 0.75 × mean(M_p(subgroup AUC), M_p(BPSN AUC), M_p(BNSP AUC))

with M_p the generalized power mean (mean of x**p) ** (1/p), p = -5, over the nine scored
identities; target and identity membership binarised at >= 0.5 (an empty identity cell: not a
member). Subgroup AUC: the identity's rows only. BPSN (background positive, subgroup negative):
the identity's non-toxic rows with the other rows' toxic ones. BNSP: the identity's toxic rows with
the other rows' non-toxic ones.

An AUC that cannot be computed (a subgroup with no rows, or whose rows are all one class, as in a
small fold) is reported as None with the reason, and left out of its power mean, as the 2018 score
leaves a one-class label out of its mean. The kernel would have returned NaN there; on the
competition's test set every term is defined, so the two agree wherever the kernel gives a number.
A power mean with no defined term at all is None and left out of the mean of three.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .auc import roc_auc
from .errors import ConfigError, DataError
from .tables import check_unique_ids, find_labels

SUBTYPE_COLUMNS = ["severe_toxicity", "obscene", "identity_attack", "insult", "threat", "sexual_explicit"]
IDENTITY_COLUMNS = [
    "asian", "atheist", "bisexual", "black", "buddhist", "christian", "female", "heterosexual", "hindu",
    "homosexual_gay_or_lesbian", "intellectual_or_learning_disability", "jewish", "latino", "male", "muslim",
    "other_disability", "other_gender", "other_race_or_ethnicity", "other_religion", "other_sexual_orientation",
    "physical_disability", "psychiatric_or_mental_illness", "transgender", "white",
]
SCORED_IDENTITIES = ["male", "female", "homosexual_gay_or_lesbian", "christian", "jewish", "muslim", "black", "white",
                     "psychiatric_or_mental_illness"]
METADATA_COLUMNS = ["created_date", "publication_id", "parent_id", "article_id", "rating", "funny", "wow", "sad", "likes",
                    "disagree", "identity_annotator_count", "toxicity_annotator_count"]
POWER = -5.0
OVERALL_WEIGHT = 0.25
THRESHOLD = 0.5  # toxic / member when >= 0.5 (a public kernel's `> 0.5` misled teams)
PUBLIC_LABELS, PRIVATE_LABELS = "test_public_expanded.csv", "test_private_expanded.csv"
LABEL_FILE_TARGET = "toxicity"  # the released test labels call `target` this
IDENTITY_WEIGHTS = ("off", "bpsn-bnsp")  # train.identity_weights choices


def _auc(positive: np.ndarray, pred: np.ndarray, empty_reason: str) -> tuple[float | None, str | None]:
    """(ROC AUC, None), or (None, why not)."""
    if len(positive) == 0:
        return None, empty_reason
    n_pos = int(positive.sum())
    if n_pos == 0:
        return None, "no toxic rows"
    if n_pos == len(positive):
        return None, "no non-toxic rows"
    return roc_auc(positive, pred), None


def power_mean(values: list[float], p: float = POWER) -> float | None:
    """Generalized power mean of the defined values; None when there are none."""
    if not values:
        return None
    with np.errstate(divide="ignore"):  # an AUC of 0 makes x**p infinite and the mean 0, as in the kernel
        return float(np.mean(np.power(np.asarray(values, dtype=np.float64), p)) ** (1.0 / p))


def bias_score(y_true: np.ndarray, y_pred: np.ndarray, labels: list[str], identities: list[str] = SCORED_IDENTITIES) -> dict:
    """The competition's score. `y_true`: rows × (target, then one column per identity in
    `identities`, NaN = not annotated); `y_pred`: rows × (target prediction, …), only the first
    column is scored. Returns the score, `per_label` ({target: overall AUC}), `per_identity` (the
    three AUCs, the counts and why an AUC is missing) and the three power means."""
    y_true = np.asarray(y_true, dtype=np.float64)
    pred = np.asarray(y_pred, dtype=np.float64)
    pred = pred[:, 0] if pred.ndim == 2 else pred
    toxic = y_true[:, 0] >= THRESHOLD
    overall, _ = _auc(toxic, pred, "no rows")
    table = {}
    for j, name in enumerate(identities, start=1):
        member = y_true[:, j] >= THRESHOLD  # NaN (not annotated) compares False: not a member
        sub_pos, sub_neg = member & toxic, member & ~toxic
        bg_pos, bg_neg = ~member & toxic, ~member & ~toxic
        row = {"subgroup_size": int(member.sum()), "subgroup_positives": int(sub_pos.sum()), "subgroup_negatives": int(sub_neg.sum()),
               "background_positives": int(bg_pos.sum()), "background_negatives": int(bg_neg.sum())}
        reasons = {}
        for key, rows, empty in (("subgroup_auc", member, "no rows of this identity"),
                                 ("bpsn_auc", sub_neg | bg_pos, "no rows"),
                                 ("bnsp_auc", sub_pos | bg_neg, "no rows")):
            row[key], why = _auc(toxic[rows], pred[rows], empty)
            if why is not None:
                reasons[key] = why
        row["reason"] = "; ".join(f"{k}: {v}" for k, v in reasons.items()) or None
        table[name] = row
    means = {key: power_mean([r[key] for r in table.values() if r[key] is not None])
             for key in ("subgroup_auc", "bpsn_auc", "bnsp_auc")}
    bias_terms = [m for m in means.values() if m is not None]
    if overall is None:
        score = float("nan")
    elif bias_terms:
        score = OVERALL_WEIGHT * overall + (1 - OVERALL_WEIGHT) * float(np.mean(bias_terms))
    else:
        score = overall  # not one identity AUC is defined (a fold without identity rows): the overall AUC alone
    return {"score": float(score), "per_label": {labels[0]: overall}, "overall_auc": overall,
            "power_means": means, "per_identity": table}


def any_identity(identities: np.ndarray) -> np.ndarray:
    """Rows where at least one identity share is >= 0.5 (NaN: not annotated, not a member)."""
    return (np.nan_to_num(np.asarray(identities, dtype=np.float64), nan=0.0) >= THRESHOLD).any(axis=1)


def identity_weights(target: np.ndarray, identities: np.ndarray, scheme: str) -> np.ndarray | None:
    """Per-row loss weights (mean 1) raising the rows the bias AUC turns on; None for "off".

    "bpsn-bnsp", the scheme of the public 2019 kernels: every row 1/4; +1/4 when the row mentions
    a scored identity (share >= 0.5); +1/4 for a toxic row without one (a background positive,
    which BPSN ranks against the identity's non-toxic rows); +1/4 for a non-toxic row with one (a
    subgroup negative, where models over-flag); then divided by the mean weight, so the loss keeps
    its scale. (The kernels wrote the background test as "any identity < 0.5", true for almost
    every row; this is the rule as the BPSN definition states it.)"""
    if scheme == "off":
        return None
    if scheme != "bpsn-bnsp":
        raise ConfigError(f"train.identity_weights = {scheme!r}; choose one of {', '.join(IDENTITY_WEIGHTS)}")
    toxic = np.asarray(target) >= THRESHOLD
    member = any_identity(identities)
    weights = 0.25 + 0.25 * member + 0.25 * (toxic & ~member) + 0.25 * (~toxic & member)
    return (weights / weights.mean()).astype(np.float32)


def stratify_classes(target: np.ndarray, identities: np.ndarray) -> np.ndarray:
    """One-hot of the four (toxic, mentions a scored identity) classes: folds keep each one's share."""
    cls = 2 * (np.asarray(target) >= THRESHOLD).astype(np.int64) + any_identity(identities)
    return np.eye(4, dtype=np.int64)[cls]


def parse_shares(df: pd.DataFrame, path: Path, columns: list[str], *, allow_empty: bool) -> None:
    """Rater shares (strings) → float32 in place: a number in [0, 1]; an empty cell is NaN when
    `allow_empty` (identity columns: most rows were never annotated), else an error."""
    for column in columns:
        text = df[column]
        if pd.api.types.is_float_dtype(text):  # read as numbers already (data.read_table's numeric columns): empty is NaN
            values = text.to_numpy(np.float64)
            empty = np.isnan(values)
        else:
            empty = (text.str.strip() == "").to_numpy()
            values = pd.to_numeric(text.where(~empty, "nan"), errors="coerce").to_numpy(np.float64)
        bad = ~((values >= 0.0) & (values <= 1.0)) & ~(empty if allow_empty else False)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            what = "a number in [0, 1] or empty" if allow_empty else "a number in [0, 1]"
            raise DataError(f"{path}: row {row + 1}, column {column!r}: value {text.iloc[row]!r} is not {what}")
        df[column] = values.astype(np.float32)


def read_label_file(path: Path, id_column: str) -> pd.DataFrame:
    """A released test-label file: id, `toxicity` and the scored identities, checked like train.csv."""
    wanted = [id_column, LABEL_FILE_TARGET, *SCORED_IDENTITIES]
    try:
        header = pd.read_csv(path, nrows=0).columns.tolist()
    except (OSError, ValueError, pd.errors.ParserError) as err:
        raise DataError(f"{path}: cannot be read as CSV: {str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__}") from None
    missing = [c for c in wanted if c not in header]
    if missing:
        raise DataError(f"{path}: row 0 (header), column {missing[0]!r}: missing (found: {', '.join(header)})")
    try:
        frame = pd.read_csv(path, usecols=wanted, dtype=str, keep_default_na=False, na_filter=False)
    except (OSError, ValueError, pd.errors.ParserError) as err:
        raise DataError(f"{path}: cannot be read as CSV: {str(err).strip().splitlines()[-1]}") from None
    check_unique_ids(frame, path, id_column)
    parse_shares(frame, path, [LABEL_FILE_TARGET], allow_empty=False)
    parse_shares(frame, path, SCORED_IDENTITIES, allow_empty=True)
    return frame


def check_label_split(paths: dict[str, Path], public: pd.DataFrame, private: pd.DataFrame, submission_ids: pd.Index,
                      id_column: str) -> None:
    """The two released files split the test rows: an id in both is an error, and so is a
    submission (test) id in neither (the labels belong to other test rows, or a row was lost);
    without this a lost row would be silently unscored and a shared one scored twice."""
    public_ids = pd.Index(public[id_column])
    shared = np.flatnonzero(private[id_column].isin(public_ids).to_numpy())
    if len(shared):
        row, value = int(shared[0]), private[id_column].iloc[int(shared[0])]
        raise DataError(f"{paths['private']}: row {row + 1}, column {id_column!r}: id {value!r} is also in {paths['public'].name} "
                        f"(row {public_ids.get_loc(value) + 1}); a test row is public or private, not both")
    labelled = submission_ids.isin(public_ids) | submission_ids.isin(pd.Index(private[id_column]))
    missing = np.flatnonzero(~labelled)
    if len(missing):
        raise DataError(f"{paths['public']}: column {id_column!r}: no row for test id {submission_ids[missing[0]]!r} "
                        f"(submission row {missing[0] + 1}), nor in {paths['private'].name}: the two files label every "
                        f"test row; these labels belong to other test rows, or a row is missing")


def leaderboard(data_dir: Path, submission: pd.DataFrame, id_column: str = "id", column: str = "prediction") -> dict | None:
    """Public and private scores of `submission` (id, prediction) as the leaderboard computed them,
    from the released test_public_expanded.csv / test_private_expanded.csv (or their .zip) in `data_dir`, in
    core/leaderboard.py's schema (splits "public" and "private", each with its per-identity table);
    None when neither file is there. Each split is scored on its rows the submission has (a sample
    run's submission covers a few of them; "rows" says how many)."""
    data_dir = Path(data_dir)
    found = {"public": find_labels(data_dir, PUBLIC_LABELS), "private": find_labels(data_dir, PRIVATE_LABELS)}
    if not any(found.values()):
        return None
    paths = {"public": found["public"] or data_dir / PUBLIC_LABELS, "private": found["private"] or data_dir / PRIVATE_LABELS}
    pred = submission.astype({id_column: str}).set_index(id_column)[column]
    read = {split: read_label_file(path, id_column) for split, path in paths.items() if path.is_file()}
    if len(read) == 2:
        check_label_split(paths, read["public"], read["private"], pred.index, id_column)
    splits, files, notes = {}, [], []
    for split, path in paths.items():
        if split not in read:
            splits[split] = {"score": None, "rows": 0}
            notes.append(f"{path.name} missing")
            continue
        files.append(path.name)
        labels = read[split]
        labels = labels[labels[id_column].isin(pred.index)]
        if not len(labels):
            splits[split] = {"score": None, "rows": 0}
            notes.append(f"no submission row is in {path.name}")
            continue
        truth = labels[[LABEL_FILE_TARGET, *SCORED_IDENTITIES]].to_numpy(np.float64)
        scored = bias_score(truth, pred.loc[labels[id_column]].to_numpy(np.float64), [LABEL_FILE_TARGET])
        value = scored["score"]
        splits[split] = {"score": float(value) if value is not None and np.isfinite(value) else None, "rows": len(labels),
                         "per_identity": scored.get("per_identity")}
    notes.insert(0, "the competition's bias AUC on the released labels, each split on the rows of it the submission has")
    return {"metric": "bias AUC", "files": files, "splits": splits, "note": "; ".join(notes)}
