"""The post table: one row per post of the label files, built once by :func:`build_posts` (stages
load, sample, images, clean, translate, content, each reporting to one data report), written by
notebook 01 (:func:`save_posts`) and read back by the later ones (:func:`load_posts`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from msa_utils import io
from msa_utils.config.profiles import Profile, StudyPaths
from msa_utils.data import reasons
from msa_utils.data.data_report import DataReport
from msa_utils.data.images import inspect_images
from msa_utils.data.sources import load_source, source_guids, source_root
from msa_utils.data.splits import content_groups, stratified_subset
from msa_utils.data.text import clean_posts
from msa_utils.data.translate import translate_posts
from msa_utils.io import hashing

logger = logging.getLogger(__name__)

COLUMNS: dict[str, str] = {
    "guid": "int64",        # post id, the stem of data/<guid>.txt and of its image
    "split": "string",      # "train" (labelled) or "test" (test_without_label.txt)
    "tag": "string",        # the label file's tag: positive | negative | neutral, or null
    "label": "Int64",       # class id (msa_utils.config.labels.LABELS order); <NA> for test posts
    "encoding": "string",   # how the text file was decoded ("" when there is no usable text)
    "lang": "string",       # detected language (ISO 639-1; "und" when too short to tell)
    "translated": "bool",   # the text was translated to English
    "has_text": "bool",     # a usable text file was read
    "has_image": "bool",    # one image file data/<guid>.jpg|.jpeg|.png|.webp|.gif|.bmp|.tif|.tiff (any case)
    "image_ok": "bool",     # the image was decoded (bounded, repaired to RGB)
    "width": "Int64",       # image width [px], <NA> when unreadable
    "height": "Int64",      # image height [px], <NA> when unreadable
    "image_file": "string",  # relative to the data folder, or a table's folder (data/8.PNG); "" if several
    "image_phash": "string",  # perceptual hash (imagehash.phash, 16 hex digits), "" when unreadable
    "content_group": "int64",  # shared model text, image bytes or near-identical image (splits.content_groups)
    "text_raw": "string",   # decoded text, line endings joined
    "text_clean": "string",  # cleaned (noise removed, lower-cased)
    "text_en": "string",    # cleaned English translation, or text_clean where not translated
    "text": "string",       # the model's input text (= text_en)
}
"""The columns of ``posts.csv``, in file order, with their pandas dtypes."""


@dataclass
class PostTable:
    """``posts`` (columns :data:`COLUMNS`, train rows then test, in label-file order) and their ``report``."""

    posts: pd.DataFrame
    report: DataReport


def build_posts(cfg: Profile) -> PostTable:
    """Every stage, on ``cfg.data.data_dir`` (a folder or a table); raises as
    :func:`~msa_utils.data.sources.load_source`, :func:`check_posts`."""
    report = DataReport()
    root = source_root(cfg.data.data_dir)
    posts = load_source(cfg.data.data_dir, report, cfg.data.label_map)
    if not (posts["split"] == "test").any():
        logger.warning("no post to predict (no test_without_label.txt, or no unlabelled row in the table): the study "
                       "trains and tests on the labelled posts; its prediction files will hold only their header")
    posts = sample_posts(posts, cfg.data.train_sample, cfg.data.test_sample, cfg.seed, report)
    posts = inspect_images(posts, root, report)
    posts = clean_posts(posts, report)
    posts = translate_posts(posts, cfg.paths.translation_cache, report, enabled=cfg.data.translate,
                            timeout_s=cfg.data.translate_timeout_s)
    posts = group_content(posts, root, report)
    table = PostTable(posts[list(COLUMNS)].reset_index(drop=True), report)
    check_posts(table, cfg.data.data_dir)
    return table


def sample_posts(frame: pd.DataFrame, train_sample: int | None, test_sample: int | None, seed: int,
                 report: DataReport | None = None) -> pd.DataFrame:
    """``train_sample`` train posts (:func:`~msa_utils.data.splits.stratified_subset`) and the first
    ``test_sample`` test posts (``None``: all), the rest reported. Raises ValueError for a negative size."""
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


def group_content(frame: pd.DataFrame, root, report: DataReport) -> pd.DataFrame:
    """A copy of ``frame`` with ``content_group`` (:func:`~msa_utils.data.splits.content_groups` of ``text``, the
    model's, image SHA-256s of ``image_file`` under ``root`` and ``image_phash``); labelled posts sharing a group
    are reported. Raises OSError for an unreadable image."""
    frame = frame.copy()
    hashes = hashing.file_hashes(Path(root) / rel for rel in frame["image_file"])
    texts = [None if pd.isna(t) else t for t in frame["text"]]
    frame["content_group"] = content_groups(texts, hashes, frame["image_phash"].tolist())
    for _, members in frame[frame["split"] == "train"].groupby("content_group"):
        if len(members) < 2:
            continue
        reason = (reasons.DUPLICATE_CONTENT_CONFLICTING_LABELS if members["label"].nunique() > 1
                  else reasons.DUPLICATE_CONTENT)
        tags = dict(zip(members["guid"], members["tag"]))
        for guid in members["guid"]:
            others = ", ".join(f"{g} ({tags[g]})" for g in members["guid"] if g != guid)
            report.add(reason, guid, f"same text or (near-)same image as {others}")
    return frame


def check_posts(table: PostTable, data_dir) -> None:
    """Raise ``ValueError`` naming the first broken invariant: one row per guid; every guid the source
    ``data_dir`` lists (:func:`~msa_utils.data.sources.source_guids`) in the table or the report; class ids for
    train rows only; no text missing."""
    posts = table.posts
    if not posts["guid"].is_unique:
        raise ValueError("post table: a guid has several rows")
    listed = {g for guids in source_guids(data_dir).values() for g in guids}
    unaccounted = listed - set(posts["guid"]) - set(table.report.guids())
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
    """The table :func:`save_posts` wrote (dtypes :data:`COLUMNS`, empty texts ``""``); FileNotFoundError if none."""
    if not paths.posts.exists():
        raise FileNotFoundError(f"{paths.posts} not found: run notebooks/01_explore.ipynb first")
    booleans = [name for name, dtype in COLUMNS.items() if dtype == "bool"]
    posts = pd.read_csv(paths.posts, dtype={k: v for k, v in COLUMNS.items() if k not in booleans},
                        keep_default_na=False, na_values={name: [""] for name, dtype in COLUMNS.items() if dtype == "Int64"})
    for column in booleans:
        posts[column] = posts[column].astype(str).str.lower().eq("true")
    return posts


def usable(posts: pd.DataFrame) -> pd.Series:
    """Mask of the posts a model can read: a usable text file and a decoded image."""
    return posts["has_text"] & posts["has_image"] & posts["image_ok"]
