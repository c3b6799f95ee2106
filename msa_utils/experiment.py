"""The study's experiment steps, shared by notebooks 03-06: data in, metrics and files out.

A notebook calls these in order; each writes its outputs under the profile's results folder:

- :func:`prepare` — the post table, the split and the cached frozen-encoder features;
- :func:`run_baselines` — majority class and linear probe on the same split;
- :func:`run_variant` — train and evaluate one model (full, without image, without text);
- :func:`predict_test` — ``predictions/test_predictions.txt`` in ``test_without_label.txt``'s format.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from . import LABELS, io
from .data_report import DataReport
from .profiles import Profile, StudyPaths

POST_DTYPES = {"guid": "int64", "label": "Int64", "split": "string", "tag": "string"}


def load_posts(paths: StudyPaths) -> pd.DataFrame:
    """Read the post table written by notebook 02 (``posts.csv``).

    Returns:
        DataFrame, one row per post of ``train.txt`` and ``test_without_label.txt``; text
        columns keep empty strings as ``""`` (not NaN).

    Raises:
        FileNotFoundError: if notebook 02 has not run for this results folder.
    """
    if not paths.posts.exists():
        raise FileNotFoundError(f"{paths.posts} not found: run notebooks/02_clean_translate.ipynb first")
    posts = pd.read_csv(paths.posts, dtype=POST_DTYPES, keep_default_na=False, na_values={"label": [""]})
    for column in ("has_text", "has_image", "image_ok", "translated"):
        if column in posts:
            posts[column] = posts[column].astype(str).str.lower().eq("true")
    return posts


def usable(posts: pd.DataFrame) -> pd.Series:
    """Boolean mask of the posts a model can read: text file present, image present and decodable."""
    return posts["has_text"] & posts["has_image"] & posts["image_ok"]


def split_counts(posts: pd.DataFrame, split: dict[str, np.ndarray]) -> pd.DataFrame:
    """Posts per class (rows, plus ``total``) in the train / val split and the usable test posts."""
    labelled = posts.set_index("guid")
    columns = {}
    for part in ("train", "val"):
        labels = labelled.loc[split[part], "label"].astype(int)
        columns[part] = labels.value_counts().reindex(range(len(LABELS)), fill_value=0).to_numpy()
    table = pd.DataFrame(columns, index=list(LABELS))
    table.loc["total"] = table.sum()
    test = posts[(posts["split"] == "test") & usable(posts)]
    table["test"] = [0] * len(LABELS) + [len(test)]
    return table


def save_table(table: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Atomically write a results table as CSV, index included."""
    return io.write_csv(path, table, index=True)


@dataclass
class StudyData:
    """Everything a training run needs, aligned by guid.

    Attributes:
        cfg: the profile.
        posts: the post table (:func:`load_posts`).
        split: ``{"train", "val"}`` guid arrays (notebook 03).
        backbone: the frozen backbone (kept for the flava backbone's pretrained fusion weights).
        features: ``{"train", "val", "test"}`` cached features, in guid order of each part.
        labels: ``{"train", "val"}`` (N,) class-id arrays aligned with ``features``.
        nulls: frozen-encoder outputs of the masked inputs, for the ablations.
    """

    cfg: Profile
    posts: pd.DataFrame
    split: dict[str, np.ndarray]
    backbone: object
    features: dict
    labels: dict[str, np.ndarray]
    nulls: object


def prepare(cfg: Profile, posts: pd.DataFrame | None = None, split: dict[str, np.ndarray] | None = None) -> StudyData:
    """Load the backbone and the features of every usable post (from the cache when valid).

    Features of the train, validation and usable test posts are computed once by the frozen
    encoders and cached under ``cfg.cache_dir`` (see :mod:`msa_utils.features`); later runs, and
    the ablations, read the cache.

    Raises:
        FileNotFoundError: if notebooks 02 or 03 have not run for this results folder.
    """
    from .encoders import load_backbone
    from .features import load_or_extract_features, pool_image_tokens
    from .splits import load_split
    from .train import NullInputs

    paths = cfg.paths
    posts = load_posts(paths) if posts is None else posts
    split = load_split(paths.splits) if split is None else split
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    test_guids = posts.loc[(posts["split"] == "test") & usable(posts), "guid"].to_numpy()
    parts = {"train": np.asarray(split["train"]), "val": np.asarray(split["val"]), "test": np.sort(test_guids)}
    wanted = np.concatenate(list(parts.values()))
    rows = posts.set_index("guid").loc[wanted]
    backbone = load_backbone(cfg)
    all_features = load_or_extract_features(
        backbone,
        guids=wanted,
        texts=rows["text"].tolist(),
        image_paths=[Path(cfg.data_dir) / f for f in rows["image_file"]],
        cache_dir=cfg.cache_dir,
        dtype=cfg.cache_dtype,
        batch_size=cfg.encode_batch_size,
    )
    null_text, null_mask = backbone.null_text()
    null_image = backbone.null_image()
    if cfg.backbone == "compact":
        all_features = pool_image_tokens(all_features, cfg.image_grid)
        null_image = pool_image_tokens(null_image, cfg.image_grid)
    nulls = NullInputs(null_text.cpu(), null_mask.cpu(), null_image.cpu())
    features = {part: all_features.subset(guids) for part, guids in parts.items()}
    labelled = posts.set_index("guid")["label"]
    labels = {part: labelled.loc[parts[part]].to_numpy(dtype=np.int64) for part in ("train", "val")}
    return StudyData(cfg, posts, split, backbone, features, labels, nulls)


