"""The frozen encoders' pass over the posts: windows of :data:`SORT_WINDOW` posts in input order, encoded in batches
of similar text length each cut to its longest text, while DataLoader workers decode the next images."""

from __future__ import annotations

import os
from typing import Iterator, Sequence

import torch

from msa_utils.config.runtime import ExpectedTime, progress_bar
from msa_utils.features.sets import FeatureSet, checked_dtype

SORT_WINDOW = 2048
"""Posts sorted by text length together; the pass holds one window."""


class _ImageFiles(torch.utils.data.Dataset):
    """Post ``i``'s preprocessed image ``(3, S, S)``."""

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
    """Batches of positions ``0..N-1``, each once: every ``window`` posts stable-sorted by ``lengths`` ``(N,)``, then
    cut into ``batch_size``; ValueError unless both are positive."""
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
    """Yield ``(start, text_states (W, L, Dt), text_mask (W, L), image_states (W, Li, Di))`` on the CPU, window by
    window; ``workers`` processes decode images. ValueError if ``texts`` and ``image_paths`` differ in length."""
    dtype = checked_dtype(dtype)
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
    bar = progress_bar(zip(batches, loader), show=progress, total=len(batches), desc=f"encode ({backbone.name})",
                       unit="batch")
    buffers, filled = None, 0
    for rows, pixel_values in bar:  # a window's batches come together (length_sorted_batches)
        t, m, i = backbone.encode_preprocessed([texts[r] for r in rows], pixel_values)
        start = rows[0] // window * window
        if buffers is None:
            size = min(window, n - start)
            buffers = [torch.empty((size, *v.shape[1:]), dtype=torch.long if v is m else dtype) for v in (t, m, i)]
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
    """The encoders' own (unprepared) states of ``N`` posts in memory; ValueError as :func:`checked_guids`."""
    guids = checked_guids(guids, texts, image_paths)
    n, columns = len(guids), None
    for start, *window in encode_windows(backbone, texts, image_paths, batch_size=batch_size, dtype=dtype,
                                         progress=progress, workers=workers):
        if columns is None:
            columns = [torch.empty((n, *w.shape[1:]), dtype=w.dtype) for w in window]
        for column, values in zip(columns, window):
            column[start:start + len(values)] = values
    return FeatureSet(guids, *columns)


def checked_guids(guids, texts, image_paths) -> torch.Tensor:
    """``guids`` as an int64 tensor; ValueError if the three differ in length or are empty."""
    guids = torch.as_tensor(list(map(int, guids)) if not isinstance(guids, torch.Tensor) else guids, dtype=torch.long)
    if not (len(texts) == len(image_paths) == len(guids)):
        raise ValueError(f"{len(texts)} texts, {len(image_paths)} images and {len(guids)} guids must match")
    if len(guids) == 0:
        raise ValueError("no posts to encode")
    return guids
