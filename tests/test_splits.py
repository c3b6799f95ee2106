"""The study's parts (held-out test, train, val: stratified, grouped by content) and re-sampling."""

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from msa_utils.config.labels import LABEL2ID
from msa_utils.data import reasons
from msa_utils.data.posts import build_posts
from msa_utils.config.profiles import DEFAULT_DATA_DIR, get_profile
from msa_utils.data.splits import (
    content_groups,
    copies_across_parts,
    grouped_split,
    inverse_frequency_weights,
    load_split,
    make_sampler,
    resampling_table,
    save_split,
    straddling_posts,
    study_split,
)

DUPLICATES = Path(__file__).parent / "data" / "duplicates"


@pytest.fixture(scope="module")
def train_labels():
    frame = pd.read_csv(DEFAULT_DATA_DIR / "train.txt")
    return frame["guid"].to_numpy(), frame["tag"].map(LABEL2ID).to_numpy()


def test_parts_are_stratified_disjoint_seeded_and_of_the_stated_sizes(train_labels):
    guids, labels = train_labels
    groups = np.arange(len(guids))  # no shared content: plain stratified folds
    split = study_split(guids, labels, groups, test_fraction=0.2, val_fraction=0.2, seed=0)
    assert [len(split[p]) for p in ("train", "val", "test")] == [2560, 640, 800]
    assert not (set(split["train"]) & set(split["val"]) or set(split["train"]) & set(split["test"])
                or set(split["val"]) & set(split["test"]))
    assert sorted(np.concatenate(list(split.values()))) == sorted(guids)
    by_guid = dict(zip(guids, labels))
    test_counts = np.bincount([by_guid[g] for g in split["test"]], minlength=3)
    # 2388 / 1193 / 419 posts -> 20% each, to within one post
    assert np.abs(test_counts - np.array([2388, 1193, 419]) * 0.2).max() <= 1
    again = study_split(guids, labels, groups, seed=0)
    assert all(np.array_equal(again[p], split[p]) for p in split)
    assert not np.array_equal(study_split(guids, labels, groups, seed=1)["test"], split["test"])


def test_content_groups_join_same_text_or_same_image_transitively():
    texts = ["a", " a ", "b", "c", "", "", None]
    images = ["h1", "h2", "h2", "h3", "h4", "h5", "h5"]
    groups = content_groups(texts, images)
    # 0-1 share a text, 1-2 an image: one group; empty texts relate nothing; 5-6 share an image
    assert groups[0] == groups[1] == groups[2]
    assert len({groups[0], groups[3], groups[4], groups[5]}) == 4 and groups[5] == groups[6]


def test_no_group_straddles_parts_for_any_seed(train_labels):
    guids, labels = train_labels
    rng = np.random.default_rng(0)
    groups = rng.integers(0, 1500, len(guids))  # many groups of several posts, labels mixed
    for seed in range(5):
        split = study_split(guids, labels, groups, seed=seed)
        positions = [np.flatnonzero(np.isin(guids, split[p])) for p in ("train", "val", "test")]
        assert len(straddling_posts(groups, positions)) == 0
    plain = copies_across_parts(labels, groups, positions, fraction=0.2, seed=0)
    assert plain.iloc[2] == 0 and plain.iloc[3] > 1000  # a plain split scatters almost every group


@pytest.fixture(scope="module")
def with_duplicates(tmp_path_factory):
    """The five copies of tests/data/duplicates beside 60 posts of the shipped data."""
    root = tmp_path_factory.mktemp("duplicates")
    shutil.copytree(DUPLICATES / "data", root / "data")
    shipped = pd.read_csv(DEFAULT_DATA_DIR / "train.txt").head(60)
    for guid in shipped["guid"]:
        for ext in ("txt", "jpg"):
            shutil.copy(DEFAULT_DATA_DIR / "data" / f"{guid}.{ext}", root / "data")
    train = pd.concat([shipped, pd.read_csv(DUPLICATES / "train.txt")])
    train.to_csv(root / "train.txt", index=False)
    (root / "test_without_label.txt").write_text("guid,tag\n")
    cfg = get_profile("smoke", data_dir=str(root), results_dir=str(root / "results"), train_sample=None,
                      test_sample=None)
    return build_posts(cfg)


