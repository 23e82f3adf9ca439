"""Finding things where Kaggle puts them, in a fake `/kaggle/input` tree (KAGGLEBERT_KAGGLE_INPUT):
competition files by name and header in any of the layouts Kaggle has used, the full profile's
refusal to fall back to the bundled sample, and earlier notebooks' run folders attached as inputs."""
from __future__ import annotations

import json
import logging
import os
import zipfile
from pathlib import Path

import pytest

from kagglebert.core import paths
from kagglebert.core.errors import ConfigError
from kagglebert.core.tasks import JIGSAW_TOXIC_2018 as TASK

SLUG = TASK.competition_slug
FILES = (TASK.train_file, TASK.test_file, TASK.sample_submission_file)


@pytest.fixture()
def kaggle_root(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "kaggle" / "input"
    root.mkdir(parents=True)
    monkeypatch.setenv(paths.KAGGLE_INPUT_ENV, str(root))
    paths._reported.clear()
    return root


def put_competition(folder: Path, source: Path, zipped: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        if zipped:  # how Kaggle ships the 2018 files: one CSV per zip
            with zipfile.ZipFile(folder / f"{name}.zip", "w") as archive:
                archive.write(source / name, name)
        else:
            (folder / name).write_bytes((source / name).read_bytes())
    return folder


def test_kaggle_input_is_overridable(monkeypatch, tmp_path):
    monkeypatch.delenv(paths.KAGGLE_INPUT_ENV, raising=False)
    assert paths.kaggle_input() == Path("/kaggle/input")
    monkeypatch.setenv(paths.KAGGLE_INPUT_ENV, str(tmp_path))
    assert paths.kaggle_input() == tmp_path


@pytest.mark.parametrize("layout, zipped", [
    (SLUG, True),  # the classic mount, zipped CSVs
    (f"competitions/{SLUG}", False),  # the newer competitions/ prefix
    ("my-copy-of-jigsaw/data", False),  # a dataset a user uploaded under another name
])
def test_competition_found_by_names_and_header(kaggle_root, sample_dir, layout, zipped, caplog):
    expected = put_competition(kaggle_root / layout, sample_dir, zipped)
    with caplog.at_level(logging.INFO, logger="kagglebert"):
        found = paths.find_data_dir("", SLUG, require_competition=True)
    assert found == expected
    assert f"competition files found in {expected}" in caplog.text  # the notebook says where


def test_another_competitions_train_csv_is_not_taken(kaggle_root, sample_dir):
    """The 2019 competition also has a train.csv with id and comment_text, but no 2018 labels."""
    other = kaggle_root / "jigsaw-unintended-bias-in-toxicity-classification"
    other.mkdir()
    (other / "train.csv").write_text("id,target,comment_text\n1,0.5,hello\n")
    (other / "test.csv").write_text("id,comment_text\n2,hi\n")
    (other / "sample_submission.csv").write_text("id,prediction\n2,0.5\n")
    assert paths.discover_competition(TASK) is None
    with pytest.raises(ConfigError, match="Add Input"):
        paths.find_data_dir("", SLUG, require_competition=True)
    real = put_competition(kaggle_root / "zz-later" / SLUG, sample_dir)
    assert paths.discover_competition(TASK) == real


def test_missing_file_or_column_is_not_a_match(kaggle_root, sample_dir):
    folder = put_competition(kaggle_root / SLUG, sample_dir)
    (folder / TASK.sample_submission_file).unlink()
    assert paths.discover_competition(TASK) is None
    put_competition(folder, sample_dir)
    header, *rows = (folder / TASK.train_file).read_text().splitlines(keepends=True)
    (folder / TASK.train_file).write_text(header.replace("threat", "threatening") + "".join(rows))
    assert paths.discover_competition(TASK) is None


def test_too_deep_is_not_searched(kaggle_root, sample_dir):
    put_competition(kaggle_root.joinpath(*["d"] * (paths.SEARCH_DEPTH + 1)), sample_dir)
    assert paths.discover_competition(TASK) is None


def test_quick_falls_back_to_the_sample_full_never(kaggle_root, caplog):
    with caplog.at_level(logging.INFO, logger="kagglebert"):
        assert paths.find_data_dir("", SLUG) == paths.BUNDLED_SAMPLE
    assert "using the bundled sample" in caplog.text
    with pytest.raises(ConfigError) as err:
        paths.find_data_dir("", SLUG, require_competition=True)
    message = str(err.value)
    assert "\n" not in message and str(kaggle_root) in message and "data.dir" in message


def test_explicit_data_dir_wins(kaggle_root, sample_dir, tmp_path):
    put_competition(kaggle_root / SLUG, sample_dir)
    assert paths.find_data_dir(str(sample_dir), SLUG, require_competition=True) == sample_dir
    with pytest.raises(ConfigError, match="no such folder"):
        paths.find_data_dir(str(tmp_path / "nope"), SLUG)


# --- the full profile, the device cell, two processes from a notebook ----------------------------

def test_full_profile_stops_without_the_competition(kaggle_root, monkeypatch, sample_dir):
    from kagglebert.notebook import profiles

    monkeypatch.delenv("KAGGLEBERT_OVERRIDES", raising=False)
    monkeypatch.setenv("KAGGLEBERT_PROFILE", "full")
    with pytest.raises(ConfigError, match="Add Input"):
        profiles.load("quick")
    found = put_competition(kaggle_root / SLUG, sample_dir, zipped=True)
    cfg = profiles.load("quick")
    assert cfg.data.dir == str(found)  # pinned: every later stage reads the same files
    assert profiles.variants(cfg)["FiT"].data.dir == str(found)


def test_device_report_projects_every_stage_and_warns_on_cpu(tiny_model_dir, sample_dir, tmp_path, monkeypatch):
    from kagglebert.notebook import environment, profiles

    monkeypatch.delenv("KAGGLEBERT_PROFILE", raising=False)
    monkeypatch.delenv("KAGGLEBERT_OVERRIDES", raising=False)
    cfg = profiles.load("quick", [f"data.dir={sample_dir}", f"model.name={tiny_model_dir}", f"run.runs_dir={tmp_path}",
                                  "data.max_rows=0", "run.device=cpu"])
    report = environment.device_report(cfg)  # measured in a child process
    measured = report.measured
    assert "error" not in measured, measured
    assert (measured["device"], measured["precision"], measured["train_rows"]) == ("cpu", "fp32", 300)
    assert measured["train_step_s"] > 0 and measured["lm_step_s"] > 0 and measured["mean_tokens"] > 5
    assert set(report.stages.index) == {"EDA (read, tokenize)", "classifier, one arm (FiT or ITPT-FiT)", "masked-LM stage",
                                        "frozen-features baseline"}
    # more epochs project a longer classifier stage (the numbers themselves: test_project_by_hand)
    arm = "classifier, one arm (FiT or ITPT-FiT)"
    doubled = environment.project(measured, cfg.replace(train={"epochs": 2 * cfg.train.epochs}))
    assert doubled.loc[arm, "minutes"] >= report.stages.loc[arm, "minutes"]
    assert any("would train on a CPU" in w for w in report.warnings)  # all rows (max_rows = 0) on a CPU
    subsample = environment.device_report(cfg.replace(data={"max_rows": 150}), measured=measured)
    assert not subsample.warnings


def test_the_device_cell_times_the_training_step_that_trains(tiny_model_dir, sample_dir, tmp_path, monkeypatch):
    """measure() calls engine.Training.step — the step fit runs, fused AdamW and all — for both the
    classifier and the LM, not a copy of its own."""
    from kagglebert.core import engine
    from kagglebert.notebook import environment, profiles

    monkeypatch.delenv("KAGGLEBERT_PROFILE", raising=False)
    monkeypatch.delenv("KAGGLEBERT_OVERRIDES", raising=False)
    cfg = profiles.load("quick", [f"data.dir={sample_dir}", f"model.name={tiny_model_dir}", f"run.runs_dir={tmp_path}",
                                  "data.max_rows=0", "run.device=cpu", "lm.epochs=1"])
    stepped = []
    real_step = engine.Training.step

    def spy(self, batch, window, last):
        stepped.append((type(self.module.model).__name__, self.optimizer.optimizer.defaults["fused"]))
        return real_step(self, batch, window, last)

    monkeypatch.setattr(engine.Training, "step", spy)
    measured = environment.measure(cfg)
    steps = environment.WARMUP_STEPS + environment.TIMED_STEPS
    assert stepped == [("Classifier", True)] * steps + [("BertForMaskedLM", True)] * steps
    assert measured["train_step_s"] > 0 and measured["lm_step_s"] > 0
def test_project_by_hand():
    """project() on round measured rates, against minutes worked out by hand (not its own formula)."""
    from kagglebert.core import config
    from kagglebert.notebook import environment

    measured = {"train_rows": 1000, "test_rows": 200, "mean_tokens": 100.0, "tokenize_texts_per_s": 120.0,
                "train_batch": 10, "train_step_s": 1.0,      # 10 training comments/s
                "predict_batch": 50, "predict_batch_s": 1.0,  # 50 predicted comments/s
                "lm_batch": 8, "lm_step_s": 2.0}
    cfg = config.load("demo").replace(data={"n_folds": 4}, train={"epochs": 2},
                                      lm={"epochs": 1, "block_size": 130, "include_test": True})
    table = environment.project(measured, cfg)["minutes"]
    arm = "classifier, one arm (FiT or ITPT-FiT)"
    # EDA: 1,200 comments at 120/s = 10 s
    assert table["EDA (read, tokenize)"] == 0.2
    # 4 folds x 2 epochs x 750 training rows at 10/s = 600 s; validation 2 x 1,000 + test 4 x 200
    # = 2,800 comments at 50/s = 56 s; 656 s = 10.93 min
    assert table[arm] == 10.9
    # 1,200 comments x 100 tokens in blocks of 128 (+2 special) = 937.5 blocks, 8 a step:
    # 117.19 steps x 2 s = 234.4 s = 3.91 min
    assert table["masked-LM stage"] == 3.9
    assert table["frozen-features baseline"] == 0.4  # 1,200 comments at 50/s = 24 s
    # without the test comments: 100,000 tokens → 97.66 steps x 2 s = 195.3 s
    assert environment.project(measured, cfg.replace(lm={"include_test": False}))["minutes"]["masked-LM stage"] == 3.3
    # two data-parallel processes halve training and the LM stage (656 / 2 = 328 s, 234.4 / 2 = 117.2 s)
    two = environment.project(measured, cfg, world_size=2)["minutes"]
    assert (two[arm], two["masked-LM stage"], two["EDA (read, tokenize)"]) == (5.5, 2.0, 0.2)


def launched_worker(model_dir: str, out: str) -> None:
    """test_distributed's two-rank training, but with nothing set by hand: rank, world size and
    the rendezvous come from what accelerate.notebook_launcher puts in the environment."""
    import torch

    import test_distributed as td
    from kagglebert.core import distributed
    from kagglebert.core.batching import LengthBucketBatchSampler
    from kagglebert.core.engine import train_epoch

    torch.set_num_threads(1)
    assert distributed.init_from_env() and distributed.world_size() == td.WORLD
    try:
        tokens, labels, pad_id = td.data(model_dir)
        model, collate = td.build(model_dir, tokens, labels, pad_id)
        sampler = LengthBucketBatchSampler(tokens.lengths, td.PER_RANK_BATCH, bucket_size=2, seed=0)
        loader = torch.utils.data.DataLoader(range(len(td.TEXTS)), batch_sampler=distributed.shard(sampler), collate_fn=collate)
        train_epoch(td.training_for(model, td.compute_loss, steps=len(loader)), loader, progress=False, log_every=1)
        if distributed.is_main():
            torch.save(model.state_dict(), out)
        distributed.barrier()
    finally:
        torch.distributed.destroy_process_group()


def test_notebook_launcher_two_processes_give_the_one_process_result(tiny_model_dir, tmp_path):
    import torch
    from accelerate import notebook_launcher

    import test_distributed as td
    from kagglebert.core.batching import LengthBucketBatchSampler
    from kagglebert.core.engine import train_epoch
    from kagglebert.notebook import environment

    out = tmp_path / "rank0.pt"
    notebook_launcher(launched_worker, args=(str(tiny_model_dir), str(out)), num_processes=td.WORLD,
                      use_port=str(environment.free_port()))
    launched = torch.load(out, weights_only=True)

    # one process on the global batches: global batch k = rank 0's k-th batch + rank 1's k-th batch
    tokens, labels, pad_id = td.data(str(tiny_model_dir))
    model, collate = td.build(str(tiny_model_dir), tokens, labels, pad_id)
    batches = list(LengthBucketBatchSampler(tokens.lengths, td.PER_RANK_BATCH, bucket_size=2, seed=0))
    global_batches = [batches[i] + batches[i + 1] for i in range(0, len(batches) - 1, td.WORLD)]
    loader = torch.utils.data.DataLoader(range(len(td.TEXTS)), batch_sampler=global_batches, collate_fn=collate)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    train_epoch(td.training_for(model, td.compute_loss, steps=len(loader)), loader, progress=False, log_every=1)
    changed = 0
    for name, value in model.state_dict().items():
        torch.testing.assert_close(launched[name], value, rtol=1e-4, atol=5e-6, msg=name)
        changed += int(not torch.equal(value, start[name]))
    assert changed > 10



AFTER_A_PARALLEL_OP = """
import sys, torch
from kagglebert.core.config import Config
from kagglebert.notebook import environment

def stage(cfg):  # a parallel CPU op in each worker: what DDP's parameter broadcast does first
    big = torch.ones(4_000_000)
    return int(torch.cat([big, big]).sum())

torch.set_num_threads(2)
big = torch.ones(4_000_000)
torch.cat([big, big]).sum()  # the notebook ran torch on its CPU threads before launching
print(environment.launch(stage, Config(), num_processes=2))
"""


def test_launch_survives_a_notebook_that_already_ran_parallel_cpu_ops(tmp_path):
    """GNU OpenMP's thread pool does not survive fork: without one thread per worker, a notebook that
    had used torch on the CPU before `launch` left both workers waiting forever in their first op."""
    import signal
    import subprocess
    import sys

    script = tmp_path / "notebook.py"
    script.write_text(AFTER_A_PARALLEL_OP)
    notebook = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "OMP_NUM_THREADS": "2"}, start_new_session=True)
    try:
        out, err = notebook.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        os.killpg(notebook.pid, signal.SIGKILL)  # the workers too: hung ones would outlive the test
        notebook.communicate()
        pytest.fail("launch hung: the forked workers never finished their first parallel CPU op")
    assert notebook.returncode == 0, err[-2000:]
    assert out.strip().splitlines()[-1] == "8000000"

