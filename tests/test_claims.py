"""The claims pipeline on the smoke profile: cross-validation runs, variants on paired runs, baselines, claims,
selection.

The central test is the protocol's promise: a run's test fold is read by no choice. The same study is run twice,
the second time with every label of the first run's test fold changed; everything that run's training, early
stopping and choices produce must be identical, only its test scores differ.
"""

import shutil

import numpy as np
import pandas as pd
import pytest

from msa_utils.config.labels import LABELS
from msa_utils.config.profiles import get_profile
from msa_utils.data.folds import fold_counts, make_folds, save_folds
from msa_utils.data.posts import PostTable, build_posts, save_posts, usable
from msa_utils.experiments import claims, compare, dataset, predict, variants
from msa_utils.report import summary

NAMES = ("full", "no_image", "no_text", "weighted_loss", "linear_head")

# the probes' cross-validation on a small training part has classes of fewer than 5 posts
pytestmark = pytest.mark.filterwarnings("ignore:The least populated class:UserWarning")


def _run(cfg, posts, report, folds):
    save_posts(PostTable(posts, report), cfg.paths)
    save_folds(folds, cfg.paths.splits)
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
    folds = make_folds(labelled["guid"].to_numpy(), labelled["label"].to_numpy(int),
                       labelled["content_group"].to_numpy(), cfg.data.folds, cfg.data.repeats, cfg.seed)
    first = _run(cfg, posts, built.report, folds)
    # the same study with every label of run (0, 0)'s test fold changed
    other = get_profile("smoke", results_dir=str(root / "b"), cache_dir=str(root / "cache"))
    changed = posts.copy()
    in_test = changed["guid"].isin(folds.loc[folds["fold"] == 0, "guid"])
    changed.loc[in_test, "label"] = (changed.loc[in_test, "label"] + 1) % 3
    changed.loc[in_test, "tag"] = [LABELS[int(i)] for i in changed.loc[in_test, "label"]]
    second = _run(other, changed, built.report, folds)
    return cfg, other, folds, posts, first, second


def test_each_run_has_disjoint_parts_and_no_content_crosses_them(study):
    cfg, _, folds, posts, (data, _, _), _ = study
    assert sorted(folds["guid"]) == sorted(data.labels.index)  # every labelled post in one fold per repeat
    group = posts.set_index("guid")["content_group"]
    for repeat, fold in data.runs():
        run = data.run(repeat, fold)
        parts = {part: set(run.features[part].guids.tolist()) for part in dataset.PARTS}
        assert parts["test"] == set(folds.loc[folds["fold"] == fold, "guid"])
        assert set().union(*(parts[p] for p in dataset.LABELLED_PARTS)) == set(data.labels.index)
        groups = {part: set(group.loc[list(guids)]) for part, guids in parts.items() if part != "unlabelled"}
        assert sum(map(len, groups.values())) == len(set().union(*groups.values())), (repeat, fold)


def test_every_variant_ran_on_the_same_paired_runs(study):
    cfg, _, _, _, (data, _, _), _ = study
    runs = claims.load_runs(cfg.paths)
    assert sorted(runs["variant"].unique()) == sorted(NAMES)
    keys = runs.groupby("variant")[["repeat", "fold", "seed", "n_train", "n_val", "n_test"]].apply(
        lambda r: tuple(map(tuple, r.to_numpy())))
    assert keys.nunique() == 1 and len(keys.iloc[0]) == cfg.data.folds * cfg.data.repeats
    predictions = pd.concat([claims.load_predictions(cfg.paths, name, part) for name in NAMES for part in ("val", "test")])
    guids = predictions.groupby(["model", "repeat", "fold", "part"])["guid"].apply(lambda g: tuple(sorted(g)))
    assert guids.groupby(level=["repeat", "fold", "part"]).nunique().eq(1).all()  # same val and test posts per run
    frame = claims.load_predictions(cfg.paths, "full", "unlabelled")
    assert sorted(frame["guid"].unique()) == sorted(data.unlabelled.tolist())
    assert np.allclose(frame[[f"p_{c}" for c in LABELS]].sum(axis=1), 1.0, atol=1e-4)


def test_a_runs_test_fold_is_read_by_no_choice(study):
    cfg, other, _, _, _, _ = study
    first = lambda frame: frame[(frame["repeat"] == 0) & (frame["fold"] == 0)].reset_index(drop=True)  # noqa: E731
    for name in NAMES:
        a, b = (first(pd.read_csv(c.paths.metrics / "runs" / f"{name}.csv")) for c in (cfg, other))
        kept = [c for c in a.columns if not c.startswith("test_") and c != "mean_epoch_seconds"]
        pd.testing.assert_frame_equal(a[kept], b[kept])  # best epochs, validation scores
        ha, hb = (first(pd.read_csv(c.paths.metrics / "runs" / f"{name}_history.csv")).drop(columns="seconds")
                  for c in (cfg, other))
        pd.testing.assert_frame_equal(ha, hb)  # training and early stopping never saw the test labels
        pa, pb = (first(pd.read_csv(c.paths.predictions / "runs" / f"{name}.csv", keep_default_na=False))
                  for c in (cfg, other))
        pd.testing.assert_frame_equal(pa.drop(columns="gold"), pb.drop(columns="gold"))  # same models
    ba, bb = (first(pd.read_csv(c.paths.metrics / "baselines.csv")) for c in (cfg, other))
    kept = [c for c in ba.columns if not c.startswith("test_")]
    pd.testing.assert_frame_equal(ba[kept], bb[kept])  # the probes' C: chosen on training data only
    # ... while the test scores did change: the labels were read, by the scoring only
    a, b = (first(pd.read_csv(c.paths.metrics / "runs" / "full.csv"))["test_accuracy"] for c in (cfg, other))
    assert not np.allclose(a, b)


