"""Reading the MVSA layout (``data/<guid>.jpg|txt``, ``train.txt``, ``test_without_label.txt``) of
the ECNU release of MVSA-Single (Niu et al., MMM 2016; ``data/mvsa_ecnu/SOURCE.md``)."""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path

import pandas as pd

from msa_utils.config.labels import LABEL2ID, LABELS
from msa_utils.data import reasons
from msa_utils.data.data_report import DataReport
from msa_utils.data.decoding import decode_text_bytes, join_lines  # noqa: F401 (join_lines re-exported)

LABEL_FILES = {"train": "train.txt", "test": "test_without_label.txt"}
"""Label file of each split (CSV with header ``guid,tag``)."""
LOADED_COLUMNS = ["guid", "split", "tag", "label", "text_raw", "encoding", "image_file", "has_text", "has_image"]
"""The columns of :func:`load_mvsa`: the first stage of :data:`msa_utils.data.posts.COLUMNS`."""
MAX_GUID = 2**63 - 1
"""The largest guid (it must fit 64-bit integers)."""
MAX_TEXT_BYTES = 65_536
"""Largest text file read [bytes] (a tweet is <= 1,120 bytes in UTF-8)."""

_GUID_RE = re.compile(r"0|[1-9][0-9]*")
_FILE_RE = re.compile(r"^(.+)\.(txt|jpg)$")
_NOT_TRAINED = "row kept with has_text=False, the trainer skips it"


def is_guid(text: str) -> bool:
    """True for ASCII digits without sign or leading zero (``0042.txt`` is not guid 42's), at most :data:`MAX_GUID`."""
    return len(text) <= 19 and bool(_GUID_RE.fullmatch(text)) and int(text) <= MAX_GUID


def read_label_lines(path: str | os.PathLike) -> tuple[list[tuple[int, str, str]], list[tuple[int, str]], str | None]:
    """``(rows, bad, repair)`` of a ``guid,tag`` label file, decoded like a post's text, each non-blank
    line parsed by :mod:`csv` on its own (header columns case-blind, any order): ``(line number, guid
    text, tag)`` of lines with the header's field count, ``(line number, line)`` of the others, the
    decoding repair or ``None``. Raises FileNotFoundError, or ValueError if the header lacks ``guid``/``tag``."""
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
    rows, bad = [], []
    for number, line in lines[1:]:
        try:
            fields = next(csv.reader([line], skipinitialspace=True))
        except csv.Error:  # a field over csv's size limit, say
            fields = []
        if len(fields) == len(header):
            rows.append((number, fields[header.index("guid")].strip(), fields[header.index("tag")]))
        else:
            bad.append((number, line))
    return rows, bad, repair


def read_label_file(path: str | os.PathLike, split: str, report: DataReport) -> pd.DataFrame:
    """One label file as columns ``guid, split, tag``, each line that is no usable post excluded and
    reported as the ``load`` reasons say. Raises as :func:`read_label_lines`."""
    path = Path(path)
    rows, bad, repair = read_label_lines(path)
    if repair is not None:
        report.add(reasons.label_file_repair(repair), None, f"{path.name} decoded ({repair})")
    for number, line in bad:
        report.add(reasons.BAD_LABEL_LINE, None,
                   f"{path.name} line {number}: expected the header's fields, got {line[:120]!r}")
    kept = []
    for number, guid_text, raw_tag in rows:
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
    unknown = ~frame["tag"].isin(set(LABELS) if split == "train" else {"null"})
    for guid, tag in zip(frame.loc[unknown, "guid"], frame.loc[unknown, "tag"]):
        if split == "train":
            report.add(reasons.UNKNOWN_LABEL, guid, f"{path.name}: tag {tag!r} not in {LABELS}")
        else:
            report.add(reasons.UNEXPECTED_TEST_TAG, guid, f"{path.name}: tag {tag!r} (expected 'null'); kept, not used")
    if split == "train":
        frame = frame[~unknown]
    drop = pd.Series(False, index=frame.index)
    for guid, group in frame[frame["guid"].duplicated(keep=False)].groupby("guid", sort=True):
        tags = sorted(set(group["tag"]))
        if len(tags) == 1:
            drop[group.index[1:]] = True
            report.add(reasons.DUPLICATE_GUID_SAME_LABEL, guid,
                       f"{path.name}: {len(group)} lines with tag {tags[0]!r}; kept the first")
        else:
            drop[group.index] = True
            report.add(reasons.DUPLICATE_GUID_CONFLICTING_LABELS, guid,
                       f"{path.name}: tags {tags}; all copies excluded")
    frame = frame[~drop]
    frame.insert(1, "split", split)
    return frame.reset_index(drop=True)


