"""Every file kagglebert writes goes through here: written whole to a hidden temporary sibling
unique to this process, then renamed over its target, so a reader (or a resumed run after a
kill -9) never sees half a file and two processes on one folder never share a temporary file. A
failed write (read-only folder, full disk) removes its temporary file and becomes one `RunError`
line naming the path."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path
from typing import Callable

from .errors import RunError

Content = str | bytes | Callable[[Path], None]  # text, bytes, or a writer given the temporary path


def temporary_path(path: Path) -> Path:
    """A hidden sibling of `path` unique to this process; it keeps the suffix, so writers that add
    one when it is missing (np.save, savefig) keep the name."""
    path = Path(path)
    return path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")


def _write(tmp: Path, content: Content) -> None:
    if isinstance(content, str):
        tmp.write_text(content, encoding="utf-8")
    elif isinstance(content, bytes):
        tmp.write_bytes(content)
    else:
        content(tmp)


def _failed(path: Path, err: OSError) -> RunError:
    return RunError(f"{path}: cannot write: {err.strerror or err}")


def write_atomic(path: Path, content: Content) -> Path:
    """Write `content` to `path` whole (parents created), replacing any file there."""
    path = Path(path)
    tmp = temporary_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _write(tmp, content)
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise _failed(path, err) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_new(path: Path, content: str | bytes) -> bool:
    """Like `write_atomic`, but never over an existing file: an identical one is kept (returns
    True), a different one is refused. The temporary file is hard-linked into place, which fails
    if the target appeared meanwhile."""
    path = Path(path)
    data = content.encode("utf-8") if isinstance(content, str) else content
    if path.exists():
        if path.read_bytes() == data:
            return True
        raise RunError(f"{path}: exists with other content; choose another name or delete it")
    tmp = temporary_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(data)
        os.link(tmp, path)
    except FileExistsError:
        raise RunError(f"{path}: appeared while writing; not overwritten") from None
    except OSError as err:
        raise _failed(path, err) from None
    finally:
        tmp.unlink(missing_ok=True)
    return False


@contextlib.contextmanager
def atomic_dir(path: Path):
    """Yields a fresh temporary folder to fill; on success it replaces `path` whole (a model
    folder is either the old one or the new one, never a mix). On failure it is removed."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        yield tmp
        # the old folder is renamed away, not deleted in place: a kill during a (long) delete would
        # leave a half-deleted folder where a whole one was; between the two renames there is none
        old = path.with_name(f".{path.name}.{os.getpid()}.old")
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise _failed(path, err) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_json(path: Path, payload: dict) -> Path:
    return write_atomic(path, json.dumps(payload, indent=2, default=float) + "\n")


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_csv(path: Path, frame, **to_csv_args) -> Path:
    """A DataFrame as CSV (index off unless asked for)."""
    to_csv_args.setdefault("index", False)
    return write_atomic(path, lambda tmp: frame.to_csv(tmp, **to_csv_args))


def write_figure(path: Path, figure, **savefig_args) -> Path:
    return write_atomic(path, lambda tmp: figure.savefig(tmp, **savefig_args))
