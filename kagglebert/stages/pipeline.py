"""Which stages a config needs, answered once: the CLI's `run`, the notebooks and `ablate` all
call these, so a config behaves the same wherever it is started.

    python -m kagglebert run --config demo      # = run_all(cfg)
"""
from __future__ import annotations

from ..core.config import Config
from ..core import distributed
from . import eda, lm, submit, train


def needs_lm(cfg: Config) -> bool:
    """The LM stage runs when lm.epochs > 0 for the kinds that use an encoder: the transformer
    fine-tunes it, `features` embeds with it. TF-IDF has no encoder."""
    return cfg.lm.epochs > 0 and cfg.model.kind in ("transformer", "features")


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
