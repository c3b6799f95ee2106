"""Frozen backbones: shapes, tokenisation, preprocessing, null inputs, fingerprints, and what each
backbone owns (the name registry, prepare / pooling, its description) and the classifier built on it."""

from __future__ import annotations

import dataclasses
import inspect
import re
import types

import pytest
import torch
from PIL import Image
from torch import nn

import msa_utils.features.compact as compact_module
import msa_utils.features.encoders as encoders_module
from msa_utils.features.backbone import add_state_dicts, to_rgb_images
from msa_utils.features.compact import CompactBackbone
from msa_utils.features.encoders import BACKBONES, load_backbone
from msa_utils.features.flava import FlavaBackbone
from msa_utils.features.sets import FeatureSet, NullInputs, pool_image_tokens
from msa_utils.io.hashing import Digest
from msa_utils.data.images import load_image, to_rgb
from msa_utils.model.classifier import MultimodalClassifier
from msa_utils.model.factory import CLASSIFIERS, build_classifier
from msa_utils.config.profiles import BACKBONE_NAMES, get_profile


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


def test_null_inputs(compact_backbone, compact_backbone_grid2, flava_backbone):
    for backbone in (compact_backbone, compact_backbone_grid2, flava_backbone):
        nulls = backbone.null_inputs()
        assert isinstance(nulls, NullInputs)
        states, mask, image = nulls.text_states, nulls.text_mask, nulls.image_states
        assert states.shape == (1, backbone.max_text_tokens, backbone.text_dim)
        assert mask.shape == (1, backbone.max_text_tokens) and not mask.any() and mask.dtype == torch.long
        assert image.shape[0] == 1 and image.shape[2] == backbone.image_dim
        assert torch.isfinite(states).all() and torch.isfinite(image).all()
        assert all(t.device.type == "cpu" for t in (states, mask, image))
        # the text encoder on all-zero ids and mask; the image encoder on all-zero pixels, prepared
        zeros = torch.zeros(1, backbone.max_text_tokens, dtype=torch.long)
        torch.testing.assert_close(states, backbone.encode_text(zeros, zeros).cpu(), atol=0, rtol=0)
        black = backbone.encode_image(torch.zeros(1, 3, backbone.image_size, backbone.image_size)).cpu()
        torch.testing.assert_close(image, backbone.prepare_image_states(black), atol=0, rtol=0)
    assert compact_backbone.null_inputs().image_states.shape == (1, 49, 1280)
    assert compact_backbone_grid2.null_inputs().image_states.shape == (1, 4, 1280)  # already pooled
    assert flava_backbone.null_inputs().image_states.shape == (1, 17, 32)  # CLS + (64/16)^2 patches
    assert not hasattr(compact_backbone, "null_text") and not hasattr(compact_backbone, "null_image")


def test_prepare_pools_for_compact_and_is_the_identity_for_flava(compact_backbone, compact_backbone_grid2,
                                                                flava_backbone, real_posts):
    guids, texts, paths = real_posts
    t, m, i = compact_backbone.encode(texts[:3], paths[:3])
    feats = FeatureSet(torch.tensor(guids[:3]), t, m, i)
    pooled = compact_backbone_grid2.prepare(feats)
    assert pooled.image_states.shape == (3, 4, 1280)
    torch.testing.assert_close(pooled.image_states, pool_image_tokens(i, 2), atol=0, rtol=0)
    # token (0, 0) of 2x2 adaptive pooling of the 7x7 map averages rows 0-3, columns 0-3
    torch.testing.assert_close(pooled.image_states[:, 0], i.reshape(3, 7, 7, 1280)[:, :4, :4].mean((1, 2)))
    assert pooled.text_states is feats.text_states and pooled.text_mask is feats.text_mask
    assert pooled.guids is feats.guids and feats.image_states is i  # the input is not modified
    assert compact_backbone.prepare(feats).image_states is i  # image_grid None: all 49 tokens
    assert compact_backbone.with_image_grid(7).prepare_image_states(i) is i
    with pytest.raises(ValueError):
        compact_backbone.with_image_grid(8).prepare(feats)  # larger than the 7x7 map
    with pytest.raises(ValueError):
        compact_backbone.with_image_grid(0)

    ft, fm, fi = flava_backbone.encode(texts[:3], paths[:3])
    flava_feats = FeatureSet(torch.tensor(guids[:3]), ft, fm, fi)
    prepared = flava_backbone.prepare(flava_feats)
    assert prepared.image_states is fi and prepared.text_states is ft  # identity: CLS + 16 patches kept
    assert flava_backbone.prepare_image_states(fi) is fi


