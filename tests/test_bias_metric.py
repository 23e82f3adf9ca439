"""The 2019 score (kagglebert.core.bias): hand-computed cases, and agreement to 1e-9 with an
independent implementation written the way the competition's benchmark kernel wrote it (pandas +
sklearn, a DataFrame per subgroup) on random and adversarial cases. Also the sample weights, the
fold classes, the loss and the offline leaderboard."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn import metrics as skm

from kagglebert.core import bias
from kagglebert.core.paths import SAMPLE_DATA
from kagglebert.core.tasks import JIGSAW_BIAS_2019, bce_loss

FIXTURE = SAMPLE_DATA / "jigsaw-bias-2019-sample"


# ---- the benchmark kernel, written independently ----

def kernel_auc(y_true, y_pred):
    try:
        return skm.roc_auc_score(y_true, y_pred)
    except ValueError:
        return np.nan


def kernel_bias_table(df: pd.DataFrame, subgroups: list[str], model: str, label: str) -> pd.DataFrame:
    records = []
    for subgroup in subgroups:
        sub = df[df[subgroup]]
        bpsn = pd.concat([df[df[subgroup] & ~df[label]], df[~df[subgroup] & df[label]]])
        bnsp = pd.concat([df[df[subgroup] & df[label]], df[~df[subgroup] & ~df[label]]])
        records.append({"subgroup": subgroup, "subgroup_size": len(sub),
                        "subgroup_auc": kernel_auc(sub[label], sub[model]),
                        "bpsn_auc": kernel_auc(bpsn[label], bpsn[model]),
                        "bnsp_auc": kernel_auc(bnsp[label], bnsp[model])})
    return pd.DataFrame(records)


def kernel_power_mean(series, p):
    total = sum(np.power(series, p))
    return np.power(total / len(series), 1 / p)


def kernel_score(target, identities: pd.DataFrame, pred, drop_undefined: bool = False) -> tuple[float, pd.DataFrame]:
    """The kernel: columns converted to bool at >= 0.5 (NaN → False), overall AUC, three power
    means over the subgroups, 0.25/0.75. `drop_undefined`: the power means over the defined AUCs
    (kagglebert's documented rule; the kernel itself gives NaN there)."""
    df = identities.copy()
    for column in df.columns:
        df[column] = df[column] >= 0.5
    df["target"] = np.asarray(target) >= 0.5
    df["model"] = pred
    table = kernel_bias_table(df, list(identities.columns), "model", "target")
    overall = kernel_auc(df["target"], df["model"])
    means = []
    for key in ("subgroup_auc", "bpsn_auc", "bnsp_auc"):
        series = table[key].dropna() if drop_undefined else table[key]
        if len(series):
            with np.errstate(divide="ignore"):
                means.append(kernel_power_mean(series, -5))
    return 0.25 * overall + 0.75 * np.average(means), table


def ours(target, identities: pd.DataFrame, pred) -> dict:
    truth = np.column_stack([np.asarray(target, dtype=np.float64), identities.to_numpy(np.float64)])
    return bias.bias_score(truth, np.asarray(pred)[:, None], ["target"], list(identities.columns))


# ---- hand-computed ----

def hand_case():
    # toxic, male share, prediction; r1's share and r2's target are exactly 0.5 (>= 0.5 counts)
    target = [1.0, 0.0, 0.5, 0.0, 1.0, 0.0, 0.8, 0.2]
    male = [1.0, 0.5, 0.75, 1.0, 0.0, np.nan, 0.25, np.nan]
    pred = [0.9, 0.8, 0.3, 0.1, 0.7, 0.6, 0.95, 0.2]
    return target, pd.DataFrame({"male": male}), pred


def test_hand_computed_case():
    target, identities, pred = hand_case()
    result = ours(target, identities, pred)
    row = result["per_identity"]["male"]
    # subgroup r0-r3: toxic {0.9, 0.3} vs clean {0.8, 0.1}: 3 of 4 pairs ordered
    assert row["subgroup_auc"] == pytest.approx(0.75, abs=1e-12)
    # BPSN: clean members {0.8, 0.1} vs toxic others {0.7, 0.95}: 3 of 4
    assert row["bpsn_auc"] == pytest.approx(0.75, abs=1e-12)
    # BNSP: toxic members {0.9, 0.3} vs clean others {0.6, 0.2}: 3 of 4
    assert row["bnsp_auc"] == pytest.approx(0.75, abs=1e-12)
    # overall: 13 of 16 pairs
    assert result["overall_auc"] == pytest.approx(13 / 16, abs=1e-12)
    assert result["score"] == pytest.approx(0.25 * 13 / 16 + 0.75 * 0.75, abs=1e-12)
    assert (row["subgroup_size"], row["subgroup_positives"], row["background_positives"], row["background_negatives"]) == (4, 2, 2, 2)


def test_power_mean_by_hand():
    assert bias.power_mean([0.5, 0.5]) == pytest.approx(0.5)
    assert bias.power_mean([1.0, 0.5]) == pytest.approx(((1.0 + 32.0) / 2) ** (-1 / 5), abs=1e-12)
    assert bias.power_mean([0.9, 0.0]) == 0.0  # one AUC of 0 pulls the power mean to 0, as in the kernel
    assert bias.power_mean([]) is None


def test_threshold_is_greater_or_equal():
    """A share of exactly 0.5 is toxic / a member (a public kernel's `> 0.5` was wrong)."""
    target = [0.5, 0.4999, 0.5, 0.0]
    ident = pd.DataFrame({"muslim": [0.5, 0.5, 0.4999, 0.5]})
    row = ours(target, ident, [0.9, 0.1, 0.8, 0.2])["per_identity"]["muslim"]
    assert (row["subgroup_size"], row["subgroup_positives"], row["subgroup_negatives"]) == (3, 1, 2)


def test_identity_without_positives_is_reported_not_a_crash():
    target = [1, 0, 1, 0, 0, 0, 1, 0]
    ident = pd.DataFrame({"jewish": [np.nan, np.nan, np.nan, np.nan, 1.0, 1.0, np.nan, np.nan],  # members all clean
                          "white": [np.nan] * 8})  # no members at all
    result = ours(target, ident, [0.9, 0.1, 0.8, 0.3, 0.2, 0.4, 0.7, 0.6])
    jewish, white = result["per_identity"]["jewish"], result["per_identity"]["white"]
    assert jewish["subgroup_auc"] is None and "no toxic rows" in jewish["reason"]
    assert jewish["bnsp_auc"] is None and jewish["bpsn_auc"] is not None
    assert white["subgroup_auc"] is None and "no rows of this identity" in white["reason"]
    assert np.isfinite(result["score"])
    expected, _ = kernel_score(target, ident, [0.9, 0.1, 0.8, 0.3, 0.2, 0.4, 0.7, 0.6], drop_undefined=True)
    assert result["score"] == pytest.approx(expected, abs=1e-9)


# ---- against the kernel ----

def random_case(rng: np.random.Generator, n: int, adversarial: bool):
    k = len(bias.SCORED_IDENTITIES)
    if adversarial:
        target = rng.choice([0.0, 0.5, 0.4999999, 1.0, 0.2], size=n)
        pred = rng.choice([0.0, 0.5, 1.0, 0.25], size=n)  # massive ties
        shares = rng.choice([np.nan, 0.0, 0.5, 0.4999999, 1.0], size=(n, k), p=[0.6, 0.1, 0.1, 0.1, 0.1])
        shares[:, 0] = 1.0  # an identity every row has: BPSN/BNSP see no background
        shares[:, 1] = np.nan  # one no row has
    else:
        target = rng.beta(0.3, 1.5, size=n)
        pred = np.clip(target + rng.normal(0, 0.3, size=n), 0, 1)
        shares = np.where(rng.random((n, k)) < 0.5, np.nan, rng.random((n, k)))
    return target, pd.DataFrame(shares, columns=bias.SCORED_IDENTITIES), pred


@pytest.mark.parametrize("seed", range(12))
def test_matches_the_kernel_on_random_cases(seed):
    rng = np.random.default_rng(seed)
    target, ident, pred = random_case(rng, int(rng.integers(200, 2000)), adversarial=False)
    expected, table = kernel_score(target, ident, pred)
    result = ours(target, ident, pred)
    assert table[["subgroup_auc", "bpsn_auc", "bnsp_auc"]].notna().all().all()
    assert result["score"] == pytest.approx(expected, abs=1e-9)
    for _, row in table.iterrows():
        mine = result["per_identity"][row["subgroup"]]
        for key in ("subgroup_auc", "bpsn_auc", "bnsp_auc"):
            assert mine[key] == pytest.approx(row[key], abs=1e-9)
        assert mine["subgroup_size"] == row["subgroup_size"]


@pytest.mark.parametrize("seed", range(12))
def test_matches_the_kernel_on_adversarial_cases(seed):
    """Ties everywhere, shares and targets at and just under 0.5, an identity on every row, one on
    none, tiny sizes: every AUC the kernel defines agrees, the ones it cannot (NaN) are None here,
    and the score is the kernel's over the defined AUCs."""
    rng = np.random.default_rng(1000 + seed)
    target, ident, pred = random_case(rng, int(rng.integers(6, 60)), adversarial=True)
    result = ours(target, ident, pred)
    expected, table = kernel_score(target, ident, pred, drop_undefined=True)
    for _, row in table.iterrows():
        mine = result["per_identity"][row["subgroup"]]
        for key in ("subgroup_auc", "bpsn_auc", "bnsp_auc"):
            if np.isnan(row[key]):
                assert mine[key] is None and key in mine["reason"]
            else:
                assert mine[key] == pytest.approx(row[key], abs=1e-9)
    overall = kernel_auc(np.asarray(target) >= 0.5, pred)
    if np.isnan(overall):  # one class in the whole set: no score, as in 2018
        assert result["overall_auc"] is None and np.isnan(result["score"])
    elif table[["subgroup_auc", "bpsn_auc", "bnsp_auc"]].isna().all().all():  # no identity AUC at all: the overall AUC alone
        assert result["score"] == pytest.approx(overall, abs=1e-12)
    else:
        assert result["score"] == pytest.approx(expected, abs=1e-9)


# ---- weights, folds, loss ----

def test_identity_weights_follow_the_scheme():
    target = np.array([0.9, 0.9, 0.1, 0.1])
    ident = np.array([[1.0], [np.nan], [0.6], [0.0]])  # toxic+identity, toxic background, clean+identity, clean background
    raw = np.array([0.5, 0.5, 0.75, 0.25])  # 1/4 base, +1/4 identity, +1/4 background positive, +1/4 subgroup negative
    assert np.allclose(bias.identity_weights(target, ident, "bpsn-bnsp"), raw / raw.mean())
    assert bias.identity_weights(target, ident, "off") is None


def test_fold_classes_are_toxic_times_identity():
    classes = bias.stratify_classes(np.array([0.9, 0.9, 0.1, 0.1]), np.array([[1.0], [np.nan], [0.6], [0.0]]))
    assert classes.argmax(1).tolist() == [3, 2, 1, 0] and classes.sum(1).tolist() == [1, 1, 1, 1]


def test_weighted_bce_is_plain_bce_with_unit_weights_and_weighs_rows():
    logits, targets = torch.randn(5, 7), torch.rand(5, 7)
    plain = bce_loss(logits, targets)
    assert torch.allclose(bce_loss(logits, targets, weights=torch.ones(5, 7)), plain)
    weights = torch.ones(5, 7)
    weights[0, 0] = 3.0
    by_hand = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    by_hand[0, 0] *= 3.0
    assert torch.allclose(bce_loss(logits, targets, weights=weights), by_hand.mean())


# ---- the offline leaderboard ----

def test_leaderboard_scores_each_released_split_like_the_kernel():
    sub = pd.read_csv(FIXTURE / "sample_submission.csv", dtype={"id": str})
    sub["prediction"] = np.random.default_rng(0).random(len(sub))
    board = JIGSAW_BIAS_2019.leaderboard(FIXTURE, sub)
    for split, name in (("public", bias.PUBLIC_LABELS), ("private", bias.PRIVATE_LABELS)):
        labels = pd.read_csv(FIXTURE / name, dtype={"id": str})
        pred = sub.set_index("id").loc[labels["id"], "prediction"].to_numpy()
        expected, _ = kernel_score(labels["toxicity"], labels[bias.SCORED_IDENTITIES], pred, drop_undefined=True)
        assert board["splits"][split]["score"] == pytest.approx(expected, abs=1e-9)
        assert board["splits"][split]["rows"] == len(labels)
    assert "bias AUC" in board["note"]


def test_leaderboard_is_none_without_label_files(tmp_path):
    assert JIGSAW_BIAS_2019.leaderboard(tmp_path, pd.DataFrame({"id": ["1"], "prediction": [0.5]})) is None


def test_leaderboard_label_file_errors_name_file_row_and_column(tmp_path):
    labels = pd.read_csv(FIXTURE / bias.PUBLIC_LABELS, dtype=str, keep_default_na=False)
    labels.loc[3, "toxicity"] = "1.5"
    labels.to_csv(tmp_path / bias.PUBLIC_LABELS, index=False)
    from kagglebert.core.errors import DataError

    with pytest.raises(DataError, match=r"test_public_expanded.csv: row 4, column 'toxicity': value '1.5' is not a number in \[0, 1\]"):
        JIGSAW_BIAS_2019.leaderboard(tmp_path, pd.DataFrame({"id": labels["id"], "prediction": 0.5}))


# ---- a second independent implementation: the issue's words, pairs counted, no sklearn ----

def pair_auc(positive_scores, negative_scores):
    """P(a positive outranks a negative), a tie counting 1/2; None without both classes."""
    if len(positive_scores) == 0 or len(negative_scores) == 0:
        return None
    diff = np.subtract.outer(np.asarray(positive_scores, float), np.asarray(negative_scores, float))
    return float(((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size)


def by_the_words(target, shares, pred):
    """0.25 × overall AUC + 0.75 × mean of the three power means (p = -5) over the identities'
    subgroup, BPSN and BNSP AUCs; toxic and member at >= 0.5; a NaN share is not a member; an
    undefined AUC left out of its mean."""
    pred = np.asarray(pred, float)
    toxic = np.asarray(target, float) >= 0.5
    overall = pair_auc(pred[toxic], pred[~toxic])
    terms, table = {"subgroup_auc": [], "bpsn_auc": [], "bnsp_auc": []}, {}
    for j in range(shares.shape[1]):
        member = np.array([s >= 0.5 if s == s else False for s in shares[:, j]])
        aucs = {"subgroup_auc": pair_auc(pred[member & toxic], pred[member & ~toxic]),
                "bpsn_auc": pair_auc(pred[~member & toxic], pred[member & ~toxic]),
                "bnsp_auc": pair_auc(pred[member & toxic], pred[~member & ~toxic])}
        table[j] = aucs
        for key, value in aucs.items():
            if value is not None:
                terms[key].append(value)
    means = [0.0 if 0.0 in v else (sum(x ** -5 for x in v) / len(v)) ** (-1 / 5) for v in terms.values() if v]
    if overall is None:
        return float("nan"), table
    return (0.25 * overall + 0.75 * sum(means) / len(means) if means else overall), table


@pytest.mark.parametrize("seed", range(8))
def test_matches_the_issue_text_counted_pair_by_pair(seed):
    rng = np.random.default_rng(7000 + seed)
    target, ident, pred = random_case(rng, int(rng.integers(6, 400)), adversarial=seed % 2 == 1)
    if seed == 3:
        pred = np.full(len(pred), 0.5)  # every prediction tied
    if seed == 5:
        ident["jewish"] = np.where(np.asarray(target) >= 0.5, 1.0, np.nan)  # members all toxic: subgroup and BPSN undefined
    expected, table = by_the_words(target, ident.to_numpy(np.float64), pred)
    result = ours(target, ident, pred)
    if np.isnan(expected):
        assert np.isnan(result["score"])
    else:
        assert result["score"] == pytest.approx(expected, abs=1e-9)
    for j, name in enumerate(ident.columns):
        for key, value in table[j].items():
            mine = result["per_identity"][name][key]
            assert (mine is None) == (value is None) and (value is None or mine == pytest.approx(value, abs=1e-9))
