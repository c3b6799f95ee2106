"""The study's cross-validation folds and each run's parts (stratified, grouped by content), content groups and
re-sampling."""

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from msa_utils.config.labels import LABEL2ID
from msa_utils.data import reasons
from msa_utils.data.data_report import DataReport
from msa_utils.data.images import inspect_images
from msa_utils.data.posts import build_posts, usable
from msa_utils.config.profiles import DEFAULT_DATA_DIR, get_profile
from msa_utils.data.text import clean_text
from msa_utils.data.folds import load_folds, make_folds, run_parts, save_folds
from msa_utils.data.splits import (
    PHASH_MAX_DISTANCE,
    content_groups,
    copies_across_parts,
    epoch_draws,
    grouped_split,
    inverse_frequency_weights,
    make_sampler,
    resampling_table,
    straddling_posts,
)

DUPLICATES = Path(__file__).parent / "data" / "duplicates"


@pytest.fixture(scope="module")
def train_labels():
    frame = pd.read_csv(DEFAULT_DATA_DIR / "train.txt")
    return frame["guid"].to_numpy(), frame["tag"].map(LABEL2ID).to_numpy()


def _parts(folds, guids, labels, groups, repeat, fold, seed=0):
    return run_parts(folds, pd.Series(labels, index=guids), pd.Series(groups, index=guids), repeat, fold, 0.2, seed)


def test_folds_are_stratified_disjoint_seeded_and_test_every_post(train_labels):
    guids, labels = train_labels
    groups = np.arange(len(guids))  # no shared content: plain stratified folds
    folds = make_folds(guids, labels, groups, folds=5, repeats=2, seed=0)
    assert list(folds.columns) == ["guid", "repeat", "fold"] and len(folds) == 2 * len(guids)
    by_guid = dict(zip(guids, labels))
    for repeat, table in folds.groupby("repeat"):
        assert sorted(table["guid"]) == sorted(guids)  # every post tested once per repeat
        for fold, members in table.groupby("fold"):
            counts = np.bincount([by_guid[g] for g in members["guid"]], minlength=3)
            assert np.abs(counts - np.array([2388, 1193, 419]) * 0.2).max() <= 1  # 20% of each class, within one post
    first, second = (folds[folds["repeat"] == r].set_index("guid")["fold"] for r in (0, 1))
    assert (first != second.loc[first.index]).any()  # another shuffle per repeat
    pd.testing.assert_frame_equal(make_folds(guids, labels, groups, 5, 2, seed=0), folds)
    parts = _parts(folds, guids, labels, groups, 0, 3)
    assert [len(parts[p]) for p in ("train", "val", "test")] == [2560, 640, 800]
    assert sorted(np.concatenate(list(parts.values()))) == sorted(guids)
    assert not np.array_equal(_parts(folds, guids, labels, groups, 0, 3, seed=1)["val"], parts["val"])


def test_content_groups_join_same_text_or_same_image_transitively():
    texts = ["a", " a ", "b", "c", "", "", None]
    images = ["h1", "h2", "h2", "h3", "h4", "h5", "h5"]
    groups = content_groups(texts, images)
    # 0-1 share a text, 1-2 an image: one group; empty texts relate nothing; 5-6 share an image
    assert groups[0] == groups[1] == groups[2]
    assert len({groups[0], groups[3], groups[4], groups[5]}) == 4 and groups[5] == groups[6]


def test_no_group_straddles_folds_or_a_runs_parts_for_any_seed(train_labels):
    guids, labels = train_labels
    rng = np.random.default_rng(0)
    groups = rng.integers(0, 1500, len(guids))  # many groups of several posts, labels mixed
    for seed in range(3):
        folds = make_folds(guids, labels, groups, folds=5, seed=seed)
        fold_of = folds.set_index("guid").loc[guids, "fold"].to_numpy()
        assert len(straddling_posts(groups, [np.flatnonzero(fold_of == k) for k in range(5)])) == 0
        parts = _parts(folds, guids, labels, groups, 0, seed)
        assert len(straddling_posts(groups, [np.flatnonzero(np.isin(guids, parts[p])) for p in parts])) == 0
    plain = copies_across_parts(labels, groups, fold_of, seed=0)
    assert plain.iloc[2] == 0 and plain.iloc[3] > 3000  # plain folds scatter almost every group


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
        folds = make_folds(labelled["guid"].to_numpy(), labelled["label"].to_numpy(int), groups, folds=5, seed=seed)
        fold_of = folds.set_index("guid")["fold"]
        assert fold_of[9517] == fold_of[9518], seed
        assert fold_of[9519] == fold_of[9520] == fold_of[9521], seed


def test_grouped_split_refuses_too_few_groups():
    with pytest.raises(ValueError, match="at least 5 groups"):
        grouped_split(np.array([0, 0, 1, 1, 2, 2]), np.array([0, 0, 1, 1, 2, 2]), 0.2)


