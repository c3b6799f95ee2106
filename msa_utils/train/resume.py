"""Resumable training: the whole training state after each completed epoch, in one safetensors file.

A run killed (SIGINT, SIGKILL, a lost machine) and started again with the same command resumes
from the last completed epoch and ends with the same numbers as an uninterrupted run: the file
holds the model and best-epoch weights, Adam's state, the global torch RNG (dropout) and the
sampler's generator (the order of the next epoch), the history and the early-stopping counters.
It is written atomically (:mod:`msa_utils.io`), so a crash while writing leaves the previous
epoch's file, never a truncated one. Nothing is unpickled: tensors go in safetensors, the rest
in its JSON metadata.

A ``key`` names what is being trained (profile, variant, data); a file with another key, or one
that cannot be read, is ignored with a warning and training starts afresh.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from msa_utils.io import atomic_path

logger = logging.getLogger(__name__)

FORMAT_VERSION = "1"


@dataclass
class TrainingProgress:
    """The scalar part of the training state.

    Attributes:
        epoch: last completed epoch (1-based; 0 = none).
        history: one dict per completed epoch (the rows of :attr:`msa_utils.train.loop.FitResult.history`).
        best_f1: best validation weighted F1 so far (-1 before the first epoch).
        best_epoch: the epoch whose weights are kept (the one that reached ``best_f1``; the
            last one when training without early stopping).
        since_best: epochs since the last improvement (early stopping counter).
        finished: True once training has ended (early stop or epoch bound).
    """

    epoch: int = 0
    history: list[dict] = field(default_factory=list)
    best_f1: float = -1.0
    best_epoch: int = 0
    since_best: int = 0
    finished: bool = False


def save_training_state(
    path: str | os.PathLike,
    key: str,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    best_state: dict[str, torch.Tensor],
    progress: TrainingProgress,
) -> Path:
    """Atomically write the training state to ``path`` (safetensors, ``key`` in its metadata)."""
    tensors: dict[str, torch.Tensor] = {}
    tensors.update({f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()})
    tensors.update({f"best.{k}": v.detach().cpu().contiguous() for k, v in best_state.items()})
    optim = optimizer.state_dict()
    for index, state in optim["state"].items():
        for name, value in state.items():
            tensors[f"optim.{index}.{name}"] = torch.as_tensor(value).detach().cpu().contiguous()
    tensors["rng.torch"] = torch.get_rng_state()
    tensors["rng.sampler"] = generator.get_state()
    metadata = {
        "format_version": FORMAT_VERSION,
        "key": key,
        "progress": json.dumps(asdict(progress)),
        "param_groups": json.dumps(optim["param_groups"]),
    }
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return path


def load_training_state(
    path: str | os.PathLike,
    key: str,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
) -> tuple[TrainingProgress, dict[str, torch.Tensor]] | None:
    """Restore a state written by :func:`save_training_state` into ``model``, ``optimizer``,
    the global torch RNG and ``generator``.

    Returns:
        ``(progress, best_state)``, or None if there is no file, its key differs, or it cannot be
        read (logged as a warning; nothing is restored then).
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        if metadata.get("format_version") != FORMAT_VERSION or metadata.get("key") != key:
            logger.warning("training state %s belongs to another run; starting afresh", path)
            return None
        tensors = load_file(str(path))
        progress = TrainingProgress(**json.loads(metadata["progress"]))
        model_state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
        best_state = {k[len("best."):]: v for k, v in tensors.items() if k.startswith("best.")}
        optim_state: dict[int, dict[str, torch.Tensor]] = {}
        for name, value in tensors.items():
            if name.startswith("optim."):
                _, index, slot = name.split(".", 2)
                optim_state.setdefault(int(index), {})[slot] = value
        model.load_state_dict(model_state)
        optimizer.load_state_dict({"state": optim_state, "param_groups": json.loads(metadata["param_groups"])})
        torch.set_rng_state(tensors["rng.torch"])
        generator.set_state(tensors["rng.sampler"])
    except Exception as error:  # an unreadable state is never trusted
        logger.warning("training state %s is unusable (%s: %s); starting afresh", path, type(error).__name__, error)
        return None
    return progress, best_state
