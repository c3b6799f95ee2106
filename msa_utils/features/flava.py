"""The paper's backbone: FLAVA's frozen text and image encoders (``facebook/flava-full``)."""

from __future__ import annotations

import json
import logging
import os
from typing import Any, Sequence

import torch

from msa_utils.config.runtime import checked_precision, resolve_device
from msa_utils.features.backbone import FrozenBackbone, ImageLike, freeze, to_rgb_images, tokenizer_config

logger = logging.getLogger(__name__)
STUDY_MODULES = ("text_model", "image_model", "multimodal_model", "text_to_mm_projection", "image_to_mm_projection")
"""The ``FlavaModel`` submodules the study uses: the two encoders, and the fusion (multimodal encoder, projections)."""


def check_flava_loading(info: dict, name_or_path: str | os.PathLike) -> None:
    """Check ``from_pretrained(..., output_loading_info=True)``'s report: ValueError naming the tensors of
    :data:`STUDY_MODULES` the checkpoint lacks (transformers would initialise them at random), or any tensor it holds
    in another shape. Extra tensors (a ``FlavaForPreTraining`` checkpoint's pretraining heads) are logged at debug."""
    logger.debug("FLAVA checkpoint %s: unused tensors %s", name_or_path, sorted(info["unexpected_keys"]))
    missing = sorted(k for k in info["missing_keys"] if k.split(".")[0] in STUDY_MODULES)
    mismatched = sorted(f"{k} {tuple(ckpt)} != {tuple(model)}" for k, ckpt, model in info["mismatched_keys"])
    for problem, keys in (("of the encoders/fusion missing", missing), ("of another shape (checkpoint != model)",
                                                                         mismatched)):
        if keys:
            raise ValueError(f"{name_or_path!s} is not a complete FLAVA checkpoint: {len(keys)} tensor(s) {problem} "
                             "(FlavaModel names; a FlavaForPreTraining checkpoint prefixes them 'flava.'): "
                             f"{', '.join(keys[:10])}{', ...' if len(keys) > 10 else ''}")


class FlavaBackbone(FrozenBackbone):
    """``FlavaModel.text_model`` and ``image_model``; states ``hidden_states[-1]``, BEFORE the final layernorms, as
    ``FlavaModel.forward`` feeds them to its projections (transformers 5.24): ``(B, L, 768)`` and ``(B, 197, 768)``
    (CLS + 14 x 14 patches), all read by the multimodal encoder (:meth:`prepare_image_states` is the identity).
    :attr:`flava` is the whole model."""

    name = "flava"

    def __init__(self, flava, tokenizer, image_processor, *, max_text_tokens: int = 64,
                 device: str | torch.device = "cpu", name_or_path: str = "", precision: str = "float32") -> None:
        """Wrap a loaded ``FlavaModel`` and its processors; ValueError for a bad ``max_text_tokens``, ``precision``."""
        self.precision = checked_precision(precision)
        self.device = resolve_device(device)
        self.flava = flava.to(self.device)
        self.name_or_path = str(name_or_path)
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.text_encoder = freeze(flava.text_model)
        self.image_encoder = freeze(flava.image_model)
        self.text_dim, self.image_dim = flava.config.text_config.hidden_size, flava.config.image_config.hidden_size
        max_positions = flava.config.text_config.max_position_embeddings
        if max_text_tokens > max_positions:
            raise ValueError(f"max_text_tokens={max_text_tokens} exceeds FLAVA's {max_positions} text positions")
        self.max_text_tokens, self.image_size = int(max_text_tokens), int(flava.config.image_config.image_size)

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike = "facebook/flava-full", *, max_text_tokens: int = 64,
                        image_size: int | None = None, device: str | torch.device = "auto",
                        precision: str = "float32") -> "FlavaBackbone":
        """Load a ``FlavaModel`` or ``FlavaForPreTraining`` checkpoint from a hub id or folder; OSError if not found,
        ValueError for another ``image_size`` (``None``: any) or an incomplete checkpoint (:func:`check_flava_loading`)."""
        from transformers import FlavaModel, FlavaProcessor  # heavy (2.5 s): only when a model is loaded

        flava, info = FlavaModel.from_pretrained(name_or_path, output_loading_info=True, ignore_mismatched_sizes=True)
        check_flava_loading(info, name_or_path)
        processor = FlavaProcessor.from_pretrained(name_or_path)
        checkpoint_size = flava.config.image_config.image_size
        if image_size is not None and int(image_size) != checkpoint_size:
            raise ValueError(
                f"image_size={image_size} but the FLAVA checkpoint {name_or_path!s} expects {checkpoint_size} px")
        return cls(flava, processor.tokenizer, processor.image_processor, max_text_tokens=max_text_tokens,
                   device=device, name_or_path=str(name_or_path), precision=precision)

    @classmethod
    def from_profile(cls, profile) -> "FlavaBackbone":
        f = profile.features
        return cls.from_pretrained(f.flava_name_or_path, max_text_tokens=f.max_text_tokens, image_size=f.image_size,
                                   device=profile.device, precision=f.precision)

    def preprocess_images(self, images: Sequence[ImageLike]) -> torch.Tensor:
        pixel_values = self.image_processor(images=to_rgb_images(images), return_tensors="pt")["pixel_values"]
        return pixel_values.float()

    @torch.no_grad()
    def encode_image(self, pixel_values: torch.Tensor) -> torch.Tensor:
        with self.autocast():
            out = self.image_encoder(pixel_values=pixel_values.to(self.device, non_blocking=True),
                                     output_hidden_states=True, return_dict=True)
        return out.hidden_states[-1].float()

    def preprocessing_config(self) -> dict[str, Any]:
        return {"model": self.name_or_path, "states": "hidden_states[-1]", "max_text_tokens": self.max_text_tokens,
                "tokenizer": tokenizer_config(self.tokenizer),
                "image_processor": json.loads(self.image_processor.to_json_string())}

    def describe(self) -> str:
        return (f"FLAVA (`{self.name_or_path}`): frozen text and image encoders, "
                "pretrained multimodal encoder fine-tuned")