def test_to_rgb_images_composites_alpha_on_white_for_files_and_memory(real_posts, tmp_path):
    """One conversion to RGB: in-memory images go through msa_utils.data.images.to_rgb, like files."""
    rgba = Image.open(real_posts[2][0]).convert("RGBA")
    alpha = Image.new("L", rgba.size, 255)
    alpha.paste(0, (0, 0, rgba.width // 2, rgba.height))  # left half fully transparent
    rgba.putalpha(alpha)
    rgba.save(tmp_path / "rgba.png")
    from_memory, from_file = to_rgb_images([rgba, tmp_path / "rgba.png"])
    assert from_memory.mode == from_file.mode == "RGB"
    assert from_memory.tobytes() == to_rgb(rgba)[0].tobytes() == load_image(tmp_path / "rgba.png").tobytes()
    assert from_memory.getpixel((0, 0)) == (255, 255, 255)  # transparent -> white, not black or the hidden colour
    assert from_memory.tobytes() != rgba.convert("RGB").tobytes()
    rgb = Image.new("RGB", (4, 4))
    assert to_rgb_images([rgb])[0] is rgb


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
    # how states are prepared is not part of it: the cache stores the unpooled states
    grid2 = CompactBackbone(max_text_tokens=32, image_size=224, image_grid=2, text_model=text_model,
                            tokenizer=tokenizer, image_model=image_model)
    assert grid2.fingerprint() == compact_backbone.fingerprint()
    layer = nn.Linear(3, 2)
    before = add_state_dicts(Digest(), layer).hexdigest()
    with torch.no_grad():
        layer.weight[0, 0] += 1e-3
    assert add_state_dicts(Digest(), layer).hexdigest() != before


def test_load_backbone_errors(tiny_flava_dir):
    profile = get_profile("smoke", backbone="flava", flava_name_or_path=str(tiny_flava_dir), device="cpu")
    with pytest.raises(ValueError, match="image_size"):
        load_backbone(profile.replace(image_size=224))


def test_load_backbone_refuses_an_unknown_name():
    # a plain namespace: Profile itself validates names, load_backbone must refuse on its own too
    with pytest.raises(ValueError, match=r"unknown backbone 'clip'; known backbones: 'compact', 'flava'"):
        load_backbone(types.SimpleNamespace(features=types.SimpleNamespace(backbone="clip")))


def test_registry_maps_names_to_classes_and_no_module_compares_names():
    assert BACKBONES == {"flava": FlavaBackbone, "compact": CompactBackbone}
    assert tuple(BACKBONES) == BACKBONE_NAMES and tuple(CLASSIFIERS) == BACKBONE_NAMES  # config's names, no import
    assert all(cls.name == name for name, cls in BACKBONES.items())
    source = inspect.getsource(encoders_module)
    assert not re.search(r"backbone\s*[!=]=", source)
    assert not re.search(r"^\s*(from|import)\s+msa_utils\.profiles|^\s*from\s+\.profiles", source, re.M)


def test_load_backbone_from_profile(flava_backbone, tiny_flava_dir, compact_models, monkeypatch):
    assert isinstance(flava_backbone, FlavaBackbone)
    assert flava_backbone.name_or_path == str(tiny_flava_dir) and flava_backbone.max_text_tokens == 16
    text_model, tokenizer, image_model = compact_models
    monkeypatch.setattr(compact_module, "load_minilm", lambda: (text_model, tokenizer))
    monkeypatch.setattr(compact_module, "load_efficientnet_lite0", lambda: image_model)
    cpu = load_backbone(get_profile("cpu", max_text_tokens=24))
    assert isinstance(cpu, CompactBackbone)
    assert (cpu.image_grid, cpu.max_text_tokens, cpu.image_size, cpu.device.type) == (2, 24, 224, "cpu")


def test_describe_names_the_loaded_checkpoint(flava_backbone, tiny_flava_dir, compact_backbone_grid2,
                                              compact_backbone):
    assert flava_backbone.describe() == (f"FLAVA (`{tiny_flava_dir}`): frozen text and image encoders, "
                                         "pretrained multimodal encoder fine-tuned")
    assert compact_backbone_grid2.describe() == (
        "compact: MiniLM-L6 text + EfficientNet-Lite0 image encoders (frozen, from PyPI wheels), "
        "a small FLAVA-style multimodal encoder trained from scratch over 2x2 pooled image tokens")
    assert "all image tokens" in compact_backbone.describe()


def test_build_classifier(flava_backbone, compact_backbone_grid2):
    profile = get_profile("smoke", fusion_hidden=32, fusion_layers=1, fusion_heads=2, head_hidden=(16, 8),
                          dropout=0.25)
    flava = build_classifier(flava_backbone, profile)
    assert isinstance(flava, MultimodalClassifier)
    assert torch.equal(flava.text_projection.weight, flava_backbone.flava.text_to_mm_projection.weight)
    assert flava.config.hidden_size == 32 and flava.config.head_hidden == (16, 8) and flava.head[2].p == 0.25
    compact = build_classifier(compact_backbone_grid2, profile)
    config = compact.config
    assert (config.text_dim, config.image_dim, config.hidden_size, config.num_layers) == (384, 1280, 32, 1)
    assert compact.head[2].p == 0.25 and not hasattr(config, "image_grid")
