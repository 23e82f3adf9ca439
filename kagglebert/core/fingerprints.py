"""Fingerprints of a run's inputs: the sha256 of a file, and of every file of a folder (a
checkpoint, the LM stage's output). Memoised per process by each file's size, modification time and
inode: the stages of one `run` hash each file once."""
from __future__ import annotations

import hashlib
from pathlib import Path

_hashes: dict[tuple, str] = {}


def file_sha256(path: Path) -> str:
    """sha256 of a file, memoised by (path, size, mtime, inode): stages of one process hash once."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ino)
    if key not in _hashes:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _hashes[key] = digest.hexdigest()
    return _hashes[key]


def folder_fingerprints(folder: Path) -> dict[str, str]:
    """file name → sha256 for the regular, non-hidden files directly in `folder` (a checkpoint:
    config, weights, tokenizer)."""
    return {p.name: file_sha256(p) for p in sorted(Path(folder).iterdir()) if p.is_file() and not p.name.startswith(".")}
