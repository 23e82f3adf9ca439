"""The texts `predict` scores: a CSV (the task's text column; its id column when there is one) or a
.txt file (one text a line), and `sample_submission.csv` when the input is the competition's test
file. Every problem is one DataError naming the file, row and column, before any model loads."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.data import check_test_ids, read_csv
from ..core.tables import check_unique_ids
from ..core.errors import DataError
from ..core.tasks import TaskSpec


@dataclass
class InputTexts:
    path: Path
    texts: list[str]
    ids: pd.Series | None  # the task's id column when the input has one
    frame: pd.DataFrame | None  # the CSV as read (None for .txt)
    numbers: np.ndarray  # where each text is: the CSV's data row or the .txt's line (1 = the first)
    numbered_by: str  # "row" (CSV) or "line" (.txt): the output's column for `numbers`


def read_input(path: Path, task: TaskSpec) -> InputTexts:
    """The texts of a CSV (the task's text column) or of a .txt file (one text a line; blank
    lines are skipped and each text keeps its line number); one-line DataError for anything unusable."""
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


def sample_submission_for(inputs: InputTexts, task: TaskSpec) -> tuple[Path, pd.DataFrame] | None:
    """sample_submission next to the input, when the input is the competition's test file; its ids
    are checked against the input's before any model runs."""
    if inputs.ids is None or inputs.path.name not in (task.test_file, f"{task.test_file}.zip"):
        return None
    for candidate in (inputs.path.parent / task.sample_submission_file, inputs.path.parent / f"{task.sample_submission_file}.zip"):
        if candidate.is_file():
            sample = read_csv(candidate)
            missing = [c for c in (task.id_column, *task.submission_names) if c not in sample.columns]
            if missing:
                raise DataError(f"{candidate}: row 0 (header), column {missing[0]!r}: missing (found: {', '.join(sample.columns)})")
            check_test_ids(inputs.frame, inputs.path, sample, candidate, task.id_column)
            return candidate, sample
    return None
