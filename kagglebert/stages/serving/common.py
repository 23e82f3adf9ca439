"""What every served kind shares: finding the run folder, the device, the batch size, and the
`ServedRun` surface (`predict`, `labels`, `config`, `describe`) that predict, export and notebook 05 use."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ...core.config import Config
from ...core.engine import resolve_device
from ...core.errors import ConfigError, DataError
from ...core.paths import run_dir
from ...core.runs import Run, read_run


def run_folder(run: str | Path, runs_dir: str | Path = "runs") -> Path:
    """A run by name (a folder under `runs_dir`) or by the path of its folder (an export, an
    attached dataset: a run folder anywhere)."""
    text = str(run)
    if "/" in text or "\\" in text:
        return Path(text).expanduser().resolve()
    return run_dir(str(runs_dir), text)


def locate_run(run: str | Path, runs_dir: str | Path = "runs") -> Run:
    """A trained run (one with config.toml) by name or by the path of its folder, opened read-only."""
    text = str(run)
    if "/" in text or "\\" in text:
        return read_run(runs_dir, str(Path(text).expanduser().resolve()))
    return read_run(runs_dir, text)


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


def check_texts(texts: list[str] | str) -> list[str]:
    if isinstance(texts, str):  # one sentence, not its characters
        texts = [texts]
    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise DataError(f"texts[{i}]: a {type(text).__name__}, not a string")
    return texts


class ServedRun:
    """A finished run (or blend) loaded once, ready to score texts. Subclasses set `run`, `device`,
    `precision` and implement `probabilities` and `fold_table`."""

    run: Run
    device: torch.device
    precision: str
    kind: str = ""

    @property
    def labels(self) -> list[str]:
        return list(self.run.task.label_columns)

    @property
    def config(self) -> Config:
        return self.run.cfg

    @property
    def name(self) -> str:
        return self.run.dir.name

    @property
    def n_models(self) -> int:
        """Models run for each text (fold models; over all members for a blend)."""
        raise NotImplementedError

    def fold_probabilities(self, texts: list[str]) -> list[np.ndarray]:
        """Each fold model's (n texts, n labels) probabilities."""
        raise NotImplementedError

    def probabilities(self, texts: list[str]) -> np.ndarray:
        """(n texts, n labels) float32: the fold models' mean, as `train` averages the test predictions."""
        folds = self.fold_probabilities(texts)
        return (np.sum(folds, axis=0, dtype=np.float64) / len(folds)).astype(np.float32)

    def as_stored(self, texts: list[str]) -> np.ndarray:
        """(n texts, n labels) float64: the fold mean exactly as the run's test_pred.csv holds it for
        these texts (each fold's file printed at its precision and read back, then averaged), so that
        a blend ranks the very numbers it was fitted on, ties included."""
        return np.mean([fold.astype(str).astype(np.float64) for fold in self.fold_probabilities(texts)], axis=0)

    def fold_table(self) -> pd.DataFrame:
        raise NotImplementedError

    def describe(self) -> str:
        """One line for a notebook: what was loaded and where it runs."""
        raise NotImplementedError

    def predict(self, texts: list[str] | str) -> pd.DataFrame:
        """Per-label probabilities, one row per text (indexed by the text)."""
        texts = check_texts(texts)
        probs = self.probabilities(texts) if texts else np.zeros((0, len(self.labels)), np.float32)
        return pd.DataFrame(probs, columns=self.labels, index=pd.Index(texts, name="text"))
