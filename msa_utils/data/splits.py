"""The study's parts of the labelled posts, grouped by content, and inverse-class-frequency re-sampling.

The paper splits ``train.txt`` 8:2 into training and validation and re-samples the imbalanced
classes "by inverse class frequency". We first set aside a labelled test part that no choice ever
reads (:func:`study_split`), then split the rest 8:2; every split is stratified by class and
grouped by content (:func:`content_groups`: the same text or the same image bytes), so copies of a
post never sit on both sides. We draw, with replacement, ``len(train)`` posts per epoch
with probability proportional to ``1 / count(label)`` (``torch.utils.data.WeightedRandomSampler``),
so each class is drawn equally often in expectation. Re-sampling touches the training split only.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from sklearn.model_selection import StratifiedGroupKFold, train_test_split
from torch.utils.data import WeightedRandomSampler

from msa_utils import io
from msa_utils.config.labels import LABELS
from msa_utils.io import hashing

SPLIT_FILES = {"train": "train_guids.txt", "val": "val_guids.txt", "test": "test_guids.txt"}
"""The guid list of each part of the labelled posts (notebook 03)."""


def content_groups(texts: Sequence[str | None], image_hashes: Sequence[str | None]) -> np.ndarray:
    """Group posts that share content: the same decoded text, or the same image bytes.

    Two posts are in one group when their texts are equal after stripping surrounding white
    space (empty texts relate nothing), or their images have the same SHA-256; groups are the
    connected components of the union of both relations
    (:func:`scipy.sparse.csgraph.connected_components` over a graph of posts and contents), so
    ``A`` sharing its text with ``B`` and ``B`` its image with ``C`` puts all three together.

    Args:
        texts: (N,) decoded texts (``posts.text_raw``), ``None``/NA for no text.
        image_hashes: (N,) SHA-256 of each image file (:func:`msa_utils.io.hashing.file_hashes`),
            ``None`` for no image.

    Returns:
        (N,) int64 group ids, ``0 .. G-1`` in order of first appearance.

    Raises:
        ValueError: if the two sequences differ in length.
    """
    if len(texts) != len(image_hashes):
        raise ValueError(f"{len(texts)} texts but {len(image_hashes)} image hashes")
    n = len(texts)
    keys = [f"text:{t.strip()}" if isinstance(t, str) and t.strip() else None for t in texts]
    keys += [f"image:{h}" if isinstance(h, str) and h else None for h in image_hashes]
    codes, _ = pd.factorize(pd.Series(keys, dtype=object))
    posts = np.tile(np.arange(n), 2)[codes >= 0]
    contents = n + codes[codes >= 0]
    size = n + max(int(codes.max()) + 1, 0) if len(codes) else n
    graph = coo_matrix((np.ones(len(posts)), (posts, contents)), shape=(size, size))
    _, component = connected_components(graph, directed=False)
    return pd.factorize(component[:n])[0].astype(np.int64)


def post_groups(posts: pd.DataFrame, data_dir: str | os.PathLike) -> np.ndarray:
    """:func:`content_groups` of the rows of a post table (:mod:`msa_utils.data.posts`): their decoded
    texts (``text_raw``) and the SHA-256 of their image files under ``data_dir``.

    Returns:
        (len(posts),) int64 group ids, in row order.

    Raises:
        OSError: if an image file exists but cannot be read.
    """
    hashes = hashing.file_hashes(Path(data_dir) / rel for rel in posts["image_file"])
    texts = [None if pd.isna(t) else t for t in posts["text_raw"]]
    return content_groups(texts, hashes)


def straddling_posts(groups: np.ndarray, parts: Sequence[np.ndarray]) -> np.ndarray:
    """Positions of the posts whose content group has posts in more than one of ``parts``.

    Args:
        groups: (N,) group ids (:func:`content_groups`).
        parts: disjoint arrays of positions into ``groups`` (e.g. train, val, test).

    Returns:
        Sorted int64 positions; empty for a split that keeps every group in one part.
    """
    groups = np.asarray(groups)
    part_of = np.full(len(groups), -1)
    for index, positions in enumerate(parts):
        part_of[np.asarray(positions, dtype=np.int64)] = index
    placed = part_of >= 0
    frame = pd.DataFrame({"group": groups[placed], "part": part_of[placed]})
    spread = frame.groupby("group")["part"].nunique()
    crossing = np.isin(groups, spread.index[spread > 1]) & placed
    return np.flatnonzero(crossing).astype(np.int64)


def copies_across_parts(labels: np.ndarray, groups: np.ndarray, parts: Sequence[np.ndarray], fraction: float = 0.2,
                        seed: int = 0) -> pd.Series:
    """How many posts share content with another post, and how many a split puts on two sides.

    Args:
        labels: (N,) class ids; groups: (N,) content-group ids (:func:`content_groups`).
        parts: the study's parts, as positions into ``labels`` (e.g. from :func:`study_split`).
        fraction: held-out share of the plain split it is compared with.
        seed: seed of that plain split.

    Returns:
        A Series of counts: content groups of 2 or more posts, the posts in them, posts whose
        group straddles ``parts``, and posts whose group straddles a plain stratified split
        (``train_test_split(stratify=labels, test_size=fraction)``: the paper's protocol, and
        this study's before its parts were grouped; not stratified if a class has one post).
    """
    sizes = pd.Series(groups).value_counts()
    shared = sizes[sizes > 1]
    stratify = labels if np.unique(labels, return_counts=True)[1].min() >= 2 else None  # a class of 1 post cannot be
    plain = train_test_split(np.arange(len(labels)), test_size=fraction, stratify=stratify, random_state=seed)
    return pd.Series({
        "content groups of 2 or more posts": len(shared),
        "posts in those groups": int(shared.sum()),
        "posts whose copies sit in another part: these parts": len(straddling_posts(groups, parts)),
        f"posts whose copies sit on the other side: a plain stratified {1 - fraction:.0%}:{fraction:.0%} split":
            len(straddling_posts(groups, plain)),
    }, name="posts")


def grouped_split(labels: np.ndarray, groups: np.ndarray, fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split posts in two parts, stratified by class and never splitting a content group.

    One fold of :class:`sklearn.model_selection.StratifiedGroupKFold` with
    ``n_splits = round(1 / fraction)``, ``shuffle=True``, ``random_state=seed``: the held part is
    about ``fraction`` of the posts with about the class shares of all of them, and every group
    (:func:`content_groups`) lies in one part. Posts of a class with a single post (it cannot be
    stratified) and their groups go to the first part, with a warning.

    Args:
        labels: (N,) class ids.
        groups: (N,) content-group ids.
        fraction: share of the posts held out, in [0.05, 0.5].
        seed: seed of the fold assignment.

    Returns:
        ``(kept, held)``: sorted int64 positions into ``labels``, disjoint, together all of them.

    Raises:
        ValueError: on mismatched lengths, no posts, a ``fraction`` outside [0.05, 0.5], fewer
            content groups than folds, or a single post in every class.

    Warns:
        UserWarning: a class of :data:`msa_utils.LABELS` with no post (the model can never predict
            it, and its F1 of 0 is not a finding), or with a single one.
    """
    labels = np.asarray(labels)
    groups = np.asarray(groups)
    if labels.shape != groups.shape:
        raise ValueError(f"labels {labels.shape} and groups {groups.shape} differ in shape")
    if not 0.05 <= fraction <= 0.5:
        raise ValueError(f"fraction must be in [0.05, 0.5], got {fraction}")
    if len(labels) == 0:
        raise ValueError("no usable labelled post to split: every post of train.txt was excluded "
                         "(data_report.csv says why) or the file lists none")
    classes, counts = np.unique(labels, return_counts=True)
    absent = [name for i, name in enumerate(LABELS) if i not in set(classes.tolist())]
    if absent:
        warnings.warn(f"no usable labelled post of class {absent}: the model can never predict it, and its "
                      "F1 of 0 is not a finding (data_report.csv lists what was excluded)", UserWarning, stacklevel=2)
    single = np.isin(labels, classes[counts == 1])
    if single.any():
        rare = [LABELS[int(c)] if 0 <= int(c) < len(LABELS) else int(c) for c in classes[counts == 1]]
        warnings.warn(f"class {rare} has a single usable labelled post: it goes to the larger part (training), "
                      "and the held part has none of that class", UserWarning, stacklevel=2)
    if single.all():
        raise ValueError("a split needs at least 2 usable posts of one class; every class present has 1")
    forced = np.isin(groups, groups[single])
    free = np.flatnonzero(~forced)
    n_splits = max(2, round(1.0 / fraction))
    if len(np.unique(groups[free])) < n_splits:
        raise ValueError(f"a split holding out {fraction:.0%} needs at least {n_splits} groups of distinct content, "
                         f"got {len(np.unique(groups[free]))}")
    folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # small classes: we warn above, in our own words
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        try:
            kept, held = next(folds.split(free, labels[free], groups[free]))
        except ValueError as error:
            raise ValueError(f"cannot hold out {fraction:.0%} of {len(free)} posts in {n_splits} stratified group folds "
                             f"(posts per class: {np.bincount(labels[free].astype(int)).tolist()}): {error}") from error
    kept = np.sort(np.concatenate([free[kept], np.flatnonzero(forced)]))
    held = np.sort(free[held])
    for part, positions in (("held", held), ("kept", kept)):
        missing = sorted(set(classes.tolist()) - set(labels[positions].tolist()))
        if missing and not (part == "held" and set(missing) <= set(classes[counts == 1].tolist())):
            names = [LABELS[int(c)] if 0 <= int(c) < len(LABELS) else int(c) for c in missing]
            warnings.warn(f"the {part} part has no post of class {names}: its posts share too few distinct contents "
                          "to be spread over the parts (groups stay whole)", UserWarning, stacklevel=2)
    return kept, held


def study_split(guids: np.ndarray, labels: np.ndarray, groups: np.ndarray, test_fraction: float = 0.2,
                val_fraction: float = 0.2, seed: int = 0) -> dict[str, np.ndarray]:
    """The study's three parts of the labelled posts: a held-out test part, then train / val.

    First the test part (``test_fraction``; never read by any choice: early stopping, design or
    variant selection, a baseline's hyperparameters), then the rest 8:2 (``val_fraction``) into
    training and validation as in the paper; both splits by :func:`grouped_split`, so no content
    group straddles two parts.

    Args:
        guids: (N,) unique post ids; labels: (N,) class ids; groups: (N,) content-group ids.
        test_fraction, val_fraction: shares, each in [0.05, 0.5] (``val_fraction`` of what is
            left after the test part).
        seed: seed of both splits.

    Returns:
        ``{"train", "val", "test"}`` sorted guid arrays, disjoint, together all of ``guids``.

    Raises:
        ValueError: on duplicated guids, mismatched lengths, or as :func:`grouped_split`.
    """
    guids = np.asarray(guids)
    labels = np.asarray(labels)
    groups = np.asarray(groups)
    if not guids.shape == labels.shape == groups.shape:
        raise ValueError(f"guids {guids.shape}, labels {labels.shape} and groups {groups.shape} differ in shape")
    if len(np.unique(guids)) != len(guids):
        raise ValueError("guids must be unique")
    try:
        rest, test = grouped_split(labels, groups, test_fraction, seed)
    except ValueError as error:
        raise ValueError(f"setting the test part aside: {error}") from error
    try:
        train, val = grouped_split(labels[rest], groups[rest], val_fraction, seed)
    except ValueError as error:
        raise ValueError(f"splitting the {len(rest)} posts left after the test part into training and validation: "
                         f"{error}") from error
    return {"train": np.sort(guids[rest[train]]), "val": np.sort(guids[rest[val]]), "test": np.sort(guids[test])}


def stratified_subset(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Positions of a stratified random subset of ``size`` items: the class shares of ``labels``
    are kept (up to rounding).

    Uses :func:`sklearn.model_selection.train_test_split` with ``train_size=size`` and
    ``stratify=labels``; if a class has a single item (it cannot be stratified), without
    ``stratify``, with a warning.

    Args:
        labels: (N,) class ids.
        size: items to keep; ``size >= N`` keeps all.
        seed: ``random_state`` of the shuffle.

    Returns:
        Sorted int64 positions into ``labels``.

    Raises:
        ValueError: if ``size`` is negative.
    """
    labels = np.asarray(labels)
    if size < 0:
        raise ValueError(f"size must be >= 0, got {size}")
    positions = np.arange(len(labels))
    if size >= len(labels):
        return positions
    if size == 0:
        return positions[:0]
    _, counts = np.unique(labels, return_counts=True)
    stratify = labels
    if counts.min() < 2 or size < len(counts):
        warnings.warn(f"a sample of {size} from classes of {counts.tolist()} posts cannot be stratified; "
                      "drawn without stratification", UserWarning, stacklevel=2)
        stratify = None
    chosen, _ = train_test_split(positions, train_size=size, stratify=stratify, random_state=seed)
    return np.sort(chosen)


def save_split(split: dict[str, np.ndarray], folder: str | os.PathLike) -> None:
    """Write the guid list of each part (:data:`SPLIT_FILES`, one guid a line) atomically to ``folder``."""
    for part, name in SPLIT_FILES.items():
        io.write_text(Path(folder) / name, "".join(f"{int(g)}\n" for g in split[part]))


def load_split(folder: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a split written by :func:`save_split`.

    Raises:
        FileNotFoundError: if a guid list is missing (run notebook 03 first).
        ValueError: if a guid is in two parts.
    """
    split = {}
    for part, name in SPLIT_FILES.items():
        path = Path(folder) / name
        if not path.exists():
            raise FileNotFoundError(f"{path} not found: run notebooks/03_resample.ipynb first")
        split[part] = np.array([int(line) for line in path.read_text().split()], dtype=np.int64)
    for i, a in enumerate(SPLIT_FILES):
        for b in list(SPLIT_FILES)[i + 1:]:
            overlap = np.intersect1d(split[a], split[b])
            if overlap.size:
                raise ValueError(f"{overlap.size} guids are in both {a} and {b}, e.g. {overlap[:5].tolist()}")
    return split


def inverse_frequency_weights(labels: np.ndarray | torch.Tensor, num_classes: int = len(LABELS)) -> torch.Tensor:
    """Per-sample weights ``1 / count(label)``.

    Args:
        labels: (N,) class ids.
        num_classes: number of classes.

    Returns:
        (N,) float64 weights; every class sums to 1.

    Raises:
        ValueError: if a label is outside ``[0, num_classes)``.
    """
    labels = torch.tensor(np.asarray(labels, dtype=np.int64))
    if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes}), got {labels.unique().tolist()}")
    counts = torch.bincount(labels, minlength=num_classes).double()
    return 1.0 / counts[labels]


