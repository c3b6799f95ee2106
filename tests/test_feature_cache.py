"""The sharded, memory-mapped feature cache on synthetic tensors: shards round-trip bit for bit,
lazy rows read across shards, subsets are views, the writer streams, and loading copies nothing
of the token states into memory. (The cache as the study uses it, with real backbones, its key
and its rebuilds: ``tests/test_features.py``.)"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import msa_utils.features.feature_cache as cache_module
from msa_utils.features.feature_cache import MANIFEST_NAME, ShardWriter, load_features, map_safetensors, save_features
from msa_utils.features.sets import FeatureSet, LazyRows, pool_image_tokens


def synthetic(n: int = 10, dtype: torch.dtype = torch.float16, text=(5, 3), image=(4, 2), seed: int = 0) -> FeatureSet:
    """``n`` posts of random states (guids 100, 101, ...), masks with 1..L real tokens."""
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, text[0] + 1, (n,), generator=generator)
    mask = (torch.arange(text[0]) < lengths[:, None]).long()
    return FeatureSet(torch.arange(100, 100 + n), torch.randn(n, *text, generator=generator).to(dtype), mask,
                      torch.randn(n, *image, generator=generator).to(dtype))


def assert_same(a: FeatureSet, b: FeatureSet) -> None:
    a, b = a.in_memory(), b.in_memory()
    for name, tensor in a.tensors().items():
        other = getattr(b, name)
        assert tensor.dtype == other.dtype and torch.equal(tensor, other), name


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_shards_round_trip_exactly(tmp_path, dtype):
    features = synthetic(10, dtype)
    folder = save_features(features, tmp_path / "cache", "k", rows_per_shard=3)
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    assert manifest["key"] == "k" and manifest["format_version"] == "3" and manifest["rows"] == 10
    assert [s["rows"] for s in manifest["shards"]] == [3, 3, 3, 1]
    assert [s["file"] for s in manifest["shards"]] == [f"shard-0000{i}.safetensors" for i in range(4)]
    assert manifest["tensors"]["text_states"] == {"dtype": str(dtype).removeprefix("torch."), "row_shape": [5, 3]}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. torch.from_numpy on a read-only array would warn
        loaded = load_features(folder, "k")
    assert isinstance(loaded.text_states, LazyRows) and isinstance(loaded.image_states, LazyRows)
    assert isinstance(loaded.guids, torch.Tensor) and isinstance(loaded.text_mask, torch.Tensor)
    assert len(loaded.text_states.blocks) == 4 and loaded.text_states.dtype == dtype
    assert loaded.image_states.shape == (10, 4, 2) and len(loaded) == 10
    assert_same(loaded, features)
    across = torch.tensor([9, 2, 3, 3, 0, 8, 5])  # every shard, boundaries, a repeat
    assert torch.equal(loaded.text_states[across], features.text_states[across])
    assert torch.equal(loaded.image_states[across], features.image_states[across])
    assert_same(loaded.batch(across), features.batch(across))


def test_lazy_rows_index_like_a_tensor():
    full = torch.arange(7 * 2 * 3, dtype=torch.float32).reshape(7, 2, 3)
    rows = LazyRows([full[:3], full[3:4], full[4:]])
    assert rows.shape == full.shape and rows.dtype == full.dtype and len(rows) == 7
    for index in (0, -1, 4, slice(None), slice(2, 6), slice(None, None, 2), [6, 0, 6], np.array([1, 3]),
                  torch.tensor([5, 2]), torch.tensor(3), np.int64(2), []):
        assert torch.equal(rows[index], full[index]), index
    for bad in (7, -8, [0, 9]):
        with pytest.raises(IndexError):
            rows[bad]
    with pytest.raises(IndexError):
        rows[torch.tensor([True, False, True, False, True, False, True])]
    view = rows.take([6, 4, 1, 0]).take([3, 0])  # a view of a view
    assert len(view) == 2 and view.blocks == rows.blocks and torch.equal(view[:], full[[0, 6]])
    doubled = view.map(lambda x: x * 2).map(lambda x: x[:, :1] + 1)  # functions compose in order
    assert doubled.shape == (2, 1, 3) and torch.equal(doubled[:], full[[0, 6]][:, :1] * 2 + 1)
    with pytest.raises(ValueError):
        LazyRows([full, full[:, :1]])
    with pytest.raises(ValueError):
        LazyRows([])


def test_subset_of_a_lazy_set_is_a_view_and_batches_gather_it(tmp_path):
    features = synthetic(12)
    loaded = load_features(save_features(features, tmp_path / "c", "k", rows_per_shard=5), "k")
    guids = [111, 100, 104, 105, 110]
    sub = loaded.subset(guids)
    assert isinstance(sub.text_states, LazyRows) and sub.text_states.blocks == loaded.text_states.blocks
    assert sub.guids.tolist() == guids
    assert_same(sub, features.subset(guids))
    assert_same(sub.subset([105, 111]), features.subset([105, 111]))
    assert_same(sub.batch([4, 0, 4]), features.subset([110, 111, 110]).in_memory())
    parts = list(loaded.batches(5))
    assert [len(p) for p in parts] == [5, 5, 2] and all(isinstance(p.text_states, torch.Tensor) for p in parts)
    assert torch.equal(torch.cat([p.image_states for p in parts]), features.image_states)
    # an in-memory set's subset still copies rows into tensors, as before
    assert isinstance(features.subset(guids).text_states, torch.Tensor)
    with pytest.raises(KeyError):
        loaded.subset([999])
    with pytest.raises(TypeError):
        FeatureSet(loaded.guids, loaded.text_states, LazyRows([loaded.text_mask]), loaded.image_states)


def test_image_preparation_per_batch_equals_preparing_the_whole_set(tmp_path):
    """The compact backbone's pooling (7 x 7 -> 2 x 2) applied to each batch read gives the rows of
    pooling everything at once, bit for bit (float16, as the cache stores them)."""
    features = synthetic(40, torch.float16, text=(4, 8), image=(49, 16))
    loaded = load_features(save_features(features, tmp_path / "c", "k", rows_per_shard=16), "k")
    pool = lambda states: pool_image_tokens(states, 2)
    eager = features.map_image_states(pool)
    assert eager.image_states.shape == (40, 4, 16)  # a tensor: pooled now
    lazy = loaded.map_image_states(pool).subset(list(range(139, 99, -1)))
    assert isinstance(lazy.image_states, LazyRows) and lazy.image_states.shape == (40, 4, 16)
    index = torch.randperm(40, generator=torch.Generator().manual_seed(0))[:32]
    assert torch.equal(lazy.batch(index).image_states, eager.image_states.flip(0)[index])


def test_writer_streams_batches_of_any_size_into_shards(tmp_path, monkeypatch):
    features = synthetic(13)
    with ShardWriter(tmp_path / "c", "k", rows_per_shard=5) as writer:
        for start, stop in ((0, 4), (4, 5), (5, 12), (12, 12), (12, 13)):
            rows = slice(start, stop)
            writer.append(features.text_states[rows], features.text_mask[rows], features.image_states[rows],
                          features.guids[rows])
        assert not (tmp_path / "c" / MANIFEST_NAME).exists()  # written last
    manifest = json.loads((tmp_path / "c" / MANIFEST_NAME).read_text())
    assert [s["rows"] for s in manifest["shards"]] == [5, 5, 3]
    assert_same(load_features(tmp_path / "c", "k"), features)
    # rewritten with fewer shards: the stale one is deleted
    save_features(features, tmp_path / "c", "k2", rows_per_shard=7)
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == [MANIFEST_NAME, "shard-00000.safetensors",
                                                                   "shard-00001.safetensors"]
    assert_same(load_features(tmp_path / "c", "k2"), features)
    # the default shard size follows SHARD_BYTES: a row here is 8 + 2*15 + 8*5 + 2*8 = 94 bytes
    monkeypatch.setattr(cache_module, "SHARD_BYTES", 94 * 4)
    save_features(features, tmp_path / "d", "k")
    assert [s["rows"] for s in json.loads((tmp_path / "d" / MANIFEST_NAME).read_text())["shards"]] == [4, 4, 4, 1]


def test_writer_errors_leave_no_manifest(tmp_path):
    features = synthetic(6)
    with pytest.raises(RuntimeError, match="encoder failed"):
        with ShardWriter(tmp_path / "c", "k", rows_per_shard=2) as writer:
            writer.append(features.text_states[:3], features.text_mask[:3], features.image_states[:3],
                          features.guids[:3])
            raise RuntimeError("encoder failed")
    assert (tmp_path / "c" / "shard-00000.safetensors").exists() and not (tmp_path / "c" / MANIFEST_NAME).exists()
    with pytest.raises(FileNotFoundError):
        load_features(tmp_path / "c", "k")
    writer = ShardWriter(tmp_path / "d", "k")
    writer.append(features.text_states, features.text_mask, features.image_states, features.guids)
    with pytest.raises(ValueError, match="text_states rows are"):
        writer.append(features.text_states.float(), features.text_mask, features.image_states, features.guids)
    with pytest.raises(ValueError, match="differ in rows"):
        writer.append(features.text_states, features.text_mask[:2], features.image_states, features.guids)
    writer.close()
    with pytest.raises(RuntimeError, match="closed"):
        writer.append(features.text_states, features.text_mask, features.image_states, features.guids)
    with pytest.raises(ValueError, match="no rows"):
        ShardWriter(tmp_path / "e", "k").close()
    with pytest.raises(ValueError):
        ShardWriter(tmp_path / "f", "k", rows_per_shard=0)


def test_load_refuses_other_keys_formats_and_damaged_shards(tmp_path):
    features = synthetic(6)
    folder = save_features(features, tmp_path / "c", "k", rows_per_shard=4)
    with pytest.raises(ValueError, match="key mismatch"):
        load_features(folder, "other")
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    (folder / MANIFEST_NAME).write_text(json.dumps({**manifest, "format_version": "2"}))
    with pytest.raises(ValueError, match="cache format"):
        load_features(folder, "k")
    (folder / MANIFEST_NAME).write_text(json.dumps({**manifest, "rows": 7}))
    with pytest.raises(ValueError, match="7 rows"):
        load_features(folder, "k")
    (folder / MANIFEST_NAME).write_text(json.dumps({key: v for key, v in manifest.items() if key != "shards"}))
    with pytest.raises(ValueError, match="malformed manifest"):
        load_features(folder, "k")
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest))
    shard = folder / "shard-00001.safetensors"
    data = bytearray(shard.read_bytes())
    data[-1] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="content hash mismatch in shard-00001"):
        load_features(folder, "k")
    shard.write_bytes(b"\x00" * 8)
    with pytest.raises(ValueError):
        map_safetensors(shard)


def test_files_the_manifest_does_not_name_are_reported_and_the_next_writer_removes_its_own(tmp_path, caplog):
    features = synthetic(6)
    folder = save_features(features, tmp_path / "c", "k", rows_per_shard=4)
    with caplog.at_level("WARNING", logger="msa_utils.features.feature_cache"):
        load_features(folder, "k")
    assert caplog.records == []  # a clean folder: nothing to report
    killed = folder / ".shard-00002.safetensors.x1y2.tmp"  # what a writer killed mid-shard leaves
    killed.write_bytes(b"\x00" * 64)
    (folder / ".manifest.json.k9.tmp").write_text("{")  # ... or killed while writing the manifest
    (folder / ".shard-00003.safetensors.old.tmp").mkdir()  # a folder: not the writer's, never deleted
    (folder / "notes.txt").write_text("mine")
    (folder / "a\nWARNING fake: line").write_text("")  # a name that must not break the log line
    with caplog.at_level("WARNING", logger="msa_utils.features.feature_cache"):
        assert_same(load_features(folder, "k"), features)  # still loads: the stray files are not read
    [record] = caplog.records
    message = record.getMessage()
    assert "5 entries its manifest does not name" in message and "\n" not in message
    assert (".manifest.json.k9.tmp, .shard-00002.safetensors.x1y2.tmp, .shard-00003.safetensors.old.tmp, "
            "a\\nWARNING fake: line, notes.txt") in message
    save_features(features, folder, "k", rows_per_shard=4)  # a rebuild deletes the killed writer's files
    assert sorted(p.name for p in folder.iterdir()) == [
        ".shard-00003.safetensors.old.tmp", "a\nWARNING fake: line", MANIFEST_NAME, "notes.txt",
        "shard-00000.safetensors", "shard-00001.safetensors"]


def _status_kib(field: str) -> int:
    """A memory field of ``/proc/self/status`` (e.g. ``RssAnon``, ``RssFile``), in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def _mapped_file(address: int) -> str | None:
    """The file mapped at ``address`` in this process (``/proc/self/maps``), or None (anonymous)."""
    for line in Path("/proc/self/maps").read_text().splitlines():
        fields = line.split(maxsplit=5)
        low, high = (int(x, 16) for x in fields[0].split("-"))
        if low <= address < high:
            return fields[5].strip() if len(fields) > 5 and fields[5].startswith("/") else None
    return None


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs Linux /proc")
def test_loading_maps_the_shards_and_copies_no_token_states(tmp_path):
    """A 100 MB cache: its token states are views of the shard files (file-backed pages, not
    anonymous memory), loading grows anonymous memory by far less than the cache, and reading a
    batch maps only about that batch's pages."""
    n, text, image = 500, (64, 384), (49, 1280)  # the compact backbone's rows, float16: 175 kB a post
    row = torch.ones(1, *image, dtype=torch.float16)
    with ShardWriter(tmp_path / "c", "k", rows_per_shard=200) as writer:
        for start in range(0, n, 100):
            writer.append(torch.ones(100, *text, dtype=torch.float16), torch.ones(100, text[0], dtype=torch.long),
                          row.expand(100, -1, -1), torch.arange(start, start + 100))
    size = sum(f.stat().st_size for f in (tmp_path / "c").iterdir())
    assert size > 80 * 2**20
    anon_before = _status_kib("RssAnon")
    loaded = load_features(tmp_path / "c", "k")
    anon_growth = (_status_kib("RssAnon") - anon_before) * 1024
    assert anon_growth < size / 10, f"loading a {size / 2**20:.0f} MB cache took {anon_growth / 2**20:.1f} MB"
    for block, shard in zip(loaded.image_states.blocks, sorted((tmp_path / "c").glob("shard-*"))):
        assert _mapped_file(block.data_ptr()) == str(shard.resolve())  # a view of the file, not a copy
    file_before = _status_kib("RssFile")
    batch = loaded.batch([0, 250, 499])
    assert torch.equal(batch.image_states, row.expand(3, -1, -1))
    file_growth = (_status_kib("RssFile") - file_before) * 1024
    assert file_growth < size / 10, f"reading 3 rows mapped {file_growth / 2**20:.1f} MB of the cache"


