"""Reading the MVSA layout (``data/<guid>.txt`` and its image ``data/<guid>.jpg``, or another
:data:`IMAGE_SUFFIXES` one; ``train.txt``, ``test_without_label.txt``) of the ECNU release of
MVSA-Single (Niu et al., MMM 2016; ``data/mvsa_ecnu/SOURCE.md``)."""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path

import pandas as pd

from msa_utils.config.labels import LABEL2ID, LABELS, resolve_label_map
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
IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff")
"""The suffixes of a post's image file ``data/<guid><suffix>``, matched in any case (``8.PNG``)."""
_NOT_TRAINED = "row kept with has_text=False, the trainer skips it"
_NO_IMAGE = "row kept with has_image=False, the trainer skips it"


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


def read_label_file(path: str | os.PathLike, split: str, report: DataReport,
                    label_map: str | dict[str, str] | None = None, read_labels: bool = True) -> pd.DataFrame:
    """One label file as columns ``guid, split, tag``, each line that is no usable post excluded and
    reported as the ``load`` reasons say; train tags read through ``label_map`` (a ``data.label_map``
    setting), or not read at all (``read_labels=False``: :func:`label_frame`). Raises as
    :func:`read_label_lines`, ValueError for a bad ``label_map``."""
    path = Path(path)
    rows, bad, repair = read_label_lines(path)
    if repair is not None:
        report.add(reasons.label_file_repair(repair), None, f"{path.name} decoded ({repair})")
    for number, line in bad:
        report.add(reasons.BAD_LABEL_LINE, None,
                   f"{path.name} line {number}: expected the header's fields, got {line[:120]!r}")
    return label_frame(rows, path.name, split, report, label_map, read_labels=read_labels).drop(columns="line")


def label_frame(rows: list[tuple[int, str, str]], name: str, split: str, report: DataReport,
                label_map: str | dict[str, str] | None = None, where: str = "line",
                read_labels: bool = True) -> pd.DataFrame:
    """Columns ``guid, split, tag, line`` of ``(line number, guid text, tag)`` ``rows`` of the file ``name``
    (``where``: what its numbers count, ``line`` or ``row``): bad guids, unknown train tags and duplicated
    guids excluded, tags stripped, lower-cased and, for ``split == "train"``, read through ``label_map``;
    each reported. ``read_labels=False`` (posts to classify, ``msa-predict``): train tags are neither mapped
    nor checked, and no post is left out for its tag. Raises ValueError for a bad ``label_map``."""
    mapping = (resolve_label_map(label_map) or {}) if read_labels else {}
    kept = []
    for number, guid_text, raw_tag in rows:
        if not is_guid(guid_text):
            report.add(reasons.BAD_GUID, None,
                       f"{name} {where} {number}: guid {guid_text[:40]!r} is not written as a plain "
                       f"integer without leading zeros, at most {MAX_GUID} (the file names are data/<guid>.txt|jpg)")
            continue
        guid, tag = int(guid_text), raw_tag.strip().lower()
        if split == "train" and mapping.get(tag, tag) != tag:
            report.add(reasons.LABEL_MAPPED, guid, f"{name}: tag {raw_tag!r} read as {mapping[tag]!r} (label_map)")
            tag = mapping[tag]
        elif tag != raw_tag:
            report.add(reasons.LABEL_NORMALISED, guid, f"{name}: tag {raw_tag!r} read as {tag!r}")
        kept.append((guid, tag, number))
    frame = pd.DataFrame(kept, columns=["guid", "tag", "line"]).astype({"guid": int, "tag": str, "line": int})
    unknown = ~frame["tag"].isin(set(LABELS) if split == "train" else {"null"})
    if not read_labels:
        unknown[:] = False
    for guid, tag in zip(frame.loc[unknown, "guid"], frame.loc[unknown, "tag"]):
        if split == "train":
            report.add(reasons.UNKNOWN_LABEL, guid, f"{name}: tag {tag!r} not in {LABELS}")
        else:
            report.add(reasons.UNEXPECTED_TEST_TAG, guid, f"{name}: tag {tag!r} (expected 'null'); kept, not used")
    if split == "train":
        frame = frame[~unknown]
    drop = pd.Series(False, index=frame.index)
    for guid, group in frame[frame["guid"].duplicated(keep=False)].groupby("guid", sort=True):
        tags = sorted(set(group["tag"]))
        if len(tags) == 1:
            drop[group.index[1:]] = True
            report.add(reasons.DUPLICATE_GUID_SAME_LABEL, guid,
                       f"{name}: {len(group)} {where}s with tag {tags[0]!r}; kept the first")
        else:
            drop[group.index] = True
            report.add(reasons.DUPLICATE_GUID_CONFLICTING_LABELS, guid,
                       f"{name}: tags {tags}; all copies excluded")
    frame = frame[~drop]
    frame.insert(1, "split", split)
    return frame.reset_index(drop=True)


