"""The fixed small run behind tests/parity/: a tiny BERT whose weights are drawn by our own seeded
generator (not by transformers' initialiser, which changes between versions), the first 300 rows of
the bundled sample, the LM stage (1 epoch) then 2 folds × 2 epochs of `train`, fp32 on the CPU.

    PYTHONPATH=. OMP_NUM_THREADS=1 .venv/bin/python tests/parity_run.py   # rewrites tests/parity/

tests/parity/oof_reference.csv and lm_reference.json were written by that command on the engine
code BEFORE accelerate took over the training step (commit f596eb8); test_parity.py reruns the
same run on the code of the day and compares."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REFERENCE = HERE / "parity"
REPO = HERE.parent


def tiny_bert(folder: Path) -> Path:
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

    from kagglebert.core.paths import resolve_model

    tokenizer = AutoTokenizer.from_pretrained(resolve_model("packaged-minilm"), use_fast=True)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512, pad_token_id=tokenizer.pad_token_id)
    model = BertForMaskedLM(config)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in sorted(model.named_parameters()):
            if "LayerNorm.weight" in name:
                param.fill_(1.0)
            elif name.endswith("bias"):
                param.zero_()
            else:
                param.copy_(torch.randn(param.shape, generator=g) * 0.02)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def sample(folder: Path) -> Path:
    import pandas as pd

    from kagglebert.core.paths import BUNDLED_SAMPLE

    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in (("train.csv", 300), ("test.csv", 100), ("sample_submission.csv", 100)):
        frame = pd.read_csv(BUNDLED_SAMPLE / name, dtype=str, keep_default_na=False, na_filter=False)
        frame.head(rows).to_csv(folder / name, index=False)
    return folder


def settings(work: Path, model: Path, data: Path) -> list[str]:
    values = {"data.dir": data, "model.name": model, "data.max_rows": 200, "data.n_folds": 2,
              "train.epochs": 2, "train.batch_size": 16, "lm.epochs": 1, "lm.batch_size": 8, "lm.include_test": "false",
              "run.device": "cpu", "train.precision": "fp32", "lm.precision": "fp32",
              "run.runs_dir": work / "runs", "submit.dir": work / "submissions", "run.progress": "false",
              "data.cache_dir": work / "cache"}
    return [a for k, v in values.items() for a in ("--set", f"{k}={v}")]


def run(work: Path) -> tuple[Path, Path]:
    """(oof.csv, lm_metrics.json) of the fixed run, done under `work`."""
    model, data = tiny_bert(work / "tiny-bert"), sample(work / "data")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    for stage in ("lm", "train"):
        proc = subprocess.run([sys.executable, "-m", "kagglebert", stage, "--config", "demo", *settings(work, model, data)],
                              cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
        if proc.returncode:
            raise RuntimeError(proc.stderr[-3000:])
    [lm_dir] = (work / "runs" / "_lm").iterdir()
    return work / "runs" / "demo" / "oof.csv", lm_dir / "lm_metrics.json"


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        oof, lm_metrics = run(Path(tmp))
        REFERENCE.mkdir(exist_ok=True)
        shutil.copy(oof, REFERENCE / "oof_reference.csv")
        metrics = json.loads(lm_metrics.read_text())
        keep = {k: metrics[k] for k in ("perplexity_before", "perplexity_after")}
        keep["loss_curve"] = [e["loss_curve"] for e in metrics["epochs"]]
        (REFERENCE / "lm_reference.json").write_text(json.dumps(keep, indent=1) + "\n")
