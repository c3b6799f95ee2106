"""Tests of msa_utils.experiments.compare: confusion matrices and metrics against scikit-learn, the paired
two-level bootstrap against a plain loop over the documented draws (scikit-learn metrics), its behaviour (pairing, seeds,
baselines, symmetry, determinism), errors, and the verdict rules at their boundaries."""

import math

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

from msa_utils.experiments.compare import (METRICS, Comparison, Estimate, SeedSummary, bootstrap_mean, confusion_matrices,
                               metric_from_confusion, paired_bootstrap, seed_summary, verdict)

SKLEARN = {
    "accuracy": lambda y, p: accuracy_score(y, p),
    "weighted_f1": lambda y, p: f1_score(y, p, labels=[0, 1, 2], average="weighted", zero_division=0),
    "macro_f1": lambda y, p: f1_score(y, p, average="macro", zero_division=0),
}


def noisy_copy(rng, gold, correct_rate, rows=None):
    """Predictions equal to gold on a ``correct_rate`` share of posts (exactly), a wrong class elsewhere."""
    shape = (len(gold),) if rows is None else (rows, len(gold))
    out = np.broadcast_to(gold, shape).copy()
    for row in out.reshape(-1, len(gold)):
        wrong = rng.permutation(len(gold))[: int(round((1 - correct_rate) * len(gold)))]
        row[wrong] = (row[wrong] + rng.integers(1, 3, wrong.size)) % 3
    return out


# --- confusion matrices and metrics ----------------------------------------------------------

def test_confusion_matrices_match_sklearn_with_leading_shape():
    rng = np.random.default_rng(0)
    gold = rng.integers(0, 3, 40)
    pred = rng.integers(0, 3, (2, 3, 40))
    conf = confusion_matrices(gold, pred)
    assert conf.shape == (2, 3, 3, 3)
    for i in range(2):
        for j in range(3):
            np.testing.assert_array_equal(conf[i, j], confusion_matrix(gold, pred[i, j], labels=[0, 1, 2]))
    np.testing.assert_array_equal(confusion_matrices(gold, pred[0, 0]), confusion_matrix(gold, pred[0, 0], labels=[0, 1, 2]))


def test_confusion_rows_are_gold_columns_are_predicted():
    conf = confusion_matrices(np.array([0, 0, 1]), np.array([2, 2, 1]))
    assert conf[0, 2] == 2 and conf[2, 0] == 0 and conf[1, 1] == 1


def random_label_pairs(rng, count):
    """Random (gold, pred) pairs of 1-12 posts, each drawn from a random subset of the classes, so
    that classes are often absent from gold, from pred, or from both."""
    subsets = [[0], [1], [2], [0, 1], [0, 2], [1, 2], [0, 1, 2]]
    for _ in range(count):
        n = int(rng.integers(1, 13))
        gold = rng.choice(subsets[rng.integers(len(subsets))], n)
        pred = rng.choice(subsets[rng.integers(len(subsets))], n)
        yield gold, pred


@pytest.mark.parametrize("metric", METRICS)
def test_metric_from_confusion_equals_sklearn_on_random_labels(metric):
    rng = np.random.default_rng(1)
    pairs = list(random_label_pairs(rng, 400))
    absent = {"gold only": 0, "pred only": 0, "both": 0}
    for gold, pred in pairs:
        for c in range(3):
            in_gold, in_pred = c in gold, c in pred
            absent["gold only"] += (not in_gold) and in_pred
            absent["pred only"] += in_gold and not in_pred
            absent["both"] += not (in_gold or in_pred)
    assert min(absent.values()) > 20  # the cases the definitions differ on are well covered
    # one at a time and as a stack of matrices
    stacked = np.stack([confusion_matrices(g, p) for g, p in pairs])
    values = metric_from_confusion(stacked, metric)
    for (gold, pred), value in zip(pairs, values):
        assert float(metric_from_confusion(confusion_matrices(gold, pred), metric)) == pytest.approx(
            SKLEARN[metric](gold, pred), abs=1e-12)
        assert value == pytest.approx(SKLEARN[metric](gold, pred), abs=1e-12)


