"""Progress bars, and the sizes from which a CPU-side step shows one. At full size (2019: 1.8M
rows) reading train.csv, splitting the folds, the EDA and tokenizing each take from seconds to
minutes; at the bundled sample's size they take under a second and draw nothing."""
from __future__ import annotations

import contextlib
import threading

from tqdm.auto import tqdm

PROGRESS_FROM_TEXTS = 50_000  # texts tokenized / rows analysed: a bar from this many (a full-size run), none for quick runs
PROGRESS_FROM_BYTES = 200_000_000  # a CSV read with a bar from this size (2019's train.csv is 1 GB, 2018's 68 MB takes 2 s)
PROGRESS_FROM_FOLD_ROWS = 500_000  # rows split into folds: iterstrat takes 30 s on 1.8M rows, 1.4 s on 2018's 160k


class ProgressBar(tqdm):
    # what close() (run again by __del__) reads on a bar whose __init__ a Ctrl-C cut short: tqdm up
    # to 4.67 reads self.disable unguarded there and prints an AttributeError after the one-line message
    disable = True


@contextlib.contextmanager
def elapsed_bar(desc: str, disable: bool = False, every_s: float = 1.0):
    """A bar for a library call that reports no progress of its own (iterstrat's fold split): its
    elapsed time, redrawn every `every_s` by a daemon thread, so a long step shows it is running
    without claiming a share done."""
    bar = ProgressBar(total=None, desc=desc, bar_format="{desc}: {elapsed} elapsed", disable=disable, leave=False)
    stop = threading.Event()

    def redraw() -> None:
        while not stop.wait(every_s):
            bar.refresh()

    ticker = threading.Thread(target=redraw, name=f"kagglebert-{desc}", daemon=True)
    if not disable:
        ticker.start()
    try:
        yield bar
    finally:
        stop.set()
        if ticker.is_alive():
            ticker.join()
        bar.close()
