"""Bad inputs, bad settings and faults, each through the real CLI: exit status 2 (130 for an
interrupt), exactly one `error:` line on stderr that names the file, row and column or the config
key, no traceback, and the runs and submissions folders exactly as they were (nothing written
before the inputs are checked).

Most cases fail in preflight, so they run in-process (`kagglebert.cli.main`, stderr captured);
a handful run as real subprocesses (`python -m kagglebert`), where stderr is checked whole.
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch

from kagglebert import cli
from kagglebert.core import config, data_checks, fingerprints, paths, preflight
from kagglebert.core.tasks import JIGSAW_TOXIC_2018 as TASK
from kagglebert.core.errors import Interrupted
from kagglebert.core.runs import read_run

from conftest import cli_env, read_raw_csv, small_run_overrides

# ---------------------------------------------------------------------------------------------
# the table

LABELS = TASK.label_columns


@dataclass
class Case:
    """`prepare(ctx)` edits the copies in ctx (data folder, model folder, config file) and returns
    extra CLI arguments; `expect` are fragments of the error line (`{data}`, `{model}`, `{work}`
    are filled in)."""

    expect: tuple[str, ...]
    prepare: Callable[["Context"], list[str]] = lambda ctx: []
    command: str = "run"
    skip_if: Callable[[], bool] = lambda: False
    in_process: bool = True  # False: only in a real process (the hub's offline switch is read at import)


@dataclass
class Context:
    data: Path
    model: Path
    work: Path
    tmp: Path
    extra: list[str] = field(default_factory=list)


def setting(*pairs: str) -> Callable[[Context], list[str]]:
    def prepare(ctx: Context) -> list[str]:
        out = []
        for pair in pairs:
            out += ["--set", pair]
        return out

    return prepare


def edit_csv(name: str, edit: Callable) -> Callable[[Context], list[str]]:
    """Rewrite data/<name> after `edit(frame)` changed it in place (cells stay strings)."""

    def prepare(ctx: Context) -> list[str]:
        frame = read_raw_csv(ctx.data / name)
        edit(frame)
        frame.to_csv(ctx.data / name, index=False)
        return []

    return prepare


def raw_bytes(name: str, make: Callable[[bytes], bytes]) -> Callable[[Context], list[str]]:
    def prepare(ctx: Context) -> list[str]:
        path = ctx.data / name
        path.write_bytes(make(path.read_bytes()))
        return []

    return prepare


def set_cell(row: int, column: str, value: str):
    def edit(frame):
        frame.loc[row, column] = value

    return edit


def header_only(content: bytes) -> bytes:
    return content.split(b"\n", 1)[0] + b"\n"


def latin1_in_row_3(name: str) -> Callable[[Context], list[str]]:
    """Row 3's comment gets a Latin-1 'é' (byte 0xe9): not UTF-8."""

    def prepare(ctx: Context) -> list[str]:
        frame = read_raw_csv(ctx.data / name)
        frame.loc[2, "comment_text"] = "MARKER " + frame.loc[2, "comment_text"]
        frame.to_csv(ctx.data / name, index=False)
        path = ctx.data / name
        path.write_bytes(path.read_bytes().replace(b"MARKER", b"caf\xe9", 1))
        return []

    return prepare


def duplicate_label_header(content: bytes) -> bytes:
    lines = content.split(b"\n")
    lines[0] = lines[0] + b",toxic"
    return b"\n".join([lines[0]] + [line + b",1" if line else line for line in lines[1:]])


def zipped(name: str, members: dict[str, bytes] | None = None, garbage: bool = False):
    def prepare(ctx: Context) -> list[str]:
        path = ctx.data / name
        content = path.read_bytes()
        path.unlink()
        target = ctx.data / f"{name}.zip"
        if garbage:
            target.write_bytes(b"PK\x03\x04 this is not really a zip archive" + content[:200])
        else:
            with zipfile.ZipFile(target, "w") as archive:
                for member, data in (members or {name: content}).items():
                    archive.writestr(member, data if data else content)
        return []

    return prepare


def remove_data(name: str):
    def prepare(ctx: Context) -> list[str]:
        (ctx.data / name).unlink()
        return []

    return prepare


def train_csv_is_a_folder(ctx: Context) -> list[str]:
    (ctx.data / "train.csv").unlink()
    (ctx.data / "train.csv").mkdir()
    return []


def model_without(*names: str):
    def prepare(ctx: Context) -> list[str]:
        for name in names:
            (ctx.model / name).unlink(missing_ok=True)  # vocab.txt: saved by transformers < 5 only
        return []

    return prepare


def empty_model(ctx: Context) -> list[str]:
    for path in ctx.model.iterdir():
        path.unlink()
    return []


