"""Which stages a config needs, answered once: the CLI's `run`, the notebooks and `ablate` all
call these, so a config behaves the same wherever it is started.

    python -m kagglebert run --config demo      # = run_all(cfg)
"""
from __future__ import annotations

from ..core.config import Config, needs_lm  # needs_lm lives in core: run folders use it to compare configs
from ..core import distributed
from . import eda, lm, submit, train

__all__ = ["fit", "needs_lm", "run_all"]


def fit(cfg: Config) -> dict | None:
    """Everything the classifier needs, reusing what is complete: the LM stage when `needs_lm`,
    then k-fold training. Returns train.main's metrics (None until every fold is done)."""
    if needs_lm(cfg):
        lm.main(cfg)
    return train.main(cfg)


def run_all(cfg: Config) -> dict:
    """EDA → LM fine-tuning (when needed) → k-fold training → submission."""
    distributed.init_from_env()  # under torchrun: join the process group; else nothing
    with distributed.main_first():  # EDA is cheap and writes files: rank 0 alone
        if distributed.is_main():
            eda.main(cfg)
    metrics = fit(cfg)
    if metrics is None:
        return {}
    submission = submit.main(cfg)
    return {"metrics": metrics, "submission": submission}