def test_folds_refuse_too_few_groups_and_round_trip_through_their_file(tmp_path, train_labels):
    with pytest.raises(ValueError, match="5 folds need at least 5 groups"):
        make_folds(np.arange(6), np.array([0, 0, 1, 1, 2, 2]), np.array([0, 0, 1, 1, 2, 2]), folds=5)
    guids, labels = train_labels
    folds = make_folds(guids, labels, np.arange(len(guids)), folds=5, repeats=2)
    save_folds(folds, tmp_path)
    pd.testing.assert_frame_equal(load_folds(tmp_path), folds)
    with pytest.raises(FileNotFoundError, match="03_resample"):
        load_folds(tmp_path / "missing")
    with pytest.raises(KeyError, match="no fold 5 of repeat 0"):
        run_parts(folds, pd.Series(labels, index=guids), pd.Series(np.arange(len(guids)), index=guids), 0, 5)


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
    # the paper's epochs: every class drawn as often as the majority class has posts; or as many draws as posts
    assert epoch_draws(labels) == 3 * 2388 == table["after"].sum()
    assert epoch_draws(labels, "posts") == len(labels) == resampling_table(labels, 0, resample_to="posts")["after"].sum()
    with pytest.raises(ValueError, match="resample_to"):
        epoch_draws(labels, "minority")
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


def test_content_groups_join_texts_that_differ_only_by_a_link_or_case_once_cleaned():
    raw = ["RT @news: Peru to make contact with isolated tribe http://t.co/QJXtXML03Y",
           "Peru to make contact with ISOLATED tribe http://t.co/c6tVtNxSEn http://t.co/x",
           "Peru to make contact with the Mascho Piro http://t.co/QJXtXML03Y"]
    groups = content_groups([clean_text(t) for t in raw], [None] * 3, [None] * 3)
    assert groups[0] == groups[1] != groups[2]
    assert len(set(content_groups(raw, [None] * 3))) == 3  # the raw texts differ


def _phashes(folder: Path, names: list[str]) -> list[str]:
    """The post table's ``image_phash`` of ``folder/<name>`` (:func:`inspect_images`)."""
    frame = pd.DataFrame({"guid": range(len(names)), "image_file": names, "has_image": True})
    return inspect_images(frame, folder, DataReport())["image_phash"].tolist()


def test_content_groups_join_a_resized_reencoded_image_but_not_a_different_photo(tmp_path):
    with Image.open(DEFAULT_DATA_DIR / "data" / "566.jpg") as photo:
        photo = photo.convert("RGB")
    photo.save(tmp_path / "original.png")
    photo.resize((photo.width * 9 // 10, photo.height * 9 // 10)).save(tmp_path / "copy.jpg", quality=40)
    for guid in (123, 3875):  # two different photos, the release's closest such pair (phashes 10 bits apart)
        shutil.copy(DEFAULT_DATA_DIR / "data" / f"{guid}.jpg", tmp_path / f"{guid}.jpg")
    phashes = _phashes(tmp_path, ["original.png", "copy.jpg", "123.jpg", "3875.jpg"])
    assert all(len(h) == 16 for h in phashes)
    groups = content_groups([None] * 4, ["a", "b", "c", "d"], phashes)  # no shared text or bytes
    assert groups[0] == groups[1] and len({groups[0], groups[2], groups[3]}) == 3
    with pytest.raises(ValueError, match="phashes"):
        content_groups([None] * 4, [None] * 4, phashes[:3])


@pytest.mark.slow
def test_no_copy_or_near_copy_of_the_shipped_data_crosses_two_folds(tmp_path):
    """On the shipped posts, checked pair by pair without content_groups: every two labelled posts with the same
    cleaned text, the same image bytes or perceptual hashes within PHASH_MAX_DISTANCE sit in one fold."""
    cfg = get_profile("cpu", results_dir=str(tmp_path), translate=False)
    posts = build_posts(cfg).posts
    labelled = posts[(posts["split"] == "train") & usable(posts)].reset_index(drop=True)
    folds = make_folds(labelled["guid"].to_numpy(), labelled["label"].to_numpy(int),
                       labelled["content_group"].to_numpy(), cfg.data.folds, cfg.data.repeats, cfg.seed)
    fold = folds.set_index("guid").loc[labelled["guid"], "fold"].to_numpy()
    sha = [hashlib.sha256((Path(cfg.data.data_dir) / f).read_bytes()).hexdigest() for f in labelled["image_file"]]
    pairs = 0
    for key in (labelled["text"].str.strip(), pd.Series(sha)):
        for members in pd.Series(range(len(labelled))).groupby(key.to_numpy()).apply(list):
            if len(members) > 1 and key[members[0]] != "":
                pairs += len(members) * (len(members) - 1) // 2
                assert len(set(fold[members])) == 1, labelled.loc[members, "guid"].tolist()
    phash = np.array([int(h, 16) for h in labelled["image_phash"]], dtype=np.uint64)
    near = np.bitwise_count(phash[:, None] ^ phash[None, :]) <= PHASH_MAX_DISTANCE
    a, b = np.nonzero(np.triu(near, 1))
    assert (fold[a] == fold[b]).all(), labelled.loc[a[fold[a] != fold[b]], "guid"].tolist()
    assert pairs > 300 and len(a) > 100  # there are copies to keep together (376 and 139 pairs)