def tiny_vocabulary(ctx: Context) -> list[str]:
    """The 5-token tokenizer a folder without the model's tokenizer used to get."""
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        (ctx.model / name).unlink(missing_ok=True)
    (ctx.model / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n")
    return []


def write_model_file(name: str, content: bytes):
    def prepare(ctx: Context) -> list[str]:
        (ctx.model / name).write_bytes(content)
        return []

    return prepare


def config_file(content: bytes):
    def prepare(ctx: Context) -> list[str]:
        path = ctx.tmp / "my-config.toml"
        path.write_bytes(content)
        return ["--config", str(path)]

    return prepare


def model_is_a_file(ctx: Context) -> list[str]:
    return ["--set", f"model.name={ctx.model / 'config.json'}"]


def missing_model(ctx: Context) -> list[str]:
    return ["--set", f"model.name={ctx.tmp / 'no-such-model'}"]


def missing_data_dir(ctx: Context) -> list[str]:
    return ["--set", f"data.dir={ctx.tmp / 'no-such-data'}"]


CASES: dict[str, Case] = {
    # ---- config values: ranges and types of every kind of key ----
    "negative lr": Case(("train.lr = -1.0", "above 0"), setting("train.lr=-1e0")),
    "zero lm lr": Case(("lm.lr = 0.0",), setting("lm.lr=0")),
    "nan lr": Case(("train.lr = nan",), setting("train.lr=nan")),
    "dropout 1.5": Case(("model.dropout = 1.5", "[0.0, 1.0)"), setting("model.dropout=1.5")),
    "dropout negative": Case(("model.dropout = -0.1",), setting("model.dropout=-0.1")),
    "eval_batch_size 0": Case(("train.eval_batch_size = 0", "at least 1"), setting("train.eval_batch_size=0")),
    "log_every 0": Case(("train.log_every = 0", "at least 1"), setting("train.log_every=0")),
    "max_rows 5": Case(("data.max_rows = 5", "use 0 (all rows) or at least 20"), setting("data.max_rows=5")),
    "max_rows negative": Case(("data.max_rows = -5",), setting("data.max_rows=-5")),
    "heldout_frac 1.0": Case(("lm.heldout_frac = 1.0", "(0.0, 0.5]"), setting("lm.heldout_frac=1.0")),
    "heldout_frac 0": Case(("lm.heldout_frac = 0.0",), setting("lm.heldout_frac=0")),
    "mlm_probability 0": Case(("lm.mlm_probability = 0.0", "(0.0, 1.0)"), setting("lm.mlm_probability=0")),
    "mlm_probability 1": Case(("lm.mlm_probability = 1.0",), setting("lm.mlm_probability=1.0")),
    "train epochs 0": Case(("train.epochs = 0", "at least 1"), setting("train.epochs=0")),
    "warmup_ratio 1": Case(("train.warmup_ratio = 1.0",), setting("train.warmup_ratio=1.0")),
    "layer_decay 0": Case(("train.layer_decay = 0.0",), setting("train.layer_decay=0")),
    "negative seed": Case(("run.seed = -1",), setting("run.seed=-1")),
    "n_folds 1": Case(("data.n_folds = 1; need at least 2",), setting("data.n_folds=1")),
    "n_folds above rows": Case(("{data}/train.csv: 300 data rows for data.n_folds = 400",), setting("data.n_folds=400", "data.max_rows=0")),
    "folds not ints": Case(("train.folds = ['a']", "ints"), setting('train.folds=["a"]')),
    "fold out of range": Case(("train.folds = [2]: fold 2 is outside 0..1",), setting("train.folds=[2]")),
    "fold listed twice": Case(("train.folds = [0, 0]: a fold is listed twice",), setting("train.folds=[0, 0]")),
    "unknown key": Case(("--set train.lrr=1e-4: unknown key 'train.lrr'",), setting("train.lrr=1e-4")),
    "wrong type": Case(("train.epochs must be int, got str 'two'",), setting("train.epochs=two")),
    "bad choice": Case(("model.truncation = 'middle'; choose one of",), setting("model.truncation=middle")),
    "unknown task": Case(("run.task = 'jigsaw-2077': known tasks are jigsaw-toxic-2018",), setting("run.task=jigsaw-2077")),
    "negative lm epochs": Case(("lm.epochs = -1",), setting("lm.epochs=-1")),
    "negative fold_seed": Case(("data.fold_seed = -3",), setting("data.fold_seed=-3")),
    # ---- the device ----
    "device tpu": Case(("run.device = 'tpu'",), setting("run.device=tpu")),
    "device cuda without a GPU": Case(("run.device = 'cuda': no CUDA GPU",), setting("run.device=cuda"),
                                      skip_if=torch.cuda.is_available),
    "device cuda:7": Case(("run.device = 'cuda:7'",), setting("run.device=cuda:7"),
                          skip_if=lambda: torch.cuda.device_count() > 7),
    "device mps missing": Case(("run.device = 'mps'",), setting("run.device=mps"),
                               skip_if=lambda: bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())),
    # ---- names that would write outside their folder ----
    "run.name with ..": Case(("run.name = '../x': use a plain folder name",), setting("run.name=../x")),
    "run.name absolute": Case(("run.name = '/tmp/x'",), setting("run.name=/tmp/x")),
    "run.name hidden": Case(("run.name = '.x'",), setting("run.name=.x")),
    "run.name _lm": Case(("run.name = '_lm'",), setting("run.name=_lm")),
    "submit.name with ..": Case(("submit.name = '../x': use a plain folder name",), setting("submit.name=../x")),
    "submit.name absolute": Case(("submit.name = '/tmp/evil'",), setting("submit.name=/tmp/evil")),
    "submit.name backslash": Case(("submit.name = 'a\\\\b'",), setting("submit.name=a\\b")),
    # found before training, not when the submission is written after it
    "submit.dir under a file": Case(("submit.dir = ", "train.csv/subs': ", "train.csv is not a folder"),
                                    lambda ctx: ["--set", f"submit.dir={ctx.data / 'train.csv' / 'subs'}"]),
    "submit.dir not writable": Case(("submit.dir = '/proc/kb-subs': cannot write in /proc",), setting("submit.dir=/proc/kb-subs")),
    # ---- the config file itself ----
    "config not UTF-8": Case(("my-config.toml: line 2: not UTF-8 text (byte 0xe9)",),
                             config_file(b"[run]\nname = \"caf\xe9\"\n")),
    "config not TOML": Case(("my-config.toml: not valid TOML",), config_file(b"[train\nepochs = 2\n")),
    "config missing": Case(("nope.toml: config file not found",), lambda ctx: ["--config", str(ctx.tmp / "nope.toml")]),
    # ---- the data files ----
    "data.dir missing": Case(("data.dir = ", "no-such-data': no such folder"), missing_data_dir),
    "data.dir is a file": Case(("data.dir = ", "train.csv': is a file; give the folder"), lambda ctx: ["--set", f"data.dir={ctx.data / 'train.csv'}"]),
    "train.csv is a folder": Case(("{data}/train.csv: file not found",), train_csv_is_a_folder),
    "missing column": Case(("{data}/train.csv: row 0 (header), column 'toxic': missing",), edit_csv("train.csv", lambda f: f.drop(columns="toxic", inplace=True))),
    "duplicate id": Case(("{data}/train.csv: row 8, column 'id': duplicate id",), edit_csv("train.csv", lambda f: f.__setitem__("id", f["id"].where(f.index != 7, f["id"][2])))),
    "label 2": Case(("{data}/train.csv: row 5, column 'obscene': value '2' is not 0 or 1",), edit_csv("train.csv", set_cell(4, "obscene", "2"))),
    "label yes": Case(("{data}/train.csv: row 11, column 'insult': value 'yes' is not 0 or 1",), edit_csv("train.csv", set_cell(10, "insult", "yes"))),
    "label inf": Case(("{data}/train.csv: row 2, column 'threat': value 'inf' is not 0 or 1",), edit_csv("train.csv", set_cell(1, "threat", "inf"))),
    "label empty": Case(("{data}/train.csv: row 9, column 'toxic': value '' is not 0 or 1",), edit_csv("train.csv", set_cell(8, "toxic", ""))),
    "duplicate label header": Case(("{data}/train.csv: row 0 (header), column 'toxic': appears twice (columns 3 and 9)",), raw_bytes("train.csv", duplicate_label_header)),
    "train not UTF-8": Case(("{data}/train.csv: row 3, column 'comment_text': not UTF-8 (byte 0xe9)",), latin1_in_row_3("train.csv")),
    "test not UTF-8": Case(("{data}/test.csv: row 3, column 'comment_text': not UTF-8 (byte 0xe9)",), latin1_in_row_3("test.csv")),
    "header-only train": Case(("{data}/train.csv: no data rows (only a header)",), raw_bytes("train.csv", header_only)),
    "header-only test": Case(("{data}/test.csv: no data rows (only a header)",), raw_bytes("test.csv", header_only)),
    "header-only sample_submission": Case(("{data}/sample_submission.csv: no data rows",), raw_bytes("sample_submission.csv", header_only)),
    "empty train file": Case(("{data}/train.csv: empty file (no header row)",), raw_bytes("train.csv", lambda b: b"")),
    "first row with extra fields": Case(("{data}/train.csv: row 1: 10 fields, the header has 8",), raw_bytes("train.csv", lambda b: b.replace(b"\n", b"\n1,2,3,4,5,6,7,8,9,10\n", 1))),
    "later row with extra fields": Case(("{data}/test.csv: row 601: 3 fields, the header has 2",), raw_bytes("test.csv", lambda b: b + b"x,y,z\n")),
    "corrupt zip": Case(("{data}/train.csv.zip: not a readable zip archive",), zipped("train.csv", garbage=True)),
    "zip with two files": Case(("{data}/train.csv.zip: a zip must hold exactly one CSV file; it holds train.csv, extra.csv",),
                               zipped("train.csv", members={"train.csv": b"", "extra.csv": b"id\n1\n"})),
    "test file missing": Case(("{data}/test.csv: file not found",), remove_data("test.csv")),
    "train file missing": Case(("{data}/train.csv: file not found",), remove_data("train.csv")),
    "sample_submission file missing": Case(("{data}/sample_submission.csv: file not found",), remove_data("sample_submission.csv")),
    "sample_submission extra column": Case(("{data}/sample_submission.csv: row 0 (header), column 'extra': not a column of a jigsaw-toxic-2018 submission",),
                                           edit_csv("sample_submission.csv", lambda f: f.insert(7, "extra", "0.5"))),
    "sample_submission missing label": Case(("{data}/sample_submission.csv: row 0 (header), column 'threat': missing",),
                                            edit_csv("sample_submission.csv", lambda f: f.drop(columns="threat", inplace=True))),
    "test id not in sample_submission": Case(("{data}/test.csv: row 6, column 'id': id 'not-in-sample' is not in sample_submission.csv",),
                                             edit_csv("test.csv", set_cell(5, "id", "not-in-sample"))),
    "sample_submission id not in test": Case(("{data}/sample_submission.csv: row 601, column 'id': id 'stranger' is not in test.csv",),
                                             edit_csv("sample_submission.csv", lambda f: f.loc.__setitem__(len(f), ["stranger"] + ["0.5"] * 6))),
    "empty test id": Case(("{data}/test.csv: row 2, column 'id': empty id",), edit_csv("test.csv", set_cell(1, "id", " "))),
    # ---- the model folder ----
    "model folder missing": Case(("model.name = ", "no-such-model': no such folder"), missing_model),
    "model folder empty": Case(("the folder is empty; it needs config.json",), empty_model),
    "model without config.json": Case(("no config.json in the folder",), model_without("config.json")),
    "model without weights": Case(("no weights in the folder (model.safetensors or pytorch_model.bin)",), model_without("model.safetensors")),
    "model without tokenizer": Case(("no tokenizer files in the folder",), model_without("tokenizer.json", "tokenizer_config.json", "vocab.txt")),
    "model with a 5-token vocabulary": Case(("the tokenizer has only 5 tokens for an embedding matrix of 30522 rows",), tiny_vocabulary),
    "model config not JSON": Case(("{model}/config.json: cannot be loaded",), write_model_file("config.json", b"{not json")),
    "model weights corrupt": Case(("{model}/model.safetensors: not a readable safetensors file",), write_model_file("model.safetensors", b"\x10\x00\x00\x00\x00\x00\x00\x00garbage!")),
    "model.name is a file": Case(("config.json is a file; give the checkpoint's folder",), model_is_a_file),
    "hub id not available offline": Case(("model.name = 'no-such-org/no-such-model': not a local folder",), setting("model.name=no-such-org/no-such-model"), in_process=False),
    "max_length above positions": Case(("model.max_length = 1024; ", "512 position embeddings"), setting("model.max_length=1024")),
    "block_size above positions": Case(("lm.block_size = 600; ", "512 position embeddings"), setting("lm.block_size=600", "lm.epochs=1")),
}

