"""Fine-tune the top ``n`` text-encoder layers cheaply (profile ``text_top_layers``; the paper's claim that freezing
costs nothing): cache the states ENTERING them once (:func:`text_below_features`), train a copy of them
(:func:`text_top`) with the classifier (:class:`TextTopClassifier`); the lower layers never run. As in transformers
5.24's ``BertModel`` and ``FlavaTextModel``: layers in ``.encoder.layer``, mask by ``create_bidirectional_mask``,
nothing after the last layer in ``encode_text``."""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
import time
from pathlib import Path
from typing import Sequence

import torch
from torch import nn
from transformers.masking_utils import create_bidirectional_mask

from msa_utils.config.runtime import progress_bar
from msa_utils.features.extraction import length_sorted_batches
from msa_utils.features.feature_cache import cache_path, feature_cache_key, load_or_build, save_features
from msa_utils.features.sets import FeatureSet, checked_dtype
from msa_utils.io import load_tensors, read_json, save_tensors, write_json
from msa_utils.model.classifier import ClassifierOutput, MultimodalClassifier

logger = logging.getLogger(__name__)

TEXT_TOP_CONFIG_NAME = "text_top.json"
TEXT_TOP_WEIGHTS_NAME = "text_top.safetensors"
CLASSIFIER_FOLDER = "classifier"  # a sub-folder: MultimodalClassifier.from_pretrained of the checkpoint fails


def _text_layers(backbone, top_layers: int) -> tuple[nn.ModuleList, int]:
    """``(backbone.text_encoder.encoder.layer, top_layers)``; NotImplementedError if absent, ValueError unless
    ``top_layers`` is an int (not a bool) in ``1..len(layers)``."""
    layers = getattr(getattr(getattr(backbone, "text_encoder", None), "encoder", None), "layer", None)
    if layers is None:
        raise NotImplementedError(f"{type(backbone).__name__} cannot fine-tune the top layers of its text encoder "
                                  "(no text_encoder.encoder.layer)")
    if isinstance(top_layers, bool) or not isinstance(top_layers, int) or not 1 <= top_layers <= len(layers):
        raise ValueError(f"top_layers must be an integer in 1..{len(layers)} (the text encoder's layers), "
                         f"got {top_layers!r}")
    return layers, int(top_layers)


@torch.no_grad()
def encode_text_below(backbone, input_ids: torch.Tensor, attention_mask: torch.Tensor, top_layers: int) -> torch.Tensor:
    """The states ``(B, L, Dt)`` entering the top ``top_layers`` text layers (no autocast); ValueError,
    NotImplementedError as :func:`_text_layers`."""
    n, device = _text_layers(backbone, top_layers)[1], backbone.device
    out = backbone.text_encoder(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device),
                                output_hidden_states=True, return_dict=True)
    return out.hidden_states[-1 - n]


def text_top(backbone, top_layers: int) -> "TextTopLayers":
    """Trainable copies of the top ``top_layers`` text layers, in the encoder's mode; errors as
    :func:`encode_text_below`."""
    all_layers, n = _text_layers(backbone, top_layers)
    layers = [copy.deepcopy(layer) for layer in all_layers[len(all_layers) - n:]]
    top = TextTopLayers(layers, copy.deepcopy(backbone.text_encoder.config), backbone_name=backbone.name,
                        num_layers=len(all_layers))
    return top.requires_grad_(True).train(backbone.text_encoder.training)


class TextTopLayers(nn.Module):
    """The top ``layers`` of a text encoder of ``num_layers``: ``(B, L, D)`` states and ``(B, L)`` mask to
    ``(B, L, D)``."""

    def __init__(self, layers: Sequence[nn.Module], config, *, backbone_name: str, num_layers: int) -> None:
        super().__init__()
        self.layers, self.config = nn.ModuleList(layers), config
        self.backbone_name, self.num_layers = str(backbone_name), int(num_layers)
        self.top_layers, self.hidden_size = len(self.layers), int(config.hidden_size)

    def forward(self, states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        mask = create_bidirectional_mask(config=self.config, inputs_embeds=states,
                                         attention_mask=attention_mask.to(states.device))
        hidden = states
        for layer in self.layers:
            out = layer(hidden, mask)  # BertLayer returns a tensor, FlavaLayer a tuple
            hidden = out[0] if isinstance(out, tuple) else out
        return hidden


class TextTopClassifier(nn.Module):
    """``classifier(text_top(below, text_mask), text_mask, image_states)``; ValueError if the widths differ."""

    def __init__(self, text_top: TextTopLayers, classifier: MultimodalClassifier) -> None:
        super().__init__()
        if text_top.hidden_size != classifier.config.text_dim:
            raise ValueError(f"text layers of width {text_top.hidden_size} do not match the classifier's "
                             f"text_dim {classifier.config.text_dim}")
        self.text_top, self.classifier, self.top_layers = text_top, classifier, text_top.top_layers

    def forward(self, text_states_below: torch.Tensor, text_mask: torch.Tensor,
                image_states: torch.Tensor) -> ClassifierOutput:
        weight = next(self.text_top.parameters())  # both modules move the mask to their own device
        text_states = self.text_top(text_states_below.to(weight.device, weight.dtype), text_mask)
        return self.classifier(text_states, text_mask, image_states)

    def save_pretrained(self, save_directory: str | os.PathLike) -> Path:
        """Write ``text_top.json``, ``text_top.safetensors`` and ``classifier/``."""
        folder = Path(save_directory)
        self.classifier.save_pretrained(folder / CLASSIFIER_FOLDER)
        save_tensors(folder / TEXT_TOP_WEIGHTS_NAME, self.text_top.state_dict())
        write_json(folder / TEXT_TOP_CONFIG_NAME, {"top_layers": self.top_layers, "num_layers": self.text_top.num_layers,
                                                   "backbone": self.text_top.backbone_name,
                                                   "text_dim": self.text_top.hidden_size})
        return folder

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, backbone,
                        device: str | torch.device = "cpu") -> "TextTopClassifier":
        """What :meth:`save_pretrained` wrote; ValueError if made on another backbone, other errors as the
        classifier's."""
        folder = Path(directory)
        config = read_json(folder / TEXT_TOP_CONFIG_NAME)
        top = text_top(backbone, config["top_layers"])
        found = {"backbone": top.backbone_name, "num_layers": top.num_layers, "text_dim": top.hidden_size}
        expected = {key: config[key] for key in found}
        if found != expected:
            raise ValueError(f"checkpoint {folder} was made on a backbone with {expected}, this backbone has {found}")
        top.load_state_dict(load_tensors(folder / TEXT_TOP_WEIGHTS_NAME)[0], strict=True)
        classifier = MultimodalClassifier.from_pretrained(folder / CLASSIFIER_FOLDER, device=device)
        return cls(top.to(device), classifier)


