"""The on-disk feature cache: a folder per (backbone, data, settings) of memory-mapped safetensors shards (the
:class:`~msa_utils.features.sets.FeatureSet` columns, rows in order) and a manifest written last (key, format, dtypes,
row shapes, each shard's rows and SHA-256), every file atomically; files the manifest does not name are not read."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterable, Sequence

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from msa_utils.features.extraction import checked_guids, encode_windows
from msa_utils.features.sets import TENSOR_NAMES, FeatureSet, LazyRows, checked_dtype
from msa_utils.io import read_json, save_tensors, write_json
from msa_utils.io.hashing import Digest, file_sha256

logger = logging.getLogger(__name__)

FORMAT_VERSION = "3"
"""Bump when the file layout changes."""
FEATURES_VERSION = "1"
"""Bump when the code's features change (encoding, preprocessing, image loading, the text-below pass)."""
MANIFEST_NAME = "manifest.json"
SHARD_BYTES = 256 * 2**20
"""Default shard size [bytes]."""


def feature_cache_key(backbone, guids: Sequence[int] | torch.Tensor, texts: Sequence[str],
                      image_paths: Sequence[str | os.PathLike] | None, dtype: str, **settings) -> str:
    """Hex SHA-256 of the versions, the backbone's fingerprint, ``dtype``, ``settings`` (JSON-able) and every guid,
    text and image file's bytes in order (``image_paths`` ``None``: text only). ValueError if the lengths differ,
    OSError for a bad file."""
    guid_list = guids.tolist() if isinstance(guids, torch.Tensor) else [int(g) for g in guids]
    paths = [None] * len(texts) if image_paths is None else image_paths
    if not (len(guid_list) == len(texts) == len(paths)):
        raise ValueError(f"{len(guid_list)} guids, {len(texts)} texts and {len(paths)} images must match")
    digest = (Digest().add("format", FORMAT_VERSION).add("features", FEATURES_VERSION)
              .add("backbone", backbone.fingerprint()).add("dtype", str(dtype)).add("settings", settings))
    for guid, text, path in zip(guid_list, texts, paths):
        digest.add("guid", str(int(guid))).add("text", text)
        if path is not None:
            digest.add_file("image", path)
    return digest.hexdigest()


def cache_path(cache_dir: str | os.PathLike, backbone_name: str, key: str) -> Path:
    """``{cache_dir}/features-{backbone_name}-{key}``."""
    return Path(cache_dir) / f"features-{backbone_name}-{key}"


class ShardWriter:
    """``with ShardWriter(folder, key) as writer: writer.append(...)`` writes a cache folder a shard of
    ``rows_per_shard`` rows (``None``: about :data:`SHARD_BYTES`) at a time. Opening deletes the manifest (OSError if
    the folder is not writable); closing writes it and deletes unlisted shards and temporaries."""

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
        """Add ``B`` rows; ValueError if they differ in rows, or in dtype or row shape from earlier ones; RuntimeError
        once closed."""
        if self._closed:
            raise RuntimeError(f"the writer of {self.folder} is closed")
        batch = {"guids": torch.as_tensor(guids, dtype=torch.long).reshape(-1), "text_states": text_states,
                 "text_mask": torch.as_tensor(text_mask).long(), "image_states": image_states}
        rows = len(batch["guids"])
        if any(batch[name].shape[0] != rows for name in TENSOR_NAMES):
            raise ValueError("a batch's tensors differ in rows: "
                             + ", ".join(f"{name} {tuple(batch[name].shape)}" for name in TENSOR_NAMES))
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
        name = f"shard-{len(self._shards):05d}.safetensors"
        tensors = {key: value[:self._filled] for key, value in self._buffer.items()}
        save_tensors(self.folder / name, tensors, {"key": self.key, "format_version": FORMAT_VERSION})
        self._shards.append({"file": name, "rows": self._filled, "sha256": file_sha256(self.folder / name)})
        self._filled = 0

    def close(self) -> Path:
        """Write the last shard and the manifest; ValueError if no row was appended."""
        if self._closed:
            return self.folder
        if self._buffer is None:
            raise ValueError(f"no rows were written to {self.folder}")
        if self._filled:
            self._write_shard()
        manifest = {
            "format_version": FORMAT_VERSION, "key": self.key, "rows": sum(s["rows"] for s in self._shards),
            "tensors": {name: {"dtype": str(t.dtype).removeprefix("torch."), "row_shape": list(t.shape[1:])}
                        for name, t in self._buffer.items()}, "shards": self._shards}
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


