"""The prediction files for ``test_without_label.txt``: from the model chosen on validation (notebook 06)
and from the paper's recipe (notebook 04), each the mean of its fold models' probabilities."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from msa_utils import io
from msa_utils.config.labels import LABELS
from msa_utils.data import reasons
from msa_utils.experiments import claims
from msa_utils.data.sources import source_guids
from msa_utils.data.data_report import DataReport
from msa_utils.experiments.dataset import StudyData
from msa_utils.train.metrics import classification_metrics
from msa_utils.experiments.variants import VARIANTS

SELECTION_FILE = "selection.json"
logger = logging.getLogger(__name__)


def write_test_predictions(data: StudyData, guids: np.ndarray, probabilities: np.ndarray,
                           filename: str = "test_predictions.txt") -> pd.DataFrame:
    """Write ``predictions/<filename>`` as ``test_without_label.txt`` (``guid,tag``, the order of the posts to predict
    in the source: :func:`~msa_utils.data.sources.source_guids`) from ``probabilities`` (N, 3) of the unlabelled
    part's ``guids`` (N,), and ``predictions/unpredicted.csv`` (guids left at ``null``, with the data report's
    reasons); return the table. With no post to predict both hold only their header (logged as a warning).
    ValueError for other guids or a bad shape."""
    paths = data.cfg.paths
    probabilities = np.asarray(probabilities)
    if sorted(np.asarray(guids).tolist()) != sorted(data.unlabelled.tolist()):
        raise ValueError("the predicted guids are not the posts of the unlabelled part")
    if probabilities.shape != (len(guids), len(LABELS)):
        raise ValueError(f"need ({len(guids)}, {len(LABELS)}) probabilities, got {probabilities.shape}")
    tags = dict(zip(np.asarray(guids).tolist(), (LABELS[i] for i in probabilities.argmax(1).tolist())))
    guids = source_guids(data.cfg.data.data_dir)["test"]
    if not guids:
        logger.warning("no post to predict (no test_without_label.txt, or no unlabelled row): %s holds only its "
                       "header", paths.predictions / filename)
    table = pd.DataFrame({"guid": guids, "tag": [tags.get(g, "null") for g in guids]})
    io.write_csv(paths.predictions / filename, table)
    missing = [g for g in guids if g not in tags]
    why = DataReport.load(paths.data_report).why_left_out(missing, also=(reasons.NOT_IN_SAMPLE,))
    io.write_csv(paths.predictions / "unpredicted.csv", pd.DataFrame({"guid": missing, "reason": why}))
    return table


def write_selected_predictions(data: StudyData) -> dict:
    """Write ``test_predictions.txt`` from the mean probabilities of the fold models of the variant chosen on
    validation, and ``metrics/selection.json`` (model, title, runs, val weighted F1, and the test-fold scores of its
    out-of-fold predictions, averaged over repeats); return the latter. FileNotFoundError if no variant has run."""
    paths = data.cfg.paths
    name = claims.choose_model(paths)
    runs = claims.load_runs(paths, [name])
    guids, probabilities = claims.mean_probabilities(paths, name, "unlabelled")
    write_test_predictions(data, guids, probabilities)
    test_guids, test_probabilities = claims.mean_probabilities(paths, name, "test")
    scores = classification_metrics(data.labels.loc[test_guids].to_numpy(), test_probabilities.argmax(1))
    selection = {"model": name, "title": VARIANTS[name].title, "runs": len(runs),
                 "val_weighted_f1": float(runs["val_weighted_f1"].mean()),
                 "test_accuracy": scores["accuracy"], "test_weighted_f1": scores["weighted_f1"],
                 "test_macro_f1": scores["macro_f1"]}
    io.write_json(paths.metrics / SELECTION_FILE, selection)
    return selection
