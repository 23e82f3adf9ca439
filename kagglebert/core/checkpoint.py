"""A trained classifier on disk, loadable without kagglebert's training code: a folder that
transformers' `from_pretrained` understands (the encoder's `config.json` + `model.safetensors` and
the tokenizer files) plus kagglebert's two additions, the classification head and what the head
needs to be used the way it was trained:

    <folder>/config.json, model.safetensors   the encoder (`AutoModel.from_pretrained(folder)`)
             tokenizer.json, tokenizer_config.json, …
             head.safetensors                 `head.weight` (labels × hidden), `head.bias`
             kagglebert.json                  format, task, label_columns, pooling, dropout,
                                              max_length, truncation, head_tokens, dtype, version

Weights only, as safetensors (no pickle: a folder from a Kaggle dataset is safe to load). They are
stored in `train.save_dtype` (fp16 halves a bert-base fold to about 220 MB) and always loaded back
as fp32; mixed precision at inference is chosen by the caller, as in training.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .atomic import write_json
from .config import ModelConfig
from .errors import RunError
from .modeling import Classifier, load_encoder
from .paths import kagglebert_version
from .tasks import TaskSpec
from .tokenization import load_tokenizer, quiet_transformers

FORMAT = 1
META_FILE = "kagglebert.json"
HEAD_FILE = "head.safetensors"
ENCODER_FILES = ("config.json", "model.safetensors")
TOKENIZER_FILE = "tokenizer.json"  # kagglebert needs a fast tokenizer; this file is what makes one
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def cast_state(module: torch.nn.Module, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """The module's tensors on the CPU, floating ones cast to `dtype`; the module is untouched
    (training goes on in fp32 after a save)."""
    return {name: (t.detach().to("cpu", dtype) if t.is_floating_point() else t.detach().to("cpu")).contiguous()
            for name, t in module.state_dict().items()}


def save_classifier(model: Classifier, tokenizer, folder: Path, *, task: TaskSpec, model_cfg: ModelConfig, dtype: str) -> None:
    """Write `model` into `folder`, a fresh temporary folder (the caller wraps this in
    `atomic.atomic_dir`, so the folder appears whole or not at all)."""
    if dtype not in DTYPES:
        raise RunError(f"train.save_dtype = {dtype!r}; choose one of {', '.join(DTYPES)}")
    folder = Path(folder)
    torch_dtype = DTYPES[dtype]
    quiet_transformers()  # no "Writing model shards" bar per fold
    model.encoder.save_pretrained(folder, state_dict=cast_state(model.encoder, torch_dtype), safe_serialization=True)
    # the scored outputs only: heads of auxiliary targets (2019's subtypes) served training, not predictions
    n_labels = len(task.label_columns)
    save_file({f"head.{k}": v[:n_labels].contiguous() for k, v in cast_state(model.head, torch_dtype).items()}, str(folder / HEAD_FILE))
    tokenizer.save_pretrained(folder)
    write_json(folder / META_FILE, {
        "format": FORMAT,
        "task": task.name,
        "label_columns": list(task.label_columns),
        "pooling": model.pooling,
        "dropout": float(model.dropout.p),
        "max_length": model_cfg.max_length,
        "truncation": model_cfg.truncation,
        "head_tokens": model_cfg.head_tokens,
        "dtype": dtype,
        "kagglebert_version": kagglebert_version(),
    })


def read_meta(folder: Path) -> dict:
    folder = Path(folder)
    if not folder.is_dir():
        raise RunError(f"{folder}: no saved model (folder missing)")
    missing = [name for name in (META_FILE, *ENCODER_FILES, HEAD_FILE, TOKENIZER_FILE) if not (folder / name).is_file()]
    if missing:
        raise RunError(f"{folder}: incomplete saved model: {missing[0]} is missing")
    try:
        meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RunError(f"{folder / META_FILE}: not valid JSON ({err})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise RunError(f"{folder / META_FILE}: unknown format {meta.get('format') if isinstance(meta, dict) else meta!r}; "
                       f"this kagglebert reads format {FORMAT}")
    return meta


def load_classifier(folder: Path, *, device: torch.device, task: TaskSpec | None = None) -> tuple[Classifier, object, dict]:
    """(model in eval mode on `device`, tokenizer, the kagglebert.json metadata). Refused with one
    line when a file is missing or the model was trained for another task or other labels."""
    folder = Path(folder)
    meta = read_meta(folder)
    if task is not None and (meta.get("task") != task.name or meta.get("label_columns") != list(task.label_columns)):
        raise RunError(f"{folder}: a model for task {meta.get('task')!r} with labels {meta.get('label_columns')}, "
                       f"not {task.name!r} with {list(task.label_columns)}")
    try:
        # fp32 on the CPU whatever the stored dtype: fp16/bf16 weights are upcast on load
        encoder = load_encoder(str(folder), require_all_weights=True)
        head_state = {k.removeprefix("head."): v.float() for k, v in load_file(str(folder / HEAD_FILE)).items()}
    except (OSError, SafetensorError, ValueError) as err:
        raise RunError(f"{folder}: cannot load the saved model: {str(err).splitlines()[0] if str(err) else type(err).__name__}") from None
    model = Classifier(encoder, len(meta["label_columns"]), meta["pooling"], meta["dropout"])
    try:
        model.head.load_state_dict(head_state)
    except RuntimeError as err:
        raise RunError(f"{folder / HEAD_FILE}: does not fit the encoder ({str(err).splitlines()[-1].strip()})") from None
    tokenizer = load_tokenizer(str(folder))
    return model.to(device).eval(), tokenizer, meta
