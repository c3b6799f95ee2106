"""Content groups, grouped and stratified splits (the folds: :mod:`msa_utils.data.folds`) and the paper's
re-sampling "by inverse class frequency"."""

from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from sklearn.model_selection import KFold, StratifiedGroupKFold, StratifiedKFold, train_test_split
from torch.utils.data import WeightedRandomSampler

from msa_utils.config.labels import LABELS

PHASH_MAX_DISTANCE = 8
"""Largest Hamming distance of two 64-bit ``imagehash.phash`` values whose images count as one picture: the
release's copies lie within 6, no pair at 8, 7 of the 8 at 10 are different pictures; JPEG re-encodes and
resizes to 50-90% stay within 8 (docs/data-handling.md, ``benchmarks/near_duplicates.py``)."""


def content_groups(texts: Sequence[str | None], image_hashes: Sequence[str | None],
                   image_phashes: Sequence[str | None] | None = None) -> np.ndarray:
    """(N,) int64 group ids (``0 .. G-1`` by first appearance): posts sharing their stripped non-empty
    text or image hash, or with phashes (hex) within :data:`PHASH_MAX_DISTANCE`, transitively (compared
    512 rows at a time); ``None`` / NA / ``""``: none. Raises ValueError on lengths that differ."""
    image_phashes = [None] * len(texts) if image_phashes is None else list(image_phashes)
    if not len(texts) == len(image_hashes) == len(image_phashes):
        raise ValueError(f"{len(texts)} texts, {len(image_hashes)} image hashes, {len(image_phashes)} phashes")
    n = len(texts)
    keys = [f"text:{t.strip()}" if isinstance(t, str) and t.strip() else None for t in texts]
    keys += [f"image:{h}" if isinstance(h, str) and h else None for h in image_hashes]
    codes, _ = pd.factorize(pd.Series(keys, dtype=object))
    posts = [np.tile(np.arange(n), 2)[codes >= 0]]
    contents = [n + codes[codes >= 0]]
    hashed = np.flatnonzero([isinstance(h, str) and bool(h) for h in image_phashes])
    bits = np.array([int(image_phashes[i], 16) for i in hashed], dtype=np.uint64)
    for start in range(0, len(bits), 512):  # a (512, M) uint64 block at a time: 20 MB for M = 4,900
        near = np.nonzero(np.bitwise_count(bits[start:start + 512, None] ^ bits[None, :]) <= PHASH_MAX_DISTANCE)
        posts.append(hashed[near[0] + start])
        contents.append(hashed[near[1]])
    posts, contents = np.concatenate(posts), np.concatenate(contents)
    size = n + max(int(codes.max()) + 1, 0) if len(codes) else n
    graph = coo_matrix((np.ones(len(posts)), (posts, contents)), shape=(size, size))
    _, component = connected_components(graph, directed=False)
    return pd.factorize(component[:n])[0].astype(np.int64)


def straddling_posts(groups: np.ndarray, parts: Sequence[np.ndarray]) -> np.ndarray:
    """Sorted int64 positions of the posts whose group spans two or more of ``parts`` (disjoint positions)."""
    groups = np.asarray(groups)
    part_of = np.full(len(groups), -1)
    for index, positions in enumerate(parts):
        part_of[np.asarray(positions, dtype=np.int64)] = index
    placed = part_of >= 0
    spread = pd.DataFrame({"group": groups[placed], "part": part_of[placed]}).groupby("group")["part"].nunique()
    return np.flatnonzero(np.isin(groups, spread.index[spread > 1]) & placed).astype(np.int64)


def copies_across_parts(labels: np.ndarray, groups: np.ndarray, fold_of: np.ndarray, seed: int = 0) -> pd.Series:
    """Counts: content groups of 2+ posts, the posts in them, posts whose group spans two folds of ``fold_of`` (N,),
    and of a plain ``StratifiedKFold`` into as many folds (the paper's kind of split; unstratified if a class has
    fewer posts than folds), ``shuffle=True, random_state=seed``."""
    fold_of, sizes = np.asarray(fold_of), pd.Series(groups).value_counts()
    shared, n_folds = sizes[sizes > 1], len(np.unique(fold_of))
    kind = StratifiedKFold if np.unique(labels, return_counts=True)[1].min() >= n_folds else KFold
    plain = [test for _, test in kind(n_folds, shuffle=True, random_state=seed).split(labels, labels)]
    return pd.Series({
        "content groups of 2 or more posts": len(shared),
        "posts in those groups": int(shared.sum()),
        "posts whose copies sit in another fold: these folds": len(straddling_posts(
            groups, [np.flatnonzero(fold_of == k) for k in np.unique(fold_of)])),
        f"posts whose copies sit in another fold: {n_folds} plain stratified folds": len(straddling_posts(groups, plain)),
    }, name="posts")


