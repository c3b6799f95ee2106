"""Frozen backbones: shapes, tokenisation, preprocessing, null features, fingerprints."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from msa_utils.encoders import CompactBackbone, FlavaBackbone, load_backbone, state_dict_sha256
from msa_utils.profiles import get_profile


def test_compact_shapes_on_real_images(compact_backbone, real_posts):
    _, texts, paths = real_posts
    batch = compact_backbone.tokenize(texts)
    assert batch["input_ids"].shape == (6, 32) and batch["attention_mask"].shape == (6, 32)
    pixels = compact_backbone.preprocess_images(paths)
    assert pixels.shape == (6, 3, 224, 224) and pixels.dtype == torch.float32
    # (x - 127) / 128 on 0..255 values
    assert pixels.min() >= -127 / 128 - 1e-6 and pixels.max() <= 128 / 128 + 1e-6
    text = compact_backbone.encode_text(batch["input_ids"], batch["attention_mask"])
    image = compact_backbone.encode_image(pixels)
    assert text.shape == (6, 32, 384) and image.shape == (6, 49, 1280)
    assert torch.isfinite(text).all() and torch.isfinite(image).all()
    assert not text.requires_grad and not image.requires_grad
    # different posts give different features
    assert (image[0] - image[1]).abs().max() > 1e-2
    assert compact_backbone.text_dim == 384 and compact_backbone.image_dim == 1280


def test_compact_image_tokens_are_the_feature_map(compact_backbone, real_posts):
    pixels = compact_backbone.preprocess_images(real_posts[2][:2])
    with torch.no_grad():
        maps = compact_backbone.image_encoder.extract_features(pixels)  # (2, 1280, 7, 7)
    tokens = compact_backbone.encode_image(pixels)
    assert torch.equal(tokens[:, 7 * 2 + 3], maps[:, :, 2, 3])  # row-major order


def test_lite0_normalisation_gives_confident_imagenet_predictions(compact_backbone, real_posts):
    """The chosen (x-127)/128 input matches the first batch-norm's stored statistics far better
    than ImageNet mean/std (see CompactBackbone's docstring)."""
    net = compact_backbone.image_encoder
    ours = compact_backbone.preprocess_images(real_posts[2])
    raw = ours * 128 + 127
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    imagenet = (raw / 255 - mean) / std
    with torch.no_grad():
        ratio = {name: (net._conv_stem(x).var((0, 2, 3)) / net._bn0.running_var).median().item()
                 for name, x in {"ours": ours, "imagenet": imagenet}.items()}
    assert abs(ratio["ours"] - 1) < abs(ratio["imagenet"] - 1)


def test_null_features(compact_backbone, flava_backbone):
    for backbone in (compact_backbone, flava_backbone):
        states, mask = backbone.null_text()
        assert states.shape == (1, backbone.max_text_tokens, backbone.text_dim)
        assert mask.shape == (1, backbone.max_text_tokens) and not mask.any()
        image = backbone.null_image()
        assert image.shape[0] == 1 and image.shape[2] == backbone.image_dim
        assert torch.isfinite(states).all() and torch.isfinite(image).all()
    assert compact_backbone.null_image().shape == (1, 49, 1280)
    assert flava_backbone.null_image().shape == (1, 17, 32)  # CLS + (64/16)^2 patches


def test_tokenize_pads_and_truncates(flava_backbone):
    batch = flava_backbone.tokenize(["hi", "word " * 100])
    assert batch["input_ids"].shape == (2, 16)
    assert batch["attention_mask"][0].sum() == 3  # [CLS] hi [SEP]
    assert batch["attention_mask"][1].all()
    assert len(flava_backbone.tokenizer) == 30522  # not the 5-token vocabulary trap
    with pytest.raises(TypeError):
        flava_backbone.tokenize("one string")


def test_flava_backbone_uses_pre_layernorm_states(flava_backbone, real_posts):
    _, texts, paths = real_posts
    batch = flava_backbone.tokenize(texts[:2])
    states = flava_backbone.encode_text(batch["input_ids"], batch["attention_mask"])
    with torch.no_grad():
        out = flava_backbone.flava.text_model(**batch, output_hidden_states=True)
    assert torch.equal(states, out.hidden_states[-1])
    assert not torch.allclose(states, out.last_hidden_state, atol=1e-3)
    pixels = flava_backbone.preprocess_images(paths[:2])
    assert pixels.shape == (2, 3, 64, 64)
    assert flava_backbone.encode_image(pixels).shape == (2, 17, 32)


def test_encoders_are_frozen(compact_backbone, flava_backbone):
    for backbone in (compact_backbone, flava_backbone):
        for module in (backbone.text_encoder, backbone.image_encoder):
            assert not module.training
            assert not any(p.requires_grad for p in module.parameters())


def test_fingerprint_tracks_preprocessing_and_weights(flava_backbone, compact_backbone, compact_models):
    other = FlavaBackbone(flava_backbone.flava, flava_backbone.tokenizer, flava_backbone.image_processor,
                          max_text_tokens=8, device="cpu", name_or_path=flava_backbone.name_or_path)
    assert other.fingerprint() != flava_backbone.fingerprint()
    text_model, tokenizer, image_model = compact_models
    smaller = CompactBackbone(max_text_tokens=32, image_size=192, text_model=text_model, tokenizer=tokenizer,
                              image_model=image_model)
    assert smaller.fingerprint() != compact_backbone.fingerprint()
    layer = nn.Linear(3, 2)
    before = state_dict_sha256(layer)
    with torch.no_grad():
        layer.weight[0, 0] += 1e-3
    assert state_dict_sha256(layer) != before


def test_load_backbone_errors(tiny_flava_dir):
    profile = get_profile("smoke", backbone="flava", flava_name_or_path=str(tiny_flava_dir), device="cpu")
    with pytest.raises(ValueError, match="image_size"):
        load_backbone(dataclasses.replace(profile, image_size=224))
    with pytest.raises(ValueError, match="backbone"):
        load_backbone(dataclasses.replace(profile, backbone="clip"))
