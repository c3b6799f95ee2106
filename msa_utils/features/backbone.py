"""What every frozen backbone does: encode posts, prepare image states, describe itself. Images (paths or
``PIL.Image`` s of any mode) become RGB the same way (:func:`to_rgb_images`) in the cached and end-to-end paths."""

from __future__ import annotations

from typing import Any, Sequence

import torch
from PIL import Image
from torch import nn

from msa_utils.config.runtime import autocast
from msa_utils.data.images import load_image, to_rgb
from msa_utils.features.sets import FeatureSet, NullInputs
from msa_utils.io.hashing import Digest, sha256_of

ImageLike = Any
"""A ``PIL.Image.Image`` (any mode) or a path (``str`` / ``os.PathLike``) to an image file."""


def to_rgb_images(images: Sequence[ImageLike]) -> list:
    """RGB ``PIL.Image`` s (alpha on white); ImageLoadError (a ValueError) for a bad file."""
    return [to_rgb(image)[0] if isinstance(image, Image.Image) else load_image(image) for image in images]


def add_state_dicts(digest: Digest, *modules: nn.Module) -> Digest:
    """``digest`` with the modules' state-dict tensors added as ``"{index}/{name}"``, sorted."""
    for index, module in enumerate(modules):
        for name, tensor in sorted(module.state_dict().items()):
            digest.add(f"{index}/{name}", tensor)
    return digest


def freeze(module: nn.Module) -> nn.Module:
    """``module`` in eval mode, no parameter requiring grad."""
    return module.requires_grad_(False).eval()


def tokenizer_config(tokenizer) -> dict[str, Any]:
    """A tokenizer's identity (class, vocabulary hash, casing, padding id)."""
    return {"class": type(tokenizer).__name__, "vocab_sha256": sha256_of(sorted(tokenizer.get_vocab().items())),
            "do_lower_case": getattr(tokenizer, "do_lower_case", None), "pad_token_id": tokenizer.pad_token_id}


class FrozenBackbone:
    """A frozen text encoder + a frozen image encoder. ``name``: a key of :data:`msa_utils.features.encoders.BACKBONES`
    (in cache names); widths ``text_dim`` (``Dt``), ``image_dim`` (``Di``); ``max_text_tokens`` (``L``); ``image_size``
    [px]; ``precision`` (``"bfloat16"``: bf16 autocast, float32 outputs). The image encoder's ``Li`` tokens (cached)
    become the classifier's ``Li'`` in :meth:`prepare_image_states`."""

    name: str = "base"
    text_dim: int
    image_dim: int
    max_text_tokens: int
    image_size: int
    device: torch.device
    precision: str = "float32"
    text_encoder: nn.Module
    image_encoder: nn.Module
    tokenizer: Any

    @classmethod
    def from_profile(cls, profile) -> "FrozenBackbone":
        """The backbone a :class:`msa_utils.config.profiles.Profile` describes."""
        raise NotImplementedError

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """``input_ids``, ``attention_mask`` ``(B, L)`` int64 on the CPU, padded and truncated; TypeError for a str."""
        if isinstance(texts, str):
            raise TypeError("texts must be a list of strings, not one string")
        encoded = self.tokenizer(list(texts), padding="max_length", truncation=True, max_length=self.max_text_tokens,
                                 return_tensors="pt")
        return {"input_ids": encoded["input_ids"].long(), "attention_mask": encoded["attention_mask"].long()}

    def preprocess_images(self, images: Sequence[ImageLike]) -> torch.Tensor:
        """Resized, normalised ``(B, 3, S, S)`` float32 on the CPU."""
        raise NotImplementedError

    @torch.no_grad()
    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The text encoder's last layer ``hidden_states[-1]`` ``(B, L, Dt)``, float32 on ``device``."""
        with self.autocast():
            out = self.text_encoder(input_ids=input_ids.to(self.device, non_blocking=True),
                                    attention_mask=attention_mask.to(self.device, non_blocking=True),
                                    output_hidden_states=True, return_dict=True)
        return out.hidden_states[-1].float()

    def encode_image(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """The image encoder's own token states ``(B, Li, Di)`` float32 on ``device``."""
        raise NotImplementedError

    def preprocessing_config(self) -> dict[str, Any]:
        """JSON-able tokenisation and image preprocessing (hashed by :meth:`fingerprint`; not ``image_grid``)."""
        raise NotImplementedError

    def prepare_image_states(self, image_states: torch.Tensor) -> torch.Tensor:
        """``(B, Li, Di)`` to the classifier's ``(B, Li', Di)``, same dtype and device; here the identity."""
        return image_states

    def describe(self) -> str:
        """One line for the report."""
        raise NotImplementedError

    def autocast(self) -> torch.autocast:
        """bf16 autocast if :attr:`precision` is ``"bfloat16"`` (compact states' relative error: text under 1%, image
        map about 7%, docs/performance.md), else disabled."""
        return autocast(self.precision, self.device)

    def prepare(self, features: FeatureSet) -> FeatureSet:
        """``features`` with ``image_states`` through :meth:`prepare_image_states` (lazily for memory-mapped rows)."""
        return features.map_image_states(self.prepare_image_states)

    def null_inputs(self) -> NullInputs:
        """The ablations' masked inputs (zero ids, mask and pixels) encoded once, prepared, on the CPU."""
        raw = getattr(self, "_raw_null_inputs", None)
        if raw is None:
            ids = torch.zeros(1, self.max_text_tokens, dtype=torch.long)
            mask = torch.zeros_like(ids)
            text = self.encode_text(ids, mask).cpu()
            image = self.encode_image(torch.zeros(1, 3, self.image_size, self.image_size)).cpu()
            raw = self._raw_null_inputs = (text, mask, image)
        text, mask, image = raw
        return NullInputs(text_states=text, text_mask=mask, image_states=self.prepare_image_states(image))

    def fingerprint(self) -> str:
        """Hex SHA-256 of the name, encoder weights, precision and :meth:`preprocessing_config` (computed once)."""
        cached = getattr(self, "_fingerprint", None)
        if cached is None:
            digest = add_state_dicts(Digest().add("name", self.name), self.text_encoder, self.image_encoder)
            digest.add("precision", self.precision)
            cached = self._fingerprint = digest.add("preprocessing", self.preprocessing_config()).hexdigest()
        return cached

    def encode(self, texts: Sequence[str], images: Sequence[ImageLike]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """:meth:`encode_preprocessed` of ``texts`` and preprocessed ``images``; ValueError for other lengths."""
        return self.encode_preprocessed(texts, self.preprocess_images(images))

    def encode_preprocessed(self, texts: Sequence[str], pixel_values: torch.Tensor
                            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(text_states (B, L, Dt), text_mask (B, L), image_states (B, Li, Di))`` on ``device``; texts cut to the
        longest, padding zeros. ValueError if the lengths differ."""
        if len(texts) != len(pixel_values):
            raise ValueError(f"{len(texts)} texts but {len(pixel_values)} images")
        batch = self.tokenize(texts)
        mask = batch["attention_mask"]
        length = max(int(mask.sum(1).max()), 1)
        states = self.encode_text(batch["input_ids"][:, :length], mask[:, :length])
        text_states = states.new_zeros((len(texts), mask.shape[1], states.shape[2]))
        text_states[:, :length] = states * mask[:, :length, None].to(states)
        image_states = self.encode_image(pixel_values)
        return text_states, mask.to(self.device), image_states

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(name={self.name!r}, text_dim={self.text_dim}, image_dim={self.image_dim}, "
                f"max_text_tokens={self.max_text_tokens}, image_size={self.image_size}, device={self.device})")
