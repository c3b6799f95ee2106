"""Fine-tune the top ``n`` layers of the frozen text encoder, cheaply.

The paper ("Multimodal Sentiment Analysis Using the FLAVA Model") freezes FLAVA's text and image
encoders and claims this speeds convergence without loss of accuracy. To test the claim, the
study compares the frozen text encoder with one whose top ``n`` layers are fine-tuned together
with the fusion model (profile field ``text_top_layers``).

The trick that keeps this cheap: **cache the states below the top n layers once; train a copy of
the top n layers with the fusion model; the lower layers stay frozen.**

1. :func:`text_below_features` runs the frozen text encoder ONCE per dataset, text only, and keeps
   the hidden states that ENTER its top ``n`` layers
   (:meth:`msa_utils.features.encoders.FrozenBackbone.encode_text_below`); they are cached in one
   safetensors file, like the frozen features of :mod:`msa_utils.features.sets`. The image states are
   not recomputed: they are taken from the existing :class:`~msa_utils.features.sets.FeatureSet`.
2. :meth:`msa_utils.features.encoders.FrozenBackbone.text_top` deep-copies those top ``n`` layers into a
   trainable :class:`TextTopLayers` (the backbone's own encoder stays frozen and unchanged).
3. :class:`TextTopClassifier` = :class:`TextTopLayers` followed by the usual
   :class:`msa_utils.model.classifier.MultimodalClassifier`. Its ``forward(text_states_below, text_mask,
   image_states)`` has the classifier's signature, so :func:`msa_utils.train.loop.fit` trains it on the
   below-states exactly as it trains the plain classifier on the final states.

Before any training step, ``TextTopLayers`` maps the below-states to exactly the states
:meth:`~msa_utils.features.encoders.FrozenBackbone.encode_text` returns (on real, non-padding positions),
so a :class:`TextTopClassifier` starts from the same function as the frozen-encoder classifier.

Per training step the cost added to the plain classifier is ``n`` text-encoder layers on the batch
(forward and backward); the ``L - n`` lower layers never run during training.

Where the layers come from (transformers 5.24): ``BertModel`` (the compact backbone's MiniLM) and
``FlavaTextModel`` both keep their layers in ``.encoder.layer`` and build the attention mask with
``transformers.masking_utils.create_bidirectional_mask`` before the first layer;
:class:`TextTopLayers` does the same. What each backbone's ``encode_text`` returns is the output of
its last layer (BERT is post-layernorm; FLAVA's states are taken before ``FlavaTextModel``'s final
layernorm, as ``FlavaModel.forward`` feeds them to the multimodal encoder), so nothing follows the
copied layers.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
import sys
import time
from pathlib import Path
from typing import Sequence

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm import tqdm

from msa_utils.features.feature_cache import FORMAT_VERSION, cache_path, load_features, save_features
from msa_utils.features.sets import _DTYPES, FeatureSet
from msa_utils.io.hashing import Digest
from msa_utils.io import atomic_path, read_json, write_json
from msa_utils.model.classifier import ClassifierOutput, MultimodalClassifier

logger = logging.getLogger(__name__)

__all__ = ["TEXT_TOP_CONFIG_NAME", "TEXT_TOP_WEIGHTS_NAME", "TextTopClassifier", "TextTopLayers",
           "checked_top_layers", "encode_below", "text_below_cache_key", "text_below_features"]

TEXT_TOP_CONFIG_NAME = "text_top.json"
"""File of :meth:`TextTopClassifier.save_pretrained` naming ``top_layers`` and the backbone."""
TEXT_TOP_WEIGHTS_NAME = "text_top.safetensors"
"""File of :meth:`TextTopClassifier.save_pretrained` holding the fine-tuned text layers."""
CLASSIFIER_FOLDER = "classifier"
"""Sub-folder of a :class:`TextTopClassifier` checkpoint holding its :class:`MultimodalClassifier`
(``config.json`` + ``model.safetensors``). A sub-folder, so that
``MultimodalClassifier.from_pretrained`` on the checkpoint itself fails (FileNotFoundError)
instead of silently loading a classifier without its fine-tuned text layers."""


def checked_top_layers(top_layers: int, num_layers: int) -> int:
    """``top_layers`` as an ``int`` if it is an integer in ``1..num_layers``.

    Args:
        top_layers: how many top layers of the text encoder to fine-tune.
        num_layers: how many layers the text encoder has (MiniLM-L6: 6; FLAVA: 12).

    Raises:
        ValueError: if ``top_layers`` is not an integer (``bool`` included) in ``1..num_layers``.
    """
    if isinstance(top_layers, bool) or not isinstance(top_layers, int) or not 1 <= top_layers <= num_layers:
        raise ValueError(f"top_layers must be an integer in 1..{num_layers} (the text encoder's layers), "
                         f"got {top_layers!r}")
    return int(top_layers)


@torch.no_grad()
def encode_below(text_encoder: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                 top_layers: int, device: torch.device) -> torch.Tensor:
    """The hidden states entering the top ``top_layers`` layers of a ``transformers`` text encoder
    (no gradients): ``text_encoder(..., output_hidden_states=True).hidden_states[-1 - top_layers]``.

    ``hidden_states`` holds the embedding output and then every layer's output
    (``num_layers + 1`` tensors), so ``hidden_states[-1 - n]`` is the input of layer
    ``num_layers - n`` (0-based). Used by the backbones'
    :meth:`~msa_utils.features.encoders.FrozenBackbone.encode_text_below`.

    Args:
        text_encoder: a ``BertModel`` or ``FlavaTextModel`` (layers in ``.encoder.layer``).
        input_ids, attention_mask: ``(B, L)`` as from ``backbone.tokenize``.
        top_layers: ``1..num_layers``.
        device: where the encoder is.

    Returns:
        ``(B, L, hidden_size)`` on ``device``.

    Raises:
        ValueError: if ``top_layers`` is out of range (:func:`checked_top_layers`).
    """
    n = checked_top_layers(top_layers, len(text_encoder.encoder.layer))
    out = text_encoder(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device),
                       output_hidden_states=True, return_dict=True)
    return out.hidden_states[-1 - n]


class TextTopLayers(nn.Module):
    """A trainable copy of the top layers of a ``transformers`` text encoder.

    ``forward(states (B, L, D), attention_mask (B, L)) -> (B, L, D)`` runs the copied layers in
    order after building the attention mask as ``BertModel.forward`` / ``FlavaTextModel.forward``
    do (transformers 5.24: ``create_bidirectional_mask(config, inputs_embeds, attention_mask)``,
    a 4-D mask for the configured attention implementation; padding keys are masked, so padding
    positions never change real positions).

    Attributes:
        layers: the copied layers (``nn.ModuleList``), parameters with ``requires_grad=True``.
        config: a copy of the encoder's ``transformers`` config (for the mask).
        backbone_name: name of the backbone the layers were copied from (checked on loading).
        num_layers: how many layers the whole encoder has.
    """

    def __init__(self, layers: Sequence[nn.Module], config, *, backbone_name: str, num_layers: int) -> None:
        """Wrap already copied ``layers`` (not copied again) and the encoder's ``config``.

        Raises:
            ValueError: if ``layers`` is empty or longer than ``num_layers``.
        """
        super().__init__()
        checked_top_layers(len(layers), num_layers)
        self.layers = nn.ModuleList(layers)
        self.config = config
        self.backbone_name = str(backbone_name)
        self.num_layers = int(num_layers)

    @classmethod
    def from_encoder(cls, text_encoder: nn.Module, top_layers: int, *, backbone_name: str) -> "TextTopLayers":
        """DEEP COPIES of the top ``top_layers`` layers of ``text_encoder.encoder.layer`` (and of its
        config), with ``requires_grad=True``, on the encoder's device, in the encoder's train/eval
        mode (a frozen encoder is in eval mode, so the copy maps below-states to exactly
        ``encode_text``'s states; :func:`msa_utils.train.loop.fit` switches dropout on with
        ``model.train()``).

        Raises:
            ValueError: if ``top_layers`` is out of range (:func:`checked_top_layers`).
        """
        all_layers = text_encoder.encoder.layer
        n = checked_top_layers(top_layers, len(all_layers))
        layers = [copy.deepcopy(layer) for layer in all_layers[len(all_layers) - n:]]
        top = cls(layers, copy.deepcopy(text_encoder.config), backbone_name=backbone_name,
                  num_layers=len(all_layers))
        for parameter in top.parameters():
            parameter.requires_grad_(True)
        return top.train(text_encoder.training)

    @property
    def top_layers(self) -> int:
        """How many layers this module holds."""
        return len(self.layers)

    @property
    def hidden_size(self) -> int:
        """Width ``D`` of the states in and out."""
        return int(self.config.hidden_size)

    def forward(self, states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Run the copied layers.

        Args:
            states: ``(B, L, D)`` the states entering these layers
                (:meth:`~msa_utils.features.encoders.FrozenBackbone.encode_text_below`).
            attention_mask: ``(B, L)``, 1 for real tokens, 0 for padding.

        Returns:
            ``(B, L, D)``: on real positions, what the encoder's top layers would give (equal to
            :meth:`~msa_utils.features.encoders.FrozenBackbone.encode_text` before any training).
        """
        from transformers.masking_utils import create_bidirectional_mask

        mask = create_bidirectional_mask(config=self.config, inputs_embeds=states,
                                         attention_mask=attention_mask.to(states.device))
        hidden = states
        for layer in self.layers:
            out = layer(hidden, mask)  # BertLayer returns a tensor, FlavaLayer a tuple
            hidden = out[0] if isinstance(out, tuple) else out
        return hidden


