"""Fine-tuning the top text layers on cached below-states (msa_utils.model.text_finetune:
encode_text_below, text_top...), on the real MiniLM (compact) and the tiny random FLAVA."""

from __future__ import annotations

import copy
import logging

import numpy as np
import pytest
import torch

from msa_utils.features.backbone import FrozenBackbone
from msa_utils.features.extraction import extract_features
from msa_utils.features.feature_cache import MANIFEST_NAME
from msa_utils.features.sets import FeatureSet, LazyRows
from msa_utils.io import read_json
import msa_utils.model.text_finetune as text_finetune
from msa_utils.model.classifier import MultimodalClassifier
from msa_utils.model.factory import build_classifier
from msa_utils.config.profiles import get_profile
from msa_utils.config.runtime import set_seed
from msa_utils.config.profiles import TrainSettings
from msa_utils.train.loop import fit
from msa_utils.model.text_finetune import (TextTopClassifier, TextTopLayers, encode_text_below, text_below_features,
                                           text_top)

BACKBONES = ("compact_backbone", "flava_backbone")
LONG_TEXT = " ".join(["a long post that is cut at the maximum number of text tokens"] * 8)


@pytest.fixture(params=BACKBONES)
def backbone(request):
    return request.getfixturevalue(request.param)


@pytest.fixture(scope="session")
def posts(real_posts):
    """``(guids, texts, image_paths)``: the 6 real posts, one of them given a text longer than
    ``max_text_tokens`` (truncated) and one a 1-word text, so lengths and padding vary."""
    guids, texts, paths = real_posts
    texts = list(texts)
    texts[1], texts[4] = LONG_TEXT, "wow"
    return guids, texts, paths


_FEATURES: dict[str, FeatureSet] = {}


def features_of(backbone, posts) -> FeatureSet:
    """The frozen features of ``posts``, prepared, computed once per backbone."""
    if backbone.name not in _FEATURES:
        guids, texts, paths = posts
        _FEATURES[backbone.name] = backbone.prepare(extract_features(backbone, texts, paths, guids, progress=False))
    return _FEATURES[backbone.name]


def num_layers(backbone) -> int:
    return len(backbone.text_encoder.encoder.layer)


