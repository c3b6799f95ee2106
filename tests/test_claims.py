"""The claims pipeline on the smoke profile: parts, variants over seeds, baselines, claims, selection.

The central test is the protocol's promise: the held-out test part is read by no choice. The
same study is run twice, the second time with every test-part label changed; everything that
training, early stopping and the choices produce must be identical, only the test scores differ.
"""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from msa_utils.config.labels import LABELS
from msa_utils.experiments import claims, dataset, predict, variants
from msa_utils.report import summary
from msa_utils.train.metrics import weighted_f1
from msa_utils.data.posts import PostTable, build_posts, save_posts, split_counts, usable
from msa_utils.config.profiles import get_profile
from msa_utils.data.splits import save_split, study_split

NAMES = ("full", "no_image", "no_text", "weighted_loss", "linear_head")

# the probes' cross-validation on a 38-post training part has classes of fewer than 5 posts
pytestmark = pytest.mark.filterwarnings("ignore:The least populated class:UserWarning")


def _run(cfg, posts, report, split):
    save_posts(PostTable(posts, report), cfg.paths)
    save_split(split, cfg.paths.splits)
    data = dataset.prepare(cfg)
    dataset.write_backbone_card(data)
    variants.run_baselines(data)
    variants.run_variants(data, NAMES, progress=False)
    table = claims.write_claims(cfg)
    selection = predict.write_selected_predictions(data)
    return data, table, selection


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("claims")
    cfg = get_profile("smoke", results_dir=str(root / "a"), cache_dir=str(root / "cache"))
    built = build_posts(cfg)
    posts = built.posts
    labelled = posts[(posts["split"] == "train") & usable(posts)]
    split = study_split(labelled["guid"].to_numpy(), labelled["label"].to_numpy(int),
                        labelled["content_group"].to_numpy(), seed=cfg.seed)
    first = _run(cfg, posts, built.report, split)
    # the same study with every label of the test part changed
    other = get_profile("smoke", results_dir=str(root / "b"), cache_dir=str(root / "cache"))
    changed = posts.copy()
    in_test = changed["guid"].isin(split["test"])
    changed.loc[in_test, "label"] = (changed.loc[in_test, "label"] + 1) % 3
    changed.loc[in_test, "tag"] = [LABELS[int(i)] for i in changed.loc[in_test, "label"]]
    second = _run(other, changed, built.report, split)
    return cfg, other, split, posts, first, second


def test_parts_are_disjoint_and_no_content_crosses_them(study):
    cfg, _, split, posts, (data, _, _), _ = study
    parts = {part: set(data.features[part].guids.tolist()) for part in dataset.PARTS}
    for a in dataset.PARTS:
        for b in dataset.PARTS:
            assert a == b or not parts[a] & parts[b], (a, b)
    assert parts["test"] == set(split["test"].tolist())
    group = posts.set_index("guid")["content_group"]
    groups = {part: set(group.loc[list(guids)]) for part, guids in parts.items() if part != "unlabelled"}
    assert not (groups["train"] & groups["val"] or groups["train"] & groups["test"] or groups["val"] & groups["test"])