class TextTopClassifier(nn.Module):
    """Trainable top text layers + :class:`~msa_utils.model.classifier.MultimodalClassifier`, on the cached
    states below those layers.

    ``forward(text_states_below, text_mask, image_states)`` =
    ``classifier(text_top(text_states_below, text_mask), text_mask, image_states)``: the signature
    of :meth:`MultimodalClassifier.forward`, so :func:`msa_utils.train.loop.fit` and
    :func:`msa_utils.train.loop.predict_logits` take it on the features of
    :func:`text_below_features` (prepared by the backbone, as usual). See the module docstring.

    With ``drop="text"`` (the no-text ablation) the null text states and the all-zero mask pass
    through the text layers; the classifier masks every text token, so they do not matter.

    Attributes:
        text_top: :class:`TextTopLayers` (trainable).
        classifier: the :class:`MultimodalClassifier` (trained as before).
    """

    def __init__(self, text_top: TextTopLayers, classifier: MultimodalClassifier) -> None:
        """Pair the layers with a classifier (neither is copied).

        Raises:
            ValueError: if the layers' width differs from the classifier's ``text_dim``.
        """
        super().__init__()
        if text_top.hidden_size != classifier.config.text_dim:
            raise ValueError(f"text layers of width {text_top.hidden_size} do not match the classifier's "
                             f"text_dim {classifier.config.text_dim}")
        self.text_top = text_top
        self.classifier = classifier

    @classmethod
    def from_backbone(cls, backbone, classifier: MultimodalClassifier, top_layers: int) -> "TextTopClassifier":
        """``cls(backbone.text_top(top_layers), classifier)``, the layers moved to the classifier's
        device.

        Raises:
            ValueError: if ``top_layers`` is out of range or the widths differ.
            NotImplementedError: if the backbone cannot fine-tune its text layers.
        """
        text_top = backbone.text_top(top_layers).to(next(classifier.parameters()).device)
        return cls(text_top, classifier)

    @property
    def top_layers(self) -> int:
        """How many text layers are fine-tuned."""
        return self.text_top.top_layers

    def forward(self, text_states_below: torch.Tensor, text_mask: torch.Tensor,
                image_states: torch.Tensor) -> ClassifierOutput:
        """Classify a batch from the states below the top text layers.

        Args:
            text_states_below: ``(B, Lt, Dt)`` from :func:`text_below_features` (any float dtype;
                cast to the layers' dtype and device).
            text_mask: ``(B, Lt)``, 1 for real tokens, 0 for padding.
            image_states: ``(B, Li', Di)`` prepared by the backbone.

        Returns:
            :class:`~msa_utils.model.classifier.ClassifierOutput`: ``logits (B, 3)``, ``cls_embedding (B, H)``.

        Raises:
            ValueError: see :meth:`MultimodalClassifier.forward`.
        """
        weight = next(self.text_top.parameters())
        below = text_states_below.to(weight.device, weight.dtype)
        text_mask = text_mask.to(weight.device)
        return self.classifier(self.text_top(below, text_mask), text_mask, image_states)

    def save_pretrained(self, save_directory: str | os.PathLike) -> Path:
        """Write ``text_top.json`` (``top_layers``, ``num_layers``, ``backbone``, ``text_dim``),
        ``text_top.safetensors`` (the layers' weights) and ``classifier/`` (the classifier's
        ``config.json`` + ``model.safetensors``), every file atomically; safetensors, no pickle.

        Returns:
            The folder.
        """
        folder = Path(save_directory)
        folder.mkdir(parents=True, exist_ok=True)
        self.classifier.save_pretrained(folder / CLASSIFIER_FOLDER)
        state = {name: t.detach().cpu().contiguous() for name, t in self.text_top.state_dict().items()}
        with atomic_path(folder / TEXT_TOP_WEIGHTS_NAME) as tmp:
            save_file(state, str(tmp), metadata={"format": "pt"})
        write_json(folder / TEXT_TOP_CONFIG_NAME, {
            "top_layers": self.top_layers, "num_layers": self.text_top.num_layers,
            "backbone": self.text_top.backbone_name, "text_dim": self.text_top.hidden_size,
        })
        return folder

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, backbone,
                        device: str | torch.device = "cpu") -> "TextTopClassifier":
        """Rebuild a model written by :meth:`save_pretrained`: the layers' structure from
        ``backbone.text_top(top_layers)``, then the saved weights (safetensors only, no pickle).

        Args:
            directory: the folder written by :meth:`save_pretrained`.
            backbone: the :class:`~msa_utils.features.encoders.FrozenBackbone` the model was trained on.
            device: where to put the model.

        Raises:
            FileNotFoundError: if a file is missing.
            ValueError: if the checkpoint was made on another backbone (name, width or number of
                layers).
            RuntimeError: if the weights do not match (missing/unexpected keys).
        """
        folder = Path(directory)
        config = read_json(folder / TEXT_TOP_CONFIG_NAME)
        text_top = backbone.text_top(config["top_layers"])
        found = {"backbone": text_top.backbone_name, "num_layers": text_top.num_layers,
                 "text_dim": text_top.hidden_size}
        expected = {key: config[key] for key in found}
        if found != expected:
            raise ValueError(f"checkpoint {folder} was made on a backbone with {expected}, "
                             f"this backbone has {found}")
        text_top.load_state_dict(load_file(str(folder / TEXT_TOP_WEIGHTS_NAME)), strict=True)
        classifier = MultimodalClassifier.from_pretrained(folder / CLASSIFIER_FOLDER, device=device)
        return cls(text_top.to(device), classifier)