def test_copies_are_reported_and_kept_in_one_part_for_every_seed(with_duplicates):
    posts, report = with_duplicates.posts, with_duplicates.report.to_frame()
    reason_of = report.set_index("guid")["reason"]
    assert {reason_of[9517], reason_of[9518]} == {reasons.DUPLICATE_CONTENT_CONFLICTING_LABELS}
    assert {reason_of[g] for g in (9519, 9520, 9521)} == {reasons.DUPLICATE_CONTENT}
    assert "9518 (negative)" in report.loc[report["guid"] == 9517, "detail"].iloc[0]
    labelled = posts[posts["split"] == "train"].reset_index(drop=True)
    groups = labelled["content_group"].to_numpy()
    for seed in range(8):
        split = study_split(labelled["guid"].to_numpy(), labelled["label"].to_numpy(int), groups, seed=seed)
        part_of = {g: p for p, gs in split.items() for g in gs}
        assert part_of[9517] == part_of[9518], seed
        assert part_of[9519] == part_of[9520] == part_of[9521], seed


def test_grouped_split_refuses_too_few_groups():
    with pytest.raises(ValueError, match="at least 5 groups"):
        grouped_split(np.array([0, 0, 1, 1, 2, 2]), np.array([0, 0, 1, 1, 2, 2]), 0.2)


def test_split_round_trips_through_files(tmp_path, train_labels):
    guids, labels = train_labels
    split = study_split(guids, labels, np.arange(len(guids)), seed=0)
    save_split(split, tmp_path)
    loaded = load_split(tmp_path)
    assert all(np.array_equal(loaded[k], split[k]) for k in ("train", "val", "test"))
    (tmp_path / "test_guids.txt").write_text(f"{split['train'][0]}\n")
    with pytest.raises(ValueError, match="both train and test"):
        load_split(tmp_path)
    with pytest.raises(FileNotFoundError, match="03_resample"):
        load_split(tmp_path / "missing")


def test_inverse_frequency_weights_balance_classes(train_labels):
    _, labels = train_labels
    weights = inverse_frequency_weights(labels)
    per_class = [weights[labels == c].sum().item() for c in range(3)]
    assert per_class == pytest.approx([1.0, 1.0, 1.0])
    with pytest.raises(ValueError):
        inverse_frequency_weights(np.array([0, 3]))


def test_resampling_draws_classes_about_equally(train_labels):
    _, labels = train_labels
    table = resampling_table(labels, seed=0, epochs=5)
    assert table["before"].tolist() == [2388, 1193, 419]
    assert table["after"].sum() == pytest.approx(len(labels))
    # each class about a third of the draws (binomial sd of a share over 20,000 draws ~0.003)
    assert table["after_share"].to_numpy() == pytest.approx([1 / 3] * 3, abs=0.02)


def test_sampler_is_reproducible_with_its_own_generator(train_labels):
    _, labels = train_labels
    a = list(iter(make_sampler(labels, seed=3)))
    b = list(iter(make_sampler(labels, seed=3)))
    c = list(iter(make_sampler(labels, seed=4)))
    assert a == b and a != c


def test_split_says_why_it_cannot_split():
    with pytest.raises(ValueError, match="no usable labelled post"):
        grouped_split(np.array([], dtype=int), np.array([], dtype=int), 0.2)
    with pytest.warns(UserWarning, match="single"), pytest.raises(ValueError, match="every class present has 1"):
        grouped_split(np.array([0, 1, 2]), np.arange(3), 0.2)


def test_a_class_with_a_single_post_trains_and_is_warned_about():
    labels = np.array([0] * 10 + [1] * 10 + [2])
    with pytest.warns(UserWarning, match=r"class \['neutral'\] has a single"):
        kept, held = grouped_split(labels, np.arange(21), 0.2)
    assert 20 in kept and 20 not in held
    assert sorted(np.concatenate([kept, held])) == list(range(21))


def test_a_class_with_no_post_is_warned_about(train_labels):
    guids, labels = train_labels
    keep = labels != LABEL2ID["neutral"]
    with pytest.warns(UserWarning, match=r"class \['neutral'\]"):
        grouped_split(labels[keep], np.arange(keep.sum()), 0.2)
