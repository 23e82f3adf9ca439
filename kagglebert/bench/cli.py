"""`python -m kagglebert.bench --quick | --gpu | --gpu-smoke [--tiny] [--device D] [--json PATH]`: pick
the profile and device, run the benchmark (or the GPU smoke checks), print the table, write the report."""
from __future__ import annotations

import argparse
import logging
import os
from dataclasses import replace
from pathlib import Path

import torch

from ..core.atomic import write_json
from ..core.errors import KagglebertError
from .profiles import GPU, QUICK, TINY
from .suite import run
from .tables import table


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        prog="python -m kagglebert.bench",
        description="Throughput benchmark: kagglebert's training loops against transformers' Trainer, in one process, "
                    "on the same token ids, model shapes, batch size and max length.")
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument("--quick", action="store_true", help="tiny BERT, bundled rows, fp32 (default)")
    kind.add_argument("--gpu", action="store_true", help="BERT-base shapes, synthetic competition lengths, bf16/fp16, batch 32 and 128")
    kind.add_argument("--gpu-smoke", action="store_true", help="fp32/fp16/bf16 training steps, 2 processes, masked-LM steps and "
                      "predict, checked and timed in one table (under 5 minutes on one GPU; a tiny model without CUDA)")
    parser.add_argument("--tiny", action="store_true", help="shrink the model and steps (a dry run of the profile's code path)")
    parser.add_argument("--device", default="", help="default: cuda for --gpu when available, else cpu")
    parser.add_argument("--json", type=Path, help="write the results here")
    # --scale: every CPU-side step of a full-size run, each alone (kagglebert.bench.scale)
    parser.add_argument("--scale", type=int, metavar="ROWS", help="time each CPU-side step on ROWS training rows (synthetic unless --data)")
    parser.add_argument("--test-rows", type=int, default=0, metavar="M", help="--scale: test rows (default: ROWS)")
    parser.add_argument("--schema", choices=("2018", "2019"), default="2018", help="--scale: the competition's file layout")
    parser.add_argument("--data", type=Path, help="--scale: a competition folder to use instead of a synthetic one")
    parser.add_argument("--work", type=Path, default=Path("bench-scale"), help="--scale: folder for the synthetic data, caches and logs")
    parser.add_argument("--steps", default="", help="--scale: comma-separated subset of the steps")
    args = parser.parse_args(argv)
    if args.scale is not None:
        from . import scale

        steps = [s for s in args.steps.split(",") if s]
        unknown = [s for s in steps if s not in scale.STEPS]
        if args.scale < 1 or unknown:
            parser.error(f"--scale needs ROWS >= 1 and --steps from {', '.join(scale.STEPS)}")
        return scale.main(args.scale, args.test_rows or args.scale, args.schema, args.work, args.data, steps or None, json_path=args.json)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.gpu_smoke:
        return gpu_smoke(parser, args)
    profile = GPU if args.gpu else QUICK
    if args.tiny:
        profile = replace(profile, name=profile.name + "-tiny", **TINY)
    try:
        device = torch.device(args.device or ("cuda" if args.gpu and torch.cuda.is_available() else "cpu"))
    except RuntimeError:
        parser.error(f"--device {args.device}: not a torch device (cpu, cuda, cuda:1, mps)")
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: this machine has no CUDA device")
    if args.json and args.json.is_dir():  # checked now, not after minutes of timing
        parser.error(f"--json {args.json}: is a folder; give a file name")
    report = run(profile, device)
    print(table(report))
    if args.json:
        try:
            write_json(args.json, report)
        except KagglebertError as err:  # one line, like the main CLI; the table above is already printed
            parser.exit(2, f"error: {err}\n")
    return report


def gpu_smoke(parser, args) -> dict | None:
    """The smoke table; None (exit 1) when a check failed."""
    from .smoke import report, run as run_smoke, table as smoke_table

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    size = "tiny" if args.tiny or device.type != "cuda" else "gpu"
    if size == "tiny" and not args.tiny:
        print("no CUDA device: the tiny model on the CPU (a dry run of the code path, not a measurement)")
    rows = run_smoke(device, size)
    print(smoke_table(rows, device, size))
    result = report(rows)
    if args.json:
        write_json(args.json, result)
    return result if result["ok"] else None
