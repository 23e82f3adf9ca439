"""Reading and checking the competition files. Every failed check is one line naming the file, the
row (1 = the first data row under the header; 0 = the header) and the column.

Every cell is read as the string in the file: an id such as `NA`, `null` or `None` is an id, not a
missing value, and the checks below decide what is valid. A `.zip` (as Kaggle ships the files)
must hold exactly one file; text must be UTF-8 (a byte-order mark is allowed)."""
from __future__ import annotations

import csv
import hashlib
import io
import logging
import re
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .bias import parse_shares
from .errors import DataError
from .paths import SAMPLE_DATA, find_data_dir
from .progress import PROGRESS_FROM_BYTES, ProgressBar
from .tables import check_unique_ids, require_columns, require_rows
from .tasks import TaskSpec

log = logging.getLogger("kagglebert")

UTF8_BOM = b"\xef\xbb\xbf"
UNDECODABLE = re.compile("[\udc80-\udcff]")  # what surrogateescape turns a non-UTF-8 byte into


@dataclass
class CompetitionData:
    task: TaskSpec
    dir: Path
    train: pd.DataFrame  # id + text + label columns, labels as float32
    test: pd.DataFrame  # id + text (with data.max_test_rows: the deterministic test subsample)
    sample_submission: pd.DataFrame  # as read: id + label columns, restricted to `test`'s ids
    train_file: Path
    test_file: Path
    sample_submission_file: Path | None = None
    fingerprints: dict[str, str] = field(default_factory=dict)  # train.csv/… → sha256 of its (unzipped) bytes
    test_subsampled: bool = False  # data.max_test_rows cut the test rows: a submission Kaggle would reject

    @property
    def labels(self) -> np.ndarray:
        return self.train[self.task.label_columns].to_numpy(np.float32)

    @property
    def truth(self) -> np.ndarray:
        """What the task's score reads as `y_true`: the label columns, then its score columns
        (2019: the nine scored identities, NaN where not annotated). For 2018 the labels alone."""
        return self.train[[*self.task.label_columns, *self.task.score_columns]].to_numpy(np.float64)

    def targets(self, aux_columns: list[str]) -> np.ndarray:
        """The training targets: the label columns, then the auxiliary ones (train.aux_columns)."""
        return self.train[[*self.task.label_columns, *aux_columns]].to_numpy(np.float32)

    @property
    def train_texts(self) -> list[str]:
        return self.train[self.task.text_column].tolist()

    @property
    def test_texts(self) -> list[str]:
        return self.test[self.task.text_column].tolist()

    @property
    def sample_run(self) -> bool:
        """Predictions from this data cannot be a competition submission: the test rows were cut
        by data.max_test_rows, or the data is the sample bundled with the package."""
        return self.test_subsampled or self.dir.resolve().parent == SAMPLE_DATA.resolve()


def find_file(data_dir: Path, name: str) -> Path:
    """`train.csv`, or the `train.csv.zip` Kaggle ships."""
    for candidate in (data_dir / name, data_dir / f"{name}.zip"):
        if candidate.is_file():
            return candidate
    raise DataError(f"{data_dir / name}: file not found (nor {name}.zip)")