# ---- generated: every range-checked and every choice key, every required column of every file ----
def out_of_range(key: str) -> str:
    """A value just below `key`'s lower bound, of the key's own type."""
    low, _, inclusive, _ = config.RANGES[key]
    section, name = key.split(".")
    if isinstance(getattr(getattr(config.Config(), section), name), int):
        return str(int(low) - 1 if inclusive else int(low))
    return repr(float(low) - 0.5 if inclusive else float(low))


for _key, _bounds in config.RANGES.items():
    _value = out_of_range(_key)
    CASES[f"range: {_key}"] = Case((f"config: {_key} = {_value}; must be a finite number {config.describe_range(*_bounds)}",),
                                   setting(f"{_key}={_value}"))
for _key, _allowed in config.CHOICES.items():
    CASES[f"choice: {_key}"] = Case((f"config: {_key} = 'nonsense'; choose one of {', '.join(_allowed)}",), setting(f"{_key}=nonsense"))
REQUIRED_COLUMNS = {  # written out, not derived: a column the task adds must get its case here
    "train.csv": ["id", "comment_text", *LABELS],
    "test.csv": ["id", "comment_text"],
    "sample_submission.csv": ["id", *LABELS],
}
for _file, _columns in REQUIRED_COLUMNS.items():
    for _column in _columns:
        CASES[f"missing column: {_file} {_column}"] = Case(
            (f"{{data}}/{_file}: row 0 (header), column {_column!r}: missing",),
            edit_csv(_file, lambda f, c=_column: f.drop(columns=c, inplace=True)))


