"""Reading the MVSA layout (``data/{guid}.jpg|txt``, ``train.txt``, ``test_without_label.txt``).

The layout is the one of the ECNU "Contemporary AI" lab-5 release of MVSA-Single (Niu et al.,
"Sentiment Analysis on Multi-view Social Data", MMM 2016); see ``data/mvsa_ecnu/SOURCE.md``.

:func:`load_mvsa` gives one row per guid listed in the two label files. Nothing is dropped
silently: every repair (e.g. a GB18030 decode), every exclusion (e.g. an unknown label) and
every oddity kept as is (e.g. a guid in ``data/`` that no label file uses) is recorded in a
:class:`~msa_utils.data_report.DataReport` under the stage ``"load"``.
"""

from __future__ import annotations

import codecs
import os
import re
import unicodedata
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from . import LABEL2ID, LABELS
from .data_report import DataReport

STAGE = "load"
LABEL_FILES = {"train": "train.txt", "test": "test_without_label.txt"}
"""Label file of each split (CSV with header ``guid,tag``)."""

TEST_TAG = "null"
"""The tag every row of ``test_without_label.txt`` carries."""

COLUMNS = ["guid", "split", "tag", "label", "text_raw", "encoding", "image_file", "has_text", "has_image"]

_FILE_RE = re.compile(r"^(\d+)\.(txt|jpg)$")


# --------------------------------------------------------------------------------------------
# Text decoding
# --------------------------------------------------------------------------------------------

_EAST_ASIAN = {"CJK", "HIRAGANA", "KATAKANA", "HANGUL", "HALFWIDTH", "FULLWIDTH"}


def _script(ch: str) -> str:
    """Script of a letter: first word of its Unicode name (``LATIN``, ``CYRILLIC`` ...); ``CJK`` for all East Asian ones."""
    script = unicodedata.name(ch, "UNKNOWN").split(" ")[0]
    return "CJK" if script in _EAST_ASIAN else script


def _is_cjk(ch: str) -> bool:
    """True for CJK ideographs, kana, hangul, CJK punctuation and full-width forms."""
    cp = ord(ch)
    return (
        0x3000 <= cp <= 0x30FF  # CJK punctuation, hiragana, katakana
        or 0x3400 <= cp <= 0x4DBF  # CJK extension A
        or 0x4E00 <= cp <= 0x9FFF  # CJK unified ideographs
        or 0xAC00 <= cp <= 0xD7AF  # hangul syllables
        or 0xF900 <= cp <= 0xFAFF  # CJK compatibility ideographs
        or 0xFF00 <= cp <= 0xFFEF  # half-/full-width forms
    )


def looks_like_mojibake(text: str) -> bool:
    """True if a (valid UTF-8) text contains characters typical of mis-decoded bytes.

    Suspicious are: private-use, unassigned, C1-control and modifier-symbol characters (e.g.
    ``¯`` U+00AF) and letters of a script that makes up less than half of the text's letters
    (e.g. one Cyrillic ``Ц`` in Latin text). A text in one foreign script (Russian, Greek ...)
    or Latin text with accents (``está``) is not suspicious.
    """
    letters = [ch for ch in text if ch.isalpha()]
    scripts = Counter(_script(ch) for ch in letters)
    for ch in text:
        if ord(ch) < 128:
            continue
        category = unicodedata.category(ch)
        if category in ("Co", "Cn", "Cc", "Sk"):
            return True
        if ch.isalpha():
            script = _script(ch)
            if script not in ("LATIN", "CJK") and scripts[script] * 2 < len(letters):
                return True
    return False


