"""The frozen encoders' pass over the posts: batches of similar text length, streamed in windows.

:func:`encode_windows` takes the posts in windows of :data:`SORT_WINDOW`; within a window it
encodes batches of similar text length, each cut to its longest text
(:func:`length_sorted_batches`, :meth:`msa_utils.features.encoders.FrozenBackbone.encode_preprocessed`),
while DataLoader workers decode the next images, and yields the window in input order.
:func:`msa_utils.features.feature_cache.load_or_extract_features` streams the windows into the on-disk
cache, so the pass holds one window of states whatever the number of posts;
:func:`extract_features` collects them in memory (tests, benchmarks).
"""

from __future__ import annotations

import os
from typing import Iterator, Sequence

import torch
from tqdm import tqdm

from msa_utils.features.sets import _DTYPES, FeatureSet
from msa_utils.config.runtime import ExpectedTime

SORT_WINDOW = 2048
"""Posts sorted by text length together in the encoders' pass (:func:`length_sorted_batches`):
the pass holds one window of states in memory, whatever the number of posts."""


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


def length_sorted_batches(lengths: Sequence[int] | torch.Tensor, batch_size: int,
                          window: int = SORT_WINDOW) -> list[list[int]]:
    """Batches of post positions for the encoders' pass: each window of ``window`` consecutive
    posts is sorted by text length, then cut into batches, so that cutting each batch to its
    longest text (:meth:`msa_utils.features.encoders.FrozenBackbone.encode_preprocessed`) saves most of
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


def encode_windows(backbone, texts: Sequence[str], image_paths: Sequence[str | os.PathLike], *,
                   batch_size: int = 32, dtype: str | torch.dtype = "float32", progress: bool = True,
                   workers: int = 0, window: int = SORT_WINDOW
                   ) -> Iterator[tuple[int, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Encode the posts with the frozen backbone, one window of ``window`` consecutive posts at a time.

    Within a window, posts are encoded in batches of similar text length
    (:func:`length_sorted_batches`), each cut to its longest text; images are decoded and
    preprocessed by ``workers`` DataLoader processes while the encoders run (pinned memory on
    CUDA). After the first seconds the expected time of the pass is printed
    (:class:`msa_utils.config.runtime.ExpectedTime`, with ``progress``).

    Args:
        backbone: a :class:`msa_utils.features.encoders.FrozenBackbone` (its ``precision`` applies).
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
        backbone: a :class:`msa_utils.features.encoders.FrozenBackbone`.
        texts: ``N`` texts (already cleaned/translated as the study wants them).
        image_paths: ``N`` image files (opened with ``msa_utils.data.images.load_image`` if present).
        guids: ``N`` post ids.
        batch_size: posts per encoder forward pass.
        progress: show a tqdm bar and the expected time.
        dtype: dtype of the stored states (``"float16"`` halves memory; ``"float32"`` is exact).
        workers: DataLoader worker processes for decoding (0: the main process).

    Returns:
        A :class:`FeatureSet` on the CPU holding the encoders' own states (not prepared: see
        :meth:`msa_utils.features.encoders.FrozenBackbone.prepare`); text states are zeros at padding
        positions. Peak memory: all the features plus one window (:func:`msa_utils.features.feature_cache.load_or_extract_features`
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
