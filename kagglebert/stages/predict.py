"""Scoring new texts with a finished run: every fold model the run saved (`folds/fold<k>_model/`)
scores the texts, and the probabilities are averaged over folds — what `train` does for the test
set, so on the run's own test file the result equals `test_pred.csv` (to fp16 rounding when the
models were saved in fp16).

    python -m kagglebert predict --run demo --input new_comments.csv [--output FILE]
    python -m kagglebert predict --run demo --input sentences.txt          # one text a line
    python -m kagglebert predict --run /kaggle/input/my-export/runs/demo --input test.csv

From Python (a notebook, another program):

    import kagglebert
    model = kagglebert.load_run("demo")               # runs/demo/, or the path of a run folder
    model.predict(["thanks for the fix", "..."])      # DataFrame: a row per text, a column per label

The run folder is only read (an attached Kaggle dataset or an `export` folder works). Batches are
sorted by length, run without gradients and under autocast on a GPU (bf16 where the GPU has it,
else fp16; fp32 on a CPU), like training's own predictions.

The output CSV: an input with the task's id column gives `id` + a column per label (the layout of
`test_pred.csv`); a CSV without ids gives `row` (1 = the first data row) + `text` + a column per
label, a .txt file `line` (its line number; blank lines are skipped) + `text` + a column per label. When the input is the competition's test file (`test.csv`
or `test.csv.zip`, with id and text columns) and `sample_submission.csv` lies next to it, the
output is a submission instead: checked against sample_submission and written by the `submit`
stage's writer (sample_submission's row order; never over a different file).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..core import atomic
from ..core.atomic import read_json
from ..core.checkpoint import load_classifier, read_meta
from ..core.config import Config, fold_count
from ..core.data import check_test_ids, check_unique_ids, find_file, read_csv
from ..core.engine import resolve_device, resolve_precision
from ..core.paths import BUNDLED_SAMPLE, find_data_dir, kaggle_input
from ..core.errors import ConfigError, DataError, RunError
from ..core.modeling import Classifier, predict as model_probabilities
from ..core.runs import Run, read_run
from ..core.tokenization import tokenize, tokenizer_fingerprint
from .submit import SAMPLE_RUN_NOTE, Submission, build_submission, kaggle_command, short_of_competition, write_new

log = logging.getLogger("kagglebert")

# what every fold model of one run must agree on: the texts are tokenized once for all of them
SHARED_META = ("task", "label_columns", "max_length", "truncation", "head_tokens")


def locate_run(run: str | Path, runs_dir: str | Path = "runs") -> Run:
    """A run by name (a folder under `runs_dir`) or by the path of its folder, opened read-only."""
    text = str(run)
    if "/" in text or "\\" in text:  # a path: a run folder anywhere (an export, an attached dataset)
        return read_run(runs_dir, str(Path(text).expanduser().resolve()))
    return read_run(runs_dir, text)


def fold_model_dirs(run: Run) -> list[Path]:
    """The saved model folder of every fold of a finished run; one-line RunError when the run
    cannot be served (another model kind, models not saved, a fold unfinished or its model gone)."""
    cfg = run.cfg
    if cfg.model.kind != "transformer":
        raise RunError(f"{run.dir}: model.kind = {cfg.model.kind!r}; predict and export serve transformer runs "
                       f"(a {cfg.model.kind} run keeps no fold models)")
    if not cfg.train.save_models:
        raise RunError(f"{run.dir}: trained with train.save_models = false, so no fold models were kept; train it "
                       f"again under a new name with --set train.save_models=true")
    folders = []
    for fold in range(fold_count(cfg)):
        if not run.fold_file(fold, "record.json").is_file():  # not fold_complete: a missing model gets its own message below
            raise RunError(f"{run.dir}: fold {fold} is not trained ({run.fold_file(fold, 'record.json').name} missing); "
                           f"finish the run with `python -m kagglebert train` first")
        folder = run.fold_model_dir(fold)
        if not folder.is_dir():
            raise RunError(f"{folder}: missing; fold {fold}'s model was not saved or was deleted (the run cannot predict)")
        folders.append(folder)
    return folders


def check_fold_metas(folders: list[Path], run: Run) -> list[dict]:
    """Every fold's kagglebert.json, read before any weights are loaded: the folds must be this
    run's task and agree with each other on labels and tokenization."""
    metas = [read_meta(folder) for folder in folders]
    for folder, meta in zip(folders, metas):
        if meta.get("task") != run.task.name or meta.get("label_columns") != list(run.task.label_columns):
            raise RunError(f"{folder}: a model for task {meta.get('task')!r} with labels {meta.get('label_columns')}, "
                           f"but run {run.dir.name!r} is {run.task.name!r} with {list(run.task.label_columns)}")
        for key in SHARED_META:
            if meta.get(key) != metas[0].get(key):
                raise RunError(f"{folder}: {key} = {meta.get(key)!r}, but {folders[0].name} has {metas[0].get(key)!r}; "
                               f"the fold models do not belong to one run")
    return metas


