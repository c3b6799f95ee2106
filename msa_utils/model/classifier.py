"""The trained part of the model (the paper's): projections + multimodal encoder + a head giving
3 logits (:data:`msa_utils.config.labels.LABELS`), on PREPARED frozen token states. The forward pass
is the multimodal half of ``transformers.FlavaModel.forward`` (transformers 5.24): projected image tokens,
then text tokens, into ``FlavaMultimodalModel``, which prepends its CLS token; the head reads
``h[:, 0]`` (other heads first pool ``h``: :mod:`msa_utils.model.heads`)."""

from __future__ import annotations

import copy
import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn
from transformers import FlavaMultimodalConfig, FlavaMultimodalModel
from transformers.utils import ModelOutput

from msa_utils.features.sets import NullInputs
from msa_utils.io import load_tensors, read_json, save_tensors, write_json
from msa_utils.model.heads import HEADS, ModalitySumPool

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
MULTIMODAL_EXTRA_FIELDS = ("hidden_act", "hidden_dropout_prob", "attention_probs_dropout_prob",
                           "initializer_range", "layer_norm_eps", "qkv_bias")  # carried over by from_flava
FUSION_MODULES = ("text_projection", "image_projection", "multimodal")
"""The submodules below the head."""


@dataclass
class ClassifierConfig:
    """A :class:`MultimodalClassifier`'s shape: state widths; the multimodal encoder's width ``hidden_size`` (``H``),
    layers, heads (also the ``attention`` head's), feed-forward width (default ``4 H``); the head (a key of
    :data:`~msa_utils.model.heads.HEADS`), its MLP widths and dropout; other ``FlavaMultimodalConfig`` fields.
    ValueError for a bad ``head_hidden`` or ``head``, or ``hidden_size`` not a multiple of ``num_heads``."""

    text_dim: int
    image_dim: int
    hidden_size: int = 256
    num_layers: int = 2
    num_heads: int = 4
    intermediate_size: int | None = None
    head_hidden: tuple[int, int] = (256, 128)
    dropout: float = 0.3
    num_labels: int = 3
    head: str = "mlp"
    multimodal_config: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.head_hidden = tuple(int(w) for w in self.head_hidden)
        if len(self.head_hidden) != 2:
            raise ValueError(f"head_hidden must have 2 widths, got {self.head_hidden}")
        if self.intermediate_size is None:
            self.intermediate_size = 4 * self.hidden_size
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not a multiple of num_heads {self.num_heads}")
        if self.head not in HEADS:
            raise ValueError(f"head must be one of {tuple(HEADS)}, got {self.head!r}")

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "head_hidden": list(self.head_hidden)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ClassifierConfig":
        """Inverse of :meth:`to_dict`; TypeError for unknown keys."""
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise TypeError(f"unknown ClassifierConfig fields {unknown}")
        return cls(**data)


@dataclass
class ClassifierOutput(ModelOutput):
    """``logits (B, num_labels)``; ``cls_embedding (B, H)``, the multimodal CLS token whatever the head."""

    logits: torch.Tensor | None = None
    cls_embedding: torch.Tensor | None = None


