"""Baselines (tfidf, frozen features), blends and the FiT vs ITPT-FiT ablation, end to end on a
few hundred real rows and the tiny BERT."""
from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import rankdata

from kagglebert import cli
from kagglebert.analysis import blend
from kagglebert.core import config as config_mod
from kagglebert.stages import train
from kagglebert.core.runs import read_run
from kagglebert.core.tasks import JIGSAW_TOXIC_2018

LABELS = JIGSAW_TOXIC_2018.label_columns


def base_overrides(data_dir, work, **extra) -> list[str]:
    values = {
        "data.dir": data_dir, "data.n_folds": 2, "run.runs_dir": work / "runs", "submit.dir": work / "submissions",
        "data.cache_dir": work / "cache", "run.progress": "false", **extra,
    }
    return [f"{k}={v}" for k, v in values.items()]


def set_args(overrides: list[str]) -> list[str]:
    return [a for o in overrides for a in ("--set", o)]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("baselines")


# one marker word per label: ordinary words (single word pieces) that the real comments rarely use
MARKERS = dict(zip(LABELS, ("banana", "volcano", "umbrella", "penguin", "trumpet", "glacier")))


@pytest.fixture(scope="module")
def learnable_dir(sample_dir, tmp_path_factory):
    """The sample's 300 real comments (same ids, same test.csv) relabelled so that a small model can
    learn them: each label is positive on a random quarter of the rows, and a positive row starts
    with that label's marker word, three times (so that it weighs in a mean-pooled embedding of a
    random tiny BERT, too). The marker also starts 5% of the negative rows, so no word separates a
    label perfectly: the best possible AUC per label is about 0.975."""
    rng = np.random.default_rng(0)
    train = pd.read_csv(sample_dir / "train.csv", dtype=str, keep_default_na=False, na_filter=False)
    positive = rng.random((len(train), len(LABELS))) < 0.25
    decoy = ~positive & (rng.random(positive.shape) < 0.05)
    marked = positive | decoy
    train["comment_text"] = [" ".join([MARKERS[label] for label, m in zip(LABELS, row) if m for _ in range(3)] + [text])
                             for row, text in zip(marked, train["comment_text"])]
    for j, label in enumerate(LABELS):
        train[label] = positive[:, j].astype(int).astype(str)
    folder = tmp_path_factory.mktemp("learnable-data")
    train.to_csv(folder / "train.csv", index=False)
    for name in ("test.csv", "sample_submission.csv"):
        (folder / name).write_bytes((sample_dir / name).read_bytes())
    return folder


@pytest.fixture(scope="module")
def tfidf_run(work, learnable_dir, run_cli):
    """The real CLI: `run` with model.kind = tfidf on the 300 learnable rows, 2 folds."""
    proc = run_cli("run", "--config", "tfidf", *set_args(base_overrides(learnable_dir, work)))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return work / "runs" / "tfidf", proc


@pytest.fixture(scope="module")
def features_cfg(work, learnable_dir, tiny_model_dir):
    return config_mod.load("features", base_overrides(learnable_dir, work, **{"model.name": tiny_model_dir, "model.max_length": 64, "run.device": "cpu"}))


@pytest.fixture(scope="module")
def features_run(features_cfg):
    metrics = train.main(features_cfg)
    return features_cfg, metrics


def test_tfidf_run_writes_every_output_and_learns(tfidf_run, work, learnable_dir):
    folder, proc = tfidf_run
    for name in ("config.toml", "folds.csv", "oof.csv", "test_pred.csv", "metrics.json", "folds/fold0_record.json", "folds/fold1_record.json"):
        assert (folder / name).is_file(), name
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["model_kind"] == "tfidf"
    assert len(metrics["fold_auc"]) == 2
    # the markers are word n-grams: close to the fixture's ceiling (about 0.975), measured 0.972
    assert metrics["oof_auc"] > 0.95, metrics
    assert min(metrics["per_label_auc"].values()) > 0.93, metrics["per_label_auc"]
    oof = pd.read_csv(folder / "oof.csv", dtype={"id": str})
    train_ids = pd.read_csv(learnable_dir / "train.csv", dtype=str)["id"]
    assert list(oof["id"]) == list(train_ids)
    assert oof[LABELS].to_numpy().min() >= 0 and oof[LABELS].to_numpy().max() <= 1
    record = json.loads((folder / "folds" / "fold0_record.json").read_text())
    assert {"fold", "score", "per_label", "train_seconds", "train_samples", "train_samples_per_s"} <= set(record)
    submission = pd.read_csv(work / "submissions" / "tfidf.csv", dtype={"id": str})
    sample = pd.read_csv(learnable_dir / "sample_submission.csv", dtype={"id": str})
    assert list(submission["id"]) == list(sample["id"]) and list(submission.columns) == list(sample.columns)
    assert "OOF" in proc.stdout


