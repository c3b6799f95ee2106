"""Training on cached frozen-encoder features: Adam, cross-entropy, early stopping on validation.

The paper's recipe: Adam, learning rate 1e-4, batch 32, up to 10 epochs, early stopping, the
training split re-sampled by inverse class frequency. The paper does not state what early
stopping monitors or its patience: we monitor validation weighted F1 (its headline metric) and
stop after ``patience`` epochs without improvement; the best epoch's weights are kept.

The features given to :func:`fit` / :func:`predict_logits` are PREPARED ones
(:meth:`msa_utils.encoders.FrozenBackbone.prepare`), and the ablations' ``nulls`` come from the
same backbone's :meth:`~msa_utils.encoders.FrozenBackbone.null_inputs`.
"""

from __future__ import annotations

import copy
import logging
import os
import time
from dataclasses import dataclass
from typing import Callable, Literal

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from . import LABELS
from .features import FeatureSet, NullInputs
from .metrics import classification_metrics
from .model import mask_modality, trim_text_padding
from .resume import TrainingProgress, load_training_state, save_training_state
from .runtime import resolve_device
from .splits import make_sampler

Drop = Literal["image", "text"] | None
logger = logging.getLogger(__name__)


@dataclass
class FitResult:
    """What :func:`fit` returns.

    Attributes:
        history: one row per epoch: ``epoch, train_loss, val_loss, val_accuracy,
            val_weighted_f1, val_macro_f1, val_f1_positive, val_f1_negative, val_f1_neutral,
            seconds``.
        best_epoch: 1-based epoch whose weights the model holds after :func:`fit` (the best
            validation epoch; the last one without early stopping).
        stopped_early: True if training ended before ``max_epochs``.
    """

    history: pd.DataFrame
    best_epoch: int
    stopped_early: bool


def _batch(features: FeatureSet, index: torch.Tensor, drop: Drop, nulls: NullInputs | None, device: torch.device):
    """Rows ``index`` of ``features`` as float32 on ``device``, the ``drop`` modality masked
    (:func:`msa_utils.model.mask_modality`, which moves ``nulls`` to ``device``), padding trimmed.

    Raises:
        ValueError: if ``drop`` is set and ``nulls`` is None, or ``nulls`` do not match the features.
    """
    text = features.text_states[index].to(device=device, dtype=torch.float32)
    mask = features.text_mask[index].to(device=device)
    image = features.image_states[index].to(device=device, dtype=torch.float32)
    text, mask, image = mask_modality(text, mask, image, drop, nulls)
    # Padding is masked out of the fusion encoder's attention: dropping the all-padding tail of
    # the batch leaves the logits unchanged and roughly halves the time (median text 30 tokens).
    text, mask = trim_text_padding(text, mask)
    return text, mask, image


