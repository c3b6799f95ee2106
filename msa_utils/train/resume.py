"""Resumable training: after each completed epoch, the whole training state in one file
(:func:`msa_utils.io.save_tensors`: atomic, no pickle) under a ``key`` naming the run: the model and best-epoch
weights, Adam's state, the global torch RNG (dropout), the sampler's generator (the next epoch's order), the
history and the early-stopping counters. A run killed and started again resumes after its last completed epoch
and ends with the numbers of an uninterrupted run; another key or an unreadable file is ignored with a warning."""

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from msa_utils.io import load_tensors, read_tensor_metadata, save_tensors

logger = logging.getLogger(__name__)
FORMAT_VERSION = "2"


@dataclass
class TrainingProgress:
    """The scalar part of the training state."""

    epoch: int = 0  # the last completed epoch, 1-based
    history: list[dict] = field(default_factory=list)  # rows of msa_utils.train.loop.FitResult.history
    best_f1: float = -1.0  # the best validation weighted F1 so far
    best_epoch: int = 0  # the epoch whose weights are kept
    since_best: int = 0  # epochs since the last improvement
    finished: bool = False  # early-stopped or at the epoch bound


def save_training_state(path: str | os.PathLike, key: str, model: nn.Module, optimizer: torch.optim.Optimizer,
                        generator: torch.Generator, best_state: dict[str, torch.Tensor],
                        progress: TrainingProgress) -> Path:
    """Atomically write the training state to ``path`` under ``key``."""
    optim = optimizer.state_dict()
    tensors = {**{f"model.{k}": v for k, v in model.state_dict().items()},
               **{f"best.{k}": v for k, v in best_state.items()},
               **{f"optim.{i}.{name}": torch.as_tensor(value) for i, slots in optim["state"].items()
                  for name, value in slots.items()},
               "rng.torch": torch.get_rng_state(), "rng.sampler": generator.get_state()}
    # the history as one JSON string: its columns keep their order (save_tensors sorts keys)
    metadata = {"format_version": FORMAT_VERSION, "key": key, "progress": json.dumps(asdict(progress)),
                "param_groups": optim["param_groups"]}
    return save_tensors(path, tensors, metadata)


def load_training_state(path: str | os.PathLike, key: str, model: nn.Module, optimizer: torch.optim.Optimizer,
                        generator: torch.Generator) -> tuple[TrainingProgress, dict[str, torch.Tensor]] | None:
    """Restore a :func:`save_training_state` into ``model``, ``optimizer``, the global torch RNG and ``generator``;
    return ``(progress, best_state)``, or None (nothing restored: no file, another key, unreadable: a warning)."""
    if not Path(path).exists():
        return None
    try:
        metadata = read_tensor_metadata(path)
        if metadata.get("format_version") != FORMAT_VERSION or metadata.get("key") != key:
            logger.warning("training state %s belongs to another run; starting afresh", path)
            return None
        progress = TrainingProgress(**json.loads(metadata["progress"]))
        tensors, _ = load_tensors(path)
        part = lambda p: {k.removeprefix(p): v for k, v in tensors.items() if k.startswith(p)}  # noqa: E731
        optim_state: dict[int, dict[str, torch.Tensor]] = {}
        for name, value in part("optim.").items():
            index, slot = name.split(".", 1)
            optim_state.setdefault(int(index), {})[slot] = value
        model.load_state_dict(part("model."))
        optimizer.load_state_dict({"state": optim_state, "param_groups": metadata["param_groups"]})
        torch.set_rng_state(tensors["rng.torch"])
        generator.set_state(tensors["rng.sampler"])
    except Exception as error:  # an unreadable state is never trusted
        logger.warning("training state %s is unusable (%s: %s); starting afresh", path, type(error).__name__, error)
        return None
    return progress, part("best.")
