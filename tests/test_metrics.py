"""Metrics and baselines against hand-computed values and scikit-learn."""

import numpy as np
import pytest
import torch

from msa_utils.experiments.baselines import fit_linear_probe, fit_majority, fit_tfidf_probe, pooled_features
from msa_utils.train.metrics import classification_metrics, confusion


def test_metrics_by_hand():
    y_true = np.array([0, 0, 0, 1, 1, 2])
    y_pred = np.array([0, 0, 1, 1, 1, 0])
    m = classification_metrics(y_true, y_pred)
    assert m["accuracy"] == pytest.approx(4 / 6)
    # positive: P=2/3 R=2/3 -> F1 2/3; negative: P=2/3 R=1 -> 0.8; neutral: 0
    assert m["f1_positive"] == pytest.approx(2 / 3)
    assert m["f1_negative"] == pytest.approx(0.8)
    assert m["f1_neutral"] == 0.0
    assert m["macro_f1"] == pytest.approx((2 / 3 + 0.8) / 3)
    assert m["weighted_f1"] == pytest.approx((3 * 2 / 3 + 2 * 0.8) / 6)
    assert confusion(y_true, y_pred).tolist() == [[2, 1, 0], [0, 2, 0], [1, 0, 0]]


def test_metrics_reject_mismatch():
    with pytest.raises(ValueError):
        classification_metrics(np.array([0, 1]), np.array([0]))


def test_majority_baseline_predicts_most_frequent_training_class():
    pred = fit_majority(np.array([1, 1, 0])).predict(np.zeros((4, 1)))
    assert classification_metrics(np.array([1, 0, 1, 1]), pred)["accuracy"] == pytest.approx(0.75)


def test_pooled_features_ignore_padding():
    text = torch.tensor([[[1.0, 1.0], [3.0, 3.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    image = torch.tensor([[[2.0], [4.0]]])
    assert pooled_features(text, mask, image).tolist() == [[2.0, 2.0, 3.0]]


def test_linear_probe_learns_a_separable_signal():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    x = rng.normal(size=(300, 5)) + np.eye(3, 5)[y] * 3
    for balanced in (True, False):
        pred = fit_linear_probe(x[:200], y[:200], np.arange(200), balanced=balanced).predict(x[200:])
        assert classification_metrics(y[200:], pred)["accuracy"] > 0.9 and pred.shape == (100,)
    noise = fit_linear_probe(rng.normal(size=(200, 5)), y[:200], np.arange(200)).predict(rng.normal(size=(100, 5)))
    assert classification_metrics(y[200:], noise)["accuracy"] < 0.6


def test_linear_probe_copes_with_a_missing_class():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 120)  # no neutral post at all
    x = rng.normal(size=(120, 4)) + np.eye(2, 4)[y] * 3
    scores = classification_metrics(y[80:], fit_linear_probe(x[:80], y[:80], np.arange(80)).predict(x[80:]))
    assert scores["accuracy"] > 0.85 and scores["f1_neutral"] == 0.0


def test_balancing_the_probe_raises_the_recall_of_a_rare_class():
    rng = np.random.default_rng(2)
    y = np.array([0] * 270 + [1] * 30)
    x = rng.normal(size=(300, 4)) + np.eye(2, 4)[y] * 1.0  # overlapping classes
    test = rng.normal(size=(300, 4)) + np.eye(2, 4)[y] * 1.0
    recall = {b: (fit_linear_probe(x, y, np.arange(300), balanced=b).predict(test)[y == 1] == 1).mean() for b in (True, False)}
    assert recall[True] > recall[False] + 0.2


def test_tfidf_probe_reads_the_words():
    texts = ["love this happy day"] * 20 + ["awful sad terrible news"] * 20 + ["the bus leaves at noon"] * 20
    y = np.repeat([0, 1, 2], 20)
    groups = np.arange(60) // 2  # pairs of copies
    probe = fit_tfidf_probe(texts, y, groups)
    assert probe.predict(["such a happy day", "terrible sad story", "bus at noon"]).tolist() == [0, 1, 2]
    for train, test in probe[-1].cv:  # the choice of C never tests on a copy of a training post
        assert not set(groups[train]) & set(groups[test])


def test_macro_f1_leaves_out_a_class_absent_from_gold_and_predictions():
    m = classification_metrics(np.array([0, 0, 1, 1]), np.array([0, 0, 1, 1]))
    assert m["macro_f1"] == 1.0 and m["f1_neutral"] == 0.0
