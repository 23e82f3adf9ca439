"""Errors a user can fix. The CLI prints them as one line (`error: ...`) and exits with status 2."""


class KagglebertError(Exception):
    """Base class: the message alone must tell the user what is wrong and where."""


class ConfigError(KagglebertError):
    pass


class DataError(KagglebertError):
    """Bad input data: the message names the file, the row and the column."""


class RunError(KagglebertError):
    """A run folder or output that cannot be used as asked (config mismatch, missing stage output)."""


class Interrupted(KagglebertError):
    """Ctrl-C (or SIGTERM at a session's end): the CLI prints the message alone and exits 130.
    The message says where the run stopped and that the same command resumes it."""