def zip_members(archive: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    """The files in a Kaggle download's zip (folders and macOS' resource forks left out); one is expected."""
    return [m for m in archive.infolist() if not m.is_dir() and not m.filename.startswith("__MACOSX/")]


def read_bytes(path: Path) -> bytes:
    """The file's bytes; for a `.zip`, its one member's bytes."""
    path = Path(path)
    try:
        if path.suffix.lower() != ".zip":
            return path.read_bytes()
        with zipfile.ZipFile(path) as archive:
            members = zip_members(archive)
            if len(members) != 1:
                names = ", ".join(m.filename for m in members) or "nothing"
                raise DataError(f"{path}: a zip must hold exactly one CSV file; it holds {names}")
            return archive.read(members[0])
    except zipfile.BadZipFile as err:
        raise DataError(f"{path}: not a readable zip archive ({err}); download it again") from None
    except (zipfile.LargeZipFile, NotImplementedError, RuntimeError, EOFError) as err:  # unsupported method, encrypted, truncated
        raise DataError(f"{path}: cannot be unpacked: {err}") from None
    except OSError as err:
        raise DataError(f"{path}: cannot be read: {err.strerror or err}") from None


def _header(text: str, path: Path) -> list[str]:
    header = next(csv.reader(io.StringIO(text)), None)
    if not header or all(not name.strip() for name in header):
        raise DataError(f"{path}: empty file (no header row)")
    seen: dict[str, int] = {}
    for position, name in enumerate(header):
        if name in seen:
            raise DataError(f"{path}: row 0 (header), column {name!r}: appears twice (columns {seen[name] + 1} and {position + 1})")
        seen[name] = position
    return header


def _first_undecodable(frame: pd.DataFrame, header: list[str], path: Path) -> DataError:
    """The first cell (by row, then column) holding a byte that is not UTF-8."""
    for name in header:
        if UNDECODABLE.search(name):
            raw = UNDECODABLE.search(name).group()
            return DataError(f"{path}: row 0 (header): not UTF-8 (byte 0x{ord(raw) - 0xDC00:02x}); save the file as UTF-8")
    hits = [(int(np.flatnonzero(frame[c].str.contains(UNDECODABLE, regex=True).to_numpy())[0]), j, c)
            for j, c in enumerate(frame.columns) if frame[c].str.contains(UNDECODABLE, regex=True).any()]
    row, _, column = min(hits)
    byte = ord(UNDECODABLE.search(frame[column].iloc[row]).group()) - 0xDC00
    return DataError(f"{path}: row {row + 1}, column {column!r}: not UTF-8 (byte 0x{byte:02x}); save the file as UTF-8")


def _first_long_row(body: bytes, header: list[str]) -> tuple[int, int] | None:
    """(row, fields) of the first row with more fields than the header; None when the csv module
    finds none (or cannot parse the file either)."""
    records = csv.reader(io.StringIO(body.decode("utf-8", errors="surrogateescape")))
    try:
        next(records)
        for row, record in enumerate(records, start=1):
            if len(record) > len(header):
                return row, len(record)
    except csv.Error:
        pass
    return None


def _long_row_error(path: Path, header: list[str], found: tuple[int, int]) -> DataError:
    row, fields = found
    return DataError(f"{path}: row {row}: {fields} fields, the header has {len(header)} (a comma outside quotes?)")


class _Reread(Exception):
    """The fast reader met something it does not explain: read again the careful way."""


def open_stream(path: Path):
    """A binary stream of the file's bytes (a `.zip`'s one member), never the whole file in memory."""
    path = Path(path)
    try:
        if path.suffix.lower() != ".zip":
            return open(path, "rb")
        archive = zipfile.ZipFile(path)
        members = zip_members(archive)
        if len(members) != 1:
            raise _Reread  # read_bytes says what is wrong, in one line
        return archive.open(members[0])
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError, EOFError, OSError) as err:
        raise _Reread from err


def content_size(path: Path) -> int:
    """Bytes `open_stream` gives (a `.zip`'s member unpacked); 0 when that cannot be told."""
    try:
        if path.suffix.lower() != ".zip":
            return path.stat().st_size
        with zipfile.ZipFile(path) as archive:
            return sum(m.file_size for m in zip_members(archive))
    except (zipfile.BadZipFile, OSError):
        return 0


def stream_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open_stream(path) as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


READ_CHUNK_ROWS = 200_000  # rows parsed at a time: every column of a chunk, then only the kept ones stay