def test_claims_table_rows_are_corrected_t_tests_of_the_paired_run_differences(study):
    cfg, _, _, _, (_, table, _), _ = study
    assert set(table["id"]) == {c.id for c in claims.CLAIMS}  # every claim listed, tested or why not
    tested = {"1a", "1a-m", "1a-t", "2a", "2b", "3", "4a", "5d", "P1", "P2"}  # the claims whose models ran
    assert set(table.loc[table["p"].notna(), "id"]) == tested
    rows = table.set_index("id")
    assert "no runs on the current folds" in rows.loc["5a", "note"]
    assert "not pooled" in rows.loc["2b-g", "note"]  # smoke's 64 px images give a 2 x 2 map: nothing to unpool
    assert rows.loc["1b", "verdict"] == claims.PROXY_WORDS[claims.NOT_TESTED]  # smoke trains 2 epochs
    assert rows.loc["6a", "verdict"] == "not testable on the proxy" and "random" in rows.loc["6a", "note"]
    assert "whole encoders" in rows.loc["6b", "note"]  # listed with the reason though never run
    assert set(rows.drop("1b")["verdict"]) <= set(claims.PROXY_WORDS.values())
    runs = claims.load_runs(cfg.paths).set_index(["variant", "repeat", "fold"])["test_weighted_f1"]
    differences = (runs.loc["full"] - runs.loc["no_image"]).to_numpy()
    expected = compare.corrected_t(differences, _ratio(cfg))
    assert rows.loc["2a", ["difference", "low", "high", "p"]].tolist() == pytest.approx(
        [expected.estimate, expected.low, expected.high, expected.p])
    family = rows[rows["family"] & rows["p"].notna()]
    assert family["p_holm"].tolist() == pytest.approx(compare.holm(family["p"].to_numpy()).tolist())
    assert rows.loc[~rows["family"], "p_holm"].isna().all()  # sensitivity rows stay outside the family
    assert (cfg.paths.results / "claims.md").read_text().count("\n") == len(table) + 1


def _ratio(cfg):
    runs = claims.load_runs(cfg.paths, ["full"])
    return float((runs["n_test"] / runs["n_train"]).mean())


def test_report_and_readme_block_show_the_claims(study):
    cfg, _, folds, posts, (_, table, selection), _ = study
    test_counts = pd.read_csv(cfg.paths.predictions / "test_predictions.txt")["tag"].value_counts()
    counts = fold_counts(posts, folds)
    assert counts.loc["total", "labelled"] == len(folds)
    text = summary.write_report(cfg, pd.DataFrame({"count": [1]}), counts, test_counts, table).read_text()
    assert "## The paper's claims (test folds)" in text and f"`{selection['model']}`" in text
    block = summary.readme_results(cfg.paths.results, "smoke")
    assert claims.claims_markdown(table[~table["id"].str.contains("-")], notes=False) in block
    assert "corrected resampled t" in block and "1a-m" in block


def test_a_claim_whose_models_have_the_same_settings_is_not_tested(study):
    cfg = study[0]
    recipe_is_linear = cfg.replace(head="linear")
    table = claims.claims_table(recipe_is_linear).set_index("id")
    assert "same settings" in table.loc["5d", "note"] and table.loc["5d", "verdict"].startswith("not testable")
    assert not table.loc["2a", "verdict"].startswith("not testable")


def test_each_profile_runs_the_variants_of_the_claims_it_can_test():
    cpu, paper = claims.needed_variants(get_profile("cpu")), claims.needed_variants(get_profile("paper"))
    assert "frozen_fusion" not in cpu and "frozen_fusion" in paper  # 6a: a random fusion, frozen, can only hurt
    assert "text_top_layer" not in cpu + paper  # 6b: whole encoders in the paper, not one layer
    assert "no_text_full_grid" in cpu and "no_text_full_grid" not in paper  # FLAVA's image tokens are never pooled
    assert {"full", "no_image", "no_text", "same_size_resampling", "no_image_zero_states"} <= set(cpu) & set(paper)
    assert len(cpu) == 14 and len(paper) == 14


def test_runs_of_other_folds_are_left_out_with_a_warning(study, tmp_path):
    cfg = study[0]
    other = cfg.replace(results_dir=str(tmp_path))
    shutil.copytree(cfg.paths.splits, other.paths.splits)
    shutil.copytree(cfg.paths.metrics / "runs", other.paths.metrics / "runs")
    pd.DataFrame({"variant": ["frozen_fusion"] * 3, "seed": [0, 1, 2]}).to_csv(  # an older protocol's file
        other.paths.metrics / "runs" / "frozen_fusion.csv", index=False)
    with pytest.warns(UserWarning, match="frozen_fusion.csv holds other runs"):
        runs = claims.load_runs(other.paths)
    assert sorted(runs["variant"].unique()) == sorted(NAMES)
