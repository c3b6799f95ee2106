"""Prediction files: validation predictions of every model, and the test predictions.

- :func:`write_val_predictions`: ``predictions/val_<name>.csv`` (guid, gold, pred);
- :func:`predict_test`: ``predictions/test_predictions.txt`` in ``test_without_label.txt``'s own
  format, and ``predictions/unpredicted.csv`` naming every test guid that was not predicted.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from . import LABELS, io, reasons
from .data import LABEL_FILES, label_file_guids
from .data_report import DataReport
from .dataset import StudyData
from .runtime import resolve_device
from .train import predict_logits


def write_val_predictions(data: StudyData, name: str, pred: np.ndarray) -> Path:
    """Write ``predictions/val_<name>.csv``: columns ``guid, gold, pred`` (class names).

    Args:
        data: the study data (its validation part gives guids and gold labels).
        name: the model's name (a variant or a baseline).
        pred: ``(N_val,)`` predicted class ids, in the validation part's order.

    Returns:
        The path written.
    """
    frame = pd.DataFrame({
        "guid": data.features["val"].guids.numpy(),
        "gold": [LABELS[i] for i in data.labels["val"]],
        "pred": [LABELS[i] for i in pred],
    })
    return io.write_csv(data.cfg.paths.predictions / f"val_{name}.csv", frame)


def predict_test(data: StudyData, model: torch.nn.Module) -> pd.DataFrame:
    """Predict every post of ``test_without_label.txt`` and write ``predictions/test_predictions.txt``.

    The file has ``test_without_label.txt``'s own format: header ``guid,tag``, one row per guid
    written in that file (each once, in the file's order), tags ``positive|negative|neutral``.
    A test guid that was not predicted keeps the tag ``null`` and is listed in
    ``predictions/unpredicted.csv`` with the reasons from the data report: a post the model
    cannot read (no usable text or image), a guid excluded from the test split (also in
    ``train.txt``, or listed twice with different tags), or one left out of a smoke sample.

    Args:
        data: the study data (its test part: the usable test posts).
        model: a classifier on prepared features (e.g. the full variant's best epoch).

    Returns:
        The written table (``guid``, ``tag``).
    """
    paths = data.cfg.paths
    guids = label_file_guids(Path(data.cfg.data_dir) / LABEL_FILES["test"])
    logits = predict_logits(model, data.features["test"], device=resolve_device(data.cfg.device))
    tags = dict(zip(data.features["test"].guids.tolist(), (LABELS[i] for i in logits.argmax(1).tolist())))
    table = pd.DataFrame({"guid": guids, "tag": [tags.get(g, "null") for g in guids]})
    io.write_csv(paths.predictions / "test_predictions.txt", table)
    missing = [g for g in guids if g not in tags]
    report = DataReport.load(paths.data_report).to_frame()
    why = report["guid"].isin(missing) & ((report["action"] == "excluded") | (report["reason"] == reasons.NOT_IN_SAMPLE))
    why_by_guid = report[why].groupby("guid")["reason"].agg(lambda r: "; ".join(dict.fromkeys(r)))
    io.write_csv(paths.predictions / "unpredicted.csv", pd.DataFrame(
        {"guid": missing, "reason": [why_by_guid.get(g, "not usable (see data_report.csv)") for g in missing]}))
    return table