def test_training_reads_the_same_bits_from_the_cache(compact_backbone_grid2, real_posts, tmp_path):
    """The study's path on the lazy cache (per-batch pooling of a view) gives every batch, the
    linear probe's pooled features and the resume key of the in-memory path bit for bit."""
    from types import SimpleNamespace

    from msa_utils.experiments.baselines import pooled_feature_set, pooled_features
    from msa_utils.features.extraction import extract_features
    from msa_utils.config.profiles import get_profile
    from msa_utils.train.loop import _batch
    from msa_utils.experiments.variants import run_key

    backbone = compact_backbone_grid2
    guids, texts, paths = real_posts
    extracted = extract_features(backbone, texts, paths, guids, progress=False, dtype="float16")
    loaded = load_features(save_features(extracted, tmp_path / "c", "k", rows_per_shard=4), "k")
    parts = {"train": guids[::-1][:4], "val": guids[1::2]}
    memory = {part: backbone.prepare(extracted).subset(g) for part, g in parts.items()}  # pooled, rows copied
    lazy = {part: loaded.map_image_states(backbone.prepare_image_states).subset(g) for part, g in parts.items()}
    assert isinstance(lazy["train"].image_states, LazyRows) and lazy["train"].image_states.shape == (4, 4, 1280)
    nulls = backbone.null_inputs()
    for drop in (None, "image", "text"):
        index = torch.tensor([3, 0, 2, 2])
        for a, b in zip(_batch(memory["train"], index, drop, nulls, torch.device("cpu")),
                        _batch(lazy["train"], index, drop, nulls, torch.device("cpu"))):
            assert a.dtype == b.dtype and torch.equal(a, b)
    train = memory["train"]
    expected = pooled_features(train.text_states, train.text_mask, train.image_states)
    assert np.array_equal(pooled_feature_set(lazy["train"], batch_size=3), expected)
    labels = {"train": np.arange(4) % 3, "val": np.arange(len(parts["val"])) % 3}
    cfg = get_profile("smoke")
    assert (run_key(SimpleNamespace(features=memory, labels=labels), "full", cfg)
            == run_key(SimpleNamespace(features=lazy, labels=labels), "full", cfg))


def test_an_unwritable_cache_folder_fails_before_any_row_is_encoded(tmp_path, monkeypatch):
    import tempfile as tempfile_module

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", kwargs.get("dir"))

    monkeypatch.setattr(tempfile_module, "TemporaryFile", refuse)  # root ignores chmod: stand in for it
    with pytest.raises(PermissionError):
        ShardWriter(tmp_path / "cache", "k")


def test_an_empty_slice_of_lazy_rows_is_empty_like_a_tensor():
    whole = torch.arange(12.0).reshape(6, 2)
    rows = LazyRows([whole[:4], whole[4:]])
    assert rows[4:2].shape == whole[4:2].shape == (0, 2)
    assert torch.equal(rows[1:6:2], whole[1:6:2])
