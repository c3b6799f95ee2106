"""The trained part of the model: projections + multimodal encoder + a classifier head.

Follows the paper ("Multimodal Sentiment Analysis Using the FLAVA Model"): FLAVA's text and image
encoders are frozen; its multimodal encoder is trained; a 3-layer MLP with dropout 0.3 on the
multimodal CLS token gives 3 logits (positive 0, negative 1, neutral 2; :data:`msa_utils.LABELS`).

The forward pass reproduces the multimodal half of ``transformers.FlavaModel.forward``
(transformers 5.24, ``modeling_flava.py``)::

    image_proj = image_projection(image_states)          # (B, Li, H)  = image_to_mm_projection
    text_proj  = text_projection(text_states)            # (B, Lt, H)  = text_to_mm_projection
    x    = cat([image_proj, text_proj], dim=1)           # image tokens first, then text
    mask = cat([ones(B, Li + 1), text_mask], dim=1)      # +1: the CLS token the encoder prepends
    h    = FlavaMultimodalModel(x, attention_mask=mask).last_hidden_state   # (B, T, H), T = 1 + Li + Lt
    logits = head(summarise(h, mask, text_proj, text_mask, image_proj))      # (B, 3)

The head (``ClassifierConfig.head``, one of :data:`msa_utils.config.profiles.HEADS`) is the paper's
choice or one of the alternatives its section on the classifier head reports as 7-8 points worse
(the paper gives no formulas; these are our readings of its one-line descriptions).
:meth:`MultimodalClassifier.summarise` computes the head's input, ``self.head`` maps it to logits;
head-specific scoring / query parameters live in ``self.pool`` (``None`` for the CLS-token heads):

``mlp``              the paper's: 3-layer MLP (:func:`build_head`) on the CLS token ``h[:, 0]`` (B, H).
``linear``           Dropout + Linear(H, 3) on the CLS token.
``token_attention``  (a) ``w = softmax(Linear(H, 1)(h))`` over the non-padding tokens (CLS, image
                     tokens, real text tokens), ``sum_t w_t h_t`` (B, H) -> the 3-layer MLP.
``modality_sum``     (b) softmax-weighted sums of ``text_proj`` (padding masked; zeros for a post
                     without any real text token) and of ``image_proj``, each with its own
                     Linear(H, 1) score, concatenated with the CLS token: ``[h[:, 0], text, image]``
                     (B, 3H) -> the 3-layer MLP (input width 3H).
``attention``        (c) multi-head attention in place of the MLP: one learned query attends over
                     ``h`` (``torch.nn.MultiheadAttention``, ``num_heads`` heads, padding masked),
                     Dropout, LayerNorm -> Linear(H, 3).

Every head is invariant to text padding: padded positions get exactly zero weight.

One code path serves both backbones: :meth:`MultimodalClassifier.from_flava` copies FLAVA's
pretrained projections and multimodal encoder (768 wide, 6 layers, 12 heads);
:meth:`MultimodalClassifier.compact` builds the same modules from scratch at a small width.
Which one a backbone uses is the backbone's choice
(:meth:`msa_utils.features.encoders.FrozenBackbone.build_classifier`), which also freezes the fusion part
(:meth:`MultimodalClassifier.freeze_fusion`) when the profile says ``train_fusion=False``.

The classifier reads PREPARED token states (:meth:`msa_utils.features.encoders.FrozenBackbone.prepare`:
e.g. the compact backbone's image tokens already pooled); it never pools itself.
:class:`EndToEndModel` runs the same preparation after the encoders, so the cached-feature path
and the end-to-end path agree by construction.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import FlavaMultimodalConfig, FlavaMultimodalModel
from transformers.utils import ModelOutput

from msa_utils.features.sets import NullInputs
from msa_utils.io import atomic_path, write_json
# profiles imports encoders, which imports this module only inside functions: no import cycle.
from msa_utils.config.profiles import HEADS

CONFIG_NAME = "config.json"
MULTIMODAL_EXTRA_FIELDS = ("hidden_act", "hidden_dropout_prob", "attention_probs_dropout_prob",
                           "initializer_range", "layer_norm_eps", "qkv_bias")
"""``FlavaMultimodalConfig`` fields that :meth:`MultimodalClassifier.from_flava` carries over."""
WEIGHTS_NAME = "model.safetensors"
FUSION_MODULES = ("text_projection", "image_projection", "multimodal")
"""The submodules of :class:`MultimodalClassifier` below the head, frozen by
:meth:`MultimodalClassifier.freeze_fusion`; every other parameter belongs to the head."""


@dataclass
class ClassifierConfig:
    """Everything needed to rebuild a :class:`MultimodalClassifier`.

    Attributes:
        text_dim: width ``Dt`` of the frozen text states (FLAVA 768, MiniLM 384).
        image_dim: width ``Di`` of the frozen image states (FLAVA 768, EfficientNet-Lite0 1280).
        hidden_size: width ``H`` of the multimodal encoder.
        num_layers: transformer layers of the multimodal encoder.
        num_heads: attention heads of the multimodal encoder (and of the ``attention`` head).
        intermediate_size: feed-forward width of the multimodal encoder (usually ``4 * H``).
        head_hidden: widths of the two hidden layers of the 3-layer MLP (heads ``mlp``,
            ``token_attention``, ``modality_sum``).
        dropout: dropout of the head (after each hidden layer of the MLP; before the linear
            layer of ``linear``; after the attention of ``attention``) (paper: 0.3).
        num_labels: number of classes (3).
        head: the classifier head, one of :data:`msa_utils.config.profiles.HEADS` (see the module
            docstring); a config saved before this field existed loads as ``"mlp"``.
        multimodal_config: extra ``FlavaMultimodalConfig`` fields (activation, layer-norm eps,
            encoder dropouts, ``qkv_bias`` ...); the fields above take precedence.

    How many image tokens the classifier reads is not part of its config: the multimodal encoder
    accepts any number, and the backbone prepares (pools) them
    (:meth:`msa_utils.features.encoders.FrozenBackbone.prepare`).

    Raises (on construction):
        ValueError: if ``head_hidden`` has not 2 widths, ``hidden_size`` is not a multiple of
            ``num_heads``, or ``head`` is not in :data:`~msa_utils.config.profiles.HEADS`.
    """

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
            raise ValueError(f"head must be one of {HEADS}, got {self.head!r}")

    def flava_multimodal_config(self) -> FlavaMultimodalConfig:
        """The ``FlavaMultimodalConfig`` of the multimodal encoder (``use_cls_token=True``)."""
        kwargs = dict(self.multimodal_config)
        kwargs.update(
            hidden_size=self.hidden_size,
            num_hidden_layers=self.num_layers,
            num_attention_heads=self.num_heads,
            intermediate_size=self.intermediate_size,
            use_cls_token=True,
        )
        return FlavaMultimodalConfig(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (tuples become lists)."""
        out = dataclasses.asdict(self)
        out["head_hidden"] = list(self.head_hidden)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ClassifierConfig":
        """Inverse of :meth:`to_dict`; missing keys take their defaults (a config written before
        ``head`` existed gives ``head="mlp"``, the only head there was).

        Raises:
            TypeError: on unknown keys (e.g. a checkpoint of another version of this class).
            ValueError: on invalid values (see the class docstring).
        """
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise TypeError(f"unknown ClassifierConfig fields {unknown}")
        return cls(**data)