# --- work carried between notebooks -------------------------------------------------------------

def tree_snapshot(root: Path) -> dict:
    return {p.relative_to(root): (p.stat().st_mtime_ns, p.stat().st_size) for p in root.rglob("*") if p.is_file()}


def test_a_later_notebook_reuses_an_attached_earlier_output_read_only(kaggle_root, tiny_model_dir, sample_dir, tmp_path, monkeypatch, caplog):
    """Kaggle: notebook 3 ran in its own /kaggle/working and was saved; notebook 4 attaches that
    output (<input>/<notebook>/runs/) and must reuse the LM and the folds, not train them again."""
    from kagglebert.core.runs import reader
    from kagglebert.notebook import profiles, report
    from kagglebert.stages import submit

    monkeypatch.delenv("KAGGLEBERT_PROFILE", raising=False)
    monkeypatch.delenv("KAGGLEBERT_OVERRIDES", raising=False)
    tiny = [f"data.dir={sample_dir}", f"model.name={tiny_model_dir}", "data.max_rows=120", "data.n_folds=2",
            "train.epochs=1", "lm.epochs=1", "lm.include_test=false"]
    earlier = kaggle_root / "notebook-3-output" / "runs"
    before = profiles.variants(profiles.load("quick", [*tiny, f"run.runs_dir={earlier}"]))["ITPT-FiT"]
    trained = profiles.train_run(before)  # LM stage + both folds, in the "earlier notebook"
    snapshot = tree_snapshot(kaggle_root)

    here = tmp_path / "working" / "runs"
    cfg = profiles.variants(profiles.load("quick", [*tiny, f"run.runs_dir={here}", f"submit.dir={tmp_path / 'subs'}"]))["ITPT-FiT"]
    table = profiles.reuse_earlier(cfg)
    assert list(table["used"]) == ["attached (read-only)", "attached (read-only)"]  # the LM stage, then the run
    assert list(table["path"]) == [str(reader(before).lm_dir), str(earlier / "quick-itpt")]
    assert reader(cfg).lm_dir.is_symlink()  # linked, not copied
    assert profiles.train_run(cfg) == trained  # read back: nothing trained again
    with caplog.at_level(logging.INFO, logger="kagglebert"):
        profiles.lm_run(cfg)  # notebook 2 rerun on top of notebook 3's output
    assert f"lm: reusing {reader(cfg).lm_dir} → {reader(before).lm_dir.resolve()}" in caplog.text  # names the attached output
    assert len(report.fold_table(cfg)) == 3  # two folds and the mean, read through the mirror
    assert submit.main(cfg).path.is_file()
    assert tree_snapshot(kaggle_root) == snapshot  # the attached output was only read
    assert profiles.reuse_earlier(cfg)["used"].tolist() == ["this notebook's runs/"] * 2  # now it is here

    other = profiles.variants(profiles.load("quick", [*tiny, "train.lr=1e-5", f"run.runs_dir={tmp_path / 'other'}"]))["ITPT-FiT"]
    used = profiles.reuse_earlier(other).loc["run quick-itpt", "used"]
    assert used.startswith("not reused") and "other settings" in used

    # what each notebook says of a run it would not train: notebook 2 trains only the LM, notebook 4
    # only the chosen arm and the baselines (FiT is left out of its ranking when not attached)
    fresh = profiles.variants(profiles.load("quick", [*tiny, f"run.runs_dir={tmp_path / 'fresh'}"]))
    assert list(profiles.reuse_earlier(fresh["ITPT-FiT"], lm_only=True).index) == ["LM stage of quick-itpt (_lm/" + reader(fresh["ITPT-FiT"]).lm_dir.name + ")"]
    table = profiles.reuse_earlier(*fresh.values(), trained_here=[fresh["ITPT-FiT"]])
    assert table.loc["run quick-fit", "used"] == "not found, and this notebook does not train it (left out below)"
    assert table.loc["run quick-itpt", "used"] == "attached (read-only)"  # notebook 3's output, still attached


