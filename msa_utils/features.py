"""Frozen-encoder features of every post, computed once and cached on disk (safetensors shards,
read memory-mapped).

The encoders are frozen, so their outputs never change during training: the study encodes each
post once (:func:`extract_features`) and trains the multimodal part on the cached token states.
:func:`load_or_extract_features` keeps ONE cache folder per (backbone, data, settings),
``{cache_dir}/features-{backbone}-{key}/`` (:func:`cache_path`). Its key is a
:class:`msa_utils.hashing.Digest` (SHA-256) over

* :data:`FORMAT_VERSION`,
* the backbone's :meth:`~msa_utils.encoders.FrozenBackbone.fingerprint` (model identity, a hash of
  its weights, tokenisation and image preprocessing),
* the cache dtype,
* the image loader's identity: the source of :mod:`msa_utils.images` (any edit of it invalidates
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
A cache of an older format (format 2: one ``features-{backbone}-{key}.safetensors`` file) has
another path and is ignored.

**Reading.** :func:`load_features` verifies each shard's SHA-256 by streaming its bytes (1 MiB at
a time, nothing kept) and memory-maps it (``numpy.memmap``, copy-on-write, never written back):
nothing of the token states is read into memory on load. ``text_states`` and ``image_states``
become :class:`LazyRows`, which read only the rows asked for (``rows[index]``), across shards;
``guids`` and ``text_mask`` (8 + 8 L bytes a post, 0.1 % of FLAVA's row) are copied into memory.
:meth:`FeatureSet.subset` of a lazy set is a view (a row index, no copy) and
:meth:`FeatureSet.batch` gathers the rows of one batch, so memory stays flat in the number of
posts (``benchmarks/cache_memory.py``).

The cache holds each encoder's OWN token states (e.g. the compact backbone's whole 7 x 7
EfficientNet map). What the classifier reads is made from them by the backbone's
:meth:`~msa_utils.encoders.FrozenBackbone.prepare_image_states` (for the compact backbone
:func:`pool_image_tokens`), applied per batch to a lazy set (:meth:`FeatureSet.map_image_states`),
so the same cache serves every ``image_grid``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from tqdm import tqdm

from msa_utils import images as images_module
from msa_utils.hashing import Digest, file_sha256
from msa_utils.io import atomic_path, read_json, write_json

logger = logging.getLogger(__name__)

FORMAT_VERSION = "3"
"""Bump when the file layout or the meaning of the cached tensors changes (2: key and content hash
computed with :class:`msa_utils.hashing.Digest`; 3: a folder of shards and a manifest, read
memory-mapped)."""

MANIFEST_NAME = "manifest.json"
"""The manifest of a cache folder, written last (module docstring)."""

SHARD_BYTES = 256 * 2**20
"""Default size of a shard: ``rows_per_shard = max(1, SHARD_BYTES // bytes of one post)``."""

_DTYPES = {"float16": torch.float16, "float32": torch.float32, "bfloat16": torch.bfloat16}
_TENSOR_NAMES = ("guids", "text_states", "text_mask", "image_states")


class LazyRows:
    """A read-only ``(N, ...)`` tensor whose rows are read only when asked for.

    The rows live in ``blocks``: tensors of one dtype and row shape (e.g. the memory-mapped shards
    of a cache), read as if concatenated. A view may select rows (:meth:`take`, no copy) and pass
    every batch read through a row-wise function (:meth:`map`, e.g. pooling image tokens).
    ``rows[index]`` (an int, a slice, or a 1-d sequence / array / tensor of ints, negatives
    counted from the end, repeats allowed) gathers those rows, and only those, into a new tensor
    in memory. Shapes and dtypes are those of the equivalent tensor: ``rows[index]`` equals
    ``fn(torch.cat(blocks)[selection][index])`` bit for bit.

    Args:
        blocks: ``(n_k, ...)`` tensors on the CPU, same dtype and row shape (at least one).
        index: ``(N,)`` int64 positions into the concatenated blocks (``None``: all rows).
        transform: ``(B, ...) -> (B, ...')``, applied to each batch read; must treat rows
            independently (rows in, the same rows out).

    Raises:
        ValueError: if there is no block, or the blocks differ in dtype or row shape.
        IndexError: if ``index`` has a position outside the blocks.
    """

    def __init__(self, blocks: Sequence[torch.Tensor], index: torch.Tensor | None = None,
                 transform: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        self._blocks = tuple(blocks)
        if not self._blocks:
            raise ValueError("LazyRows needs at least one block")
        first = self._blocks[0]
        for block in self._blocks[1:]:
            if block.dtype != first.dtype or block.shape[1:] != first.shape[1:]:
                raise ValueError(f"blocks differ: {first.dtype}{tuple(first.shape[1:])} and "
                                 f"{block.dtype}{tuple(block.shape[1:])} rows")
        self._starts = torch.tensor([0] + [len(b) for b in self._blocks]).cumsum(0)
        if index is not None:
            index = _positions(index, int(self._starts[-1]))
        self._index = index
        self._transform = transform
        self._row: tuple[torch.Size, torch.dtype] | None = None

    @property
    def blocks(self) -> tuple[torch.Tensor, ...]:
        """The tensors holding the rows (before any selection or function)."""
        return self._blocks

    def __len__(self) -> int:
        return len(self._index) if self._index is not None else int(self._starts[-1])

    def _row_info(self) -> tuple[torch.Size, torch.dtype]:
        """Row shape and dtype of what :meth:`__getitem__` returns (the function applied to one row)."""
        if self._row is None:
            first = self._blocks[0]
            if self._transform is None or int(self._starts[-1]) == 0:
                self._row = (first.shape[1:], first.dtype)
            else:
                sample = self._transform(self._gather(torch.zeros(1, dtype=torch.long)))
                self._row = (sample.shape[1:], sample.dtype)
        return self._row

    @property
    def shape(self) -> torch.Size:
        """``(N, ...)``, as the tensor these rows stand for."""
        return torch.Size((len(self), *self._row_info()[0]))

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the rows read."""
        return self._row_info()[1]

    def __getitem__(self, index) -> torch.Tensor:
        scalar = isinstance(index, (int, np.integer)) or getattr(index, "ndim", None) == 0
        positions = _positions(index, len(self))
        if self._index is not None:
            positions = self._index[positions]
        if len(positions) == 0:
            return torch.empty((0, *self._row_info()[0]), dtype=self.dtype)
        rows = self._gather(positions)
        if self._transform is not None:
            rows = self._transform(rows)
        return rows[0] if scalar else rows

    def _gather(self, positions: torch.Tensor) -> torch.Tensor:
        """Rows at ``positions`` (into the concatenated blocks, non-empty), copied into a new tensor.

        One ``torch.stack`` of row views: a single copy, and (single-threaded) several times
        faster than advanced indexing for float16 rows of 100 kB.
        """
        block_of = torch.searchsorted(self._starts, positions, right=True) - 1
        rows = positions - self._starts[block_of]
        return torch.stack([self._blocks[b][r] for b, r in zip(block_of.tolist(), rows.tolist())])

    def take(self, index) -> "LazyRows":
        """A view of rows ``index`` (as in ``rows[index]``, 1-d): no data is read or copied."""
        positions = _positions(index, len(self))
        if self._index is not None:
            positions = self._index[positions]
        return LazyRows(self._blocks, positions, self._transform)

    def map(self, transform: Callable[[torch.Tensor], torch.Tensor]) -> "LazyRows":
        """A view whose batches go through ``transform`` (after any earlier one); no data is read."""
        before = self._transform
        combined = transform if before is None else (lambda rows: transform(before(rows)))
        return LazyRows(self._blocks, self._index, combined)

    def __repr__(self) -> str:
        return f"LazyRows(shape={tuple(self.shape)}, dtype={self.dtype}, blocks={len(self._blocks)})"


def _positions(index, n: int) -> torch.Tensor:
    """``index`` (int, slice, 1-d ints) as ``(B,)`` int64 positions in ``0..n-1``.

    Raises:
        IndexError: for a position outside ``-n..n-1``, or an index that is not integer.
    """
    if isinstance(index, slice):
        return torch.arange(*index.indices(n))
    positions = torch.as_tensor(index).reshape(-1)
    if positions.numel() == 0:
        return torch.zeros(0, dtype=torch.long)
    if positions.dtype == torch.bool or positions.is_floating_point() or positions.is_complex():
        raise IndexError(f"rows are indexed by integers, got {positions.dtype}")
    positions = positions.long()
    if int(positions.min()) < -n or int(positions.max()) >= n:
        raise IndexError(f"row index out of range for {n} rows")
    return torch.where(positions < 0, positions + n, positions)


Column = torch.Tensor | LazyRows
"""A feature column: a tensor in memory, or rows read on demand (:class:`LazyRows`)."""


@dataclass
class FeatureSet:
    """Frozen-encoder outputs of ``N`` posts, row ``i`` belonging to ``guids[i]``.

    ``guids`` and ``text_mask`` are always tensors in memory. The token states are tensors
    (e.g. from :func:`extract_features`) or :class:`LazyRows` (a loaded cache,
    :func:`load_features`): index them (``features.text_states[index]``) or use :meth:`batch`,
    which works for both; whole-tensor operations work on tensors only.

    Attributes:
        guids: ``(N,)`` int64 post ids.
        text_states: ``(N, L, Dt)`` text token states (float16, bfloat16 or float32).
        text_mask: ``(N, L)`` int64 attention mask, 1 for real tokens, 0 for padding.
        image_states: ``(N, Li, Di)`` image token states.

    Raises:
        TypeError: (on construction) if ``guids`` or ``text_mask`` is not a tensor.
        ValueError: (on construction) if the columns differ in length.
    """

    guids: torch.Tensor
    text_states: Column
    text_mask: torch.Tensor
    image_states: Column

    def __post_init__(self) -> None:
        for name in ("guids", "text_mask"):
            if not isinstance(getattr(self, name), torch.Tensor):
                raise TypeError(f"FeatureSet.{name} must be a tensor, got {type(getattr(self, name)).__name__}")
        n = self.guids.shape[0]
        for name in _TENSOR_NAMES[1:]:
            if getattr(self, name).shape[0] != n:
                raise ValueError(f"{name} has {getattr(self, name).shape[0]} rows, guids has {n}")

    def __len__(self) -> int:
        return int(self.guids.shape[0])

    def index_of(self, guids: Sequence[int] | torch.Tensor) -> torch.Tensor:
        """Row positions ``(len(guids),)`` int64 of the given guids.

        Raises:
            KeyError: if a guid is not in this set.
        """
        position = {int(g): i for i, g in enumerate(self.guids.tolist())}
        wanted = guids.tolist() if isinstance(guids, torch.Tensor) else list(guids)
        missing = [int(g) for g in wanted if int(g) not in position]
        if missing:
            raise KeyError(f"{len(missing)} guids not in the feature set, e.g. {missing[:5]}")
        return torch.tensor([position[int(g)] for g in wanted], dtype=torch.long)

    def subset(self, guids: Sequence[int] | torch.Tensor) -> "FeatureSet":
        """The rows of ``guids``, in that order: tensors are copied (their rows), :class:`LazyRows`
        become views (:meth:`LazyRows.take`: a row index, nothing read).

        Raises:
            KeyError: if a guid is not in this set.
        """
        rows = self.index_of(guids)
        pick = lambda column: column.take(rows) if isinstance(column, LazyRows) else column[rows]
        return FeatureSet(self.guids[rows], pick(self.text_states), self.text_mask[rows], pick(self.image_states))

    def batch(self, index: slice | Sequence[int] | np.ndarray | torch.Tensor) -> "FeatureSet":
        """Rows ``index`` (a slice or 1-d positions, repeats allowed) with every column a tensor in
        memory: what a training step reads (lazy columns read only these rows, across shards).

        Returns:
            A :class:`FeatureSet` of ``B`` rows, same dtypes (a slice of a tensor column is a view).

        Raises:
            IndexError: if a position is out of range.
        """
        if not isinstance(index, slice):
            index = _positions(index, len(self))
        return FeatureSet(self.guids[index], self.text_states[index], self.text_mask[index], self.image_states[index])

    def batches(self, batch_size: int = 1024) -> Iterator["FeatureSet"]:
        """:meth:`batch` of rows ``0..b-1``, ``b..2b-1``, ... in order (memory: one batch at a time).

        Raises:
            ValueError: if ``batch_size`` is not positive.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        for start in range(0, len(self), batch_size):
            yield self.batch(slice(start, start + batch_size))

    def in_memory(self) -> "FeatureSet":
        """Every row in memory (:meth:`batch` of all rows): for small sets and tests."""
        return self.batch(slice(None))

    def map_image_states(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> "FeatureSet":
        """The set with ``image_states`` through ``fn`` (``(B, Li, Di) -> (B, Li', Di)``, row by
        row, e.g. :meth:`msa_utils.encoders.FrozenBackbone.prepare_image_states`): applied now to a
        tensor, to each batch read from :class:`LazyRows` (:meth:`LazyRows.map`). The other columns
        are shared, not copied.
        """
        images = self.image_states
        return dataclasses.replace(self, image_states=images.map(fn) if isinstance(images, LazyRows) else fn(images))

    def tensors(self) -> dict[str, Column]:
        """The four columns by name (no copies): tensors, or :class:`LazyRows`."""
        return {name: getattr(self, name) for name in _TENSOR_NAMES}


@dataclass(frozen=True)
class NullInputs:
    """Frozen-encoder outputs of the masked inputs used by the ablations (the paper's masking), as
    the classifier reads them; made by :meth:`msa_utils.encoders.FrozenBackbone.null_inputs`.

    Attributes:
        text_states: ``(1, L, Dt)`` the text encoder on all-zero ids and an all-zero attention mask.
        text_mask: ``(1, L)`` int64, all zeros.
        image_states: ``(1, Li', Di)`` the image encoder on all-zero pixel values, prepared
            (pooled) like the features (:meth:`~msa_utils.encoders.FrozenBackbone.prepare`).

    Raises:
        ValueError: (on construction) if a tensor does not have one row, the wrong rank, or the
            text states and mask disagree in length.
    """

    text_states: torch.Tensor
    text_mask: torch.Tensor
    image_states: torch.Tensor

    def __post_init__(self) -> None:
        for name, rank in (("text_states", 3), ("text_mask", 2), ("image_states", 3)):
            tensor = getattr(self, name)
            if tensor.dim() != rank or tensor.shape[0] != 1:
                raise ValueError(f"NullInputs.{name} must have shape (1, ...) of rank {rank}, "
                                 f"got {tuple(tensor.shape)}")
        if self.text_states.shape[1] != self.text_mask.shape[1]:
            raise ValueError(f"null text states {tuple(self.text_states.shape)} and mask "
                             f"{tuple(self.text_mask.shape)} differ in length")


def pool_image_tokens(states: torch.Tensor, grid: int | None) -> torch.Tensor:
    """Average-pool a square grid of image tokens to ``grid x grid`` tokens (a pure function; the
    study calls it only through :meth:`msa_utils.encoders.CompactBackbone.prepare_image_states`).

    Tokens are read row by row (as :meth:`msa_utils.encoders.CompactBackbone.encode_image` writes
    them), pooled with ``torch.nn.functional.adaptive_avg_pool2d``, and written back row by row.

    Args:
        states: ``(N, S*S, C)`` image token states.
        grid: output side; ``None`` or ``S`` returns ``states`` itself (no copy).

    Returns:
        ``(N, grid*grid, C)``, same dtype.

    Raises:
        ValueError: if the token count is not a perfect square (e.g. FLAVA's 197 tokens, which
            include a CLS token) or ``grid`` is not in ``1..S``.
    """
    if grid is None:
        return states
    n, tokens, channels = states.shape
    side = math.isqrt(tokens)
    if side * side != tokens:
        raise ValueError(f"{tokens} image tokens do not form a square grid; cannot pool to {grid}x{grid}")
    if not 1 <= grid <= side:
        raise ValueError(f"grid must be in 1..{side}, got {grid}")
    if grid == side:
        return states
    maps = states.transpose(1, 2).reshape(n, channels, side, side)
    pooled = F.adaptive_avg_pool2d(maps, grid)
    return pooled.flatten(2).transpose(1, 2).contiguous()


class _ImageFiles(torch.utils.data.Dataset):
    """Post ``i``'s preprocessed image ``(3, S, S)``, for a DataLoader whose workers decode and
    preprocess while the encoders run (:meth:`FrozenBackbone.preprocess_images` of one path)."""

    def __init__(self, backbone, image_paths: Sequence[str | os.PathLike]) -> None:
        self.backbone, self.image_paths = backbone, list(image_paths)

    def __len__(self) -> int:
        return len(self.image_paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.backbone.preprocess_images([self.image_paths[i]])[0]


def _one_thread(_worker_id: int) -> None:
    torch.set_num_threads(1)  # a decoding worker must not compete with the encoders' threads


def length_sorted_batches(lengths: Sequence[int] | torch.Tensor, batch_size: int, window: int = 2048) -> list[list[int]]:
    """Batches of post positions for the encoders' pass: each window of ``window`` consecutive
    posts is sorted by text length, then cut into batches, so that cutting each batch to its
    longest text (:meth:`msa_utils.encoders.FrozenBackbone.encode_preprocessed`) saves most of
    the padding. Every position appears exactly once; the order within a window is by length,
    ties keeping their order (stable). Windows bound how far a post moves (for streaming).

    Args:
        lengths: ``(N,)`` real tokens per text.
        batch_size: posts per batch. window: posts sorted together.

    Returns:
        Lists of positions ``0..N-1``, each at most ``batch_size`` long.

    Raises:
        ValueError: if ``batch_size`` or ``window`` is not positive.
    """
    if batch_size < 1 or window < 1:
        raise ValueError(f"batch_size and window must be positive, got {batch_size}, {window}")
    lengths = torch.as_tensor(lengths)
    batches = []
    for start in range(0, len(lengths), window):
        order = (torch.argsort(lengths[start:start + window], stable=True) + start).tolist()
        batches += [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    return batches


SORT_WINDOW = 2048
"""Posts sorted by text length together in the encoders' pass (:func:`length_sorted_batches`):
the pass holds one window of states in memory, whatever the number of posts."""


def encode_windows(backbone, texts: Sequence[str], image_paths: Sequence[str | os.PathLike], *,
                   batch_size: int = 32, dtype: str | torch.dtype = "float32", progress: bool = True,
                   workers: int = 0, window: int = SORT_WINDOW
                   ) -> Iterator[tuple[int, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Encode the posts with the frozen backbone, one window of ``window`` consecutive posts at a time.

    Within a window, posts are encoded in batches of similar text length
    (:func:`length_sorted_batches`), each cut to its longest text; images are decoded and
    preprocessed by ``workers`` DataLoader processes while the encoders run (pinned memory on
    CUDA). After the first seconds the expected time of the pass is printed
    (:class:`msa_utils.runtime.ExpectedTime`, with ``progress``).

    Args:
        backbone: a :class:`msa_utils.encoders.FrozenBackbone` (its ``precision`` applies).
        texts, image_paths: ``N`` posts, aligned.
        batch_size: posts per encoder forward pass. dtype: dtype of the yielded states.
        progress: show a tqdm bar and the expected time.
        workers: DataLoader worker processes for decoding (0: the main process).
        window: posts per window.

    Yields:
        ``(start, text_states (W, L, Dt), text_mask (W, L) int64, image_states (W, Li, Di))`` on the
        CPU for posts ``start .. start + W - 1`` in input order; text states are zeros at padding.

    Raises:
        ValueError: if ``texts`` and ``image_paths`` differ in length.
    """
    from msa_utils.runtime import ExpectedTime  # runtime imports nothing of ours; kept local for clarity

    dtype = _DTYPES[dtype] if isinstance(dtype, str) else dtype
    texts, n = list(texts), len(texts)
    if len(image_paths) != n:
        raise ValueError(f"{n} texts but {len(image_paths)} images")
    lengths = backbone.tokenize(texts)["attention_mask"].sum(1)
    batches = length_sorted_batches(lengths, batch_size, window)
    loader = torch.utils.data.DataLoader(
        _ImageFiles(backbone, image_paths), batch_sampler=batches, num_workers=workers,
        pin_memory=backbone.device.type == "cuda", worker_init_fn=_one_thread if workers else None,
    )
    clock = ExpectedTime(f"encode ({backbone.name})", n, enabled=progress)
    bar = tqdm(zip(batches, loader), total=len(batches), desc=f"encode ({backbone.name})", disable=not progress,
               unit="batch")
    buffers, filled = None, 0
    for rows, pixel_values in bar:  # a window's batches come together (length_sorted_batches)
        t, m, i = backbone.encode_preprocessed([texts[r] for r in rows], pixel_values)
        start = rows[0] // window * window
        if buffers is None:
            size = min(window, n - start)
            buffers = (torch.empty((size, *t.shape[1:]), dtype=dtype), torch.empty((size, m.shape[1]), dtype=torch.long),
                       torch.empty((size, *i.shape[1:]), dtype=dtype))
        local = torch.as_tensor(rows) - start
        for buffer, values in zip(buffers, (t, m, i)):
            buffer[local] = values.to("cpu", buffer.dtype)
        filled += len(rows)
        clock.update(len(rows))
        if filled == len(buffers[0]):
            yield (start, *buffers)
            buffers, filled = None, 0


def extract_features(backbone, texts: Sequence[str], image_paths: Sequence[str | os.PathLike],
                     guids: Sequence[int] | torch.Tensor, batch_size: int = 32, progress: bool = True,
                     dtype: str | torch.dtype = "float32", workers: int = 0) -> FeatureSet:
    """Encode every post with the frozen backbone into memory (:func:`encode_windows`: batches of
    similar text length, ``workers`` decoding processes); the rows follow the input order.

    Args:
        backbone: a :class:`msa_utils.encoders.FrozenBackbone`.
        texts: ``N`` texts (already cleaned/translated as the study wants them).
        image_paths: ``N`` image files (opened with ``msa_utils.images.load_image`` if present).
        guids: ``N`` post ids.
        batch_size: posts per encoder forward pass.
        progress: show a tqdm bar and the expected time.
        dtype: dtype of the stored states (``"float16"`` halves memory; ``"float32"`` is exact).
        workers: DataLoader worker processes for decoding (0: the main process).

    Returns:
        A :class:`FeatureSet` on the CPU holding the encoders' own states (not prepared: see
        :meth:`msa_utils.encoders.FrozenBackbone.prepare`); text states are zeros at padding
        positions. Peak memory: all the features plus one window (:func:`load_or_extract_features`
        streams them to the cache instead).

    Raises:
        ValueError: if the three sequences differ in length or are empty.
    """
    guids = _checked_guids(guids, texts, image_paths)
    n, columns = len(guids), None
    for start, *window in encode_windows(backbone, texts, image_paths, batch_size=batch_size, dtype=dtype,
                                         progress=progress, workers=workers):
        if columns is None:
            columns = [torch.empty((n, *w.shape[1:]), dtype=w.dtype) for w in window]
        for column, values in zip(columns, window):
            column[start:start + len(values)] = values
    return FeatureSet(guids, *columns)


def _checked_guids(guids, texts, image_paths) -> torch.Tensor:
    """``guids`` as an int64 tensor; ``ValueError`` if the three sequences differ in length or are empty."""
    guids = torch.as_tensor(list(map(int, guids)) if not isinstance(guids, torch.Tensor) else guids, dtype=torch.long)
    if not (len(texts) == len(image_paths) == len(guids)):
        raise ValueError(f"{len(texts)} texts, {len(image_paths)} images and {len(guids)} guids must match")
    if len(guids) == 0:
        raise ValueError("no posts to encode")
    return guids


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
    shards of an earlier cache in the folder that the new manifest does not list are deleted then.
    Readers of the earlier cache are not disturbed: each file is replaced atomically
    (``os.replace``), and a memory-mapped file stays readable after its name is reused.

    Args:
        folder: the cache folder (created; a file in its place is deleted).
        key: the cache key, stored in the manifest and in each shard's metadata.
        rows_per_shard: posts per shard; ``None``: ``max(1, SHARD_BYTES // bytes of one post)``,
            from the first batch.

    Raises:
        ValueError: if ``rows_per_shard`` is not positive.
    """

    def __init__(self, folder: str | os.PathLike, key: str, rows_per_shard: int | None = None) -> None:
        if rows_per_shard is not None and rows_per_shard < 1:
            raise ValueError(f"rows_per_shard must be positive, got {rows_per_shard}")
        self.folder, self.key, self.rows_per_shard = Path(folder), key, rows_per_shard
        if self.folder.exists() and not self.folder.is_dir():
            self.folder.unlink()
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / MANIFEST_NAME).unlink(missing_ok=True)
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
        for stale in self.folder.glob("shard-*.safetensors"):
            if stale.name not in listed:
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
    guids, mask = torch.cat(columns["guids"]), torch.cat(columns["text_mask"])  # small: copied into memory
    return FeatureSet(guids, LazyRows(columns["text_states"]), mask, LazyRows(columns["image_states"]))


def load_or_extract_features(backbone, guids: Sequence[int] | torch.Tensor, texts: Sequence[str],
                             image_paths: Sequence[str | os.PathLike], cache_dir: str | os.PathLike,
                             dtype: str = "float16", batch_size: int = 32, progress: bool = True,
                             rows_per_shard: int | None = None, workers: int = 0, processes=None) -> FeatureSet:
    """Return the features of these posts from the cache, or extract and cache them.

    Args:
        backbone: a :class:`msa_utils.encoders.FrozenBackbone`.
        guids, texts, image_paths: ``N`` posts, aligned.
        cache_dir: folder of the cache folders (created if missing; safe to delete).
        dtype: ``"float16"`` or ``"float32"`` (``"bfloat16"`` also accepted).
        batch_size: posts per encoder forward pass when extracting.
        progress: show a tqdm bar when extracting.
        rows_per_shard: posts per shard when writing (default: about :data:`SHARD_BYTES`).
        workers: DataLoader worker processes that decode images while extracting.
        processes: an ``accelerate.PartialState`` of several processes: the posts are encoded in
            slices, one per process (:func:`msa_utils.distributed.extract_in_parts`); every
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
        from msa_utils.distributed import extract_in_parts  # builds on this module

        return extract_in_parts(backbone, guids, texts, image_paths, folder, key, processes, dtype=dtype,
                                batch_size=batch_size, workers=workers, progress=progress)
    with ShardWriter(folder, key, rows_per_shard) as writer:  # streamed: one window in memory
        for start, text_states, text_mask, image_states in encode_windows(
                backbone, texts, image_paths, batch_size=batch_size, dtype=dtype, progress=progress, workers=workers):
            writer.append(text_states, text_mask, image_states, guids[start:start + len(text_mask)])
    logger.info("cached %d feature rows in %s", len(guids), folder)
    return load_features(folder, key, verify=False)
