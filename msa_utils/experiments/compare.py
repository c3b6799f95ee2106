"""Statistics behind the claims table: is one variant better than another, given a few seeds?

A variant's score is the mean over its S seeds of a metric on the same N test posts; its interval,
a percentile bootstrap over posts and seeds (not the split or the hyper-parameters; with 2-3 seeds
coarse). A comparison draws the same posts and seeds for both variants. Metrics equal scikit-learn's.

Sources: Efron & Tibshirani, *An Introduction to the Bootstrap* (1993), ch. 13; the paired
bootstrap, Koehn (EMNLP 2004), Berg-Kirkpatrick et al. (EMNLP-CoNLL 2012); crossed levels (seeds x
posts), Davison & Hinkley (1997) sec. 3.8, Owen, "The pigeonhole bootstrap" (2007); seed variance,
Bouthillier et al. (MLSys 2021); non-inferiority margins, Piaggio et al. (JAMA, 2012)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from msa_utils.config.labels import LABELS
from msa_utils.io.tables import mean_std

N_CLASSES = len(LABELS)
METRICS = ("accuracy", "weighted_f1", "macro_f1")
EXPECTATIONS = ("greater", "not_worse", "at_least")


def _labels(values, name: str, n_posts: int | None = None) -> np.ndarray:
    """``values`` as intp class ids in [0, N_CLASSES): ``gold`` (N,), or, with ``n_posts``, (S, n_posts) rows."""
    arr = np.asarray(values)
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must hold integer class ids, got dtype {arr.dtype}")
    if arr.min() < 0 or arr.max() >= N_CLASSES:
        raise ValueError(f"{name} holds class ids outside 0..{N_CLASSES - 1} (min {arr.min()}, max {arr.max()})")
    if name == "gold" and arr.ndim != 1:
        raise ValueError(f"gold must be 1-d (N,), got shape {arr.shape}")
    rows = arr[None, :] if n_posts is not None and arr.ndim == 1 else arr
    if n_posts is not None and (rows.ndim != 2 or rows.shape[1] != n_posts):
        raise ValueError(f"{name} must be (S, {n_posts}) (seeds x posts, same posts as gold), got shape {arr.shape}")
    return rows.astype(np.intp, copy=False)


def _counts(gold: np.ndarray, rows: np.ndarray, index: np.ndarray) -> np.ndarray:
    """(B, M, 3, 3) counts of the rows (M, N) on the resamples ``index`` (B, L), one bincount."""
    n_boot, n_rows, cells = index.shape[0], rows.shape[0], N_CLASSES * N_CLASSES
    block = np.arange(n_boot * n_rows, dtype=np.intp).reshape(n_boot, n_rows).T * cells  # (M, B): first bin of (b, m)
    codes = rows[:, index] + (gold[index] * N_CLASSES)[None] + block[:, :, None]  # (M, B, L)
    return np.bincount(codes.ravel(), minlength=n_boot * n_rows * cells).reshape(n_boot, n_rows, N_CLASSES, N_CLASSES)


def confusion_matrices(gold, pred) -> np.ndarray:
    """int64 confusion matrices (..., 3, 3) of ``pred`` (..., N) against ``gold`` (N,), rows gold (as
    ``sklearn.metrics.confusion_matrix``); ValueError for bad shapes or labels not integer class ids."""
    gold = _labels(gold, "gold")
    pred = _labels(pred, "pred")
    if pred.shape[-1] != gold.size:
        raise ValueError(f"pred's last axis must have the N = {gold.size} posts of gold, got shape {pred.shape}")
    counts = _counts(gold, pred.reshape(-1, gold.size), np.arange(gold.size)[None])[0]
    return counts.reshape(*pred.shape[:-1], N_CLASSES, N_CLASSES)


def metric_from_confusion(conf, metric: str) -> np.ndarray:
    """A metric of :data:`METRICS` of (..., 3, 3) confusion matrices, (...) floats, as scikit-learn's
    (``zero_division=0``); ValueError for a bad metric or shape, negative or non-finite counts, no posts."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; use one of {METRICS}")
    conf = np.asarray(conf)
    if conf.ndim < 2 or conf.shape[-2:] != (N_CLASSES, N_CLASSES):
        raise ValueError(f"conf must have shape (..., {N_CLASSES}, {N_CLASSES}), got {conf.shape}")
    conf = conf.astype(np.float64, copy=False)
    if conf.size and (not np.isfinite(conf).all() or conf.min() < 0):
        raise ValueError("conf must hold non-negative finite counts")
    total = conf.sum(axis=(-2, -1))
    if np.any(total <= 0):
        raise ValueError("a confusion matrix without posts has no metric")
    tp = np.diagonal(conf, axis1=-2, axis2=-1)
    if metric == "accuracy":
        return tp.sum(-1) / total
    support = conf.sum(-1)
    denom = support + conf.sum(-2)
    f1 = np.divide(2.0 * tp, denom, out=np.zeros_like(denom), where=denom > 0)
    if metric == "weighted_f1":
        return (f1 * support).sum(-1) / support.sum(-1)
    present = denom > 0
    return (f1 * present).sum(-1) / present.sum(-1)


