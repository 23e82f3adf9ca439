"""`python -m kagglebert predict`: score a file of texts with a finished run or blend and write the
output. Transformer runs average their fold models, tfidf and features runs their fold logistic
regressions, blends their members' ranks (`stages/serving`); on the run's own test file the result
equals its `test_pred.csv` (to fp16 rounding for transformer models saved in fp16).

    python -m kagglebert predict --run demo --input new_comments.csv [--output FILE]
    python -m kagglebert predict --run demo --input sentences.txt          # one text a line
    python -m kagglebert predict --run quick-blend --input test.csv        # a blend: its members, weighted
    python -m kagglebert predict --run /kaggle/input/my-export/runs/demo --input test.csv

From Python: `kagglebert.load_run("demo").predict([...])` (see `stages/serving`).

The output CSV: an input with the task's id column gives `id` + a column per label (the layout of
`test_pred.csv`); a CSV without ids gives `row` (1 = the first data row) + `text` + a column per
label, a .txt file `line` (its line number; blank lines are skipped) + `text` + a column per label.
When the input is the competition's test file (`test.csv` or `test.csv.zip`, with id and text
columns) and `sample_submission.csv` lies next to it, the output is a submission instead: checked
against sample_submission and written by the `submit` stage's writer (sample_submission's row
order; never over a different file).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..core import atomic
from ..core.data import find_file
from ..core.errors import RunError
from ..core.paths import SAMPLE_DATA, find_data_dir, kaggle_input
from ..core.runs import Run
from .inputs import InputTexts, read_input, sample_submission_for
from .serving import ServedRun, load_run, served_run
from .serving.common import check_batch_size, locate_run  # noqa: F401  (locate_run: a public helper here since 0.1)
from .submit import SAMPLE_RUN_NOTE, Submission, build_submission, kaggle_command, short_of_competition, write_new

log = logging.getLogger("kagglebert")


@dataclass
class Prediction:
    output: Path
    frame: pd.DataFrame
    reused: bool  # an identical file was already there
    seconds: float  # featurizing + every model's forward passes
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


def output_path(output: str | Path | None, run: Run, inputs: InputTexts) -> Path:
    """Where the predictions go, checked before any weights load: a CSV, never the input itself."""
    out_path = Path(output) if output else default_output(run, inputs.path)
    if out_path.suffix.lower() != ".csv":  # the output is always CSV: a .parquet name would lie about the file
        raise RunError(f"{out_path}: predictions are written as CSV; give --output a name ending in .csv")
    if out_path.resolve() == inputs.path.resolve():
        raise RunError(f"{out_path}: is the input file; choose another --output")
    return out_path


def predict_file(model: ServedRun, input_path: str | Path, output: str | Path | None = None) -> Prediction:
    """Score `input_path` with `model` (any `load_run` result) and write the output (see the module
    docstring). The input, and sample_submission when there is one, are checked before any model
    runs; the output is never written over a file with other content."""
    inputs = read_input(Path(input_path), model.run.task)
    return score_inputs(model, inputs, sample_submission_for(inputs, model.run.task), output)


def score_inputs(model: ServedRun, inputs: InputTexts, found: tuple[Path, pd.DataFrame] | None,
                 output: str | Path | None) -> Prediction:
    run, task = model.run, model.run.task
    out_path = output_path(output, run, inputs)
    started = time.perf_counter()
    probs = model.probabilities(inputs.texts)
    seconds = time.perf_counter() - started
    log.info("predict: %d texts × %d models in %.1f s (%.0f texts/s on %s, %s)", len(inputs.texts),
             model.n_models, seconds, len(inputs.texts) / max(seconds, 1e-9), model.device, model.precision)
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
    sample_run = inputs.path.resolve().is_relative_to(SAMPLE_DATA.resolve()) or short_of_competition(len(frame), task)
    message = f"kagglebert {run.dir.name} (predict{', ' + SAMPLE_RUN_NOTE if sample_run else ''})"
    command = kaggle_command(task.competition_slug, out_path, message)
    return Prediction(out_path, frame, reused, seconds, Submission(out_path, frame, reused, command, sample_run), sample_path, task.test_rows)


def main(run: str, input_path: str, output: str | None = None, runs_dir: str = "runs", device: str = "auto",
         batch_size: int = 0) -> Prediction:
    """`python -m kagglebert predict`: the run's (or blend's members') model files, the input and
    sample_submission are checked before any weights are loaded (a bad input fails in a second)."""
    check_batch_size(batch_size)
    located = served_run(run, runs_dir)
    inputs = read_input(Path(input_path), located.task)
    found = sample_submission_for(inputs, located.task)
    out_path = output_path(output, located, inputs)
    return score_inputs(load_run(run, runs_dir, device=device, batch_size=batch_size), inputs, found, out_path)
