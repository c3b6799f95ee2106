"""The on-disk cache of frozen-encoder features: safetensors shards, read memory-mapped.

:func:`load_or_extract_features` returns the features of the study's posts, computing them once
with the frozen encoders (:mod:`msa_utils.features.extraction`). It keeps ONE cache folder per (backbone, data, settings),
``{cache_dir}/features-{backbone}-{key}/`` (:func:`cache_path`). Its key is a
:class:`msa_utils.io.hashing.Digest` (SHA-256) over

* :data:`FORMAT_VERSION`,
* the backbone's :meth:`~msa_utils.features.encoders.FrozenBackbone.fingerprint` (model identity, a hash of
  its weights, tokenisation, image preprocessing and ``precision``),
* the cache dtype,
* the image loader's identity: the source of :mod:`msa_utils.data.images` (any edit of it invalidates
  the cache),
* every guid, every text and the SHA-256 of every image file's bytes, in order,

so a change of model, data or preprocessing can never reuse a stale cache.

**Layout.** The folder holds ``shard-00000.safetensors``, ``shard-00001.safetensors``, ... (rows
in order, at most ``rows_per_shard`` posts each, by default about :data:`SHARD_BYTES` = 256 MiB:
1,532 posts of the compact backbone in float16, 668 of FLAVA), each with the four tensors
``guids (n,)``, ``text_states (n, L, Dt)``, ``text_mask (n, L)``, ``image_states (n, Li, Di)``,
and ``manifest.json`` (:data:`MANIFEST_NAME`): the key, the format version, the number of rows,
each tensor's dtype and row shape, and each shard's file name, row count and SHA-256 of its bytes.
Every file is written atomically (:func:`msa_utils.io.atomic_path`), the manifest last
(:class:`ShardWriter`), so a folder without a valid manifest is incomplete. A folder whose
manifest is missing or unreadable, whose key or format differs, or one of whose shards is missing,
malformed or does not match its SHA-256 is reported (``logging.warning``) and rebuilt, never used.
A file in the folder that the manifest does not name (e.g. the temporary shard of a killed
writer) is not read, and is named in a ``logging.warning`` on every load.
A cache of an older format (format 2: one ``features-{backbone}-{key}.safetensors`` file) has
another path and is ignored.

**Writing.** The encoders' pass (:func:`msa_utils.features.extraction.encode_windows`) hands windows of
posts, in input order, to a :class:`ShardWriter`: extraction, too, holds one window of states,
whatever the number of posts.

**Reading.** :func:`load_features` verifies each shard's SHA-256 by streaming its bytes (1 MiB at
a time, nothing kept) and memory-maps it (``numpy.memmap``, copy-on-write, never written back):
nothing of the token states is read into memory on load. ``text_states`` and ``image_states``
become :class:`LazyRows`, which read only the rows asked for (``rows[index]``), across shards;
``guids`` and ``text_mask`` (8 + 8 L bytes a post, 0.1 % of FLAVA's row) are copied into memory.
:meth:`FeatureSet.subset` of a lazy set is a view (a row index, no copy) and
:meth:`FeatureSet.batch` gathers the rows of one batch, so memory stays flat in the number of
posts (``benchmarks/cache_memory.py``).
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from safetensors.torch import save_file

from msa_utils.data import images as images_module
from msa_utils.features.extraction import _checked_guids, encode_windows
from msa_utils.features.sets import _DTYPES, _TENSOR_NAMES, FeatureSet, LazyRows
from msa_utils.io.hashing import Digest, file_sha256
from msa_utils.io import atomic_path, read_json, write_json

logger = logging.getLogger(__name__)

FORMAT_VERSION = "3"
"""Bump when the file layout or the meaning of the cached tensors changes (2: key and content hash
computed with :class:`msa_utils.io.hashing.Digest`; 3: a folder of shards and a manifest, read
memory-mapped)."""

MANIFEST_NAME = "manifest.json"
"""The manifest of a cache folder, written last (module docstring)."""

SHARD_BYTES = 256 * 2**20
"""Default size of a shard: ``rows_per_shard = max(1, SHARD_BYTES // bytes of one post)``."""


def feature_cache_key(backbone, guids: Sequence[int] | torch.Tensor, texts: Sequence[str],
                      image_paths: Sequence[str | os.PathLike], dtype: str) -> str:
    """The cache key (hex SHA-256) described in the module docstring.

    Reads every image file once to hash its bytes (about 1 s for the 4,869 MVSA-Single images).

    Raises:
        OSError: if an image file cannot be read.
        ValueError: if the sequences differ in length.
    """
    guid_list = guids.tolist() if isinstance(guids, torch.Tensor) else [int(g) for g in guids]
    if not (len(guid_list) == len(texts) == len(image_paths)):
        raise ValueError(f"{len(guid_list)} guids, {len(texts)} texts and {len(image_paths)} images must match")
    digest = (Digest().add("format", FORMAT_VERSION).add("backbone", backbone.fingerprint())
              .add("dtype", str(dtype)).add("loader", images_module))
    for guid, text, path in zip(guid_list, texts, image_paths):
        digest.add("guid", str(int(guid))).add("text", text).add_file("image", path)
    return digest.hexdigest()


def cache_path(cache_dir: str | os.PathLike, backbone_name: str, key: str) -> Path:
    """The cache folder ``{cache_dir}/features-{backbone_name}-{key}`` (module docstring)."""
    return Path(cache_dir) / f"features-{backbone_name}-{key}"


def _shard_name(number: int) -> str:
    return f"shard-{number:05d}.safetensors"


class ShardWriter:
    """Writes a cache folder (module docstring) one shard at a time, from batches of rows.

    Example (e.g. inside an extraction loop)::

        with ShardWriter(folder, key) as writer:
            for ...:
                writer.append(text_states, text_mask, image_states, guids)   # any batch size
        # leaving the block without an error writes the last shard and the manifest

    Memory: one shard's buffer (``rows_per_shard`` rows), whatever the batch sizes. Opening a
    writer deletes the folder's manifest, so the folder counts as incomplete until :meth:`close`;
    shards of an earlier cache in the folder that the new manifest does not list, and the
    temporary files a killed writer left (``.shard-*.tmp``, ``.manifest.json.*.tmp``), are
    deleted then; anything else (a folder, a user's file) is left, and reported on load.
    Readers of the earlier cache are not disturbed: each file is replaced atomically
    (``os.replace``), and a memory-mapped file stays readable after its name is reused.

    Args:
        folder: the cache folder (created; a file in its place is deleted).
        key: the cache key, stored in the manifest and in each shard's metadata.
        rows_per_shard: posts per shard; ``None``: ``max(1, SHARD_BYTES // bytes of one post)``,
            from the first batch.

    Raises:
        ValueError: if ``rows_per_shard`` is not positive.
        PermissionError / OSError: (on construction) if the folder cannot be written.
    """

    def __init__(self, folder: str | os.PathLike, key: str, rows_per_shard: int | None = None) -> None:
        if rows_per_shard is not None and rows_per_shard < 1:
            raise ValueError(f"rows_per_shard must be positive, got {rows_per_shard}")
        self.folder, self.key, self.rows_per_shard = Path(folder), key, rows_per_shard
        if self.folder.exists() and not self.folder.is_dir():
            self.folder.unlink()
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / MANIFEST_NAME).unlink(missing_ok=True)
        tempfile.TemporaryFile(dir=self.folder).close()  # unwritable: fail now, not after the encoders' pass
        self._buffer: dict[str, torch.Tensor] | None = None
        self._filled = 0
        self._shards: list[dict] = []
        self._closed = False

    def append(self, text_states: torch.Tensor, text_mask: torch.Tensor, image_states: torch.Tensor,
               guids: Sequence[int] | torch.Tensor) -> None:
        """Add ``B`` rows: ``text_states (B, L, Dt)``, ``text_mask (B, L)`` (stored as int64),
        ``image_states (B, Li, Di)``, ``guids (B,)``; the states are stored in their own dtype,
        which must stay the same for every batch (as must every row shape). A full shard is written.

        Raises:
            ValueError: if the tensors differ in rows, or in dtype or row shape from earlier batches.
            RuntimeError: if the writer is closed.
        """
        if self._closed:
            raise RuntimeError(f"the writer of {self.folder} is closed")
        batch = {"guids": torch.as_tensor(guids, dtype=torch.long).reshape(-1), "text_states": text_states,
                 "text_mask": torch.as_tensor(text_mask).long(), "image_states": image_states}
        rows = len(batch["guids"])
        if any(batch[name].shape[0] != rows for name in _TENSOR_NAMES):
            raise ValueError("a batch's tensors differ in rows: "
                             + ", ".join(f"{name} {tuple(batch[name].shape)}" for name in _TENSOR_NAMES))
        if rows == 0:
            return
        if self._buffer is None:
            row_bytes = sum(t[0:1].numel() * t.element_size() for t in batch.values())
            self.rows_per_shard = self.rows_per_shard or max(1, SHARD_BYTES // max(row_bytes, 1))
            self._buffer = {name: torch.empty((self.rows_per_shard, *t.shape[1:]), dtype=t.dtype)
                            for name, t in batch.items()}
        for name, tensor in batch.items():
            kept = self._buffer[name]
            if tensor.dtype != kept.dtype or tensor.shape[1:] != kept.shape[1:]:
                raise ValueError(f"{name} rows are {tensor.dtype}{tuple(tensor.shape[1:])}, earlier ones "
                                 f"{kept.dtype}{tuple(kept.shape[1:])}")
        start = 0
        while start < rows:
            take = min(rows - start, self.rows_per_shard - self._filled)
            for name, tensor in batch.items():
                self._buffer[name][self._filled:self._filled + take] = tensor[start:start + take]
            self._filled += take
            start += take
            if self._filled == self.rows_per_shard:
                self._write_shard()

    def _write_shard(self) -> None:
        name = _shard_name(len(self._shards))
        tensors = {key: value[:self._filled] for key, value in self._buffer.items()}
        with atomic_path(self.folder / name) as tmp:
            save_file(tensors, str(tmp), metadata={"key": self.key, "format_version": FORMAT_VERSION})
        self._shards.append({"file": name, "rows": self._filled, "sha256": file_sha256(self.folder / name)})
        self._filled = 0

    def close(self) -> Path:
        """Write the last shard and then the manifest; delete unlisted shards. Returns the folder.

        Raises:
            ValueError: if no row was appended.
        """
        if self._closed:
            return self.folder
        if self._buffer is None:
            raise ValueError(f"no rows were written to {self.folder}")
        if self._filled:
            self._write_shard()
        manifest = {
            "format_version": FORMAT_VERSION, "key": self.key, "rows": sum(s["rows"] for s in self._shards),
            "tensors": {name: {"dtype": str(t.dtype).removeprefix("torch."), "row_shape": list(t.shape[1:])}
                        for name, t in self._buffer.items()},
            "shards": self._shards,
        }
        write_json(self.folder / MANIFEST_NAME, manifest)
        listed = {s["file"] for s in self._shards}
        own = ("shard-*.safetensors", ".shard-*.tmp", f".{MANIFEST_NAME}.*.tmp")  # shards and temporaries
        for stale in (path for pattern in own for path in self.folder.glob(pattern)):
            if stale.name not in listed and stale.is_file():  # an earlier cache's, or a killed writer's
                stale.unlink(missing_ok=True)
        self._buffer, self._closed = None, True
        return self.folder

    def __enter__(self) -> "ShardWriter":
        return self

    def __exit__(self, error_type, error, traceback) -> None:
        if error_type is None:
            self.close()
        else:  # no manifest: the folder stays incomplete, and is rebuilt by the next run
            self._buffer, self._closed = None, True


def save_features(features: FeatureSet, folder: str | os.PathLike, key: str,
                  rows_per_shard: int | None = None) -> Path:
    """Write ``features`` (in memory or lazy) to the cache folder ``folder`` as shards of at most
    ``rows_per_shard`` posts (default: about :data:`SHARD_BYTES`) and a manifest carrying ``key``
    (:class:`ShardWriter`; memory: one shard). Returns the folder.

    Raises:
        ValueError: if ``features`` is empty or ``rows_per_shard`` is not positive.
    """
    with ShardWriter(folder, key, rows_per_shard) as writer:
        step = writer.rows_per_shard or 1024
        for start in range(0, len(features), step):
            rows = slice(start, start + step)
            writer.append(features.text_states[rows], features.text_mask[rows], features.image_states[rows],
                          features.guids[rows])
    return Path(folder)


_SAFETENSORS_DTYPES = {  # safetensors dtype -> (numpy dtype of the bytes, torch dtype to view them as)
    "F64": (np.float64, None), "F32": (np.float32, None), "F16": (np.float16, None),
    "BF16": (np.uint16, torch.bfloat16), "I64": (np.int64, None), "I32": (np.int32, None),
    "I16": (np.int16, None), "I8": (np.int8, None), "U8": (np.uint8, None), "BOOL": (np.bool_, None),
}


def map_safetensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file, memory-mapped: nothing is read until used.

    Parses the header (8-byte little-endian length, then JSON: each tensor's ``dtype``, ``shape``
    and ``data_offsets``) and maps the file once with ``numpy.memmap(mode="c")`` (copy-on-write:
    the file is never written; pages read are the page cache's, counted as file-backed, not
    anonymous, memory); each tensor is a ``torch.from_numpy`` view of its bytes (bfloat16 viewed
    from uint16).

    Returns:
        ``{name: tensor}`` on the CPU, in the file's shapes and dtypes.

    Raises:
        ValueError: if the file is empty, its header is malformed, or a dtype is unsupported.
        OSError: if the file cannot be opened.
    """
    raw = np.memmap(path, dtype=np.uint8, mode="c")
    if raw.size < 8:
        raise ValueError(f"{path} is too short for a safetensors file")
    length = int.from_bytes(raw[:8].tobytes(), "little")
    if length > raw.size - 8:
        raise ValueError(f"{path}: header of {length} bytes in a file of {raw.size}")
    header = json.loads(raw[8:8 + length].tobytes())
    data, size = 8 + length, raw.size - 8 - length
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] not in _SAFETENSORS_DTYPES:
            raise ValueError(f"{path}: tensor {name} has unsupported dtype {info['dtype']}")
        numpy_dtype, view = _SAFETENSORS_DTYPES[info["dtype"]]
        shape, (begin, end) = tuple(int(s) for s in info["shape"]), info["data_offsets"]
        if not 0 <= begin <= end <= size or end - begin != math.prod(shape) * np.dtype(numpy_dtype).itemsize:
            raise ValueError(f"{path}: tensor {name} {shape} has bytes {begin}..{end} of {size}")
        tensor = torch.from_numpy(raw[data + begin:data + end].view(numpy_dtype).reshape(shape))
        tensors[name] = tensor.view(view) if view is not None else tensor
    return tensors


def load_features(folder: str | os.PathLike, key: str, verify: bool = True) -> FeatureSet:
    """Open a cache folder written by :class:`ShardWriter` / :func:`save_features`.

    ``text_states`` and ``image_states`` come back as :class:`LazyRows` over the memory-mapped
    shards (nothing read); ``guids`` and ``text_mask`` are copied into memory.

    Args:
        folder: the cache folder (:func:`cache_path`).
        key: the expected key.
        verify: stream every shard's bytes through SHA-256 (1 MiB at a time; about 1 s a GB) and
            compare with the manifest (``False``: only for a folder this process has just written).

    Raises:
        FileNotFoundError: if the manifest or a shard is missing.
        ValueError: if the manifest or a shard is malformed, the key or format version differs, a
            shard's SHA-256, rows, dtypes or row shapes do not match the manifest, or a tensor is
            missing (``json.JSONDecodeError`` is a ValueError).
        OSError: if a file cannot be read.
    """
    folder = Path(folder)
    manifest = read_json(folder / MANIFEST_NAME)
    try:
        return _open_shards(folder, manifest, key, verify)
    except (KeyError, TypeError, AttributeError) as error:
        raise ValueError(f"malformed manifest in {folder}: {type(error).__name__}: {error}") from error


def _open_shards(folder: Path, manifest: dict, key: str, verify: bool) -> FeatureSet:
    """The body of :func:`load_features` (a missing manifest field raises KeyError or TypeError)."""
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"cache format {manifest.get('format_version')!r}, expected {FORMAT_VERSION!r}")
    if manifest.get("key") != key:
        raise ValueError(f"cache key mismatch: manifest has {manifest.get('key')!r}, expected {key!r}")
    expected = {name: [info["dtype"], info["row_shape"]] for name, info in manifest["tensors"].items()}
    columns: dict[str, list[torch.Tensor]] = {name: [] for name in _TENSOR_NAMES}
    for shard in manifest["shards"]:
        name = shard["file"]
        if Path(name).name != name or not name.startswith("shard-"):
            raise ValueError(f"manifest names a shard outside the folder: {name!r}")
        if verify and file_sha256(folder / name) != shard["sha256"]:
            raise ValueError(f"cache content hash mismatch in {name} (file corrupted)")
        tensors = map_safetensors(folder / name)
        for tensor_name in _TENSOR_NAMES:
            if tensor_name not in tensors:
                raise ValueError(f"{name} lacks tensor {tensor_name}")
            tensor = tensors[tensor_name]
            found = [str(tensor.dtype).removeprefix("torch."), list(tensor.shape[1:])]
            if found != expected.get(tensor_name) or len(tensor) != shard["rows"]:
                raise ValueError(f"{name}: {tensor_name} is {found[0]}{tuple(tensor.shape)}, the manifest says "
                                 f"{shard['rows']} rows of {expected.get(tensor_name)}")
            columns[tensor_name].append(tensor)
    if not manifest["shards"] or sum(s["rows"] for s in manifest["shards"]) != manifest["rows"]:
        raise ValueError(f"the manifest's shards do not hold its {manifest['rows']} rows")
    _report_unlisted(folder, {shard["file"] for shard in manifest["shards"]} | {MANIFEST_NAME})
    guids, mask = torch.cat(columns["guids"]), torch.cat(columns["text_mask"])  # small: copied into memory
    return FeatureSet(guids, LazyRows(columns["text_states"]), mask, LazyRows(columns["image_states"]))


def _report_unlisted(folder: Path, listed: set[str], shown: int = 5) -> list[str]:
    """Log (``logging.warning``) the entries of a cache folder that its manifest does not name,
    e.g. the temporary file of a writer that was killed, and return their names, sorted. They are
    not read, and not deleted here: the next :class:`ShardWriter` of the folder deletes unlisted
    shards and its own temporary files; anything else stays until the user removes it."""
    unlisted = sorted(entry.name for entry in folder.iterdir() if entry.name not in listed)
    if unlisted:
        more = f" and {len(unlisted) - shown} more" if len(unlisted) > shown else ""
        names = ", ".join(_printable(name) for name in unlisted[:shown])
        logger.warning("feature cache %s holds %d entr%s its manifest does not name, not read: %s%s", folder,
                       len(unlisted), "y" if len(unlisted) == 1 else "ies", names, more)
    return unlisted


def _printable(name: str) -> str:
    """``name`` with each unprintable character (a newline, say) written as its escape, so that a
    file name cannot break a log line in two."""
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in name)


def encode_into(folder: str | os.PathLike, key: str, backbone, guids: torch.Tensor, texts: Sequence[str],
                image_paths: Sequence[str | os.PathLike], *, dtype: str, batch_size: int, progress: bool = True,
                workers: int = 0, rows_per_shard: int | None = None) -> Path:
    """Encode ``N`` posts (:func:`msa_utils.features.extraction.encode_windows`) straight into the cache
    folder ``folder`` (:class:`ShardWriter`): memory holds one window of states. Returns ``folder``.

    Args:
        guids: ``(N,)`` int64; texts, image_paths: ``N`` posts, aligned. The other arguments: as
            for :func:`load_or_extract_features`.

    Raises:
        OSError: if an image cannot be read or the folder cannot be written.
    """
    with ShardWriter(folder, key, rows_per_shard) as writer:
        for start, text_states, text_mask, image_states in encode_windows(
                backbone, texts, image_paths, batch_size=batch_size, dtype=dtype, progress=progress, workers=workers):
            writer.append(text_states, text_mask, image_states, guids[start:start + len(text_mask)])
    return Path(folder)


def load_or_extract_features(backbone, guids: Sequence[int] | torch.Tensor, texts: Sequence[str],
                             image_paths: Sequence[str | os.PathLike], cache_dir: str | os.PathLike,
                             dtype: str = "float16", batch_size: int = 32, progress: bool = True,
                             rows_per_shard: int | None = None, workers: int = 0, processes=None) -> FeatureSet:
    """Return the features of these posts from the cache, or extract and cache them.

    Args:
        backbone: a :class:`msa_utils.features.encoders.FrozenBackbone`.
        guids, texts, image_paths: ``N`` posts, aligned.
        cache_dir: folder of the cache folders (created if missing; safe to delete).
        dtype: ``"float16"`` or ``"float32"`` (``"bfloat16"`` also accepted).
        batch_size: posts per encoder forward pass when extracting.
        progress: show a tqdm bar when extracting.
        rows_per_shard: posts per shard when writing (default: about :data:`SHARD_BYTES`).
        workers: DataLoader worker processes that decode images while extracting.
        processes: an ``accelerate.PartialState`` of several processes: the posts are encoded in
            slices, one per process (:func:`msa_utils.runner.distributed.extract_in_parts`); every
            process must call this. ``None``: this process alone.

    Returns:
        A :class:`FeatureSet` read from the cache (:func:`load_features`: lazy token states, also
        right after extracting) whose rows follow ``guids``: the encoders' own states, to be
        prepared by the backbone (:meth:`FeatureSet.map_image_states` with
        ``backbone.prepare_image_states``) before the classifier reads them.

    Raises:
        ValueError: for an unknown dtype or misaligned inputs.
        OSError: if an image cannot be read.

    A cache folder that is incomplete, unreadable, corrupted or has a different key is logged with
    ``logging.warning`` and rebuilt.
    """
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
    key = feature_cache_key(backbone, guids, texts, image_paths, dtype)
    folder = cache_path(cache_dir, backbone.name, key)
    if folder.exists():
        try:
            features = load_features(folder, key)
            logger.info("loaded %d cached feature rows from %s", len(features), folder)
            return features
        except Exception as error:  # any unusable cache is rebuilt, never used
            logger.warning("feature cache %s is unusable (%s: %s); rebuilding it", folder, type(error).__name__, error)
    guids = _checked_guids(guids, texts, image_paths)
    if processes is not None and processes.num_processes > 1:
        from msa_utils.runner.distributed import extract_in_parts  # builds on this module

        return extract_in_parts(backbone, guids, texts, image_paths, folder, key, processes, dtype=dtype,
                                batch_size=batch_size, workers=workers, progress=progress)
    encode_into(folder, key, backbone, guids, texts, image_paths, dtype=dtype, batch_size=batch_size,
                progress=progress, workers=workers, rows_per_shard=rows_per_shard)
    logger.info("cached %d feature rows in %s", len(guids), folder)
    return load_features(folder, key, verify=False)
