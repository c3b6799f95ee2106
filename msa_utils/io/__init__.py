"""Atomic file writes (text, JSON, CSV, safetensors): each goes to a temporary file in the target's
folder, is flushed to disk and ``os.replace``d onto the target (atomic on POSIX), so a crash never
leaves a truncated file that a later run trusts."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

import pandas as pd
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path`` (its folder created if needed) for the body to write;
    then rename it onto ``path``. If the body raises, the temporary file is removed, ``path`` untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp makes 0600, and some writers (safetensors) replace the file: the usual permissions
        os.chmod(tmp_path, 0o666 & ~_umask())
        with open(tmp_path, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Atomically write ``text`` (UTF-8) to ``path`` and return the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Atomically write ``obj`` as indented, key-sorted JSON (UTF-8) to ``path``."""
    return write_text(path, json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file written by :func:`write_json`."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_csv(path: str | os.PathLike, frame: pd.DataFrame, **to_csv_kwargs: Any) -> Path:
    """Atomically write a DataFrame as CSV (UTF-8, no index unless asked) to ``path``."""
    to_csv_kwargs.setdefault("index", False)
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, encoding="utf-8", **to_csv_kwargs)
    return Path(path)


def save_tensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor],
                 metadata: dict[str, Any] | None = None) -> Path:
    """Atomically write ``tensors`` (on the CPU, contiguous) to a safetensors file (no pickle), with
    ``metadata`` as one JSON string under its ``"meta"`` key: the package's one serialiser."""
    state = {name: t.detach().cpu().contiguous() for name, t in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata={"format": "pt", "meta": json.dumps(metadata or {}, sort_keys=True)})
    return Path(path)


def read_tensor_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The ``metadata`` of a :func:`save_tensors` file, its tensors not read. Raises OSError,
    ``safetensors.SafetensorError`` or ``json.JSONDecodeError`` if the file is missing or unreadable."""
    with safe_open(str(path), framework="pt") as handle:
        return json.loads((handle.metadata() or {}).get("meta", "{}"))


def load_tensors(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The tensors (on the CPU) and metadata of a :func:`save_tensors` file; raises as :func:`read_tensor_metadata`."""
    return load_file(str(path)), read_tensor_metadata(path)