def test_launch_runs_a_stage_in_two_processes_the_notebook_way(tiny_model_dir, sample_dir, tmp_path, monkeypatch):
    """`profiles.train_run` on a two-GPU machine: the k-fold stage in two gloo processes started by
    accelerate.notebook_launcher; the notebook's process gets the finished run's metrics back."""
    import torch.distributed as dist

    from kagglebert.core.runs import reader
    from kagglebert.notebook import environment, profiles
    from kagglebert.stages import pipeline

    monkeypatch.delenv("KAGGLEBERT_PROFILE", raising=False)
    monkeypatch.delenv("KAGGLEBERT_OVERRIDES", raising=False)
    cfg = profiles.variants(profiles.load("quick", [f"data.dir={sample_dir}", f"model.name={tiny_model_dir}", "data.max_rows=120",
                                                    "data.n_folds=2", "train.epochs=1", f"run.runs_dir={tmp_path}"]))["FiT"]
    seen = tmp_path / "ranks"
    seen.mkdir()

    def recording_fit(config):  # which process ran the stage, under which world size
        (seen / f"{os.getpid()}").write_text(f"{os.environ.get('RANK', '-')}/{os.environ.get('WORLD_SIZE', '1')}")
        return pipeline.fit(config)

    metrics = environment.launch(recording_fit, cfg, num_processes=2)
    assert sorted(p.read_text() for p in seen.iterdir()) == ["-/1", "0/2", "1/2"]  # two workers, then the notebook reads back
    assert metrics == json.loads(reader(cfg).metrics_path.read_text())
    assert all(reader(cfg).fold_complete(k) for k in range(2))
    assert not dist.is_initialized()  # the notebook's own process never joined a process group


