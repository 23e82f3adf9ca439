"""The benchmark measures what it says: padding counted per batch, synthetic lengths shaped like the
competition's, and a whole (micro-sized) run in one process with every contender and JSON key."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from kagglebert.bench import cli, harness, suite, tables, workload
from kagglebert.bench.profiles import Profile
from kagglebert.core.batching import PadCollator
from kagglebert.core.tokenization import TokenizedTexts


def test_tally_counts_real_and_padded_tokens_per_batch():
    flat = np.arange(1, 11, dtype=np.int32)
    tokens = TokenizedTexts(flat, np.array([0, 2, 7, 10]), np.array([2, 5, 3]))
    tally = harness.Tally(PadCollator(tokens, pad_id=0, pad_multiple=8))
    tally([0, 1])
    tally([2])
    assert tally.batches == [(2, 7, 16), (1, 3, 8)]
    assert tally.window(1, 2) == (1, 3, 8)
    result = harness.Result("x", "cls", 2, 1, 2.0, *tally.window(0, 2), peak_mib=0.0)
    assert abs(result.padding_fraction - (1 - 10 / 24)) < 1e-9
    assert result.samples_per_s == 1.5 and result.tokens_per_s == 5.0


def test_synthetic_lengths_follow_the_competition():
    tokens = workload.synthetic_tokens(20_000, 256, 30522, cls_id=101, sep_id=102, seed=0)
    assert 44 <= np.median(tokens.full_lengths) <= 52
    assert 84 <= tokens.full_lengths.mean() <= 100
    assert tokens.lengths.max() == 256 and tokens[0][0] == 101 and tokens[0][-1] == 102


def test_micro_run_times_every_contender_on_the_same_rows(tmp_path, monkeypatch):
    torch.set_num_threads(1)  # the machine is shared; the numbers do not matter here
    profile = Profile("micro", hidden=32, layers=1, heads=2, intermediate=64, max_length=64, batch_sizes=(4,),
                            warmup_batches=1, timed_batches=3, lm_timed_batches=2, precision="fp32", synthetic=False,
                            tokenize_rows=120, repeats=2)
    report = suite.run(profile, torch.device("cpu"))
    names = [r["contender"] for r in report["results"]]
    assert names == [
        "Trainer, padded to max length", "Trainer, dynamic padding + group by length",
        "kagglebert, buckets, lengths to a multiple of 8",
        "Trainer, packed blocks (run_mlm.py)", "kagglebert, packed, loss at masked positions only",
    ]
    rows = {r["contender"]: r for r in report["results"]}
    cls = [r for r in report["results"] if r["task"] == "cls"]
    lm = [r for r in report["results"] if r["task"] == "lm"]
    # the fairness the benchmark exists for: one shared timed set, one full pass each, same batch size
    assert {(r["steps"], r["samples"], r["real_tokens"]) for r in cls} == {(3, 12, cls[0]["real_tokens"])}
    assert {(r["steps"], r["samples"], r["real_tokens"]) for r in lm} == {(2, 8, 8 * 64)}
    for r in report["results"]:
        assert len(r["pass_seconds"]) == 2 and r["seconds"] == min(r["pass_seconds"]) > 0
        assert len(r["pass_cpu_seconds"]) == 2 and r["cpu_seconds"] == min(r["pass_cpu_seconds"]) > 0
    padded = rows["Trainer, padded to max length"]
    assert padded["padded_tokens"] == 3 * 4 * 64  # every row padded to max_length
    assert rows["kagglebert, buckets, lengths to a multiple of 8"]["padding_fraction"] < padded["padding_fraction"]
    assert rows["Trainer, packed blocks (run_mlm.py)"]["padding_fraction"] == 0.0
    assert padded["ratio"] == 1.0 and padded["cpu_ratio"] == 1.0
    assert report["cls_ratio_vs_trainer_padded"] == rows["kagglebert, buckets, lengths to a multiple of 8"]["ratio"]
    assert report["lm_ratio_vs_trainer_packed"] == rows["kagglebert, packed, loss at masked positions only"]["ratio"]
    assert report["cls_cpu_ratio_vs_trainer_padded"] == rows["kagglebert, buckets, lengths to a multiple of 8"]["cpu_ratio"]
    assert report["lm_cpu_ratio_vs_trainer_packed"] == rows["kagglebert, packed, loss at masked positions only"]["cpu_ratio"]
    assert report["tokenize_cache_speedup"] > 1.0
    assert report["inference"]["comments"] == 4 * 3  # the timed rows
    text = tables.table(report)
    assert "tokenize_cache_speedup" in text and "Trainer, padded to max length" in text and "cls_cpu_ratio_vs_trainer_padded" in text
    # the command line prints that table and writes the report as JSON
    monkeypatch.setattr(cli, "run", lambda profile, device: report)
    assert cli.main(["--quick", "--json", str(tmp_path / "out" / "bench.json")]) is report
    saved = json.loads((tmp_path / "out" / "bench.json").read_text())
    assert saved["results"] == report["results"] and saved["cls_ratio_by_batch"] == {"4": report["cls_ratio_vs_trainer_padded"]}


def fake_contender(name: str, seconds: list[float], samples: list[int], cpu: list[float] | None = None):
    """A contender in the harness's protocol: one `next` to warm up, then one Result per pass."""
    yield None
    for s, n, c in zip(seconds, samples, cpu or [None] * len(seconds)):
        yield harness.Result(name, "cls", 4, 1, s, n, 10 * n, 10 * n, peak_mib=s * 100, cpu_seconds=c)


def test_race_keeps_the_fastest_pass_the_largest_peak_and_the_least_cpu_time():
    results = harness.with_ratios(
        harness.race([fake_contender("a", [2.0, 1.0], [8, 8], cpu=[0.8, 0.9]),
                      fake_contender("b", [0.5, 0.25], [8, 8], cpu=[0.2, 0.3])], repeats=2),
        lambda r: r.samples)
    a, b = results
    assert (a.seconds, a.pass_seconds, a.peak_mib, a.cpu_seconds, a.pass_cpu_seconds) == (1.0, [2.0, 1.0], 200.0, 0.8, [0.8, 0.9])
    assert (b.seconds, b.pass_seconds, b.cpu_seconds) == (0.25, [0.5, 0.25], 0.2)
    assert (a.ratio, b.ratio) == (1.0, 4.0)
    assert (a.cpu_ratio, b.cpu_ratio) == (1.0, pytest.approx(4.0))  # 8 samples per 0.8 vs per 0.2 CPU-seconds


def test_race_refuses_passes_over_different_data():
    with pytest.raises(RuntimeError, match="different data"):
        harness.race([fake_contender("a", [1.0, 1.0], [8, 7])], repeats=2)


@pytest.mark.parametrize("argv, message", [
    (["--device", "nonsense"], "not a torch device"),
    (["--json", "."], "is a folder"),
])
def test_cli_refuses_bad_arguments_before_timing(argv, message, capsys, monkeypatch):
    monkeypatch.setattr(cli, "run", lambda *a: pytest.fail("the benchmark ran despite a bad argument"))
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
