"""Training on cached, prepared frozen-encoder features (:meth:`msa_utils.features.backbone.FrozenBackbone.prepare`)
by the paper's recipe (README.md). The paper states neither what early stopping monitors nor its patience: we
monitor validation weighted F1 (its headline metric)."""

import copy
import logging
import os
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from transformers.trainer_pt_utils import get_length_grouped_indices

from msa_utils.config.enums import Modality
from msa_utils.config.labels import LABELS
from msa_utils.config.profiles import TrainSettings
from msa_utils.config.runtime import ExpectedTime, autocast, progress_bar, resolve_device
from msa_utils.data.splits import make_sampler
from msa_utils.features.sets import FeatureSet, NullInputs
from msa_utils.model.classifier import mask_modality, trim_text_padding
from msa_utils.train.metrics import classification_metrics
from msa_utils.train.resume import TrainingProgress, load_training_state, save_training_state

TRAINING_VERSION = "3"
"""In every run's resume key (:func:`msa_utils.experiments.variants.run_key`): bump it when results change."""

logger = logging.getLogger(__name__)


@dataclass
class FitResult:
    """``history``: per epoch ``epoch, train_loss, val_loss, val_<metric>`` (:func:`classification_metrics`),
    ``seconds``, torch ``threads``; ``best_epoch``: the 1-based epoch whose weights the model holds; ``stopped_early``;
    ``batches_per_epoch``: the steps of one epoch (re-sampling decides the posts drawn)."""

    history: pd.DataFrame
    best_epoch: int
    stopped_early: bool
    batches_per_epoch: int


def _batch(features: FeatureSet, index: torch.Tensor, drop: Modality | None, nulls: NullInputs | None,
           device: torch.device):
    """Rows ``index`` as float32 ``(text_states, text_mask, image_states)`` on ``device``, ``drop`` masked
    (ValueError without ``nulls``), the all-padding tail trimmed (masked anyway: same logits, half the time)."""
    rows = features.batch(index)
    text = rows.text_states.to(device=device, dtype=torch.float32)
    image = rows.image_states.to(device=device, dtype=torch.float32)
    text, mask, image = mask_modality(text, rows.text_mask.to(device=device), image, drop, nulls)
    return (*trim_text_padding(text, mask), image)


def text_lengths(features: FeatureSet) -> torch.Tensor:
    """Real text tokens of every post: ``(N,)`` int64."""
    return features.text_mask.sum(1)


def length_grouped(order: torch.Tensor, lengths: torch.Tensor, batch_size: int,
                   generator: torch.Generator) -> torch.Tensor:
    """``order`` (``(M,)`` positions drawn for an epoch) permuted by ``Trainer(group_by_length=True)``'s
    ``get_length_grouped_indices`` (drawing from ``generator``) so that each batch holds similar ``lengths``."""
    perm = get_length_grouped_indices(lengths[order].tolist(), batch_size, generator=generator)
    return order[torch.as_tensor(perm, dtype=torch.long)]


@torch.no_grad()
def predict_logits(model: nn.Module, features: FeatureSet, batch_size: int = 64, drop: Modality | None = None,
                   nulls: NullInputs | None = None, device: str | torch.device = "cpu",
                   precision: str = "float32") -> torch.Tensor:
    """``(N, 3)`` float32 logits on the CPU of every post, in order, in eval mode (batched by text length: less
    padding, same logits), each batch under :func:`~msa_utils.config.runtime.autocast` of ``precision``. ValueError
    for ``drop`` without ``nulls`` or another ``precision``; RuntimeError for an absent CUDA."""
    device = resolve_device(device)
    model.eval()
    order = torch.argsort(text_lengths(features), stable=True)
    logits = torch.empty(len(features), 3)
    for start in range(0, len(features), batch_size):
        index = order[start:start + batch_size]
        inputs = _batch(features, index, drop, nulls, device)  # gathered outside autocast (it refuses fp16 rows)
        with autocast(precision, device):
            logits[index] = model(*inputs).logits.float().cpu()
    return logits


def _share_of_loss(net, train, labels, index, loss_weights, drop, nulls, device, rank, world, precision):
    """This process's share of the batch ``index``'s mean (class-weighted) cross-entropy: rows ``rank::world``
    over the whole batch's weight sum, times ``world`` as DDP averages gradients; without rows, one with weight 0
    (DDP needs every backward). Forward and loss under ``precision``'s autocast, this step's only."""
    labels = labels[index].to(device)
    weights = loss_weights[labels] if loss_weights is not None else torch.ones(len(index), device=device)
    mine = torch.arange(len(index))[rank::world]
    mine, scale = (mine, world) if len(mine) else (torch.zeros(1, dtype=torch.long), 0)
    inputs = _batch(train, index[mine], drop, nulls, device)
    with autocast(precision, device):
        logits = net(*inputs).logits
        losses = F.cross_entropy(logits, labels[mine], reduction="none")  # fp32 under autocast
    return (losses * weights[mine]).sum() / weights.sum() * scale


