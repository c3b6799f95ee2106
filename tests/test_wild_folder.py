"""Posts as they come from phones and the web (``tests/data/mvsa_wild``) run through notebooks 01-04.

The folder's README lists each case and its correct result; this test checks every row of it on
the study's own outputs (``posts.csv``, ``data_report.csv``, the folds, the predictions) after
a smoke run with seed 2, whose example grid shows the post with two dollar signs.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from msa_utils.data.data_report import DataReport
from msa_utils.runner.study import run_study

pytestmark = pytest.mark.slow  # runs notebooks 01-04

WILD = Path(__file__).parent / "data" / "mvsa_wild"


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("wild")
    overrides = {"data_dir": str(WILD), "results_dir": str(root / "results"), "cache_dir": str(root / "cache"),
                 "train_sample": None, "test_sample": None, "seed": 2}
    run_study("smoke", overrides, only=["01", "02", "03", "04"])
    return root / "results"


def test_every_case_is_handled_and_reported(results):
    posts = pd.read_csv(results / "posts.csv", keep_default_na=False).set_index("guid")
    report = DataReport.load(results / "data_report.csv").to_frame()
    named = report.groupby("guid")["reason"].apply(set)
    assert tuple(posts.loc[9501, ["width", "height"]]) == (60, 80)  # upright
    assert "exif_orientation_applied" in named[9501]
    assert "format_mismatch" not in named.get(9503, set())
    assert "mode_I;16_to_RGB" in named[9504]
    assert posts.loc[9506, "text_clean"] == "don’t stop me now, i’m having such a good time"
    assert posts.loc[9507, "text_clean"] == "“best day ever” – can’t stop smiling..."
    assert {"decoded_windows_1252"} <= named[9506] & named[9507]
    assert posts.loc[[9506, 9507], "has_text"].all()
    assert posts.loc[9508, "text_clean"] == "fish & chips tonight <3 friday"
    assert posts.loc[9509, "text_clean"] == "great day at the beach sunny"
    assert posts.loc[9510, "text_clean"] == "" and "empty_after_cleaning" in named[9510]
    assert posts.loc[9512, "text_clean"] == "look at this so cute! more at"
    assert posts.loc[9514, "text_raw"] == "Won $5 at #bingo and $10 more!"
    assert named[9517] == named[9518] == {"duplicate_content_conflicting_labels"}
    assert all("duplicate_content" in named[guid] for guid in (9519, 9520, 9521))
    assert (results / "figures" / "01_examples.png").is_file()


def test_copies_stay_in_one_fold(results):
    fold = pd.read_csv(results / "splits" / "folds.csv").set_index("guid")["fold"]
    assert fold[9517] == fold[9518]
    assert fold[9519] == fold[9520] == fold[9521]


def test_the_repaired_posts_are_trained_on_and_every_test_post_predicted(results):
    used = set(pd.read_csv(results / "splits" / "folds.csv")["guid"])
    assert {9501, 9503, 9504, 9506, 9507, 9508, 9509, 9512, 9514} <= used
    predictions = pd.read_csv(results / "predictions" / "test_predictions_paper_recipe.txt")
    assert predictions["guid"].tolist() == [8, 1576, 2320, 4912]
    assert set(predictions["tag"]) <= {"positive", "negative", "neutral"}