@torch.no_grad()
def predict_logits(
    model: nn.Module,
    features: FeatureSet,
    batch_size: int = 256,
    drop: Drop = None,
    nulls: NullInputs | None = None,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """Logits of every post of ``features`` (prepared) in order, in eval mode.

    Args:
        device: ``"cpu"``, ``"cuda"``, ``"auto"`` or a ``torch.device``
            (:func:`msa_utils.runtime.resolve_device`).

    Returns:
        (N, num_labels) float32 logits on the CPU.

    Raises:
        ValueError: if ``drop`` is set without ``nulls``.
        RuntimeError: if ``device`` names CUDA and none is available.
    """
    device = resolve_device(device)
    model.eval()
    out = []
    for start in range(0, len(features), batch_size):
        index = torch.arange(start, min(start + batch_size, len(features)))
        out.append(model(*_batch(features, index, drop, nulls, device)).logits.float().cpu())
    return torch.cat(out) if out else torch.empty(0, 3)


def fit(
    model: nn.Module,
    train: FeatureSet,
    train_labels: np.ndarray,
    val: FeatureSet,
    val_labels: np.ndarray,
    *,
    lr: float = 1e-4,
    batch_size: int = 32,
    max_epochs: int = 10,
    patience: int = 3,
    resample: bool = True,
    class_weighted_loss: bool = False,
    early_stopping: bool = True,
    seed: int = 0,
    drop: Drop = None,
    nulls: NullInputs | None = None,
    device: str | torch.device = "cpu",
    on_best: Callable[[nn.Module, int], None] | None = None,
    progress: bool = True,
    state_path: str | os.PathLike | None = None,
    state_key: str = "",
    on_step: Callable[[int, int], None] | None = None,
) -> FitResult:
    """Train ``model`` on cached features and keep the weights of the best validation epoch.

    Each epoch draws ``len(train)`` posts (with replacement, by inverse class frequency, when
    ``resample``; otherwise a seeded shuffle), takes Adam steps on the mean cross-entropy of
    each batch (weighted by class when ``class_weighted_loss``), then evaluates on the whole
    validation split. With ``early_stopping`` the model is left holding the weights of the epoch
    with the highest validation weighted F1 (ties keep the earlier epoch); without it, training
    runs ``max_epochs`` and the model keeps the last epoch's weights.

    Args:
        model: a module whose ``forward(text_states (B,L,Dt), text_mask (B,L), image_states
            (B,Li,Di))`` returns an output with ``.logits`` (B, 3); only parameters with
            ``requires_grad`` are optimised.
        train, val: prepared features (``backbone.prepare``); ``train_labels`` (N_train,),
            ``val_labels`` (N_val,) class ids.
        lr: Adam learning rate. batch_size: posts per step. max_epochs: epoch bound.
        patience: stop after this many epochs without a better validation weighted F1.
        resample: inverse-class-frequency re-sampling (the paper's), else plain shuffling.
        class_weighted_loss: weight the training cross-entropy of class ``c`` by
            ``N / (3 * count(c))`` (scikit-learn's "balanced" weights; the alternative to
            re-sampling the paper rejected). The validation loss is never weighted.
        early_stopping: stop after ``patience`` epochs without a better validation weighted F1
            and keep the best epoch (the paper's); ``False``: all ``max_epochs``, the last kept.
        seed: seeds the sampler's generator (initialisation and dropout follow the global seed,
            see :func:`msa_utils.runtime.set_seed`).
        drop: ``"image"`` or ``"text"`` to train without that modality (ablation), else None.
        nulls: the masked-modality inputs (``backbone.null_inputs()``), required when ``drop`` is set.
        device: where to train (``"auto"`` allowed; :func:`msa_utils.runtime.resolve_device`).
        on_best: called as ``on_best(model, epoch)`` whenever the kept weights change (validation
            improved, or every epoch without early stopping; e.g. to save a checkpoint).
        progress: show tqdm progress bars.
        state_path: if given, the whole training state is written there after every epoch
            (:mod:`msa_utils.resume`), and a state left by an interrupted run with the same
            ``state_key`` is resumed: the result equals that of an uninterrupted run. A finished
            state is not retrained: the model gets its best weights and the stored history.
        state_key: identifies the run (profile, variant, data) for ``state_path``.
        on_step: called as ``on_step(epoch, step)`` after every optimiser step (for tests).

    Returns:
        :class:`FitResult`.

    Raises:
        ValueError: on empty splits or label/feature length mismatches, or ``drop`` without ``nulls``.
        RuntimeError: if ``device`` names CUDA and none is available.
    """
    if len(train) == 0 or len(val) == 0:
        raise ValueError("training and validation splits must be non-empty")
    if len(train) != len(train_labels) or len(val) != len(val_labels):
        raise ValueError("features and labels differ in length")
    if drop is not None and nulls is None:
        raise ValueError(f"drop={drop!r} needs the null inputs of the backbone (backbone.null_inputs())")
    device = resolve_device(device)
    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=lr)
    train_y = torch.as_tensor(np.asarray(train_labels), dtype=torch.long)
    loss_weights = None
    if class_weighted_loss:
        counts = torch.bincount(train_y, minlength=len(LABELS)).double()
        loss_weights = (len(train_y) / (len(LABELS) * counts.clamp(min=1))).float().to(device)
    if resample:
        sampler = make_sampler(train_y.numpy(), seed)
    else:
        sampler = torch.utils.data.RandomSampler(range(len(train)), generator=torch.Generator().manual_seed(seed))

    generator = sampler.generator
    state = TrainingProgress()
    best_state = copy.deepcopy(model.state_dict())
    if state_path is not None:
        restored = load_training_state(state_path, state_key, model, optimizer, generator)
        if restored is not None:
            state, best_state = restored
            logger.info("resuming %s after epoch %d", state_path, state.epoch)
    for epoch in range(state.epoch + 1, max_epochs + 1):
        if state.finished:
            break
        start = time.perf_counter()
        model.train()
        order = torch.as_tensor(list(iter(sampler)), dtype=torch.long)
        losses = []
        steps = range(0, len(order), batch_size)
        for step, s in enumerate(tqdm(steps, desc=f"epoch {epoch}", disable=not progress, leave=False, mininterval=2.0)):
            index = order[s : s + batch_size]
            logits = model(*_batch(train, index, drop, nulls, device)).logits
            loss = F.cross_entropy(logits, train_y[index].to(device), weight=loss_weights)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            if on_step is not None:
                on_step(epoch, step)
        val_logits = predict_logits(model, val, drop=drop, nulls=nulls, device=device)
        val_loss = F.cross_entropy(val_logits, torch.as_tensor(np.asarray(val_labels), dtype=torch.long)).item()
        scores = classification_metrics(val_labels, val_logits.argmax(1).numpy())
        state.history.append({
            "epoch": epoch,
            "train_loss": float(np.mean(losses)),
            "val_loss": val_loss,
            **{f"val_{k}": v for k, v in scores.items()},
            "seconds": time.perf_counter() - start,
        })
        state.epoch = epoch
        improved = scores["weighted_f1"] > state.best_f1
        if improved:
            state.best_f1, state.since_best = scores["weighted_f1"], 0
        else:
            state.since_best += 1
        if improved or not early_stopping:  # the epoch whose weights are kept
            state.best_epoch = epoch
            best_state = copy.deepcopy(model.state_dict())
            if on_best is not None:
                on_best(model, epoch)
        state.finished = (early_stopping and state.since_best >= patience) or epoch == max_epochs
        if state_path is not None:
            save_training_state(state_path, state_key, model, optimizer, generator, best_state, state)
    model.load_state_dict(best_state)
    history = pd.DataFrame(state.history)
    return FitResult(history=history, best_epoch=state.best_epoch, stopped_early=len(history) < max_epochs)