@dataclass(frozen=True)
class SeedSummary:
    """Mean, sample standard deviation (``ddof=1``; NaN for one seed) and number of seeds."""

    mean: float
    std: float
    n: int

    def format(self, digits: int = 3) -> str:
        """``"0.680 ± 0.012 (n=3)"``; ``"0.680 (n=1)"``."""
        return f"{mean_std(self.mean, self.std if self.n > 1 else math.nan, f'.{digits}f')} (n={self.n})"

    __str__ = format


def seed_summary(values) -> SeedSummary:
    """:class:`SeedSummary` of (S,) per-seed values; ValueError if empty, not 1-d or not finite."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0 or not np.isfinite(arr).all():
        raise ValueError(f"need a non-empty 1-d array of finite per-seed values, got {arr.tolist()}")
    return SeedSummary(mean=float(arr.mean()), std=float(arr.std(ddof=1)) if arr.size > 1 else math.nan,
                       n=int(arr.size))


@dataclass(frozen=True)
class Comparison:
    """:func:`paired_bootstrap`'s result: ``difference = mean_a - mean_b``, its interval."""

    difference: float
    low: float
    high: float
    n_posts: int
    n_seeds_a: int
    n_seeds_b: int
    metric: str
    n_resamples: int
    level: float
    mean_a: float
    mean_b: float

    def verdict(self, expected: str = "greater", margin: float = 0.0) -> str:
        return verdict(self.low, self.high, expected=expected, margin=margin)


@dataclass(frozen=True)
class Estimate:
    """:func:`bootstrap_mean`'s result: one variant's mean over seeds and its interval."""

    mean: float
    low: float
    high: float
    n_posts: int
    n_seeds: int
    metric: str
    n_resamples: int
    level: float

    def verdict_against(self, paper_value: float) -> str:
        """The ``"at_least"`` :func:`verdict` of ours − ``paper_value`` (same metric and scale)."""
        return verdict(self.low - paper_value, self.high - paper_value, expected="at_least")


def _bootstrap(gold, preds: dict, metric: str, n_resamples, seed: int, level: float):
    """``(N, B, [(S, mean on all posts, (B,) resampled means)])`` per (S, N) array of ``preds``, same draws."""
    gold = _labels(gold, "gold")
    rows = [_labels(pred, name, gold.size) for name, pred in preds.items()]
    if not isinstance(n_resamples, (int, np.integer)) or n_resamples < 1:
        raise ValueError(f"n_resamples must be an integer >= 1, got {n_resamples!r}")
    if not 0.0 < level < 1.0:  # also False for NaN; a bad metric: metric_from_confusion
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    n_resamples = int(n_resamples)
    seeds = [r.shape[0] for r in rows]
    if min(seeds) > 1 and len(set(seeds)) > 1:
        raise ValueError(f"variants with several seeds must have the same number (rows aligned by seed), got {seeds}")
    rng = np.random.default_rng(seed)
    index = np.stack([rng.integers(0, gold.size, gold.size, dtype=np.intp) for _ in range(n_resamples)])
    seed_draws = rng.integers(0, max(seeds), (n_resamples, max(seeds)), dtype=np.intp) if max(seeds) > 1 else None
    out = []
    for pred in rows:
        scores = metric_from_confusion(_counts(gold, pred, index), metric)  # (B, S)
        values = scores[:, 0] if len(pred) == 1 else np.take_along_axis(scores, seed_draws, axis=1).mean(axis=1)
        mean = metric_from_confusion(_counts(gold, pred, np.arange(gold.size)[None])[0], metric).mean()
        out.append((len(pred), float(mean), values))
    return gold.size, n_resamples, out


