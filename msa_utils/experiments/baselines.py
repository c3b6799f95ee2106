"""The baselines a fusion model has to clear, fitted on the training part: the majority class, TF-IDF
text + logistic regression, and the linear probe on the pooled frozen features (balanced or not)."""

from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np
import torch
from sklearn.dummy import DummyClassifier
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegressionCV
from sklearn.metrics import f1_score, make_scorer
from sklearn.model_selection import StratifiedGroupKFold
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


def _logistic_regression(balanced: bool, seed: int, y: np.ndarray, groups: np.ndarray) -> LogisticRegressionCV:
    """L2 logistic regression, ``C`` from :data:`C_GRID` on weighted F1 by a cross-validation of the (N,) labels
    ``y``, stratified and grouped by content ``groups`` (``StratifiedGroupKFold``): 5 folds, fewer where the largest
    class or the groups are fewer (small samples); ValueError where not even 2 are possible."""
    folds = min(5, len(np.unique(groups)), int(np.bincount(y).max()))
    if folds < 2:
        raise ValueError(f"choosing C needs 2 cross-validation folds: {len(y)} posts in {len(np.unique(groups))} groups")
    with warnings.catch_warnings():  # a class of fewer posts than folds (samples): scikit-learn still splits
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        folds = list(StratifiedGroupKFold(folds, shuffle=True, random_state=seed).split(y, y, groups))
    return LogisticRegressionCV(Cs=list(C_GRID), cv=folds, class_weight="balanced" if balanced else None,
                                scoring=make_scorer(f1_score, average="weighted", zero_division=0), max_iter=2000,
                                l1_ratios=(0.0,), random_state=seed, use_legacy_attributes=False)


def fit_majority(train_y: np.ndarray) -> DummyClassifier:
    """Always the most frequent class of ``train_y`` (N,); ``predict`` takes any (N', ...) array."""
    return DummyClassifier(strategy="most_frequent").fit(np.zeros((len(train_y), 1)), np.asarray(train_y))


def fit_linear_probe(train_x: np.ndarray, train_y: np.ndarray, groups: np.ndarray, *, balanced: bool = True,
                     seed: int = 0) -> Pipeline:
    """Standardised (N, D) features + :func:`_logistic_regression` (content ``groups`` (N,)), class weights
    "balanced" or none; ValueError from scikit-learn, e.g. for a single class or fewer than 5 groups."""
    model = _logistic_regression(balanced, seed, np.asarray(train_y), np.asarray(groups))
    return make_pipeline(StandardScaler(), model).fit(train_x, train_y)


def fit_tfidf_probe(train_texts: Sequence[str], train_y: np.ndarray, groups: np.ndarray, *, seed: int = 0) -> Pipeline:
    """TF-IDF of word uni- and bigrams + balanced :func:`_logistic_regression` (content ``groups`` (N,));
    ValueError from scikit-learn, e.g. when no word occurs twice."""
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    model = _logistic_regression(True, seed, np.asarray(train_y), np.asarray(groups))
    return make_pipeline(vectorizer, model).fit(list(train_texts), train_y)
