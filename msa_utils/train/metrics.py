"""Evaluation metrics from :mod:`sklearn.metrics`: the paper's accuracy and weighted F1, macro F1 and per-class F1
of (N,) class ids in :data:`msa_utils.LABELS` order (intervals: :mod:`msa_utils.experiments.compare`)."""

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

from msa_utils.config.labels import LABELS

CLASS_IDS = list(range(len(LABELS)))


def weighted_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """The paper's headline F1: the classes' F1 weighted by their gold support, over all three
    classes (a class absent from both arrays counts 0)."""
    return float(f1_score(y_true, y_pred, labels=CLASS_IDS, average="weighted", zero_division=0))


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """``{"accuracy", "weighted_f1", "macro_f1", "f1_positive", "f1_negative", "f1_neutral"}``, each in [0, 1];
    a class absent from both arrays has F1 0 and is left out of the macro mean. ValueError if the arrays differ
    in length or are empty."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape or y_true.size == 0:
        raise ValueError(f"need two equal, non-empty label arrays, got {y_true.shape} and {y_pred.shape}")
    per_class = f1_score(y_true, y_pred, labels=CLASS_IDS, average=None, zero_division=0)
    return {"accuracy": float(accuracy_score(y_true, y_pred)), "weighted_f1": weighted_f1(y_true, y_pred),
            "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
            **{f"f1_{name}": float(f) for name, f in zip(LABELS, per_class)}}


def confusion(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """(3, 3) confusion matrix, rows gold, columns predicted."""
    return confusion_matrix(y_true, y_pred, labels=CLASS_IDS)