class MultimodalClassifier(nn.Module):
    """``text_projection`` (Dt -> H), ``image_projection`` (Di -> H), ``multimodal`` (``FlavaMultimodalModel``, CLS
    token, no pooler), then the head's ``pool`` and ``head``; initialised from the global torch seed in this order."""

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__()
        self.config = config
        self.text_projection = nn.Linear(config.text_dim, config.hidden_size)
        self.image_projection = nn.Linear(config.image_dim, config.hidden_size)
        mm_config = FlavaMultimodalConfig(**(config.multimodal_config | dict(
            hidden_size=config.hidden_size, num_hidden_layers=config.num_layers, num_attention_heads=config.num_heads,
            intermediate_size=config.intermediate_size, use_cls_token=True)))
        self.multimodal = FlavaMultimodalModel(mm_config, add_pooling_layer=False)
        self.pool, self.head = HEADS[config.head](config)

    @classmethod
    def from_flava(cls, flava_model, head_hidden: Sequence[int] = (512, 256), dropout: float = 0.3,
                   num_labels: int = 3, head: str = "mlp") -> "MultimodalClassifier":
        """The paper's model: copies of a ``FlavaModel``'s ``text_to_mm_projection``, ``image_to_mm_projection`` and
        ``multimodal_model`` (no pooler) + a new head, on its device, all trainable; ValueError as the config."""
        mm_config = flava_model.config.multimodal_config
        config = ClassifierConfig(
            text_dim=flava_model.config.text_config.hidden_size, image_dim=flava_model.config.image_config.hidden_size,
            hidden_size=mm_config.hidden_size, num_layers=mm_config.num_hidden_layers,
            num_heads=mm_config.num_attention_heads, intermediate_size=mm_config.intermediate_size,
            head_hidden=tuple(head_hidden), dropout=dropout, num_labels=num_labels, head=head,
            multimodal_config={k: getattr(mm_config, k) for k in MULTIMODAL_EXTRA_FIELDS},
        )
        model = cls(config)
        model.text_projection = copy.deepcopy(flava_model.text_to_mm_projection)
        model.image_projection = copy.deepcopy(flava_model.image_to_mm_projection)
        model.multimodal = copy.deepcopy(flava_model.multimodal_model)
        model.multimodal.pooler = None
        return model.requires_grad_(True).to(flava_model.device)

    def freeze_fusion(self) -> "MultimodalClassifier":
        """Only the head trains (the paper's "frozen multimodal encoder"); train/eval mode is untouched."""
        for name in FUSION_MODULES:
            getattr(self, name).requires_grad_(False)
        return self

    def forward(self, text_states: torch.Tensor, text_mask: torch.Tensor, image_states: torch.Tensor) -> ClassifierOutput:
        """Classify ``text_states (B, Lt, Dt)``, ``text_mask (B, Lt)`` and prepared ``image_states (B, Li', Di)``;
        ValueError for mismatched shapes."""
        if not (text_states.shape[0] == text_mask.shape[0] == image_states.shape[0]):
            raise ValueError(f"batch sizes differ: {text_states.shape[0]}, {text_mask.shape[0]}, {image_states.shape[0]}")
        if text_states.shape[-1] != self.config.text_dim or image_states.shape[-1] != self.config.image_dim:
            raise ValueError(f"expected widths text {self.config.text_dim} / image {self.config.image_dim}, got "
                             f"{text_states.shape[-1]} / {image_states.shape[-1]}")
        weight = self.text_projection.weight
        image_proj = self.image_projection(image_states.to(weight.device, weight.dtype))
        text_proj = self.text_projection(text_states.to(weight.device, weight.dtype))
        text_mask = text_mask.to(weight.device)
        batch_size, num_image, _ = image_proj.shape
        # As in FlavaModel.forward: image tokens (+1 for the CLS token) are always attended to.
        image_mask = torch.ones(batch_size, num_image + 1, device=weight.device)
        attention_mask = torch.cat([image_mask, text_mask], dim=1)
        hidden = torch.cat([image_proj, text_proj], dim=1)
        states = self.multimodal(hidden, attention_mask=attention_mask, return_dict=True).last_hidden_state
        if self.pool is None:  # mlp, linear: the CLS token
            summary = states[:, 0]
        elif isinstance(self.pool, ModalitySumPool):  # (B, 3H)
            summary = self.pool(states[:, 0], text_proj, text_mask, image_proj)
        else:  # token_attention, attention
            summary = self.pool(states, attention_mask)
        return ClassifierOutput(logits=self.head(summary), cls_embedding=states[:, 0])

    def save_pretrained(self, save_directory: str | os.PathLike) -> Path:
        """Write ``config.json`` and ``model.safetensors`` atomically; returns the folder."""
        folder = Path(save_directory)
        save_tensors(folder / WEIGHTS_NAME, self.state_dict())
        write_json(folder / CONFIG_NAME, self.config.to_dict())
        return folder

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, device: str | torch.device = "cpu") -> "MultimodalClassifier":
        """What :meth:`save_pretrained` wrote; FileNotFoundError for a missing file, RuntimeError for other weights."""
        folder = Path(directory)
        model = cls(ClassifierConfig.from_dict(read_json(folder / CONFIG_NAME)))
        model.load_state_dict(load_tensors(folder / WEIGHTS_NAME)[0], strict=True)
        return model.to(device)


