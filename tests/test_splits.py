"""Stratified split and inverse-class-frequency re-sampling, on the real label file."""

import numpy as np
import pandas as pd
import pytest

from msa_utils import LABEL2ID
from msa_utils.profiles import DEFAULT_DATA_DIR
from msa_utils.splits import (
    inverse_frequency_weights,
    load_split,
    make_sampler,
    resampling_table,
    save_split,
    stratified_split,
)


@pytest.fixture(scope="module")
def train_labels():
    frame = pd.read_csv(DEFAULT_DATA_DIR / "train.txt")
    return frame["guid"].to_numpy(), frame["tag"].map(LABEL2ID).to_numpy()


def test_split_is_8_to_2_stratified_disjoint_and_seeded(train_labels):
    guids, labels = train_labels
    split = stratified_split(guids, labels, 0.2, seed=0)
    assert len(split["train"]) == 3200 and len(split["val"]) == 800
    assert not set(split["train"]) & set(split["val"])
    by_guid = dict(zip(guids, labels))
    val_counts = np.bincount([by_guid[g] for g in split["val"]], minlength=3)
    # 2388 / 1193 / 419 posts -> 20% each, to within one post
    assert np.abs(val_counts - np.array([2388, 1193, 419]) * 0.2).max() <= 1
    again = stratified_split(guids, labels, 0.2, seed=0)
    assert np.array_equal(again["val"], split["val"])
    other = stratified_split(guids, labels, 0.2, seed=1)
    assert not np.array_equal(other["val"], split["val"])


def test_split_rejects_bad_input():
    with pytest.raises(ValueError, match="unique"):
        stratified_split(np.array([1, 1, 2, 3]), np.array([0, 0, 1, 1]))
    with pytest.raises(ValueError, match="val_fraction"):
        stratified_split(np.arange(4), np.array([0, 0, 1, 1]), val_fraction=1.0)


def test_split_round_trips_through_files(tmp_path, train_labels):
    guids, labels = train_labels
    split = stratified_split(guids, labels, 0.2, seed=0)
    save_split(split, tmp_path)
    loaded = load_split(tmp_path)
    assert all(np.array_equal(loaded[k], split[k]) for k in ("train", "val"))
    (tmp_path / "val_guids.txt").write_text(f"{split['train'][0]}\n")
    with pytest.raises(ValueError, match="both"):
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
        stratified_split(np.array([], dtype=int), np.array([], dtype=int))
    with pytest.warns(UserWarning, match="single"), pytest.raises(ValueError, match="every class present has 1"):
        stratified_split(np.arange(3), np.array([0, 1, 2]))


def test_a_class_with_a_single_post_trains_and_is_warned_about():
    guids, labels = np.arange(11), np.array([0] * 5 + [1] * 5 + [2])
    with pytest.warns(UserWarning, match=r"class \['neutral'\] has a single"):
        split = stratified_split(guids, labels, val_fraction=0.2)
    assert 10 in split["train"] and 10 not in split["val"]
    assert sorted(np.concatenate([split["train"], split["val"]])) == list(range(11))
    assert sorted(labels[split["val"]]) == [0, 1]


def test_a_class_with_no_post_is_warned_about(train_labels):
    guids, labels = train_labels
    keep = labels != LABEL2ID["neutral"]
    with pytest.warns(UserWarning, match=r"class \['neutral'\]"):
        stratified_split(guids[keep], labels[keep])
