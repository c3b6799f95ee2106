"""Training on cached frozen-encoder features: Adam, cross-entropy, early stopping on validation.

The paper's recipe: Adam, learning rate 1e-4, batch 32, up to 10 epochs, early stopping, the
training split re-sampled by inverse class frequency. The paper does not state what early
stopping monitors or its patience: we monitor validation weighted F1 (its headline metric) and
stop after ``patience`` epochs without improvement; the best epoch's weights are kept.

The features given to :func:`fit` / :func:`predict_logits` are PREPARED ones
(:meth:`msa_utils.features.encoders.FrozenBackbone.prepare`), and the ablations' ``nulls`` come from the
same backbone's :meth:`~msa_utils.features.encoders.FrozenBackbone.null_inputs`.
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

from msa_utils.config.labels import LABELS
from msa_utils.features.sets import FeatureSet, NullInputs
from msa_utils.train.metrics import classification_metrics
from msa_utils.model.classifier import mask_modality, trim_text_padding
from msa_utils.train.resume import TrainingProgress, load_training_state, save_training_state
from msa_utils.config.runtime import ExpectedTime, resolve_device
from msa_utils.data.splits import make_sampler

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
    """Rows ``index`` of ``features`` (:meth:`~msa_utils.features.sets.FeatureSet.batch`: only these
    rows are read from a lazy cache) as float32 on ``device``, the ``drop`` modality masked
    (:func:`msa_utils.model.classifier.mask_modality`, which moves ``nulls`` to ``device``), padding trimmed.

    Raises:
        ValueError: if ``drop`` is set and ``nulls`` is None, or ``nulls`` do not match the features.
    """
    rows = features.batch(index)
    text = rows.text_states.to(device=device, dtype=torch.float32)
    mask = rows.text_mask.to(device=device)
    image = rows.image_states.to(device=device, dtype=torch.float32)
    text, mask, image = mask_modality(text, mask, image, drop, nulls)
    # Padding is masked out of the fusion encoder's attention: dropping the all-padding tail of
    # the batch leaves the logits unchanged and roughly halves the time (median text 30 tokens).
    text, mask = trim_text_padding(text, mask)
    return text, mask, image


def text_lengths(features: FeatureSet) -> torch.Tensor:
    """Real text tokens of every post of ``features``: ``(N,)`` int64 (the text mask's row sums)."""
    return features.text_mask.sum(1)


def length_grouped(order: torch.Tensor, lengths: torch.Tensor, batch_size: int,
                   generator: torch.Generator) -> torch.Tensor:
    """``order`` (an epoch's drawn post positions, ``(M,)``) rearranged so that each run of
    ``batch_size`` holds posts of similar text length: ``transformers``' ``get_length_grouped_indices``
    (what ``Trainer(group_by_length=True)`` uses): a random permutation, cut into mega-batches of
    ``min(M // (4 * batch_size), 50)`` batches, each sorted by length, longest first. The multiset
    of drawn posts is unchanged.

    Args:
        order: ``(M,)`` int64 positions into the training set; lengths: ``(N,)`` tokens per post.
        generator: the sampler's generator (so a resumed run draws the same groups).

    Returns:
        ``(M,)`` int64, a permutation of ``order``.
    """
    from transformers.trainer_pt_utils import get_length_grouped_indices

    perm = get_length_grouped_indices(lengths[order].tolist(), batch_size, generator=generator)
    return order[torch.as_tensor(perm, dtype=torch.long)]


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
            (:func:`msa_utils.config.runtime.resolve_device`).

    Returns:
        (N, num_labels) float32 logits on the CPU.

    Raises:
        ValueError: if ``drop`` is set without ``nulls``.
        RuntimeError: if ``device`` names CUDA and none is available.
    """
    device = resolve_device(device)
    model.eval()
    # Posts are batched by text length (each batch is cut to its longest text: less padding), and
    # the logits put back in order; padding is masked, so they equal those of any other batching.
    order = torch.argsort(text_lengths(features), stable=True)
    logits = torch.empty(len(features), 3)
    for start in range(0, len(features), batch_size):
        index = order[start:start + batch_size]
        logits[index] = model(*_batch(features, index, drop, nulls, device)).logits.float().cpu()
    return logits


def _sharded_backward(model, train, train_y, index, rank, world, loss_weights, drop, nulls, device, params):
    """One batch split over ``world`` processes (:func:`fit` with ``processes``): this process's rows
    ``index[rank::world]``, its loss divided by the whole batch's size (or class-weight sum), then
    the gradients summed over the processes (``torch.distributed.all_reduce``, one flat tensor):
    the full batch's gradient. Returns the whole batch's loss (the same on every process)."""
    labels = train_y[index].to(device)
    weights = loss_weights[labels] if loss_weights is not None else torch.ones(len(index), device=device)
    mine = torch.arange(len(index))[rank::world]  # empty when the batch has fewer rows than processes
    if len(mine):
        logits = model(*_batch(train, index[mine], drop, nulls, device)).logits
        loss = (F.cross_entropy(logits, labels[mine], reduction="none") * weights[mine]).sum() / weights.sum()
        loss.backward()
    else:
        loss = torch.zeros((), device=device)
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads] + [loss.detach().reshape(1)])
    torch.distributed.all_reduce(flat)
    offset = 0
    for p in params:
        p.grad = flat[offset:offset + p.numel()].view_as(p).clone()
        offset += p.numel()
    return flat[-1]


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
    group_by_length: bool = False,
    seed: int = 0,
    drop: Drop = None,
    nulls: NullInputs | None = None,
    device: str | torch.device = "cpu",
    on_best: Callable[[nn.Module, int], None] | None = None,
    progress: bool = True,
    state_path: str | os.PathLike | None = None,
    state_key: str = "",
    on_step: Callable[[int, int], None] | None = None,
    processes=None,
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
        group_by_length: batch each epoch's drawn posts by text length (:func:`length_grouped`);
            each batch is cut to its longest text, so this saves most of the padding.
        seed: seeds the sampler's generator (initialisation and dropout follow the global seed,
            see :func:`msa_utils.config.runtime.set_seed`).
        drop: ``"image"`` or ``"text"`` to train without that modality (ablation), else None.
        nulls: the masked-modality inputs (``backbone.null_inputs()``), required when ``drop`` is set.
        device: where to train (``"auto"`` allowed; :func:`msa_utils.config.runtime.resolve_device`).
        on_best: called as ``on_best(model, epoch)`` whenever the kept weights change (validation
            improved, or every epoch without early stopping; e.g. to save a checkpoint).
        progress: show tqdm progress bars, and print the expected time of all ``max_epochs``
            after the first seconds (:class:`msa_utils.config.runtime.ExpectedTime`; early stopping
            makes it an upper bound).
        state_path: if given, the whole training state is written there after every epoch
            (:mod:`msa_utils.train.resume`), and a state left by an interrupted run with the same
            ``state_key`` is resumed: the result equals that of an uninterrupted run. A finished
            state is not retrained: the model gets its best weights and the stored history.
        state_key: identifies the run (profile, variant, data) for ``state_path``.
        on_step: called as ``on_step(epoch, step)`` after every optimiser step (for tests).
        processes: an ``accelerate.PartialState`` of several processes (one per GPU, or CPU
            processes under ``torchrun``; :mod:`msa_utils.runner.distributed`): every process draws the
            same batches, computes the loss of its share of each batch (rows ``rank::world``, none
            when the batch has fewer rows than processes) and the gradients are summed over the
            processes before each step, so the step is the full batch's: each share's loss is
            divided by the whole batch's size or class weight. Without dropout the weights equal a
            single process's up to float rounding (``tests/test_distributed.py``); with dropout
            each process draws its own masks, so a run is another random draw. Every process
            validates and keeps the same weights; only the main one calls ``on_best`` and writes
            ``state_path``. ``None``: one process.

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
    rank, world = (processes.process_index, processes.num_processes) if processes is not None else (0, 1)
    main = rank == 0
    progress = progress and main
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
    lengths = text_lengths(train)
    steps_per_epoch = -(-len(train) // batch_size)
    state = TrainingProgress()
    best_state = copy.deepcopy(model.state_dict())
    if state_path is not None:
        restored = load_training_state(state_path, state_key, model, optimizer, generator)
        if restored is not None:
            state, best_state = restored
            logger.info("resuming %s after epoch %d", state_path, state.epoch)
    clock = ExpectedTime("train, at most", steps_per_epoch * (max_epochs - state.epoch),
                         enabled=progress and not state.finished)
    for epoch in range(state.epoch + 1, max_epochs + 1):
        if state.finished:
            break
        start = time.perf_counter()
        model.train()
        order = torch.as_tensor(list(iter(sampler)), dtype=torch.long)
        if group_by_length:
            order = length_grouped(order, lengths, batch_size, generator)
        losses = []
        steps = range(0, len(order), batch_size)
        for step, s in enumerate(tqdm(steps, desc=f"epoch {epoch}", disable=not progress, leave=False, mininterval=2.0)):
            index = order[s : s + batch_size]
            optimizer.zero_grad(set_to_none=True)
            if world == 1:
                logits = model(*_batch(train, index, drop, nulls, device)).logits
                loss = F.cross_entropy(logits, train_y[index].to(device), weight=loss_weights)
                loss.backward()
            else:
                loss = _sharded_backward(model, train, train_y, index, rank, world, loss_weights, drop, nulls,
                                         device, params)
            optimizer.step()
            losses.append(loss.item())
            clock.update(1)
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
            if on_best is not None and main:
                on_best(model, epoch)
        state.finished = (early_stopping and state.since_best >= patience) or epoch == max_epochs
        if state_path is not None and main:
            save_training_state(state_path, state_key, model, optimizer, generator, best_state, state)
    model.load_state_dict(best_state)
    history = pd.DataFrame(state.history)
    return FitResult(history=history, best_epoch=state.best_epoch, stopped_early=len(history) < max_epochs)
