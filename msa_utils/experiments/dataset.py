"""The study's data as a model reads it: features and labels of the train, val, test and unlabelled parts.

:func:`prepare` is the first step of notebooks 04-06: it reads the post table (notebook 01)
and the split (notebook 03), loads the frozen backbone named by the profile, and gets the
frozen-encoder features of every usable post from the cache (computing and caching them the
first time, :mod:`msa_utils.features.sets`), prepared for the classifier by the backbone. The features
stay in the memory-mapped cache: each part is a view of its rows, and the backbone's preparation
(e.g. pooling the compact backbone's image tokens) runs on each batch read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from msa_utils import io
from msa_utils.features.encoders import FrozenBackbone, load_backbone
from msa_utils.features.feature_cache import load_or_extract_features
from msa_utils.features.sets import FeatureSet, NullInputs
from msa_utils.data.posts import load_posts, usable
from msa_utils.config.profiles import Profile
from msa_utils.data.splits import load_split

LABELLED_PARTS = ("train", "val", "test")
"""The parts of the usable labelled posts of ``train.txt`` (notebook 03): training, validation
(early stopping and every choice) and the held-out test part (scores only)."""

BACKBONE_FILE = "backbone.json"
"""Written under ``metrics/`` by :func:`write_backbone_card` (notebook 04), read by the report."""

PARTS = (*LABELLED_PARTS, "unlabelled")
"""Every part: the labelled ones and the usable posts of ``test_without_label.txt``, which are
predicted for the study's prediction file and never scored."""


@dataclass
class StudyData:
    """Everything a training run needs, aligned by guid.

    Attributes:
        cfg: the profile.
        posts: the post table (:func:`msa_utils.data.posts.load_posts`).
        split: ``{"train", "val", "test"}`` guid arrays (notebook 03).
        backbone: the frozen backbone (:func:`msa_utils.features.encoders.load_backbone`); it builds
            the classifier (for FLAVA, from its pretrained multimodal encoder).
        features: :data:`PARTS` -> prepared features, rows in the guid order of each part: lazy
            views of the cache (:meth:`msa_utils.features.sets.FeatureSet.subset`) whose image states
            go through ``backbone.prepare_image_states`` batch by batch
            (:meth:`~msa_utils.features.sets.FeatureSet.map_image_states`).
        labels: :data:`LABELLED_PARTS` -> ``(N,)`` int64 class ids aligned with ``features``.
        nulls: the prepared frozen-encoder outputs of the masked inputs, for the ablations.
    """

    cfg: Profile
    posts: pd.DataFrame
    split: dict[str, np.ndarray]
    backbone: FrozenBackbone
    features: dict[str, FeatureSet]
    labels: dict[str, np.ndarray]
    nulls: NullInputs


def prepare(cfg: Profile, processes=None) -> StudyData:
    """Load the backbone and the prepared features of every usable post.

    ``processes``, an ``accelerate.PartialState`` of several processes, shares the encoders' pass
    among them (:mod:`msa_utils.runner.distributed`); ``None`` (the notebooks): this process alone.

    The labelled parts follow the saved split; the unlabelled part is every usable post of
    ``test_without_label.txt``, by guid. Features of all three are computed by the frozen encoders
    once and cached under ``cfg.cache_dir``; later runs, and the ablations, read the cache.

    Raises:
        FileNotFoundError: if notebooks 01 or 03 have not run for this results folder.
        OSError: if the backbone's weights cannot be loaded (e.g. FLAVA offline without a copy).
    """
    posts = load_posts(cfg.paths)
    split = load_split(cfg.paths.splits)
    unlabelled = np.sort(posts.loc[(posts["split"] == "test") & usable(posts), "guid"].to_numpy())
    parts = {**{part: np.asarray(split[part]) for part in LABELLED_PARTS}, "unlabelled": unlabelled}
    wanted = np.concatenate([parts[part] for part in PARTS])
    rows = posts.set_index("guid").loc[wanted]
    backbone = load_backbone(cfg)
    cached = load_or_extract_features(
        backbone,
        guids=wanted,
        texts=rows["text"].tolist(),
        image_paths=[Path(cfg.data_dir) / f for f in rows["image_file"]],
        cache_dir=cfg.cache_dir,
        dtype=cfg.cache_dtype,
        batch_size=cfg.encode_batch_size,
        workers=cfg.encode_workers,
        processes=processes,
    )
    prepared = backbone.prepare(cached)  # pooled batch by batch: memory stays flat
    features = {part: prepared.subset(guids) for part, guids in parts.items()}
    labelled = posts.set_index("guid")["label"]
    labels = {part: labelled.loc[parts[part]].to_numpy(dtype=np.int64) for part in LABELLED_PARTS}
    return StudyData(cfg, posts, split, backbone, features, labels, backbone.null_inputs())


def write_backbone_card(data: StudyData) -> Path:
    """Write ``metrics/backbone.json`` (:data:`BACKBONE_FILE`): the backbone's
    name and how reports describe it (``backbone.describe()``, naming the checkpoint actually
    loaded), for ``REPORT.md``.

    Returns:
        The path written.
    """
    card = {"name": data.backbone.name, "description": data.backbone.describe()}
    return io.write_json(data.cfg.paths.metrics / BACKBONE_FILE, card)
