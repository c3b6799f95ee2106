"""Frozen-encoder features as the study holds them: in memory or memory-mapped from the cache.

The encoders are frozen, so their outputs never change during training: the study encodes each
post once (:mod:`msa_utils.features.extraction`), keeps the token states on disk
(:mod:`msa_utils.features.feature_cache`) and trains the multimodal part on them. This module holds what
both hand around:

* :class:`FeatureSet`: ``guids``, ``text_states``, ``text_mask``, ``image_states`` of ``N`` posts,
  rows aligned; the states are tensors or :class:`LazyRows`;
* :class:`LazyRows`: a read-only ``(N, ...)`` tensor whose rows live in memory-mapped shards and
  are read only when asked for, so a subset is a view and a batch reads only its rows: memory
  stays flat in the number of posts (``benchmarks/cache_memory.py``);
* :class:`NullInputs`: the encoders' outputs of the masked inputs the ablations use;
* :func:`pool_image_tokens`: the compact backbone's pooling of its image map.

The cache holds each encoder's OWN token states (e.g. the compact backbone's whole 7 x 7
EfficientNet map). What the classifier reads is made from them by the backbone's
:meth:`~msa_utils.features.encoders.FrozenBackbone.prepare_image_states` (for the compact backbone
:func:`pool_image_tokens`), applied per batch to a lazy set (:meth:`FeatureSet.map_image_states`),
so the same cache serves every ``image_grid``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

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
        block_of = torch.searchsorted(self._starts, positions.contiguous(), right=True) - 1
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
        return torch.arange(n)[index]  # Python's slice rules: slice(4, 2) is empty, not an error
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
    (e.g. from :func:`msa_utils.features.extraction.extract_features`) or :class:`LazyRows` (a loaded cache,
    :func:`msa_utils.features.feature_cache.load_features`): index them (``features.text_states[index]``) or use :meth:`batch`,
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
        row, e.g. :meth:`msa_utils.features.encoders.FrozenBackbone.prepare_image_states`): applied now to a
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
    the classifier reads them; made by :meth:`msa_utils.features.encoders.FrozenBackbone.null_inputs`.

    Attributes:
        text_states: ``(1, L, Dt)`` the text encoder on all-zero ids and an all-zero attention mask.
        text_mask: ``(1, L)`` int64, all zeros.
        image_states: ``(1, Li', Di)`` the image encoder on all-zero pixel values, prepared
            (pooled) like the features (:meth:`~msa_utils.features.encoders.FrozenBackbone.prepare`).

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
    study calls it only through :meth:`msa_utils.features.encoders.CompactBackbone.prepare_image_states`).

    Tokens are read row by row (as :meth:`msa_utils.features.encoders.CompactBackbone.encode_image` writes
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