def text_below_features(backbone, features: FeatureSet, texts: Sequence[str], top_layers: int,
                        cache_dir: str | os.PathLike, dtype: str = "float32", batch_size: int = 32,
                        progress: bool = True) -> FeatureSet:
    """``features`` (of ``texts``) with the ``text_states`` entering the top ``top_layers`` layers, in ``dtype``,
    lazily from the feature cache (folder ``features-{name}-below{n}-{key}``; filled by a text-only pass). ValueError
    for a bad dtype or ``top_layers``, no posts, or texts that do not give ``features.text_mask``."""
    torch_dtype = checked_dtype(dtype)
    if len(texts) != len(features):
        raise ValueError(f"{len(texts)} texts but {len(features)} feature rows")
    if len(features) == 0:
        raise ValueError("no posts to encode")
    if isinstance(top_layers, bool) or not isinstance(top_layers, int) or top_layers < 1:
        # the upper bound is checked by encode_text_below: no file exists beyond it
        raise ValueError(f"top_layers must be a positive integer, got {top_layers!r}")
    key = feature_cache_key(backbone, features.guids, texts, None, dtype, states="text below the top layers",
                            top_layers=int(top_layers))
    path = cache_path(cache_dir, f"{backbone.name}-below{top_layers}", key)

    def build() -> None:  # a text-only pass on the CPU, batches of similar length, cut positions zeros
        start_time = time.perf_counter()
        batch = backbone.tokenize(list(texts))
        ids, mask = batch["input_ids"], batch["attention_mask"]
        _check_mask(mask, features)
        n, length = mask.shape
        # the length of each row up to its last real token (right padding; robust to any padding side)
        lengths = (mask.bool() * torch.arange(1, length + 1)).amax(dim=1).clamp(min=1)
        states = torch.zeros((n, length, backbone.text_dim), dtype=torch_dtype)
        for rows in progress_bar(length_sorted_batches(lengths, batch_size, window=n), show=progress,
                                 desc=f"text below top {top_layers} ({backbone.name})", unit="batch"):
            width = int(lengths[rows].max())
            below = encode_text_below(backbone, ids[rows, :width], mask[rows, :width], top_layers)
            states[rows, :width] = below.to("cpu", torch_dtype)
        seconds = time.perf_counter() - start_time
        logger.info("text-only pass below the top %d layers: %d texts in %.2f s (%.1f ms per text, batch %d)",
                    top_layers, n, seconds, 1000 * seconds / max(n, 1), batch_size)
        placeholder = torch.empty((n, 0, 0), dtype=torch_dtype)
        save_features(FeatureSet(features.guids, states, mask, placeholder), path, key)

    cached = load_or_build(path, key, build, f"text-below (top {top_layers})")
    _check_mask(cached.text_mask, features)
    return dataclasses.replace(features, text_states=cached.text_states)


def _check_mask(mask: torch.Tensor, features: FeatureSet) -> None:
    given = features.text_mask
    if tuple(mask.shape) != tuple(given.shape):
        raise ValueError(f"the tokenizer gives masks of shape {tuple(mask.shape)} but features.text_mask is "
                         f"{tuple(given.shape)}: were the features made with another max_text_tokens?")
    differs = (mask.long() != given.long()).any(dim=1)
    if bool(differs.any()):
        row = int(torch.nonzero(differs)[0])
        raise ValueError(f"the tokenizer's mask differs from features.text_mask on {int(differs.sum())} rows, e.g. "
                         f"guid {int(features.guids[row])}: were the features made from other texts or another "
                         "backbone?")
