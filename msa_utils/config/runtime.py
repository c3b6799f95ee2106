"""The process's run-time state, set in one place: seeds and the device.

:func:`msa_utils.runner.notebook.setup`, the first call of every notebook, applies them for a profile.
"""

from __future__ import annotations

import os
import random
import sys
import time

import numpy as np
import torch
from tqdm import tqdm

def set_seed(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) and, optionally, ask torch for determinism.

    Args:
        seed: any non-negative integer.
        deterministic: if True, call ``torch.use_deterministic_algorithms(True, warn_only=True)``
            and disable cuDNN autotuning, so that a rerun on the same machine gives identical
            numbers (see the PyTorch "Reproducibility" notes).

    Raises:
        ValueError: if ``seed`` is negative.
    """
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def resolve_device(device: str | torch.device) -> torch.device:
    """Map a profile's device string to a ``torch.device``: the one device resolver of the study.

    ``"auto"`` gives ``cuda`` when ``torch.cuda.is_available()``, else ``cpu``; anything else is
    passed to ``torch.device``.

    Raises:
        RuntimeError: if ``device`` names CUDA and no CUDA device is available.
    """
    if isinstance(device, torch.device):
        resolved = device
    elif device == "auto":
        resolved = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {str(device)!r} requested but CUDA is not available")
    return resolved


PRECISIONS = ("float32", "bfloat16")
"""The values of a profile's ``precision``: float32, or bf16 autocast of the frozen encoders."""

CACHE_DTYPES = ("float32", "float16", "bfloat16")
"""The dtypes cached token states are stored in (a profile's ``cache_dtype``), named as in torch."""


def checked_precision(precision: str) -> str:
    """``precision`` itself if it is one of :data:`PRECISIONS`.

    Raises:
        ValueError: otherwise.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be {' or '.join(map(repr, PRECISIONS))}, got {precision!r}")
    return precision


def allow_tf32(precision: str) -> None:
    """Allow TF32 tensor-core matmuls and convolutions on CUDA when ``precision`` is
    ``"bfloat16"`` (``torch.backends.cuda.matmul.allow_tf32``, ``torch.backends.cudnn.allow_tf32``):
    the float32 parts of a bf16 run (e.g. training) then use them too. ``"float32"`` turns both
    off. The flags are CUDA-only: CPU matmuls are untouched.

    Raises:
        ValueError: for another ``precision``.
    """
    fast = checked_precision(precision) == "bfloat16"
    torch.backends.cuda.matmul.allow_tf32 = fast
    torch.backends.cudnn.allow_tf32 = fast


def progress_bar(iterable=None, *, show: bool = True, **kwargs) -> tqdm:
    """``tqdm(iterable, **kwargs)``, off when ``show`` is false or ``TQDM_DISABLE`` is set: ``msa-study``
    sets it for its kernels, so bars stay on its terminal and out of the executed notebooks (tqdm
    alone lets an explicit ``disable=False`` win over the variable)."""
    quiet = os.environ.get("TQDM_DISABLE", "").lower() in ("1", "true", "yes")
    return tqdm(iterable, disable=quiet or not show, **kwargs)


class ExpectedTime:
    """Prints, once, how long a long loop will take, from its first items (to standard error).

    Example::

        clock = ExpectedTime("encode", total=4511)
        for batch in batches:
            ...
            clock.update(len(batch))   # after 5 s or 10% of the items: one line, then silent

    Attributes:
        what: name of the loop in the message. total: items the loop will do.
        after_s: print once this many seconds have passed [s] (or ``after_fraction`` of the items).
    """

    def __init__(self, what: str, total: int, *, after_s: float = 5.0, after_fraction: float = 0.1,
                 enabled: bool = True) -> None:
        self.what, self.total, self.after_s, self.after_fraction = what, int(total), after_s, after_fraction
        self.enabled, self.done, self.start = enabled, 0, time.perf_counter()

    def update(self, items: int) -> float | None:
        """Count ``items`` more; the first time enough is done, print and return the expected
        total time [s] (else ``None``)."""
        self.done += int(items)
        elapsed = time.perf_counter() - self.start
        if not self.enabled or self.done == 0 or self.done >= self.total:
            return None
        if elapsed < self.after_s and self.done < self.after_fraction * self.total:
            return None
        self.enabled = False
        expected = elapsed * self.total / self.done
        print(f"[{self.what}] {self.done}/{self.total} in {elapsed:.1f} s: expected {expected:.0f} s in all",
              file=sys.stderr, flush=True)
        return expected
