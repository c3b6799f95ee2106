"""The baselines a fusion model has to clear, fitted on the training part: the majority class, TF-IDF
text + logistic regression, and the linear probe on the pooled frozen features (balanced or not)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from sklearn.dummy import DummyClassifier
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegressionCV
from sklearn.metrics import f1_score, make_scorer
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from msa_utils.features.sets import FeatureSet

C_GRID = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)


def pooled_features(text_states: torch.Tensor, text_mask: torch.Tensor, image_states: torch.Tensor) -> np.ndarray:
    """(N, Dt + Di) float32: the masked mean of the text states (N, L, Dt; mask (N, L), 1 = token) next
    to the mean of the image states (N, Li', Di)."""
    mask = text_mask.unsqueeze(-1).float()
    text = (text_states.float() * mask).sum(1) / mask.sum(1).clamp(min=1.0)
    image = image_states.float().mean(1)
    return torch.cat([text, image], dim=1).numpy()


def pooled_feature_set(features: FeatureSet, batch_size: int = 1024) -> np.ndarray:
    """:func:`pooled_features` of ``features``, ``batch_size`` posts in memory at a time."""
    pooled = [pooled_features(rows.text_states, rows.text_mask, rows.image_states)
              for rows in features.batches(batch_size)]
    width = features.text_states.shape[-1] + features.image_states.shape[-1]
    return np.concatenate(pooled) if pooled else np.zeros((0, width), dtype=np.float32)


def _logistic_regression(balanced: bool, seed: int) -> LogisticRegressionCV:
    """L2 logistic regression, ``C`` from :data:`C_GRID` by 5-fold stratified CV on weighted F1."""
    return LogisticRegressionCV(Cs=list(C_GRID), cv=5, class_weight="balanced" if balanced else None,
                                scoring=make_scorer(f1_score, average="weighted", zero_division=0), max_iter=2000,
                                l1_ratios=(0.0,), random_state=seed, use_legacy_attributes=False)


def fit_majority(train_y: np.ndarray) -> DummyClassifier:
    """Always the most frequent class of ``train_y`` (N,); ``predict`` takes any (N', ...) array."""
    return DummyClassifier(strategy="most_frequent").fit(np.zeros((len(train_y), 1)), np.asarray(train_y))


def fit_linear_probe(train_x: np.ndarray, train_y: np.ndarray, *, balanced: bool = True, seed: int = 0) -> Pipeline:
    """Standardised (N, D) features + :func:`_logistic_regression`, class weights "balanced" or none;
    ValueError from scikit-learn, e.g. for a single class."""
    return make_pipeline(StandardScaler(), _logistic_regression(balanced, seed)).fit(train_x, train_y)


def fit_tfidf_probe(train_texts: Sequence[str], train_y: np.ndarray, *, seed: int = 0) -> Pipeline:
    """TF-IDF of word uni- and bigrams + balanced :func:`_logistic_regression`; ValueError from
    scikit-learn, e.g. when no word occurs twice."""
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    return make_pipeline(vectorizer, _logistic_regression(True, seed)).fit(list(train_texts), train_y)