def fast_read(path: Path, columns: list[str] | None, numeric: tuple[str, ...]) -> tuple[pd.DataFrame, str]:
    """The common case at full size: a well-formed UTF-8 file streamed in chunks, keeping only the
    `columns` asked for (ids and text as strings, `numeric` columns straight to float32, an empty
    cell NaN). Every field of every row is still parsed (pandas checks each row's field count; its
    `usecols` would skip that check). Anything unusual (bad bytes, a long row, a non-number in a
    numeric column, a bad zip) raises `_Reread`, and `read_table` reads the file again the careful
    way, which names row and column."""
    digest = stream_sha256(path)
    with open_stream(path) as handle:
        head = handle.read(1 << 16)
    text = head[len(UTF8_BOM):] if head.startswith(UTF8_BOM) else head
    header = _header(text.decode("utf-8", errors="surrogateescape"), path)
    if any(UNDECODABLE.search(name) for name in header) or b'"' in text.split(b"\n", 1)[0]:
        raise _Reread  # a quoted or undecodable header: the careful reader handles it
    wanted = [name for name in header if columns is None or name in columns]
    numbers = [name for name in wanted if name in numeric]
    chunks = []
    size = content_size(path)
    try:
        with (open_stream(path) as handle, warnings.catch_warnings(),
              ProgressBar(total=size, desc=f"read {path.name}", unit="B", unit_scale=True, leave=False,
                          disable=size < PROGRESS_FROM_BYTES) as bar):
            warnings.simplefilter("error", pd.errors.ParserWarning)
            reader = pd.read_csv(handle, index_col=False, chunksize=READ_CHUNK_ROWS,
                                 dtype={name: (np.float32 if name in numbers else str) for name in header},
                                 keep_default_na=False, na_values={name: [""] for name in numbers}, encoding="utf-8-sig",
                                 encoding_errors="strict")
            for chunk in reader:
                if list(chunk.columns) != header:
                    raise _Reread
                chunks.append(chunk[wanted])
                if not bar.disable:
                    bar.update(handle.tell() - bar.n)  # bytes the parser has taken from the file (it reads ahead of the rows)
    except (ValueError, pd.errors.ParserError, pd.errors.ParserWarning, UnicodeDecodeError, OSError, zipfile.BadZipFile) as err:
        raise _Reread from err
    if not chunks:
        raise _Reread  # a header alone: the careful reader gives the empty frame
    frame = pd.concat(chunks, ignore_index=True) if len(chunks) > 1 else chunks[0]
    return frame, digest


def read_table(path: Path, columns: list[str] | None = None, numeric: tuple[str, ...] = ()) -> tuple[pd.DataFrame, str]:
    """(every cell as a string — or, for `numeric` columns, float32 — and the sha256 of the file's
    bytes). One-line DataError for an unreadable file, a corrupt zip, a repeated header name, bytes
    that are not UTF-8 (naming row and column) and rows that do not parse. `columns`: keep only
    these (the others are never held in memory; a missing one is left to `require_columns`).

    A well-formed file is streamed (`fast_read`: 1.8M rows of 45 columns in seconds, holding only
    the kept columns); any problem sends it through the careful reader below, which decodes the
    whole file as strings to name the row and column."""
    path = Path(path)
    try:
        return fast_read(path, columns, numeric)
    except _Reread:
        pass
    raw = read_bytes(path)
    digest = hashlib.sha256(raw).hexdigest()
    body = raw[len(UTF8_BOM):] if raw.startswith(UTF8_BOM) else raw
    try:
        body.decode("utf-8")
        valid = True
    except UnicodeDecodeError:
        valid = False
    header = _header(body.decode("utf-8", errors="surrogateescape"), path)
    try:
        with warnings.catch_warnings():
            # index_col=False: a first row with more fields than the header must not silently turn
            # the leading columns into an index (shifting every id); pandas warns instead, and the
            # warning becomes an error here
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(io.BytesIO(body), dtype=str, keep_default_na=False, na_filter=False, index_col=False,
                                encoding="utf-8", encoding_errors="surrogateescape")  # no usecols: it skips the field-count check
    except pd.errors.ParserWarning:
        found = _first_long_row(body, header)
        if found is None:
            raise DataError(f"{path}: a row has more fields than the header's {len(header)}") from None
        raise _long_row_error(path, header, found) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as err:
        found = _first_long_row(body, header)
        if found is not None:  # pandas counts lines; a comment spanning lines makes that a different number
            raise _long_row_error(path, header, found) from None
        reason = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        raise DataError(f"{path}: cannot be read as CSV: {reason}") from None
    if not valid:
        raise _first_undecodable(frame, header, path)
    if columns is not None:
        frame = frame[[name for name in header if name in columns]]  # the 2019 metadata columns are not kept
    return frame, digest