# a handful through a real `python -m kagglebert` process: stderr checked whole
SUBPROCESS_CASES = ["negative lr", "model without tokenizer", "header-only test", "duplicate label header", "submit.name with ..",
                    *(name for name, case in CASES.items() if not case.in_process)]


# ---------------------------------------------------------------------------------------------
# the harness


def snapshot(root: Path) -> dict:
    """Every path under `root` with its size and modification time (folders too)."""
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): (p.is_dir(), p.stat().st_size if p.is_file() else 0, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*"))} | {".": (True, 0, 0)}


@pytest.fixture()
def ctx(sample_dir, tiny_model_dir, tmp_path) -> Context:
    data = tmp_path / "data"
    shutil.copytree(sample_dir, data)
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    work = tmp_path / "work"
    work.mkdir()
    return Context(data, model, work, tmp_path)


def base_args(ctx: Context, command: str = "run", **extra) -> list[str]:
    return [command, "--config", "demo", *small_run_overrides(ctx.data, ctx.model, ctx.work, **extra)]


def call_cli(args: list[str], capsys) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_error_line(stderr: str, fragments, whole: bool) -> str:
    """Exactly one `error:` line, holding every fragment; `whole`: it is all of stderr but for the
    data warnings preflight logs before it (e.g. a rare label in a 200-row fixture)."""
    assert "Traceback" not in stderr, stderr[-3000:]
    lines = [line for line in stderr.splitlines() if line.strip() and not (whole and line.startswith("data: "))]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, stderr[-3000:]
    if whole:
        assert lines == errors, stderr[-3000:]
    else:
        assert lines[-1] == errors[0], stderr[-3000:]
    for fragment in fragments:
        assert fragment in errors[0], f"{fragment!r} not in {errors[0]!r}"
    return errors[0]


def expected(case: Case, ctx: Context) -> list[str]:
    return [f.replace("{data}", str(ctx.data)).replace("{model}", str(ctx.model)).replace("{work}", str(ctx.work))
            for f in case.expect]


@pytest.mark.parametrize("name", [name for name, case in CASES.items() if case.in_process])
def test_bad_input_is_one_line_and_writes_nothing(name, ctx, capsys):
    case = CASES[name]
    if case.skip_if():
        pytest.skip("this machine has that device")
    args = base_args(ctx, case.command) + case.prepare(ctx)
    before = snapshot(ctx.work)
    code, out, err = call_cli(args, capsys)
    assert code == 2, err[-3000:]
    assert_one_error_line(err, expected(case, ctx), whole=True)
    assert snapshot(ctx.work) == before  # no run folder, config.toml, cache or submission
    assert "submit with" not in out


@pytest.mark.parametrize("name", SUBPROCESS_CASES)
def test_bad_input_through_a_real_process(name, ctx, run_cli):
    case = CASES[name]
    args = base_args(ctx, case.command) + case.prepare(ctx)
    before = snapshot(ctx.work)
    proc = run_cli(*args, timeout=120)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert_one_error_line(proc.stderr, expected(case, ctx), whole=True)
    assert snapshot(ctx.work) == before


def test_every_setting_file_and_column_has_a_case():
    """Every case runs through one of the two tests above (one error line naming the input, exit 2,
    nothing written), and together they cover every checked setting, file and column."""
    assert {name for name, case in CASES.items() if case.in_process} | set(SUBPROCESS_CASES) == set(CASES)
    assert all(case.expect and all(case.expect) for case in CASES.values())
    named = "\n".join(" ".join(case.expect) for case in CASES.values())
    keys = [*config.RANGES, *config.CHOICES, *config.PLAIN_NAME_KEYS, "run.device", "run.task", "data.n_folds",
            "data.max_rows", "data.dir", "train.folds", "model.name", "submit.dir", "model.max_length", "lm.block_size"]
    assert [key for key in keys if f"{key} = " not in named] == []
    # the task's own columns are the ones listed above, each with a missing-column case
    assert REQUIRED_COLUMNS["train.csv"] == [TASK.id_column, TASK.text_column, *TASK.label_columns]
    assert REQUIRED_COLUMNS["test.csv"] == [TASK.id_column, TASK.text_column]
    assert REQUIRED_COLUMNS["sample_submission.csv"] == [TASK.id_column, *TASK.label_columns]
    for file in (TASK.train_file, TASK.test_file, TASK.sample_submission_file):
        for fault in ("row 0 (header), column", "no data rows", "file not found"):
            assert any(f"{{data}}/{file}: " in e and fault in e for case in CASES.values() for e in case.expect), (file, fault)
    for file in ("config.json", "model.safetensors"):
        assert f"{{model}}/{file}" in named


# ---------------------------------------------------------------------------------------------
# runs: bound to config and inputs, locked, read-only for readers


@pytest.fixture()
def made_run(ctx, capsys):
    """An EDA run made in ctx.work (the cheapest stage that creates the run folder)."""
    code, _, err = call_cli(base_args(ctx, "eda"), capsys)
    assert code == 0, err[-3000:]
    return ctx.work / "runs" / "demo"


def test_a_run_records_its_inputs(made_run, ctx):
    import json

    inputs = json.loads((made_run / "inputs.json").read_text())
    assert set(inputs["data"]) == {"train.csv", "test.csv", "sample_submission.csv"}
    assert inputs["data"]["train.csv"] == fingerprints.file_sha256(ctx.data / "train.csv")
    assert inputs["model"]["name"] == str(ctx.model)
    assert inputs["model"]["files"]["model.safetensors"] == fingerprints.file_sha256(ctx.model / "model.safetensors")
    assert inputs["kagglebert"] == paths.kagglebert_version()


def test_changed_data_is_refused_like_a_changed_config(made_run, ctx, capsys):
    frame = read_raw_csv(ctx.data / "train.csv")
    frame.iloc[::-1].to_csv(ctx.data / "train.csv", index=False)  # the same rows, another file
    before = snapshot(ctx.work)
    code, _, err = call_cli(base_args(ctx, "run"), capsys)
    assert code == 2
    line = assert_one_error_line(err, [f"{made_run}: this run was made from other inputs (train.csv: sha256 ",
                                       "Use a new name (--set run.name=...) or delete"], whole=True)
    assert "test.csv" not in line
    assert snapshot(ctx.work) == before


def test_changed_model_weights_are_refused(made_run, ctx, capsys):
    from safetensors.torch import load_file, save_file

    weights = load_file(ctx.model / "model.safetensors")
    first = sorted(weights)[0]
    weights[first] = weights[first] + 1.0
    save_file(weights, ctx.model / "model.safetensors")
    code, _, err = call_cli(base_args(ctx, "eda"), capsys)
    assert code == 2
    assert_one_error_line(err, ["this run was made from other inputs (model files changed: model.safetensors)"], whole=True)


def test_changed_config_is_refused_and_a_typo_does_not_lock_in(ctx, capsys):
    wrong = base_args(ctx, "eda") + ["--set", f"model.name={ctx.tmp / 'typo'}"]
    code, _, err = call_cli(wrong, capsys)
    assert code == 2 and not (ctx.work / "runs").exists()
    code, _, err = call_cli(base_args(ctx, "eda"), capsys)  # the corrected command starts clean
    assert code == 0, err[-3000:]
    code, _, err = call_cli(base_args(ctx, "eda") + ["--set", "train.lr=0.001"], capsys)
    assert code == 2
    assert_one_error_line(err, ["this run was made with another config (train.lr: 6e-05 → 0.001)"], whole=True)


HOLD_LOCK = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
os.pwrite(fd, f"{os.getpid()}\\n".encode(), 0)
print("locked", flush=True)
time.sleep(120)
"""


def test_a_second_process_on_a_run_is_refused_until_the_first_dies(made_run, ctx, capsys):
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(made_run / ".lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = snapshot(ctx.work)
        code, _, err = call_cli(base_args(ctx, "eda"), capsys)
        assert code == 2
        assert_one_error_line(err, [f"{made_run}: in use by another kagglebert process (pid {holder.pid})"], whole=True)
        assert snapshot(ctx.work) == before
    finally:
        holder.kill()  # kill -9: the kernel drops its lock, nothing stale is left
        holder.wait()
    code, _, err = call_cli(base_args(ctx, "eda"), capsys)
    assert code == 0, err[-3000:]


def test_two_runs_sharing_an_lm_take_turns_at_training_it(made_run, ctx, capsys):
    """Another run name with the same LM settings and inputs trains into the same runs/_lm/<key>:
    while one process trains it, a second is refused with the holder's pid, then proceeds."""
    lm = read_run(ctx.work / "runs", "demo")
    lm.lm_lock_path.parent.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(lm.lm_lock_path)], stdout=subprocess.PIPE, text=True)
    other = base_args(ctx, "lm", **{"run.name": "other"})
    try:
        assert holder.stdout.readline().strip() == "locked"
        code, _, err = call_cli(other, capsys)
        assert code == 2
        assert_one_error_line(err, [f"{lm.lm_dir}: this LM stage is being trained by another kagglebert process (pid {holder.pid})"], whole=True)
        assert not lm.lm_dir.exists()
    finally:
        holder.kill()
        holder.wait()
    code, _, err = call_cli(other, capsys)
    assert code == 0, err[-3000:]
    assert read_run(ctx.work / "runs", "other").lm_dir == lm.lm_dir and lm.lm_complete()


