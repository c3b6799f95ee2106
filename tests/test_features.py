"""Feature extraction, the sharded safetensors cache and its key, image-token pooling, null inputs.

The cache's own mechanics on synthetic tensors (shards, memory maps, lazy rows, the writer) are
in ``tests/test_feature_cache.py``."""

from __future__ import annotations

import copy
import inspect
import logging
import shutil

import pytest
import torch

import msa_utils.features.feature_cache as cache_module
from msa_utils.features.flava import FlavaBackbone
from msa_utils.features.extraction import extract_features
from msa_utils.features.feature_cache import MANIFEST_NAME, cache_path, feature_cache_key, load_or_extract_features
from msa_utils.features.sets import FeatureSet, LazyRows, NullInputs, pool_image_tokens


@pytest.fixture()
def copied_posts(real_posts, tmp_path):
    """Posts 1-4 with their images copied to a temporary folder (so a test may edit them)."""
    guids, texts, paths = real_posts
    folder = tmp_path / "images"
    folder.mkdir()
    copies = []
    for path in paths[:4]:
        shutil.copy(path, folder / path.name)
        copies.append(folder / path.name)
    return guids[:4], texts[:4], copies


@pytest.fixture()
def count_extractions(monkeypatch):
    """Counts the encoders' passes (encode_windows) made by load_or_extract_features."""
    calls = []
    original = cache_module.encode_windows

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(cache_module, "encode_windows", counting)
    return calls


def test_extract_features_matches_one_batch(flava_backbone, real_posts):
    guids, texts, paths = real_posts
    feats = extract_features(flava_backbone, texts, paths, guids, batch_size=4, progress=False)
    assert len(feats) == 6 and feats.guids.tolist() == guids
    assert feats.text_states.shape == (6, 16, 32) and feats.image_states.shape == (6, 17, 32)
    t, m, i = flava_backbone.encode(texts, paths)
    torch.testing.assert_close(feats.text_states, t, atol=1e-6, rtol=0)
    torch.testing.assert_close(feats.image_states, i, atol=1e-6, rtol=0)
    assert torch.equal(feats.text_mask, m)
    half = extract_features(flava_backbone, texts, paths, guids, batch_size=4, progress=False, dtype="float16")
    assert half.text_states.dtype == torch.float16


def test_subset_order_and_unknown_guid(flava_backbone, real_posts):
    guids, texts, paths = real_posts
    feats = extract_features(flava_backbone, texts, paths, guids, progress=False)
    sub = feats.subset([5, 2])
    assert sub.guids.tolist() == [5, 2]
    assert torch.equal(sub.image_states[0], feats.image_states[4])
    assert torch.equal(sub.text_mask[1], feats.text_mask[1])
    with pytest.raises(KeyError):
        feats.subset([999999])
    with pytest.raises(ValueError):
        FeatureSet(feats.guids[:2], feats.text_states, feats.text_mask, feats.image_states)


def test_cache_is_written_once_and_reused(flava_backbone, copied_posts, tmp_path, count_extractions):
    guids, texts, paths = copied_posts
    first = load_or_extract_features(flava_backbone, guids, texts, paths, tmp_path / "cache", dtype="float32",
                                     progress=False)
    second = load_or_extract_features(flava_backbone, guids, texts, paths, tmp_path / "cache", dtype="float32",
                                      progress=False)
    assert len(count_extractions) == 1
    (folder,) = (tmp_path / "cache").iterdir()
    assert folder.name.startswith("features-flava-") and (folder / MANIFEST_NAME).is_file()
    assert isinstance(first.text_states, LazyRows) and isinstance(second.image_states, LazyRows)
    second = second.in_memory()
    for name, tensor in first.in_memory().tensors().items():
        assert torch.equal(tensor, getattr(second, name))


