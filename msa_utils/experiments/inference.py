"""Classifying new posts with the model the study chose on validation, without retraining (``msa-predict``,
notebook 08): the same reading, cleaning and translation as notebooks 01-02, the same frozen encoders and
preprocessing, and the mean probabilities of the chosen variant's fold models, as notebook 06 predicts
``test_without_label.txt``. Posts are encoded ``chunk`` at a time: memory stays flat in their number."""

from __future__ import annotations

import csv
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd
import torch

from msa_utils import io
from msa_utils.config.enums import Modality
from msa_utils.config.labels import LABELS
from msa_utils.config.profiles import Profile, get_profile
from msa_utils.data.data_report import DataReport
from msa_utils.data.images import inspect_images
from msa_utils.data.posts import usable
from msa_utils.data.sources import load_source, source_root
from msa_utils.data.text import clean_posts
from msa_utils.data.translate import translate_posts
from msa_utils.experiments import claims
from msa_utils.experiments.dataset import BACKBONE_FILE
from msa_utils.experiments.predict import SELECTION_FILE
from msa_utils.experiments.variants import VARIANTS
from msa_utils.features.backbone import FrozenBackbone
from msa_utils.features.encoders import load_backbone
from msa_utils.features.extraction import extract_features
from msa_utils.features.sets import NullInputs
from msa_utils.model.classifier import MultimodalClassifier
from msa_utils.train.loop import predict_logits

PREDICTION_COLUMNS = ["guid", "tag", *(f"p_{c}" for c in LABELS)]
"""The columns of ``predictions.csv``: ``tag`` is the most probable class, ``null`` for a post not classified."""
CHUNK = 256
"""Posts read, encoded and classified at a time."""
TRAINING_NOTEBOOKS = ("04_finetune.ipynb", "05_ablation.ipynb", "06_claims.ipynb")
COLD_STUDY = "the whole cpu study takes about 48 min cold on a 2-core CPU (README)"


class ModelMissing(FileNotFoundError):
    """The results folder holds no trained model to predict with; the message says which command makes it."""


@dataclass
class TrainedModel:
    """The chosen variant's fold models (``classifiers``, one per run) on ``backbone`` (with the variant's image
    grid), the masked modality (``drop``) with its ``nulls``, and the profile ``cfg`` the study ran on."""

    cfg: Profile
    name: str
    backbone: FrozenBackbone
    classifiers: list[MultimodalClassifier]
    runs: list[str]
    drop: Modality | None
    nulls: NullInputs
    precision: str


@dataclass
class Classified:
    """``predictions`` (:data:`PREDICTION_COLUMNS`, one row per post of the source, in its order), the data
    ``report`` and the files written (``predictions.csv``, ``data_report.csv``, ``unclassified.csv``)."""

    predictions: pd.DataFrame
    posts: pd.DataFrame
    report: DataReport
    files: dict[str, Path]


def _recorded(results: Path) -> dict[str, Any]:
    """What ``msa-study`` recorded in ``results/metrics/run_times.json`` (profile, overrides, seconds), or ``{}``."""
    record = results / "metrics" / "run_times.json"
    return io.read_json(record) if record.is_file() else {}


def study_profile(results_dir: str | Path, profile: str | None = None,
                  overrides: dict[str, Any] | None = None) -> Profile:
    """The profile the study in ``results_dir`` ran on: the one ``msa-study`` recorded there
    (``metrics/run_times.json``) with its overrides, else ``cpu``; ``profile`` replaces it (the recorded overrides
    then kept only if it is the recorded one), ``overrides`` are applied last; its results folder is
    ``results_dir``. Raises as :func:`~msa_utils.config.profiles.get_profile`."""
    results = Path(results_dir).expanduser().resolve()
    recorded = _recorded(results)
    name = profile or recorded.get("profile") or "cpu"
    settings = dict(recorded.get("overrides") or {}) if name == recorded.get("profile") else {}
    settings.update(overrides or {})
    settings["results_dir"] = str(results)
    return get_profile(name, **settings)