def read_csv(path: Path) -> pd.DataFrame:
    """Every cell as a string, nothing turned into NaN: the checks below decide what is valid."""
    return read_table(path)[0]


def read_predictions(path: Path, id_column: str) -> pd.DataFrame:
    """A CSV kagglebert wrote (predictions, folds): ids stay strings exactly as written (`NA` is an
    id), every other column becomes a number (a cell that is not one becomes NaN, which the
    callers' checks reject)."""
    frame = read_csv(path)
    for column in frame.columns:
        if column != id_column:
            frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return frame


def parse_labels(df: pd.DataFrame, path: Path, task: TaskSpec) -> None:
    """Label strings → float32 in place; binary tasks accept exactly 0 or 1, others (with their
    auxiliary columns) a number in [0, 1]; identity columns a number in [0, 1] or empty (NaN)."""
    parse_shares(df, path, task.aux_columns, allow_empty=False)
    parse_shares(df, path, task.identity_columns, allow_empty=True)
    for column in task.label_columns:
        values = pd.to_numeric(df[column], errors="coerce").to_numpy(np.float64)
        if task.binary_labels:
            bad = ~np.isin(values, (0.0, 1.0))
            expected = "0 or 1"
        else:
            bad = ~((values >= 0.0) & (values <= 1.0))
            expected = "a number in [0, 1]"
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError(f"{path}: row {row + 1}, column {column!r}: value {df[column].iloc[row]!r} is not {expected}")
        df[column] = values.astype(np.float32)


def clean_text(df: pd.DataFrame, path: Path, text_column: str) -> None:
    """Empty or missing comment text is kept (as "") and counted: dropping rows would shift ids."""
    empty = np.flatnonzero(df[text_column].str.strip().to_numpy() == "")
    if len(empty):
        log.warning(
            "%s: %d row(s) with empty %r kept as empty strings (first: row %d)",
            path, len(empty), text_column, empty[0] + 1,
        )


def check_sample_columns(sample: pd.DataFrame, path: Path, task: TaskSpec) -> None:
    """sample_submission's columns are the submission's: the id and exactly the task's labels."""
    expected = [task.id_column, *task.submission_names]
    require_columns(sample, path, expected)
    for column in sample.columns:
        if column not in expected:
            raise DataError(
                f"{path}: row 0 (header), column {column!r}: not a column of a {task.name} submission "
                f"(expected {', '.join(expected)}); is this the competition's sample_submission?"
            )


def check_test_ids(test: pd.DataFrame, test_path: Path, sample: pd.DataFrame, sample_path: Path, id_column: str) -> None:
    sample_ids = set(sample[id_column])
    missing = np.flatnonzero(~test[id_column].isin(sample_ids).to_numpy())
    if len(missing):
        row = missing[0]
        raise DataError(
            f"{test_path}: row {row + 1}, column {id_column!r}: id {test[id_column].iloc[row]!r} is not in {sample_path.name}"
        )
    extra = np.flatnonzero(~sample[id_column].isin(set(test[id_column])).to_numpy())
    if len(extra):
        row = extra[0]
        raise DataError(
            f"{sample_path}: row {row + 1}, column {id_column!r}: id {sample[id_column].iloc[row]!r} is not in {test_path.name}"
        )


