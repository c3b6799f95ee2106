"""The ``paper`` profile at FLAVA's real size, without the checkpoint, through notebooks 01-04.

A randomly initialised ``FlavaModel(FlavaConfig())`` (241 M parameters, the architecture of
``facebook/flava-full``; nothing downloaded) and a ``FlavaProcessor`` built from the
bert-base-uncased vocabulary are saved with ``save_pretrained``; the ``paper`` profile is pointed at
that folder on the CPU with a 32-post sample, 4 test posts, two folds and one epoch. The random weights make the
scores meaningless; what is checked is the path: 197 image tokens and 64 text tokens of width 768
into the 6-layer, 768-wide multimodal encoder, the 768 → 512 → 256 → 3 head, the checkpoint, the
predictions, and a report that names the folder actually loaded. About a minute and 6 GB of
memory on a 2-core machine (docs/paper-profile.md).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import save_random_flava
from msa_utils.features.feature_cache import MANIFEST_NAME, load_features
from msa_utils.io import read_json
from msa_utils.runner.study import run_study

pytestmark = pytest.mark.slow

TRAIN_POSTS, TEST_POSTS = 32, 4


@pytest.fixture(scope="module")
def full_size_flava(tmp_path_factory) -> Path:
    return save_random_flava(tmp_path_factory.mktemp("flava_full_size_random"))


@pytest.fixture(scope="module")
def results(full_size_flava, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("paper_run")
    overrides = {"device": "cpu", "flava_name_or_path": str(full_size_flava), "train_sample": TRAIN_POSTS,
                 "test_sample": TEST_POSTS, "folds": 2, "max_epochs": 1, "translate": False,
                 "results_dir": str(root / "results"), "cache_dir": str(root / "cache")}
    run_study("paper", overrides, only=["01", "02", "03", "04"])
    return root / "results"


def test_full_size_token_states_reach_the_cache(results):
    (cache,) = (results.parent / "cache").glob("features-flava-*")
    features = load_features(cache, read_json(cache / MANIFEST_NAME)["key"])
    posts = len(features)
    assert posts == TRAIN_POSTS + TEST_POSTS
    assert features.text_states.shape == (posts, 64, 768) and features.image_states.shape == (posts, 197, 768)


def test_the_paper_model_is_trained_and_saved(results):
    config = json.loads((results / "checkpoints" / "full" / "r0f0" / "config.json").read_text())
    assert (config["hidden_size"], config["num_layers"], config["num_heads"]) == (768, 6, 12)
    assert (config["head"], config["head_hidden"], config["num_labels"], config["dropout"]) == ("mlp", [512, 256], 3, 0.3)
    run = pd.read_csv(results / "metrics" / "runs" / "full.csv")
    assert run[["fold", "seed", "epochs_run"]].values.tolist() == [[0, 0, 1], [1, 1, 1]]
    assert run["trainable_parameters"].tolist() == [44_236_547] * 2  # projections + multimodal encoder + head


def test_predictions_and_a_report_that_names_the_checkpoint_loaded(results, full_size_flava):
    predictions = pd.read_csv(results / "predictions" / "test_predictions_paper_recipe.txt", keep_default_na=False)
    predicted = predictions[predictions["tag"] != "null"]
    assert len(predicted) == TEST_POSTS and set(predicted["tag"]) <= {"positive", "negative", "neutral"}
    card = json.loads((results / "metrics" / "backbone.json").read_text())
    assert str(full_size_flava) in card["description"] and "facebook/flava-full" not in card["description"]