def test_the_test_part_is_read_by_no_choice(study):
    cfg, other, _, _, (_, _, selection), (_, _, selection_b) = study
    for name in NAMES:
        a = pd.read_csv(cfg.paths.metrics / "runs" / f"{name}.csv")
        b = pd.read_csv(other.paths.metrics / "runs" / f"{name}.csv")
        kept = [c for c in a.columns if not c.startswith("test_") and c != "mean_epoch_seconds"]
        pd.testing.assert_frame_equal(a[kept], b[kept])  # best epochs, validation scores
        ha = pd.read_csv(cfg.paths.metrics / "runs" / f"{name}_history.csv").drop(columns="seconds")
        hb = pd.read_csv(other.paths.metrics / "runs" / f"{name}_history.csv").drop(columns="seconds")
        pd.testing.assert_frame_equal(ha, hb)  # training and early stopping never saw the test labels
        pa = pd.read_csv(cfg.paths.predictions / "runs" / f"{name}.csv", keep_default_na=False)
        pb = pd.read_csv(other.paths.predictions / "runs" / f"{name}.csv", keep_default_na=False)
        pd.testing.assert_frame_equal(pa.drop(columns="gold"), pb.drop(columns="gold"))  # same models
    ba = pd.read_csv(cfg.paths.metrics / "baselines.csv", index_col="baseline")
    bb = pd.read_csv(other.paths.metrics / "baselines.csv", index_col="baseline")
    kept = [c for c in ba.columns if not c.startswith("test_")]
    pd.testing.assert_frame_equal(ba[kept], bb[kept])  # the probes' C: chosen on training data only
    assert (selection["model"], selection["val_weighted_f1"]) == (selection_b["model"], selection_b["val_weighted_f1"])
    assert claims.better_probe(cfg.paths) == claims.better_probe(other.paths)
    # ... while the test scores did change: the labels were read, by the scoring only
    a = pd.read_csv(cfg.paths.metrics / "runs" / "full.csv")["test_accuracy"]
    b = pd.read_csv(other.paths.metrics / "runs" / "full.csv")["test_accuracy"]
    assert not np.allclose(a, b)


def test_every_variant_ran_with_the_profile_seeds(study):
    cfg, _, _, _, (data, _, _), _ = study
    runs = claims.load_runs(cfg.paths)
    assert sorted(runs["variant"].unique()) == sorted(NAMES)
    assert runs.groupby("variant")["seed"].apply(list).map(tuple).unique().tolist() == [(0, 1)]
    frame = claims.load_predictions(cfg.paths, "full", "unlabelled")
    assert sorted(frame["guid"].unique()) == sorted(data.features["unlabelled"].guids.tolist())
    probabilities = frame[[f"p_{c}" for c in LABELS]].to_numpy()
    assert np.allclose(probabilities.sum(1), 1.0, atol=1e-4)


def test_claims_table_differences_are_the_paired_mean_differences(study):
    cfg, _, _, _, (_, table, _), _ = study
    assert set(table["id"]) == {"1a", "1b", "2a", "2b", "3", "4a", "5d", "P1", "P2"}  # the claims whose models ran
    verdicts = table.set_index("id")["verdict"]
    assert verdicts["1b"] == claims.NOT_TESTED  # smoke trains 2 epochs: the paper's epochs 3 and 6 cannot occur
    assert set(verdicts.drop("1b")) <= {"supported", "contradicted", "inconclusive"}
    row = table.set_index("id").loc["2a"]
    _, gold, full = claims.prediction_matrix(cfg.paths, "full")
    _, _, no_image = claims.prediction_matrix(cfg.paths, "no_image")
    expected = np.mean([weighted_f1(gold, p) for p in full]) - np.mean([weighted_f1(gold, p) for p in no_image])
    assert row["difference"] == pytest.approx(expected)
    assert row["low"] <= row["difference"] <= row["high"]
    assert (cfg.paths.results / "claims.md").read_text().count("\n") == len(table) + 1


def test_report_and_readme_block_show_the_claims(study):
    cfg, _, split, posts, (_, table, selection), _ = study
    test_counts = pd.read_csv(cfg.paths.predictions / "test_predictions.txt")["tag"].value_counts()
    counts = split_counts(posts, split)
    assert counts.loc["total", "test"] == len(split["test"])
    text = summary.write_report(cfg, pd.DataFrame({"count": [1]}), counts, test_counts, table).read_text()
    assert "## The paper's claims (held-out test part)" in text and f"`{selection['model']}`" in text
    block = summary.readme_results(cfg.paths.results, "smoke")
    assert claims.claims_markdown(table, notes=False) in block and "held-out part of" in block


def test_a_claim_whose_models_have_the_same_settings_is_not_tested(study):
    cfg = study[0]
    recipe_is_linear = cfg.replace(head="linear")
    table = claims.claims_table(recipe_is_linear).set_index("id")
    assert table.loc["5d", "verdict"] == claims.NOT_TESTED and "same settings" in table.loc["5d", "note"]
    assert table.loc["2a", "verdict"] != claims.NOT_TESTED