def test_submit_writes_nothing_into_the_run_folder(made_run, ctx, capsys):
    """submit opens the run read-only: with test predictions in place it writes only the
    submission (so a read-only run folder, e.g. an attached dataset, can be submitted)."""
    sample = read_raw_csv(ctx.data / "sample_submission.csv")
    pred = sample.copy()
    pred.iloc[:, 1:] = "0.25"
    pred.to_csv(made_run / "test_pred.csv", index=False)
    before = snapshot(made_run)
    code, out, err = call_cli(base_args(ctx, "submit", **{"data.max_rows": 0, "data.max_test_rows": 0}), capsys)
    # the EDA run was made with data.max_rows=200: a changed config is refused, nothing written
    assert code == 2 and "made with another config (data.max_rows: 200 → 0; data.max_test_rows: 200 → 0)" in err
    code, out, err = call_cli(base_args(ctx, "eda", **{"data.max_rows": 0, "data.max_test_rows": 0, "run.name": "full"}), capsys)
    assert code == 0, err
    full = ctx.work / "runs" / "full"
    pred.to_csv(full / "test_pred.csv", index=False)
    before = snapshot(full)
    code, out, err = call_cli(base_args(ctx, "submit", **{"data.max_rows": 0, "data.max_test_rows": 0, "run.name": "full", "submit.name": "$(touch pwned) it's"}), capsys)
    assert code == 0, err
    assert snapshot(full) == before
    submission = ctx.work / "submissions" / "$(touch pwned) it's.csv"
    assert read_raw_csv(submission)["id"].tolist() == sample["id"].tolist()
    command = out.splitlines()[-1].removeprefix("submit with: ")
    # pasted into a shell, every argument stays literal: nothing runs, the message is one argument
    echoed = subprocess.run(["bash", "-c", f"kaggle() {{ printf '%s\\n' \"$@\"; }}; {command}"], capture_output=True, text=True, cwd=ctx.tmp)
    assert echoed.stdout.splitlines()[-4:] == ["-f", str(submission), "-m", "kagglebert $(touch pwned) it's (sample run, not the full test set)"]
    assert not (ctx.tmp / "pwned").exists()