def decode_text_bytes(raw: bytes) -> tuple[str, str, str | None]:
    """Decode the bytes of one MVSA text file.

    The release's text files are ASCII or GBK/GB18030 (see SOURCE.md). Order tried:

    0. a byte-order mark: UTF-8 (``"utf-8"``, reason ``"utf8_bom_removed"``) or UTF-16
       (``"utf-16"``, reason ``"decoded_utf16"``).
    1. ASCII → encoding ``"ascii"``.
    2. strict UTF-8 → ``"utf-8"``, unless the result :func:`looks_like_mojibake` and the
       GB18030 decode gives only CJK characters outside ASCII; then it is GBK bytes that happen
       to be valid UTF-8 (guids 3323 and 4499) → ``"gb18030"``, reason
       ``"decoded_gb18030_not_utf8"``.
    3. strict GB18030 → ``"gb18030"``, reason ``"decoded_gb18030"``.
    4. GB18030 with ``errors="replace"`` (U+FFFD for bad bytes) → ``"gb18030"``, reason
       ``"decoded_gb18030_with_replacement"``.

    Returns:
        ``(text, encoding, repair_reason)``; ``repair_reason`` is ``None`` when nothing was
        repaired. ``text`` is not yet stripped of line endings.
    """
    if raw.startswith(codecs.BOM_UTF8):
        try:
            return raw[len(codecs.BOM_UTF8):].decode("utf-8"), "utf-8", "utf8_bom_removed"
        except UnicodeDecodeError:
            pass
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return raw.decode("utf-16"), "utf-16", "decoded_utf16"
        except UnicodeDecodeError:
            pass
    try:
        return raw.decode("ascii"), "ascii", None
    except UnicodeDecodeError:
        pass
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None:
        if looks_like_mojibake(text):
            try:
                gb = raw.decode("gb18030")
            except UnicodeDecodeError:
                gb = None
            if gb is not None and all(_is_cjk(ch) for ch in gb if ord(ch) >= 128):
                return gb, "gb18030", "decoded_gb18030_not_utf8"
        return text, "utf-8", None
    try:
        return raw.decode("gb18030"), "gb18030", "decoded_gb18030"
    except UnicodeDecodeError:
        return raw.decode("gb18030", errors="replace"), "gb18030", "decoded_gb18030_with_replacement"


def join_lines(text: str) -> str:
    """Strip CR/LF: join the non-empty lines of ``text`` with one space, strip the ends."""
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


# --------------------------------------------------------------------------------------------
# Label files
# --------------------------------------------------------------------------------------------