def fit(model: nn.Module, train: FeatureSet, train_labels: np.ndarray, val: FeatureSet, val_labels: np.ndarray,
        settings: TrainSettings = TrainSettings(), *, seed: int = 0, device: str | torch.device = "cpu",
        drop: Modality | None = None, nulls: NullInputs | None = None, progress: bool = True,
        on_best: Callable[[nn.Module, int], None] | None = None, on_step: Callable[[int, int], None] | None = None,
        state_path: str | os.PathLike | None = None, state_key: str = "", accelerator=None) -> FitResult:
    """Train ``model`` (``model(text_states (B,L,Dt), text_mask (B,L), image_states (B,Li,Di)).logits`` (B, 3))
    by ``settings``; it ends holding the kept epoch's weights, the first with the best validation weighted F1.
    Each epoch draws posts (:func:`~msa_utils.data.splits.epoch_draws`) from a sampler seeded with ``seed``
    (initialisation and dropout follow the global seed) and takes Adam steps on each batch's mean cross-entropy (forward and loss under
    ``settings.train_precision``'s autocast, step by step). Labels: ``(N,)`` class ids.
    ``drop`` masks a modality and needs ``nulls`` (``backbone.null_inputs()``); ``on_best(model, epoch)`` runs
    when the kept weights change, ``on_step(epoch, step)`` after each step. With ``state_path`` the state of
    ``state_key`` is saved after each epoch and resumed (:mod:`~msa_utils.train.resume`) to an uninterrupted
    run's result. With an ``accelerator`` of several processes the model is wrapped in DDP, each process takes
    its share of every batch (:func:`_share_of_loss`) and only the main one calls ``on_best`` and saves. Raises
    ValueError (empty splits, lengths that differ, ``drop`` without ``nulls``) or RuntimeError (no CUDA)."""
    if len(train) == 0 or len(val) == 0:
        raise ValueError("training and validation splits must be non-empty")
    if len(train) != len(train_labels) or len(val) != len(val_labels):
        raise ValueError("features and labels differ in length")
    drop = Modality(drop) if drop is not None else None
    if drop is not None and nulls is None:
        raise ValueError(f"drop={drop} needs the null inputs of the backbone (backbone.null_inputs())")
    s, device = settings, resolve_device(device)
    model.to(device)
    rank, world = (accelerator.process_index, accelerator.num_processes) if accelerator is not None else (0, 1)
    main, net = rank == 0, accelerator.prepare(model) if world > 1 else model
    progress = progress and main
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=s.lr)
    train_y = torch.as_tensor(np.asarray(train_labels), dtype=torch.long)
    counts = torch.bincount(train_y, minlength=len(LABELS)).double().clamp(min=1)  # weights N / (3 count(c))
    loss_weights = (len(train_y) / (len(LABELS) * counts)).float().to(device) if s.class_weighted_loss else None
    sampler = make_sampler(train_y.numpy(), seed, s.resample_to) if s.resample else torch.utils.data.RandomSampler(
        range(len(train)), generator=torch.Generator().manual_seed(seed))
    generator, lengths = sampler.generator, text_lengths(train)
    state, best_state = TrainingProgress(), copy.deepcopy(model.state_dict())
    restored = load_training_state(state_path, state_key, model, optimizer, generator) if state_path else None
    if restored is not None:
        state, best_state = restored
        logger.info("resuming %s after epoch %d", state_path, state.epoch)
    batches = -(-len(sampler) // s.batch_size)
    clock = ExpectedTime("train, at most", batches * (s.max_epochs - state.epoch),
                         enabled=progress and not state.finished)
    for epoch in range(state.epoch + 1, s.max_epochs + 1):
        if state.finished:
            break
        start = time.perf_counter()
        net.train()
        order = torch.as_tensor(list(iter(sampler)), dtype=torch.long)
        if s.group_by_length:
            order = length_grouped(order, lengths, s.batch_size, generator)
        losses, steps = [], range(0, len(order), s.batch_size)
        bar = progress_bar(steps, show=progress, desc=f"epoch {epoch}", leave=False, mininterval=2)
        for step, first in enumerate(bar):
            index = order[first:first + s.batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss = _share_of_loss(net, train, train_y, index, loss_weights, drop, nulls, device, rank, world,
                                  s.train_precision)
            (accelerator.backward if world > 1 else torch.autograd.backward)(loss)
            optimizer.step()
            losses.append(loss.item() / world)  # this process's part of the batch's loss, summed below
            clock.update(1)
            if on_step is not None:
                on_step(epoch, step)
        train_loss = float(np.mean(losses))
        if world > 1:
            train_loss = accelerator.reduce(torch.tensor(train_loss, dtype=torch.float64, device=device), "sum").item()
        val_logits = predict_logits(model, val, drop=drop, nulls=nulls, device=device, precision=s.train_precision)
        val_loss = F.cross_entropy(val_logits, torch.as_tensor(np.asarray(val_labels), dtype=torch.long)).item()
        scores = classification_metrics(val_labels, val_logits.argmax(1).numpy())
        state.history.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss,
                              **{f"val_{k}": v for k, v in scores.items()}, "seconds": time.perf_counter() - start,
                              "threads": torch.get_num_threads()})
        state.epoch = epoch
        improved = scores["weighted_f1"] > state.best_f1
        state.since_best = 0 if improved else state.since_best + 1
        state.best_f1 = scores["weighted_f1"] if improved else state.best_f1
        if improved or not s.early_stopping:  # the epoch whose weights are kept
            state.best_epoch = epoch
            best_state = copy.deepcopy(model.state_dict())
            if on_best is not None and main:
                on_best(model, epoch)
        state.finished = (s.early_stopping and state.since_best >= s.patience) or epoch == s.max_epochs
        if state_path is not None and main:
            save_training_state(state_path, state_key, model, optimizer, generator, best_state, state)
    model.load_state_dict(best_state)
    return FitResult(pd.DataFrame(state.history), state.best_epoch, len(state.history) < s.max_epochs, batches)