def stratified_subsample(df: pd.DataFrame, targets: np.ndarray, n_rows: int, seed: int) -> pd.DataFrame:
    """`n_rows` rows keeping each label's prevalence (iterative stratification), in file order."""
    if n_rows <= 0 or n_rows >= len(df):
        return df
    from iterstrat.ml_stratifiers import MultilabelStratifiedShuffleSplit

    splitter = MultilabelStratifiedShuffleSplit(n_splits=1, train_size=n_rows, test_size=len(df) - n_rows, random_state=seed)
    keep, rest = next(splitter.split(np.zeros(len(df)), targets))
    # the splitter can miss the size by a row or two (the 2019 task's one-hot classes: 1,001 for
    # 1,000); data.max_rows is the number of rows the run trains on, so draw or drop the difference
    rng = np.random.default_rng(seed)
    if len(keep) > n_rows:
        keep = rng.choice(keep, size=n_rows, replace=False)
    elif len(keep) < n_rows:
        keep = np.concatenate([keep, rng.choice(rest, size=n_rows - len(keep), replace=False)])
    return df.iloc[np.sort(keep)].reset_index(drop=True)


def subsample_test_rows(n_test: int, n_rows: int, seed: int) -> np.ndarray:
    """Which test rows a quick run predicts: `n_rows` of them drawn with `seed`, in file order (test
    rows have no labels to stratify on). All rows when `n_rows` is 0 or not smaller."""
    if n_rows <= 0 or n_rows >= n_test:
        return np.arange(n_test)
    return np.sort(np.random.default_rng(seed).choice(n_test, size=n_rows, replace=False))


def load_competition(task: TaskSpec, data_dir: str = "", max_rows: int = 0, seed: int = 42,
                     require_competition: bool = False, max_test_rows: int = 0) -> CompetitionData:
    """The checked competition files. `max_rows` subsamples the training rows only (stratified);
    `max_test_rows` the test rows (0 = every test row: a complete submission), independently, so a
    model trained on 1M of 1.8M rows still predicts the whole test set."""
    folder = find_data_dir(data_dir, task.competition_slug, require_competition)
    train_path = find_file(folder, task.train_file)
    test_path = find_file(folder, task.test_file)
    sample_path = find_file(folder, task.sample_submission_file)
    fingerprints = {}

    keep = [task.id_column, task.text_column, *task.label_columns, *task.aux_columns, *task.identity_columns, *task.extra_train_columns]
    # only the columns the task reads; labels, subtypes and identities read straight as float32, an
    # empty cell NaN (a 1.8M-row file's numbers as strings would take GBs); a bad cell sends the
    # file through the string reader again, so the error names the cell as written
    numeric = (*task.label_columns, *task.aux_columns, *task.identity_columns)
    train, fingerprints[task.train_file] = read_table(train_path, keep, numeric=numeric)
    require_columns(train, train_path, keep)
    require_rows(train, train_path)
    check_unique_ids(train, train_path, task.id_column)
    try:
        parse_labels(train, train_path, task)
    except DataError:
        if train[task.label_columns[0]].dtype != np.float32:  # already the strings as written
            raise
        train, _ = read_table(train_path, keep)
        parse_labels(train, train_path, task)
    clean_text(train, train_path, task.text_column)

    test, fingerprints[task.test_file] = read_table(test_path, [task.id_column, task.text_column])
    require_columns(test, test_path, [task.id_column, task.text_column])
    require_rows(test, test_path)
    check_unique_ids(test, test_path, task.id_column)
    clean_text(test, test_path, task.text_column)

    sample, fingerprints[task.sample_submission_file] = read_table(sample_path)
    check_sample_columns(sample, sample_path, task)
    require_rows(sample, sample_path)
    check_unique_ids(sample, sample_path, task.id_column)
    check_test_ids(test, test_path, sample, sample_path, task.id_column)

    if max_rows:
        train = stratified_subsample(train, task.stratify_targets(train), max_rows, seed)
    test_rows = subsample_test_rows(len(test), max_test_rows, seed)
    test_subsampled = len(test_rows) < len(test)
    if test_subsampled:
        test = test.iloc[test_rows].reset_index(drop=True)
        kept = set(test[task.id_column])
        sample = sample[sample[task.id_column].isin(kept)].reset_index(drop=True)  # sample_submission's order kept
    return CompetitionData(task, folder, train[keep], test[[task.id_column, task.text_column]], sample, train_path, test_path,
                           sample_path, fingerprints, test_subsampled)