def read_label_file(path: str | os.PathLike, split: str, report: DataReport) -> pd.DataFrame:
    """Read one ``guid,tag`` label file into a frame with columns ``guid, split, tag``.

    Tags are stripped and lower-cased (each changed tag is reported, reason
    ``"label_normalised"``). Lines whose guid is not an integer, and (train split)
    tags outside :data:`msa_utils.LABELS`, are excluded and reported. In the test split a tag
    other than ``"null"`` is kept and reported as ``noted``. Duplicated guids: one row is kept
    if every copy has the same tag (reported ``repaired``); all copies are excluded if the
    tags conflict (reported ``excluded``).

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if the header lacks a ``guid`` or ``tag`` column.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"label file not found: {path}")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    if not {"guid", "tag"} <= set(frame.columns):
        raise ValueError(f"{path}: expected a header with columns guid,tag, got {list(frame.columns)}")
    frame = frame[["guid", "tag"]].copy()
    raw_tag = frame["tag"]
    frame["tag"] = raw_tag.str.strip().str.lower()
    normalised = (raw_tag != frame["tag"]) & frame["guid"].str.strip().str.fullmatch(r"\d+")
    for guid, before, after in zip(frame.loc[normalised, "guid"], raw_tag[normalised], frame.loc[normalised, "tag"]):
        report.add(STAGE, int(guid), "repaired", "label_normalised", f"{path.name}: tag {before!r} read as {after!r}")
    guid_text = frame["guid"].str.strip()
    bad_guid = ~guid_text.str.fullmatch(r"\d+")
    for line_no, value in zip(frame.index[bad_guid] + 2, guid_text[bad_guid]):
        report.add(STAGE, None, "excluded", "bad_guid", f"{path.name} line {line_no}: guid {value!r} is not an integer")
    frame = frame[~bad_guid].copy()
    frame["guid"] = guid_text[~bad_guid].astype(int)

    allowed = set(LABELS) if split == "train" else {TEST_TAG}
    unknown = ~frame["tag"].isin(allowed)
    for guid, tag in zip(frame.loc[unknown, "guid"], frame.loc[unknown, "tag"]):
        if split == "train":
            report.add(STAGE, guid, "excluded", "unknown_label", f"{path.name}: tag {tag!r} not in {LABELS}")
        else:
            report.add(STAGE, guid, "noted", "unexpected_test_tag", f"{path.name}: tag {tag!r} (expected 'null'); kept, not used")
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
            report.add(STAGE, guid, "repaired", "duplicate_guid_same_label",
                       f"{file_name}: {len(group)} lines with tag {tags[0]!r}; kept the first")
        else:
            drop[group.index] = True
            report.add(STAGE, guid, "excluded", "duplicate_guid_conflicting_labels",
                       f"{file_name}: tags {tags}; all copies excluded")
    return frame[~drop]


def _drop_cross_split(train: pd.DataFrame, test: pd.DataFrame, report: DataReport) -> pd.DataFrame:
    """Drop test rows whose guid is also in train (reported); return the test frame."""
    both = test["guid"].isin(set(train["guid"]))
    for guid in test.loc[both, "guid"]:
        report.add(STAGE, guid, "excluded", "guid_in_train_and_test",
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
            if match:
                (texts if match.group(2) == "txt" else images).add(int(match.group(1)))
    return texts, images


UNDECODABLE = "decoded_gb18030_with_replacement"
"""The repair reason of bytes that are valid in none of the encodings tried."""


def _read_text(path: Path, guid: int, report: DataReport) -> tuple[str, str, bool]:
    """Decode one text file and report a repair.

    Returns:
        ``(text_raw, encoding, usable)``. A file that cannot be read (e.g. a directory) is
        excluded, reason ``"unreadable_text_file"``. A file valid in none of the encodings tried is kept
        (decoded with U+FFFD for the bad bytes, for display) but not usable: it is reported as
        ``excluded``, reason ``"undecodable_text"``, rather than trained on as garbage.
    """
    try:
        raw = path.read_bytes()
    except OSError as error:  # a directory, no permission, an I/O error
        report.add(STAGE, guid, "excluded", "unreadable_text_file",
                   f"data/{guid}.txt cannot be read ({type(error).__name__}: {error}); "
                   "row kept with has_text=False, the trainer skips it")
        return "", "", False
    text, encoding, repair = decode_text_bytes(raw)
    if repair == UNDECODABLE:
        report.add(STAGE, guid, "excluded", "undecodable_text",
                   f"data/{guid}.txt is valid in none of UTF-8, UTF-16 (BOM), GB18030; "
                   "row kept with has_text=False, the trainer skips it")
        return join_lines(text), encoding, False
    if repair is not None:
        report.add(STAGE, guid, "repaired", repair, f"data/{guid}.txt decoded as {encoding}")
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
            report.add(STAGE, guid, "excluded", "missing_text_file",
                       f"data/{guid}.txt not found; row kept with has_text=False, the trainer skips it")
        if guid in text_guids and usable and not text:  # (an unreadable file is reported above)
            usable = False
            report.add(STAGE, guid, "excluded", "empty_text_file",
                       f"data/{guid}.txt is empty; row kept with has_text=False, the trainer skips it")
        texts.append(text)
        encodings.append(encoding)
        has_text.append(usable)
    frame["text_raw"] = texts
    frame["encoding"] = encodings
    frame["image_file"] = [f"data/{g}.jpg" for g in frame["guid"]]
    frame["has_text"] = has_text
    frame["has_image"] = frame["guid"].isin(image_guids)
    for guid in frame.loc[~frame["has_image"], "guid"]:
        report.add(STAGE, guid, "excluded", "missing_image_file",
                   f"data/{guid}.jpg not found; row kept with has_image=False, the trainer skips it")
    frame["label"] = frame["tag"].map(LABEL2ID).where(frame["split"] == "train").astype("Int64")

    listed = set(frame["guid"]) | report_guids_excluded(report)
    for guid in sorted((text_guids | image_guids) - listed):
        report.add(STAGE, guid, "noted", "unlabelled_unused", "in data/ but in neither label file; not used")
    frame["guid"] = frame["guid"].astype(int)
    return frame[COLUMNS]


def listed_guids(data_dir: str | os.PathLike) -> set[int]:
    """Every integer guid written in the two label files of ``data_dir`` (for invariant checks).

    Raises:
        FileNotFoundError: if a label file is missing.
    """
    guids: set[int] = set()
    for name in LABEL_FILES.values():
        path = Path(data_dir) / name
        if not path.is_file():
            raise FileNotFoundError(f"label file not found: {path}")
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        values = frame.iloc[:, 0].str.strip()
        guids.update(int(v) for v in values if v.isdigit())
    return guids


def report_guids_excluded(report: DataReport) -> set[int]:
    """Guids that the ``load`` stage excluded from the label files (not 'unlabelled')."""
    return set(report.guids(stage=STAGE, action="excluded"))


# --------------------------------------------------------------------------------------------
# Sampling (smoke runs)
# --------------------------------------------------------------------------------------------

def _proportional_counts(counts: pd.Series, total: int) -> pd.Series:
    """Split ``total`` over classes in proportion to ``counts`` (largest remainder, >= 1 each)."""
    total = min(total, int(counts.sum()))
    exact = counts / counts.sum() * total
    alloc = np.floor(exact).astype(int).clip(lower=min(1, total // max(len(counts), 1)))
    alloc = alloc.clip(upper=counts)
    order = (exact - np.floor(exact)).sort_values(ascending=False).index
    i = 0
    while alloc.sum() < total:
        key = order[i % len(order)]
        if alloc[key] < counts[key]:
            alloc[key] += 1
        i += 1
    while alloc.sum() > total:
        alloc[alloc.idxmax()] -= 1
    return alloc


def sample_posts(frame: pd.DataFrame, train_sample: int | None, test_sample: int | None, seed: int,
                 report: DataReport | None = None) -> pd.DataFrame:
    """A stratified sample of ``train_sample`` train posts plus the first ``test_sample`` test posts.

    Train posts are drawn per ``label`` in proportion to the class counts (largest remainder,
    at least one per class when the sample allows), with ``numpy`` seeded by ``seed``. ``None``
    keeps every post of that split. The original row order is kept.

    Args:
        report: if given, every post left out is recorded (stage ``"sample"``, ``noted``,
            reason ``"not_in_sample"``), so that the guids of the label files stay accounted for.

    Raises:
        ValueError: if a sample size is negative.
    """
    for name, size in (("train_sample", train_sample), ("test_sample", test_sample)):
        if size is not None and size < 0:
            raise ValueError(f"{name} must be >= 0 or None, got {size}")
    is_train = frame["split"] == "train"
    keep = pd.Series(True, index=frame.index)
    if train_sample is not None:
        train = frame[is_train]
        alloc = _proportional_counts(train["label"].value_counts(sort=False).sort_index(), train_sample)
        rng = np.random.default_rng(seed)
        chosen = []
        for label, n in alloc.items():
            index = train.index[train["label"] == label].to_numpy()
            chosen.extend(rng.choice(index, size=int(n), replace=False).tolist())
        keep[is_train] = False
        keep[chosen] = True
    if test_sample is not None:
        test_index = frame.index[~is_train]
        keep[test_index[test_sample:]] = False
    if report is not None:
        for guid in frame.loc[~keep, "guid"]:
            report.add("sample", guid, "noted", "not_in_sample",
                       f"left out of the sample (train_sample={train_sample}, test_sample={test_sample})")
    return frame[keep].copy()