def pick_device(name: str) -> torch.device:
    try:
        device = resolve_device(name)
    except RuntimeError as err:
        raise ConfigError(f"--device {name!r}: {str(err).splitlines()[0]}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name!r}: no CUDA GPU here; use --device cpu (or auto)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"--device {name!r}: MPS is not available here; use --device cpu (or auto)")
    return device


def check_batch_size(batch_size: int) -> None:
    if batch_size < 0:
        raise ConfigError(f"batch size {batch_size}: must be a positive number of texts (0 = the run's train.eval_batch_size)")


@dataclass
class TrainedRun:
    """A finished run's fold models, loaded once, ready to score texts."""

    run: Run
    models: list[Classifier]
    tokenizer: object
    meta: dict  # fold 0's kagglebert.json (the folds agree on task, labels and tokenization)
    device: torch.device
    precision: str  # autocast precision: fp32 on a CPU, bf16/fp16 on a GPU
    batch_size: int

    @property
    def folds(self) -> list[int]:
        return list(range(len(self.models)))

    @property
    def labels(self) -> list[str]:
        return list(self.run.task.label_columns)

    @property
    def config(self) -> Config:
        return self.run.cfg

    def probabilities(self, texts: list[str]) -> np.ndarray:
        """(n texts, n labels) float32: each fold model's sigmoid outputs, averaged over folds."""
        meta = self.meta
        tokens = tokenize(self.tokenizer, texts, max_length=meta["max_length"], truncation=meta["truncation"],
                          head_tokens=meta["head_tokens"])
        total = np.zeros((len(texts), len(self.labels)), dtype=np.float64)
        for model in self.models:
            total += model_probabilities(model, tokens, self.tokenizer.pad_token_id, self.batch_size, self.device,
                                         self.precision, self.config.train.pad_multiple)
        return (total / len(self.models)).astype(np.float32)

    def fold_table(self) -> pd.DataFrame:
        """One row per fold model: its validation score, best epoch and stored dtype."""
        records = [read_json(self.run.fold_file(k, "record.json")) for k in self.folds]
        return pd.DataFrame({
            "fold": self.folds,
            self.run.task.metric_name: [r.get("score") for r in records],
            "best epoch": [r.get("best_epoch") for r in records],
            "stored as": [self.meta.get("dtype")] * len(self.models),
        }).set_index("fold")

    def predict(self, texts: list[str] | str) -> pd.DataFrame:
        """Per-label probabilities, one row per text (indexed by the text), averaged over folds."""
        if isinstance(texts, str):  # one sentence, not its characters
            texts = [texts]
        texts = list(texts)
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise DataError(f"texts[{i}]: a {type(text).__name__}, not a string")
        probs = self.probabilities(texts) if texts else np.zeros((0, len(self.labels)), np.float32)
        return pd.DataFrame(probs, columns=self.labels, index=pd.Index(texts, name="text"))


def load_run(run: str | Path, runs_dir: str | Path = "runs", *, device: str = "auto", batch_size: int = 0) -> TrainedRun:
    """Every fold model of a finished run, loaded for scoring. `run`: a name under `runs_dir` or
    the path of a run folder (e.g. inside an `export` folder). `batch_size` 0 = the run's
    train.eval_batch_size."""
    check_batch_size(batch_size)
    trained = locate_run(run, runs_dir)
    folders = fold_model_dirs(trained)
    check_fold_metas(folders, trained)
    where = pick_device(device)
    models, tokenizer, meta = [], None, None
    for folder in folders:
        model, fold_tokenizer, fold_meta = load_classifier(folder, device=where, task=trained.task)
        if tokenizer is None:
            tokenizer, meta = fold_tokenizer, fold_meta
        elif tokenizer_fingerprint(fold_tokenizer) != tokenizer_fingerprint(tokenizer):
            raise RunError(f"{folder}: its tokenizer differs from {folders[0].name}'s; the fold models do not belong to one run")
        models.append(model)
    precision = resolve_precision("auto", where)
    log.info("predict: %s, %d fold models on %s (%s)", trained.dir, len(models), where, precision)
    return TrainedRun(trained, models, tokenizer, meta, where, precision, batch_size or trained.cfg.train.eval_batch_size)


# ---- input files ----

@dataclass
class InputTexts:
    path: Path
    texts: list[str]
    ids: pd.Series | None  # the task's id column when the input has one
    frame: pd.DataFrame | None  # the CSV as read (None for .txt)
    numbers: np.ndarray  # where each text is: the CSV's data row or the .txt's line (1 = the first)
    numbered_by: str  # "row" (CSV) or "line" (.txt): the output's column for `numbers`


def read_input(path: Path, run: Run) -> InputTexts:
    """The texts of a CSV (the task's text column) or of a .txt file (one text a line; blank
    lines are skipped and each text keeps its line number); one-line DataError for anything unusable."""
    task = run.task
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    if path.suffix.lower() == ".txt":
        try:
            lines = path.read_text(encoding="utf-8-sig").splitlines()
        except UnicodeDecodeError as err:
            line = path.read_bytes()[: err.start].count(b"\n") + 1
            raise DataError(f"{path}: line {line}: not UTF-8 text; save the file as UTF-8") from None
        numbers = np.array([i + 1 for i, line in enumerate(lines) if line.strip()], dtype=np.int64)
        if not len(numbers):
            raise DataError(f"{path}: no text to predict (the file is empty)")
        return InputTexts(path, [lines[i - 1] for i in numbers], None, None, numbers, "line")
    frame = read_csv(path)
    if task.text_column not in frame.columns:
        raise DataError(f"{path}: row 0 (header), column {task.text_column!r}: missing (found: {', '.join(map(str, frame.columns))}); "
                        f"predict reads the texts from {task.text_column!r}, or from a .txt file with one text a line")
    if frame.empty:
        raise DataError(f"{path}: no rows to predict (only a header)")
    ids = None
    if task.id_column in frame.columns:
        check_unique_ids(frame, path, task.id_column)  # ids key the output: each must name one row
        ids = frame[task.id_column]
    return InputTexts(path, frame[task.text_column].tolist(), ids, frame, np.arange(1, len(frame) + 1), "row")


def sample_submission_for(inputs: InputTexts, run: Run) -> tuple[Path, pd.DataFrame] | None:
    """sample_submission next to the input, when the input is the competition's test file; its ids
    are checked against the input's before any model runs."""
    task = run.task
    if inputs.ids is None or inputs.path.name not in (task.test_file, f"{task.test_file}.zip"):
        return None
    for candidate in (inputs.path.parent / task.sample_submission_file, inputs.path.parent / f"{task.sample_submission_file}.zip"):
        if candidate.is_file():
            sample = read_csv(candidate)
            missing = [c for c in (task.id_column, *task.label_columns) if c not in sample.columns]
            if missing:
                raise DataError(f"{candidate}: row 0 (header), column {missing[0]!r}: missing (found: {', '.join(sample.columns)})")
            check_test_ids(inputs.frame, inputs.path, sample, candidate, task.id_column)
            return candidate, sample
    return None


@dataclass
class Prediction:
    output: Path
    frame: pd.DataFrame
    reused: bool  # an identical file was already there
    seconds: float  # tokenization + every fold's forward passes
    submission: Submission | None  # set when the output is a validated submission
    sample_path: Path | None
    competition_rows: int | None = None  # the competition's test rows (TaskSpec.test_rows), when known

    @property
    def comments_per_s(self) -> float:
        return len(self.frame) / self.seconds if self.seconds else float("nan")

    @property
    def summary(self) -> str:
        """What the CLI prints."""
        what = "reusing" if self.reused else "wrote"
        if self.submission is not None:
            expected = f"the competition's {self.competition_rows:,} test rows" if self.competition_rows else "the competition's test set"
            note = f"; not {expected}: a sample run, Kaggle would reject it" if self.submission.sample_run else ""
            return (f"submission: {self.output} ({what}; {len(self.frame)} rows checked against {self.sample_path}{note})\n"
                    f"submit with: {self.submission.command}")
        return f"predictions: {self.output} ({what}; {len(self.frame)} rows × {len(self.frame.columns)} columns)"


def competition_test_file(run: Run) -> Path:
    """The competition's test file for `run`: in its data.dir when that folder is here, else where
    the competition's files are found under the Kaggle inputs; off Kaggle the bundled sample's.
    On Kaggle a missing competition is a one-line error saying what to attach: a code competition
    must never get the bundled sample's 600 rows."""
    configured = run.cfg.data.dir
    if configured and Path(configured).expanduser().is_dir():
        return find_file(Path(configured).expanduser(), run.task.test_file)
    folder = find_data_dir("", run.task.competition_slug, require_competition=kaggle_input().is_dir())
    return find_file(folder, run.task.test_file)


def default_output(run: Run, input_path: Path) -> Path:
    stem = input_path.name.split(".")[0] or "input"
    return Path("predictions") / f"{run.dir.name}-{stem}.csv"


def predict_file(model: TrainedRun, input_path: str | Path, output: str | Path | None = None) -> Prediction:
    """Score `input_path` with `model` and write the output (see the module docstring). The input,
    and sample_submission when there is one, are checked before any model runs; the output is
    never written over a file with other content."""
    inputs = read_input(Path(input_path), model.run)
    return score_inputs(model, inputs, sample_submission_for(inputs, model.run), output)


def output_path(output: str | Path | None, run: Run, inputs: InputTexts) -> Path:
    """Where the predictions go, checked before any weights load: a CSV, never the input itself."""
    out_path = Path(output) if output else default_output(run, inputs.path)
    if out_path.suffix.lower() != ".csv":  # the output is always CSV: a .parquet name would lie about the file
        raise RunError(f"{out_path}: predictions are written as CSV; give --output a name ending in .csv")
    if out_path.resolve() == inputs.path.resolve():
        raise RunError(f"{out_path}: is the input file; choose another --output")
    return out_path


def score_inputs(model: TrainedRun, inputs: InputTexts, found: tuple[Path, pd.DataFrame] | None,
                 output: str | Path | None) -> Prediction:
    run, task = model.run, model.run.task
    out_path = output_path(output, run, inputs)
    started = time.perf_counter()
    probs = model.probabilities(inputs.texts)
    seconds = time.perf_counter() - started
    log.info("predict: %d texts × %d fold models in %.1f s (%.0f texts/s on %s, %s)", len(inputs.texts),
             len(model.models), seconds, len(inputs.texts) / seconds, model.device, model.precision)
    labels = pd.DataFrame(probs, columns=model.labels)
    if inputs.ids is not None:
        frame = pd.concat([pd.DataFrame({task.id_column: inputs.ids.to_numpy()}), labels], axis=1)
    else:
        frame = pd.concat([pd.DataFrame({inputs.numbered_by: inputs.numbers, "text": inputs.texts}), labels], axis=1)
    if found is None:
        reused = atomic.write_new(out_path, frame.to_csv(index=False))
        return Prediction(out_path, frame, reused, seconds, None, None)
    sample_path, sample = found
    frame = build_submission(frame, inputs.path, sample, task)
    reused = write_new(frame, out_path)  # the submit stage's writer: same format, same refusal
    # a sample run: the bundled sample's test file, or any test file whose rows are not the competition's
    sample_run = inputs.path.resolve().is_relative_to(BUNDLED_SAMPLE.resolve()) or short_of_competition(len(frame), task)
    message = f"kagglebert {run.dir.name} (predict{', ' + SAMPLE_RUN_NOTE if sample_run else ''})"
    command = kaggle_command(task.competition_slug, out_path, message)
    return Prediction(out_path, frame, reused, seconds, Submission(out_path, frame, reused, command, sample_run), sample_path, task.test_rows)


def main(run: str, input_path: str, output: str | None = None, runs_dir: str = "runs", device: str = "auto",
         batch_size: int = 0) -> Prediction:
    """`python -m kagglebert predict`: the run's fold folders, the input and sample_submission are
    checked before any weights are loaded (a bad input fails in a second, not after the loading)."""
    check_batch_size(batch_size)
    located = locate_run(run, runs_dir)
    check_fold_metas(fold_model_dirs(located), located)
    inputs = read_input(Path(input_path), located)
    found = sample_submission_for(inputs, located)
    out_path = output_path(output, located, inputs)
    return score_inputs(load_run(run, runs_dir, device=device, batch_size=batch_size), inputs, found, out_path)