def text_below_cache_key(backbone, guids: Sequence[int] | torch.Tensor, texts: Sequence[str], top_layers: int,
                         dtype: str) -> str:
    """Cache key (hex SHA-256, :class:`msa_utils.io.hashing.Digest`) of :func:`text_below_features`:
    :data:`msa_utils.features.feature_cache.FORMAT_VERSION`, the backbone's
    :meth:`~msa_utils.features.encoders.FrozenBackbone.fingerprint` (weights, tokenisation, the source of
    :mod:`msa_utils.features.encoders`), ``top_layers``, ``dtype``, the source of this module, and every
    guid and text in order.

    Raises:
        ValueError: if ``guids`` and ``texts`` differ in length.
    """
    guid_list = guids.tolist() if isinstance(guids, torch.Tensor) else [int(g) for g in guids]
    if len(guid_list) != len(texts):
        raise ValueError(f"{len(guid_list)} guids but {len(texts)} texts")
    digest = (Digest().add("format", FORMAT_VERSION).add("states", "text below the top layers")
              .add("backbone", backbone.fingerprint()).add("top_layers", int(top_layers)).add("dtype", str(dtype))
              .add("code", sys.modules[__name__]))
    for guid, text in zip(guid_list, texts):
        digest.add("guid", str(int(guid))).add("text", text)
    return digest.hexdigest()


