"""The classifier each backbone trains, by backbone name (:data:`CLASSIFIERS`)."""

from __future__ import annotations

from typing import Callable

from msa_utils.model.classifier import MultimodalClassifier


def compact_classifier(text_dim: int, image_dim: int, cfg) -> MultimodalClassifier:
    """:meth:`MultimodalClassifier.compact` sized by a profile's ``fusion_hidden``, ``fusion_layers``,
    ``fusion_heads``, ``fusion_dropout``, ``head_hidden``, ``dropout`` and ``head``."""
    return MultimodalClassifier.compact(
        text_dim, image_dim, hidden_size=cfg.model.fusion_hidden, num_layers=cfg.model.fusion_layers, num_heads=cfg.model.fusion_heads,
        fusion_dropout=cfg.model.fusion_dropout, head_hidden=cfg.model.head_hidden, dropout=cfg.model.dropout, head=cfg.model.head)


CLASSIFIERS: dict[str, Callable[..., MultimodalClassifier]] = {
    "flava": lambda backbone, cfg: MultimodalClassifier.from_flava(
        backbone.flava, head_hidden=cfg.model.head_hidden, dropout=cfg.model.dropout, head=cfg.model.head),
    "compact": lambda backbone, cfg: compact_classifier(backbone.text_dim, backbone.image_dim, cfg).to(backbone.device),
}
"""Backbone name -> ``(backbone, profile) -> classifier``: FLAVA's pretrained projections and multimodal encoder + a
new head; for the compact backbone a small one trained from scratch. Its keys are
:data:`msa_utils.config.profiles.BACKBONE_NAMES` (tested)."""


def build_classifier(backbone, cfg) -> MultimodalClassifier:
    """The classifier trained on ``backbone``'s prepared states (:data:`CLASSIFIERS`), on its device,
    with the head ``cfg.model.head``; with ``cfg.model.train_fusion`` False its fusion part is frozen
    (:meth:`MultimodalClassifier.freeze_fusion`: FLAVA's as loaded, the compact one at its random
    initialisation). Random parts follow the global torch seed: the caller seeds first.

    Raises:
        ValueError: for an unknown head, or ``fusion_hidden`` not a multiple of ``fusion_heads``.
    """
    model = CLASSIFIERS[backbone.name](backbone, cfg)
    return model if cfg.model.train_fusion else model.freeze_fusion()