def save_features(features: FeatureSet | Iterable[FeatureSet], folder: str | os.PathLike, key: str,
                  rows_per_shard: int | None = None) -> Path:
    """Write ``features`` (a set, or several: their rows in order) to the cache folder ``folder``; ValueError if
    empty."""
    with ShardWriter(folder, key, rows_per_shard) as writer:
        for part in [features] if isinstance(features, FeatureSet) else features:
            for rows in part.batches(rows_per_shard or 1024):
                writer.append(rows.text_states, rows.text_mask, rows.image_states, rows.guids)
    return Path(folder)


def map_safetensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """``{name: tensor}`` of a safetensors file, memory-mapped copy-on-write (``load_file(backend="mmap")``: pages
    are read when used); ValueError for a malformed file."""
    try:
        return load_file(path, backend="mmap")
    except SafetensorError as error:
        raise ValueError(f"{path}: {error}") from error


def load_features(folder: str | os.PathLike, key: str, verify: bool = True) -> FeatureSet:
    """Open a cache folder; ``verify`` hashes every shard (about 1 s a GB; ``False`` only for a folder this process
    has just written). FileNotFoundError for a missing file, ValueError for a malformed one or one that does not match
    ``key``, the format or the manifest."""
    folder = Path(folder)
    manifest = read_json(folder / MANIFEST_NAME)
    try:
        return _open_shards(folder, manifest, key, verify)
    except (KeyError, TypeError, AttributeError) as error:  # a missing or mistyped manifest field
        raise ValueError(f"malformed manifest in {folder}: {type(error).__name__}: {error}") from error


def _open_shards(folder: Path, manifest: dict, key: str, verify: bool) -> FeatureSet:
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"cache format {manifest.get('format_version')!r}, expected {FORMAT_VERSION!r}")
    if manifest.get("key") != key:
        raise ValueError(f"cache key mismatch: manifest has {manifest.get('key')!r}, expected {key!r}")
    expected = {name: [info["dtype"], info["row_shape"]] for name, info in manifest["tensors"].items()}
    columns: dict[str, list[torch.Tensor]] = {name: [] for name in TENSOR_NAMES}
    for shard in manifest["shards"]:
        name = shard["file"]
        if Path(name).name != name or not name.startswith("shard-"):
            raise ValueError(f"manifest names a shard outside the folder: {name!r}")
        if verify and file_sha256(folder / name) != shard["sha256"]:
            raise ValueError(f"cache content hash mismatch in {name} (file corrupted)")
        tensors = map_safetensors(folder / name)
        for tensor_name in TENSOR_NAMES:
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


def _report_unlisted(folder: Path, listed: set[str], shown: int = 5) -> None:
    """Warn of the folder's entries its manifest does not name."""
    unlisted = sorted(entry.name for entry in folder.iterdir() if entry.name not in listed)
    if unlisted:
        more = f" and {len(unlisted) - shown} more" if len(unlisted) > shown else ""
        # unprintable characters escaped
        names = ", ".join("".join(c if c.isprintable() else repr(c)[1:-1] for c in name) for name in unlisted[:shown])
        logger.warning("feature cache %s holds %d entr%s its manifest does not name, not read: %s%s", folder,
                       len(unlisted), "y" if len(unlisted) == 1 else "ies", names, more)


