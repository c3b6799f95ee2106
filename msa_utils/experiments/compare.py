"""Statistics behind the claims table: is one variant better than another, given a few seeds?

Each variant is trained with ``S`` seeds and predicts the same ``N`` labelled test posts. What a
reader of the claims table needs to know:

* **The number** in a cell is the mean over seeds of the metric on all test posts (for a
  comparison: mean over seeds of variant a minus mean over seeds of variant b).
* **The interval** is a percentile bootstrap interval (default 95 %, 2000 resamples) that covers
  two sources of variation at once: which posts happen to be in the test set (posts are drawn
  with replacement) and which training seeds happened to be used (seeds are drawn with
  replacement). It does not cover anything else: the split itself, the hyper-parameters, or the
  gap between MVSA-Single and the paper's data. With 2-3 seeds the seed part is coarse (a
  bootstrap of three values) and, if anything, narrow; read a borderline verdict with that in mind.
* **Pairing**: a comparison draws the *same* post indices for both variants, so the per-post
  agreement of two models does not count as noise, and, when both have the same number of seeds,
  the same seed indices (seed ``k`` of both variants shares the data order). This is why the
  interval of a difference is much narrower than the two single intervals side by side suggest.
* **Verdicts** (:func:`verdict`), on an interval of a − b: "a beats b" (``"greater"``) is
  *supported* when the whole interval is above 0, *contradicted* when it is wholly below 0,
  *inconclusive* otherwise; "a is not worse than b" (``"not_worse"``, margin ``m``) is supported
  when the interval rules out a loss larger than ``m`` (low > −m) and contradicted when it shows
  a loss larger than ``m`` (high < −m); "our score reaches the paper's figure" (``"at_least"``, an
  interval on ours − paper) is supported when our interval reaches the paper's figure
  (high >= 0) and contradicted otherwise.

Everything is vectorised numpy: the confusion matrices of all resamples and seeds come from one
``np.bincount`` over the codes ``gold * 3 + pred``, and the metrics are computed from them
(:func:`metric_from_confusion`), equal to :mod:`msa_utils.train.metrics`' scikit-learn definitions.

Sources: B. Efron and R. J. Tibshirani, *An Introduction to the Bootstrap* (Chapman & Hall, 1993),
ch. 6 (bootstrap standard errors) and ch. 13 (percentile intervals); the paired bootstrap over a
shared test set, P. Koehn, "Statistical significance tests for machine translation evaluation"
(EMNLP 2004), and T. Berg-Kirkpatrick, D. Burkett and D. Klein, "An empirical investigation of
statistical significance in NLP" (EMNLP-CoNLL 2012); resampling both factors of multi-level data,
A. C. Davison and D. V. Hinkley, *Bootstrap Methods and their Application* (Cambridge, 1997),
sec. 3.8, and, for two crossed factors (here seeds x posts: every seed predicts every post),
A. B. Owen, "The pigeonhole bootstrap", Annals of Applied Statistics 1(2), 2007; seed and test-set
variance in ML benchmarks, X. Bouthillier et al., "Accounting for variance in machine learning
benchmarks" (MLSys 2021); non-inferiority against a margin, G. Piaggio et al., "Reporting of
noninferiority and equivalence randomized trials: extension of the CONSORT 2010 statement",
JAMA 308(24), 2012.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from msa_utils.config.labels import LABELS

N_CLASSES = len(LABELS)
"""Number of classes (3: positive 0, negative 1, neutral 2)."""

METRICS = ("accuracy", "weighted_f1", "macro_f1")
"""Metric names accepted by :func:`metric_from_confusion` and the bootstrap functions."""

EXPECTATIONS = ("greater", "not_worse", "at_least")
"""Values of ``expected`` accepted by :func:`verdict`."""


# --- input checks ----------------------------------------------------------------------------

def _label_array(values, name: str) -> np.ndarray:
    """``values`` as an intp array of class ids, checked to be integers in [0, N_CLASSES)."""
    arr = np.asarray(values)
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must hold integer class ids, got dtype {arr.dtype}")
    low, high = int(arr.min()), int(arr.max())
    if low < 0 or high >= N_CLASSES:
        raise ValueError(f"{name} holds class ids outside 0..{N_CLASSES - 1} (min {low}, max {high})")
    return arr.astype(np.intp, copy=False)


def _gold(gold) -> np.ndarray:
    gold = _label_array(gold, "gold")
    if gold.ndim != 1:
        raise ValueError(f"gold must be 1-d (N,), got shape {gold.shape}")
    return gold


def _prediction_rows(pred, n_posts: int, name: str) -> np.ndarray:
    """Predictions as an (S, N) array; a 1-d (N,) array is one row."""
    pred = _label_array(pred, name)
    if pred.ndim == 1:
        pred = pred[None, :]
    if pred.ndim != 2 or pred.shape[1] != n_posts:
        raise ValueError(f"{name} must be (S, {n_posts}) (seeds x posts, same posts as gold), got shape {pred.shape}")
    return pred


def _check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; use one of {METRICS}")


def _check_resampling(n_resamples, level) -> int:
    try:
        n = int(n_resamples)
    except (TypeError, ValueError):
        raise ValueError(f"n_resamples must be an integer >= 1, got {n_resamples!r}") from None
    if n != n_resamples or n < 1:
        raise ValueError(f"n_resamples must be an integer >= 1, got {n_resamples!r}")
    if not 0.0 < level < 1.0:  # also False for NaN
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    return n


# --- confusion matrices and metrics ----------------------------------------------------------

def confusion_matrices(gold, pred, index=None) -> np.ndarray:
    """Confusion matrices of one or many prediction arrays, optionally on resampled posts.

    Counts the codes ``gold * 3 + pred`` with a single ``np.bincount`` (each matrix gets its own
    block of 9 bins), so thousands of matrices cost one pass over the data.

    Args:
        gold: (N,) gold class ids in {0, 1, 2} (:data:`msa_utils.LABELS` order).
        pred: (..., N) predicted class ids, e.g. (S, N) for S seeds; any leading shape.
        index: None, or (B, L) integer post indices in [0, N) (a bootstrap resample per row,
            usually L = N): matrix ``[b, ...]`` counts the posts ``index[b]``, with repeats.

    Returns:
        int64 counts, (..., 3, 3) without ``index`` or (B, ..., 3, 3) with it; rows gold,
        columns predicted (as :func:`sklearn.metrics.confusion_matrix` with ``labels=[0, 1, 2]``).

    Raises:
        ValueError: if ``gold`` is not 1-d, an array is empty, ``pred``'s last axis is not N,
            a label is not an integer in {0, 1, 2}, or ``index`` is not a non-empty 2-d integer
            array with values in [0, N).
    """
    gold = _gold(gold)
    n_posts = gold.size
    pred = _label_array(pred, "pred")
    if pred.shape[-1] != n_posts:
        raise ValueError(f"pred's last axis must have the N = {n_posts} posts of gold, got shape {pred.shape}")
    lead = pred.shape[:-1]
    rows = pred.reshape(-1, n_posts)
    if index is None:
        return _count(gold, rows).reshape(*lead, N_CLASSES, N_CLASSES)
    index = np.asarray(index)
    if index.ndim != 2 or index.size == 0 or not np.issubdtype(index.dtype, np.integer):
        raise ValueError(f"index must be a non-empty 2-d integer array (B, L), got shape {index.shape}, dtype {index.dtype}")
    if int(index.min()) < 0 or int(index.max()) >= n_posts:
        raise ValueError(f"index values must be in [0, {n_posts})")
    counts = _resampled_counts(gold, rows, index)  # (B, M, 3, 3)
    return counts.reshape(index.shape[0], *lead, N_CLASSES, N_CLASSES)


def _count(gold: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """(M, 3, 3) counts of the M prediction rows (M, N) against ``gold`` (N,), all posts once.
    Inputs are already checked."""
    n_rows = rows.shape[0]
    cells = N_CLASSES * N_CLASSES
    codes = gold * N_CLASSES + rows  # (M, N)
    codes += (np.arange(n_rows, dtype=np.intp) * cells)[:, None]  # row m -> bins 9 m ... 9 m + 8
    counts = np.bincount(codes.ravel(), minlength=n_rows * cells)
    return counts.reshape(n_rows, N_CLASSES, N_CLASSES)


def _resampled_counts(gold: np.ndarray, rows: np.ndarray, index: np.ndarray) -> np.ndarray:
    """(B, M, 3, 3) counts of the M prediction rows (M, N) on the B resamples ``index`` (B, L).
    Inputs are already checked."""
    n_boot, n_rows = index.shape[0], rows.shape[0]
    cells = N_CLASSES * N_CLASSES
    codes = rows[:, index]  # (M, B, L): predictions of each row on each resample
    codes += (gold[index] * N_CLASSES)[None]
    # block (b, m) -> bins (b * M + m) * 9 ... + 8, so the result is ordered (B, M)
    offsets = (np.arange(n_boot, dtype=np.intp)[None, :] * n_rows + np.arange(n_rows, dtype=np.intp)[:, None]) * cells
    codes += offsets[:, :, None]
    counts = np.bincount(codes.ravel(), minlength=n_boot * n_rows * cells)
    return counts.reshape(n_boot, n_rows, N_CLASSES, N_CLASSES)


def metric_from_confusion(conf, metric: str) -> np.ndarray:
    """Accuracy, weighted F1 or macro F1 of confusion matrices.

    With ``tp`` the diagonal, ``support`` the row sums (gold counts) and ``predicted`` the column
    sums, the F1 of a class is ``2 tp / (support + predicted)`` and 0 when ``support + predicted``
    is 0 (scikit-learn's ``zero_division=0``). Then:

    * ``"accuracy"``: ``trace / total``;
    * ``"weighted_f1"``: the class F1s averaged with ``support`` as weights over all three classes
      (a class absent from gold has weight 0), equal to
      ``f1_score(y, p, labels=[0, 1, 2], average="weighted", zero_division=0)``
      (:func:`msa_utils.train.metrics.weighted_f1`);
    * ``"macro_f1"``: the unweighted mean of the class F1s over the classes *present* in gold or
      predictions (``support + predicted > 0``), equal to
      ``f1_score(y, p, average="macro", zero_division=0)`` (:func:`msa_utils.train.metrics.macro_f1`).

    Args:
        conf: (..., 3, 3) non-negative counts, rows gold, columns predicted
            (:func:`confusion_matrices`).
        metric: one of :data:`METRICS`.

    Returns:
        (...) float64 array (a 0-d array for a single matrix).

    Raises:
        ValueError: for an unknown metric, a shape not ending in (3, 3), negative or non-finite
            counts, or a matrix with no posts.
    """
    _check_metric(metric)
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


# --- seeds ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SeedSummary:
    """Mean and spread of one metric over training seeds.

    Attributes:
        mean: mean over the seeds.
        std: sample standard deviation over the seeds (``ddof=1``); NaN for a single seed.
        n: number of seeds.
    """

    mean: float
    std: float
    n: int

    def format(self, digits: int = 3) -> str:
        """:func:`format_summary` of this summary."""
        return format_summary(self, digits)

    def __str__(self) -> str:
        return format_summary(self)


def format_summary(summary: SeedSummary, digits: int = 3) -> str:
    """``"0.680 ± 0.012 (n=3)"``: mean ± standard deviation over seeds, with ``digits`` decimals,
    and the number of seeds; ``"0.680 (n=1)"`` for a single seed (no spread to show).

    Raises:
        ValueError: if ``digits`` is negative.
    """
    if digits < 0:
        raise ValueError(f"digits must be >= 0, got {digits}")
    if summary.n < 2 or math.isnan(summary.std):
        return f"{summary.mean:.{digits}f} (n={summary.n})"
    return f"{summary.mean:.{digits}f} ± {summary.std:.{digits}f} (n={summary.n})"


def seed_summary(values) -> SeedSummary:
    """Summarise a metric's values over seeds.

    Args:
        values: (S,) one value per seed (array-like).

    Returns:
        :class:`SeedSummary` with the mean, the ``ddof=1`` standard deviation (NaN when S = 1)
        and S. :func:`format_summary` (also ``str()``) gives ``"0.680 ± 0.012 (n=3)"``.

    Raises:
        ValueError: if ``values`` is empty, not 1-d, or holds a non-finite value.
    """
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"need a non-empty 1-d array of per-seed values, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"per-seed values must be finite, got {arr.tolist()}")
    std = float(arr.std(ddof=1)) if arr.size > 1 else math.nan
    return SeedSummary(mean=float(arr.mean()), std=std, n=int(arr.size))


# --- bootstrap --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Comparison:
    """A paired two-level bootstrap comparison of variant a with variant b (:func:`paired_bootstrap`).

    Attributes:
        difference: mean over a's seeds of the metric on all posts minus the same for b.
        low, high: the percentile bootstrap interval of that difference.
        n_posts: N, the test posts.
        n_seeds_a, n_seeds_b: prediction rows (seeds) of a and of b.
        metric: the metric's name (:data:`METRICS`).
        n_resamples: bootstrap resamples.
        level: the interval's coverage, e.g. 0.95.
        mean_a, mean_b: the two means over seeds, on all posts (``difference = mean_a - mean_b``).
    """

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
        """:func:`verdict` on this interval of a − b (``"greater"`` or ``"not_worse"``)."""
        return verdict(self.low, self.high, expected=expected, margin=margin)


@dataclass(frozen=True)
class Estimate:
    """A single variant's score with its two-level bootstrap interval (:func:`bootstrap_mean`).

    Attributes:
        mean: mean over seeds of the metric on all posts.
        low, high: the percentile bootstrap interval of that mean.
        n_posts: N, the test posts.
        n_seeds: prediction rows (seeds).
        metric: the metric's name (:data:`METRICS`).
        n_resamples: bootstrap resamples.
        level: the interval's coverage, e.g. 0.95.
    """

    mean: float
    low: float
    high: float
    n_posts: int
    n_seeds: int
    metric: str
    n_resamples: int
    level: float

    def verdict_against(self, paper_value: float) -> str:
        """:func:`verdict` ``"at_least"`` on ours − paper: does our interval reach the paper's
        figure ``paper_value`` (same metric, same scale)?"""
        return verdict(self.low - paper_value, self.high - paper_value, expected="at_least")


def _post_draws(rng: np.random.Generator, n_posts: int, n_resamples: int) -> np.ndarray:
    """(B, N) post indices: B successive ``rng.integers(0, N, N, dtype=np.intp)`` draws, the very
    draws of :func:`msa_utils.train.metrics.bootstrap_interval` for the same seed."""
    index = np.empty((n_resamples, n_posts), dtype=np.intp)
    for b in range(n_resamples):
        index[b] = rng.integers(0, n_posts, n_posts, dtype=np.intp)
    return index


def _seed_means(scores: np.ndarray, seed_draws: np.ndarray | None) -> np.ndarray:
    """(B,) mean over the drawn seeds of ``scores`` (B, S); a single row is used as is."""
    if scores.shape[1] == 1:
        return scores[:, 0]
    return np.take_along_axis(scores, seed_draws, axis=1).mean(axis=1)


def _interval(values: np.ndarray, level: float) -> tuple[float, float]:
    edge = 100.0 * (1.0 - level) / 2.0
    low, high = np.percentile(values, (edge, 100.0 - edge))
    return float(low), float(high)


def paired_bootstrap(gold, pred_a, pred_b, metric: str = "accuracy", n_resamples: int = 2000,
                     seed: int = 0, level: float = 0.95) -> Comparison:
    """Difference of a metric between two variants on the same posts, with a paired two-level
    bootstrap interval over posts and seeds.

    The point estimate is ``mean_s metric(gold, pred_a[s]) - mean_s metric(gold, pred_b[s])`` on
    all N posts. The interval is a percentile bootstrap interval (Efron & Tibshirani 1993, ch. 13)
    from ``n_resamples`` resamples drawn from ``rng = numpy.random.default_rng(seed)``:

    1. **Posts** (paired over posts, as in Koehn 2004; Berg-Kirkpatrick et al. 2012): first,
       for every resample b in turn, ``rng.integers(0, N, N)`` draws N post indices with
       replacement; the *same* indices are used for a and for b. (These are the draws of
       :func:`msa_utils.train.metrics.bootstrap_interval` with the same seed.)
    2. **Seeds**: then, if a or b has more than one row, ``rng.integers(0, S, (B, S))`` draws
       for every resample S seed indices with replacement, S = max(Sa, Sb). When Sa == Sb the
       *same* seed indices are used for a and b (row k of both variants is training seed k, which
       shares the data order, so the seeds are paired too); a side with a single row (a
       deterministic baseline such as the majority class or the linear probe) is used as is.
    3. The resample's value is the mean over the drawn seeds of metric(a) on the drawn posts,
       minus the same for b; every drawn seed of a resample is evaluated on that resample's posts.
    4. ``low`` and ``high`` are the ``(1 - level) / 2`` and ``(1 + level) / 2`` percentiles of
       the B values (``numpy.percentile``, linear interpolation).

    Resampling both levels of the data (Davison & Hinkley 1997, sec. 3.8, "hierarchical data";
    for crossed factors like these, where every seed predicts every post, Owen 2007's pigeonhole
    bootstrap) makes the interval cover both the sampling of the test posts and the seed-to-seed
    variation of training (Bouthillier et al. 2021). With S = 2 or 3 the seed level has only 3 or
    10 distinct draws and the bootstrap variance of a mean of S values is (S - 1) / S of the usual
    s^2 / S, so the seed part of the interval is coarse and slightly narrow. The same inputs and
    seed give the same interval.

    Args:
        gold: (N,) gold class ids in {0, 1, 2}.
        pred_a: (Sa, N) predictions of variant a, one row per training seed ((N,) = one row).
        pred_b: (Sb, N) predictions of variant b; Sb == Sa (rows aligned by seed) or either side 1.
        metric: ``"accuracy"``, ``"weighted_f1"`` or ``"macro_f1"`` (:func:`metric_from_confusion`).
        n_resamples: bootstrap resamples B.
        seed: seed of the resampling generator.
        level: the interval's coverage, in (0, 1).

    Returns:
        :class:`Comparison` (``difference``, ``low``, ``high`` on the scale of the metric, a − b).

    Raises:
        ValueError: if an array is empty, ``gold`` is not 1-d, a prediction array is not (S, N)
            with gold's N, a label is not an integer class id, the metric is unknown, ``level``
            is not in (0, 1), ``n_resamples < 1``, or both sides have several seeds but not the
            same number (1 < Sa != Sb > 1).
    """
    gold = _gold(gold)
    n_posts = gold.size
    pred_a = _prediction_rows(pred_a, n_posts, "pred_a")
    pred_b = _prediction_rows(pred_b, n_posts, "pred_b")
    _check_metric(metric)
    n_resamples = _check_resampling(n_resamples, level)
    n_a, n_b = pred_a.shape[0], pred_b.shape[0]
    if n_a > 1 and n_b > 1 and n_a != n_b:
        raise ValueError(f"variants with several seeds must have the same number (rows aligned by seed), got {n_a} and {n_b}")

    mean_a = float(metric_from_confusion(_count(gold, pred_a), metric).mean())
    mean_b = float(metric_from_confusion(_count(gold, pred_b), metric).mean())

    rng = np.random.default_rng(seed)
    index = _post_draws(rng, n_posts, n_resamples)
    n_seeds = max(n_a, n_b)
    seed_draws = rng.integers(0, n_seeds, (n_resamples, n_seeds), dtype=np.intp) if n_seeds > 1 else None
    scores_a = metric_from_confusion(_resampled_counts(gold, pred_a, index), metric)  # (B, Sa)
    scores_b = metric_from_confusion(_resampled_counts(gold, pred_b, index), metric)  # (B, Sb)
    values = _seed_means(scores_a, seed_draws) - _seed_means(scores_b, seed_draws)
    low, high = _interval(values, level)
    return Comparison(difference=mean_a - mean_b, low=low, high=high, n_posts=n_posts, n_seeds_a=n_a,
                      n_seeds_b=n_b, metric=metric, n_resamples=n_resamples, level=float(level),
                      mean_a=mean_a, mean_b=mean_b)


def bootstrap_mean(gold, pred, metric: str = "accuracy", n_resamples: int = 2000, seed: int = 0,
                   level: float = 0.95) -> Estimate:
    """One variant's mean-over-seeds score with the two-level bootstrap interval of
    :func:`paired_bootstrap` (used to set a variant against a figure the paper reports).

    The point estimate is ``mean_s metric(gold, pred[s])`` on all N posts. Each of the
    ``n_resamples`` resamples draws, from ``numpy.random.default_rng(seed)``, first N post
    indices with replacement (``rng.integers(0, N, N)``, resample after resample), then, if
    S > 1, S seed indices with replacement (``rng.integers(0, S, (B, S))``), and takes the mean
    over the drawn seeds of the metric on the drawn posts; the interval is the
    ``(1 ± level) / 2`` percentiles of those values (Efron & Tibshirani 1993, ch. 13; two levels
    as in Davison & Hinkley 1997, sec. 3.8). With S = 1 it equals
    :func:`msa_utils.train.metrics.bootstrap_interval` for the same seed.

    Args:
        gold: (N,) gold class ids in {0, 1, 2}.
        pred: (S, N) predictions, one row per training seed ((N,) = one row).
        metric: ``"accuracy"``, ``"weighted_f1"`` or ``"macro_f1"``.
        n_resamples: bootstrap resamples B.
        seed: seed of the resampling generator.
        level: the interval's coverage, in (0, 1).

    Returns:
        :class:`Estimate`; :meth:`Estimate.verdict_against` gives the ``"at_least"`` verdict
        against a paper's figure.

    Raises:
        ValueError: if an array is empty, ``gold`` is not 1-d, ``pred`` is not (S, N) with gold's
            N, a label is not an integer class id, the metric is unknown, ``level`` is not in
            (0, 1) or ``n_resamples < 1``.
    """
    gold = _gold(gold)
    n_posts = gold.size
    pred = _prediction_rows(pred, n_posts, "pred")
    _check_metric(metric)
    n_resamples = _check_resampling(n_resamples, level)
    n_seeds = pred.shape[0]
    mean = float(metric_from_confusion(_count(gold, pred), metric).mean())
    rng = np.random.default_rng(seed)
    index = _post_draws(rng, n_posts, n_resamples)
    seed_draws = rng.integers(0, n_seeds, (n_resamples, n_seeds), dtype=np.intp) if n_seeds > 1 else None
    values = _seed_means(metric_from_confusion(_resampled_counts(gold, pred, index), metric), seed_draws)
    low, high = _interval(values, level)
    return Estimate(mean=mean, low=low, high=high, n_posts=n_posts, n_seeds=n_seeds, metric=metric,
                    n_resamples=n_resamples, level=float(level))


# --- verdicts ---------------------------------------------------------------------------------

def verdict(low: float, high: float, expected: str = "greater", margin: float = 0.0) -> str:
    """Verdict on a paper's claim from a confidence interval ``[low, high]``.

    ``expected`` says what the paper claims and on which interval:

    * ``"greater"`` — "a beats b", interval on a − b (:func:`paired_bootstrap`): **supported** if
      ``low > 0`` (the whole interval is above 0), **contradicted** if ``high < 0`` (b is
      better), else **inconclusive** (the interval contains 0; an end exactly at 0 counts as
      containing it).
    * ``"not_worse"`` — "a is not worse than b" (e.g. "freezing the encoders costs nothing"),
      a non-inferiority claim with margin m = ``margin`` >= 0 on a − b, the largest loss still
      called "no loss" (Piaggio et al. 2012): **supported** if ``low > -m`` (the interval rules
      out a loss larger than m), **contradicted** if ``high < -m`` (the interval shows a loss
      larger than m), else **inconclusive** (a loss of m is inside the interval, or an end is
      exactly -m). With m = 0 "supported" needs a significant gain; state the margin in the
      report. With a two-sided 95 % interval this is a one-sided test at 2.5 %.
    * ``"at_least"`` — "our variant reaches the paper's score", interval on ours − paper (a
      one-sample comparison: our :func:`bootstrap_mean` interval minus the paper's figure, see
      :meth:`Estimate.verdict_against`): **supported** if ``high >= 0`` (our interval reaches
      the paper's figure: consistent with it, or above it), **contradicted** if ``high < 0``
      (our interval lies wholly below the paper's figure). Never inconclusive; note that a wide
      interval is readily "supported": this verdict only says the paper's figure is not ruled
      out from above.

    Args:
        low, high: the interval's ends (finite, ``low <= high``).
        expected: one of :data:`EXPECTATIONS`.
        margin: the non-inferiority margin m for ``"not_worse"`` (>= 0, on the metric's scale,
            e.g. 0.01 for one point of accuracy); must be 0 for the other two.

    Returns:
        ``"supported"``, ``"contradicted"`` or ``"inconclusive"``.

    Raises:
        ValueError: for an unknown ``expected``, a non-finite end, ``low > high``, a negative or
            non-finite margin, or a non-zero margin with ``"greater"`` or ``"at_least"``.
    """
    if expected not in EXPECTATIONS:
        raise ValueError(f"unknown expected {expected!r}; use one of {EXPECTATIONS}")
    low, high, margin = float(low), float(high), float(margin)
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"interval ends must be finite, got [{low}, {high}]")
    if low > high:
        raise ValueError(f"low must be <= high, got [{low}, {high}]")
    if not math.isfinite(margin) or margin < 0:
        raise ValueError(f"margin must be a finite number >= 0, got {margin}")
    if margin != 0 and expected != "not_worse":
        raise ValueError(f"a margin applies only to expected='not_worse', got margin {margin} with {expected!r}")
    if expected == "at_least":
        return "supported" if high >= 0 else "contradicted"
    threshold = -margin if expected == "not_worse" else 0.0
    if low > threshold:
        return "supported"
    if high < threshold:
        return "contradicted"
    return "inconclusive"
