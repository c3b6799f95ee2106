"""Statistics behind the claims table: does variant A beat B over repeated K-fold cross-validation?

A comparison has J = r·K paired per-run differences d_j = score_A(j) − score_B(j), run j = (repeat, fold),
the same folds and seeds on both sides. :func:`corrected_t` gives their mean, interval and p-value;
:func:`equivalence`, a TOST p-value; :func:`holm`, a family's adjusted p-values; :func:`verdict`, a claim's verdict.
The correction widens the variance of the mean from s²/J to (1/J + n_test/n_train)·s², for runs whose training sets
overlap and whose test folds split one sample of posts, so that posts, training sets and seeds all count; it is a
heuristic, as no unbiased estimator exists for K-fold (Bengio & Grandvalet, JMLR 5, 2004): conservative when the
posts' noise dominates, liberal when a training-set effect does (coverage: tests/test_compare.py). The choice of
hyper-parameters is not covered.

Sources: Nadeau & Bengio, "Inference for the generalization error", Machine Learning 52:239-281 (2003); Bouckaert &
Frank, PAKDD 2004 (corrected repeated k-fold cv test); Holm, Scand. J. Statist. 6:65-70 (1979); TOST: Schuirmann,
J. Pharmacokinet. Biopharm. 15:657-680 (1987), Lakens, Soc. Psychol. Personal. Sci. 8:355-362 (2017); run
variance: Bouthillier et al., MLSys 2021."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from msa_utils.io.tables import mean_std

EXPECTATIONS = ("greater", "equivalent")


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
class Interval:
    """:func:`corrected_t`'s result: mean difference ``estimate``, its two-sided ``level`` interval [low, high],
    standard error ``se``, degrees of freedom ``df``, two-sided p-value ``p`` against ``null``, ``n_runs`` = J."""

    estimate: float
    low: float
    high: float
    se: float
    df: int
    p: float
    n_runs: int
    level: float
    null: float = 0.0


def _above(distance: float, se: float, df: int) -> float:
    """P(T_df > distance / se); for se == 0, 0 if distance > 0 else 1."""
    return float(stats.t.sf(distance / se, df)) if se > 0 else float(distance <= 0)


def corrected_t(differences, test_train_ratio: float, level: float = 0.95, null: float = 0.0,
                extra_se: float = 0.0) -> Interval:
    """Nadeau-Bengio corrected resampled t of J per-run differences (J,) [score units]: ``se`` =
    sqrt((1/J + test_train_ratio)·s² + extra_se²), s² their sample variance (ddof 1), df = J − 1 (also with
    ``extra_se``, an independent standard error such as a published figure's, taken as known). ``test_train_ratio``:
    n_test / n_train of one run, n_train the posts the model is fitted on (validation part excluded: e.g. 800 / 2560
    for 4,000 posts, 5 folds, 20 % validation); the plain 1/(K−1) of Bouckaert & Frank covers a little less (tests).
    If se == 0 (identical differences, no ``extra_se``): a zero-width interval, p 1 if the estimate equals ``null``
    else 0. ValueError for J < 2, non-finite values, ratio <= 0, level outside (0, 1), a negative or non-finite
    ``extra_se``, a non-finite ``null``."""
    d = np.asarray(differences, dtype=np.float64)
    if d.ndim != 1 or d.size < 2 or not np.isfinite(d).all():
        raise ValueError(f"need a 1-d array of at least 2 finite per-run differences, got {d.tolist()}")
    if not (0 < test_train_ratio < math.inf):
        raise ValueError(f"test_train_ratio must be a finite number > 0, got {test_train_ratio!r}")
    if not 0.0 < level < 1.0:  # also False for NaN
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    if not (0 <= extra_se < math.inf) or not math.isfinite(null):
        raise ValueError(f"extra_se must be finite and >= 0 and null finite, got {extra_se!r}, {null!r}")
    n, estimate = d.size, float(d.mean())
    se = math.sqrt((1.0 / n + test_train_ratio) * float(d.var(ddof=1)) + extra_se**2)
    half = float(stats.t.ppf((1.0 + level) / 2.0, n - 1)) * se
    p = min(1.0, 2.0 * _above(abs(estimate - null), se, n - 1))
    return Interval(estimate=estimate, low=estimate - half, high=estimate + half, se=se, df=n - 1, p=p, n_runs=n,
                    level=float(level), null=float(null))


def equivalence(differences, test_train_ratio: float, margin: float, extra_se: float = 0.0) -> float:
    """TOST p-value for |difference| < ``margin``: the larger of the one-sided corrected-t p-values of H0 difference
    <= −margin and H0 difference >= +margin (:func:`corrected_t`'s se, with ``extra_se``, and df). ValueError: as
    it, or margin <= 0."""
    if not (0 < margin < math.inf):
        raise ValueError(f"margin must be a finite number > 0, got {margin!r}")
    ci = corrected_t(differences, test_train_ratio, extra_se=extra_se)
    return max(_above(ci.estimate + margin, ci.se, ci.df), _above(margin - ci.estimate, ci.se, ci.df))


def holm(p_values) -> np.ndarray:
    """Holm step-down adjusted p-values (float array, the input's shape): the k-th smallest of m becomes
    max over i <= k of min(1, (m − i + 1)·p_(i)). NaN entries stay NaN and are not counted in m. ValueError for
    values outside [0, 1]."""
    p = np.asarray(p_values, dtype=np.float64)
    out, kept = np.full(p.shape, np.nan), ~np.isnan(p)
    q = p[kept]
    if ((q < 0) | (q > 1)).any():
        raise ValueError(f"p-values must lie in [0, 1] (or be NaN), got {p.tolist()}")
    order = np.argsort(q, kind="stable")
    adjusted = np.empty_like(q)
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate((q.size - np.arange(q.size)) * q[order]))
    out[kept] = adjusted
    return out


def verdict(interval: Interval, p_adjusted: float, expected: str = "greater", margin: float = 0.0,
            alpha: float = 0.05) -> str:
    """``"supported"``, ``"contradicted"`` or ``"inconclusive"`` for a claim on A − B, with s = estimate − null.
    ``"greater"`` (A beats B; ``p_adjusted``: the adjusted :attr:`Interval.p`): supported if p < alpha and s > 0,
    contradicted if p < alpha and s < 0. ``"equivalent"`` (margin m > 0; ``p_adjusted``: the adjusted
    :func:`equivalence` p): supported if p < alpha, contradicted if the (unadjusted) interval lies wholly
    outside [−m, m]. ValueError for an unknown ``expected``, p outside [0, 1], alpha outside (0, 1), a margin
    not > 0 for ``"equivalent"`` or not 0 otherwise."""
    if expected not in EXPECTATIONS:
        raise ValueError(f"unknown expected {expected!r}; use one of {EXPECTATIONS}")
    if not (0.0 <= p_adjusted <= 1.0 and 0.0 < alpha < 1.0):
        raise ValueError(f"need p_adjusted in [0, 1] and alpha in (0, 1), got {p_adjusted!r}, {alpha!r}")
    if not (0 < margin < math.inf if expected == "equivalent" else margin == 0):
        raise ValueError(f"margin must be finite and > 0 for 'equivalent', 0 otherwise, got {margin!r}")
    significant, sign = p_adjusted < alpha, interval.estimate - interval.null
    if expected == "equivalent":
        if significant:
            return "supported"
        return "contradicted" if interval.low > margin or interval.high < -margin else "inconclusive"
    if significant and sign < 0:
        return "contradicted"
    return "supported" if significant and sign > 0 else "inconclusive"


def paper_effect_inside(interval: Interval, effect) -> bool:
    """Whether a published effect, a float or a (low, high) range such as (0.07, 0.08), overlaps [low, high] of
    ``interval`` (ends included); ValueError for non-finite values or a range with low > high."""
    low, high = (float(effect), float(effect)) if np.ndim(effect) == 0 else map(float, effect)
    if not (math.isfinite(low) and math.isfinite(high)) or low > high:
        raise ValueError(f"need a finite effect or range with low <= high, got {effect!r}")
    return max(low, interval.low) <= min(high, interval.high)
