"""One helper that fixes every source of randomness (after fastai/fastbook ``utils.py``)."""

from __future__ import annotations

import os
import random

import numpy as np
import torch


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