def make_sampler(labels: np.ndarray, seed: int, num_samples: int | None = None) -> WeightedRandomSampler:
    """A :class:`~torch.utils.data.WeightedRandomSampler` drawing with replacement by inverse class frequency.

    Args:
        labels: (N,) class ids of the training split.
        seed: seed of the sampler's own ``torch.Generator`` (independent of the global RNG).
        num_samples: draws per epoch; default ``N`` (an epoch sees as many posts as the split has).
    """
    generator = torch.Generator().manual_seed(seed)
    weights = inverse_frequency_weights(labels)
    return WeightedRandomSampler(weights, num_samples=num_samples or len(weights), replacement=True, generator=generator)


def class_counts(labels: np.ndarray, num_classes: int = len(LABELS)) -> pd.Series:
    """Counts per class name (index ``positive, negative, neutral``)."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes)
    return pd.Series(counts, index=list(LABELS), name="count")


def resampling_table(labels: np.ndarray, seed: int, epochs: int = 1) -> pd.DataFrame:
    """Class counts before and after re-sampling (averaged over ``epochs`` draws of the sampler).

    Returns:
        DataFrame indexed by class name with columns ``before``, ``after`` (mean posts drawn per
        epoch), ``before_share`` and ``after_share`` (fractions).
    """
    labels = np.asarray(labels, dtype=np.int64)
    sampler = make_sampler(labels, seed)
    drawn = np.concatenate([labels[list(iter(sampler))] for _ in range(epochs)])
    table = pd.DataFrame({"before": class_counts(labels), "after": class_counts(drawn) / epochs})
    table["before_share"] = table["before"] / table["before"].sum()
    table["after_share"] = table["after"] / table["after"].sum()
    return table

