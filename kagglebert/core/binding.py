"""What a run folder is bound to: the settings that change what it computes (a reopened run with
other values is refused) and its inputs (inputs.json: the data files', the checkpoint's and the
LM stage output's fingerprints), and the key of the shared LM stage output those determine."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from . import config as config_mod
from .atomic import read_json
from .config import Config
from .errors import RunError

# keys that do not change what a run computes. data.dir is one: inputs.json binds the run to the
# files' content, so the same files found elsewhere (a clone vs /kaggle/input) are the same run
NEUTRAL_KEYS = {
    "run.device", "run.progress", "run.runs_dir", "data.cache_dir", "data.dir", "data.require_competition",
    "train.log_every", "lm.log_every", "train.eval_batch_size", "train.folds", "submit.dir", "submit.name", "eda.examples_per_label",
    # when checkpoints are written inside an epoch: a resumed run ends where an uninterrupted one does
    "train.checkpoint_minutes", "train.checkpoint_steps", "lm.checkpoint_minutes", "lm.checkpoint_steps",
}


def flat(cfg_dict: dict) -> dict:
    return {f"{section}.{key}": value for section, values in cfg_dict.items() for key, value in values.items()}


# what an LM stage's output depends on: runs equal on these share one trained LM
LM_KEY_FIELDS = ("run.task", "run.seed", "data.dir", "data.max_rows", "data.max_test_rows", "data.fold_seed", "model.name")


def lm_key(cfg: Config, inputs: dict | None = None) -> str:
    """A short hash of every setting and input the LM stage's result depends on (and nothing else):
    the data files' and the checkpoint's fingerprints are part of it, so other data or another
    checkpoint under the same paths never reuses a stale LM."""
    values = flat(cfg.to_dict())
    fields = LM_KEY_FIELDS
    if inputs:
        # the data files' content replaces their folder: the same files elsewhere share the LM
        fields = tuple(k for k in LM_KEY_FIELDS if k != "data.dir")
    picked = {k: values[k] for k in fields} | {k: v for k, v in values.items() if k.startswith("lm.") and k not in NEUTRAL_KEYS}
    if inputs:
        picked["inputs"] = {"data": inputs.get("data"), "model": (inputs.get("model") or {}).get("files")}
    text = json.dumps(picked, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def read_inputs(path: Path) -> dict:
    try:
        return read_json(path)
    except (OSError, ValueError) as err:
        raise RunError(f"{path}: unreadable ({err}); delete the run folder to start over") from None


def dumps_inputs(inputs: dict) -> str:
    return json.dumps(inputs, indent=2, sort_keys=True) + "\n"


def describe_changes(old: dict, new: dict) -> list[str]:
    """What differs between two inputs.json contents, in words (one item per file)."""
    changes = []
    if old.get("kagglebert") != new.get("kagglebert"):
        changes.append(f"kagglebert {old.get('kagglebert')} → {new.get('kagglebert')}")
    old_data, new_data = old.get("data") or {}, new.get("data") or {}
    for role in sorted(set(old_data) | set(new_data)):
        if old_data.get(role) != new_data.get(role):
            changes.append(f"{role}: sha256 {str(old_data.get(role))[:10]}… → {str(new_data.get(role))[:10]}…")
    old_model = (old.get("model") or {}).get("files") or {}
    new_model = (new.get("model") or {}).get("files") or {}
    changed = sorted(n for n in set(old_model) | set(new_model) if old_model.get(n) != new_model.get(n))
    if changed:
        changes.append(f"model files changed: {', '.join(changed)}")
    old_lm, new_lm = old.get("lm_output"), new.get("lm_output")
    if old_lm and new_lm and old_lm != new_lm:
        changes.append(f"LM stage output changed: {', '.join(sorted(n for n in set(old_lm) | set(new_lm) if old_lm.get(n) != new_lm.get(n)))}")
    return changes


# what each kind of classifier reads besides run.*, data.*, model.kind and (when needs_lm) lm.*:
# the other model.* / train.* keys cannot change its results (TF-IDF has no encoder, no epochs)
KIND_READS = {
    "tfidf": {"train.C"},
    "features": {"train.C", "train.precision", "train.pad_multiple", "model.name", "model.max_length",
                 "model.truncation", "model.head_tokens", "model.pooling"},
}


def unread_keys(cfg: Config) -> set[str]:
    """Keys `cfg` never reads: lm.* without an LM stage, and what its model.kind ignores."""
    keys = set(config_mod.flat_keys())
    unread = set() if config_mod.needs_lm(cfg) else {k for k in keys if k.startswith("lm.")}
    if cfg.model.kind in KIND_READS:
        unread |= {k for k in keys if k.startswith(("model.", "train.")) and k != "model.kind"} - KIND_READS[cfg.model.kind]
    return unread


def changed_settings(old_cfg: Config, cfg: Config) -> list[str]:
    """Keys whose change changes what the run computes. A key is ignored only when neither config
    reads it (lm.epochs 1 → 0 is a change; lm.lr under lm.epochs = 0 on both sides is not)."""
    old, new = flat(old_cfg.to_dict()), flat(cfg.to_dict())
    ignored = NEUTRAL_KEYS | (unread_keys(old_cfg) & unread_keys(cfg))
    return [k for k in new if k not in ignored and old.get(k) != new[k]]


def check_config_unchanged(folder: Path, cfg: Config) -> None:
    saved = folder / "config.toml"
    if not saved.is_file():
        return
    saved_cfg = config_mod.load(saved)
    old, new = flat(saved_cfg.to_dict()), flat(cfg.to_dict())
    changed = changed_settings(saved_cfg, cfg)
    if changed:
        shown = "; ".join(f"{k}: {old.get(k)!r} → {new[k]!r}" for k in changed[:4])
        raise RunError(
            f"{folder}: this run was made with another config ({shown}). "
            f"Use a new name (--set run.name=...) or delete {folder} to start over"
        )


def check_inputs_unchanged(folder: Path, inputs: dict) -> dict:
    """The stored inputs.json merged with `inputs`; refused when a recorded input differs."""
    path = folder / "inputs.json"
    if not path.is_file():
        return dict(inputs)
    old = read_inputs(path)
    changes = describe_changes(old, inputs)
    if changes:
        raise RunError(
            f"{folder}: this run was made from other inputs ({'; '.join(changes[:3])}). "
            f"Use a new name (--set run.name=...) or delete {folder} to start over"
        )
    return {**old, **{k: v for k, v in inputs.items() if v is not None}}