def test_submit_of_a_run_that_does_not_exist(ctx, capsys):
    code, _, err = call_cli(base_args(ctx, "submit"), capsys)
    assert code == 2
    assert_one_error_line(err, [f"{ctx.work / 'runs' / 'demo'}: no such run; train it first"], whole=True)
    assert not (ctx.work / "runs").exists() and not (ctx.work / "submissions").exists()


def test_a_sample_run_is_marked(made_run, ctx, capsys):
    """data.max_test_rows=200 cuts test.csv to 200 rows: the submission says it is a sample run."""
    from kagglebert.core.data import read_csv

    data = read_raw_csv(ctx.data / "sample_submission.csv")
    from kagglebert.core.runs import read_run

    run = read_run(ctx.work / "runs", "demo")
    test = run.load_data().test
    assert len(test) == 200 and run.load_data().test_subsampled
    pred = data[data["id"].isin(set(test["id"]))].copy()
    pred.iloc[:, 1:] = "0.5"
    pred.to_csv(made_run / "test_pred.csv", index=False)
    code, out, err = call_cli(base_args(ctx, "submit"), capsys)
    assert code == 0, err
    assert "sample run: not the full test set" in out
    assert out.splitlines()[-1].endswith("'kagglebert demo (sample run, not the full test set)'")
    written = read_csv(ctx.work / "submissions" / "demo.csv")
    assert written["id"].tolist() == pred["id"].tolist()


# ---------------------------------------------------------------------------------------------
# faults: write failures, interrupts


def test_disk_full_leaves_no_partial_file_and_names_the_path(ctx, capsys, monkeypatch):
    from kagglebert.core import atomic

    real_write = atomic._write

    def half_then_full(tmp: Path, content) -> None:
        if tmp.name.startswith(".summary"):
            tmp.write_text('{"partial": ')
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp))
        real_write(tmp, content)

    monkeypatch.setattr(atomic, "_write", half_then_full)
    code, _, err = call_cli(base_args(ctx, "eda"), capsys)
    assert code == 2
    eda = ctx.work / "runs" / "demo" / "eda"
    assert_one_error_line(err, [f"error: {eda / 'summary.json'}: cannot write: No space left on device"], whole=True)
    assert not (eda / "summary.json").exists()
    assert [p.name for p in eda.iterdir() if p.name.startswith(".")] == []  # no temporary file left


def test_real_full_filesystem(ctx, capsys):
    """The same on a real 16 KiB tmpfs (room for config.toml and inputs.json, not for EDA's
    tables), where the machine lets us mount one."""
    mount = ctx.tmp / "tiny-fs"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        code, _, err = call_cli(base_args(ctx, "eda", **{"run.runs_dir": mount / "runs"}), capsys)
        assert code == 2
        line = assert_one_error_line(err, [f"error: {mount / 'runs' / 'demo'}", "No space left on device"], whole=True)
        written = [p for p in mount.rglob("*") if p.is_file() and p.name != ".lock"]
        partial = [p for p in written if p.name.startswith(".")]
        assert partial == [], line  # temporary files removed
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_read_only_runs_folder(ctx, capsys):
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    runs = ctx.work / "runs"
    runs.mkdir()
    runs.chmod(0o555)
    try:
        code, _, err = call_cli(base_args(ctx, "eda"), capsys)
        assert code == 2
        assert_one_error_line(err, [f"{runs / 'demo'}: cannot create: Permission denied"], whole=True)
    finally:
        runs.chmod(0o755)


def test_ctrl_c_is_one_line_and_exit_130(ctx, capsys, monkeypatch):
    from kagglebert.stages import eda

    def interrupted(run):
        raise KeyboardInterrupt

    monkeypatch.setattr(eda, "analyse", interrupted)
    code, _, err = call_cli(base_args(ctx, "eda"), capsys)
    assert code == 130
    assert [line for line in err.strip().splitlines() if not line.startswith("data: ")] == ["interrupted; finished stages and folds are kept: rerun the same command to resume"]  # after preflight's data warnings


def test_interrupted_prints_its_message_and_exit_130(ctx, capsys, monkeypatch):
    from kagglebert.stages import eda

    def interrupted(run):
        raise Interrupted("interrupted in fold 1; rerun the same command to resume")

    monkeypatch.setattr(eda, "analyse", interrupted)
    code, _, err = call_cli(base_args(ctx, "eda"), capsys)
    assert code == 130
    assert [line for line in err.strip().splitlines() if not line.startswith("data: ")] == ["interrupted in fold 1; rerun the same command to resume"]  # after preflight's data warnings


# ---------------------------------------------------------------------------------------------
# things that look missing but are values