def test_cache_key_changes_with_data_dtype_and_preprocessing(flava_backbone, copied_posts):
    guids, texts, paths = copied_posts
    base = feature_cache_key(flava_backbone, guids, texts, paths, "float32")
    assert feature_cache_key(flava_backbone, guids, texts, paths, "float32") == base
    changed_text = list(texts)
    changed_text[1] = texts[1] + "!"
    assert feature_cache_key(flava_backbone, guids, changed_text, paths, "float32") != base
    assert feature_cache_key(flava_backbone, guids, texts, paths, "float16") != base
    assert feature_cache_key(flava_backbone, [10, 20, 30, 40], texts, paths, "float32") != base
    other = FlavaBackbone(flava_backbone.flava, flava_backbone.tokenizer, flava_backbone.image_processor,
                          max_text_tokens=12, device="cpu", name_or_path=flava_backbone.name_or_path)
    assert feature_cache_key(other, guids, texts, paths, "float32") != base
    with open(paths[2], "ab") as handle:  # same pixels for a JPEG decoder, different bytes
        handle.write(b"\x00")
    assert feature_cache_key(flava_backbone, guids, texts, paths, "float32") != base


def test_cache_keys_hash_the_declared_features_version_never_the_source(flava_backbone, copied_posts, monkeypatch):
    """An edit of the code's text (a comment, say) keeps the caches: the keys (feature cache, text
    below the top layers) never read source code; bumping FEATURES_VERSION changes them."""
    guids, texts, paths = copied_posts
    keys = lambda backbone: (feature_cache_key(backbone, guids, texts, paths, "float32"),
                             feature_cache_key(backbone, guids, texts, None, "float32", top_layers=1))
    base = keys(flava_backbone)
    assert base[0] != base[1]

    def no_source(*args, **kwargs):
        raise AssertionError("a cache key read source code")

    monkeypatch.setattr(inspect, "getsource", no_source)
    fresh = copy.copy(flava_backbone)
    fresh.__dict__.pop("_fingerprint", None)  # the fingerprint is computed again, without source
    assert keys(fresh) == base
    monkeypatch.setattr(cache_module, "FEATURES_VERSION", str(int(cache_module.FEATURES_VERSION) + 1))
    assert all(new != old for new, old in zip(keys(fresh), base))


def test_cache_holds_unpooled_states_whatever_the_grid(compact_backbone, compact_backbone_grid2, copied_posts,
                                                      tmp_path, count_extractions):
    """The key does not depend on image_grid and the file stores the whole 7x7 map: pooling is
    the backbone's prepare, after loading."""
    guids, texts, paths = copied_posts
    assert (feature_cache_key(compact_backbone_grid2, guids, texts, paths, "float16")
            == feature_cache_key(compact_backbone, guids, texts, paths, "float16"))
    stored = load_or_extract_features(compact_backbone_grid2, guids, texts, paths, tmp_path, progress=False)
    assert stored.image_states.shape == (4, 49, 1280)
    again = load_or_extract_features(compact_backbone, guids, texts, paths, tmp_path, progress=False)
    assert len(count_extractions) == 1 and torch.equal(again.image_states[:], stored.image_states[:])
    prepared = stored.map_image_states(compact_backbone_grid2.prepare_image_states)
    assert prepared.image_states.shape == (4, 4, 1280)
    assert torch.equal(prepared.image_states[[3, 1]], pool_image_tokens(stored.image_states[[3, 1]], 2))


@pytest.mark.parametrize("damage", ["flip_data_byte", "truncate_shard", "garbage_shard", "missing_shard",
                                    "missing_manifest", "garbage_manifest", "other_key", "old_format"])
