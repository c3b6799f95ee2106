"""The process's run-time state, set in one place: seeds and the device.

:func:`msa_utils.notebook.setup`, the first call of every notebook, applies them for a profile.
"""

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
