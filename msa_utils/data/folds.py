"""Repeated, stratified, content-grouped K-fold cross-validation of the labelled posts: every labelled post is
tested once per repeat, by a model whose training and validation parts hold none of its content group.

Run ``(repeat, fold)`` tests on that fold; a validation part (``val_fraction``, grouped and stratified as the paper's
8:2) is carved from the other folds, which train. Folds: scikit-learn's ``StratifiedGroupKFold``."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from msa_utils import io
from msa_utils.config.labels import LABELS
from msa_utils.data.posts import usable
from msa_utils.data.splits import grouped_split

FOLDS_FILE = "folds.csv"
"""``guid,repeat,fold`` of every usable labelled post (notebook 03), under the results' ``splits/``."""


def make_folds(guids: np.ndarray, labels: np.ndarray, groups: np.ndarray, folds: int = 5, repeats: int = 1,
               seed: int = 0) -> pd.DataFrame:
    """``guid, repeat, fold`` (int64): repeat ``r`` is ``StratifiedGroupKFold(folds, shuffle=True,
    random_state=seed + r)`` of the (N,) posts, by class ``labels`` and content ``groups``. ValueError for
    mismatched shapes, duplicated guids, ``folds < 2``, ``repeats < 1`` or fewer content groups than folds."""
    guids, labels, groups = np.asarray(guids), np.asarray(labels), np.asarray(groups)
    if not guids.shape == labels.shape == groups.shape or len(np.unique(guids)) != len(guids):
        raise ValueError(f"need unique guids and as many labels and groups: {guids.shape}, {labels.shape}, "
                         f"{groups.shape}")
    if folds < 2 or repeats < 1:
        raise ValueError(f"need folds >= 2 and repeats >= 1, got {folds} and {repeats}")
    if len(np.unique(groups)) < folds:
        raise ValueError(f"{folds} folds need at least {folds} groups of distinct content, got {len(np.unique(groups))} "
                         f"(usable labelled posts: {len(guids)})")
    frames = []
    for repeat in range(repeats):
        fold = np.empty(len(guids), dtype=np.int64)
        splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed + repeat)
        with warnings.catch_warnings():  # a class with fewer posts than folds: grouped_split warns per run
            warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
            for index, (_, test) in enumerate(splitter.split(guids, labels, groups)):
                fold[test] = index
        frames.append(pd.DataFrame({"guid": guids.astype(np.int64), "repeat": repeat, "fold": fold}))
    return pd.concat(frames, ignore_index=True).sort_values(["repeat", "guid"], ignore_index=True)


def run_parts(folds: pd.DataFrame, labels: pd.Series, groups: pd.Series, repeat: int, fold: int,
              val_fraction: float = 0.2, seed: int = 0) -> dict[str, np.ndarray]:
    """``{"train", "val", "test"}`` sorted guid arrays of run ``(repeat, fold)``: ``test`` that fold, the others
    split by :func:`~msa_utils.data.splits.grouped_split` (``val_fraction``, ``seed``). ``labels`` and ``groups``
    are indexed by guid. KeyError for a run not in ``folds``; ValueError as ``grouped_split``."""
    runs = folds[folds["repeat"] == repeat]
    if not (runs["fold"] == fold).any():
        raise KeyError(f"no fold {fold} of repeat {repeat} (folds: {sorted(runs['fold'].unique().tolist())})")
    test = np.sort(runs.loc[runs["fold"] == fold, "guid"].to_numpy())
    rest = np.sort(runs.loc[runs["fold"] != fold, "guid"].to_numpy())
    train, val = grouped_split(labels.loc[rest].to_numpy(), groups.loc[rest].to_numpy(), val_fraction, seed)
    return {"train": rest[train], "val": rest[val], "test": test}


def save_folds(folds: pd.DataFrame, folder: str | os.PathLike) -> Path:
    """Atomically write :data:`FOLDS_FILE` to ``folder``; return its path."""
    return io.write_csv(Path(folder) / FOLDS_FILE, folds[["guid", "repeat", "fold"]])


def load_folds(folder: str | os.PathLike) -> pd.DataFrame:
    """The table :func:`save_folds` wrote; FileNotFoundError naming the notebook that writes it."""
    path = Path(folder) / FOLDS_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run notebooks/03_resample.ipynb first")
    return pd.read_csv(path, dtype="int64")


def fold_counts(posts: pd.DataFrame, folds: pd.DataFrame) -> pd.DataFrame:
    """Posts per class and ``total`` (rows) in each fold of the first repeat, all ``labelled`` ones, and the usable
    ``unlabelled`` posts (``total`` only); ``posts`` has ``guid``, ``label``, ``split`` and what ``usable`` reads."""
    labels, ids = posts.set_index("guid")["label"], range(len(LABELS))
    first = folds[folds["repeat"] == 0]
    parts = {**{f"fold {k}": g for k, g in first.groupby("fold")["guid"]}, "labelled": first["guid"]}
    table = pd.DataFrame({name: labels.loc[guids].astype(int).value_counts().reindex(ids, fill_value=0).to_numpy()
                          for name, guids in parts.items()}, index=list(LABELS))
    table.loc["total"] = table.sum()
    table["unlabelled"] = [0] * len(LABELS) + [int(((posts["split"] == "test") & usable(posts)).sum())]
    return table