def test_the_device_cell_times_batches_of_typical_length():
    """Training batches are length-bucketed: the timed batch is the comments nearest the mean
    length, not the first ones padded to their longest (which projected 3-5x too slow)."""
    from kagglebert.notebook.environment import typical_rows

    lengths = [128, 12, 40, 45, 128, 50, 38, 300]  # mean 92.625
    assert typical_rows(lengths, 3) == [0, 4, 5]  # 128, 128, 50: the three nearest 92.6
    assert typical_rows(lengths, 100) == list(range(8))


# --- the platform, the working folder, one-line errors in a notebook -------------------------------

@pytest.fixture()
def off_kaggle(tmp_path, monkeypatch):
    """Neither Kaggle nor Colab: no inputs folder, no COLAB_* variable (this machine has no /kaggle)."""
    if paths.KAGGLE_WORKING.is_dir():
        pytest.skip("this machine has /kaggle/working")
    monkeypatch.setenv(paths.KAGGLE_INPUT_ENV, str(tmp_path / "no-inputs"))
    for key in [k for k in os.environ if k.startswith(paths.COLAB_ENV_PREFIX)]:
        monkeypatch.delenv(key)
    monkeypatch.delenv(paths.WORKING_ENV, raising=False)
    monkeypatch.delenv("KAGGLEBERT_OVERRIDES", raising=False)
    monkeypatch.delenv("KAGGLEBERT_PROFILE", raising=False)
    paths._reported.clear()
    return tmp_path