def join_splits(train: pd.DataFrame, test: pd.DataFrame, report: DataReport, where: str) -> pd.DataFrame:
    """``train`` rows, then the ``test`` rows whose guid is not a train row's (each dropped one reported: listed in
    ``where``, both files or a table's labelled and unlabelled rows); the columns they share."""
    both = test["guid"].isin(set(train["guid"]))
    for guid in test.loc[both, "guid"]:
        report.add(reasons.GUID_IN_TRAIN_AND_TEST, guid, f"guid listed in {where}; "
                   "kept the labelled train row, dropped the test row")
    return pd.concat([train, test[~both]], ignore_index=True)


def read_test_file(path: str | os.PathLike, report: DataReport) -> pd.DataFrame:
    """:func:`read_label_file` of the posts to predict, or no rows (columns ``guid, split, tag``) if ``path`` does
    not exist, reported (:data:`~msa_utils.data.reasons.NO_POSTS_TO_PREDICT`). Raises as :func:`read_label_lines`."""
    path = Path(path)
    if path.exists():
        return read_label_file(path, "test", report)
    report.add(reasons.NO_POSTS_TO_PREDICT, None, f"{path.name} not found: no post to predict; the prediction files "
                                                  "hold only their header")
    return _no_rows()


def _no_rows() -> pd.DataFrame:
    """A label file's frame without rows (columns ``guid, split, tag``)."""
    return pd.DataFrame({"guid": pd.Series(dtype=int), "split": pd.Series(dtype=str), "tag": pd.Series(dtype=str)})


def _read_text(path: Path, guid: int, listed: bool, report: DataReport,
               shown: str | None = None) -> tuple[str, str, bool]:
    """``(text_raw, encoding, usable)`` of one text file (``listed``: in ``data/``, or found), repairs and exclusions
    reported, the file named ``shown`` (default ``data/<guid>.txt``)."""
    shown = shown or f"data/{guid}.txt"

    def exclude(reason: str, why: str) -> tuple[str, str, bool]:
        report.add(reason, guid, f"{shown} {why}; {_NOT_TRAINED}")
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
    if repair == reasons.DECODED_UTF8_WITH_REPLACEMENT:
        report.add(reasons.UNDECODABLE_TEXT, guid, f"{shown} reads cleanly in none of UTF-8, UTF-16, "
                                                   f"GB18030, Windows-1252, Windows-1251 (kept for display as "
                                                   f"UTF-8, U+FFFD for each bad byte); {_NOT_TRAINED}")
        return text, encoding, False
    if repair is not None:
        report.add(repair, guid, f"{shown} decoded as {encoding}")
    if not text:
        report.add(reasons.EMPTY_TEXT_FILE, guid, f"{shown} is empty or blank; {_NOT_TRAINED}")
    return text, encoding, bool(text)


