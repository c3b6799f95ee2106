"""Closed sets of names that several layers dispatch on or validate against (no torch: profiles import them)."""

from __future__ import annotations

from enum import StrEnum


class Modality(StrEnum):
    """An input of the classifier; what an ablation drops (``drop=Modality.IMAGE``). A ``StrEnum``:
    ``Modality.TEXT == "text"`` and ``str(Modality.TEXT) == "text"``."""

    TEXT = "text"
    IMAGE = "image"


PRECISIONS = ("float32", "bfloat16")
"""The values of a profile's ``precision``: float32, or bf16 autocast of the frozen encoders."""

CACHE_DTYPES = ("float32", "float16", "bfloat16")
"""The dtypes cached token states are stored in (a profile's ``cache_dtype``), named as in torch."""