def text_below_features(backbone, features: FeatureSet, texts: Sequence[str], top_layers: int,
                        cache_dir: str | os.PathLike, dtype: str = "float32", batch_size: int = 32,
                        progress: bool = True) -> FeatureSet:
    """``features`` with ``text_states`` replaced by the states below the top ``top_layers`` text
    layers, computed once by a text-only pass and cached.

    The pass tokenises ``texts`` with ``backbone.tokenize`` (the attention mask must equal
    ``features.text_mask``) and runs :meth:`~msa_utils.features.encoders.FrozenBackbone.encode_text_below`
    ``batch_size`` texts at a time, the texts sorted by length and each batch cut to its longest
    text (padding is masked, so real positions do not change; the cut positions are zeros). Images
    are never re-encoded. How long the pass took is logged at INFO.

    The result is cached in ONE cache folder of safetensors shards
    ``{cache_dir}/features-{backbone.name}-below{top_layers}-{key}/``
    (:func:`msa_utils.features.feature_cache.cache_path`, key :func:`text_below_cache_key`), written and read
    with :func:`msa_utils.features.feature_cache.save_features` / :func:`~msa_utils.features.feature_cache.load_features`
    (atomic writes, manifest last; key, format and each shard's SHA-256 checked; read
    memory-mapped). It holds guids, the below-states and the mask; its ``image_states`` is an
    empty ``(N, 0, 0)`` placeholder (the image states are taken from ``features``, not stored
    twice). A folder that is incomplete, unreadable, corrupted or has another key is logged with
    ``logging.warning`` and rebuilt.

    Args:
        backbone: a :class:`~msa_utils.features.encoders.FrozenBackbone` supporting ``encode_text_below``.
        features: the frozen features of the same posts (e.g. from
            :func:`msa_utils.features.feature_cache.load_or_extract_features`), prepared or not:
            ``guids (N,)``, ``text_mask (N, L)``, ``image_states`` are kept as they are.
        texts: the ``N`` texts the features were made from, in the same order.
        top_layers: ``1..num_layers`` of the text encoder (profile field ``text_top_layers``).
        cache_dir: folder of the cache file (created if missing).
        dtype: ``"float32"``, ``"float16"`` or ``"bfloat16"``, dtype of the stored states.
        batch_size: texts per forward pass.
        progress: show a tqdm bar during the pass.

    Returns:
        A :class:`~msa_utils.features.sets.FeatureSet` with ``text_states (N, L, Dt)`` in ``dtype``, read
        from the cache (:class:`~msa_utils.features.sets.LazyRows`, also right after computing them),
        and the other columns of ``features`` (the same objects).

    Raises:
        ValueError: for an unknown dtype, no posts, ``texts`` of another length than ``features``, a
            tokenizer mask that differs from ``features.text_mask`` (features made from other texts
            or another tokenisation), or ``top_layers`` out of range.
        NotImplementedError: if the backbone cannot compute states below its top layers.
    """
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
    if len(texts) != len(features):
        raise ValueError(f"{len(texts)} texts but {len(features)} feature rows")
    if len(features) == 0:
        raise ValueError("no posts to encode")
    if isinstance(top_layers, bool) or not isinstance(top_layers, int) or top_layers < 1:
        # the upper bound is the backbone's to check (encode_text_below): no file exists beyond it
        raise ValueError(f"top_layers must be a positive integer, got {top_layers!r}")
    key = text_below_cache_key(backbone, features.guids, texts, top_layers, dtype)
    path = cache_path(cache_dir, f"{backbone.name}-below{top_layers}", key)
    cached = None
    if path.exists():
        try:
            cached = load_features(path, key)
        except Exception as error:  # any unreadable file is rebuilt, never used
            logger.warning("text-below cache %s is unusable (%s: %s); rebuilding it", path, type(error).__name__,
                           error)
    if cached is not None:
        _check_mask(cached.text_mask, features)
        logger.info("loaded %d cached text-below rows (top %d layers) from %s", len(cached), top_layers, path)
        return dataclasses.replace(features, text_states=cached.text_states)
    states, mask = _encode_below_all(backbone, texts, features, top_layers, _DTYPES[dtype], batch_size, progress)
    placeholder = torch.empty((len(features), 0, 0), dtype=states.dtype)
    save_features(FeatureSet(features.guids, states, mask, placeholder), path, key)
    logger.info("cached %d text-below rows in %s", len(features), path)
    del states  # the cache's memory-mapped rows replace the computed copy
    return dataclasses.replace(features, text_states=load_features(path, key, verify=False).text_states)