def run_baselines(data: StudyData) -> pd.DataFrame:
    """Majority class and linear probe (pooled frozen features) on the study's split.

    Writes ``metrics/baselines.json`` and ``predictions/val_linear_probe.csv``.

    Returns:
        One row per baseline with the metrics of :func:`msa_utils.metrics.classification_metrics`.
    """
    from .metrics import linear_probe, majority_baseline, pooled_features

    paths = data.cfg.paths
    pooled = {
        part: pooled_features(f.text_states, f.text_mask, f.image_states)
        for part, f in data.features.items() if part != "test"
    }
    probe, probe_pred = linear_probe(pooled["train"], data.labels["train"], pooled["val"], data.labels["val"], seed=data.cfg.seed)
    results = {"majority": majority_baseline(data.labels["train"], data.labels["val"]), "linear_probe": probe}
    io.write_json(paths.metrics / "baselines.json", results)
    _write_val_predictions(paths, "linear_probe", data, probe_pred)
    return pd.DataFrame(results).T


def build_classifier(data: StudyData):
    """The classifier of ``data.cfg``: FLAVA's pretrained projections and multimodal encoder
    (backbone ``flava``) or a small one trained from scratch (backbone ``compact``), plus a new
    3-layer MLP head. Seeds the initialisation with ``cfg.seed``.
    """
    from .model import MultimodalClassifier
    from .seed import set_seed

    cfg = data.cfg
    set_seed(cfg.seed)
    if cfg.backbone == "flava":
        return MultimodalClassifier.from_flava(data.backbone.flava, head_hidden=cfg.head_hidden, dropout=cfg.dropout)
    return MultimodalClassifier.compact(data.backbone.text_dim, data.backbone.image_dim, cfg)


VARIANT_DROP = {"full": None, "no_image": "image", "no_text": "text"}
"""Model variants of the study and the modality each one masks."""


@dataclass
class VariantResult:
    """A trained variant: the model (best epoch), its training history and validation metrics."""

    name: str
    model: torch.nn.Module
    history: pd.DataFrame
    metrics: dict
    val_pred: np.ndarray


def run_variant(data: StudyData, name: str = "full", progress: bool = True) -> VariantResult:
    """Train and evaluate one model variant on the study's split.

    ``name`` is ``"full"`` (image + text), ``"no_image"`` or ``"no_text"`` (the paper's ablation:
    the missing modality is replaced by the frozen encoder's output for zero pixel values, or
    for zero token ids with a zero attention mask).

    Writes ``metrics/<name>.json`` (validation metrics of the best epoch, best epoch, epochs run),
    ``metrics/<name>_history.csv``, ``predictions/val_<name>.csv``, the best checkpoint
    ``checkpoints/<name>/`` (``config.json`` + ``model.safetensors``) and, after every epoch, the
    training state ``checkpoints/<name>_training_state.safetensors``: rerunning an interrupted
    run resumes it (same result as uninterrupted); rerunning a finished one does not retrain.

    Raises:
        KeyError: for an unknown variant name.
    """
    from .encoders import resolve_device
    from .metrics import classification_metrics
    from .train import fit, predict_logits

    drop = VARIANT_DROP[name]
    cfg, paths = data.cfg, data.cfg.paths
    model = build_classifier(data)
    device = resolve_device(cfg.device)
    checkpoint = paths.checkpoints / name
    result = fit(
        model, data.features["train"], data.labels["train"], data.features["val"], data.labels["val"],
        lr=cfg.lr, batch_size=cfg.batch_size, max_epochs=cfg.max_epochs, patience=cfg.patience,
        resample=cfg.resample, seed=cfg.seed, drop=drop, nulls=data.nulls, device=device,
        on_best=lambda m, epoch: m.save_pretrained(checkpoint), progress=progress,
        state_path=paths.checkpoints / f"{name}_training_state.safetensors", state_key=run_key(data, name),
    )
    model.save_pretrained(checkpoint)  # the best epoch's weights, also when a finished run was reused
    val_logits = predict_logits(model, data.features["val"], drop=drop, nulls=data.nulls, device=device)
    val_pred = val_logits.argmax(1).numpy()
    metrics = {
        "variant": name,
        "drop": drop,
        "val": classification_metrics(data.labels["val"], val_pred),
        "best_epoch": result.best_epoch,
        "epochs_run": len(result.history),
        "stopped_early": result.stopped_early,
        "mean_epoch_seconds": round(float(result.history["seconds"].mean()), 2),
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
    }
    io.write_json(paths.metrics / f"{name}.json", metrics)
    io.write_csv(paths.metrics / f"{name}_history.csv", result.history.round(6))
    _write_val_predictions(paths, name, data, val_pred)
    return VariantResult(name, model, result.history, metrics, val_pred)