def test_metric_from_confusion_on_larger_random_data_and_study_definitions():
    from msa_utils.train.metrics import classification_metrics

    rng = np.random.default_rng(2)
    for n in (50, 800):
        gold = rng.integers(0, 3, n)
        pred = noisy_copy(rng, gold, 0.7)
        study = classification_metrics(gold, pred)
        conf = confusion_matrices(gold, pred)
        for metric in METRICS:
            assert float(metric_from_confusion(conf, metric)) == pytest.approx(study[metric], abs=1e-12)


def test_metric_absent_class_examples():
    # class 2 absent from both: weighted over 3 classes keeps it at weight 0; macro drops it
    gold, pred = np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1])
    conf = confusion_matrices(gold, pred)
    f1_0, f1_1 = 2 / 3, 0.8
    assert float(metric_from_confusion(conf, "macro_f1")) == pytest.approx((f1_0 + f1_1) / 2)
    assert float(metric_from_confusion(conf, "weighted_f1")) == pytest.approx((2 * f1_0 + 2 * f1_1) / 4)
    # class 2 predicted but never gold: it enters macro with F1 0, weighted with weight 0
    pred = np.array([0, 2, 1, 1])
    conf = confusion_matrices(gold, pred)
    assert float(metric_from_confusion(conf, "macro_f1")) == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert float(metric_from_confusion(conf, "weighted_f1")) == pytest.approx((2 * 2 / 3 + 2 * 1) / 4)


def test_metric_from_confusion_errors():
    conf = np.eye(3, dtype=int)
    with pytest.raises(ValueError, match="unknown metric"):
        metric_from_confusion(conf, "f1")
    with pytest.raises(ValueError, match="shape"):
        metric_from_confusion(np.eye(2), "accuracy")
    with pytest.raises(ValueError, match="without posts"):
        metric_from_confusion(np.zeros((3, 3)), "accuracy")
    with pytest.raises(ValueError, match="non-negative"):
        metric_from_confusion(-np.eye(3), "accuracy")


