"""One trained run, whatever its model kind: checked, then loaded."""
from __future__ import annotations

import torch

from ...core.errors import RunError
from ...core.runs import Run
from . import linear, transformer
from .common import ServedRun

KINDS = {"transformer": transformer, "tfidf": linear, "features": linear}


def kind_module(run: Run):
    try:
        return KINDS[run.cfg.model.kind]
    except KeyError:
        raise RunError(f"{run.config_path}: model.kind = {run.cfg.model.kind!r}; predict serves "
                       f"{', '.join(KINDS)}") from None


def check_servable(run: Run) -> None:
    """Every check that needs no weights loaded: a bad run fails in a second."""
    kind_module(run).check_servable(run)


def load(run: Run, device: torch.device, batch_size: int) -> ServedRun:
    return kind_module(run).load(run, device, batch_size)
