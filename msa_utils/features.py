"""Frozen-encoder features of every post, computed once and cached on disk (safetensors).

The encoders are frozen, so their outputs never change during training: the study encodes each
post once (:func:`extract_features`) and trains the multimodal part on the cached token states.
:func:`load_or_extract_features` keeps ONE safetensors file per (backbone, data, settings) in the
cache folder. Its file name carries a key, a :class:`msa_utils.hashing.Digest` (SHA-256) over

* :data:`FORMAT_VERSION`,
* the backbone's :meth:`~msa_utils.encoders.FrozenBackbone.fingerprint` (model identity, a hash of
  its weights, tokenisation and image preprocessing),
* the cache dtype,
* the image loader's identity: the source of :mod:`msa_utils.images` (any edit of it invalidates
  the cache),
* every guid, every text and the SHA-256 of every image file's bytes, in order,

so a change of model, data or preprocessing can never reuse a stale file. The key and a SHA-256 of
the tensor bytes are stored in the file's metadata and checked on load; a file that cannot be read,
whose key differs, or whose content hash does not match is reported (``logging.warning``) and
rebuilt, never used. Files are written atomically (:func:`msa_utils.io.atomic_path`).

The cache holds each encoder's OWN token states (e.g. the compact backbone's whole 7 x 7
EfficientNet map). What the classifier reads is made from them by the backbone,
:meth:`msa_utils.encoders.FrozenBackbone.prepare` (for the compact backbone through
:func:`pool_image_tokens`), so the same cache file serves every ``image_grid``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from msa_utils import images as images_module
from msa_utils.hashing import Digest
from msa_utils.io import atomic_path

logger = logging.getLogger(__name__)

FORMAT_VERSION = "2"
"""Bump when the file layout or the meaning of the cached tensors changes (2: key and content hash
computed with :class:`msa_utils.hashing.Digest`)."""

_DTYPES = {"float16": torch.float16, "float32": torch.float32, "bfloat16": torch.bfloat16}
_TENSOR_NAMES = ("guids", "text_states", "text_mask", "image_states")


@dataclass
class FeatureSet:
    """Frozen-encoder outputs of ``N`` posts, row ``i`` belonging to ``guids[i]``.

    Attributes:
        guids: ``(N,)`` int64 post ids.
        text_states: ``(N, L, Dt)`` text token states (float16 or float32).
        text_mask: ``(N, L)`` int64 attention mask, 1 for real tokens, 0 for padding.
        image_states: ``(N, Li, Di)`` image token states.
    """

    guids: torch.Tensor
    text_states: torch.Tensor
    text_mask: torch.Tensor
    image_states: torch.Tensor

    def __post_init__(self) -> None:
        n = self.guids.shape[0]
        for name in _TENSOR_NAMES[1:]:
            if getattr(self, name).shape[0] != n:
                raise ValueError(f"{name} has {getattr(self, name).shape[0]} rows, guids has {n}")

    def __len__(self) -> int:
        return int(self.guids.shape[0])

    def index_of(self, guids: Sequence[int] | torch.Tensor) -> torch.Tensor:
        """Row positions ``(len(guids),)`` int64 of the given guids.

        Raises:
            KeyError: if a guid is not in this set.
        """
        position = {int(g): i for i, g in enumerate(self.guids.tolist())}
        wanted = guids.tolist() if isinstance(guids, torch.Tensor) else list(guids)
        missing = [int(g) for g in wanted if int(g) not in position]
        if missing:
            raise KeyError(f"{len(missing)} guids not in the feature set, e.g. {missing[:5]}")
        return torch.tensor([position[int(g)] for g in wanted], dtype=torch.long)

    def subset(self, guids: Sequence[int] | torch.Tensor) -> "FeatureSet":
        """The rows of ``guids``, in that order (a copy).

        Raises:
            KeyError: if a guid is not in this set.
        """
        rows = self.index_of(guids)
        return FeatureSet(
            guids=self.guids[rows],
            text_states=self.text_states[rows],
            text_mask=self.text_mask[rows],
            image_states=self.image_states[rows],
        )

    def tensors(self) -> dict[str, torch.Tensor]:
        """The four tensors by name (no copies)."""
        return {name: getattr(self, name) for name in _TENSOR_NAMES}


@dataclass(frozen=True)
class NullInputs:
    """Frozen-encoder outputs of the masked inputs used by the ablations (the paper's masking), as
    the classifier reads them; made by :meth:`msa_utils.encoders.FrozenBackbone.null_inputs`.

    Attributes:
        text_states: ``(1, L, Dt)`` the text encoder on all-zero ids and an all-zero attention mask.
        text_mask: ``(1, L)`` int64, all zeros.
        image_states: ``(1, Li', Di)`` the image encoder on all-zero pixel values, prepared
            (pooled) like the features (:meth:`~msa_utils.encoders.FrozenBackbone.prepare`).

    Raises:
        ValueError: (on construction) if a tensor does not have one row, the wrong rank, or the
            text states and mask disagree in length.
    """

    text_states: torch.Tensor
    text_mask: torch.Tensor
    image_states: torch.Tensor

    def __post_init__(self) -> None:
        for name, rank in (("text_states", 3), ("text_mask", 2), ("image_states", 3)):
            tensor = getattr(self, name)
            if tensor.dim() != rank or tensor.shape[0] != 1:
                raise ValueError(f"NullInputs.{name} must have shape (1, ...) of rank {rank}, "
                                 f"got {tuple(tensor.shape)}")
        if self.text_states.shape[1] != self.text_mask.shape[1]:
            raise ValueError(f"null text states {tuple(self.text_states.shape)} and mask "
                             f"{tuple(self.text_mask.shape)} differ in length")


def pool_image_tokens(states: torch.Tensor, grid: int | None) -> torch.Tensor:
    """Average-pool a square grid of image tokens to ``grid x grid`` tokens (a pure function; the
    study calls it only through :meth:`msa_utils.encoders.CompactBackbone.prepare_image_states`).

    Tokens are read row by row (as :meth:`msa_utils.encoders.CompactBackbone.encode_image` writes
    them), pooled with ``torch.nn.functional.adaptive_avg_pool2d``, and written back row by row.

    Args:
        states: ``(N, S*S, C)`` image token states.
        grid: output side; ``None`` or ``S`` returns ``states`` itself (no copy).

    Returns:
        ``(N, grid*grid, C)``, same dtype.

    Raises:
        ValueError: if the token count is not a perfect square (e.g. FLAVA's 197 tokens, which
            include a CLS token) or ``grid`` is not in ``1..S``.
    """
    if grid is None:
        return states
    n, tokens, channels = states.shape
    side = math.isqrt(tokens)
    if side * side != tokens:
        raise ValueError(f"{tokens} image tokens do not form a square grid; cannot pool to {grid}x{grid}")
    if not 1 <= grid <= side:
        raise ValueError(f"grid must be in 1..{side}, got {grid}")
    if grid == side:
        return states
    maps = states.transpose(1, 2).reshape(n, channels, side, side)
    pooled = F.adaptive_avg_pool2d(maps, grid)
    return pooled.flatten(2).transpose(1, 2).contiguous()


def extract_features(backbone, texts: Sequence[str], image_paths: Sequence[str | os.PathLike],
                     guids: Sequence[int] | torch.Tensor, batch_size: int = 32, progress: bool = True,
                     dtype: str | torch.dtype = "float32") -> FeatureSet:
    """Encode every post with the frozen backbone, ``batch_size`` posts at a time.

    Args:
        backbone: a :class:`msa_utils.encoders.FrozenBackbone`.
        texts: ``N`` texts (already cleaned/translated as the study wants them).
        image_paths: ``N`` image files (opened with ``msa_utils.images.load_image`` if present).
        guids: ``N`` post ids.
        batch_size: posts per encoder forward pass.
        progress: show a tqdm bar.
        dtype: dtype of the stored states (``"float16"`` halves memory; ``"float32"`` is exact).

    Returns:
        A :class:`FeatureSet` on the CPU holding the encoders' own states (not prepared: see
        :meth:`msa_utils.encoders.FrozenBackbone.prepare`); outputs are written into preallocated
        tensors, so peak memory is one copy of the features plus one batch.

    Raises:
        ValueError: if the three sequences differ in length or are empty.
    """
    dtype = _DTYPES[dtype] if isinstance(dtype, str) else dtype
    guids = torch.as_tensor(list(map(int, guids)) if not isinstance(guids, torch.Tensor) else guids, dtype=torch.long)
    n = len(guids)
    if not (len(texts) == len(image_paths) == n):
        raise ValueError(f"{len(texts)} texts, {len(image_paths)} images and {n} guids must match")
    if n == 0:
        raise ValueError("no posts to encode")
    text_states = text_mask = image_states = None
    starts = range(0, n, batch_size)
    for start in tqdm(starts, desc=f"encode ({backbone.name})", disable=not progress, unit="batch"):
        stop = min(start + batch_size, n)
        t, m, i = backbone.encode(list(texts[start:stop]), list(image_paths[start:stop]))
        if text_states is None:
            text_states = torch.empty((n, *t.shape[1:]), dtype=dtype)
            text_mask = torch.empty((n, m.shape[1]), dtype=torch.long)
            image_states = torch.empty((n, *i.shape[1:]), dtype=dtype)
        text_states[start:stop] = t.to("cpu", dtype)
        text_mask[start:stop] = m.to("cpu", torch.long)
        image_states[start:stop] = i.to("cpu", dtype)
    return FeatureSet(guids, text_states, text_mask, image_states)


def feature_cache_key(backbone, guids: Sequence[int] | torch.Tensor, texts: Sequence[str],
                      image_paths: Sequence[str | os.PathLike], dtype: str) -> str:
    """The cache key (hex SHA-256) described in the module docstring.

    Reads every image file once to hash its bytes (about 1 s for the 4,869 MVSA-Single images).

    Raises:
        OSError: if an image file cannot be read.
        ValueError: if the sequences differ in length.
    """
    guid_list = guids.tolist() if isinstance(guids, torch.Tensor) else [int(g) for g in guids]
    if not (len(guid_list) == len(texts) == len(image_paths)):
        raise ValueError(f"{len(guid_list)} guids, {len(texts)} texts and {len(image_paths)} images must match")
    digest = (Digest().add("format", FORMAT_VERSION).add("backbone", backbone.fingerprint())
              .add("dtype", str(dtype)).add("loader", images_module))
    for guid, text, path in zip(guid_list, texts, image_paths):
        digest.add("guid", str(int(guid))).add("text", text).add_file("image", path)
    return digest.hexdigest()


def _content_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """Digest of the four tensors (name, dtype, shape, bytes), in :data:`_TENSOR_NAMES` order."""
    digest = Digest()
    for name in _TENSOR_NAMES:
        digest.add(name, tensors[name])
    return digest.hexdigest()


def cache_path(cache_dir: str | os.PathLike, backbone_name: str, key: str) -> Path:
    """``{cache_dir}/features-{backbone_name}-{key}.safetensors``."""
    return Path(cache_dir) / f"features-{backbone_name}-{key}.safetensors"


def save_features(features: FeatureSet, path: str | os.PathLike, key: str) -> Path:
    """Write ``features`` atomically to one safetensors file with ``key`` and a content hash in
    its metadata. Returns the path."""
    tensors = {name: t.contiguous() for name, t in features.tensors().items()}
    metadata = {"key": key, "format_version": FORMAT_VERSION, "content_sha256": _content_sha256(tensors)}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return Path(path)


def load_features(path: str | os.PathLike, key: str) -> FeatureSet:
    """Read a file written by :func:`save_features` and verify it.

    Raises:
        ValueError: if the stored key, format version or content hash does not match, or a
            tensor is missing.
        OSError / safetensors.SafetensorError: if the file cannot be read or parsed.
    """
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
    if metadata.get("key") != key:
        raise ValueError(f"cache key mismatch: file has {metadata.get('key')!r}, expected {key!r}")
    if metadata.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"cache format {metadata.get('format_version')!r}, expected {FORMAT_VERSION!r}")
    tensors = load_file(str(path))
    missing = [name for name in _TENSOR_NAMES if name not in tensors]
    if missing:
        raise ValueError(f"cache file lacks tensors {missing}")
    if _content_sha256(tensors) != metadata.get("content_sha256"):
        raise ValueError("cache content hash mismatch (file corrupted)")
    return FeatureSet(**{name: tensors[name] for name in _TENSOR_NAMES})


def load_or_extract_features(backbone, guids: Sequence[int] | torch.Tensor, texts: Sequence[str],
                             image_paths: Sequence[str | os.PathLike], cache_dir: str | os.PathLike,
                             dtype: str = "float16", batch_size: int = 32, progress: bool = True) -> FeatureSet:
    """Return the features of these posts from the cache, or extract and cache them.

    Args:
        backbone: a :class:`msa_utils.encoders.FrozenBackbone`.
        guids, texts, image_paths: ``N`` posts, aligned.
        cache_dir: folder of the cache files (created if missing; safe to delete).
        dtype: ``"float16"`` or ``"float32"`` (``"bfloat16"`` also accepted).
        batch_size: posts per encoder forward pass when extracting.
        progress: show a tqdm bar when extracting.

    Returns:
        A :class:`FeatureSet` whose rows follow ``guids``: the encoders' own states, to be passed
        through ``backbone.prepare`` before the classifier reads them.

    Raises:
        ValueError: for an unknown dtype or misaligned inputs.
        OSError: if an image cannot be read.

    A cache file that is unreadable, corrupted or has a different key is logged with
    ``logging.warning`` and rebuilt.
    """
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
    key = feature_cache_key(backbone, guids, texts, image_paths, dtype)
    path = cache_path(cache_dir, backbone.name, key)
    if path.exists():
        try:
            features = load_features(path, key)
            logger.info("loaded %d cached feature rows from %s", len(features), path)
            return features
        except Exception as error:  # any unreadable file is rebuilt, never used
            logger.warning("feature cache %s is unusable (%s: %s); rebuilding it", path, type(error).__name__, error)
    features = extract_features(backbone, texts, image_paths, guids, batch_size=batch_size, progress=progress,
                                dtype=dtype)
    save_features(features, path, key)
    logger.info("cached %d feature rows in %s", len(features), path)
    return features