def test_na_like_ids_are_ids(ctx, capsys):
    """`NA`, `null`, `None`, `nan` are ids like any other: loaded, kept through folds.csv and into
    the submission."""
    from kagglebert.core.data import load_competition, read_predictions
    from kagglebert.core.folds import load_or_make_folds
    from kagglebert.core.tasks import JIGSAW_TOXIC_2018 as task

    train = read_raw_csv(ctx.data / "train.csv")
    train.loc[:3, "id"] = ["NA", "null", "None", "nan"]
    train.to_csv(ctx.data / "train.csv", index=False)
    for name in ("test.csv", "sample_submission.csv"):
        frame = read_raw_csv(ctx.data / name)
        frame.loc[:1, "id"] = ["NA", "#N/A"]
        frame.to_csv(ctx.data / name, index=False)
    data = load_competition(task, str(ctx.data))
    assert data.train["id"].tolist()[:4] == ["NA", "null", "None", "nan"]
    folds = load_or_make_folds(ctx.tmp / "folds.csv", data.train["id"], task.stratify_targets(data.labels), 2, 0)
    again = load_or_make_folds(ctx.tmp / "folds.csv", data.train["id"], task.stratify_targets(data.labels), 2, 0)
    assert again["id"].tolist() == folds["id"].tolist() == data.train["id"].tolist()
    assert read_predictions(ctx.tmp / "folds.csv", "id")["id"].tolist()[:4] == ["NA", "null", "None", "nan"]
    code, _, err = call_cli(base_args(ctx, "eda"), capsys)
    assert code == 0, err


def test_a_process_launched_by_the_lock_holder_may_use_the_run(made_run, ctx, run_cli):
    """A notebook that opened a run and launches workers (torchrun, notebook_launcher) for it is
    not locked out by its own lock; any other process is (test above)."""
    from kagglebert.core import config, locks, runs

    overrides = small_run_overrides(ctx.data, ctx.model, ctx.work)[1::2]  # the values after each --set
    run = runs.open_run(config.load("demo", overrides))
    try:
        assert (made_run / ".lock").read_text().strip() == str(os.getpid())
        proc = run_cli(*base_args(ctx, "eda"), timeout=120)
        assert proc.returncode == 0, proc.stderr[-3000:]
    finally:
        del run
    locks.release_locks()


def test_na_like_ids_go_through_a_whole_run(ctx, capsys):
    """Ids `NA` and `null` in train and test: folds, OOF, test predictions and the submission keep
    them (once a run trained every fold and then died with KeyError ['NA']). TF-IDF: seconds."""
    train = read_raw_csv(ctx.data / "train.csv")
    train.loc[:1, "id"] = ["NA", "null"]
    train.to_csv(ctx.data / "train.csv", index=False)
    for name in ("test.csv", "sample_submission.csv"):
        frame = read_raw_csv(ctx.data / name)
        frame.loc[:1, "id"] = ["NA", "None"]
        frame.to_csv(ctx.data / name, index=False)
    args = base_args(ctx, "run", **{"data.max_rows": 0, "data.max_test_rows": 0, "model.kind": "tfidf", "lm.epochs": 0})
    code, out, err = call_cli(args, capsys)
    assert code == 0, err[-3000:]
    run = ctx.work / "runs" / "demo"
    assert {"NA", "null"} <= set(read_raw_csv(run / "oof.csv")["id"])
    assert read_raw_csv(run / "test_pred.csv")["id"].tolist()[:2] == ["NA", "None"]
    assert read_raw_csv(ctx.work / "submissions" / "demo.csv")["id"].tolist()[:2] == ["NA", "None"]


@pytest.mark.parametrize("file, content, fragment", [
    ("inputs.json", "{not json", "inputs.json: unreadable"),
    ("config.toml", "[run\n", "config.toml: not valid TOML"),
    ("folds.csv", "id,fold\nnope,0\n", "folds.csv: does not match the training data"),
])
def test_a_damaged_run_folder_is_one_line(made_run, ctx, capsys, file, content, fragment):
    (made_run / file).write_text(content)
    before = snapshot(ctx.work)
    code, _, err = call_cli(base_args(ctx, "train"), capsys)
    assert code == 2
    assert_one_error_line(err, [f"{made_run / file}", fragment.split(": ", 1)[1]], whole=True)
    after = snapshot(ctx.work)
    if file == "folds.csv":  # found once the stage runs: only the lock's pid was written meanwhile
        before.pop("runs/demo/.lock"), after.pop("runs/demo/.lock")
    assert after == before


def test_the_lm_store_is_keyed_by_the_input_files(ctx):
    """Other rows under the same data.dir (or other weights under the same model.name) get their
    own LM stage output; asking where it is writes nothing."""
    from kagglebert.core import config, runs

    cfg = config.load("demo", small_run_overrides(ctx.data, ctx.model, ctx.work, **{"lm.epochs": 1})[1::2])
    first = runs.reader(cfg).lm_dir
    assert runs.reader(cfg).lm_dir == first  # stable
    frame = read_raw_csv(ctx.data / "train.csv")
    frame.iloc[::-1].to_csv(ctx.data / "train.csv", index=False)
    second = runs.reader(cfg).lm_dir
    assert second != first and second.parent == first.parent == ctx.work / "runs" / "_lm"
    assert not (ctx.work / "runs").exists()


def test_reading_a_run_back_needs_no_preflight(made_run, ctx, monkeypatch):
    """The run records its LM key when it is made: with its data folder gone and preflight
    refusing to run, the run still reads back and names the same LM folder."""
    from kagglebert.core import config, data, runs

    cfg = config.load("demo", small_run_overrides(ctx.data, ctx.model, ctx.work)[1::2])
    where = runs.reader(cfg).lm_dir  # the data are still here: computed from them
    assert json.loads((made_run / "inputs.json").read_text())["lm_key"] == where.name
    shutil.rmtree(ctx.data)

    def refuse(*args, **kwargs):
        raise AssertionError("preflight ran on a read-only run")

    for module, name in ((preflight, "preflight"), (preflight, "input_fingerprints"), (data_checks, "check_data"), (data, "load_competition")):
        monkeypatch.setattr(module, name, refuse)
    monkeypatch.setattr(runs, "load_competition", refuse)
    run = read_run(ctx.work / "runs", "demo")
    assert run.lm_dir == where and run.lm_metrics_path == where / "lm_metrics.json"
    assert runs.reader(cfg).lm_dir == where  # a reader of a made run: its inputs.json, no preflight