def _names(classes) -> list:
    return [LABELS[int(c)] if 0 <= int(c) < len(LABELS) else int(c) for c in classes]


def grouped_split(labels: np.ndarray, groups: np.ndarray, fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(kept, held)`` sorted int64 positions, ``held`` about ``fraction``: one fold of
    ``StratifiedGroupKFold(round(1 / fraction), shuffle=True, random_state=seed)``; a class of one post
    goes to ``kept``. Raises ValueError on mismatched shapes, no posts, ``fraction`` outside [0.05, 0.5],
    fewer groups than folds or one post in every class; warns of a class with 0 or 1 post or missing in a part."""
    labels, groups = np.asarray(labels), np.asarray(groups)
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
        warnings.warn(f"no post of class {absent} among the {len(labels)} split here: a model trained on them can "
                      "never predict it, and its F1 of 0 is not a finding (in a cross-validation run, that class's "
                      "posts may all sit in the test fold; data_report.csv lists what was excluded)", UserWarning,
                      stacklevel=2)
    single = np.isin(labels, classes[counts == 1])
    if single.any():
        warnings.warn(f"class {_names(classes[counts == 1])} has a single usable labelled post: it goes to the larger "
                      "part (training), and the held part has none of that class", UserWarning, stacklevel=2)
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
            warnings.warn(f"the {part} part has no post of class {_names(missing)}: its posts share too few distinct "
                          "contents to be spread over the parts (groups stay whole)", UserWarning, stacklevel=2)
    return kept, held


def stratified_subset(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Sorted int64 positions of ``size`` items (all if ``size >= N``) by ``train_test_split(train_size=size,
    stratify=labels, random_state=seed)``, ``size >= 0``; unstratified, with a warning, where it cannot work."""
    labels = np.asarray(labels)
    positions = np.arange(len(labels))
    if size >= len(labels) or size == 0:
        return positions[:size]
    counts = np.unique(labels, return_counts=True)[1]
    stratify = labels
    if counts.min() < 2 or size < len(counts):
        warnings.warn(f"a sample of {size} from classes of {counts.tolist()} posts cannot be stratified; "
                      "drawn without stratification", UserWarning, stacklevel=2)
        stratify = None
    return np.sort(train_test_split(positions, train_size=size, stratify=stratify, random_state=seed)[0])


def inverse_frequency_weights(labels: np.ndarray | torch.Tensor, num_classes: int = len(LABELS)) -> torch.Tensor:
    """(N,) float64 weights ``1 / count(label)``; raises ValueError for a label outside ``[0, num_classes)``."""
    labels = torch.tensor(np.asarray(labels, dtype=np.int64))
    if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes}), got {labels.unique().tolist()}")
    return 1.0 / torch.bincount(labels, minlength=num_classes).double()[labels]


def epoch_draws(labels: np.ndarray, resample_to: str = "majority") -> int:
    """Posts a re-sampled epoch draws from (N,) ``labels``: ``"majority"``, 3 x the largest class's count (each class
    drawn on average as often as the majority class has posts: the paper's epochs grew from 100 to about 190
    batches); ``"posts"``, N. ValueError for another rule."""
    if resample_to not in ("majority", "posts"):
        raise ValueError(f"resample_to must be 'majority' or 'posts', got {resample_to!r}")
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=len(LABELS))
    return int(len(LABELS) * counts.max()) if resample_to == "majority" else len(labels)


def make_sampler(labels: np.ndarray, seed: int, resample_to: str = "posts") -> WeightedRandomSampler:
    """A sampler drawing :func:`epoch_draws` of the (N,) ``labels`` per epoch, with replacement, by
    :func:`inverse_frequency_weights`, from its own generator seeded with ``seed``."""
    return WeightedRandomSampler(inverse_frequency_weights(labels), num_samples=epoch_draws(labels, resample_to),
                                 replacement=True, generator=torch.Generator().manual_seed(seed))


def class_counts(labels: np.ndarray) -> pd.Series:
    """Counts per class name (index ``positive, negative, neutral``)."""
    return pd.Series(np.bincount(np.asarray(labels, dtype=np.int64), minlength=len(LABELS)), index=list(LABELS),
                     name="count")


def resampling_table(labels: np.ndarray, seed: int, epochs: int = 1, resample_to: str = "majority") -> pd.DataFrame:
    """Per class: ``before``, ``after`` (mean drawn per epoch of :func:`make_sampler`) and their ``*_share``."""
    labels = np.asarray(labels, dtype=np.int64)
    sampler = make_sampler(labels, seed, resample_to)
    drawn = np.concatenate([labels[list(iter(sampler))] for _ in range(epochs)])
    table = pd.DataFrame({"before": class_counts(labels), "after": class_counts(drawn) / epochs})
    return pd.concat([table, (table / table.sum()).add_suffix("_share")], axis=1)