def encode_into(folder: str | os.PathLike, key: str, backbone, guids: torch.Tensor, texts: Sequence[str],
                image_paths: Sequence[str | os.PathLike], *, dtype: str, batch_size: int, progress: bool = True,
                workers: int = 0, rows_per_shard: int | None = None) -> Path:
    """Encode ``N`` posts straight into the cache folder (memory: one window)."""
    windows = encode_windows(backbone, texts, image_paths, batch_size=batch_size, dtype=dtype, progress=progress,
                             workers=workers)
    return save_features((FeatureSet(guids[start:start + len(mask)], states, mask, images)
                          for start, states, mask, images in windows), folder, key, rows_per_shard)


def load_or_build(folder: Path, key: str, build: Callable[[], object], what: str = "feature") -> FeatureSet:
    """``folder`` if it is a valid cache of ``key``, else written by ``build()`` (a warning if it exists), read back."""
    if folder.exists():
        try:
            features = load_features(folder, key)
            logger.info("loaded %d cached %s rows from %s", len(features), what, folder)
            return features
        except Exception as error:  # any unusable cache is rebuilt, never used
            logger.warning("%s cache %s is unusable (%s: %s); rebuilding it", what, folder, type(error).__name__, error)
    build()
    features = load_features(folder, key, verify=False)
    logger.info("cached %d %s rows in %s", len(features), what, folder)
    return features


def load_or_extract_features(backbone, guids: Sequence[int] | torch.Tensor, texts: Sequence[str],
                             image_paths: Sequence[str | os.PathLike], cache_dir: str | os.PathLike,
                             dtype: str = "float16", batch_size: int = 32, progress: bool = True,
                             rows_per_shard: int | None = None, workers: int = 0, processes=None) -> FeatureSet:
    """The encoders' own (unprepared) states of ``N`` posts, lazily from the cache (:func:`load_or_build`).
    ``workers``: decoding processes; ``processes``: an ``accelerate`` state, all of whose processes call this
    (:func:`extract_in_parts`). ValueError for a bad ``dtype`` or misaligned inputs, OSError for a bad image."""
    checked_dtype(dtype)
    key = feature_cache_key(backbone, guids, texts, image_paths, dtype)
    folder = cache_path(cache_dir, backbone.name, key)

    def build() -> None:
        checked = checked_guids(guids, texts, image_paths)
        if processes is not None and processes.num_processes > 1:
            extract_in_parts(backbone, checked, texts, image_paths, folder, key, processes, dtype=dtype,
                             batch_size=batch_size, workers=workers, progress=progress)
        else:
            encode_into(folder, key, backbone, checked, texts, image_paths, dtype=dtype, batch_size=batch_size,
                        progress=progress, workers=workers, rows_per_shard=rows_per_shard)

    return load_or_build(folder, key, build)


def extract_in_parts(backbone, guids: torch.Tensor, texts: Sequence[str], image_paths: Sequence[str | os.PathLike],
                     folder: str | os.PathLike, key: str, processes, *, dtype: str, batch_size: int,
                     workers: int = 0, progress: bool = True) -> Path:
    """Process ``r`` encodes its slice into ``{folder}.part{r}``; the main one joins the parts into ``folder``."""
    folder = Path(folder)
    part = lambda rank: Path(f"{folder}.part{rank}")  # noqa: E731
    with processes.split_between_processes(list(range(len(guids)))) as mine:
        if mine:
            encode_into(part(processes.process_index), key, backbone, guids[mine], [texts[i] for i in mine],
                        [image_paths[i] for i in mine], dtype=dtype, batch_size=batch_size, workers=workers,
                        progress=progress and processes.is_main_process)
    processes.wait_for_everyone()
    if processes.is_main_process:
        parts = [load_features(part(r), key, verify=False) for r in range(processes.num_processes) if part(r).is_dir()]
        save_features(parts, folder, key)  # the parts' rows in order, in shards of the default size
        for r in range(processes.num_processes):
            shutil.rmtree(part(r), ignore_errors=True)
    processes.wait_for_everyone()
    return folder