def _how_to_train(cfg: Profile) -> str:
    """The command that trains the model into ``cfg``'s results folder, and how long it took last time (or the cold
    study's time)."""
    recorded = _recorded(cfg.paths.results)
    settings = {k: v for k, v in (recorded.get("overrides") or {}).items() if k.rpartition(".")[2] != "results_dir"}
    values = {k: v if isinstance(v, str) else json.dumps(v) for k, v in settings.items()}
    command = " ".join([f"msa-study --profile {cfg.name}", *(f"--set {k}={v}" for k, v in values.items()),
                        f"--set results_dir={cfg.paths.results}"])
    seconds = recorded.get("seconds", {})
    when = COLD_STUDY + (f"; notebooks 04-06 took {sum(seconds[nb] for nb in TRAINING_NOTEBOOKS) / 60:.0f} min in the "
                         "run metrics/run_times.json records, less if it reused finished training"
                         if all(nb in seconds for nb in TRAINING_NOTEBOOKS) else "")
    return f"`{command}` trains it (notebooks 04-06; {when}; the checkpoints are not in the repository)"


def load_trained_model(cfg: Profile) -> TrainedModel:
    """The variant named in ``metrics/selection.json`` (notebook 06), its checkpoint of every run of
    ``metrics/runs/<variant>.csv``, and the profile's backbone. Raises :class:`ModelMissing` (which command makes
    it) if either is missing, ValueError if the backbone differs from the one the study recorded
    (``metrics/backbone.json``) or the variant fine-tunes text layers (not supported here)."""
    paths = cfg.paths
    if not paths.results.is_dir():
        raise ModelMissing(f"results folder {paths.results} not found: {_how_to_train(cfg)}")
    if not (paths.metrics / SELECTION_FILE).is_file():
        raise ModelMissing(f"no model chosen in {paths.metrics / SELECTION_FILE}: {_how_to_train(cfg)}")
    name = io.read_json(paths.metrics / SELECTION_FILE)["model"]
    variant = VARIANTS[name]
    try:
        runs = claims.load_runs(paths, [name])
    except FileNotFoundError as error:  # no folds or no runs of the chosen variant
        raise ModelMissing(f"{error}: {_how_to_train(cfg)}") from None
    folders = [paths.checkpoints / name / f"r{r}f{f}" for r, f in zip(runs["repeat"], runs["fold"])]
    if runs.empty or (missing := [str(f) for f in folders if not (f / "model.safetensors").is_file()]):
        raise ModelMissing(f"the chosen model {name!r} has no trained checkpoint "
                           f"({', '.join(missing[:2]) or paths.checkpoints / name}): {_how_to_train(cfg)}")
    run_cfg = variant.profile(cfg, cfg.seed)
    if run_cfg.model.text_top_layers:
        raise ValueError(f"the chosen model {name!r} fine-tunes text-encoder layers; msa-predict reads frozen "
                         "encoders only")
    backbone = load_backbone(cfg)
    card = paths.metrics / BACKBONE_FILE
    if card.is_file() and (recorded := io.read_json(card)["description"]) != backbone.describe():
        raise ValueError(f"the study's backbone ({recorded!r}) is not the profile's ({backbone.describe()!r}): "
                         "pass the study's --profile and --set options")
    if run_cfg.model.image_grid != cfg.model.image_grid and hasattr(backbone, "with_image_grid"):
        backbone = backbone.with_image_grid(run_cfg.model.image_grid)  # as StudyData.run does
    classifiers = [MultimodalClassifier.from_pretrained(folder, device=backbone.device).eval() for folder in folders]
    nulls = backbone.null_inputs()
    return TrainedModel(cfg, name, backbone, classifiers, [f.name for f in folders], variant.drop,
                        nulls if run_cfg.model.masking == "inputs" else nulls.zero_states(),
                        run_cfg.train.train_precision)


def read_new_posts(source: str | Path, cfg: Profile, report: DataReport, translation_cache: Path,
                   unlabelled_only: bool = False) -> pd.DataFrame:
    """The posts of ``source`` (an MVSA folder or a table: :mod:`msa_utils.data.sources`; ``unlabelled_only``:
    those without a label) read, their images
    checked, cleaned and translated as notebooks 01-02 do (stages load, images, clean, translate of ``report``;
    tags are not read, and no post is left out for its tag; ``unlabelled_only`` leaves the labelled posts out
    of the frame and the report). Raises as
    :func:`~msa_utils.data.sources.load_source`."""
    frame = load_source(source, report, cfg.data.label_map, read_labels=False)
    if unlabelled_only:  # the labelled posts and what the report says of them left out
        labelled = set(frame.loc[frame["split"] == "train", "guid"].tolist())
        report.entries[:] = [e for e in report.entries if e.guid not in labelled]
        frame = frame[frame["split"] == "test"]
    frame = inspect_images(frame, source_root(source), report)
    frame = clean_posts(frame, report)
    return translate_posts(frame, translation_cache, report, enabled=cfg.data.translate,
                           timeout_s=cfg.data.translate_timeout_s)


