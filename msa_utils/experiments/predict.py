"""The study's prediction files for ``test_without_label.txt``.

:func:`write_test_predictions` writes a file in ``test_without_label.txt``'s own format from a
model's class probabilities of the unlabelled part, and ``predictions/unpredicted.csv`` naming
every guid that was not predicted; :func:`write_selected_predictions` chooses the model on
validation. The study writes two: ``test_predictions.txt`` from the model
chosen on validation (notebook 06) and ``test_predictions_paper_recipe.txt`` from the paper's
recipe (notebook 04). (Every model's probabilities of every part are in ``predictions/runs/``,
:mod:`msa_utils.experiments.variants`.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from msa_utils import io
from msa_utils.config.labels import LABELS
from msa_utils.data import reasons
from msa_utils.experiments import claims
from msa_utils.data.mvsa import LABEL_FILES, label_file_guids
from msa_utils.data.data_report import DataReport
from msa_utils.experiments.dataset import StudyData
from msa_utils.train.metrics import classification_metrics
from msa_utils.experiments.variants import VARIANTS


SELECTION_FILE = "selection.json"
"""Written under ``metrics/`` by :func:`write_selected_predictions`: the model chosen on validation."""


def write_test_predictions(data: StudyData, guids: np.ndarray, probabilities: np.ndarray,
                           filename: str = "test_predictions.txt") -> pd.DataFrame:
    """Write ``predictions/<filename>`` for every post of ``test_without_label.txt``.

    The file has ``test_without_label.txt``'s own format: header ``guid,tag``, one row per guid
    written in that file (each once, in the file's order), tags ``positive|negative|neutral``.
    A guid that was not predicted keeps the tag ``null`` and is listed in
    ``predictions/unpredicted.csv`` with the reasons from the data report: a post the model
    cannot read (no usable text or image), a guid excluded from the test split (also in
    ``train.txt``, or listed twice with different tags), or one left out of a smoke sample.

    Args:
        data: the study data (its unlabelled part: the usable posts of ``test_without_label.txt``).
        guids: ``(N,)`` the predicted posts: every post of the unlabelled part, in any order.
        probabilities: ``(N, 3)`` class probabilities (or logits) of ``guids``, e.g. the mean
            over a variant's seeds (:func:`msa_utils.experiments.claims.mean_probabilities`).
        filename: the file's name under ``predictions/``.

    Returns:
        The written table (``guid``, ``tag``).

    Raises:
        ValueError: if ``guids`` are not the unlabelled part's posts, or ``probabilities`` is not ``(N, 3)``.
    """
    paths = data.cfg.paths
    probabilities = np.asarray(probabilities)
    if sorted(np.asarray(guids).tolist()) != sorted(data.features["unlabelled"].guids.tolist()):
        raise ValueError("the predicted guids are not the posts of the unlabelled part")
    if probabilities.shape != (len(guids), len(LABELS)):
        raise ValueError(f"need ({len(guids)}, {len(LABELS)}) probabilities, got {probabilities.shape}")
    tags = dict(zip(np.asarray(guids).tolist(), (LABELS[i] for i in probabilities.argmax(1).tolist())))
    guids = label_file_guids(Path(data.cfg.data_dir) / LABEL_FILES["test"])
    table = pd.DataFrame({"guid": guids, "tag": [tags.get(g, "null") for g in guids]})
    io.write_csv(paths.predictions / filename, table)
    missing = [g for g in guids if g not in tags]
    report = DataReport.load(paths.data_report).to_frame()
    why = report["guid"].isin(missing) & ((report["action"] == "excluded") | (report["reason"] == reasons.NOT_IN_SAMPLE))
    why_by_guid = report[why].groupby("guid")["reason"].agg(lambda r: "; ".join(dict.fromkeys(r)))
    io.write_csv(paths.predictions / "unpredicted.csv", pd.DataFrame(
        {"guid": missing, "reason": [why_by_guid.get(g, "not usable (see data_report.csv)") for g in missing]}))
    return table


def write_selected_predictions(data: StudyData) -> dict:
    """Write ``test_predictions.txt`` from the model chosen on VALIDATION, and say which.

    The variant with the best mean validation weighted F1 over its seeds
    (:func:`msa_utils.experiments.claims.choose_model`; the test part plays no part in the choice) predicts
    with the mean of its seeds' class probabilities (:func:`msa_utils.experiments.claims.mean_probabilities`).
    Also writes ``metrics/selection.json`` (:data:`SELECTION_FILE`): the model, its title, its
    seeds, its mean validation weighted F1, and the test-part scores of the seed average
    (reported, never used to choose).

    Returns:
        The content of ``metrics/selection.json``.

    Raises:
        FileNotFoundError: if no variant has run (notebooks 04-06).
    """
    paths = data.cfg.paths
    name = claims.choose_model(paths)
    runs = claims.load_runs(paths, [name])
    guids, probabilities = claims.mean_probabilities(paths, name, "unlabelled")
    write_test_predictions(data, guids, probabilities)
    test_guids, test_probabilities = claims.mean_probabilities(paths, name, "test")
    gold = pd.Series(data.labels["test"], index=data.features["test"].guids.numpy()).loc[test_guids].to_numpy()
    scores = classification_metrics(gold, test_probabilities.argmax(1))
    selection = {"model": name, "title": VARIANTS[name].title, "seeds": len(runs),
                 "val_weighted_f1": float(runs["val_weighted_f1"].mean()),
                 "test_accuracy": scores["accuracy"], "test_weighted_f1": scores["weighted_f1"],
                 "test_macro_f1": scores["macro_f1"]}
    io.write_json(paths.metrics / SELECTION_FILE, selection)
    return selection
