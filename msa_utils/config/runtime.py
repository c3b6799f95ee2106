"""The process's run-time state, set in one place: seeds, the device, precision, progress bars, warnings; and the versions
of the libraries it runs on. :func:`msa_utils.runner.notebook.setup`, the first call of every notebook, applies them."""

from __future__ import annotations

import logging
import os
import platform
import random
import re
import sys
import time
from importlib import metadata

import numpy as np
import torch
from tqdm import tqdm

from msa_utils.config.enums import PRECISIONS


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) and ask torch for deterministic algorithms (warn only)
    without cuDNN autotuning, so a rerun on the same machine gives identical numbers (PyTorch's
    "Reproducibility" notes). Raises ValueError if ``seed`` is negative."""
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False


def resolve_device(device: str | torch.device) -> torch.device:
    """A profile's device as a ``torch.device`` (``"auto"``: CUDA when available): the study's one device
    resolver. Raises RuntimeError if ``device`` names CUDA and no CUDA device is available."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {str(device)!r} requested but CUDA is not available")
    return resolved


def checked_precision(precision: str) -> str:
    """``precision`` itself if it is one of :data:`PRECISIONS`; ValueError otherwise."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be {' or '.join(map(repr, PRECISIONS))}, got {precision!r}")
    return precision


def autocast(precision: str, device: torch.device) -> torch.autocast:
    """bf16 autocast on ``device`` if ``precision`` is ``"bfloat16"``, else disabled (ValueError for another). Enter it
    around ONE forward and loss, never a loop of optimizer steps: it keeps each weight's bf16 copy until its outermost
    region exits, so the forwards would keep the first step's weights (docs/performance.md; torch's AMP notes)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=checked_precision(precision) == "bfloat16")


def allow_tf32(precision: str) -> None:
    """Allow TF32 tensor-core matmuls and convolutions on CUDA (CPU matmuls are untouched) when
    ``precision`` is ``"bfloat16"``, so the float32 parts of a bf16 run (training) use them too;
    ``"float32"`` turns both off. Raises ValueError for another ``precision``."""
    fast = checked_precision(precision) == "bfloat16"
    torch.backends.cuda.matmul.allow_tf32 = fast
    torch.backends.cudnn.allow_tf32 = fast


#: How a logged warning's line starts in a notebook's stderr: ``msa-study`` finds them by it.
WARNING_PREFIX = "WARNING "
_HANDLER_NAME = "msa_utils.warnings"


def log_warnings() -> logging.Handler:
    """Every ``logging`` record of level WARNING or above, and every ``warnings.warn``, to ``sys.stderr`` as
    ``WARNING {logger}: {message}`` (or ``ERROR ...``), by one handler on the root logger, added once (else
    they would reach the notebook unmarked, through ``logging``'s last-resort handler)."""
    root = logging.getLogger()
    if existing := next((h for h in root.handlers if h.get_name() == _HANDLER_NAME), None):
        return existing
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setLevel(logging.WARNING)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    logging.captureWarnings(True)
    return handler


def progress_bar(iterable=None, *, show: bool = True, **kwargs) -> tqdm:
    """``tqdm(iterable, **kwargs)``, off when ``show`` is false or ``TQDM_DISABLE`` is set: ``msa-study``
    sets it for its kernels, so bars stay on its terminal and out of the executed notebooks (tqdm
    alone lets an explicit ``disable=False`` win over the variable)."""
    quiet = os.environ.get("TQDM_DISABLE", "").lower() in ("1", "true", "yes")
    return tqdm(iterable, disable=quiet or not show, **kwargs)


class ExpectedTime:
    """Prints once, to standard error, how long the loop ``what`` of ``total`` items will take, as soon as
    ``after_s`` seconds [s] have passed or ``after_fraction`` of the items are done (:meth:`update`)."""

    def __init__(self, what: str, total: int, *, after_s: float = 5.0, after_fraction: float = 0.1,
                 enabled: bool = True) -> None:
        self.what, self.total, self.after_s, self.after_fraction = what, int(total), after_s, after_fraction
        self.enabled, self.done, self.start = enabled, 0, time.perf_counter()

    def update(self, items: int) -> float | None:
        """Count ``items`` more; the first time enough is done, print and return the expected
        total time [s] (else ``None``)."""
        self.done += int(items)
        elapsed = time.perf_counter() - self.start
        early = elapsed < self.after_s and self.done < self.after_fraction * self.total
        if not self.enabled or self.done == 0 or self.done >= self.total or early:
            return None
        self.enabled = False
        expected = elapsed * self.total / self.done
        print(f"[{self.what}] {self.done}/{self.total} in {elapsed:.1f} s: expected {expected:.0f} s in all",
              file=sys.stderr, flush=True)
        return expected


def library_versions() -> dict[str, str]:
    """Python and the installed version of each dependency of ``msa-utils`` (test extras left out)."""
    version = lambda name: next((d.version for d in metadata.distributions(name=name)), "not installed")  # noqa: E731
    required = next((d.requires or [] for d in metadata.distributions(name="msa-utils")), [])
    names = [re.split(r"[\s<>=!~;\[]", r, maxsplit=1)[0] for r in required if "extra ==" not in r]
    return {"python": platform.python_version()} | {name: version(name) for name in names}
