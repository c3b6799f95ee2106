"""One table of posts (CSV, TSV or Parquet) read into the frame the MVSA layout gives (:func:`load_table`), so every
later stage works unchanged: a row per post with its id, its text (or a text file), its image and its label.

Columns, case-blind: the id ``guid`` (or ``id``), the text ``text`` or a text file ``text_file`` (a row whose text
cell is empty uses its text file), the image ``image`` (or ``image_file``) and the label ``label`` (or ``tag``;
without it every row is a post to predict). Paths are relative to the table's folder. A label cell that is empty,
``null`` or a missing value (NaN) marks a post to predict."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import pandas as pd

from msa_utils.config.labels import LABEL2ID
from msa_utils.data import reasons
from msa_utils.data.data_report import DataReport
from msa_utils.data.decoding import decode_text_bytes, join_lines
from msa_utils.data.mvsa import LOADED_COLUMNS, _read_text, join_splits, label_frame

TABLE_SUFFIXES: dict[str, str | None] = {".csv": ",", ".tsv": "\t", ".tab": "\t", ".parquet": None}
"""Table file suffixes (any case) and their CSV delimiter (``None``: Parquet)."""
ROLES: dict[str, tuple[str, ...]] = {"guid": ("guid", "id"), "text": ("text",), "text_file": ("text_file",),
                                     "image": ("image", "image_file"), "label": ("label", "tag")}
"""Each column the table is read by, and the header names (case-blind) that give it."""
UNLABELLED = frozenset({"", "null", "nan"})
"""Label cells (stripped, lower-cased) of a post to predict; a missing value reads as ``""``."""
PARQUET_PACKAGE = "pyarrow==26.0.1"
"""The package pandas reads Parquet with, at the version tested (``tests/test_sources.py``); not a dependency of the
study, which it would change (pandas stores its strings in pyarrow where it is installed)."""


def is_table(path: str | os.PathLike) -> bool:
    """True if ``path`` names a table of posts by its suffix (:data:`TABLE_SUFFIXES`), a file or not."""
    return Path(path).suffix.lower() in TABLE_SUFFIXES


def read_table(path: str | os.PathLike, report: DataReport | None = None) -> pd.DataFrame:
    """The table's cells as text (missing values ``""``), columns renamed to the :data:`ROLES` found, plus ``row``
    (1-based data row); ``attrs["encoding"]`` is the file's text encoding. A CSV/TSV is decoded like a label file
    (a repair reported) and rows with another field count than the header are reported and left out. Raises
    FileNotFoundError; ValueError for an unknown suffix, an unparsable file, a missing id, image or text column
    (naming the columns found), two columns of one role, or a Parquet file without pyarrow installed
    (:data:`PARQUET_PACKAGE`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"table of posts not found: {path}")
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise ValueError(f"{path}: a table of posts must end in one of {sorted(TABLE_SUFFIXES)}")
    report = DataReport() if report is None else report
    frame = _read_parquet(path) if TABLE_SUFFIXES[suffix] is None else _read_delimited(path, TABLE_SUFFIXES[suffix],
                                                                                          report)
    return _roles(frame, path)


def _read_delimited(path: Path, delimiter: str, report: DataReport) -> pd.DataFrame:
    """A CSV/TSV's header and rows (all text), decoded like a label file; rows of another width reported, left out."""
    text, encoding, repair = decode_text_bytes(path.read_bytes())
    if repair is not None:
        report.add(reasons.label_file_repair(repair), None, f"{path.name} decoded ({repair})")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        records = [(reader.line_num, fields) for fields in reader if any(f.strip() for f in fields)]
    except csv.Error as error:  # an unclosed quote at the end, a field over csv's size limit
        raise ValueError(f"{path}: cannot be read as a table near line {reader.line_num}: {error}") from None
    if not records:
        raise ValueError(f"{path}: empty; expected a header row with the columns {_expected()}")
    header = [name.strip() for name in records[0][1]]
    rows, numbers = [], []
    for number, (line, fields) in enumerate(records[1:], start=1):
        if len(fields) == len(header):
            rows.append(fields)
            numbers.append(number)
        else:
            got = delimiter.join(fields)[:120]
            report.add(reasons.BAD_LABEL_LINE, None, f"{path.name} row {number} (line {line}): {len(fields)} fields, "
                                                     f"the header has {len(header)}; got {got!r}")
    frame = pd.DataFrame(rows, columns=header, dtype=object)
    frame.insert(0, "\0row", numbers)
    frame.attrs["encoding"] = "utf-8" if encoding == "ascii" else encoding
    return frame


def _read_parquet(path: Path) -> pd.DataFrame:
    """A Parquet file's cells as text (``""`` for missing values, integral floats as integers)."""
    try:
        frame = pd.read_parquet(path)
    except ImportError as error:
        raise ValueError(f"{path.name}: reading a Parquet table needs the package pyarrow, which is not installed "
                         f"(it is no dependency of the study): pip install {PARQUET_PACKAGE} in the study's "
                         "environment, or save the table as CSV") from error
    except Exception as error:  # pyarrow's own errors for a file that is no Parquet
        raise ValueError(f"{path}: cannot be read as Parquet ({type(error).__name__}: {error})") from None
    frame = frame.reset_index(drop=True)
    cells = pd.DataFrame({str(name): _as_text(frame[name]) for name in frame.columns}, index=frame.index)
    cells.insert(0, "\0row", range(1, len(frame) + 1))
    cells.attrs["encoding"] = "utf-8"
    return cells


