"""One process per run folder (and per shared LM output): an flock held for as long as the owning
`Run` lives, re-entrant within a process, dropped by the kernel when a process dies."""
from __future__ import annotations

import os
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no flock; runs are not locked there
    fcntl = None

from .errors import RunError

_locks: dict[str, list] = {}  # resolved folder → [file descriptor, open Runs holding it]


def acquire(folder: Path, lock_path: Path, busy: str = "in use by another kagglebert process") -> str:
    """flock `lock_path` (guarding `folder`) for this process (re-entrant within it); returns the
    registry key, or "" when an ancestor process holds it. The kernel drops a dead process's lock,
    so a stale lock cannot outlive a kill -9; the pid written into the file is for the message."""
    key = str(lock_path.resolve())
    if key in _locks:
        _locks[key][1] += 1
        return key
    try:
        # not an atomic write: the lock lives on this one inode, which a rename would replace
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise RunError(f"{lock_path}: cannot write: {err.strerror or err}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        if holder.isdigit() and int(holder) in _ancestors():
            # launched by the process holding the lock (a notebook starting torchrun or
            # notebook_launcher workers for a run it opened): it works on that process's behalf
            return ""
        raise RunError(
            f"{folder}: {busy} (pid {holder}); wait for it to finish (or stop it), or use another run.name"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _locks[key] = [fd, 1]
    return key


def _ancestors() -> set[int]:
    """The pids of this process's parent, grandparent, … (Linux /proc; elsewhere the parent only)."""
    found, pid = set(), os.getppid()
    while pid > 1 and pid not in found:
        found.add(pid)
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        pid = int(stat.rsplit(")", 1)[1].split()[1])  # the field after the (command) is the state, then ppid
    return found


def release(key: str) -> None:
    held = _locks.get(key)
    if held is None:
        return
    held[1] -= 1
    if held[1] <= 0:
        del _locks[key]
        os.close(held[0])  # closing the descriptor drops the flock


def release_locks() -> None:
    """Drop every run lock this process holds (the CLI, at the end of a command)."""
    for key in list(_locks):
        os.close(_locks.pop(key)[0])
