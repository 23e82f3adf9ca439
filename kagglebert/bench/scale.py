"""`python -m kagglebert.bench --scale ROWS [--test-rows M] [--schema 2018|2019] [--data DIR]`: every
CPU-side step of a full-size run, each ALONE in its own process, timed, with its peak memory.

    python -m kagglebert.bench --scale 159571 --test-rows 153164 --schema 2018 --work /tmp/kb-scale-2018
    python -m kagglebert.bench --scale 1804874 --test-rows 97320 --schema 2019 --work /tmp/kb-scale-2019

Without --data, a synthetic competition folder of that size is written first under --work
(`kagglebert.bench.synthetic`; its rule is documented there) and reused by a later call with the
same sizes. Each step runs in a fresh `python -m kagglebert.bench.scale --step NAME` process with its
own empty tokenization cache, except `lm-pack` (it packs the corpus `lm-corpus` cached: packing
alone). `seconds` is the step's own work as the child timed it; `process CPU s` the process's
user + system CPU time (on a shared machine it moves far less than wall time does; on 2 cores a
step using both can show more CPU than wall seconds); `wall` is the whole process
(interpreter start, imports, setup such as loading the data a step reads); `peak RSS` is the largest
resident memory of the process and its children (sampled every 0.1 s with psutil, and the child's
own `ru_maxrss`, whichever is larger). Steps (the model is the packaged MiniLM's tokenizer, the
demo config's max_length 128 with head+tail, 5 folds):

    load          read + check train.csv, test.csv, sample_submission.csv (data_checks.check_data)
    folds         the stratified folds (setup: load)
    eda           the EDA stage, end to end (a cold cache: token lengths from a random sample)
    tokenize-train, tokenize-test   the classifier's token ids, cold cache (setup: load)
    lm-corpus     the LM corpus: every train + test text, untruncated, cold cache, packed (setup: load)
    lm-pack       the packed LM blocks from lm-corpus's cache (setup: load)
    tfidf         the TF-IDF baseline, 5 folds, end to end (train.main with model.kind = tfidf)
    submit        a test_pred.csv of every test row checked against sample_submission and written
    predict-prep  predict's preprocessing of test.csv: read, check, tokenize (no cache)
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

STEPS = ("load", "folds", "eda", "tokenize-train", "tokenize-test", "lm-corpus", "lm-pack", "tfidf", "submit", "predict-prep")
SCHEMA_TASKS = {"2018": "jigsaw-toxic-2018", "2019": "jigsaw-bias-2019"}
RESULT_PREFIX = "SCALE-RESULT "
SAMPLE_S = 0.1


# ---- the child: one step ----


def step_config(data_dir: Path, work: Path, task: str, step: str, n_folds: int):
    from ..core import config as config_mod

    cache = work / ("cache-lm" if step in ("lm-corpus", "lm-pack") else f"cache-{step}")
    overrides = [f"data.dir={data_dir}", f"run.task={task}", "data.max_rows=0", "data.max_test_rows=0", f"data.n_folds={n_folds}",
                 f"run.runs_dir={work / 'runs'}", f"run.name=scale-{step}", f"data.cache_dir={cache}", f"submit.dir={work / 'submissions'}",
                 "run.progress=true", "lm.include_test=true"]
    if step == "tfidf":
        overrides += ["model.kind=tfidf"]
    return config_mod.load("demo", overrides)


def run_step(step: str, data_dir: Path, work: Path, task_name: str, n_folds: int) -> dict:
    """One step, timed; returns {"seconds": …, **details}. Setup (the data a step reads) is not timed."""
    from ..core import data_checks
    from ..core.paths import cache_dir, resolve_model
    from ..core.tasks import get_task
    from ..core.tokenization import load_tokenizer, tokenize

    cfg = step_config(data_dir, work, task_name, step, n_folds)
    task = get_task(cfg.run.task)
    detail: dict = {}
    if step == "load":
        began = time.perf_counter()
        data = data_checks.check_data(cfg, task)
        seconds = time.perf_counter() - began
        detail = {"train_rows": len(data.train), "test_rows": len(data.test)}
        return {"seconds": seconds, **detail}
    if step == "eda":
        from ..stages import eda

        began = time.perf_counter()
        result = eda.main(cfg)
        return {"seconds": time.perf_counter() - began, "token_lengths": result.summary.get("token_lengths_from")}
    if step == "tfidf":
        from ..stages import train

        began = time.perf_counter()
        metrics = train.main(cfg)
        return {"seconds": time.perf_counter() - began, "oof_auc": metrics["oof_auc"]}
    if step in ("lm-corpus", "lm-pack"):
        from ..core.runs import open_run
        from ..stages import lm

        run = open_run(cfg)  # setup: its preflight loads and checks the data, once, as a real run does
        tokenizer = load_tokenizer(resolve_model(cfg.model.name))
        began = time.perf_counter()
        train_blocks, heldout, n_tokens = lm.build_corpus(run, tokenizer)
        return {"seconds": time.perf_counter() - began, "blocks": len(train_blocks) + len(heldout), "tokens": n_tokens}

    data = data_checks.check_data(cfg, task)  # setup for the steps below
    if step == "folds":
        from ..core.folds import make_folds

        began = time.perf_counter()
        make_folds(data.train[task.id_column], task.stratify_targets(data.train), cfg.data.n_folds, cfg.data.fold_seed)
        return {"seconds": time.perf_counter() - began}
    if step in ("tokenize-train", "tokenize-test"):
        tokenizer = load_tokenizer(resolve_model(cfg.model.name))
        texts = data.train_texts if step == "tokenize-train" else data.test_texts
        began = time.perf_counter()
        tokens = tokenize(tokenizer, texts, cfg.model.max_length, cfg.model.truncation, cfg.model.head_tokens, cache_dir=cache_dir(cfg))
        return {"seconds": time.perf_counter() - began, "texts": len(tokens), "tokens": int(tokens.lengths.sum()),
                "memory_mapped": isinstance(tokens.flat, np.memmap)}
    if step == "submit":
        import pandas as pd

        from ..core.atomic import write_csv
        from ..stages.submit import submit_predictions

        pred = pd.DataFrame(np.random.default_rng(0).random((len(data.test), len(task.label_columns)), dtype=np.float32),
                            columns=task.label_columns)
        pred.insert(0, task.id_column, data.test[task.id_column].to_numpy())
        pred_path = work / "scale-submit-test_pred.csv"
        write_csv(pred_path, pred)
        out = work / "submissions" / "scale-submit.csv"
        out.unlink(missing_ok=True)
        began = time.perf_counter()
        submission = submit_predictions(pred_path, task, str(data_dir), out, "scale benchmark")
        return {"seconds": time.perf_counter() - began, "rows": len(submission.frame)}
    if step == "predict-prep":
        from ..core.data import find_file
        from ..stages.predict import read_input

        tokenizer = load_tokenizer(resolve_model(cfg.model.name))
        began = time.perf_counter()
        inputs = read_input(find_file(data.dir, task.test_file), task)
        tokens = tokenize(tokenizer, inputs.texts, cfg.model.max_length, cfg.model.truncation, cfg.model.head_tokens)
        return {"seconds": time.perf_counter() - began, "texts": len(tokens)}
    raise ValueError(f"unknown step {step!r}")


def child_main(args) -> int:
    from ..core.errors import KagglebertError

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        result = run_step(args.step, args.data, args.work, args.task, args.folds)
    except KagglebertError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    result["process_cpu_s"] = own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime  # steadier than wall on a shared machine
    result["self_maxrss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20  # kB on Linux
    result["children_maxrss_gb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2 ** 20
    print(RESULT_PREFIX + json.dumps(result, default=str), flush=True)
    return 0


# ---- the parent: one process per step ----


def tree_rss(proc) -> int:
    """Resident bytes of a psutil process and its descendants (0 once gone)."""
    import psutil

    total = 0
    try:
        for p in [proc, *proc.children(recursive=True)]:
            try:
                total += p.memory_info().rss
            except psutil.Error:
                pass
    except psutil.Error:
        pass
    return total


def measure(step: str, data_dir: Path, work: Path, task: str, n_folds: int, timeout: float) -> dict:
    import psutil

    cmd = [sys.executable, "-m", "kagglebert.bench.scale", "--step", step, "--data", str(data_dir), "--work", str(work),
           "--task", task, "--folds", str(n_folds)]
    log_path = work / f"step-{step}.log"
    began = time.perf_counter()
    with open(log_path, "w") as log_file:
        child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log_file, text=True)
        watched = psutil.Process(child.pid)
        peak = 0
        while child.poll() is None:
            peak = max(peak, tree_rss(watched))
            if time.perf_counter() - began > timeout:
                child.kill()
                break
            time.sleep(SAMPLE_S)
        out = child.stdout.read()
        child.wait()
    wall = time.perf_counter() - began
    row = {"step": step, "wall": wall, "rc": child.returncode, "log": str(log_path)}
    for line in out.splitlines():
        if line.startswith(RESULT_PREFIX):
            row.update(json.loads(line[len(RESULT_PREFIX):]))
    row["peak_rss_gb"] = max(peak / 2 ** 30, row.get("self_maxrss_gb", 0.0), row.get("children_maxrss_gb", 0.0))
    if child.returncode != 0:
        tail = log_path.read_text(errors="replace").strip().splitlines()[-1:] or ["(no output)"]
        row["error"] = "timed out" if wall > timeout else tail[0][:200]
    return row


def synthetic_folder(work: Path, rows: int, test_rows: int, schema: str) -> Path:
    from .synthetic import build

    folder = work / f"data-{schema}-{rows}-{test_rows}"
    done = folder / ".complete"
    if not done.is_file():
        began = time.perf_counter()
        build(folder, rows, test_rows, schema)
        done.write_text(f"{time.perf_counter() - began:.0f} s\n")
    return folder


def table(rows: list[dict], header: str) -> str:
    lines = [header, "", "| step | seconds | process wall s | process CPU s | peak RSS GB | notes |", "|---|---:|---:|---:|---:|---|"]
    for r in rows:
        notes = r.get("error") or ", ".join(f"{k} {v}" for k, v in r.items()
                                            if k in ("train_rows", "test_rows", "texts", "tokens", "blocks", "oof_auc", "rows", "memory_mapped", "token_lengths"))
        seconds = f"{r['seconds']:.1f}" if "seconds" in r else "-"
        cpu = f"{r['process_cpu_s']:.1f}" if "process_cpu_s" in r else "-"
        lines.append(f"| {r['step']} | {seconds} | {r['wall']:.1f} | {cpu} | {r['peak_rss_gb']:.2f} | {notes} |")
    return "\n".join(lines)


def main(rows: int, test_rows: int, schema: str, work: Path, data_dir: Path | None = None, steps: list[str] | None = None,
         n_folds: int = 5, timeout: float = 7200, json_path: Path | None = None) -> dict:
    from ..core.tasks import TASKS

    task = SCHEMA_TASKS[schema]
    if task not in TASKS:
        raise SystemExit(f"error: --schema {schema}: task {task!r} is not in this kagglebert (known: {', '.join(TASKS)})")
    work = Path(work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")  # the child tokenizes on every core, as a stage does
    data_dir = Path(data_dir).resolve() if data_dir else synthetic_folder(work, rows, test_rows, schema)
    results = []
    for step in steps or STEPS:
        if step == "lm-pack" and not any(r["step"] == "lm-corpus" for r in results):
            results.append(measure("lm-corpus", data_dir, work, task, n_folds, timeout))  # lm-pack packs its cache
        row = measure(step, data_dir, work, task, n_folds, timeout)
        results.append(row)
        print(f"{step}: {row.get('seconds', float('nan')):.1f} s (process {row['wall']:.1f} s), peak {row['peak_rss_gb']:.2f} GB"
              + (f" — {row['error']}" if "error" in row else ""), flush=True)
    import platform

    report = {"rows": rows, "test_rows": test_rows, "schema": schema, "data_dir": str(data_dir), "cpus": os.cpu_count(),
              "machine": platform.platform(), "steps": results}
    header = (f"Scale benchmark: {schema} schema, {rows:,} training / {test_rows:,} test rows ({data_dir}), "
              f"{os.cpu_count()} CPUs, each step alone")
    print(table(results, header))
    if json_path:
        from ..core.atomic import write_json

        write_json(json_path, report)
    return report


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m kagglebert.bench.scale", description="one step of the scale benchmark (run by --scale)")
    parser.add_argument("--step", choices=STEPS, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--task", default="jigsaw-toxic-2018")
    parser.add_argument("--folds", type=int, default=5)
    sys.exit(child_main(parser.parse_args()))
