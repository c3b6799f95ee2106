"""The classifier each backbone trains, by backbone name (:data:`CLASSIFIERS`)."""

from __future__ import annotations

from typing import Callable

from msa_utils.model.classifier import ClassifierConfig, MultimodalClassifier


def compact_classifier(text_dim: int, image_dim: int, cfg) -> MultimodalClassifier:
    """A multimodal encoder from scratch (feed-forward ``4 H``, dropout ``fusion_dropout``) + the head, sized by a
    profile's ``model`` section; ValueError as :class:`ClassifierConfig`."""
    m, dropout = cfg.model, cfg.model.fusion_dropout
    return MultimodalClassifier(ClassifierConfig(
        text_dim=text_dim, image_dim=image_dim, hidden_size=m.fusion_hidden, num_layers=m.fusion_layers,
        num_heads=m.fusion_heads, head_hidden=tuple(m.head_hidden), dropout=m.dropout, head=m.head,
        multimodal_config={"hidden_dropout_prob": dropout, "attention_probs_dropout_prob": dropout}))


CLASSIFIERS: dict[str, Callable[..., MultimodalClassifier]] = {
    "flava": lambda backbone, cfg: MultimodalClassifier.from_flava(
        backbone.flava, head_hidden=cfg.model.head_hidden, dropout=cfg.model.dropout, head=cfg.model.head),
    "compact": lambda backbone, cfg: compact_classifier(backbone.text_dim, backbone.image_dim, cfg).to(backbone.device),
}
"""Backbone name (:data:`msa_utils.config.profiles.BACKBONE_NAMES`) -> ``(backbone, profile) -> classifier``."""


def build_classifier(backbone, cfg) -> MultimodalClassifier:
    """The classifier for ``backbone`` (on its device; random parts from the global torch seed), its fusion part
    frozen unless ``cfg.model.train_fusion``. ValueError for an unknown head or heads not dividing the width."""
    model = CLASSIFIERS[backbone.name](backbone, cfg)
    return model if cfg.model.train_fusion else model.freeze_fusion()