def _read_text(path: Path, guid: int, listed: bool, report: DataReport) -> tuple[str, str, bool]:
    """``(text_raw, encoding, usable)`` of one text file (``listed``: in ``data/``), repairs and exclusions reported."""
    def exclude(reason: str, why: str) -> tuple[str, str, bool]:
        report.add(reason, guid, f"data/{guid}.txt {why}; {_NOT_TRAINED}")
        return "", "", False

    if not listed:
        return exclude(reasons.MISSING_TEXT_FILE, "not found")
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
    text = join_lines(text)
    if repair == reasons.DECODED_GB18030_WITH_REPLACEMENT:
        report.add(reasons.UNDECODABLE_TEXT, guid, f"data/{guid}.txt decodes to text in none of UTF-8, UTF-16, "
                                                   f"GB18030, Windows-1252, Windows-1251; {_NOT_TRAINED}")
        return text, encoding, False
    if repair is not None:
        report.add(repair, guid, f"data/{guid}.txt decoded as {encoding}")
    if not text:
        report.add(reasons.EMPTY_TEXT_FILE, guid, f"data/{guid}.txt is empty or blank; {_NOT_TRAINED}")
    return text, encoding, bool(text)


def load_mvsa(data_dir: str | os.PathLike, report: DataReport) -> pd.DataFrame:
    """One row per guid of the label files (train rows, then test), columns :data:`LOADED_COLUMNS`
    (described in :data:`msa_utils.data.posts.COLUMNS`), stage ``load`` reported. Raises
    FileNotFoundError if ``data_dir``, its ``data/`` or a label file is missing, ValueError as
    :func:`read_label_lines`."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"MVSA data folder not found: {data_dir}")
    if not (data_dir / "data").is_dir():
        raise FileNotFoundError(f"MVSA data folder has no data/ sub-folder: {data_dir / 'data'}")
    train = read_label_file(data_dir / LABEL_FILES["train"], "train", report)
    test = read_label_file(data_dir / LABEL_FILES["test"], "test", report)
    both = test["guid"].isin(set(train["guid"]))
    for guid in test.loc[both, "guid"]:
        report.add(reasons.GUID_IN_TRAIN_AND_TEST, guid, "guid listed in train.txt and test_without_label.txt; "
                   "kept the labelled train row, dropped the test row")
    frame = pd.concat([train, test[~both]], ignore_index=True)

    text_guids, image_guids = set(), set()
    with os.scandir(data_dir / "data") as entries:
        for entry in entries:
            match = _FILE_RE.match(entry.name)
            if match and is_guid(match.group(1)):
                (text_guids if match.group(2) == "txt" else image_guids).add(int(match.group(1)))
    texts = [_read_text(data_dir / "data" / f"{g}.txt", g, g in text_guids, report) for g in frame["guid"]]
    frame["text_raw"], frame["encoding"], frame["has_text"] = ([t[k] for t in texts] for k in range(3))
    frame["image_file"] = [f"data/{g}.jpg" for g in frame["guid"]]
    frame["has_image"] = frame["guid"].isin(image_guids)
    for guid in frame.loc[~frame["has_image"], "guid"]:
        report.add(reasons.MISSING_IMAGE_FILE, guid,
                   f"data/{guid}.jpg not found; row kept with has_image=False, the trainer skips it")
    frame["label"] = frame["tag"].map(LABEL2ID).where(frame["split"] == "train").astype("Int64")
    listed = set(frame["guid"]) | set(report.guids(stage="load", action="excluded"))
    for guid in sorted((text_guids | image_guids) - listed):
        report.add(reasons.UNLABELLED_UNUSED, guid, "in data/ but on no usable line of either label file; not used")
    return frame[LOADED_COLUMNS]


def label_file_guids(path: str | os.PathLike) -> list[int]:
    """The guids (:func:`is_guid`) of one label file, in file order, each once; raises as :func:`read_label_lines`."""
    return list(dict.fromkeys(int(g) for _, g, _ in read_label_lines(path)[0] if is_guid(g)))
