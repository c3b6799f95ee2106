"""The study's one way to hash its keys: SHA-256 over fields written as ``label:type:length:`` and their
bytes (``str`` in UTF-8, a tensor or array its dtype and shape then its C-order bytes, anything else
canonical JSON), so different sequences of fields never give the same stream. Keys come from data,
settings and version constants: a module (its source text) is refused."""

from __future__ import annotations

import hashlib
import json
import math
import os
import types
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch


class Digest:
    """SHA-256 over labelled fields: ``Digest().add("format", "1").add_file("image", path).hexdigest()``."""

    def __init__(self) -> None:
        self._sha = hashlib.sha256()

    def _field(self, label: str, kind: str, data: bytes | memoryview) -> "Digest":
        self._sha.update(f"{label}:{kind}:{len(data)}:".encode())
        self._sha.update(data)
        return self

    def add(self, label: str, value: Any) -> "Digest":
        """Add one field; returns ``self``. Raises TypeError for a module, or if JSON cannot hold ``value``
        (a dict with tuple keys)."""
        if isinstance(value, (bytes, bytearray, memoryview)):
            return self._field(label, "bytes", bytes(value))
        if isinstance(value, str):
            return self._field(label, "str", value.encode("utf-8", errors="surrogatepass"))
        if isinstance(value, torch.Tensor):
            return self.add_tensor_chunks(label, value.dtype, value.shape, [value])
        if isinstance(value, np.ndarray):
            array = np.ascontiguousarray(value)
            self._field(label, "array", f"{array.dtype}{array.shape}".encode())
            return self._field(label, "data", array.view(np.uint8).reshape(-1).data)
        if isinstance(value, types.ModuleType):
            raise TypeError(f"{label}: a module; a key is made of data, settings and version constants, not source text")
        return self._field(label, "json", json.dumps(value, sort_keys=True, default=str).encode())

    def add_tensor_chunks(self, label: str, dtype: torch.dtype, shape: Sequence[int],
                          chunks: Iterable[torch.Tensor]) -> "Digest":
        """``add(label, torch.cat(chunks))`` for a ``dtype`` tensor of ``shape`` never held whole. Raises
        ValueError (the digest is then unusable) for another dtype or a wrong element count."""
        shape = tuple(int(size) for size in shape)
        self._field(label, "tensor", f"{dtype}{shape}".encode())
        total = math.prod(shape) * dtype.itemsize
        self._sha.update(f"{label}:data:{total}:".encode())
        seen = 0
        for chunk in chunks:
            if chunk.dtype != dtype:
                raise ValueError(f"chunk of {chunk.dtype} in a {dtype} tensor")
            data = chunk.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().data
            self._sha.update(data)
            seen += data.nbytes
        if seen != total:
            raise ValueError(f"the chunks hold {seen} bytes, a {dtype}{shape} tensor has {total}")
        return self

    def add_file(self, label: str, path: str | os.PathLike) -> "Digest":
        """Add the :func:`file_sha256` of a file as one field. Raises OSError if it cannot be read."""
        return self._field(label, "file", file_sha256(path).encode())

    def hexdigest(self) -> str:
        """The SHA-256 so far, as 64 hex characters."""
        return self._sha.hexdigest()


def sha256_of(*values: Any) -> str:
    """SHA-256 (hex) of the values, each a field of a :class:`Digest` labelled by its position."""
    digest = Digest()
    for index, value in enumerate(values):
        digest.add(str(index), value)
    return digest.hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of a file's bytes, streamed. Raises OSError if it cannot be read."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def file_hashes(paths: Iterable[str | os.PathLike]) -> list[str | None]:
    """:func:`file_sha256` of each path, ``None`` where it is not a regular file (missing, a folder,
    a FIFO: never opened). Raises OSError if a regular file cannot be read."""
    return [file_sha256(path) if Path(path).is_file() else None for path in paths]
