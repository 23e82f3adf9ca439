"""Where kagglebert's progress and warning lines go: the process's stderr as it is when a line is
logged. The CLI and the notebooks' first cell both set it up (`to_stderr`)."""
from __future__ import annotations

import logging
import sys


class CurrentStderr(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is at each line (a notebook kernel's stream, a caller's
    redirect), never to a stream an earlier setup bound that may be closed by now."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler's own setup assigns it: the current stderr wins
        pass


def to_stderr(level: int = logging.INFO) -> None:
    """Every logged line as its bare message on the current stderr (replacing earlier handlers)."""
    logging.basicConfig(level=level, format="%(message)s", handlers=[CurrentStderr()], force=True)