def probabilities(model: TrainedModel, texts: list[str], image_paths: list[Path], guids: np.ndarray) -> np.ndarray:
    """``(N, 3)`` class probabilities of ``N`` usable posts: the softmax of each fold model's logits on their
    encoded, prepared states (cast to the feature cache's dtype, as the study's are), averaged over the models."""
    cfg = model.cfg
    features = extract_features(model.backbone, texts, image_paths, guids, batch_size=cfg.features.encode_batch_size,
                                progress=False, dtype=cfg.features.cache_dtype)
    features = model.backbone.prepare(features)
    total = np.zeros((len(guids), len(LABELS)))
    for classifier in model.classifiers:
        logits = predict_logits(classifier, features, drop=model.drop, nulls=model.nulls, device=model.backbone.device,
                                precision=model.precision)
        total += torch.softmax(logits, dim=1).double().numpy()
    return total / len(model.classifiers)


def _chunks(posts: pd.DataFrame, size: int) -> Iterator[pd.DataFrame]:
    for start in range(0, len(posts), size):
        yield posts.iloc[start:start + size]


def classify_posts(model: TrainedModel, source: str | Path, out_dir: str | Path, chunk: int = CHUNK,
                   unlabelled_only: bool = False) -> Classified:
    """Classify every post ``source`` lists (``unlabelled_only``: those without a label) with ``model``; write
    ``out_dir/predictions.csv`` (:data:`PREDICTION_COLUMNS`, probabilities to 5 decimals; ``null`` and no
    probabilities for a post no model can read), ``data_report.csv`` (what was repaired, excluded or noted, and
    why) and ``unclassified.csv`` (``guid, reason``). The posts' texts are read whole, their features ``chunk``
    posts at a time. Raises as :func:`read_new_posts`; ValueError for ``chunk < 1``."""
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    out_dir, report = Path(out_dir), DataReport()
    cache = out_dir / "translation_cache.json"  # the study's answers reused; its own file left as it is
    if not cache.exists() and model.cfg.paths.translation_cache.is_file():
        out_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(model.cfg.paths.translation_cache, cache)
    posts = read_new_posts(source, model.cfg, report, cache, unlabelled_only)
    if posts.empty:
        raise ValueError(f"{source}: no post to classify (data_report: {len(report)} entries; "
                         f"{', '.join(sorted({e.reason for e in report.entries})) or 'none'})")
    out_dir.mkdir(parents=True, exist_ok=True)
    root, readable = source_root(source), usable(posts)
    files = {"predictions": out_dir / "predictions.csv", "data_report": out_dir / "data_report.csv",
             "unclassified": out_dir / "unclassified.csv"}
    with io.atomic_path(files["predictions"]) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(PREDICTION_COLUMNS)
        for part in _chunks(posts, chunk):  # rows in the source's order; only usable ones encoded
            ok = readable.loc[part.index].to_numpy()
            p = np.full((len(part), len(LABELS)), np.nan)
            if ok.any():
                p[ok] = probabilities(model, part.loc[ok, "text"].tolist(),
                                      [root / f for f in part.loc[ok, "image_file"]], part.loc[ok, "guid"].to_numpy())
            for guid, row, good in zip(part["guid"], p, ok):
                writer.writerow([int(guid), LABELS[int(row.argmax())] if good else "null",
                                 *(f"{v:.5f}" if good else "" for v in row)])
    unclassified = posts.loc[~readable, "guid"].tolist()
    report.save(files["data_report"])
    io.write_csv(files["unclassified"], pd.DataFrame({"guid": unclassified, "reason": report.why_left_out(
        unclassified, fallback="no usable text and image (data_report.csv)")}))
    predictions = pd.read_csv(files["predictions"], keep_default_na=False, na_values={f"p_{c}": [""] for c in LABELS})
    return Classified(predictions, posts, report, files)