def test_features_embeds_once_and_reuses_the_cache(features_run, monkeypatch):
    cfg, metrics = features_run
    folder = Path(cfg.run.runs_dir) / cfg.run.name
    train_emb = np.load(f"{folder}/features/train_embeddings.npy")
    test_emb = np.load(f"{folder}/features/test_embeddings.npy")
    assert train_emb.shape == (300, 32) and test_emb.shape == (600, 32)
    assert np.isfinite(train_emb).all()
    assert metrics["model_kind"] == "features"
    # a random tiny BERT's mean-pooled embeddings still carry the marker words: measured 0.866
    assert metrics["oof_auc"] > 0.8, metrics
    assert min(metrics["per_label_auc"].values()) > 0.7, metrics["per_label_auc"]
    first_oof = pd.read_csv(f"{folder}/oof.csv")

    # retrain from scratch except the embeddings: the encoder must not be loaded again
    def no_encoder(*args, **kwargs):
        raise AssertionError("the cached embeddings should have been used")

    monkeypatch.setattr("kagglebert.stages.baselines.load_encoder", no_encoder)
    (folder / "metrics.json").unlink()
    shutil.rmtree(folder / "folds")
    again = train.main(cfg)
    assert again["oof_auc"] == pytest.approx(metrics["oof_auc"])
    pd.testing.assert_frame_equal(pd.read_csv(f"{folder}/oof.csv"), first_oof)


