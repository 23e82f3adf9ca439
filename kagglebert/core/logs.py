"""Where kagglebert's progress and warning lines go: the process's stderr as it is when a line is
logged. The CLI and the notebooks' first cell both set it up (`to_stderr`). Preflight holds back
its warnings until every check has passed (`warnings_after_success`)."""
from __future__ import annotations

import contextlib
import logging
import sys

log = logging.getLogger("kagglebert")


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


class _Held(logging.Handler):
    def __init__(self):
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def warnings_after_success():
    """Hold back what the checks log (rare labels, empty texts) until every check has passed: a
    failed preflight prints its one error line alone, a passing one prints its warnings."""
    held = _Held()
    propagate = log.propagate
    log.addHandler(held)
    log.propagate = False
    try:
        yield
    finally:
        log.removeHandler(held)
        log.propagate = propagate
    for record in held.records:  # reached only without an exception
        log.handle(record)