def _as_text(column: pd.Series) -> list[str]:
    """A column's cells as text: missing values ``""``, a float column whose values are all whole numbers (an integer
    column with a missing value) as integers."""
    missing = column.isna()
    if pd.api.types.is_float_dtype(column) and (column[~missing] % 1 == 0).all():
        column = column.astype("Int64")
    return ["" if gone else str(value) for value, gone in zip(column, missing)]


_REQUIRED = {"guid": "guid or id", "text": "text or text_file", "image": "image or image_file"}


def _expected() -> str:
    return "; ".join([*_REQUIRED.values(), "label or tag"])


def _roles(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    """``frame`` with its columns renamed to :data:`ROLES` (others dropped) and ``row``; ValueError as
    :func:`read_table`."""
    found = [c for c in frame.columns if c != "\0row"]
    by_name = {}
    for column in found:
        by_name.setdefault(column.strip().lower(), []).append(column)
    renamed = {"\0row": "row"}
    for role, names in ROLES.items():
        columns = [c for name in names for c in by_name.get(name, [])]
        if len(columns) > 1:
            raise ValueError(f"{path}: columns {columns} all give the {role}; keep one")
        if columns:
            renamed[columns[0]] = role
    given = set(renamed.values()) | ({"text"} if "text_file" in renamed.values() else set())
    if missing := [words for role, words in _REQUIRED.items() if role not in given]:
        raise ValueError(f"{path}: no column for {', '.join(missing)}; found columns {found}; expected "
                         f"{_expected()} (case-blind; without a label column every row is a post to predict)")
    encoding = frame.attrs["encoding"]
    frame = frame[list(renamed)].rename(columns=renamed)
    for role in ROLES:
        if role not in frame:
            frame[role] = ""
    frame = frame.astype({role: str for role in ROLES})
    frame.attrs["encoding"] = encoding
    return frame


def split_rows(table: pd.DataFrame) -> dict[str, list[tuple[int, str, str]]]:
    """``{"train": [...], "test": [...]}``: ``(row, guid text, tag)`` of the labelled rows and ``(row, guid text,
    "null")`` of the rows to predict (label in :data:`UNLABELLED`), in table order, of a :func:`read_table` frame."""
    unlabelled = table["label"].str.strip().str.lower().isin(UNLABELLED)
    rows = {}
    for split, mask in (("train", ~unlabelled), ("test", unlabelled)):
        part = table[mask]
        tags = part["label"] if split == "train" else ["null"] * len(part)
        rows[split] = [(int(n), g.strip(), t) for n, g, t in zip(part["row"], part["guid"], tags)]
    return rows


def load_table(path: str | os.PathLike, report: DataReport,
               label_map: str | dict[str, str] | None = None, read_labels: bool = True) -> pd.DataFrame:
    """One row per post of the table (labelled rows, then those to predict), columns
    :data:`~msa_utils.data.mvsa.LOADED_COLUMNS`, as :func:`~msa_utils.data.mvsa.load_mvsa` gives for the MVSA
    layout: ``image_file`` relative to the table's folder, ``has_image`` whether that file exists, the text cell as
    is (lines joined) or the text file decoded like an MVSA text; stage ``load`` reported (bad ids, unknown labels,
    duplicates, missing or unreadable files), labels read through ``label_map`` (``read_labels``: as
    :func:`~msa_utils.data.mvsa.label_frame`). Raises as :func:`read_table`."""
    path = Path(path)
    root = path.parent
    table = read_table(path, report)
    rows = split_rows(table)
    train = label_frame(rows["train"], path.name, "train", report, label_map, where="row", read_labels=read_labels)
    test = label_frame(rows["test"], path.name, "test", report, where="row")
    if not rows["test"]:
        report.add(reasons.NO_POSTS_TO_PREDICT, None, f"{path.name} has no unlabelled row: no post to predict; the "
                                                      "prediction files hold only their header")
    frame = join_splits(train, test, report, f"{path.name} with a label and without")
    cells = table.set_index("row").loc[frame["line"]]
    texts = [_row_text(root, guid, number, cell, path.name, table.attrs["encoding"], report)
             for guid, number, cell in zip(frame["guid"], frame["line"], cells.itertuples())]
    frame["text_raw"], frame["encoding"], frame["has_text"] = ([t[k] for t in texts] for k in range(3))
    frame["image_file"] = [image.strip() for image in cells["image"]]
    frame["has_image"] = [bool(rel) and os.path.lexists(root / rel) for rel in frame["image_file"]]
    for guid, number, rel, found in zip(frame["guid"], frame["line"], frame["image_file"], frame["has_image"]):
        if not found:
            what = f"{rel} not found" if rel else "no image path"
            report.add(reasons.MISSING_IMAGE_FILE, guid, f"{path.name} row {number}: {what}; row kept with "
                                                         "has_image=False, the trainer skips it")
    frame["label"] = frame["tag"].map(LABEL2ID).where(frame["split"] == "train").astype("Int64")
    return frame[LOADED_COLUMNS].reset_index(drop=True)


def _row_text(root: Path, guid: int, number: int, cell, name: str, encoding: str,
              report: DataReport) -> tuple[str, str, bool]:
    """``(text_raw, encoding, usable)`` of one row: its text cell (lines joined; ``encoding`` the table's, ``ascii``
    for an ASCII text), else its text file read as :func:`~msa_utils.data.mvsa._read_text` reads an MVSA text; a row
    with neither reported."""
    text = join_lines(cell.text)
    if text:
        return text, "ascii" if text.isascii() else encoding, True
    rel = cell.text_file.strip()
    if rel:
        return _read_text(root / rel, guid, os.path.lexists(root / rel), report, shown=rel)
    report.add(reasons.EMPTY_TEXT_FILE, guid, f"{name} row {number}: no text and no text file; row kept with "
                                              "has_text=False, the trainer skips it")
    return "", "", False