def test_pooled_encoding_matches_one_text_at_a_time(tiny_model_dir, tokenizer):
    """Batched, length-sorted, padded encoding = each text alone without any padding."""
    import torch

    from kagglebert.core.modeling import encode, load_encoder
    from kagglebert.core.tokenization import tokenize

    texts = ["short", "a much longer comment with quite a few more words in it than the others", "", "medium length text here"]
    tokens = tokenize(tokenizer, texts, max_length=32, truncation="head")
    encoder = load_encoder(str(tiny_model_dir))
    batched = encode(encoder, tokens, tokenizer.pad_token_id, "mean", 3, torch.device("cpu"), "fp32")
    with torch.no_grad():
        for i in range(len(texts)):
            ids = torch.from_numpy(tokens[i].astype(np.int64))[None]
            alone = encoder(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state.mean(1)[0].numpy()
            np.testing.assert_allclose(batched[i], alone, atol=1e-5)


def test_rank_blend_is_the_mean_of_scaled_ranks(tfidf_run, features_run, work, learnable_dir, capsys):
    runs_dir = str(work / "runs")
    metrics = blend.main(["tfidf", "features"], "blend-rank", "rank", runs_dir, str(work / "submissions"))
    folder = work / "runs" / "blend-rank"
    members = [pd.read_csv(work / "runs" / r / "oof.csv", dtype={"id": str}) for r in ("tfidf", "features")]
    expected = np.mean([(rankdata(m[LABELS].to_numpy(), axis=0) - 1) / (len(m) - 1) for m in members], axis=0)
    oof = pd.read_csv(folder / "oof.csv", dtype={"id": str})
    np.testing.assert_allclose(oof[LABELS].to_numpy(), expected, atol=1e-9)
    assert list(oof["id"]) == list(members[0]["id"])

    truth = pd.read_csv(learnable_dir / "train.csv", dtype={"id": str})[LABELS].to_numpy(np.float32)
    saved = json.loads((folder / "metrics.json").read_text())
    assert saved["oof_auc"] == pytest.approx(JIGSAW_TOXIC_2018.score(truth, expected, LABELS)["score"])
    assert sum(saved["weights"].values()) == pytest.approx(1.0)
    assert set(saved["member_oof_auc"]) == {"tfidf", "features"}
    assert len(saved["fold_auc"]) == 2 and metrics["oof_auc"] == saved["oof_auc"]
    assert (folder / "folds.csv").read_text() == (work / "runs" / "tfidf" / "folds.csv").read_text()
    assert (work / "submissions" / "blend-rank.csv").is_file()
    assert "blend blend-rank" in capsys.readouterr().out


def test_weighted_blend_is_never_worse_than_its_best_member(tfidf_run, features_run, work):
    metrics = blend.main(["tfidf", "features"], "blend-weighted", "weighted", str(work / "runs"), str(work / "submissions"))
    assert sum(metrics["weights"].values()) == pytest.approx(1.0)
    assert all(0.0 <= w <= 1.0 for w in metrics["weights"].values())
    # the grid holds each member alone, and ranking a column keeps its AUC
    assert metrics["oof_auc"] >= max(metrics["member_oof_auc"].values()) - 1e-9


def test_per_label_blend_is_never_worse_than_any_member_on_any_label(tfidf_run, features_run, work):
    metrics = blend.main(["tfidf", "features"], "blend-per-label", "per-label", str(work / "runs"), str(work / "submissions"))
    for label, auc in metrics["per_label_auc"].items():
        if auc is None:
            continue
        assert auc >= max(m[label] for m in metrics["member_per_label_auc"].values()) - 1e-9
        assert sum(w[label] for w in metrics["label_weights"].values()) == pytest.approx(1.0)


def test_blend_refuses_runs_with_other_folds(tfidf_run, work, learnable_dir, capsys):
    cfg = config_mod.load("tfidf", base_overrides(learnable_dir, work, **{"run.name": "tfidf-otherfolds", "data.fold_seed": 7}))
    train.main(cfg)
    capsys.readouterr()  # the training's own lines; what the blend command prints comes next
    code = cli.main(["blend", "--runs", "tfidf", "tfidf-otherfolds", "--name", "bad-blend", "--runs-dir", str(work / "runs"),
                     "--submissions-dir", str(work / "submissions")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("error: ") and "tfidf-otherfolds" in err and "folds" in err and "\n" not in err
    assert not (work / "runs" / "bad-blend").exists()


def test_ablate_pairs_fit_and_itpt_on_identical_folds(tmp_path, sample_dir, tiny_model_dir, capsys):
    overrides = base_overrides(sample_dir, tmp_path, **{
        "run.name": "abl", "model.name": tiny_model_dir, "data.max_rows": 150, "train.epochs": 1, "lm.epochs": 1,
        "model.max_length": 64, "lm.block_size": 64, "lm.include_test": "false", "run.device": "cpu",
        "lm.lr": 1e-3,  # a random tiny BERT: a high rate, so that one short epoch visibly lowers perplexity
    })
    code = cli.main(["ablate", "--config", "demo", *set_args(overrides), "--seeds", "0", "--lm-epochs", "0", "1"])
    out = capsys.readouterr()
    assert code == 0, out.err[-2000:]
    folder = tmp_path / "runs" / "abl"
    summary = json.loads((folder / "ablation.json").read_text())
    assert set(summary["variants"]) == {"lm0", "lm1"}
    fit, itpt = summary["variants"]["lm0"], summary["variants"]["lm1"]
    for variant in (fit, itpt):
        assert {"oof_auc", "oof_auc_per_seed", "fold_auc", "per_label_auc", "perplexity_before", "perplexity_after"} <= set(variant)
        assert len(variant["fold_auc"]) == 2 and len(variant["oof_auc_per_seed"]) == 1
    assert fit["perplexity_before"] is None
    assert summary["test"] is None and "test" not in fit  # no test_labels.csv in the data folder: no test score
    # one epoch of masked-LM training lowers held-out perplexity (measured 30,689 → 27,664)
    assert itpt["perplexity_after"] < 0.95 * itpt["perplexity_before"], itpt
    diffs = np.array(itpt["fold_auc"]) - np.array(fit["fold_auc"])
    assert itpt["paired_diff_mean"] == pytest.approx(diffs.mean())
    low, high = itpt["paired_diff_ci95"]
    assert low <= itpt["paired_diff_mean"] <= high
    runs = tmp_path / "runs"
    assert (runs / "abl-lm0-s0" / "folds.csv").read_text() == (runs / "abl-lm1-s0" / "folds.csv").read_text()
    assert read_run(runs, "abl-lm1-s0").lm_complete() and len(list((runs / "_lm").iterdir())) == 1
    png = (folder / "ablation.png").read_bytes()
    width, height = struct.unpack(">II", png[16:24])  # the IHDR chunk of a PNG
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and (width, height) == (12 * 110, round(4.5 * 110))  # figsize × dpi
    assert "| FiT (lm0) |" in (folder / "ablation.md").read_text() and "ITPT-FiT" in out.out


def test_ablate_needs_an_lm_length(sample_dir, tmp_path, capsys):
    code = cli.main(["ablate", "--config", "demo", *set_args(base_overrides(sample_dir, tmp_path))])
    assert code == 2 and "lm.epochs" in capsys.readouterr().err


def test_nested_blend_weights_never_see_the_fold_they_score():
    """Scrambling one fold's labels changes the weights chosen for the other folds, never the
    blended predictions of that fold itself."""
    rng = np.random.default_rng(0)
    rows = 300
    labels = (rng.random((rows, len(LABELS))) < 0.3).astype(np.float32)
    members = [blend.scaled_ranks(labels + rng.normal(0, s, labels.shape)) for s in (0.5, 1.0)]
    fold_of = np.arange(rows) % 3
    before = blend.nested_oof("per-label", members, labels, JIGSAW_TOXIC_2018, fold_of)
    scrambled = labels.copy()
    scrambled[fold_of == 0] = rng.permutation(scrambled[fold_of == 0])
    after = blend.nested_oof("per-label", members, scrambled, JIGSAW_TOXIC_2018, fold_of)
    np.testing.assert_allclose(after[fold_of == 0], before[fold_of == 0])
    assert not np.allclose(after[fold_of != 0], before[fold_of != 0])


def test_fitted_blends_report_a_nested_score_and_rank_blends_do_not(tfidf_run, features_run, work, learnable_dir):
    fitted = blend.main(["tfidf", "features"], "blend-nested", "weighted", str(work / "runs"), str(work / "submissions"))
    # the saved figure is the nested blend of the members' saved predictions, recomputed here
    runs = [read_run(work / "runs", name) for name in ("tfidf", "features")]
    oofs = [pd.read_csv(r.oof_path, dtype={"id": str}) for r in runs]  # both in training-row order
    ranks = [blend.scaled_ranks(oof[LABELS].to_numpy()) for oof in oofs]
    fold_of = pd.read_csv(runs[0].folds_path, dtype={"id": str}).set_index("id").loc[oofs[0]["id"], "fold"].to_numpy()
    truth = pd.read_csv(learnable_dir / "train.csv", dtype={"id": str})[LABELS].to_numpy(np.float32)
    nested = blend.nested_oof("weighted", ranks, truth, JIGSAW_TOXIC_2018, fold_of)
    assert fitted["oof_auc_nested"] == pytest.approx(JIGSAW_TOXIC_2018.score(truth, nested, LABELS)["score"])
    assert fitted["oof_auc_nested"] > 0.95  # TF-IDF's level: the weights chosen per fold still favour it
    plain = blend.main(["tfidf", "features"], "blend-plain", "rank", str(work / "runs"), str(work / "submissions"))
    assert plain["oof_auc_nested"] is None


def test_blend_names_a_member_cell_that_is_not_a_number(tfidf_run, features_run, work, capsys):
    runs = work / "runs"
    shutil.copytree(runs / "tfidf", runs / "tfidf-broken")
    oof = pd.read_csv(runs / "tfidf-broken" / "oof.csv", dtype=str, keep_default_na=False)
    oof.loc[4, "threat"] = "oops"
    oof.to_csv(runs / "tfidf-broken" / "oof.csv", index=False)
    code = cli.main(["blend", "--runs", "features", "tfidf-broken", "--name", "broken-blend", "--runs-dir", str(runs),
                     "--submissions-dir", str(work / "submissions")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert "tfidf-broken/oof.csv: row 5, column 'threat'" in err  # 0-based row 4 = data row 5 (1 = first data row, as everywhere)
    assert not (runs / "broken-blend").exists() and not (work / "submissions" / "broken-blend.csv").exists()


@pytest.mark.parametrize("name, message", [("../outside", "plain folder name"), ("tfidf", "one of the members")])
def test_blend_refuses_a_bad_name_before_reading_members(name, message, work, capsys, monkeypatch):
    monkeypatch.setattr(blend, "read_run", lambda *a: pytest.fail("a member was read despite a bad --name"))
    code = cli.main(["blend", "--runs", "tfidf", "features", "--name", name, "--runs-dir", str(work / "runs"),
                     "--submissions-dir", str(work / "submissions")])
    assert code == 2 and message in capsys.readouterr().err


# ---- serving tfidf and features runs, and blends (predict, load_run, export) ----

def own_test_predictions(folder: Path) -> pd.DataFrame:
    return pd.read_csv(folder / "test_pred.csv", dtype={"id": str}, keep_default_na=False).set_index("id")


def predicted(path: Path, ids) -> np.ndarray:
    return pd.read_csv(path, dtype={"id": str}, keep_default_na=False).set_index("id").loc[ids, LABELS].to_numpy()


def test_tfidf_and_features_runs_predict_their_own_test_predictions(tfidf_run, features_run, work, learnable_dir, run_cli, tmp_path):
    """The real CLI on the competition-shaped test file: each baseline's stored models (arrays and
    JSON, no pickle) reproduce the run's test_pred.csv; load_run agrees with the CLI."""
    import kagglebert

    runs_dir = work / "runs"
    tfidf = runs_dir / "tfidf"
    assert (tfidf / "tfidf_vectorizer.json").is_file() and (tfidf / "tfidf_idf.npz").is_file()
    for name in ("tfidf", "features"):
        for fold in (0, 1):
            with np.load(runs_dir / name / "folds" / f"fold{fold}_linear.npz", allow_pickle=False) as stored:
                assert {"coef", "intercept", "constant"} <= set(stored.files)
                assert all(stored[k].dtype != object for k in stored.files)
    assert "scaler_mean" in np.load(runs_dir / "features" / "folds" / "fold0_linear.npz").files
    texts = pd.read_csv(learnable_dir / "test.csv", dtype=str, keep_default_na=False)["comment_text"].tolist()
    for name, tolerance in (("tfidf", 1e-6), ("features", 1e-5)):
        out = tmp_path / f"{name}.csv"
        done = run_cli("predict", "--run", name, "--runs-dir", runs_dir, "--input", learnable_dir / "test.csv", "--output", out)
        assert done.returncode == 0, done.stderr[-2000:]
        assert f"submission: {out}" in done.stdout
        own = own_test_predictions(runs_dir / name)
        difference = np.abs(predicted(out, own.index) - own[LABELS].to_numpy()).max()
        assert difference <= tolerance, f"{name}: largest difference {difference}"
        model = kagglebert.load_run(name, runs_dir=runs_dir, device="cpu")
        assert model.kind == name and model.folds == [0, 1] and name in model.describe()
        api = model.predict(texts[:40])
        np.testing.assert_allclose(api.to_numpy(), predicted(out, own.index[:40]), atol=1e-6)


def test_a_blend_is_served_and_exported_with_its_members(tfidf_run, features_run, work, learnable_dir, run_cli, tmp_path):
    """blend.json records members, weights and method; predict reproduces the blend's test_pred.csv
    from the members' models; export packs blend and members (sizes per member in its summary), and
    the exported blend predicts the same."""
    import kagglebert

    runs_dir = work / "runs"
    metrics = blend.main(["tfidf", "features"], "served-blend", "weighted", str(runs_dir), str(work / "submissions"))
    manifest = json.loads((runs_dir / "served-blend" / "blend.json").read_text())
    assert manifest["members"] == ["tfidf", "features"] and manifest["method"] == "weighted" and manifest["combine"] == "rank"
    assert {m: np.mean(list(w.values())) for m, w in manifest["weights"].items()} == pytest.approx(metrics["weights"])

    out = tmp_path / "blend.csv"
    done = run_cli("predict", "--run", "served-blend", "--runs-dir", runs_dir, "--input", learnable_dir / "test.csv", "--output", out)
    assert done.returncode == 0, done.stderr[-2000:]
    own = own_test_predictions(runs_dir / "served-blend")
    # a rank blend: a member's recomputed score that crosses a near-tie with another test row moves
    # by one rank step (1/rows); seen with the oldest dependency versions (features member, 8e-4)
    np.testing.assert_allclose(predicted(out, own.index), own[LABELS].to_numpy(), atol=2 / len(own))

    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "kagglebert-0.0.0-py3-none-any.whl").write_bytes(b"not a real wheel: export only copies it")
    dest = tmp_path / "export"
    done = run_cli("export", "--run", "served-blend", "--runs-dir", runs_dir, "--to", dest, "--wheels", wheels)
    assert done.returncode == 0, done.stderr[-2000:]
    described = json.loads((dest / "kagglebert-export.json").read_text())
    assert (described["run"], described["kind"], described["members"]) == ("served-blend", "blend", ["tfidf", "features"])
    sizes = described["sizes"]
    for name in ("tfidf", "features", "served-blend"):
        assert sizes[name] == sum(p.stat().st_size for p in (dest / "runs" / name).rglob("*") if p.is_file())
        assert f"{name} " in done.stdout.split("sizes: ")[1].splitlines()[0]
    assert "total" in done.stdout and (dest / "runs" / "features" / "encoder" / "config.json").is_file()
    exported = kagglebert.load_run(dest / "runs" / "served-blend", device="cpu")
    assert exported.kind == "blend" and list(exported.fold_table().index) == ["tfidf", "features"]
    texts = pd.read_csv(learnable_dir / "test.csv", dtype=str, keep_default_na=False).sample(40, random_state=0)
    # any part of the test set scores as in the blend's file: ranks are taken among the members' test predictions
    np.testing.assert_allclose(exported.predict(texts["comment_text"].tolist()).to_numpy(), own.loc[texts["id"], LABELS].to_numpy(), atol=2 / len(own))  # one rank step, as above
    alone = exported.predict("banana banana banana what a lovely day").to_numpy()
    assert alone.shape == (1, len(LABELS)) and 0 <= alone.min() and alone.max() <= 1 and alone[0, 0] > 0.5  # toxic's marker


def test_reference_ranks_give_each_reference_value_its_own_scaled_rank():
    from kagglebert.stages.serving.blend import reference_ranks, scaled_ranks

    rng = np.random.default_rng(0)
    reference = np.round(rng.random((50, 3)), 1)  # many ties
    np.testing.assert_allclose(reference_ranks(np.sort(reference, axis=0), reference), scaled_ranks(reference), atol=1e-12)
    between = reference_ranks(np.sort(reference, axis=0), np.array([[-1.0, 0.55, 2.0]]))
    assert between[0, 0] == 0.0 and between[0, 2] == 1.0 and 0 < between[0, 1] < 1


def test_serving_refuses_a_blend_without_its_members_and_a_baseline_without_models(tfidf_run, features_run, work, tmp_path, capsys):
    runs_dir = work / "runs"
    blend.main(["tfidf", "features"], "lonely-blend", "rank", str(runs_dir), str(work / "submissions"))
    alone = tmp_path / "alone"
    shutil.copytree(runs_dir / "lonely-blend", alone / "lonely-blend")
    no_models = tmp_path / "nomodels"
    shutil.copytree(runs_dir / "tfidf", no_models / "tfidf")
    (no_models / "tfidf" / "folds" / "fold1_linear.npz").unlink()
    sentences = tmp_path / "s.txt"
    sentences.write_text("hello there\n")
    for run, expected in ((alone / "lonely-blend", "needs its member 'tfidf'"), (no_models / "tfidf", "fold1_linear.npz: missing")):
        for command in (["predict", "--input", sentences, "--output", tmp_path / "out.csv"], ["export", "--to", tmp_path / "exp"]):
            capsys.readouterr()  # the blend's own lines above; only this command's output is checked
            code = cli.main([command[0], "--run", str(run), *map(str, command[1:])])
            err = capsys.readouterr().err
            assert code == 2 and err.startswith("error:") and err.count("\n") == 1 and expected in err, err
    assert not (tmp_path / "out.csv").exists() and not (tmp_path / "exp").exists()


def test_notebook_05_serves_the_recommended_run_of_runs_without_an_export(tfidf_run, features_run, work, learnable_dir, tmp_path, monkeypatch):
    """kagglebert installed, no export anywhere (Colab after a pip install): notebook 05 serves the
    run or blend of runs/ that notebook 4 recommends (best honest OOF score), and its submission.csv
    holds that candidate's own test predictions."""
    from kagglebert.notebook import report
    from test_notebooks import run_notebook_05

    runs = tmp_path / "runs"
    for name in ("tfidf", "features"):
        shutil.copytree(work / "runs" / name, runs / name)
    blend.main(["tfidf", "features"], "nb-blend", "per-label", str(runs), str(tmp_path / "submissions"))
    scores = report.run_scores({n: json.loads((runs / n / "metrics.json").read_text()) for n in ("tfidf", "features", "nb-blend")})
    best = str(scores.index[0])
    working = tmp_path / "working"
    monkeypatch.delenv("KAGGLEBERT_EXPORT", raising=False)
    text = run_notebook_05(working, monkeypatch, KAGGLEBERT_OVERRIDES=f"run.runs_dir={runs}", KAGGLEBERT_KAGGLE_INPUT=tmp_path / "no-inputs")
    assert f"run folder: {runs / best}" in text and "no export attached" in text
    own = own_test_predictions(runs / best)
    np.testing.assert_allclose(predicted(working / "submission.csv", own.index), own[LABELS].to_numpy(), atol=1e-6)