def test_platform_is_told_by_what_each_one_has(off_kaggle, monkeypatch, kaggle_root):
    assert paths.platform() == "kaggle"  # kaggle_root exists
    monkeypatch.setenv(paths.KAGGLE_INPUT_ENV, str(off_kaggle / "no-inputs"))
    assert paths.platform() == "local"
    monkeypatch.setenv("COLAB_RELEASE_TAG", "release-colab-sim")  # set by Colab's runtime
    assert paths.platform() == "colab"


def test_working_folder_is_never_inside_an_installed_package(off_kaggle, monkeypatch):
    from kagglebert.deploy import export
    from kagglebert.notebook import profiles

    assert paths.source_root() == paths.REPO_ROOT and paths.working_dir() == paths.REPO_ROOT  # this clone
    site = off_kaggle / "site-packages"  # an installed wheel: the package's parent is site-packages
    site.mkdir()
    monkeypatch.setattr(paths, "REPO_ROOT", site)
    work = off_kaggle / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert paths.source_root() is None and paths.working_dir() == work
    cfg = profiles.load("quick")
    assert (Path(cfg.run.runs_dir), Path(cfg.submit.dir)) == (work / "runs", work / "submissions")
    assert export.exports_dir() == work / "exports" and export.output_dir() == work / "submissions"
    with pytest.raises(Exception) as err:
        export.locate_export()
    assert str(work / "exports") in str(err.value) and "site-packages" not in str(err.value)
    assert "/kaggle" not in str(err.value) and "Add Input" not in str(err.value)
    monkeypatch.setenv(paths.WORKING_ENV, str(off_kaggle / "drive"))  # a setting wins
    assert Path(profiles.load("quick").run.runs_dir) == off_kaggle / "drive" / "runs"
    assert export.output_dir() == off_kaggle / "drive"


