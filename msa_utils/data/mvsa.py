"""Reading the MVSA layout (``data/{guid}.jpg|txt``, ``train.txt``, ``test_without_label.txt``).

The layout is the one of the ECNU "Contemporary AI" lab-5 release of MVSA-Single (Niu et al.,
"Sentiment Analysis on Multi-view Social Data", MMM 2016); see ``data/mvsa_ecnu/SOURCE.md``.

:func:`load_mvsa` gives one row per guid listed in the two label files. Nothing is dropped
silently: every repair (e.g. a GB18030 decode), every exclusion (e.g. an unknown label) and
every oddity kept as is (e.g. a guid in ``data/`` that no label file uses) is recorded in a
:class:`~msa_utils.data.data_report.DataReport` under the stage ``"load"``.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from msa_utils.config.labels import LABEL2ID, LABELS
from msa_utils.data import reasons
from msa_utils.data.data_report import DataReport
from msa_utils.data.decoding import decode_text_bytes, join_lines, looks_like_mojibake  # noqa: F401 (re-exported)

STAGE = "load"
LABEL_FILES = {"train": "train.txt", "test": "test_without_label.txt"}
"""Label file of each split (CSV with header ``guid,tag``)."""

TEST_TAG = "null"
"""The tag every row of ``test_without_label.txt`` carries."""

LOADED_COLUMNS = ["guid", "split", "tag", "label", "text_raw", "encoding", "image_file", "has_text", "has_image"]
"""The columns :func:`load_mvsa` returns: the first stage of the post table, whose full schema is
:data:`msa_utils.data.posts.COLUMNS`."""

_FILE_RE = re.compile(r"^(.+)\.(txt|jpg)$")
"""``data/`` file names of a post, ``<guid>.txt|jpg``; the stem must pass :func:`is_guid` (so
``0042.txt`` is not guid 42's text)."""


# --------------------------------------------------------------------------------------------
# Label files
# --------------------------------------------------------------------------------------------

_GUID_RE = re.compile(r"0|[1-9][0-9]*")
"""A guid as the MVSA file names write it: ASCII digits, no sign, no leading zero."""
MAX_GUID = 2**63 - 1
"""The largest guid (it must fit the 64-bit integers of pandas and torch)."""


def is_guid(text: str) -> bool:
    """True if ``text`` is a guid as the file names write it (:data:`_GUID_RE`, at most :data:`MAX_GUID`)."""
    return len(text) <= 19 and bool(_GUID_RE.fullmatch(text)) and int(text) <= MAX_GUID


@dataclass
class LabelLines:
    """The lines of one label file, split into fields.

    Attributes:
        rows: ``(line number, guid text, tag text)`` of each line with the header's number of
            fields (1-based line numbers, as an editor shows them).
        bad: ``(line number, line)`` of each line with another number of fields.
        repair: how the file's bytes had to be decoded (:func:`decode_text_bytes`), or None.
    """

    rows: list[tuple[int, str, str]]
    bad: list[tuple[int, str]]
    repair: str | None


def read_label_lines(path: str | os.PathLike) -> LabelLines:
    """Split a ``guid,tag`` label file into lines and fields; judge nothing else.

    The bytes are decoded like a post's text (:func:`decode_text_bytes`: UTF-8 with or without a
    byte-order mark, UTF-16 with one, GB18030), lines may end in LF or CRLF, and each line is
    parsed on its own with :mod:`csv` (so that a stray quote spoils one line, not the rest).
    Blank lines hold no post and are skipped. The header is the first non-blank line; its
    columns are matched case-blind and may come in any order, with others besides.

    Raises:
        FileNotFoundError: if ``path`` is not a file.
        ValueError: if the header lacks a ``guid`` or a ``tag`` column.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"label file not found: {path}")
    text, _, repair = decode_text_bytes(path.read_bytes())
    lines = [(n, line) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if not lines:
        raise ValueError(f"{path}: empty; expected a header guid,tag")
    header = [field.strip().lower() for field in next(csv.reader([lines[0][1]]))]
    if not {"guid", "tag"} <= set(header):
        raise ValueError(f"{path}: expected a header with columns guid,tag, got {header}")
    guid_at, tag_at = header.index("guid"), header.index("tag")
    rows, bad = [], []
    for number, line in lines[1:]:
        try:
            fields = next(csv.reader([line], skipinitialspace=True))
        except csv.Error:  # a field over csv's size limit, say
            fields = []
        if len(fields) == len(header):
            rows.append((number, fields[guid_at].strip(), fields[tag_at]))
        else:
            bad.append((number, line))
    return LabelLines(rows, bad, repair)


def read_label_file(path: str | os.PathLike, split: str, report: DataReport) -> pd.DataFrame:
    """Read one ``guid,tag`` label file into a frame with columns ``guid, split, tag``.

    Lines are read by :func:`read_label_lines`. Every line that is not a usable post is
    excluded and reported with the file and line number: a line with another number of fields
    than the header (``"bad_label_line"``), a guid that is not written as MVSA's file names
    write it, plain ASCII digits without a leading zero (``"bad_guid"``), and (train split) a
    tag outside :data:`msa_utils.LABELS` (``"unknown_label"``). Tags are stripped and
    lower-cased (each changed tag is reported, ``"label_normalised"``). In the test split a tag
    other than ``"null"`` is kept and reported as ``noted``. Duplicated guids: one row is kept
    if every copy has the same tag (reported ``repaired``); all copies are excluded if the tags
    conflict (reported ``excluded``). A file that needed a decoding repair is reported too
    (guid empty).

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if the header lacks a ``guid`` or ``tag`` column.
    """
    path = Path(path)
    lines = read_label_lines(path)
    if lines.repair is not None:
        report.add(reasons.label_file_repair(lines.repair), None, f"{path.name} decoded ({lines.repair})")
    for number, line in lines.bad:
        report.add(reasons.BAD_LABEL_LINE, None,
                   f"{path.name} line {number}: expected the header's fields, got {line[:120]!r}")
    kept = []
    for number, guid_text, raw_tag in lines.rows:
        if not is_guid(guid_text):
            report.add(reasons.BAD_GUID, None,
                       f"{path.name} line {number}: guid {guid_text[:40]!r} is not written as a plain "
                       f"integer without leading zeros, at most {MAX_GUID} (the file names are data/<guid>.txt|jpg)")
            continue
        guid, tag = int(guid_text), raw_tag.strip().lower()
        if tag != raw_tag:
            report.add(reasons.LABEL_NORMALISED, guid, f"{path.name}: tag {raw_tag!r} read as {tag!r}")
        kept.append((guid, tag))
    frame = pd.DataFrame(kept, columns=["guid", "tag"]).astype({"guid": int, "tag": str})

    allowed = set(LABELS) if split == "train" else {TEST_TAG}
    unknown = ~frame["tag"].isin(allowed)
    for guid, tag in zip(frame.loc[unknown, "guid"], frame.loc[unknown, "tag"]):
        if split == "train":
            report.add(reasons.UNKNOWN_LABEL, guid, f"{path.name}: tag {tag!r} not in {LABELS}")
        else:
            report.add(reasons.UNEXPECTED_TEST_TAG, guid, f"{path.name}: tag {tag!r} (expected 'null'); kept, not used")
    if split == "train":
        frame = frame[~unknown]

    frame = _resolve_duplicates(frame, path.name, report)
    frame.insert(1, "split", split)
    return frame.reset_index(drop=True)


def _resolve_duplicates(frame: pd.DataFrame, file_name: str, report: DataReport) -> pd.DataFrame:
    """Keep the first of same-tag duplicates, drop every copy of conflicting duplicates."""
    dup = frame["guid"].duplicated(keep=False)
    if not dup.any():
        return frame
    drop = pd.Series(False, index=frame.index)
    for guid, group in frame[dup].groupby("guid", sort=True):
        tags = sorted(set(group["tag"]))
        if len(tags) == 1:
            drop[group.index[1:]] = True
            report.add(reasons.DUPLICATE_GUID_SAME_LABEL, guid,
                       f"{file_name}: {len(group)} lines with tag {tags[0]!r}; kept the first")
        else:
            drop[group.index] = True
            report.add(reasons.DUPLICATE_GUID_CONFLICTING_LABELS, guid,
                       f"{file_name}: tags {tags}; all copies excluded")
    return frame[~drop]


def _drop_cross_split(train: pd.DataFrame, test: pd.DataFrame, report: DataReport) -> pd.DataFrame:
    """Drop test rows whose guid is also in train (reported); return the test frame."""
    both = test["guid"].isin(set(train["guid"]))
    for guid in test.loc[both, "guid"]:
        report.add(reasons.GUID_IN_TRAIN_AND_TEST, guid,
                   "guid listed in train.txt and test_without_label.txt; kept the labelled train row, dropped the test row")
    return test[~both]


# --------------------------------------------------------------------------------------------
# The whole layout
# --------------------------------------------------------------------------------------------

def _scan_data_dir(data_dir: Path) -> tuple[set[int], set[int]]:
    """Guids that have a ``.txt`` and a ``.jpg`` file in ``data_dir/data``."""
    texts, images = set(), set()
    with os.scandir(data_dir / "data") as entries:
        for entry in entries:
            match = _FILE_RE.match(entry.name)
            if match and is_guid(match.group(1)):
                (texts if match.group(2) == "txt" else images).add(int(match.group(1)))
    return texts, images


MAX_TEXT_BYTES = 65_536
"""Largest text file read [bytes]. A tweet is at most 280 characters (<= 1,120 bytes in UTF-8);
64 KiB leaves room for long posts from other sites and refuses files that are not posts."""


def _read_text(path: Path, guid: int, report: DataReport) -> tuple[str, str, bool]:
    """Decode one text file and report a repair.

    Returns:
        ``(text_raw, encoding, usable)``. Excluded and reported (``usable`` False, text ``""``):
        a path that is not a regular file (a directory, a FIFO, a device such as ``/dev/zero``)
        or cannot be read, reason ``"unreadable_text_file"``; a file over
        :data:`MAX_TEXT_BYTES`, reason ``"text_too_large"`` (neither is read, so neither can
        hang the run or exhaust memory). A file valid in none of the encodings tried is kept
        (decoded with U+FFFD for the bad bytes, for display) but not usable: it is reported as
        ``excluded``, reason ``"undecodable_text"``, rather than trained on as garbage.
    """
    def exclude(reason: str, why: str) -> tuple[str, str, bool]:
        report.add(reason, guid, f"data/{guid}.txt {why}; row kept with has_text=False, the trainer skips it")
        return "", "", False

    try:
        if not path.is_file():
            return exclude(reasons.UNREADABLE_TEXT_FILE, "is not a regular file")
        size = path.stat().st_size
        if size > MAX_TEXT_BYTES:
            return exclude(reasons.TEXT_TOO_LARGE, f"has {size:,} bytes, over the limit of {MAX_TEXT_BYTES:,}")
        with open(path, "rb") as handle:
            raw = handle.read(MAX_TEXT_BYTES + 1)
    except OSError as error:  # no permission, an I/O error
        return exclude(reasons.UNREADABLE_TEXT_FILE, f"cannot be read ({type(error).__name__}: {error})")
    if len(raw) > MAX_TEXT_BYTES:  # grew while we looked
        return exclude(reasons.TEXT_TOO_LARGE, f"has over {MAX_TEXT_BYTES:,} bytes")
    text, encoding, repair = decode_text_bytes(raw)
    if repair == reasons.DECODED_GB18030_WITH_REPLACEMENT:
        report.add(reasons.UNDECODABLE_TEXT, guid,
                   f"data/{guid}.txt decodes to text in none of UTF-8, UTF-16, GB18030, Windows-1252, Windows-1251; "
                   "row kept with has_text=False, the trainer skips it")
        return join_lines(text), encoding, False
    if repair is not None:
        report.add(repair, guid, f"data/{guid}.txt decoded as {encoding}")
    return join_lines(text), encoding, True


def load_mvsa(data_dir: str | os.PathLike, report: DataReport) -> pd.DataFrame:
    """Read the MVSA layout into one table, one row per guid of the label files.

    Args:
        data_dir: folder with ``data/{guid}.jpg``, ``data/{guid}.txt``, ``train.txt`` and
            ``test_without_label.txt`` (``guid,tag`` CSVs with a header).
        report: receives every repair/exclusion/note under the stage ``"load"``.

    Returns:
        A DataFrame in label-file order (train rows, then test rows) with columns
        ``guid`` (int), ``split`` (``"train"``/``"test"``), ``tag`` (str), ``label``
        (``Int64``: positive 0, negative 1, neutral 2; ``<NA>`` for test), ``text_raw`` (str,
        decoded, line endings removed), ``encoding`` (``"ascii"``/``"utf-8"``/``"gb18030"``, ``""``
        if no text), ``image_file`` (path relative to ``data_dir``), ``has_text``,
        ``has_image`` (bool). Rows with a missing or empty text file, or a missing image, are kept
        with ``has_text``/``has_image`` False and reported as ``excluded`` (the trainer skips
        them). Guids in ``data/`` that no label file lists are reported as ``noted``
        (``"unlabelled_unused"``) and not returned.

    Raises:
        FileNotFoundError: if ``data_dir``, ``data_dir/data`` or a label file is missing.
        ValueError: if a label file has no ``guid``/``tag`` header.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"MVSA data folder not found: {data_dir}")
    if not (data_dir / "data").is_dir():
        raise FileNotFoundError(f"MVSA data folder has no data/ sub-folder: {data_dir / 'data'}")
    train = read_label_file(data_dir / LABEL_FILES["train"], "train", report)
    test = read_label_file(data_dir / LABEL_FILES["test"], "test", report)
    test = _drop_cross_split(train, test, report)
    frame = pd.concat([train, test], ignore_index=True)

    text_guids, image_guids = _scan_data_dir(data_dir)
    texts, encodings, has_text = [], [], []
    for guid in frame["guid"]:
        if guid in text_guids:
            text, encoding, usable = _read_text(data_dir / "data" / f"{guid}.txt", guid, report)
        else:
            text, encoding, usable = "", "", False
            report.add(reasons.MISSING_TEXT_FILE, guid,
                       f"data/{guid}.txt not found; row kept with has_text=False, the trainer skips it")
        if guid in text_guids and usable and not text:  # (an unreadable file is reported above)
            usable = False
            report.add(reasons.EMPTY_TEXT_FILE, guid,
                       f"data/{guid}.txt is empty or blank; row kept with has_text=False, the trainer skips it")
        texts.append(text)
        encodings.append(encoding)
        has_text.append(usable)
    frame["text_raw"] = texts
    frame["encoding"] = encodings
    frame["image_file"] = [f"data/{g}.jpg" for g in frame["guid"]]
    frame["has_text"] = has_text
    frame["has_image"] = frame["guid"].isin(image_guids)
    for guid in frame.loc[~frame["has_image"], "guid"]:
        report.add(reasons.MISSING_IMAGE_FILE, guid,
                   f"data/{guid}.jpg not found; row kept with has_image=False, the trainer skips it")
    frame["label"] = frame["tag"].map(LABEL2ID).where(frame["split"] == "train").astype("Int64")

    listed = set(frame["guid"]) | set(report.guids(stage=STAGE, action="excluded"))
    for guid in sorted((text_guids | image_guids) - listed):
        report.add(reasons.UNLABELLED_UNUSED, guid, "in data/ but on no usable line of either label file; not used")
    frame["guid"] = frame["guid"].astype(int)
    return frame[LOADED_COLUMNS]


def label_file_guids(path: str | os.PathLike) -> list[int]:
    """The guids written in one label file, in the file's order, each once.

    Only guids written as plain integers count (see :func:`read_label_file`); every other line
    is reported when the file is loaded.

    Raises:
        FileNotFoundError / ValueError: as :func:`read_label_lines`.
    """
    guids = [int(g) for _, g, _ in read_label_lines(path).rows if is_guid(g)]
    return list(dict.fromkeys(guids))


def listed_guids(data_dir: str | os.PathLike) -> set[int]:
    """Every guid written in the two label files of ``data_dir`` (for invariant checks).

    Raises:
        FileNotFoundError: if a label file is missing.
    """
    return {g for name in LABEL_FILES.values() for g in label_file_guids(Path(data_dir) / name)}