def test_unusable_cache_is_rebuilt(flava_backbone, copied_posts, tmp_path, count_extractions, caplog, damage):
    guids, texts, paths = copied_posts
    cache = tmp_path / "cache"
    good = load_or_extract_features(flava_backbone, guids, texts, paths, cache, dtype="float32", progress=False,
                                    rows_per_shard=3).in_memory()
    key = feature_cache_key(flava_backbone, guids, texts, paths, "float32")
    folder = cache_path(cache, flava_backbone.name, key)
    assert sorted(p.name for p in folder.iterdir()) == [MANIFEST_NAME, "shard-00000.safetensors",
                                                         "shard-00001.safetensors"]
    shard = folder / "shard-00001.safetensors"
    if damage == "flip_data_byte":
        data = bytearray(shard.read_bytes())
        data[-5] ^= 0xFF  # inside the last tensor's data, the header stays valid
        shard.write_bytes(bytes(data))
    elif damage == "truncate_shard":
        shard.write_bytes(shard.read_bytes()[:shard.stat().st_size // 2])
    elif damage == "garbage_shard":
        shard.write_bytes(b"not a safetensors file")
    elif damage == "missing_shard":
        shard.unlink()
    elif damage == "missing_manifest":  # e.g. a run killed before its last write
        (folder / MANIFEST_NAME).unlink()
    elif damage == "garbage_manifest":
        (folder / MANIFEST_NAME).write_text("[1, 2")
    elif damage == "other_key":  # a valid cache written for other features, copied in its place
        other = load_or_extract_features(flava_backbone, guids[:2], texts[:2], paths[:2], tmp_path / "other",
                                         dtype="float32", progress=False)
        assert len(other) == 2
        shutil.rmtree(folder)
        shutil.copytree(next((tmp_path / "other").iterdir()), folder)
    else:  # a format-2 cache (one file, the folder's name + .safetensors) is another path: ignored
        shutil.rmtree(folder)
        folder.with_name(folder.name + ".safetensors").write_bytes(b"a format 2 cache")
    calls_before = len(count_extractions)
    with caplog.at_level(logging.WARNING, logger="msa_utils.features.sets"):
        rebuilt = load_or_extract_features(flava_backbone, guids, texts, paths, cache, dtype="float32",
                                           progress=False)
    assert len(count_extractions) == calls_before + 1
    warned = any("unusable" in record.getMessage() for record in caplog.records)
    assert warned == (damage != "old_format")
    rebuilt = rebuilt.in_memory()
    for name, tensor in good.tensors().items():
        assert torch.equal(tensor, getattr(rebuilt, name))
    # the rebuilt cache is good again (one shard now: stale shards are gone) and is reused
    assert sorted(p.name for p in folder.iterdir()) == [MANIFEST_NAME, "shard-00000.safetensors"]
    load_or_extract_features(flava_backbone, guids, texts, paths, cache, dtype="float32", progress=False)
    assert len(count_extractions) == calls_before + 1


def test_float16_cache_round_trip(flava_backbone, copied_posts, tmp_path):
    guids, texts, paths = copied_posts
    feats = load_or_extract_features(flava_backbone, guids, texts, paths, tmp_path, dtype="float16", progress=False)
    again = load_or_extract_features(flava_backbone, guids, texts, paths, tmp_path, dtype="float16", progress=False)
    assert feats.text_states.dtype == torch.float16 and again.image_states.dtype == torch.float16
    assert torch.equal(feats.image_states[:], again.image_states[:])
    with pytest.raises(ValueError):
        load_or_extract_features(flava_backbone, guids, texts, paths, tmp_path, dtype="int8", progress=False)


def test_null_inputs_shapes_are_checked():
    nulls = NullInputs(torch.zeros(1, 5, 4), torch.zeros(1, 5, dtype=torch.long), torch.zeros(1, 4, 8))
    assert nulls.text_states.shape == (1, 5, 4)
    with pytest.raises(ValueError, match="text_states"):
        NullInputs(torch.zeros(2, 5, 4), torch.zeros(1, 5, dtype=torch.long), torch.zeros(1, 4, 8))
    with pytest.raises(ValueError, match="image_states"):
        NullInputs(torch.zeros(1, 5, 4), torch.zeros(1, 5, dtype=torch.long), torch.zeros(4, 8))
    with pytest.raises(ValueError, match="length"):
        NullInputs(torch.zeros(1, 5, 4), torch.zeros(1, 6, dtype=torch.long), torch.zeros(1, 4, 8))


def test_pool_image_tokens():
    states = torch.arange(2 * 49 * 3, dtype=torch.float32).reshape(2, 49, 3)
    assert pool_image_tokens(states, 7) is states
    assert pool_image_tokens(states, None) is states
    torch.testing.assert_close(pool_image_tokens(states, 1)[:, 0], states.mean(1))
    pooled = pool_image_tokens(states, 3)
    assert pooled.shape == (2, 9, 3)
    # token (0, 0) of a 3x3 pooling of 7x7 averages rows 0-2 and columns 0-2 (adaptive pooling)
    grid = states.reshape(2, 7, 7, 3)
    torch.testing.assert_close(pooled[:, 0], grid[:, 0:3, 0:3].mean((1, 2)))
    assert pool_image_tokens(states.half(), 2).dtype == torch.float16
    with pytest.raises(ValueError):
        pool_image_tokens(torch.zeros(1, 197, 4), 2)
    with pytest.raises(ValueError):
        pool_image_tokens(states, 8)
