"""The study's data as a model reads it: every usable post's features and labels, and each cross-validation run's
train, val, test and unlabelled parts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from msa_utils import io
from msa_utils.config.profiles import Profile
from msa_utils.data.posts import load_posts, usable
from msa_utils.data.folds import load_folds, run_parts
from msa_utils.data.sources import source_root
from msa_utils.features.backbone import FrozenBackbone
from msa_utils.features.encoders import load_backbone
from msa_utils.features.feature_cache import load_or_extract_features
from msa_utils.features.sets import FeatureSet, NullInputs

LABELLED_PARTS = ("train", "val", "test")
PARTS = (*LABELLED_PARTS, "unlabelled")
"""A run's labelled parts and the usable posts of ``test_without_label.txt`` (predicted, never scored)."""
BACKBONE_FILE = "backbone.json"


@dataclass
class RunData:
    """What one training run ``(repeat, fold)`` reads: posts, backbone, each part's features (lazy, in guid order),
    labels ((N,) int64, aligned), the masked inputs' features (ablations) and the run's ``seed``."""

    cfg: Profile
    posts: pd.DataFrame
    backbone: FrozenBackbone
    features: dict[str, FeatureSet]
    labels: dict[str, np.ndarray]
    nulls: NullInputs
    repeat: int = 0
    fold: int = 0
    seed: int = 0


@dataclass
class StudyData:
    """Every run's data: posts, the folds (:mod:`msa_utils.data.folds`), backbone, the cached and the prepared
    features of every usable post (lazy), the labels by guid and the masked inputs' features; :meth:`run` gives one
    run's parts."""

    cfg: Profile
    posts: pd.DataFrame
    folds: pd.DataFrame
    backbone: FrozenBackbone
    cached: FeatureSet
    features: FeatureSet
    labels: pd.Series
    unlabelled: np.ndarray
    nulls: NullInputs

    def runs(self) -> list[tuple[int, int]]:
        """Every ``(repeat, fold)``, in the order of their seeds ``cfg.seed + repeat * folds + fold``."""
        return [(r, f) for r in range(self.cfg.data.repeats) for f in range(self.cfg.data.folds)]

    def seed(self, repeat: int, fold: int) -> int:
        """Run ``(repeat, fold)``'s seed: ``cfg.seed + repeat * folds + fold``."""
        return self.cfg.seed + repeat * self.cfg.data.folds + fold

    def run(self, repeat: int, fold: int, run_cfg: Profile | None = None) -> RunData:
        """The parts of run ``(repeat, fold)`` (:func:`~msa_utils.data.folds.run_parts`, seeded with the run's
        seed) and the unlabelled posts, the image states pooled to ``run_cfg``'s ``image_grid`` where the backbone
        pools and it differs from the profile's; KeyError for a run the folds do not hold."""
        seed, backbone, features, nulls = self.seed(repeat, fold), self.backbone, self.features, self.nulls
        grid = self.cfg.model.image_grid if run_cfg is None else run_cfg.model.image_grid
        if grid != self.cfg.model.image_grid and hasattr(backbone, "with_image_grid"):
            backbone = backbone.with_image_grid(grid)
            features, nulls = backbone.prepare(self.cached), backbone.null_inputs()
        groups = self.posts.set_index("guid")["content_group"]
        parts = {**run_parts(self.folds, self.labels, groups, repeat, fold, self.cfg.data.val_fraction, seed),
                 "unlabelled": self.unlabelled}
        labels = {p: self.labels.loc[parts[p]].to_numpy(dtype=np.int64, copy=True) for p in LABELLED_PARTS}
        return RunData(self.cfg, self.posts, backbone, {p: features.subset(g) for p, g in parts.items()}, labels,
                       nulls, repeat, fold, seed)


def prepare(cfg: Profile, processes=None) -> StudyData:
    """Load the backbone and the features of every usable post, encoding those not cached yet, shared
    among ``processes`` (an ``accelerate`` state) if given. FileNotFoundError if notebooks 01 or 03
    have not run; OSError if the backbone's weights cannot be loaded."""
    posts = load_posts(cfg.paths)
    folds = load_folds(cfg.paths.splits)
    labelled = np.sort(folds["guid"].unique())
    unlabelled = np.sort(posts.loc[(posts["split"] == "test") & usable(posts), "guid"].to_numpy())
    wanted = np.concatenate([labelled, unlabelled])
    rows = posts.set_index("guid").loc[wanted]
    backbone = load_backbone(cfg)
    cached = load_or_extract_features(
        backbone, guids=wanted, texts=rows["text"].tolist(),
        image_paths=[source_root(cfg.data.data_dir) / f for f in rows["image_file"]], cache_dir=cfg.cache_dir,
        dtype=cfg.features.cache_dtype, batch_size=cfg.features.encode_batch_size,
        workers=cfg.features.encode_workers, processes=processes)
    cached = cached.subset(wanted)
    labels = posts.set_index("guid").loc[labelled, "label"].astype(np.int64)
    return StudyData(cfg, posts, folds, backbone, cached, backbone.prepare(cached),  # pooled lazily: memory stays flat
                     labels, unlabelled, backbone.null_inputs())


def write_backbone_card(data: StudyData) -> Path:
    """Write ``metrics/backbone.json`` (the loaded backbone's ``name`` and ``description``); return its path."""
    card = {"name": data.backbone.name, "description": data.backbone.describe()}
    return io.write_json(data.cfg.paths.metrics / BACKBONE_FILE, card)