def test_confusion_matrices_errors():
    gold = np.array([0, 1, 2])
    with pytest.raises(ValueError, match="last axis"):
        confusion_matrices(gold, np.array([0, 1]))
    with pytest.raises(ValueError, match="empty"):
        confusion_matrices(np.array([], dtype=int), np.array([], dtype=int))
    with pytest.raises(ValueError, match="outside"):
        confusion_matrices(gold, np.array([0, 1, 3]))
    with pytest.raises(ValueError, match="integer"):
        confusion_matrices(gold, np.array([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match="1-d"):
        confusion_matrices(np.array([[0, 1, 2]]), np.array([0, 1, 2]))


# --- seed summaries ---------------------------------------------------------------------------

def test_seed_summary_and_format():
    s = seed_summary([0.668, 0.680, 0.692])
    assert isinstance(s, SeedSummary)
    assert s.n == 3 and s.mean == pytest.approx(0.68)
    assert s.std == pytest.approx(np.std([0.668, 0.680, 0.692], ddof=1)) and s.std == pytest.approx(0.012)
    assert str(s) == "0.680 ± 0.012 (n=3)"
    assert s.format(2) == "0.68 ± 0.01 (n=3)"
    assert SeedSummary(mean=0.6741, std=0.0104, n=3).format() == "0.674 ± 0.010 (n=3)"
    one = seed_summary(np.array([0.7]))
    assert one.n == 1 and one.mean == 0.7 and math.isnan(one.std)
    assert str(one) == one.format() == "0.700 (n=1)"
    with pytest.raises(ValueError):
        s.format(-1)
    for bad in ([], [[0.1, 0.2]], [0.5, float("nan")]):
        with pytest.raises(ValueError):
            seed_summary(bad)


# --- paired bootstrap -------------------------------------------------------------------------

def loop_paired_bootstrap(gold, pred_a, pred_b, metric, n_resamples, seed, level):
    """The documented scheme, written out with scikit-learn one resample at a time."""
    rng = np.random.default_rng(seed)
    n = len(gold)
    index = [rng.integers(0, n, n, dtype=np.intp) for _ in range(n_resamples)]
    s = max(len(pred_a), len(pred_b))
    seeds = rng.integers(0, s, (n_resamples, s), dtype=np.intp) if s > 1 else None
    values = []
    for b, idx in enumerate(index):
        def side(pred):
            rows = [0] if len(pred) == 1 else seeds[b]
            return np.mean([SKLEARN[metric](gold[idx], pred[k][idx]) for k in rows])
        values.append(side(pred_a) - side(pred_b))
    edge = 100 * (1 - level) / 2
    return np.percentile(values, (edge, 100 - edge))


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("seeds", [(3, 3), (2, 1), (1, 3), (1, 1)])
def test_paired_bootstrap_equals_the_documented_scheme(metric, seeds):
    rng = np.random.default_rng(3)
    gold = rng.choice([0, 1, 2], 60, p=[0.5, 0.4, 0.1])
    pred_a = noisy_copy(rng, gold, 0.7, seeds[0])
    pred_b = noisy_copy(rng, gold, 0.6, seeds[1])
    got = paired_bootstrap(gold, pred_a, pred_b, metric, n_resamples=60, seed=7, level=0.9)
    low, high = loop_paired_bootstrap(gold, pred_a, pred_b, metric, 60, 7, 0.9)
    assert (got.low, got.high) == (pytest.approx(low, abs=1e-12), pytest.approx(high, abs=1e-12))
    mean_a = np.mean([SKLEARN[metric](gold, p) for p in pred_a])
    mean_b = np.mean([SKLEARN[metric](gold, p) for p in pred_b])
    assert got.difference == pytest.approx(mean_a - mean_b, abs=1e-12)
    assert (got.mean_a, got.mean_b) == (pytest.approx(mean_a, abs=1e-12), pytest.approx(mean_b, abs=1e-12))
    assert (got.n_posts, got.n_seeds_a, got.n_seeds_b, got.metric, got.n_resamples, got.level) == (
        60, seeds[0], seeds[1], metric, 60, 0.9)


@pytest.mark.parametrize("metric", METRICS)
def test_identical_predictions_give_zero(metric):
    rng = np.random.default_rng(4)
    gold = rng.integers(0, 3, 300)
    pred = noisy_copy(rng, gold, 0.7, 3)
    c = paired_bootstrap(gold, pred, pred.copy(), metric, n_resamples=500)
    assert (c.difference, c.low, c.high) == (0.0, 0.0, 0.0)
    assert c.verdict("greater") == "inconclusive"


@pytest.mark.parametrize("metric", METRICS)
def test_clearly_better_variant_excludes_zero_and_swap_negates(metric):
    rng = np.random.default_rng(5)
    gold = rng.integers(0, 3, 800)
    a = noisy_copy(rng, gold, 0.9, 3)
    b = noisy_copy(rng, gold, 0.6, 3)
    ab = paired_bootstrap(gold, a, b, metric, n_resamples=1000, seed=1)
    assert isinstance(ab, Comparison)
    assert 0.2 < ab.difference < 0.4 and 0 < ab.low <= ab.difference <= ab.high
    assert ab.verdict("greater") == "supported"
    ba = paired_bootstrap(gold, b, a, metric, n_resamples=1000, seed=1)
    assert ba.difference == pytest.approx(-ab.difference, abs=1e-12)
    assert ba.low == pytest.approx(-ab.high, abs=1e-12) and ba.high == pytest.approx(-ab.low, abs=1e-12)
    assert ba.high < 0 and ba.verdict("greater") == "contradicted"


def test_pairing_narrows_the_interval_of_correlated_variants():
    rng = np.random.default_rng(6)
    n = 800
    gold = rng.integers(0, 3, n)
    a = noisy_copy(rng, gold, 0.7)
    b = a.copy()
    right = np.flatnonzero(a == gold)
    flip = rng.choice(right, 30, replace=False)  # b = a except 30 posts a gets right and b wrong
    b[flip] = (gold[flip] + 1) % 3
    paired = paired_bootstrap(gold, a, b, "accuracy", n_resamples=2000, seed=0)
    assert paired.difference == pytest.approx(30 / n)
    # the same comparison resampling the posts of a and b independently (unpaired)
    draw = np.random.default_rng(0)
    acc = lambda pred: (pred[idx] == gold[idx]).mean()  # noqa: E731
    unpaired = []
    for _ in range(2000):
        idx = draw.integers(0, n, n)
        score_a = acc(a)
        idx = draw.integers(0, n, n)
        unpaired.append(score_a - acc(b))
    u_low, u_high = np.percentile(unpaired, (2.5, 97.5))
    assert paired.low > 0 and u_low < 0  # only the paired interval sees the difference
    assert paired.high - paired.low < 0.4 * (u_high - u_low)


def test_deterministic_baseline_with_one_row():
    rng = np.random.default_rng(7)
    gold = rng.choice([0, 1, 2], 500, p=[0.6, 0.3, 0.1])
    a = noisy_copy(rng, gold, 0.75, 3)
    majority = np.zeros(500, dtype=int)
    for b in (majority, majority[None, :]):
        c = paired_bootstrap(gold, a, b, "weighted_f1", n_resamples=500)
        assert c.n_seeds_a == 3 and c.n_seeds_b == 1
        assert c.mean_b == pytest.approx(f1_score(gold, majority, labels=[0, 1, 2], average="weighted", zero_division=0))
        assert c.low > 0 and c.verdict() == "supported"
    swapped = paired_bootstrap(gold, majority, a, "weighted_f1", n_resamples=500)
    assert swapped.difference == pytest.approx(-c.difference) and swapped.high < 0
    # a single row on both sides: the post-level paired bootstrap alone
    single = paired_bootstrap(gold, a[0], majority, "accuracy", n_resamples=300)
    assert single.n_seeds_a == single.n_seeds_b == 1


def test_seed_variation_widens_the_interval():
    rng = np.random.default_rng(8)
    n = 800
    gold = rng.integers(0, 3, n)
    b = noisy_copy(rng, gold, 0.6)
    varied = np.stack([noisy_copy(rng, gold, r) for r in (0.6, 0.75, 0.9)])
    steady = np.stack([noisy_copy(rng, gold, 0.75)] * 3)
    c_varied = paired_bootstrap(gold, varied, b, n_resamples=2000)
    c_steady = paired_bootstrap(gold, steady, b, n_resamples=2000)
    assert c_varied.difference == pytest.approx(c_steady.difference) == pytest.approx(0.15)
    assert c_varied.high - c_varied.low > 2 * (c_steady.high - c_steady.low)
    # the same with seeds on both sides (paired seed draws)
    b3 = np.stack([b] * 3)
    c_varied, c_steady = paired_bootstrap(gold, varied, b3), paired_bootstrap(gold, steady, b3)
    assert c_varied.high - c_varied.low > 2 * (c_steady.high - c_steady.low)


def test_paired_seeds_cancel_a_shared_seed_effect():
    # seed k helps both variants equally: with the seed indices shared, the difference is
    # constant over seeds, so the seed level adds nothing
    rng = np.random.default_rng(9)
    gold = rng.integers(0, 3, 400)
    base = [noisy_copy(rng, gold, r) for r in (0.55, 0.7, 0.85)]
    a = np.stack(base)
    b = a.copy()
    flip = rng.choice(np.flatnonzero((a == gold).all(0)), 20, replace=False)
    b[:, flip] = (gold[flip] + 1) % 3  # b = a minus the same 20 correct posts in every seed
    c = paired_bootstrap(gold, a, b, n_resamples=1000)
    single_seed = paired_bootstrap(gold, a[:1], b[:1], n_resamples=1000)
    assert c.difference == pytest.approx(20 / 400)
    assert (c.low, c.high) == (pytest.approx(single_seed.low), pytest.approx(single_seed.high))


def test_determinism_for_a_fixed_seed():
    rng = np.random.default_rng(10)
    gold = rng.integers(0, 3, 200)
    a, b = noisy_copy(rng, gold, 0.7, 3), noisy_copy(rng, gold, 0.65, 3)
    first = paired_bootstrap(gold, a, b, "macro_f1", n_resamples=300, seed=42)
    assert paired_bootstrap(gold, a, b, "macro_f1", n_resamples=300, seed=42) == first
    other = paired_bootstrap(gold, a, b, "macro_f1", n_resamples=300, seed=43)
    assert (other.low, other.high) != (first.low, first.high)
    assert other.difference == first.difference
    assert bootstrap_mean(gold, a, seed=5) == bootstrap_mean(gold, a, seed=5)


@pytest.mark.parametrize("kwargs, match", [
    (dict(metric="f1"), "unknown metric"),
    (dict(level=0.0), "level"),
    (dict(level=1.0), "level"),
    (dict(level=1.5), "level"),
    (dict(level=float("nan")), "level"),
    (dict(n_resamples=0), "n_resamples"),
    (dict(n_resamples=2.5), "n_resamples"),
])
def test_paired_bootstrap_argument_errors(kwargs, match):
    gold = np.array([0, 1, 2, 0])
    with pytest.raises(ValueError, match=match):
        paired_bootstrap(gold, gold, gold, **kwargs)
    with pytest.raises(ValueError, match=match):
        bootstrap_mean(gold, gold, **kwargs)


def test_paired_bootstrap_shape_errors():
    gold = np.array([0, 1, 2, 0])
    two, three = np.stack([gold] * 2), np.stack([gold] * 3)
    with pytest.raises(ValueError, match="same number"):
        paired_bootstrap(gold, two, three)
    with pytest.raises(ValueError, match="pred_b"):
        paired_bootstrap(gold, gold, gold[:3])
    with pytest.raises(ValueError, match="pred_a"):
        paired_bootstrap(gold, np.zeros((2, 2, 4), dtype=int), gold)
    with pytest.raises(ValueError, match="empty"):
        paired_bootstrap(np.array([], dtype=int), np.array([], dtype=int), np.array([], dtype=int))
    with pytest.raises(ValueError, match="empty"):
        paired_bootstrap(gold, np.zeros((0, 4), dtype=int), gold)
    with pytest.raises(ValueError, match="outside"):
        paired_bootstrap(gold, gold + 1, gold)
    with pytest.raises(ValueError, match="integer"):
        bootstrap_mean(gold, gold.astype(float))
    with pytest.raises(ValueError, match="pred"):
        bootstrap_mean(gold, three[:, :3])
    # several seeds against one row works in both directions
    assert paired_bootstrap(gold, three, gold, n_resamples=5).n_seeds_a == 3
    assert paired_bootstrap(gold, gold, two, n_resamples=5).n_seeds_b == 2


# --- bootstrap_mean ---------------------------------------------------------------------------

@pytest.mark.parametrize("metric", METRICS)
def test_bootstrap_mean_with_one_row_equals_a_plain_loop_over_posts(metric):
    rng = np.random.default_rng(11)
    gold = rng.integers(0, 3, 150)
    pred = noisy_copy(rng, gold, 0.7)
    est = bootstrap_mean(gold, pred, metric, n_resamples=150, seed=3)
    draw = np.random.default_rng(3)
    values = [SKLEARN[metric](gold[idx], pred[idx]) for idx in (draw.integers(0, 150, 150) for _ in range(150))]
    low, high = np.percentile(values, (2.5, 97.5))
    assert isinstance(est, Estimate)
    assert (est.low, est.high) == (pytest.approx(low, abs=1e-12), pytest.approx(high, abs=1e-12))
    assert est.mean == pytest.approx(SKLEARN[metric](gold, pred), abs=1e-12)


@pytest.mark.parametrize("metric", ["accuracy", "weighted_f1"])
def test_bootstrap_mean_contains_the_estimate_narrows_with_posts_and_widens_with_level(metric):
    rng = np.random.default_rng(14)
    small_gold, large_gold = rng.choice(3, 80, p=[0.6, 0.3, 0.1]), rng.choice(3, 2000, p=[0.6, 0.3, 0.1])
    small = bootstrap_mean(small_gold, noisy_copy(rng, small_gold, 0.7), metric, n_resamples=200, seed=3)
    large = bootstrap_mean(large_gold, noisy_copy(rng, large_gold, 0.7), metric, n_resamples=200, seed=3)
    assert small.low <= small.mean <= small.high and small.low < small.high
    assert large.high - large.low < 0.5 * (small.high - small.low)
    gold = small_gold
    pred = noisy_copy(rng, gold, 0.6)
    wide = bootstrap_mean(gold, pred, metric, n_resamples=300, level=0.99)
    narrow = bootstrap_mean(gold, pred, metric, n_resamples=300, level=0.5)
    assert wide.low < narrow.low < narrow.high < wide.high


@pytest.mark.parametrize("metric", METRICS)
def test_bootstrap_mean_with_seeds_equals_the_documented_scheme(metric):
    rng = np.random.default_rng(12)
    gold = rng.integers(0, 3, 80)
    pred = noisy_copy(rng, gold, 0.65, 3)
    est = bootstrap_mean(gold, pred, metric, n_resamples=80, seed=2, level=0.8)
    # bootstrap_mean(a) is paired_bootstrap(a, b) with b fixed: the same draws, shifted by b's value
    perfect = paired_bootstrap(gold, pred, gold, metric, n_resamples=80, seed=2, level=0.8)
    low, high = loop_paired_bootstrap(gold, pred, gold[None, :], metric, 80, 2, 0.8)
    assert (est.low - 1, est.high - 1) == (pytest.approx(low, abs=1e-12), pytest.approx(high, abs=1e-12))
    assert (est.low - 1, est.high - 1) == (pytest.approx(perfect.low, abs=1e-12), pytest.approx(perfect.high, abs=1e-12))
    assert est.mean == pytest.approx(np.mean([SKLEARN[metric](gold, p) for p in pred]), abs=1e-12)
    assert est.n_seeds == 3 and est.n_posts == 80 and est.level == 0.8


def test_verdict_against_a_paper_figure():
    rng = np.random.default_rng(13)
    gold = rng.integers(0, 3, 800)
    est = bootstrap_mean(gold, noisy_copy(rng, gold, 0.7, 3), n_resamples=500)
    assert est.verdict_against(est.mean) == "supported"
    assert est.verdict_against(est.high) == "supported"
    assert est.verdict_against(est.high + 1e-9) == "contradicted"
    assert est.verdict_against(0.5) == "supported"


# --- verdicts ---------------------------------------------------------------------------------

@pytest.mark.parametrize("low, high, expected, margin, result", [
    (0.01, 0.05, "greater", 0.0, "supported"),
    (0.0, 0.05, "greater", 0.0, "inconclusive"),      # an end at 0: 0 is in the interval
    (-0.01, 0.05, "greater", 0.0, "inconclusive"),
    (-0.05, 0.0, "greater", 0.0, "inconclusive"),
    (-0.05, -0.01, "greater", 0.0, "contradicted"),
    (0.0, 0.0, "greater", 0.0, "inconclusive"),
    (-0.009, 0.02, "not_worse", 0.01, "supported"),   # a loss of more than 1 point is ruled out
    (-0.01, 0.02, "not_worse", 0.01, "inconclusive"),  # a loss of exactly the margin is not
    (-0.03, 0.02, "not_worse", 0.01, "inconclusive"),
    (-0.03, -0.01, "not_worse", 0.01, "inconclusive"),
    (-0.03, -0.011, "not_worse", 0.01, "contradicted"),  # a loss larger than the margin is shown
    (-0.03, -0.02, "not_worse", 0.0, "contradicted"),
    (0.001, 0.02, "not_worse", 0.0, "supported"),
    (-0.001, 0.02, "not_worse", 0.0, "inconclusive"),
    (-0.05, 0.0, "at_least", 0.0, "supported"),        # our interval just reaches the paper's figure
    (-0.05, 0.01, "at_least", 0.0, "supported"),
    (0.01, 0.05, "at_least", 0.0, "supported"),        # above the paper's figure
    (-0.05, -1e-9, "at_least", 0.0, "contradicted"),
])
def test_verdict_rules_at_the_boundaries(low, high, expected, margin, result):
    assert verdict(low, high, expected, margin) == result


@pytest.mark.parametrize("args, match", [
    ((0.0, 1.0, "better"), "unknown expected"),
    ((0.2, 0.1, "greater"), "low <= high"),
    ((-0.1, 0.1, "not_worse", -0.01), "margin"),
    ((-0.1, 0.1, "greater", 0.01), "0 unless"),
    ((-0.1, 0.1, "at_least", 0.01), "0 unless"),
    ((float("nan"), 0.1, "greater"), "finite"),
    ((-0.1, 0.1, "not_worse", float("inf")), "margin"),
])
def test_verdict_errors(args, match):
    with pytest.raises(ValueError, match=match):
        verdict(*args)
