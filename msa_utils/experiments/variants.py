"""The study's models and baselines, trained with several seeds and scored on the same parts; they write
``metrics/runs/<variant>.csv`` (per seed), ``<variant>_history.csv`` (per seed and epoch),
``predictions/runs/<variant>.csv``, ``metrics/baselines.csv``, ``predictions/runs/baselines.csv`` and
``checkpoints/<variant>/seed<k>/`` (the kept epoch) with ``seed<k>_training_state.safetensors``."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import pandas as pd
import torch

from msa_utils import io
from msa_utils.config.enums import Modality
from msa_utils.config.labels import LABELS
from msa_utils.config.profiles import Profile
from msa_utils.config.runtime import set_seed
from msa_utils.experiments import baselines
from msa_utils.experiments.dataset import LABELLED_PARTS, PARTS, StudyData
from msa_utils.io.hashing import Digest
from msa_utils.model import factory, text_finetune
from msa_utils.train.loop import TRAINING_VERSION, fit, predict_logits
from msa_utils.train.metrics import classification_metrics


@dataclass(frozen=True)
class Variant:
    """The profile's recipe with ``settings`` (profile fields) changed, without ``drop`` if set (an ablation)."""

    name: str
    title: str
    drop: Modality | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)

    def profile(self, cfg: Profile, seed: int) -> Profile:
        return cfg.replace(seed=seed, **self.settings)


VARIANTS: dict[str, Variant] = {v.name: v for v in (
    Variant("full", "image + text (the paper's recipe)"),
    Variant("no_image", "without image", drop=Modality.IMAGE),
    Variant("no_text", "without text", drop=Modality.TEXT),
    Variant("weighted_loss", "class-weighted loss, no re-sampling",
            settings={"resample": False, "class_weighted_loss": True}),
    Variant("plain_loss", "plain loss, no re-sampling", settings={"resample": False}),
    Variant("linear_head", "linear head on the CLS token", settings={"head": "linear"}),
    Variant("token_attention_head", "softmax-weighted sum of all output tokens", settings={"head": "token_attention"}),
    Variant("modality_sum_head", "weighted text and image sums + CLS", settings={"head": "modality_sum"}),
    Variant("attention_head", "multi-head attention in place of the MLP", settings={"head": "attention"}),
    Variant("frozen_fusion", "multimodal encoder frozen at initialisation", settings={"train_fusion": False}),
    Variant("text_top_layer", "top text-encoder layer fine-tuned", settings={"text_top_layers": 1}),
    Variant("no_regularisation", "no dropout, no early stopping",
            settings={"dropout": 0.0, "fusion_dropout": 0.0, "early_stopping": False}),
)}
"""Notebook 04 trains ``full``, notebook 05 ``no_image`` and ``no_text``, notebook 06 the rest (the claims)."""

BASELINES = {
    "majority": "majority class",
    "tfidf_text": "TF-IDF text + logistic regression",
    "probe_balanced": "linear probe, balanced classes",
    "probe_unbalanced": "linear probe, unbalanced",
}

PREDICTED_PARTS = ("val", "test", "unlabelled")
"""The parts whose predictions are written (no table reads the training part's)."""


@dataclass
class VariantRuns:
    variant: Variant
    runs: pd.DataFrame
    history: pd.DataFrame
    predictions: pd.DataFrame