@pytest.mark.parametrize("where", ["local", "colab"])
def test_full_profile_off_kaggle_says_how_to_set_data_dir_in_one_line(off_kaggle, monkeypatch, where):
    from kagglebert.notebook import profiles, session

    if where == "colab":
        monkeypatch.setenv("COLAB_RELEASE_TAG", "release-colab-sim")
    monkeypatch.setenv("KAGGLEBERT_PROFILE", "full")
    with pytest.raises(ConfigError) as err:
        profiles.load("quick")
    shown = session.one_line(err.value)
    assert "\n" not in shown and shown.startswith("ConfigError: ")
    assert "/kaggle" not in shown and "Add Input" not in shown and "attach" not in shown.lower()
    assert "data.dir=FOLDER" in shown and "KAGGLEBERT_OVERRIDES" in shown and "profiles.load(PROFILE" in shown
    assert ("/content/drive/MyDrive" in shown) == (where == "colab")


def test_a_kagglebert_error_in_a_cell_is_one_line(off_kaggle, monkeypatch, capsys):
    from IPython.core.interactiveshell import InteractiveShell

    from kagglebert.notebook import session

    monkeypatch.setenv("COLAB_RELEASE_TAG", "release-colab-sim")
    shell = InteractiveShell.instance()
    try:
        assert session.start() == "colab"
        note = capsys.readouterr().out
        assert f"go to {paths.working_dir()}" in note and "drive.mount" in note and paths.WORKING_ENV in note
        shell.run_cell("from kagglebert.core.errors import RunError\nraise RunError('runs/x: not finished; train it first')")
        shown = capsys.readouterr()
        assert "Traceback" not in shown.out + shown.err
        assert "RunError: runs/x: not finished; train it first" in shown.out + shown.err
        shell.run_cell("raise ValueError('a bug')")  # anything else keeps its traceback
        shown = capsys.readouterr()
        assert "Traceback" in shown.out + shown.err or "----" in shown.out + shown.err
    finally:
        InteractiveShell.clear_instance()


def test_free_memory_on_a_cpu_is_measured_not_none():
    import torch

    from kagglebert.notebook import environment

    memory = environment._memory(torch.device("cpu"))
    if Path("/proc/meminfo").is_file():  # Linux says what is available; elsewhere the report says it is not known
        assert 0 < memory["free_gb"] <= memory["memory_gb"]
