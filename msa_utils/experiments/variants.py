"""The study's models, trained with several seeds and scored on the same parts.

- :data:`VARIANTS`: the paper's model (``full``), its ablations, and the variants that test the
  paper's other claims (loss, head, freezing, regularisation); each is the profile with a few
  settings changed (:class:`Variant`);
- :func:`run_variant`: trains one variant with each of the profile's ``seeds`` seeds
  (``seed, seed + 1, ...``; the parts stay the same), early-stopped on validation, and scores it
  on validation and on the held-out test part;
- :func:`run_baselines`: majority class, TF-IDF text probe, linear probes (:mod:`msa_utils.experiments.baselines`).

Files written (the claims notebook and the report read them back, :mod:`msa_utils.experiments.claims`):

- ``metrics/runs/<variant>.csv``: one row per seed (:data:`RUN_COLUMNS` + ``val_*`` / ``test_*`` metrics);
- ``metrics/runs/<variant>_history.csv``: one row per seed and epoch;
- ``predictions/runs/<variant>.csv``: class probabilities of every post of the scored parts
  (:data:`PREDICTED_PARTS`), per seed (:data:`PREDICTION_COLUMNS`);
- ``metrics/baselines.csv`` and ``predictions/runs/baselines.csv`` likewise for the baselines;
- ``checkpoints/<variant>/seed<k>/`` (best epoch) and ``checkpoints/<variant>/seed<k>_training_state.safetensors``.

A run resumes after an interruption and is not retrained when finished (:mod:`msa_utils.train.resume`);
:func:`run_key` names it so that a changed setting, data or code never resumes a stale one.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import pandas as pd
import torch

from msa_utils import io
from msa_utils.config.labels import LABELS
from msa_utils.experiments import baselines
from msa_utils.features import encoders
from msa_utils.model import classifier as model, text_finetune
from msa_utils.train import resume, loop as train
from msa_utils.experiments.dataset import LABELLED_PARTS, PARTS, StudyData
from msa_utils.io.hashing import Digest
from msa_utils.train.metrics import classification_metrics
from msa_utils.config.profiles import Profile
from msa_utils.config.runtime import resolve_device, set_seed
from msa_utils.train.loop import fit, predict_logits


@dataclass(frozen=True)
class Variant:
    """One model of the study: the profile's recipe with ``settings`` changed.

    Attributes:
        name: file-safe name (``metrics/runs/<name>.csv``).
        title: what it is, for tables and figures.
        drop: the modality masked at training and prediction (the paper's ablation), or None.
        settings: profile fields that differ from the recipe (:class:`msa_utils.config.profiles.Profile`).
    """

    name: str
    title: str
    drop: str | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)

    def profile(self, cfg: Profile, seed: int) -> Profile:
        """``cfg`` with this variant's settings and the training seed ``seed``.

        Raises:
            ValueError / TypeError: if a setting is not a valid profile field value.
        """
        return dataclasses.replace(cfg, seed=seed, **self.settings)


VARIANTS: dict[str, Variant] = {v.name: v for v in (
    Variant("full", "image + text (the paper's recipe)"),
    Variant("no_image", "without image", drop="image"),
    Variant("no_text", "without text", drop="text"),
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
"""Every variant of the study, by name. ``full`` is notebook 04's, ``no_image`` / ``no_text``
notebook 05's, the rest notebook 06's (the claims)."""

BASELINES = {
    "majority": "majority class",
    "tfidf_text": "TF-IDF text + logistic regression",
    "probe_balanced": "linear probe, balanced classes",
    "probe_unbalanced": "linear probe, unbalanced",
}
"""The baselines of :func:`run_baselines`, by name, with their titles."""

RUN_COLUMNS = ["variant", "seed", "best_epoch", "best_val_epoch", "epochs_run", "stopped_early",
               "batches_per_epoch", "mean_epoch_seconds", "trainable_parameters"]
"""The first columns of ``metrics/runs/<variant>.csv``; then ``val_<metric>`` and ``test_<metric>``
for every metric of :func:`msa_utils.train.metrics.classification_metrics`."""

PREDICTED_PARTS = ("val", "test", "unlabelled")
"""The parts whose predictions are written: what is scored, and the posts to predict (the training
part's own predictions would triple the files and serve no table)."""

PREDICTION_COLUMNS = ["model", "seed", "part", "guid", "gold", "pred", *(f"p_{c}" for c in LABELS)]
"""The columns of the prediction tables; ``gold`` is empty for the unlabelled part, ``p_*`` are
class probabilities (softmax of the logits; 0/1 for the baselines without probabilities)."""


@dataclass
class VariantRuns:
    """Every seed's run of one variant.

    Attributes:
        variant: the :class:`Variant`.
        runs: one row per seed (:data:`RUN_COLUMNS` + metrics).
        history: one row per seed and epoch (:class:`msa_utils.train.loop.FitResult` history + ``seed``).
        predictions: :data:`PREDICTION_COLUMNS`, the :data:`PREDICTED_PARTS`, every seed.
    """

    variant: Variant
    runs: pd.DataFrame
    history: pd.DataFrame
    predictions: pd.DataFrame


def run_variant(data: StudyData, name: str, progress: bool = True) -> VariantRuns:
    """Train and score one variant with each of ``data.cfg.seeds`` seeds; write its files (module doc).

    Run ``k`` seeds the initialisation, dropout and sampler with ``cfg.seed + k`` and trains on
    the train part, early-stopped (and its best epoch chosen) on the val part; the test part is
    only predicted. A variant that fine-tunes text layers (``text_top_layers``) trains on the
    cached states below them (:func:`msa_utils.model.text_finetune.text_below_features`).

    Raises:
        KeyError: for an unknown variant name.
    """
    variant = VARIANTS[name]
    cfg, paths = data.cfg, data.cfg.paths
    device = resolve_device(cfg.device)
    rows, histories, predictions = [], [], []
    for k in range(cfg.seeds):
        seed = cfg.seed + k
        run_cfg = variant.profile(cfg, seed)
        run_data = _text_below(data, run_cfg.text_top_layers)
        set_seed(seed)
        classifier = data.backbone.build_classifier(run_cfg)
        if run_cfg.text_top_layers:
            classifier = text_finetune.TextTopClassifier(data.backbone.text_top(run_cfg.text_top_layers), classifier)
        checkpoint = paths.checkpoints / name / f"seed{seed}"
        result = fit(
            classifier, run_data.features["train"], data.labels["train"], run_data.features["val"], data.labels["val"],
            lr=run_cfg.lr, batch_size=run_cfg.batch_size, max_epochs=run_cfg.max_epochs, patience=run_cfg.patience,
            resample=run_cfg.resample, class_weighted_loss=run_cfg.class_weighted_loss,
            early_stopping=run_cfg.early_stopping, group_by_length=run_cfg.group_by_length, seed=seed,
            drop=variant.drop, nulls=data.nulls, device=device,
            on_best=lambda m, epoch: m.save_pretrained(checkpoint), progress=progress,
            state_path=paths.checkpoints / name / f"seed{seed}_training_state.safetensors",
            state_key=run_key(run_data, name, run_cfg),
        )
        classifier.save_pretrained(checkpoint)  # the kept epoch's weights, also when a finished run was reused
        row = {"variant": name, "seed": seed, "best_epoch": result.best_epoch,
               "best_val_epoch": int(result.history.loc[result.history["val_weighted_f1"].idxmax(), "epoch"]),
               "epochs_run": len(result.history), "stopped_early": result.stopped_early,
               "batches_per_epoch": -(-len(data.labels["train"]) // run_cfg.batch_size),
               "mean_epoch_seconds": round(float(result.history["seconds"].mean()), 2),
               "trainable_parameters": sum(p.numel() for p in classifier.parameters() if p.requires_grad)}
        for part in PREDICTED_PARTS:
            logits = predict_logits(classifier, run_data.features[part], drop=variant.drop, nulls=data.nulls,
                                    device=device)
            probabilities = torch.softmax(logits, dim=1).numpy()
            predictions.append(_prediction_rows(data, name, seed, part, probabilities))
            if part in LABELLED_PARTS:
                scores = classification_metrics(data.labels[part], probabilities.argmax(1))
                row.update({f"{part}_{metric}": value for metric, value in scores.items()})
        rows.append(row)
        histories.append(result.history.assign(seed=seed))
    runs = pd.DataFrame(rows)
    history = pd.concat(histories, ignore_index=True)
    history = history[["seed", *[c for c in history.columns if c != "seed"]]]
    table = pd.concat(predictions, ignore_index=True)
    io.write_csv(paths.metrics / "runs" / f"{name}.csv", runs.round(6))
    io.write_csv(paths.metrics / "runs" / f"{name}_history.csv", history.round(6))
    io.write_csv(paths.predictions / "runs" / f"{name}.csv", table)
    return VariantRuns(variant, runs, history, table)


def run_baselines(data: StudyData) -> pd.DataFrame:
    """Fit the baselines (:data:`BASELINES`) on the train part; score them on val and test.

    Writes ``metrics/baselines.csv`` (one row per baseline: ``val_*``, ``test_*`` metrics and the
    ``C`` chosen by cross-validation on the train part) and ``predictions/runs/baselines.csv``.

    Returns:
        The ``metrics/baselines.csv`` table, indexed by baseline name.
    """
    cfg = data.cfg
    pooled = {part: baselines.pooled_feature_set(data.features[part]) for part in PARTS}
    texts = {part: _texts(data, part) for part in PARTS}
    y = data.labels["train"]
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
            probabilities = _full_probabilities(estimator, inputs[part])
            predictions.append(_prediction_rows(data, name, cfg.seed, part, probabilities))
            if part in ("val", "test"):
                scores = classification_metrics(data.labels[part], probabilities.argmax(1))
                row.update({f"{part}_{metric}": value for metric, value in scores.items()})
        last = estimator[-1] if hasattr(estimator, "steps") else None
        row["C"] = float(np.ravel(last.C_)[0]) if last is not None else float("nan")
        rows.append(row)
    table = pd.DataFrame(rows).set_index("baseline")
    io.write_csv(cfg.paths.metrics / "baselines.csv", table.round(6), index=True)
    io.write_csv(cfg.paths.predictions / "runs" / "baselines.csv", pd.concat(predictions, ignore_index=True))
    return table


def run_key(data: StudyData, name: str, cfg: Profile) -> str:
    """SHA-256 (hex) naming one training run, for resuming it (:mod:`msa_utils.train.resume`).

    Covers the variant, every profile field of the run that can change what training produces
    (:meth:`msa_utils.config.profiles.Profile.run_key_settings`: its settings and seed), every byte of the
    training and validation features and labels, and the source of the modules that build the
    classifier and train it, so that a changed setting, data or code never resumes a stale run.
    """
    digest = Digest().add("variant", name).add("settings", cfg.run_key_settings())
    for part in ("train", "val"):
        features = data.features[part]
        for tensor_name, column in features.tensors().items():  # streamed: the same digest as whole tensors
            chunks = (column[start:start + 1024] for start in range(0, len(features), 1024))
            digest.add_tensor_chunks(f"{part}.{tensor_name}", column.dtype, column.shape, chunks)
        digest.add(f"{part}.labels", np.asarray(data.labels[part]))
    for module in (encoders, model, text_finetune, train, resume):
        digest.add(module.__name__, module)
    return digest.hexdigest()


def _texts(data: StudyData, part: str) -> list[str]:
    """The model's input texts (``posts.text``) of ``part``, in its feature order."""
    by_guid = data.posts.set_index("guid")["text"].fillna("")
    return by_guid.loc[data.features[part].guids.numpy()].astype(str).tolist()


def _text_below(data: StudyData, top_layers: int) -> StudyData:
    """``data`` itself, or with every part's text states replaced by the (cached) states below
    the top ``top_layers`` layers of the text encoder (:func:`msa_utils.model.text_finetune.text_below_features`)."""
    if not top_layers:
        return data
    cfg = data.cfg
    features = {part: text_finetune.text_below_features(
        data.backbone, data.features[part], _texts(data, part), top_layers, cfg.cache_dir,
        dtype=cfg.cache_dtype, batch_size=cfg.encode_batch_size) for part in PARTS}
    return dataclasses.replace(data, features=features)


def _full_probabilities(estimator, inputs) -> np.ndarray:
    """(N, 3) class probabilities of a fitted scikit-learn estimator, with a 0 column for every
    class it never saw in training."""
    out = np.zeros((len(inputs), len(LABELS)))
    out[:, estimator.classes_.astype(int)] = estimator.predict_proba(inputs)
    return out


def _prediction_rows(data: StudyData, model_name: str, seed: int, part: str, probabilities: np.ndarray) -> pd.DataFrame:
    """The :data:`PREDICTION_COLUMNS` rows of one model, seed and part."""
    gold = [LABELS[i] for i in data.labels[part]] if part in data.labels else [""] * len(probabilities)
    frame = pd.DataFrame({"model": model_name, "seed": seed, "part": part, "guid": data.features[part].guids.numpy(),
                          "gold": gold, "pred": [LABELS[i] for i in probabilities.argmax(1)]})
    for i, label in enumerate(LABELS):
        frame[f"p_{label}"] = np.round(probabilities[:, i], 5)
    return frame
