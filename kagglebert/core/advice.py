"""Advice for a weak run: what to change when a transformer scores near chance or below a baseline.
The training stage warns with it on the command line; the notebooks' report flags with it."""
from __future__ import annotations

from .config import Config

CHANCE_AUC = 0.5  # the ROC AUC of a random ranking
NEAR_CHANCE_MARGIN = 0.1  # a transformer below 0.6 on these labels learned next to nothing: something is broken


def near_chance(score: float) -> bool:
    return score < CHANCE_AUC + NEAR_CHANCE_MARGIN


def likely_fixes(cfg: Config) -> str:
    """What to change in `cfg` when its transformer scores near chance or below a baseline: only
    the settings that differ from the recipe that works on these labels, each with its value now."""
    train, model, lm = cfg.train, cfg.model, cfg.lm
    fixes = []
    if cfg.data.max_rows:
        fixes.append(f"more rows (data.max_rows = {cfg.data.max_rows} now: a subsample this small is noisy and "
                     "favours the baselines; judge the recipe on the full data)")
    if train.epochs < 2:
        fixes.append(f"at least 2 epochs (train.epochs = {train.epochs} now)")
    if model.pooling != "mean":
        fixes.append(f"mean pooling for sentence encoders such as MiniLM (model.pooling = {model.pooling!r} now)")
    if not 2e-5 <= train.lr <= 6e-5:
        fixes.append(f"encoder lr 2e-5–6e-5 (train.lr = {train.lr:g} now)")
    if train.head_lr < 5e-4:
        fixes.append(f"a fresh head at about 1e-3 (train.head_lr = {train.head_lr:g} now)")
    if train.pos_weight_power == 0:
        fixes.append("rare labels weighted (train.pos_weight_power = 0.5)")
    if model.truncation == "head":
        fixes.append(f"head+tail truncation (model.truncation = 'head' now; model.max_length = {model.max_length})")
    if lm.epochs > 0:
        # the FiT arm (no LM stage) being fine points at the LM stage: it moved the encoder too far
        options = [f"fewer LM epochs (lm.epochs = {lm.epochs} now)"] if lm.epochs > 1 else []
        options.append(f"a lower LM lr (lm.lr = {lm.lr:g} now)")
        if not 5e-4 <= lm.head_lr <= 5e-3:
            options.append(f"about 1e-3 for the fresh MLM head (lm.head_lr = {lm.head_lr:g} now)")
        fixes.append(f"if only this ITPT arm is weak (its FiT twin, lm.epochs = 0, is not), its LM stage: "
                     f"{', '.join(options)}; or no LM stage (lm.epochs = 0)")
    if not fixes:
        return "the settings follow the recipe that works here: check the data (label and text columns) and the loss curve"
    return "likely fixes: " + "; ".join(fixes)
