"""Closed sets of names that several layers dispatch on."""

from __future__ import annotations

from enum import StrEnum


class Modality(StrEnum):
    """An input of the classifier; what an ablation drops (``drop=Modality.IMAGE``). A ``StrEnum``:
    ``Modality.TEXT == "text"`` and ``str(Modality.TEXT) == "text"``."""

    TEXT = "text"
    IMAGE = "image"