def run_variant(data: StudyData, name: str, progress: bool = True) -> VariantRuns:
    """Train variant ``name`` (KeyError if unknown) with seeds ``cfg.seed + k``, ``k < cfg.seeds``, early-stopped
    on val, resuming the state of its :func:`run_key`; score and predict :data:`PREDICTED_PARTS`; write its files."""
    variant, cfg, paths = VARIANTS[name], data.cfg, data.cfg.paths
    rows, histories, predictions = [], [], []
    for seed in range(cfg.seed, cfg.seed + cfg.seeds):
        run_cfg, run_data = variant.profile(cfg, seed), data
        top_layers = run_cfg.model.text_top_layers
        if top_layers:  # the cached text states below the top layers
            run_data = dataclasses.replace(data, features={part: text_finetune.text_below_features(
                data.backbone, data.features[part], _texts(data, part), top_layers, cfg.cache_dir,
                dtype=cfg.features.cache_dtype, batch_size=cfg.features.encode_batch_size) for part in PARTS})
        set_seed(seed)
        classifier = factory.build_classifier(data.backbone, run_cfg)
        if top_layers:
            classifier = text_finetune.TextTopClassifier(text_finetune.text_top(data.backbone, top_layers), classifier)
        checkpoint = paths.checkpoints / name / f"seed{seed}"
        result = fit(classifier, run_data.features["train"], data.labels["train"], run_data.features["val"],
                     data.labels["val"], run_cfg.train, seed=seed, device=run_cfg.device, drop=variant.drop,
                     nulls=data.nulls, on_best=lambda m, epoch: m.save_pretrained(checkpoint), progress=progress,
                     state_path=paths.checkpoints / name / f"seed{seed}_training_state.safetensors",
                     state_key=run_key(run_data, name, run_cfg))
        classifier.save_pretrained(checkpoint)  # the kept epoch's weights, also when a finished run was reused
        history = result.history
        row = {"variant": name, "seed": seed, "best_epoch": result.best_epoch,
               "best_val_epoch": int(history.loc[history["val_weighted_f1"].idxmax(), "epoch"]),
               "epochs_run": len(history), "stopped_early": result.stopped_early,
               "batches_per_epoch": -(-len(data.labels["train"]) // run_cfg.train.batch_size),
               "mean_epoch_seconds": round(float(history["seconds"].mean()), 2),
               "trainable_parameters": sum(p.numel() for p in classifier.parameters() if p.requires_grad)}
        for part in PREDICTED_PARTS:
            logits = predict_logits(classifier, run_data.features[part], drop=variant.drop, nulls=data.nulls,
                                    device=run_cfg.device, precision=run_cfg.train.train_precision)
            row.update(_score(data, name, seed, part, torch.softmax(logits, dim=1).numpy(), predictions))
        rows.append(row)
        histories.append(history.assign(seed=seed)[["seed", *history.columns]])
    runs = pd.DataFrame(rows)
    history = pd.concat(histories, ignore_index=True)
    table = pd.concat(predictions, ignore_index=True)
    io.write_csv(paths.metrics / "runs" / f"{name}.csv", runs.round(6))
    io.write_csv(paths.metrics / "runs" / f"{name}_history.csv", history.round(6))
    io.write_csv(paths.predictions / "runs" / f"{name}.csv", table)
    return VariantRuns(variant, runs, history, table)


def run_baselines(data: StudyData) -> pd.DataFrame:
    """Fit the :data:`BASELINES` on the train part, score and predict, write their files; return
    ``metrics/baselines.csv`` (``title``, ``val_*``, ``test_*``, the cross-validated ``C``)."""
    cfg, y = data.cfg, data.labels["train"]
    pooled = {part: baselines.pooled_feature_set(data.features[part]) for part in PARTS}
    texts = {part: _texts(data, part) for part in PARTS}
    fitted = {
        "majority": (baselines.fit_majority(y), pooled),
        "tfidf_text": (baselines.fit_tfidf_probe(texts["train"], y, seed=cfg.seed), texts),
        "probe_balanced": (baselines.fit_linear_probe(pooled["train"], y, balanced=True, seed=cfg.seed), pooled),
        "probe_unbalanced": (baselines.fit_linear_probe(pooled["train"], y, balanced=False, seed=cfg.seed), pooled),
    }
    rows, predictions = [], []
    for name, (estimator, inputs) in fitted.items():
        row = {"baseline": name, "title": BASELINES[name]}
        for part in PREDICTED_PARTS:
            # every class a column, 0 for one the estimator never saw in training
            probabilities = np.zeros((len(inputs[part]), len(LABELS)))
            probabilities[:, estimator.classes_.astype(int)] = estimator.predict_proba(inputs[part])
            row.update(_score(data, name, cfg.seed, part, probabilities, predictions))
        row["C"] = float(np.ravel(estimator[-1].C_)[0]) if hasattr(estimator, "steps") else float("nan")
        rows.append(row)
    table = pd.DataFrame(rows).set_index("baseline")
    io.write_csv(cfg.paths.metrics / "baselines.csv", table.round(6), index=True)
    io.write_csv(cfg.paths.predictions / "runs" / "baselines.csv", pd.concat(predictions, ignore_index=True))
    return table


def run_key(data: StudyData, name: str, cfg: Profile) -> str:
    """SHA-256 (hex) of a training run, to resume it: :data:`~msa_utils.train.loop.TRAINING_VERSION` (not
    the source), the variant, ``cfg.run_key_settings()`` and every byte of the train and val data."""
    digest = Digest().add("training_version", TRAINING_VERSION).add("variant", name)
    digest.add("settings", cfg.run_key_settings())
    for part in ("train", "val"):
        features = data.features[part]
        for tensor_name, column in features.tensors().items():  # streamed: the digest of the whole tensor
            chunks = (column[start:start + 1024] for start in range(0, len(features), 1024))
            digest.add_tensor_chunks(f"{part}.{tensor_name}", column.dtype, column.shape, chunks)
        digest.add(f"{part}.labels", np.asarray(data.labels[part]))
    return digest.hexdigest()


def _texts(data: StudyData, part: str) -> list[str]:
    """``posts.text`` of ``part``, in its feature order."""
    by_guid = data.posts.set_index("guid")["text"].fillna("")
    return by_guid.loc[data.features[part].guids.numpy()].astype(str).tolist()


def _score(data: StudyData, model: str, seed: int, part: str, probabilities: np.ndarray,
           predictions: list[pd.DataFrame]) -> dict[str, float]:
    """Append the rows (``model, seed, part, guid, gold`` (empty if unlabelled), ``pred, p_<class>``) of
    ``probabilities`` (N, 3) to ``predictions``; return ``{part_<metric>: value}`` for a labelled part."""
    pred = probabilities.argmax(1)
    gold = [LABELS[i] for i in data.labels[part]] if part in data.labels else [""] * len(pred)
    predictions.append(pd.DataFrame({
        "model": model, "seed": seed, "part": part, "guid": data.features[part].guids.numpy(), "gold": gold,
        "pred": [LABELS[i] for i in pred], **{f"p_{c}": np.round(probabilities[:, i], 5) for i, c in enumerate(LABELS)},
    }))
    scores = classification_metrics(data.labels[part], pred) if part in LABELLED_PARTS else {}
    return {f"{part}_{metric}": value for metric, value in scores.items()}
