"""`python -m kagglebert {eda,lm,train,submit,run} --config FILE [--set section.key=value ...]`

Exit status: 0 done; 2 a problem with the input, the config or a run folder (one `error:` line
naming the file, row and column or the key; nothing written); 130 interrupted (Ctrl-C or SIGTERM;
one line; the same command resumes)."""
from __future__ import annotations

import argparse
import logging
import sys

from .core import config as config_mod
from .core import locks, logs
from .core.errors import Interrupted, KagglebertError
from .core.leaderboard import describe
from .analysis import ablate, blend
from .stages import eda, lm, pipeline, predict, submit, train
from .deploy import export

log = logging.getLogger("kagglebert")

STAGES = ("eda", "lm", "train", "submit", "run")
STAGE_MAINS = {"eda": eda.main, "lm": lm.main, "train": train.main, "submit": submit.main}


def run_all(cfg) -> dict:
    result = pipeline.run_all(cfg)
    if not result:
        return {}
    metrics, submission = result["metrics"], result["submission"]
    print(f"OOF {metrics['metric']}: {metrics['oof_auc']:.4f}")
    print_submission(submission)
    return {"metrics": metrics, "submission": str(submission.path)}


def print_submission(submission) -> None:
    print(f"submission: {submission.path}" + (" (sample run: not the full test set; Kaggle would reject it)" if submission.sample_run else ""))
    if submission.leaderboard is not None:  # the released test labels are in the data folder
        print(f"{describe(submission.leaderboard)}; {submission.leaderboard['note']}")
    print(f"submit with: {submission.command}")


def add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="TOML file (default: built-in defaults)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override one config key, e.g. --set train.lr=3e-5 (repeatable)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kagglebert", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in STAGES:
        add_config_args(sub.add_parser(name, help=f"run the {name} stage" if name != "run" else "run every stage"))
    blend = sub.add_parser("blend", help="rank/weighted average of runs sharing folds.csv")
    blend.add_argument("--runs", nargs="+", required=True, help="run names (folders under --runs-dir)")
    blend.add_argument("--name", required=True, help="name of the blend run")
    blend.add_argument("--method", choices=("rank", "weighted", "per-label"), default="weighted",
                       help="one weight vector on the members' ranks (default); one per label column; or equal "
                            "weights (rank). Weights come from OOF only (RESULTS.md: equal weights lost to the "
                            "fine-tuned model alone on the whole sample, weighted beat it)")
    blend.add_argument("--runs-dir", default="runs")
    blend.add_argument("--submissions-dir", default="submissions")
    ablate = sub.add_parser("ablate", help="FiT vs ITPT-FiT with identical folds and seeds")
    add_config_args(ablate)
    ablate.add_argument("--seeds", nargs="+", type=int, default=[0])
    ablate.add_argument("--lm-epochs", nargs="+", type=int, default=None, help="LM lengths to compare (0 = FiT)")
    predict_parser = sub.add_parser("predict", help="score texts with every fold model of a finished run")
    predict_parser.add_argument("--run", required=True, help="run name (a folder under --runs-dir) or the path of a run folder")
    predict_parser.add_argument("--input", required=True, help="CSV with the task's text column, or .txt with one text a line")
    predict_parser.add_argument("--output", help="CSV to write (default: predictions/<run>-<input name>.csv)")
    predict_parser.add_argument("--runs-dir", default="runs")
    predict_parser.add_argument("--device", default="auto", help="auto (cuda → mps → cpu), cpu, cuda, cuda:1, mps")
    predict_parser.add_argument("--batch-size", type=int, default=0, help="texts per batch (default: the run's train.eval_batch_size)")
    export_parser = sub.add_parser("export", help="a finished run as a folder to upload as a Kaggle dataset")
    export_parser.add_argument("--run", required=True, help="run name (a folder under --runs-dir) or the path of a run folder")
    export_parser.add_argument("--to", required=True, help="folder to create: empty, new, or an earlier export of the same run")
    export_parser.add_argument("--dtype", choices=("fp16", "fp32", "bf16"), default="fp16", help="weights of the fold models (default fp16: half the size)")
    export_parser.add_argument("--runs-dir", default="runs")
    export_parser.add_argument("--wheels", help="copy the wheels from this folder (e.g. `make wheels` output) instead of building them")
    return parser


def main(argv: list[str] | None = None) -> int:
    logs.to_stderr()
    args = build_parser().parse_args(argv)
    try:
        if args.command == "blend":
            blend.main(args.runs, args.name, args.method, args.runs_dir, args.submissions_dir)
            return 0
        if args.command == "predict":
            print(predict.main(args.run, args.input, args.output, args.runs_dir, args.device, args.batch_size).summary)
            return 0
        if args.command == "export":
            print(export.main(args.run, args.to, args.dtype, args.runs_dir, args.wheels).summary)
            return 0
        cfg = config_mod.load(args.config, args.overrides)
        if args.command == "ablate":
            ablate.main(cfg, args.seeds, args.lm_epochs)
        elif args.command == "run":
            run_all(cfg)
        else:
            result = STAGE_MAINS[args.command](cfg)
            if args.command == "submit":
                print_submission(result)
    except Interrupted as err:
        print(err, file=sys.stderr)  # the message says where it stopped and how to resume
        return 130
    except KeyboardInterrupt:
        # a Ctrl-C outside a stage's own handling: one line, never the traceback of wherever it landed
        print("interrupted; finished stages and folds are kept: rerun the same command to resume", file=sys.stderr)
        return 130
    except KagglebertError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        # a write or read outside core/atomic's mapping (a library writing its own file): still one line
        where = f"{err.filename}: " if err.filename else ""
        print(f"error: {where}{err.strerror or err}", file=sys.stderr)
        return 2
    finally:
        locks.release_locks()
    return 0
