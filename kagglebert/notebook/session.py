"""The notebooks' setup call (the last line of every notebook's first cell): progress logging,
kagglebert errors shown as one line instead of a traceback, and on Colab where `runs/` lives.

A kagglebert error (core/errors.KagglebertError) raised in a cell stops the cell as any error
does, but shows only its message, plus, for a setting (ConfigError), how to change a setting from
a notebook. Other exceptions keep IPython's full traceback: they are bugs, and the traceback is
what a bug report needs.
"""
from __future__ import annotations

from ..core import logs
from ..core.errors import ConfigError, KagglebertError
from ..core.paths import WORKING_ENV, platform, working_dir

# how to change a setting without editing library code; profiles.load applies both
SETTING_HINT = ("to change a setting in a notebook: profiles.load(PROFILE, [\"section.key=value\"]) in the config cell, "
                "or os.environ[\"KAGGLEBERT_OVERRIDES\"] = \"section.key=value\" before it")
DRIVE_EXAMPLE = "/content/drive/MyDrive/kagglebert"


def one_line(error: BaseException) -> str:
    """The text a notebook shows for a kagglebert error: its message on one line and, for a
    setting, how to set one from a notebook."""
    text = " ".join(str(error).split("\n"))
    if isinstance(error, ConfigError):
        text = f"{text} ({SETTING_HINT})"
    return f"{type(error).__name__}: {text}"


def _show(shell, etype, value, tb, tb_offset=None) -> list[str]:
    """IPython's custom exception handler: shows this one line as the cell's error (in a kernel,
    an error output with the exception's name and message; IPython does not show what a handler
    returns, so the handler shows it)."""
    stb = [one_line(value)]
    shell._showtraceback(etype, value, stb)
    return stb


def colab_note() -> str:
    """Where runs/ lives on Colab and how to keep it on Drive."""
    base = working_dir()
    if str(base).startswith("/content/drive/"):
        return f"Colab: runs/, submissions/ and exports/ go to {base} on your Drive: they outlive the runtime"
    return (f"Colab: runs/, submissions/ and exports/ go to {base}, which a disconnected runtime loses. To keep them, "
            f"mount Drive (from google.colab import drive; drive.mount('/content/drive')) and set "
            f"os.environ['{WORKING_ENV}'] = '{DRIVE_EXAMPLE}' before the config cell, in every notebook")


def start() -> str:
    """Set up a notebook kernel: stage progress to the output, one-line kagglebert errors, and on
    Colab a note on where runs/ lives. Returns the platform ('kaggle' | 'colab' | 'local')."""
    logs.to_stderr()  # the stages report progress here
    try:
        from IPython import get_ipython
    except ImportError:  # plain Python: exceptions stay as they are
        shell = None
    else:
        shell = get_ipython()
    if shell is not None:
        shell.set_custom_exc((KagglebertError,), _show)
    where = platform()
    if where == "colab":
        print(colab_note())
    return where
