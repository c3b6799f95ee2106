"""Evaluation metrics: the paper's accuracy and weighted F1, plus macro F1 and per-class F1, all
from :mod:`sklearn.metrics`, and a bootstrap interval over posts. (The baselines are in
:mod:`msa_utils.experiments.baselines`; comparisons of variants over seeds in :mod:`msa_utils.experiments.compare`.)
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

from msa_utils.config.labels import LABELS


def weighted_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """The paper's headline F1: per-class F1 averaged with the classes' support as weights, over
    the three classes of :data:`msa_utils.LABELS` (a class absent from both arrays counts 0).

    Args:
        y_true, y_pred: (N,) gold and predicted class ids.
    """
    return float(f1_score(y_true, y_pred, labels=list(range(len(LABELS))), average="weighted", zero_division=0))


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Unweighted mean of the per-class F1 over the classes present in either array (scikit-learn's
    default). Args: (N,) gold and predicted class ids."""
    return float(f1_score(y_true, y_pred, average="macro", zero_division=0))


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Accuracy, weighted F1, macro F1 and the F1 of each class.

    Args:
        y_true: (N,) gold class ids.
        y_pred: (N,) predicted class ids.

    Returns:
        ``{"accuracy", "weighted_f1", "macro_f1", "f1_positive", "f1_negative", "f1_neutral"}``,
        each a float in [0, 1]. A class absent from both arrays gets F1 0 in its own entry but
        is left out of the macro average (scikit-learn's default over present labels).

    Raises:
        ValueError: if the arrays differ in length or are empty.
    """
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if y_true.shape != y_pred.shape or y_true.size == 0:
        raise ValueError(f"need two equal, non-empty label arrays, got {y_true.shape} and {y_pred.shape}")
    ids = list(range(len(LABELS)))
    per_class = f1_score(y_true, y_pred, labels=ids, average=None, zero_division=0)
    out = {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "weighted_f1": weighted_f1(y_true, y_pred),
        "macro_f1": macro_f1(y_true, y_pred),
    }
    out.update({f"f1_{name}": float(f) for name, f in zip(LABELS, per_class)})
    return out


def confusion(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """(3, 3) confusion matrix, rows gold, columns predicted, in the order of :data:`LABELS`."""
    return confusion_matrix(y_true, y_pred, labels=list(range(len(LABELS))))


_NAMED_METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "accuracy": lambda t, p: float(accuracy_score(t, p)),
    "weighted_f1": weighted_f1,
    "macro_f1": macro_f1,
}


def bootstrap_interval(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    metric: str | Callable[[np.ndarray, np.ndarray], float] = "accuracy",
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval of a metric over the posts (resampled with replacement).

    Each of ``n_resamples`` resamples draws ``N`` post indices with replacement from a
    ``numpy.random.default_rng(seed)`` generator (``rng.integers(0, N, N)``), evaluates ``metric``
    on the resampled (gold, prediction) pairs, and the interval is the ``(1 - level) / 2`` and
    ``(1 + level) / 2`` percentiles of those values. This is the scheme of seaborn's
    ``errorbar=("ci", 95)`` with ``seed``: for ``metric="accuracy"`` the interval equals the one
    ``seaborn.pointplot(..., n_boot=n_resamples, seed=seed)`` draws for the mean of the per-post
    correctness. The interval measures sampling variation of the validation posts only (not
    training randomness).

    Args:
        y_true: (N,) gold labels (class ids for the named F1 metrics; names work for accuracy).
        y_pred: (N,) predictions, same encoding.
        metric: ``"accuracy"``, ``"weighted_f1"`` (over the three classes, as in
            :func:`classification_metrics`), ``"macro_f1"``, or a callable
            ``metric(y_true, y_pred) -> float``.
        n_resamples: number of bootstrap resamples (1000 resamples of 800 posts take about 2 s
            for the F1 metrics, which call scikit-learn each time).
        seed: seed of the resampling; the same inputs and seed give the same interval.
        level: coverage of the interval, in (0, 1).

    Returns:
        ``(low, high)`` as floats.

    Raises:
        ValueError: if the arrays differ in length or are empty, ``metric`` is an unknown name,
            ``n_resamples < 1`` or ``level`` is not in (0, 1).
    """
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if y_true.shape != y_pred.shape or y_true.ndim != 1 or y_true.size == 0:
        raise ValueError(f"need two equal, non-empty 1-d label arrays, got {y_true.shape} and {y_pred.shape}")
    if isinstance(metric, str):
        if metric not in _NAMED_METRICS:
            raise ValueError(f"unknown metric {metric!r}; use one of {sorted(_NAMED_METRICS)} or a callable")
        metric = _NAMED_METRICS[metric]
    if int(n_resamples) < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    rng = np.random.default_rng(seed)
    n = y_true.size
    values = np.empty(int(n_resamples))
    for i in range(int(n_resamples)):
        idx = rng.integers(0, n, n, dtype=np.intp)
        values[i] = metric(y_true.take(idx), y_pred.take(idx))
    edge = 100.0 * (1.0 - level) / 2.0
    low, high = np.nanpercentile(values, (edge, 100.0 - edge))
    return float(low), float(high)
