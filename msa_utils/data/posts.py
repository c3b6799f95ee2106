"""The post table: one row per post of the label files, and the one function that builds it.

:func:`build_posts` runs the data pipeline once, in this order, each stage adding its columns and
recording what it repaired, left out or noticed in one :class:`~msa_utils.data.data_report.DataReport`:

1. **load** (:func:`msa_utils.data.mvsa.load_mvsa`): label files, text decoding;
2. **sample** (:func:`sample_posts`, ``smoke`` runs only);
3. **images** (:func:`msa_utils.data.images.inspect_images`): every image opened, bounded, decoded;
4. **content** (:func:`group_content`): posts sharing a text or an image grouped, copies reported;
5. **clean** (:func:`msa_utils.data.text.clean_posts`): the paper's "noise removed, lower-cased";
6. **translate** (:func:`msa_utils.data.translate.translate_posts`): language detection, translation.

Notebook 01 calls it and writes ``posts.csv`` and ``data_report.csv`` (:func:`save_posts`);
every later notebook reads the table back with :func:`load_posts`. :data:`COLUMNS` is the
table's schema, the one place its columns and their types are written down.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from msa_utils import io
from msa_utils.data import reasons
from msa_utils.data.mvsa import listed_guids, load_mvsa
from msa_utils.data.data_report import DataReport
from msa_utils.data.images import inspect_images
from msa_utils.config.profiles import Profile, StudyPaths
from msa_utils.data.splits import post_groups, stratified_subset
from msa_utils.data.text import clean_posts
from msa_utils.data.translate import translate_posts

COLUMNS: dict[str, str] = {
    "guid": "int64",        # post id, the stem of data/<guid>.txt|jpg
    "split": "string",      # "train" (labelled) or "test" (test_without_label.txt)
    "tag": "string",        # the label file's tag: positive | negative | neutral, or null
    "label": "Int64",       # class id (msa_utils.LABELS order); <NA> for test posts
    "encoding": "string",   # how the text file was decoded ("" when there is no usable text)
    "lang": "string",       # detected language (ISO 639-1; "und" when too short to tell)
    "translated": "bool",   # the text was translated to English
    "has_text": "bool",     # a usable text file was read
    "has_image": "bool",    # data/<guid>.jpg exists
    "image_ok": "bool",     # the image was decoded (bounded, repaired to RGB)
    "width": "Int64",       # image width [px], <NA> when unreadable
    "height": "Int64",      # image height [px], <NA> when unreadable
    "image_file": "string",  # the image's path relative to the data folder
    "content_group": "int64",  # posts sharing their decoded text or image bytes share it (splits.content_groups)
    "text_raw": "string",   # decoded text, line endings joined
    "text_clean": "string",  # cleaned (noise removed, lower-cased)
    "text_en": "string",    # cleaned English translation, or text_clean where not translated
    "text": "string",       # the model's input text (= text_en)
}
"""The columns of ``posts.csv``, in file order, with their pandas dtypes."""

BOOL_COLUMNS = [name for name, dtype in COLUMNS.items() if dtype == "bool"]


@dataclass
class PostTable:
    """What :func:`build_posts` returns.

    Attributes:
        posts: the table, columns :data:`COLUMNS`, in label-file order (train rows, then test).
        report: every item the stages repaired, left out or noticed.
    """

    posts: pd.DataFrame
    report: DataReport


def build_posts(cfg: Profile) -> PostTable:
    """Read the data folder of ``cfg`` and run every stage of the data pipeline, once.

    Uses ``cfg.data_dir``, ``cfg.train_sample``, ``cfg.test_sample``, ``cfg.seed``,
    ``cfg.translate``, ``cfg.translate_timeout_s`` and the translation cache of ``cfg.paths``
    (read, and written when a new translation is made).

    Returns:
        A :class:`PostTable`; :func:`check_posts` holds for it.

    Raises:
        FileNotFoundError: if the data folder, its ``data/`` folder or a label file is missing.
        ValueError: if a label file has no ``guid,tag`` header.
    """
    report = DataReport()
    posts = load_mvsa(cfg.data_dir, report)
    posts = sample_posts(posts, cfg.train_sample, cfg.test_sample, cfg.seed, report)
    posts = inspect_images(posts, cfg.data_dir, report)
    posts = group_content(posts, cfg.data_dir, report)
    posts = clean_posts(posts, report)
    posts = translate_posts(posts, cfg.paths.translation_cache, report, enabled=cfg.translate,
                            timeout_s=cfg.translate_timeout_s)
    table = PostTable(posts[list(COLUMNS)].reset_index(drop=True), report)
    check_posts(table, cfg.data_dir)
    return table


def sample_posts(frame: pd.DataFrame, train_sample: int | None, test_sample: int | None, seed: int,
                 report: DataReport | None = None) -> pd.DataFrame:
    """A stratified sample of ``train_sample`` train posts plus the first ``test_sample`` test posts.

    Train posts are drawn with :func:`msa_utils.data.splits.stratified_subset` (the class shares of
    ``label`` kept, seeded by ``seed``); ``None`` keeps every post of that split. The original
    row order is kept.

    Args:
        report: if given, every post left out is recorded (reason ``not_in_sample``), so that the
            guids of the label files stay accounted for.

    Raises:
        ValueError: if a sample size is negative.
    """
    for name, size in (("train_sample", train_sample), ("test_sample", test_sample)):
        if size is not None and size < 0:
            raise ValueError(f"{name} must be >= 0 or None, got {size}")
    is_train = (frame["split"] == "train").to_numpy()
    keep = np.ones(len(frame), dtype=bool)
    if train_sample is not None:
        train_positions = np.flatnonzero(is_train)
        chosen = stratified_subset(frame["label"].to_numpy()[train_positions].astype(int), train_sample, seed)
        keep[train_positions] = False
        keep[train_positions[chosen]] = True
    if test_sample is not None:
        keep[np.flatnonzero(~is_train)[test_sample:]] = False
    if report is not None:
        for guid in frame.loc[~keep, "guid"]:
            report.add(reasons.NOT_IN_SAMPLE, guid,
                       f"left out of the sample (train_sample={train_sample}, test_sample={test_sample})")
    return frame[keep].copy()


def group_content(frame: pd.DataFrame, data_dir, report: DataReport | None = None) -> pd.DataFrame:
    """Add the ``content_group`` column: posts with the same decoded text or the same image bytes
    share a group (:func:`msa_utils.data.splits.post_groups`), so that splits keep them together.

    Every labelled post in a group with another labelled post is reported (``noted``):
    ``duplicate_content`` when the group's tags agree, ``duplicate_content_conflicting_labels``
    when they differ, naming the other guids.

    Returns:
        A copy of ``frame`` with ``content_group`` (int64).

    Raises:
        OSError: if an existing image file cannot be read.
    """
    frame = frame.copy()
    frame["content_group"] = post_groups(frame, data_dir)
    labelled = frame[frame["split"] == "train"]
    if report is not None:
        for _, members in labelled.groupby("content_group"):
            if len(members) < 2:
                continue
            reason = (reasons.DUPLICATE_CONTENT_CONFLICTING_LABELS if members["label"].nunique() > 1
                      else reasons.DUPLICATE_CONTENT)
            tags = dict(zip(members["guid"], members["tag"]))
            for guid in members["guid"]:
                others = ", ".join(f"{g} ({tags[g]})" for g in members["guid"] if g != guid)
                report.add(reason, guid, f"same text or image as {others}")
    return frame


def check_posts(table: PostTable, data_dir) -> None:
    """The post table's invariants; raises ``ValueError`` naming the first one broken.

    One row per guid; every guid written in the label files is in the table or named in the
    report; labels are class ids for train rows and missing for test rows; no text is missing.
    """
    posts = table.posts
    if not posts["guid"].is_unique:
        raise ValueError("post table: a guid has several rows")
    unaccounted = listed_guids(data_dir) - set(posts["guid"]) - set(table.report.guids())
    if unaccounted:
        raise ValueError(f"guids neither in the post table nor in the report: {sorted(unaccounted)[:10]}")
    train = posts["split"] == "train"
    if not (posts.loc[train, "label"].notna().all() and set(posts.loc[train, "label"]) <= {0, 1, 2}):
        raise ValueError("post table: a training post has no class id")
    if posts.loc[~train, "label"].notna().any():
        raise ValueError("post table: a test post has a label")
    if posts["text"].isna().any():
        raise ValueError("post table: a text is missing (NaN); absent texts must be ''")


def save_posts(table: PostTable, paths: StudyPaths) -> None:
    """Atomically write ``posts.csv`` (columns :data:`COLUMNS`) and ``data_report.csv``."""
    io.write_csv(paths.posts, table.posts[list(COLUMNS)])
    table.report.save(paths.data_report)


def load_posts(paths: StudyPaths) -> pd.DataFrame:
    """Read the post table written by :func:`save_posts`, with the dtypes of :data:`COLUMNS`.

    Empty texts come back as ``""`` (not NaN); ``label``, ``width`` and ``height`` are
    nullable integers.

    Raises:
        FileNotFoundError: if notebook 01 has not run for this results folder.
    """
    if not paths.posts.exists():
        raise FileNotFoundError(f"{paths.posts} not found: run notebooks/01_explore.ipynb first")
    nullable = {name: [""] for name, dtype in COLUMNS.items() if dtype == "Int64"}
    posts = pd.read_csv(paths.posts, dtype={k: v for k, v in COLUMNS.items() if k not in BOOL_COLUMNS},
                        keep_default_na=False, na_values=nullable)
    for column in BOOL_COLUMNS:
        posts[column] = posts[column].astype(str).str.lower().eq("true")
    return posts


def usable(posts: pd.DataFrame) -> pd.Series:
    """Boolean mask of the posts a model can read: a usable text file and a decoded image."""
    return posts["has_text"] & posts["has_image"] & posts["image_ok"]