def load_mvsa(data_dir: str | os.PathLike, report: DataReport,
              label_map: str | dict[str, str] | None = None, read_labels: bool = True) -> pd.DataFrame:
    """One row per guid of the label files (train rows, then test), columns :data:`LOADED_COLUMNS`
    (described in :data:`msa_utils.data.posts.COLUMNS`), stage ``load`` reported, train tags read through
    ``label_map``; without ``test_without_label.txt`` there are no test rows (reported), without ``train.txt``
    (posts to classify only: ``msa-predict``) no train rows; ``read_labels``: as :func:`label_frame`. Raises
    FileNotFoundError if ``data_dir``, its ``data/`` or both label files are missing, ValueError as
    :func:`read_label_lines` or for a bad ``label_map``."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"MVSA data folder not found: {data_dir}")
    if not (data_dir / "data").is_dir():
        raise FileNotFoundError(f"MVSA data folder has no data/ sub-folder: {data_dir / 'data'}")
    only_test = not (data_dir / LABEL_FILES["train"]).exists() and (data_dir / LABEL_FILES["test"]).exists()
    train_file = data_dir / LABEL_FILES["train"]
    train = _no_rows() if only_test else read_label_file(train_file, "train", report, label_map, read_labels)
    test = read_test_file(data_dir / LABEL_FILES["test"], report)
    frame = join_splits(train, test, report, "train.txt and test_without_label.txt")

    text_guids, image_names = data_files(data_dir / "data")
    image_guids = set(image_names)
    texts = [_read_text(data_dir / "data" / f"{g}.txt", g, g in text_guids, report) for g in frame["guid"]]
    frame["text_raw"], frame["encoding"], frame["has_text"] = ([t[k] for t in texts] for k in range(3))
    images = [_post_image(g, image_names.get(g, []), report) for g in frame["guid"]]
    frame["image_file"] = pd.Series([file for file, _ in images], index=frame.index, dtype=object)
    frame["has_image"] = pd.Series([found for _, found in images], index=frame.index, dtype=bool)
    frame["label"] = frame["tag"].map(LABEL2ID).where(frame["split"] == "train").astype("Int64")
    listed = set(frame["guid"]) | set(report.guids(stage="load", action="excluded"))
    for guid in sorted((text_guids | image_guids) - listed):
        report.add(reasons.UNLABELLED_UNUSED, guid, "in data/ but on no usable line of either label file; not used")
    return frame[LOADED_COLUMNS]


def data_files(folder: str | os.PathLike) -> tuple[set[int], dict[int, list[str]]]:
    """``(guids with a <guid>.txt, {guid: its image file names (:data:`IMAGE_SUFFIXES`), sorted})`` of
    the entries of ``folder`` named by a guid (:func:`is_guid`). Raises OSError if it cannot be listed."""
    texts, images = set(), {}
    with os.scandir(folder) as entries:
        for entry in entries:
            stem, dot, suffix = entry.name.rpartition(".")
            if not dot or not is_guid(stem):
                continue
            if suffix == "txt":
                texts.add(int(stem))
            elif f".{suffix.lower()}" in IMAGE_SUFFIXES:
                images.setdefault(int(stem), []).append(entry.name)
    return texts, {guid: sorted(names) for guid, names in images.items()}


def _post_image(guid: int, names: list[str], report: DataReport) -> tuple[str, bool]:
    """``(image_file, has_image)`` of a post whose image files in ``data/`` are ``names``: the one file, or
    ``data/<guid>.jpg`` (none: ``missing_image_file``) or ``""`` (several: ``conflicting_image_files``), reported."""
    if len(names) == 1:
        return f"data/{names[0]}", True
    if not names:
        suffixes = ",".join(suffix[1:] for suffix in IMAGE_SUFFIXES)
        report.add(reasons.MISSING_IMAGE_FILE, guid, f"no image file data/{guid}.{{{suffixes}}} (any case); {_NO_IMAGE}")
        return f"data/{guid}.jpg", False
    report.add(reasons.CONFLICTING_IMAGE_FILES, guid, f"{len(names)} image files: "
               f"{', '.join(f'data/{name}' for name in names)}; none used, {_NO_IMAGE}")
    return "", False


def label_file_guids(path: str | os.PathLike) -> list[int]:
    """The guids (:func:`is_guid`) of one label file, in file order, each once; raises as :func:`read_label_lines`."""
    return list(dict.fromkeys(int(g) for _, g, _ in read_label_lines(path)[0] if is_guid(g)))