def mask_modality(text_states: torch.Tensor, text_mask: torch.Tensor, image_states: torch.Tensor,
                  drop: str | None, nulls: NullInputs | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The paper's ablations: the modality ``drop`` (``None``, ``"text"``, ``"image"``) replaced by ``nulls`` (text:
    its mask too). ValueError for another ``drop``, missing ``nulls`` or nulls of another shape."""
    if drop is None:
        return text_states, text_mask, image_states
    if drop not in ("text", "image"):
        raise ValueError(f"drop must be None, 'text' or 'image', got {drop!r}")
    if nulls is None:
        raise ValueError(f"drop={drop!r} needs the null inputs of the backbone (FrozenBackbone.null_inputs())")
    null, given = (nulls.text_states, text_states) if drop == "text" else (nulls.image_states, image_states)
    if null.shape[1:] != given.shape[1:]:
        hint = "; prepare (pool) both with the same backbone" if drop == "image" else ""
        raise ValueError(f"null {drop} {tuple(null.shape)} does not match {drop} states {tuple(given.shape)}{hint}")
    null = null.to(given.device, given.dtype).expand(text_states.shape[0], -1, -1)
    if drop == "text":
        return null, nulls.text_mask.to(text_mask.device, text_mask.dtype).expand_as(text_mask), image_states
    return text_states, text_mask, null


def trim_text_padding(text_states: torch.Tensor, text_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Views cut to the batch's longest real text (at least 1): logits equal up to rounding."""
    positions = torch.nonzero(text_mask.any(dim=0))
    length = int(positions.max()) + 1 if positions.numel() else 1
    return text_states[:, :length], text_mask[:, :length]


class EndToEndModel(nn.Module):
    """Frozen backbone + trained classifier (the only submodule): raw posts to logits; ValueError for other widths."""

    def __init__(self, backbone, classifier: MultimodalClassifier) -> None:
        super().__init__()
        if (backbone.text_dim, backbone.image_dim) != (classifier.config.text_dim, classifier.config.image_dim):
            raise ValueError(f"backbone widths {(backbone.text_dim, backbone.image_dim)} != classifier "
                             f"{(classifier.config.text_dim, classifier.config.image_dim)}")
        self.backbone = backbone  # plain object, not an nn.Module: not registered
        self.classifier = classifier

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, pixel_values: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, num_labels)`` of ``backbone.tokenize`` / ``preprocess_images`` outputs."""
        text_states = self.backbone.encode_text(input_ids, attention_mask)
        image_states = self.backbone.prepare_image_states(self.backbone.encode_image(pixel_values))
        return self.classifier(text_states, attention_mask, image_states).logits

    @torch.no_grad()
    def predict(self, texts: Sequence[str], images: Sequence[Any]) -> torch.Tensor:
        """Logits of raw texts and images in eval mode (mode restored); ValueError if they differ in length."""
        if len(texts) != len(images):
            raise ValueError(f"{len(texts)} texts but {len(images)} images")
        was_training = self.classifier.training
        self.classifier.eval()
        try:
            batch = self.backbone.tokenize(texts)
            pixel_values = self.backbone.preprocess_images(images)
            return self.forward(batch["input_ids"], batch["attention_mask"], pixel_values)
        finally:
            self.classifier.train(was_training)