# Runs the real CLI in a process whose first optimizer step (LM stage or training: whichever comes
# first) prints a marker and then waits for a signal: the test sends SIGINT on that event, so the
# interrupt always lands mid-stage however fast the machine is (no sleep racing the run).
PAUSE_AT_FIRST_STEP = """
import sys
from torch.optim.optimizer import register_optimizer_step_post_hook
def pause(optimizer, args, kwargs):
    if not getattr(pause, "done", False):
        pause.done = True
        print("kagglebert-test: first optimizer step done", file=sys.stderr, flush=True)
        sys.stdin.readline()  # blocks until the test answers the event: no timing, no signal to lose
        raise KeyboardInterrupt  # what Ctrl-C raises in the main thread: here, mid-stage
register_optimizer_step_post_hook(pause)
from kagglebert.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_ctrl_c_in_a_real_run_is_one_line_and_exit_130(ctx):
    """Ctrl-C (KeyboardInterrupt) after the run's first optimizer step: exit 130, the last line says
    how to resume, no traceback, and the run folder was left as a resumable run. The child raises it
    when the test answers its event line on stdin (real SIGINTs: test_resume.py's Ctrl-C tests)."""
    args = base_args(ctx, "run", **{"lm.include_test": "false"})
    proc = subprocess.Popen([sys.executable, "-c", PAUSE_AT_FIRST_STEP, *map(str, args)], env=cli_env(),
                            stdin=subprocess.PIPE, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    lines = []
    try:
        for line in proc.stderr:
            lines.append(line)
            if line.startswith("kagglebert-test: first optimizer step done"):
                break
        _, rest = proc.communicate("stop\n", timeout=120)
    finally:
        proc.kill()
    stderr = "".join(lines) + rest
    assert any(line.startswith("kagglebert-test:") for line in lines), stderr[-3000:]  # the event was seen
    assert proc.returncode == 130, stderr[-3000:]
    assert "Traceback" not in stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("interrupted") and "rerun the same command to resume" in last, last
    assert (ctx.work / "runs" / "demo" / "config.toml").is_file()


def test_the_same_files_in_another_folder_are_the_same_run(made_run, ctx, capsys):
    """A run is bound to its files' content, not their folder: moved data (a clone vs an attached
    Kaggle input) reopens the run and shares its LM stage output; other content does not."""
    from kagglebert.core import config, runs

    moved = ctx.tmp / "moved-data"
    shutil.copytree(ctx.data, moved)
    before = runs.read_run(ctx.work / "runs", "demo").lm_dir
    code, _, err = call_cli(base_args(ctx, "eda") + ["--set", f"data.dir={moved}"], capsys)
    assert code == 0, err[-3000:]
    cfg = config.load("demo", small_run_overrides(moved, ctx.model, ctx.work)[1::2])
    assert runs.reader(cfg).lm_dir == before
    frame = read_raw_csv(moved / "test.csv")
    frame.loc[0, "comment_text"] = "edited"
    frame.to_csv(moved / "test.csv", index=False)
    code, _, err = call_cli(base_args(ctx, "eda") + ["--set", f"data.dir={moved}"], capsys)
    assert code == 2 and "made from other inputs (test.csv: sha256" in err


def test_a_read_only_submissions_folder_is_one_line(made_run, ctx, capsys, monkeypatch):
    """EROFS when the submission is linked into place (a read-only mount): one line naming the
    file, no temporary file left, the run folder untouched."""
    from kagglebert.core import atomic

    sample = read_raw_csv(ctx.data / "sample_submission.csv")
    test_ids = set(runs_test_ids(made_run))
    pred = sample[sample["id"].isin(test_ids)].copy()
    pred.iloc[:, 1:] = "0.5"
    pred.to_csv(made_run / "test_pred.csv", index=False)
    before = snapshot(made_run)

    def read_only(src, dst, *args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(dst))

    monkeypatch.setattr(atomic.os, "link", read_only)
    code, out, err = call_cli(base_args(ctx, "submit"), capsys)
    assert code == 2
    target = ctx.work / "submissions" / "demo.csv"
    assert_one_error_line(err, [f"error: {target}: cannot write: Read-only file system"], whole=True)
    assert list((ctx.work / "submissions").iterdir()) == []
    assert snapshot(made_run) == before


def runs_test_ids(run_folder: Path) -> list[str]:
    from kagglebert.core.runs import read_run

    return read_run(run_folder.parent, run_folder.name).load_data().test["id"].tolist()


@pytest.mark.parametrize("command", ["run", "train", "eda"])
def test_tfidf_above_its_size_is_refused_before_anything_is_written(ctx, capsys, monkeypatch, command):
    """model.kind = tfidf on more texts than TFIDF_MAX_TEXTS (2019's 1.9M): one line naming the
    counts, the reason and data.max_rows, from preflight, so no run folder, cache or submission is
    made (it was once refused inside the training stage, after EDA had written the run). The limit
    is lowered here so 200 + 200 rows stand in for 1.9M."""
    monkeypatch.setattr("kagglebert.core.preflight.TFIDF_MAX_TEXTS", 300)
    before = snapshot(ctx.work)
    code, _, err = call_cli(base_args(ctx, command, **{"model.kind": "tfidf", "lm.epochs": 0}), capsys)
    assert code == 2
    assert_one_error_line(err, ["config: model.kind = tfidf: 200 training + 200 test texts is above the 300", "about 15 GB for 1.9M",
                                "set data.max_rows (e.g. 100)"], whole=True)
    assert snapshot(ctx.work) == before and not (ctx.work / "runs").exists()
    monkeypatch.setattr("kagglebert.core.preflight.TFIDF_MAX_TEXTS", 150)  # the test rows alone are too many
    code, _, err = call_cli(base_args(ctx, command, **{"model.kind": "tfidf", "lm.epochs": 0}), capsys)
    assert code == 2 and "set data.max_rows and data.max_test_rows" in err and snapshot(ctx.work) == before

