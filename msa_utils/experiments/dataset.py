"""The study's data as a model reads it: features and labels of the train, val, test and unlabelled parts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from msa_utils import io
from msa_utils.config.profiles import Profile
from msa_utils.data.posts import load_posts, usable
from msa_utils.data.splits import load_split
from msa_utils.features.backbone import FrozenBackbone
from msa_utils.features.encoders import load_backbone
from msa_utils.features.feature_cache import load_or_extract_features
from msa_utils.features.sets import FeatureSet, NullInputs

LABELLED_PARTS = ("train", "val", "test")
PARTS = (*LABELLED_PARTS, "unlabelled")
"""The labelled parts and the usable posts of ``test_without_label.txt`` (predicted, never scored)."""
BACKBONE_FILE = "backbone.json"


@dataclass
class StudyData:
    """What a training run needs: posts, split, backbone, each part's features (lazy, in guid order),
    labels ((N,) int64, aligned) and the masked inputs' features (ablations)."""

    cfg: Profile
    posts: pd.DataFrame
    split: dict[str, np.ndarray]
    backbone: FrozenBackbone
    features: dict[str, FeatureSet]
    labels: dict[str, np.ndarray]
    nulls: NullInputs


def prepare(cfg: Profile, processes=None) -> StudyData:
    """Load the backbone and the features of every usable post, encoding those not cached yet, shared
    among ``processes`` (an ``accelerate`` state) if given. FileNotFoundError if notebooks 01 or 03
    have not run; OSError if the backbone's weights cannot be loaded."""
    posts = load_posts(cfg.paths)
    split = load_split(cfg.paths.splits)
    unlabelled = np.sort(posts.loc[(posts["split"] == "test") & usable(posts), "guid"].to_numpy())
    parts = {**{part: np.asarray(split[part]) for part in LABELLED_PARTS}, "unlabelled": unlabelled}
    wanted = np.concatenate([parts[part] for part in PARTS])
    rows = posts.set_index("guid").loc[wanted]
    backbone = load_backbone(cfg)
    cached = load_or_extract_features(
        backbone, guids=wanted, texts=rows["text"].tolist(),
        image_paths=[Path(cfg.data.data_dir) / f for f in rows["image_file"]], cache_dir=cfg.cache_dir,
        dtype=cfg.features.cache_dtype, batch_size=cfg.features.encode_batch_size,
        workers=cfg.features.encode_workers, processes=processes)
    prepared = backbone.prepare(cached)  # pooled batch by batch: memory stays flat
    features = {part: prepared.subset(guids) for part, guids in parts.items()}
    labelled = posts.set_index("guid")["label"]
    labels = {part: labelled.loc[parts[part]].to_numpy(dtype=np.int64) for part in LABELLED_PARTS}
    return StudyData(cfg, posts, split, backbone, features, labels, backbone.null_inputs())


def write_backbone_card(data: StudyData) -> Path:
    """Write ``metrics/backbone.json`` (the loaded backbone's ``name`` and ``description``); return its path."""
    card = {"name": data.backbone.name, "description": data.backbone.describe()}
    return io.write_json(data.cfg.paths.metrics / BACKBONE_FILE, card)
