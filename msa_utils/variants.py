"""Train and evaluate the study's models on one split: the baselines and the model variants.

- :func:`run_baselines`: majority class and the linear probe on the same split;
- :func:`run_variant`: train one model variant (:data:`VARIANTS`: full, without image, without
  text) and write its metrics, history, validation predictions and checkpoint.

A variant's training resumes after an interruption (:mod:`msa_utils.resume`); :func:`run_key`
names the run so that a changed setting, data or code never resumes a stale one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from . import encoders, io, model, resume, train
from .dataset import StudyData
from .hashing import Digest
from .metrics import classification_metrics, linear_probe, majority_baseline, pooled_features
from .predict import write_val_predictions
from .runtime import resolve_device, set_seed
from .train import fit, predict_logits

VARIANTS: dict[str, str | None] = {"full": None, "no_image": "image", "no_text": "text"}
"""The model variants of the study and the modality each one masks (the paper's ablation)."""


def run_baselines(data: StudyData) -> pd.DataFrame:
    """Majority class and linear probe (pooled frozen features) on the study's split.

    Writes ``metrics/baselines.json`` and ``predictions/val_linear_probe.csv``.

    Returns:
        One row per baseline with the metrics of :func:`msa_utils.metrics.classification_metrics`
        (the probe also its ``C``).
    """
    pooled = {part: pooled_features(data.features[part].text_states, data.features[part].text_mask,
                                    data.features[part].image_states) for part in ("train", "val")}
    probe, probe_pred = linear_probe(pooled["train"], data.labels["train"], pooled["val"], data.labels["val"],
                                     seed=data.cfg.seed)
    results = {"majority": majority_baseline(data.labels["train"], data.labels["val"]), "linear_probe": probe}
    io.write_json(data.cfg.paths.metrics / "baselines.json", results)
    write_val_predictions(data, "linear_probe", probe_pred)
    return pd.DataFrame(results).T


@dataclass
class VariantResult:
    """A trained variant: the model (best epoch), its training history and validation metrics.

    Attributes:
        name: the variant (a key of :data:`VARIANTS`).
        model: the classifier holding the best epoch's weights.
        history: one row per epoch (:class:`msa_utils.train.FitResult`).
        metrics: what ``metrics/<name>.json`` holds.
        val_pred: ``(N_val,)`` predicted class ids.
    """

    name: str
    model: torch.nn.Module
    history: pd.DataFrame
    metrics: dict
    val_pred: np.ndarray


def run_variant(data: StudyData, name: str = "full", progress: bool = True) -> VariantResult:
    """Train and evaluate one model variant on the study's split.

    ``name`` is ``"full"`` (image + text), ``"no_image"`` or ``"no_text"`` (the paper's ablation:
    the missing modality is replaced by the frozen encoder's output for zero pixel values, or
    for zero token ids with a zero attention mask: ``data.nulls``). The classifier is built by
    the backbone (``data.backbone.build_classifier``) after seeding with ``cfg.seed``.

    Writes ``metrics/<name>.json`` (validation metrics of the best epoch, best epoch, epochs run),
    ``metrics/<name>_history.csv``, ``predictions/val_<name>.csv``, the best checkpoint
    ``checkpoints/<name>/`` (``config.json`` + ``model.safetensors``) and, after every epoch, the
    training state ``checkpoints/<name>_training_state.safetensors``: rerunning an interrupted
    run resumes it (same result as uninterrupted); rerunning a finished one does not retrain.

    Raises:
        KeyError: for an unknown variant name.
    """
    drop = VARIANTS[name]
    cfg, paths = data.cfg, data.cfg.paths
    set_seed(cfg.seed)
    classifier = data.backbone.build_classifier(cfg)
    device = resolve_device(cfg.device)
    checkpoint = paths.checkpoints / name
    result = fit(
        classifier, data.features["train"], data.labels["train"], data.features["val"], data.labels["val"],
        lr=cfg.lr, batch_size=cfg.batch_size, max_epochs=cfg.max_epochs, patience=cfg.patience,
        resample=cfg.resample, seed=cfg.seed, drop=drop, nulls=data.nulls, device=device,
        on_best=lambda m, epoch: m.save_pretrained(checkpoint), progress=progress,
        state_path=paths.checkpoints / f"{name}_training_state.safetensors", state_key=run_key(data, name),
    )
    classifier.save_pretrained(checkpoint)  # the best epoch's weights, also when a finished run was reused
    val_logits = predict_logits(classifier, data.features["val"], drop=drop, nulls=data.nulls, device=device)
    val_pred = val_logits.argmax(1).numpy()
    metrics = {
        "variant": name,
        "drop": drop,
        "val": classification_metrics(data.labels["val"], val_pred),
        "best_epoch": result.best_epoch,
        "epochs_run": len(result.history),
        "stopped_early": result.stopped_early,
        "mean_epoch_seconds": round(float(result.history["seconds"].mean()), 2),
        "trainable_parameters": sum(p.numel() for p in classifier.parameters() if p.requires_grad),
    }
    io.write_json(paths.metrics / f"{name}.json", metrics)
    io.write_csv(paths.metrics / f"{name}_history.csv", result.history.round(6))
    write_val_predictions(data, name, val_pred)
    return VariantResult(name, classifier, result.history, metrics, val_pred)


def run_key(data: StudyData, name: str) -> str:
    """SHA-256 (hex) naming one training run, for resuming it (:mod:`msa_utils.resume`).

    Covers the variant, every profile field that can change what training produces
    (:meth:`msa_utils.profiles.Profile.run_key_settings`), every byte of the training and
    validation features and labels, and the source of the modules that build the classifier and
    train it, so that a changed setting, data or code never resumes a stale run.
    """
    digest = Digest().add("variant", name).add("settings", data.cfg.run_key_settings())
    for part in ("train", "val"):
        for tensor_name, tensor in data.features[part].tensors().items():
            digest.add(f"{part}.{tensor_name}", tensor)
        digest.add(f"{part}.labels", np.asarray(data.labels[part]))
    for module in (encoders, model, train, resume):
        digest.add(module.__name__, module)
    return digest.hexdigest()