TRAINING_SETTINGS = ("backbone", "flava_name_or_path", "max_text_tokens", "image_size", "image_grid", "fusion_hidden",
                     "fusion_layers", "fusion_heads", "fusion_dropout", "head_hidden", "dropout", "lr", "batch_size",
                     "max_epochs", "patience", "resample", "seed", "cache_dtype")
"""Profile fields that change what training produces (folders, threads and device do not)."""


def run_key(data: StudyData, name: str) -> str:
    """SHA-256 naming one training run, for resuming it (:mod:`msa_utils.resume`).

    Covers the variant, the training settings of the profile, every byte of the training and
    validation features and labels, and the source of the modules that define the model and
    the training loop, so that a changed setting, data or code never resumes a stale run.
    """
    from . import model as model_module
    from . import resume as resume_module
    from . import train as train_module

    digest = hashlib.sha256()
    settings = {k: v for k, v in data.cfg.to_dict().items() if k in TRAINING_SETTINGS}
    digest.update(json.dumps({"variant": name, "settings": settings}, sort_keys=True).encode())
    for part in ("train", "val"):
        for tensor in data.features[part].tensors().values():
            digest.update(tensor.contiguous().view(torch.uint8).numpy().tobytes())
        digest.update(np.ascontiguousarray(data.labels[part]).tobytes())
    for module in (model_module, train_module, resume_module):
        digest.update(inspect.getsource(module).encode())
    return digest.hexdigest()


def predict_test(data: StudyData, model: torch.nn.Module) -> pd.DataFrame:
    """Predict every post of ``test_without_label.txt`` and write ``predictions/test_predictions.txt``.

    The file has ``test_without_label.txt``'s own format: header ``guid,tag``, one row per guid
    written in that file (each once, in the file's order), tags ``positive|negative|neutral``.
    A test guid that was not predicted keeps the tag ``null`` and is listed in
    ``predictions/unpredicted.csv`` with the reasons from the data report: a post the model
    cannot read (no usable text or image), a guid excluded from the test split (also in
    ``train.txt``, or listed twice with different tags), or one left out of a smoke sample.

    Returns:
        The written table (``guid``, ``tag``).
    """
    from .data import LABEL_FILES, label_file_guids
    from .encoders import resolve_device
    from .train import predict_logits

    paths = data.cfg.paths
    guids = label_file_guids(Path(data.cfg.data_dir) / LABEL_FILES["test"])
    logits = predict_logits(model, data.features["test"], device=resolve_device(data.cfg.device))
    tags = dict(zip(data.features["test"].guids.tolist(), (LABELS[i] for i in logits.argmax(1).tolist())))
    table = pd.DataFrame({"guid": guids, "tag": [tags.get(g, "null") for g in guids]})
    io.write_csv(paths.predictions / "test_predictions.txt", table)
    missing = [g for g in guids if g not in tags]
    report = DataReport.load(paths.data_report).to_frame()
    why = report["guid"].isin(missing) & ((report["action"] == "excluded") | (report["reason"] == "not_in_sample"))
    report = report[why]
    reasons = report.groupby("guid")["reason"].agg(lambda r: "; ".join(dict.fromkeys(r)))
    io.write_csv(paths.predictions / "unpredicted.csv", pd.DataFrame(
        {"guid": missing, "reason": [reasons.get(g, "not usable (see data_report.csv)") for g in missing]}))
    return table


def _write_val_predictions(paths: StudyPaths, name: str, data: StudyData, pred: np.ndarray) -> None:
    gold = data.labels["val"]
    frame = pd.DataFrame({
        "guid": data.features["val"].guids.numpy(),
        "gold": [LABELS[i] for i in gold],
        "pred": [LABELS[i] for i in pred],
    })
    io.write_csv(paths.predictions / f"val_{name}.csv", frame)