def real(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The states of real (non-padding) positions, ``(tokens, D)``."""
    return states[mask.bool()]


@pytest.mark.parametrize("top_layers", [1, 2])
def test_top_layers_on_below_states_reproduce_encode_text(backbone, posts, top_layers):
    batch = backbone.tokenize(posts[1])
    ids, mask = batch["input_ids"], batch["attention_mask"]
    assert 0 < int(mask.sum(1).min()) < int(mask.sum(1).max()) == mask.shape[1]  # padding and truncation
    below = encode_text_below(backbone, ids, mask, top_layers)
    expected = backbone.encode_text(ids, mask)
    assert below.shape == expected.shape and not below.requires_grad
    top = text_top(backbone, top_layers)
    with torch.no_grad():
        out = top(below, mask)
    assert not torch.allclose(real(below, mask), real(expected, mask), atol=1e-2)  # the layers do something
    torch.testing.assert_close(real(out, mask), real(expected, mask), atol=1e-5, rtol=0)
    # padding positions never change real positions
    noisy = torch.where(mask.bool()[..., None], below, torch.randn_like(below) * 10)
    with torch.no_grad():
        out_noisy = top(noisy, mask)
    torch.testing.assert_close(real(out_noisy, mask), real(expected, mask), atol=1e-5, rtol=0)


def test_text_top_is_a_trainable_deep_copy(backbone):
    top = text_top(backbone, 2)
    assert isinstance(top, TextTopLayers) and top.top_layers == 2 and top.num_layers == num_layers(backbone)
    assert top.backbone_name == backbone.name and top.hidden_size == backbone.text_dim
    assert all(p.requires_grad for p in top.parameters())
    assert not any(p.requires_grad for p in backbone.text_encoder.parameters())  # the encoder stays frozen
    encoder_storage = {p.data_ptr() for p in backbone.text_encoder.parameters()}
    assert not encoder_storage & {p.data_ptr() for p in top.parameters()}
    original = backbone.text_encoder.encoder.layer[-1].state_dict()
    for name, tensor in top.layers[-1].state_dict().items():
        assert torch.equal(tensor, original[name])


@pytest.mark.parametrize("bad", [0, -1, "too_many", True, 1.0])
def test_top_layers_out_of_range(backbone, bad):
    bad = num_layers(backbone) + 1 if bad == "too_many" else bad
    batch = backbone.tokenize(["hello"])
    with pytest.raises(ValueError, match="top_layers must be an integer in 1.."):
        encode_text_below(backbone, batch["input_ids"], batch["attention_mask"], bad)
    with pytest.raises(ValueError, match="top_layers must be an integer in 1.."):
        text_top(backbone, bad)


def test_base_backbone_does_not_support_it():
    class Bare(FrozenBackbone):
        pass

    ids = torch.zeros(1, 4, dtype=torch.long)
    with pytest.raises(NotImplementedError, match="Bare cannot fine-tune"):
        encode_text_below(Bare(), ids, ids, 1)
    with pytest.raises(NotImplementedError, match="Bare cannot fine-tune"):
        text_top(Bare(), 1)


def _models(backbone, top_layers=1):
    """``(plain classifier, TextTopClassifier on a deep copy of it)``, both in eval mode."""
    set_seed(0)
    classifier = build_classifier(backbone, get_profile("cpu"))
    model = TextTopClassifier(text_top(backbone, top_layers).to(next(classifier.parameters()).device),
                              copy.deepcopy(classifier))
    return classifier.eval(), model.eval()


@pytest.mark.parametrize("top_layers", [1, 2])
def test_classifier_starts_equal_to_the_plain_classifier(backbone, posts, tmp_path, top_layers):
    features = features_of(backbone, posts)
    below = text_below_features(backbone, features, posts[1], top_layers, tmp_path, progress=False).in_memory()
    classifier, model = _models(backbone, top_layers)
    with torch.no_grad():
        expected = classifier(features.text_states, features.text_mask, features.image_states).logits
        got = model(below.text_states, below.text_mask, below.image_states).logits
    assert got.shape == (len(features), 3)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)


def _train_step(model, features: FeatureSet, lr: float = 1e-3) -> None:
    model.train()
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    logits = model(features.text_states, features.text_mask, features.image_states).logits
    loss = torch.nn.functional.cross_entropy(logits, torch.arange(len(features)) % 3)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    model.eval()


def test_training_changes_the_text_top_but_never_the_frozen_encoder(backbone, posts, tmp_path):
    below = text_below_features(backbone, features_of(backbone, posts), posts[1], 1, tmp_path,
                                progress=False).in_memory()
    _, model = _models(backbone)
    encoder_before = {k: v.clone() for k, v in backbone.text_encoder.state_dict().items()}
    top_before = {k: v.clone() for k, v in model.text_top.state_dict().items()}
    _train_step(model, below)
    top_after = model.text_top.state_dict()
    changed = [k for k in top_before if not torch.equal(top_before[k], top_after[k])]
    assert len(changed) > len(top_before) // 2  # most tensors of the copied layer moved
    for name, tensor in backbone.text_encoder.state_dict().items():
        assert torch.equal(tensor, encoder_before[name]), name
    assert all(p.grad is None and not p.requires_grad for p in backbone.text_encoder.parameters())
    assert not backbone.text_encoder.training


def test_save_and_load(compact_backbone, flava_backbone, posts, tmp_path):
    backbone = flava_backbone
    below = text_below_features(backbone, features_of(backbone, posts), posts[1], 2, tmp_path / "cache",
                                progress=False).in_memory()
    _, model = _models(backbone, 2)
    _train_step(model, below)
    folder = model.save_pretrained(tmp_path / "ckpt")
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    assert files == ["classifier/config.json", "classifier/model.safetensors", "text_top.json", "text_top.safetensors"]
    assert read_json(folder / "text_top.json") == {"backbone": "flava", "num_layers": 2, "text_dim": 32,
                                                   "top_layers": 2}
    loaded = TextTopClassifier.from_pretrained(folder, backbone).eval()
    assert loaded.top_layers == 2
    with torch.no_grad():
        expected = model(below.text_states, below.text_mask, below.image_states).logits
        got = loaded(below.text_states, below.text_mask, below.image_states).logits
    torch.testing.assert_close(got, expected, atol=0, rtol=0)
    with pytest.raises(FileNotFoundError):  # never silently loaded without its text layers
        MultimodalClassifier.from_pretrained(folder)
    with pytest.raises(ValueError, match="made on a backbone with"):
        TextTopClassifier.from_pretrained(folder, compact_backbone)


def test_text_below_features_are_cached_and_never_touch_images(compact_backbone, posts, tmp_path, monkeypatch,
                                                                caplog):
    backbone = compact_backbone
    features = features_of(backbone, posts)
    texts = posts[1]

    def no_images(*args, **kwargs):
        raise AssertionError("images must not be re-encoded")

    monkeypatch.setattr(backbone, "encode_image", no_images)
    monkeypatch.setattr(backbone, "preprocess_images", no_images)
    with caplog.at_level(logging.INFO, logger="msa_utils.model.text_finetune"):
        below = text_below_features(backbone, features, texts, 1, tmp_path, batch_size=4, progress=False)
    assert any("text-only pass below the top 1 layers: 6 texts in" in r.getMessage() for r in caplog.records)
    assert below.guids is features.guids and below.text_mask is features.text_mask
    assert below.image_states is features.image_states
    assert below.text_states.dtype == torch.float32 and below.text_states.shape == features.text_states.shape
    assert isinstance(below.text_states, LazyRows)  # read from the cache just written
    below_states = below.text_states[:]
    batch = backbone.tokenize(texts)
    direct = encode_text_below(backbone, batch["input_ids"], batch["attention_mask"], 1)
    mask = features.text_mask
    torch.testing.assert_close(real(below_states, mask), real(direct, mask), atol=1e-5, rtol=0)
    # each batch (sorted by length) is cut to its longest text: the cut positions are zeros
    assert (below_states[~mask.bool()].abs().sum(-1) == 0).any()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 1 and files[0].startswith("features-compact-below1-")
    assert (tmp_path / files[0] / MANIFEST_NAME).is_file()

    # the second call reads the cache
    monkeypatch.setattr(text_finetune, "encode_text_below", no_images)
    again = text_below_features(backbone, features, texts, 1, tmp_path, progress=False)
    assert torch.equal(again.text_states[:], below_states)
    monkeypatch.undo()

    # a corrupted cache is rebuilt with a warning
    path = tmp_path / files[0] / "shard-00000.safetensors"
    path.write_bytes(b"not a safetensors file")
    with caplog.at_level(logging.WARNING, logger="msa_utils.model.text_finetune"):
        rebuilt = text_below_features(backbone, features, texts, 1, tmp_path, batch_size=4, progress=False)
    assert any("unusable" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    assert torch.equal(rebuilt.text_states[:], below_states)

    # another top_layers or dtype is another file
    half = text_below_features(backbone, features, texts, 2, tmp_path, dtype="float16", progress=False)
    assert half.text_states.dtype == torch.float16
    assert len(list(tmp_path.iterdir())) == 2


def test_text_below_features_rejects_mismatched_inputs(compact_backbone, posts, tmp_path):
    backbone = compact_backbone
    features = features_of(backbone, posts)
    texts = posts[1]
    with pytest.raises(ValueError, match="differs from features.text_mask"):
        text_below_features(backbone, features, texts[::-1], 1, tmp_path, progress=False)
    with pytest.raises(ValueError, match="5 texts but 6 feature rows"):
        text_below_features(backbone, features, texts[:5], 1, tmp_path, progress=False)
    with pytest.raises(ValueError, match="dtype must be one of"):
        text_below_features(backbone, features, texts, 1, tmp_path, dtype="int8", progress=False)
    with pytest.raises(ValueError, match="top_layers must be an integer in 1..6"):
        text_below_features(backbone, features, texts, 7, tmp_path, progress=False)
    for bad in (0, True, 1.0):
        with pytest.raises(ValueError, match="top_layers must be a positive integer"):
            text_below_features(backbone, features, texts, bad, tmp_path, progress=False)
    assert not list(tmp_path.iterdir())


def test_fit_trains_the_text_top(flava_backbone, posts, tmp_path):
    backbone = flava_backbone
    below = text_below_features(backbone, features_of(backbone, posts), posts[1], 1, tmp_path, progress=False)
    _, model = _models(backbone)
    before = {k: v.clone() for k, v in model.text_top.state_dict().items()}
    labels = np.arange(len(below)) % 3
    result = fit(model, below, labels, below, labels, TrainSettings(max_epochs=2, batch_size=3), progress=False)
    assert len(result.history) >= 1
    after = model.text_top.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