def _check_mask(mask: torch.Tensor, features: FeatureSet) -> None:
    """Raise ValueError (naming the first differing guid) if ``mask`` differs from ``features.text_mask``."""
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


def _encode_below_all(backbone, texts: Sequence[str], features: FeatureSet, top_layers: int, dtype: torch.dtype,
                      batch_size: int, progress: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The text-only pass of :func:`text_below_features`: ``(states (N, L, Dt), mask (N, L))`` on the CPU."""
    start_time = time.perf_counter()
    batch = backbone.tokenize(list(texts))
    ids, mask = batch["input_ids"], batch["attention_mask"]
    _check_mask(mask, features)
    n, length = mask.shape
    # the length of each row up to its last real token (right padding; robust to any padding side)
    lengths = (mask.bool() * torch.arange(1, length + 1)).amax(dim=1).clamp(min=1)
    order = torch.argsort(lengths, stable=True)
    states = None
    starts = range(0, n, batch_size)
    for start in tqdm(starts, desc=f"text below top {top_layers} ({backbone.name})", disable=not progress,
                      unit="batch"):
        rows = order[start:start + batch_size]
        width = int(lengths[rows].max())
        below = backbone.encode_text_below(ids[rows, :width], mask[rows, :width], top_layers)
        if states is None:
            states = torch.zeros((n, length, below.shape[-1]), dtype=dtype)
        states[rows, :width] = below.to("cpu", dtype)
    seconds = time.perf_counter() - start_time
    logger.info("text-only pass below the top %d layers: %d texts in %.2f s (%.1f ms per text, batch %d)",
                top_layers, n, seconds, 1000 * seconds / max(n, 1), batch_size)
    return states, mask