@dataclass
class ClassifierOutput(ModelOutput):
    """Output of :class:`MultimodalClassifier`.

    Attributes:
        logits: ``(batch, num_labels)`` unnormalised class scores.
        cls_embedding: ``(batch, hidden_size)`` the multimodal CLS token (``last_hidden_state[:, 0]``),
            whatever the head.
    """

    logits: torch.Tensor | None = None
    cls_embedding: torch.Tensor | None = None


def build_head(hidden_size: int, head_hidden: Sequence[int], dropout: float, num_labels: int = 3) -> nn.Sequential:
    """The paper's 3-layer MLP: Linear-ReLU-Dropout-Linear-ReLU-Dropout-Linear.

    Maps ``(batch, hidden_size)`` to ``(batch, num_labels)`` (``hidden_size`` is the input width:
    ``3 H`` for the ``modality_sum`` head).

    Raises:
        ValueError: if ``head_hidden`` does not hold exactly two widths.
    """
    h1, h2 = head_hidden
    return nn.Sequential(
        nn.Linear(hidden_size, h1), nn.ReLU(), nn.Dropout(dropout),
        nn.Linear(h1, h2), nn.ReLU(), nn.Dropout(dropout),
        nn.Linear(h2, num_labels),
    )


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax of ``scores`` over the last dimension, restricted to the positions where ``mask``
    is nonzero.

    Args:
        scores: ``(batch, L)`` float scores.
        mask: ``(batch, L)``, nonzero (1 / True) for real positions, 0 for padding.

    Returns:
        ``(batch, L)`` weights: exactly 0 at masked positions and summing to 1 over the real ones;
        a row WITHOUT any real position gets all-zero weights (no NaN, zero gradient), so a
        weighted sum over it is the zero vector.
    """
    keep = mask != 0
    scores = scores.masked_fill(~keep, torch.finfo(scores.dtype).min)
    return torch.softmax(scores, dim=-1) * keep.to(scores.dtype)


def weighted_sum(weights: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """``sum_t weights[:, t] * tokens[:, t]``: ``(batch, L)`` and ``(batch, L, H)`` to ``(batch, H)``."""
    return torch.bmm(weights.unsqueeze(1), tokens).squeeze(1)


class TokenAttentionPool(nn.Module):
    """Head ``token_attention`` (the paper's alternative (a)): a softmax-weighted sum over all
    non-padding output tokens of the multimodal encoder, with one learned score per token,
    ``Linear(H, 1)``. The weighted sum (B, H) then goes through the 3-layer MLP."""

    def __init__(self, hidden_size: int) -> None:
        """``hidden_size``: the width ``H`` of the tokens."""
        super().__init__()
        self.score = nn.Linear(hidden_size, 1)

    def forward(self, states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """``states (B, T, H)``, ``attention_mask (B, T)`` (0 for padding) -> ``(B, H)``."""
        return weighted_sum(masked_softmax(self.score(states).squeeze(-1), attention_mask), states)


class ModalitySumPool(nn.Module):
    """Head ``modality_sum`` (the paper's alternative (b)): softmax-weighted sums of the projected
    text tokens and of the projected image tokens (the multimodal encoder's inputs), each with its
    own learned score ``Linear(H, 1)``, concatenated with the multimodal CLS token.

    Text padding is masked; a post with no real text token (e.g. the "without text" ablation)
    gets a zero text sum. The result (B, 3H) then goes through the 3-layer MLP of input width 3H.
    """

    def __init__(self, hidden_size: int) -> None:
        """``hidden_size``: the width ``H`` of the projections and of the CLS token."""
        super().__init__()
        self.text_score = nn.Linear(hidden_size, 1)
        self.image_score = nn.Linear(hidden_size, 1)

    def forward(self, cls_embedding: torch.Tensor, text_proj: torch.Tensor, text_mask: torch.Tensor,
                image_proj: torch.Tensor) -> torch.Tensor:
        """``cls_embedding (B, H)``, ``text_proj (B, Lt, H)``, ``text_mask (B, Lt)``,
        ``image_proj (B, Li, H)`` -> ``[cls_embedding, text sum, image sum]`` ``(B, 3H)``."""
        text = weighted_sum(masked_softmax(self.text_score(text_proj).squeeze(-1), text_mask), text_proj)
        image = weighted_sum(torch.softmax(self.image_score(image_proj).squeeze(-1), dim=-1), image_proj)
        return torch.cat([cls_embedding, text, image], dim=-1)


class AttentionPool(nn.Module):
    """Head ``attention`` (the paper's alternative (c), multi-head attention in place of the MLP):
    one learned query ``(1, 1, H)`` attends over the multimodal encoder's output tokens with
    ``torch.nn.MultiheadAttention`` (``batch_first``, padding excluded by ``key_padding_mask``),
    then Dropout and LayerNorm; a ``Linear(H, num_labels)`` (the classifier's ``head``) follows.
    """

    def __init__(self, hidden_size: int, num_heads: int, dropout: float) -> None:
        """``hidden_size`` ``H``, ``num_heads`` (must divide ``H``), ``dropout`` after the attention.

        Raises:
            AssertionError: from ``torch.nn.MultiheadAttention`` if ``num_heads`` does not divide ``H``.
        """
        super().__init__()
        self.query = nn.Parameter(torch.empty(1, 1, hidden_size))
        nn.init.normal_(self.query, std=0.02)
        self.attention = nn.MultiheadAttention(hidden_size, num_heads, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(hidden_size)

    def forward(self, states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """``states (B, T, H)``, ``attention_mask (B, T)`` (0 for padding; at least one real token
        per row, e.g. the CLS token) -> ``(B, H)``."""
        query = self.query.expand(states.shape[0], -1, -1).to(states.dtype)
        attended, _ = self.attention(query, states, states, key_padding_mask=attention_mask == 0, need_weights=False)
        return self.norm(self.dropout(attended.squeeze(1)))


def build_classifier_head(config: ClassifierConfig) -> tuple[nn.Module | None, nn.Module]:
    """``(pool, head)`` of ``config.head`` (see the module docstring): ``pool`` computes the head's
    input from the encoder's tokens (``None`` for the CLS-token heads ``mlp`` and ``linear``),
    ``head`` maps it, ``(batch, input width)``, to ``(batch, num_labels)`` logits.

    The ``mlp`` head is exactly :func:`build_head` (state-dict keys ``head.0.weight`` ...).

    Raises:
        ValueError: for a head not in :data:`~msa_utils.config.profiles.HEADS`.
    """
    hidden, labels = config.hidden_size, config.num_labels
    if config.head == "mlp":
        return None, build_head(hidden, config.head_hidden, config.dropout, labels)
    if config.head == "linear":
        return None, nn.Sequential(nn.Dropout(config.dropout), nn.Linear(hidden, labels))
    if config.head == "token_attention":
        return TokenAttentionPool(hidden), build_head(hidden, config.head_hidden, config.dropout, labels)
    if config.head == "modality_sum":
        return ModalitySumPool(hidden), build_head(3 * hidden, config.head_hidden, config.dropout, labels)
    if config.head == "attention":
        return AttentionPool(hidden, config.num_heads, config.dropout), nn.Linear(hidden, labels)
    raise ValueError(f"head must be one of {HEADS}, got {config.head!r}")


class MultimodalClassifier(nn.Module):
    """Projections + FLAVA multimodal encoder + a classifier head, on frozen token states.

    Modules: ``text_projection`` (Dt -> H), ``image_projection`` (Di -> H), ``multimodal``
    (``FlavaMultimodalModel`` with a CLS token and no pooler) -- together :data:`FUSION_MODULES` --
    then ``pool`` (the head's scoring / query parameters; ``None`` for ``mlp`` and ``linear``) and
    ``head`` (the layers that give the logits; :func:`build_head` for ``mlp``), built by
    :func:`build_classifier_head` from ``config.head``. See the module docstring for the computation.
    """

    def __init__(self, config: ClassifierConfig) -> None:
        """Build every module from ``config`` (random initialisation, following the global torch
        seed; the ``mlp`` classifier draws exactly the random numbers it drew before other heads
        existed)."""
        super().__init__()
        self.config = config
        self.text_projection = nn.Linear(config.text_dim, config.hidden_size)
        self.image_projection = nn.Linear(config.image_dim, config.hidden_size)
        self.multimodal = FlavaMultimodalModel(config.flava_multimodal_config(), add_pooling_layer=False)
        self.pool, self.head = build_classifier_head(config)

    # -- constructors -------------------------------------------------------------------------
    @classmethod
    def from_flava(cls, flava_model, head_hidden: Sequence[int] = (512, 256), dropout: float = 0.3,
                   num_labels: int = 3, head: str = "mlp") -> "MultimodalClassifier":
        """The paper's model: FLAVA's pretrained ``text_to_mm_projection``, ``image_to_mm_projection``
        and ``multimodal_model`` + a new head.

        The pretrained modules are DEEP-COPIED (weights equal, storage not shared), so training the
        classifier never changes ``flava_model`` and its frozen encoders; the copy of the
        multimodal encoder drops its pooler, which the heads do not use. Every parameter of the
        result requires grad (call :meth:`freeze_fusion` to train the head only).

        Args:
            flava_model: a ``transformers.FlavaModel`` (e.g. ``FlavaBackbone.flava``).
            head_hidden: widths of the MLP's two hidden layers (not stated in the paper).
            dropout: head dropout (paper: 0.3).
            num_labels: number of classes.
            head: one of :data:`msa_utils.config.profiles.HEADS` (paper: ``"mlp"``).

        Raises:
            ValueError: for an unknown ``head`` or bad ``head_hidden`` (:class:`ClassifierConfig`).
        """
        mm_config = flava_model.config.multimodal_config
        config = ClassifierConfig(
            text_dim=flava_model.config.text_config.hidden_size,
            image_dim=flava_model.config.image_config.hidden_size,
            hidden_size=mm_config.hidden_size,
            num_layers=mm_config.num_hidden_layers,
            num_heads=mm_config.num_attention_heads,
            intermediate_size=mm_config.intermediate_size,
            head_hidden=tuple(head_hidden),
            dropout=dropout,
            num_labels=num_labels,
            head=head,
            multimodal_config={k: getattr(mm_config, k) for k in MULTIMODAL_EXTRA_FIELDS},
        )
        model = cls(config)
        model.text_projection = copy.deepcopy(flava_model.text_to_mm_projection)
        model.image_projection = copy.deepcopy(flava_model.image_to_mm_projection)
        multimodal = copy.deepcopy(flava_model.multimodal_model)
        multimodal.pooler = None
        model.multimodal = multimodal
        for parameter in model.parameters():
            parameter.requires_grad_(True)
        return model.to(flava_model.device)

    @classmethod
    def compact(cls, text_dim: int, image_dim: int, profile) -> "MultimodalClassifier":
        """A multimodal encoder trained from scratch, sized by a :class:`msa_utils.config.profiles.Profile`
        (``fusion_hidden``, ``fusion_layers``, ``fusion_heads``, ``fusion_dropout``, ``head_hidden``,
        ``dropout``, ``head``), intermediate size ``4 * fusion_hidden``. It reads however many image
        tokens the backbone prepares (``image_grid ** 2`` for the compact backbone). Every
        parameter requires grad (``profile.train_fusion`` is the backbone's to apply:
        :meth:`msa_utils.features.encoders.CompactBackbone.build_classifier`).

        Args:
            text_dim, image_dim: widths of the backbone's text and image token states.
            profile: the run's :class:`~msa_utils.config.profiles.Profile`.

        Raises:
            ValueError: if ``fusion_hidden`` is not a multiple of ``fusion_heads``.
        """
        config = ClassifierConfig(
            text_dim=text_dim,
            image_dim=image_dim,
            hidden_size=profile.fusion_hidden,
            num_layers=profile.fusion_layers,
            num_heads=profile.fusion_heads,
            intermediate_size=4 * profile.fusion_hidden,
            head_hidden=tuple(profile.head_hidden),
            dropout=profile.dropout,
            head=profile.head,
            multimodal_config={
                "hidden_dropout_prob": profile.fusion_dropout,
                "attention_probs_dropout_prob": profile.fusion_dropout,
            },
        )
        return cls(config)

    def freeze_fusion(self) -> "MultimodalClassifier":
        """Freeze the projections and the multimodal encoder (:data:`FUSION_MODULES`) at their
        current weights (``requires_grad_(False)``), so that only the head (``pool`` and ``head``)
        trains: the paper's "frozen multimodal encoder" setting, which it reports hurts.

        Train/eval mode is not touched: dropout inside the frozen encoder still follows
        ``train()`` / ``eval()``. It is 0 in FLAVA's pretrained configuration
        (``facebook/flava-full``) and ``profile.fusion_dropout`` for the compact encoder (0 in
        every shipped profile), so the frozen encoder is then deterministic; with a nonzero
        ``fusion_dropout`` it would act as noise on the head's input during training.

        Returns:
            ``self`` (for chaining).
        """
        for name in FUSION_MODULES:
            getattr(self, name).requires_grad_(False)
        return self

    # -- forward ------------------------------------------------------------------------------
    def forward(self, text_states: torch.Tensor, text_mask: torch.Tensor, image_states: torch.Tensor) -> ClassifierOutput:
        """Classify a batch from prepared frozen token states.

        Args:
            text_states: ``(batch, Lt, text_dim)`` (any float dtype; cast to the weights' dtype).
            text_mask: ``(batch, Lt)``, 1 for real tokens, 0 for padding / absent text.
            image_states: ``(batch, Li', image_dim)`` as prepared by the backbone
                (:meth:`msa_utils.features.encoders.FrozenBackbone.prepare_image_states`); used as given.

        Returns:
            :class:`ClassifierOutput` with ``logits (batch, num_labels)`` and
            ``cls_embedding (batch, hidden_size)``.

        Raises:
            ValueError: if the batch sizes or feature widths disagree.
        """
        if not (text_states.shape[0] == text_mask.shape[0] == image_states.shape[0]):
            raise ValueError(f"batch sizes differ: {text_states.shape[0]}, {text_mask.shape[0]}, {image_states.shape[0]}")
        if text_states.shape[-1] != self.config.text_dim or image_states.shape[-1] != self.config.image_dim:
            raise ValueError(
                f"expected widths text {self.config.text_dim} / image {self.config.image_dim}, got "
                f"{text_states.shape[-1]} / {image_states.shape[-1]}"
            )
        weight = self.text_projection.weight
        text_states = text_states.to(weight.device, weight.dtype)
        image_states = image_states.to(weight.device, weight.dtype)
        text_mask = text_mask.to(weight.device)

        image_proj = self.image_projection(image_states)
        text_proj = self.text_projection(text_states)
        batch_size, num_image, _ = image_proj.shape
        # As in FlavaModel.forward: image tokens (+1 for the CLS token) are always attended to.
        image_mask = torch.ones(batch_size, num_image + 1, device=weight.device)
        attention_mask = torch.cat([image_mask, text_mask], dim=1)
        hidden = torch.cat([image_proj, text_proj], dim=1)
        states = self.multimodal(hidden, attention_mask=attention_mask, return_dict=True).last_hidden_state
        summary = self.summarise(states, attention_mask, text_proj, text_mask, image_proj)
        return ClassifierOutput(logits=self.head(summary), cls_embedding=states[:, 0])

    def summarise(self, states: torch.Tensor, attention_mask: torch.Tensor, text_proj: torch.Tensor,
                  text_mask: torch.Tensor, image_proj: torch.Tensor) -> torch.Tensor:
        """The input of ``self.head`` for ``config.head`` (see the module docstring).

        Args:
            states: ``(batch, T, H)`` the multimodal encoder's output, ``T = 1 + Li + Lt``
                (CLS, image tokens, text tokens).
            attention_mask: ``(batch, T)``, 0 at text padding.
            text_proj: ``(batch, Lt, H)``; text_mask: ``(batch, Lt)``; image_proj: ``(batch, Li, H)``:
                the encoder's projected inputs (read by ``modality_sum`` only).

        Returns:
            ``(batch, H)``, or ``(batch, 3 H)`` for ``modality_sum``.
        """
        if self.config.head in ("mlp", "linear"):
            return states[:, 0]
        if self.config.head == "modality_sum":
            return self.pool(states[:, 0], text_proj, text_mask, image_proj)
        return self.pool(states, attention_mask)  # token_attention, attention

    # -- persistence --------------------------------------------------------------------------
    def save_pretrained(self, save_directory: str | os.PathLike) -> Path:
        """Write ``config.json`` and ``model.safetensors`` (atomic writes) to ``save_directory``.

        Returns:
            The folder.
        """
        folder = Path(save_directory)
        folder.mkdir(parents=True, exist_ok=True)
        state = {name: t.detach().cpu().contiguous() for name, t in self.state_dict().items()}
        with atomic_path(folder / WEIGHTS_NAME) as tmp:
            save_file(state, str(tmp), metadata={"format": "pt"})
        write_json(folder / CONFIG_NAME, self.config.to_dict())
        return folder

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, device: str | torch.device = "cpu") -> "MultimodalClassifier":
        """Rebuild a classifier written by :meth:`save_pretrained` (safetensors only, no pickle),
        with its head; every parameter requires grad (a frozen fusion part is not recorded).

        Raises:
            FileNotFoundError: if ``config.json`` or ``model.safetensors`` is missing.
            RuntimeError: if the weights do not match the config (missing/unexpected keys).
        """
        folder = Path(directory)
        config = ClassifierConfig.from_dict(json.loads((folder / CONFIG_NAME).read_text(encoding="utf-8")))
        model = cls(config)
        model.load_state_dict(load_file(str(folder / WEIGHTS_NAME)), strict=True)
        return model.to(device)


def mask_modality(text_states: torch.Tensor, text_mask: torch.Tensor, image_states: torch.Tensor,
                  drop: str | None, nulls: NullInputs | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Replace one modality by the backbone's "absent" features (the paper's ablations).

    Args:
        text_states: ``(batch, Lt, Dt)``; text_mask: ``(batch, Lt)``; image_states:
            ``(batch, Li', Di)``, all as prepared by the backbone.
        drop: ``None`` (keep both), ``"text"`` or ``"image"``.
        nulls: :meth:`msa_utils.features.encoders.FrozenBackbone.null_inputs` of the same backbone (already
            prepared like the features); needed when ``drop`` is set. For ``drop="text"`` the
            returned mask is all zeros whatever ``nulls.text_mask`` holds.

    Returns:
        ``(text_states, text_mask, image_states)``; the dropped modality's tensors are the null
        features expanded to the batch (views, no copies; dtype/device of the inputs), the other
        tensors are returned as given.

    Raises:
        ValueError: for an unknown ``drop``, missing ``nulls``, or a shape mismatch (e.g. null
            image states not prepared/pooled like ``image_states``).
    """
    if drop is None:
        return text_states, text_mask, image_states
    if drop not in ("text", "image"):
        raise ValueError(f"drop must be None, 'text' or 'image', got {drop!r}")
    if nulls is None:
        raise ValueError(f"drop={drop!r} needs the null inputs of the backbone (FrozenBackbone.null_inputs())")
    batch = text_states.shape[0]
    if drop == "text":
        states = nulls.text_states
        if states.shape[1:] != text_states.shape[1:]:
            raise ValueError(f"null text {tuple(states.shape)} does not match text states {tuple(text_states.shape)}")
        states = states.to(text_states.device, text_states.dtype).expand(batch, -1, -1)
        return states, torch.zeros_like(text_mask), image_states
    null_image = nulls.image_states
    if null_image.shape[1:] != image_states.shape[1:]:
        raise ValueError(
            f"null image {tuple(null_image.shape)} does not match image states {tuple(image_states.shape)}; "
            "prepare (pool) both with the same backbone (FrozenBackbone.prepare / null_inputs)"
        )
    return text_states, text_mask, null_image.to(image_states.device, image_states.dtype).expand(batch, -1, -1)


def trim_text_padding(text_states: torch.Tensor, text_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Drop the trailing text positions that are padding in every post of the batch.

    Padding is masked out of the multimodal encoder's attention, so the CLS token, and hence the
    logits, do not depend on it (equal up to float rounding); dropping it saves time (median
    MVSA text: 30 of 64 tokens). Keeps at least one position.

    Args:
        text_states: ``(batch, Lt, Dt)``; text_mask: ``(batch, Lt)`` with right padding.

    Returns:
        ``(text_states[:, :n], text_mask[:, :n])`` (views), ``n`` = the longest real text.
    """
    positions = torch.nonzero(text_mask.any(dim=0))
    length = int(positions.max()) + 1 if positions.numel() else 1
    return text_states[:, :length], text_mask[:, :length]


class EndToEndModel(nn.Module):
    """Frozen backbone + trained :class:`MultimodalClassifier`: raw posts to logits.

    The forward pass is the cached-feature path in one go: ``encode_text`` / ``encode_image`` (what
    the feature cache stores), ``prepare_image_states`` (what ``backbone.prepare`` does to the cache),
    then the classifier. Used to classify new posts and to check that both paths agree.
    Only the classifier is a registered submodule, so ``parameters()`` / ``state_dict()`` hold the
    trained part only; the backbone's encoders stay frozen and in eval mode.
    """

    def __init__(self, backbone, classifier: MultimodalClassifier) -> None:
        """Pair a :class:`msa_utils.features.encoders.FrozenBackbone` with a classifier.

        Raises:
            ValueError: if the feature widths disagree.
        """
        super().__init__()
        if (backbone.text_dim, backbone.image_dim) != (classifier.config.text_dim, classifier.config.image_dim):
            raise ValueError(
                f"backbone widths {(backbone.text_dim, backbone.image_dim)} != classifier "
                f"{(classifier.config.text_dim, classifier.config.image_dim)}"
            )
        self.backbone = backbone  # plain object, not an nn.Module: not registered
        self.classifier = classifier

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, pixel_values: torch.Tensor) -> torch.Tensor:
        """Logits ``(batch, num_labels)`` from ``input_ids (batch, L)``, ``attention_mask (batch, L)``
        and ``pixel_values (batch, 3, S, S)`` (as from ``backbone.tokenize`` / ``preprocess_images``).
        The image states are prepared by the backbone (``prepare_image_states``, e.g. pooled)
        before the classifier. Gradients flow into the classifier only."""
        text_states = self.backbone.encode_text(input_ids, attention_mask)
        image_states = self.backbone.prepare_image_states(self.backbone.encode_image(pixel_values))
        return self.classifier(text_states, attention_mask, image_states).logits

    @torch.no_grad()
    def predict(self, texts: Sequence[str], images: Sequence[Any]) -> torch.Tensor:
        """Logits ``(batch, num_labels)`` for raw texts and images (PIL images of any mode, or paths;
        both converted to RGB by :func:`msa_utils.data.images.to_rgb`), in eval mode (the classifier's
        train/eval mode is restored afterwards).

        Raises:
            ValueError: if ``texts`` and ``images`` differ in length.
        """
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
