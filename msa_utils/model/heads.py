"""The classifier heads, by name (:data:`HEADS`): the paper's and the alternatives it reports as 7-8 points worse
(our readings of its one-line descriptions). A head is ``(pool, head)``: ``pool`` computes the head's input from
the encoder's tokens ``h`` (``None``: the CLS token ``h[:, 0]``), ``head`` gives the logits; padding gets zero weight.

``mlp``              the paper's: 3-layer MLP (:func:`build_head`) on the CLS token (B, H).
``linear``           Dropout + Linear(H, 3) on the CLS token.
``token_attention``  (a) ``softmax(Linear(H, 1)(h))``-weighted sum of the non-padding tokens -> MLP.
``modality_sum``     (b) weighted sums of ``text_proj`` (padding masked; zeros without text) and of
                     ``image_proj``, each scored by its own Linear(H, 1), after the CLS token (B, 3H) -> MLP.
``attention``        (c) one learned query attends over ``h`` (``nn.MultiheadAttention``, padding
                     masked), Dropout, LayerNorm -> Linear(H, 3)."""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn


def build_head(hidden_size: int, head_hidden: Sequence[int], dropout: float, num_labels: int = 3) -> nn.Sequential:
    """The paper's MLP: ``(B, hidden_size)`` to ``(B, num_labels)``; ValueError unless ``head_hidden`` has 2 widths."""
    h1, h2 = head_hidden
    return nn.Sequential(
        nn.Linear(hidden_size, h1), nn.ReLU(), nn.Dropout(dropout),
        nn.Linear(h1, h2), nn.ReLU(), nn.Dropout(dropout), nn.Linear(h2, num_labels))


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax of ``scores (B, L)`` where ``mask (B, L)`` is nonzero, exactly 0 elsewhere (all 0 for an empty row)."""
    keep = mask != 0
    scores = scores.masked_fill(~keep, torch.finfo(scores.dtype).min)
    return torch.softmax(scores, dim=-1) * keep.to(scores.dtype)


def weighted_sum(weights: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """``sum_t weights[:, t] * tokens[:, t]``: ``(B, L)`` and ``(B, L, H)`` to ``(B, H)``."""
    return torch.bmm(weights.unsqueeze(1), tokens).squeeze(1)


class TokenAttentionPool(nn.Module):
    """Head ``token_attention``: ``states (B, T, H)``, ``attention_mask (B, T)`` -> ``(B, H)``."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.score = nn.Linear(hidden_size, 1)

    def forward(self, states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return weighted_sum(masked_softmax(self.score(states).squeeze(-1), attention_mask), states)


class ModalitySumPool(nn.Module):
    """Head ``modality_sum``: ``cls_embedding (B, H)``, ``text_proj (B, Lt, H)``, ``text_mask (B, Lt)``,
    ``image_proj (B, Li, H)`` -> ``[cls_embedding, text sum, image sum]`` ``(B, 3H)``."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.text_score = nn.Linear(hidden_size, 1)
        self.image_score = nn.Linear(hidden_size, 1)

    def forward(self, cls_embedding: torch.Tensor, text_proj: torch.Tensor, text_mask: torch.Tensor,
                image_proj: torch.Tensor) -> torch.Tensor:
        text = weighted_sum(masked_softmax(self.text_score(text_proj).squeeze(-1), text_mask), text_proj)
        image = weighted_sum(torch.softmax(self.image_score(image_proj).squeeze(-1), dim=-1), image_proj)
        return torch.cat([cls_embedding, text, image], dim=-1)


class AttentionPool(nn.Module):
    """Head ``attention``: ``states (B, T, H)`` (a real token a row), ``attention_mask (B, T)`` -> ``(B, H)``."""

    def __init__(self, hidden_size: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        self.query = nn.Parameter(torch.empty(1, 1, hidden_size))
        nn.init.normal_(self.query, std=0.02)
        self.attention = nn.MultiheadAttention(hidden_size, num_heads, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(hidden_size)

    def forward(self, states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        query = self.query.expand(states.shape[0], -1, -1).to(states.dtype)
        attended, _ = self.attention(query, states, states, key_padding_mask=attention_mask == 0, need_weights=False)
        return self.norm(self.dropout(attended.squeeze(1)))


def _mlp(config, width: int = 1) -> nn.Sequential:
    return build_head(width * config.hidden_size, config.head_hidden, config.dropout, config.num_labels)


HEADS: dict[str, Callable[..., tuple[nn.Module | None, nn.Module]]] = {
    "mlp": lambda c: (None, _mlp(c)),
    "linear": lambda c: (None, nn.Sequential(nn.Dropout(c.dropout), nn.Linear(c.hidden_size, c.num_labels))),
    "token_attention": lambda c: (TokenAttentionPool(c.hidden_size), _mlp(c)),
    "modality_sum": lambda c: (ModalitySumPool(c.hidden_size), _mlp(c, 3)),
    "attention": lambda c: (AttentionPool(c.hidden_size, c.num_heads, c.dropout), nn.Linear(c.hidden_size, c.num_labels)),
}
"""Head name (:data:`msa_utils.config.profiles.HEAD_NAMES`) -> ``(pool, head)`` of a ``ClassifierConfig``."""
