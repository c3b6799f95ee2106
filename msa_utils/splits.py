"""The stratified 8:2 train/validation split and inverse-class-frequency re-sampling.

The paper splits ``train.txt`` 8:2 into training and validation and re-samples the imbalanced
classes "by inverse class frequency". We draw, with replacement, ``len(train)`` posts per epoch
with probability proportional to ``1 / count(label)`` (``torch.utils.data.WeightedRandomSampler``),
so each class is drawn equally often in expectation. Re-sampling touches the training split only.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.model_selection import train_test_split
from torch.utils.data import WeightedRandomSampler

from . import LABELS, io

SPLIT_FILES = {"train": "train_guids.txt", "val": "val_guids.txt"}


def stratified_split(guids: np.ndarray, labels: np.ndarray, val_fraction: float = 0.2, seed: int = 0) -> dict[str, np.ndarray]:
    """Split posts into training and validation, keeping the class proportions.

    Uses :func:`sklearn.model_selection.train_test_split` with ``stratify=labels``.

    Args:
        guids: (N,) post ids.
        labels: (N,) class ids in ``{0, 1, 2}``.
        val_fraction: share of posts for validation, in (0, 1).
        seed: ``random_state`` of the shuffle.

    Returns:
        ``{"train": (N_train,), "val": (N_val,)}`` sorted guid arrays.

    Raises:
        ValueError: on mismatched lengths, duplicated guids, a ``val_fraction`` outside (0, 1), no
            posts at all, or a single post in every class.

    Warns:
        UserWarning: if a class of :data:`msa_utils.LABELS` has no post at all (the model can
            never predict it, and its F1 of 0 is not a finding), or a single one (it goes to
            training; validation has none of that class).
    """
    guids = np.asarray(guids)
    labels = np.asarray(labels)
    if guids.shape != labels.shape:
        raise ValueError(f"guids {guids.shape} and labels {labels.shape} differ in shape")
    if len(np.unique(guids)) != len(guids):
        raise ValueError("guids must be unique")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    if len(guids) == 0:
        raise ValueError("no usable labelled post to split: every post of train.txt was excluded "
                         "(data_report.csv says why) or the file lists none")
    classes, counts = np.unique(labels, return_counts=True)
    single = np.isin(labels, classes[counts == 1])
    if single.any():  # cannot be stratified: the post trains, the class has no validation post
        rare = [LABELS[int(c)] if 0 <= int(c) < len(LABELS) else int(c) for c in classes[counts == 1]]
        warnings.warn(f"class {rare} has a single usable labelled post: it goes to training, and the validation "
                      "split has none of that class", UserWarning, stacklevel=2)
    if single.all():
        raise ValueError("a split needs at least 2 usable posts of one class; every class present has 1")
    absent = [name for i, name in enumerate(LABELS) if i not in set(classes.tolist())]
    if absent:
        warnings.warn(f"no usable labelled post of class {absent}: the model can never predict it, and its "
                      "F1 of 0 is not a finding (data_report.csv lists what was excluded)", UserWarning, stacklevel=2)
    train, val = train_test_split(guids[~single], test_size=val_fraction, stratify=labels[~single], random_state=seed)
    return {"train": np.sort(np.concatenate([train, guids[single]])), "val": np.sort(val)}


def stratified_subset(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Positions of a stratified random subset of ``size`` items: the class shares of ``labels``
    are kept (up to rounding), as :func:`stratified_split` keeps them.

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
    """Write ``train_guids.txt`` and ``val_guids.txt`` (one guid a line) atomically to ``folder``."""
    for part, name in SPLIT_FILES.items():
        io.write_text(Path(folder) / name, "".join(f"{int(g)}\n" for g in split[part]))


def load_split(folder: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a split written by :func:`save_split`.

    Raises:
        FileNotFoundError: if a guid list is missing (run notebook 03 first).
        ValueError: if a guid is in both lists.
    """
    split = {}
    for part, name in SPLIT_FILES.items():
        path = Path(folder) / name
        if not path.exists():
            raise FileNotFoundError(f"{path} not found: run notebooks/03_resample.ipynb first")
        split[part] = np.array([int(line) for line in path.read_text().split()], dtype=np.int64)
    overlap = np.intersect1d(split["train"], split["val"])
    if overlap.size:
        raise ValueError(f"{overlap.size} guids are in both train and val, e.g. {overlap[:5].tolist()}")
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

