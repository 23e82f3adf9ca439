"""The GPU smoke script's code path at tiny size on the CPU: every check runs or says why not, in one
table, and a broken check fails it (exit 1)."""
from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.slow  # a 2-process spawn and five tiny trainings: about a minute on 2 cores


def test_gpu_smoke_runs_tiny_on_the_cpu_and_says_what_it_skipped(capsys, tmp_path):
    import json

    from kagglebert.bench.cli import main

    report = main(["--gpu-smoke", "--tiny", "--device", "cpu", "--json", str(tmp_path / "smoke.json")])
    out = capsys.readouterr().out
    assert report is not None and report["ok"]
    checks = {row["check"]: row for row in report["rows"]}
    assert set(checks) == {"classifier fp32", "classifier fp16", "classifier bf16", "2 processes fp32", "masked-LM fp32", "predict fp32"}
    assert checks["classifier fp16"]["status"] == "skipped" and "classifier fp16: skipped, fp16 needs a CUDA GPU" in out
    for name in ("classifier fp32", "classifier bf16", "2 processes fp32", "masked-LM fp32", "predict fp32"):
        assert checks[name]["status"] == "ok" and checks[name]["loss_finite"] and checks[name]["step_ms"] > 0, name
    assert 0 <= checks["classifier bf16"]["max_diff"] <= report["tolerance"]  # CPU bf16 autocast against fp32
    assert "on the CPU, gloo" in checks["2 processes fp32"]["note"]
    assert out.count("\n") >= 8 and "step ms" in out and "peak MiB" in out
    assert json.loads((tmp_path / "smoke.json").read_text())["ok"]


def test_a_prediction_gap_beyond_the_tolerance_fails_the_smoke(monkeypatch):
    from kagglebert.bench import smoke
    from kagglebert.core.tokenization import load_tokenizer
    from kagglebert.core.paths import resolve_model

    monkeypatch.setattr(smoke, "PREDICTION_TOLERANCE", -1.0)  # any difference, even none, is too much
    size = smoke.SIZES["tiny"]
    tokenizer = load_tokenizer(resolve_model("packaged-minilm"))
    n_rows = size["batch"] * (size["warmup"] + size["timed"] + 1)
    tokens = smoke.synthetic_tokens(n_rows, size["max_length"], len(tokenizer), tokenizer.cls_token_id, tokenizer.sep_token_id, seed=0)
    labels = torch.zeros(n_rows, smoke.N_LABELS).numpy()
    rows = smoke.precision_rows(size, torch.device("cpu"), tokenizer, tokens, labels)
    bf16 = next(r for r in rows if r.check == "classifier bf16")
    assert bf16.status == "FAILED" and "differ from fp32" in bf16.note
    assert not smoke.report(rows)["ok"]