def _interval(values: np.ndarray, level: float) -> tuple[float, float]:
    edge = 100.0 * (1.0 - level) / 2.0
    low, high = np.percentile(values, (edge, 100.0 - edge))
    return float(low), float(high)


def paired_bootstrap(gold, pred_a, pred_b, metric: str = "accuracy", n_resamples: int = 2000,
                     seed: int = 0, level: float = 0.95) -> Comparison:
    """A metric's difference between variants a and b on the same posts, with a paired two-level percentile bootstrap
    interval: ``numpy.random.default_rng(seed)`` draws, per resample in turn, ``integers(0, N, N)`` posts, then, if a
    side has S > 1 rows, ``integers(0, S, (B, S))`` seeds, shared by a and b (a one-row side, e.g. a baseline, is used
    as is). ``low``, ``high``: the ``(1 ∓ level) / 2`` percentiles. gold (N,); pred_a (Sa, N), pred_b (Sb, N), Sa == Sb
    or either 1; ValueError for anything else."""
    n_posts, n_resamples, ((n_a, mean_a, values_a), (n_b, mean_b, values_b)) = _bootstrap(
        gold, {"pred_a": pred_a, "pred_b": pred_b}, metric, n_resamples, seed, level)
    low, high = _interval(values_a - values_b, level)
    return Comparison(difference=mean_a - mean_b, low=low, high=high, n_posts=n_posts, n_seeds_a=n_a, n_seeds_b=n_b,
                      metric=metric, n_resamples=n_resamples, level=float(level), mean_a=mean_a, mean_b=mean_b)


def bootstrap_mean(gold, pred, metric: str = "accuracy", n_resamples: int = 2000, seed: int = 0,
                   level: float = 0.95) -> Estimate:
    """One variant's score, ``pred`` (S, N), with :func:`paired_bootstrap`'s interval and draws."""
    n_posts, n_resamples, ((n_seeds, mean, values),) = _bootstrap(gold, {"pred": pred}, metric, n_resamples,
                                                                   seed, level)
    low, high = _interval(values, level)
    return Estimate(mean=mean, low=low, high=high, n_posts=n_posts, n_seeds=n_seeds, metric=metric,
                    n_resamples=n_resamples, level=float(level))


def verdict(low: float, high: float, expected: str = "greater", margin: float = 0.0) -> str:
    """A claim judged on an interval of a − b: ``"greater"``: supported if ``low > 0``, contradicted if ``high < 0``;
    ``"not_worse"`` (margin m, one-sided at 2.5 %): the same against ``-m``; else (an end on the threshold too)
    inconclusive. ``"at_least"`` (ours − paper): supported iff ``high >= 0``. ValueError for an unknown ``expected``,
    bad ends (non-finite, ``low > high``) or margin (negative, non-finite, non-zero unless ``"not_worse"``)."""
    if expected not in EXPECTATIONS:
        raise ValueError(f"unknown expected {expected!r}; use one of {EXPECTATIONS}")
    low, high, margin = float(low), float(high), float(margin)
    if not (math.isfinite(low) and math.isfinite(high)) or low > high:
        raise ValueError(f"need finite interval ends with low <= high, got [{low}, {high}]")
    if not math.isfinite(margin) or margin < 0 or (margin != 0 and expected != "not_worse"):
        raise ValueError(f"margin must be a finite number >= 0, and 0 unless expected='not_worse', got {margin}")
    if expected == "at_least":
        return "supported" if high >= 0 else "contradicted"
    if low > -margin:
        return "supported"
    return "contradicted" if high < -margin else "inconclusive"
