"""The classifier: equivalence with FlavaModel.forward, cached vs end-to-end (also for images that
need a mode repair), gradients, save/load, modality masking.

"compact" runs the compact backbone with 2 x 2 pooled image tokens (the ``cpu`` profile's design),
"flava" the tiny random FLAVA; both classifiers are built by their backbone.
"""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from msa_utils.features.extraction import extract_features
from msa_utils.features.feature_cache import load_or_extract_features
from msa_utils.data.images import to_rgb
from msa_utils.model.classifier import (ClassifierConfig, EndToEndModel, MultimodalClassifier, mask_modality,
                                        trim_text_padding)
from msa_utils.model.factory import build_classifier
from msa_utils.model.heads import build_head
from msa_utils.config.profiles import get_profile

BACKBONE_FIXTURES = {"flava": "flava_backbone", "compact": "compact_backbone_grid2"}


def backbone_and_classifier(request, which):
    return request.getfixturevalue(BACKBONE_FIXTURES[which]), request.getfixturevalue(f"{which}_classifier")


def encode_prepared(backbone, texts, paths):
    """``backbone.encode`` with the image states prepared as the classifier reads them."""
    t, m, i = backbone.encode(texts, paths)
    return t, m, backbone.prepare_image_states(i)


@pytest.fixture(scope="module")
def flava_classifier(flava_backbone):
    torch.manual_seed(0)
    return MultimodalClassifier.from_flava(flava_backbone.flava, head_hidden=(16, 8), dropout=0.3).eval()


@pytest.fixture(scope="module")
def compact_profile():
    return get_profile("smoke", fusion_hidden=32, fusion_layers=1, fusion_heads=2, head_hidden=(16, 8),
                       image_grid=2, max_text_tokens=32, image_size=224)


@pytest.fixture(scope="module")
def compact_classifier(compact_backbone_grid2, compact_profile):
    torch.manual_seed(0)
    return build_classifier(compact_backbone_grid2, compact_profile).eval()


def test_logits_equal_flava_model_forward(flava_backbone, flava_classifier, real_posts):
    """(a) head(FlavaModel(...).multimodal_embeddings[:, 0]) == our classifier's logits."""
    _, texts, paths = real_posts
    batch = flava_backbone.tokenize(texts)
    pixels = flava_backbone.preprocess_images(paths)
    with torch.no_grad():
        reference = flava_backbone.flava(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                         pixel_values=pixels)
        expected = flava_classifier.head(reference.multimodal_embeddings[:, 0])
        ours = EndToEndModel(flava_backbone, flava_classifier)(batch["input_ids"], batch["attention_mask"], pixels)
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=0)
    assert (expected - expected.mean(0)).abs().max() > 1e-2  # posts differ: the check is not vacuous
    # the test would catch feeding the post-layernorm text states (last_hidden_state) instead
    with torch.no_grad():
        text_ln = flava_backbone.flava.text_model(**batch).last_hidden_state
        wrong = flava_classifier(text_ln, batch["attention_mask"], flava_backbone.encode_image(pixels)).logits
    assert (wrong - expected).abs().max() > 1e-2


def test_from_flava_copies_pretrained_weights(flava_backbone, flava_classifier):
    flava = flava_backbone.flava
    assert torch.equal(flava_classifier.text_projection.weight, flava.text_to_mm_projection.weight)
    assert flava_classifier.text_projection.weight.data_ptr() != flava.text_to_mm_projection.weight.data_ptr()
    assert torch.equal(flava_classifier.multimodal.cls_token, flava.multimodal_model.cls_token)
    assert flava_classifier.multimodal.pooler is None
    assert flava_classifier.config.hidden_size == 32 and not hasattr(flava_classifier.config, "image_grid")
    torch.manual_seed(0)
    built = build_classifier(flava_backbone, get_profile("smoke", head_hidden=(16, 8), dropout=0.3)).eval()
    state, expected = built.state_dict(), flava_classifier.state_dict()
    assert state.keys() == expected.keys() and all(torch.equal(state[k], expected[k]) for k in state)


@pytest.mark.parametrize("which", ["flava", "compact"])
def test_cached_features_equal_end_to_end(which, request, real_posts, tmp_path):
    """(b) load_or_extract_features + the backbone's preparation + classifier == EndToEndModel.predict
    (float32 cache, read memory-mapped; prepared batch by batch as training reads it)."""
    backbone, classifier = backbone_and_classifier(request, which)
    guids, texts, paths = real_posts
    cached = load_or_extract_features(backbone, guids, texts, paths, tmp_path, dtype="float32", batch_size=4,
                                      progress=False)
    feats = cached.map_image_states(backbone.prepare_image_states).in_memory()
    with torch.no_grad():
        cached = classifier(feats.text_states, feats.text_mask, feats.image_states).logits
    end_to_end = EndToEndModel(backbone, classifier).predict(texts, paths)
    torch.testing.assert_close(cached, end_to_end, atol=1e-5, rtol=0)
    assert (end_to_end - end_to_end.mean(0)).abs().max() > 1e-3


@pytest.fixture(scope="module")
def repaired_mode_posts(real_posts, tmp_path_factory):
    """Posts 1-3 with their images re-saved as (a) an RGBA PNG whose left half is transparent
    (colours kept under alpha 0, a band at alpha 128), (b) a palette PNG whose most frequent colour
    is transparent, (c) a grayscale PNG. Returns ``(guids, texts, paths, modes)``."""
    guids, texts, paths = real_posts
    folder = tmp_path_factory.mktemp("modes")
    rgb = [Image.open(p).convert("RGB") for p in paths[:3]]

    rgba = rgb[0].convert("RGBA")
    alpha = Image.new("L", rgba.size, 255)
    alpha.paste(0, (0, 0, rgba.width // 2, rgba.height))
    alpha.paste(128, (rgba.width // 2, 0, rgba.width, rgba.height // 4))
    rgba.putalpha(alpha)
    rgba.save(folder / "a_rgba.png")

    palette = rgb[1].quantize(colors=32)
    counts = sorted(palette.getcolors(), reverse=True)  # (count, index), most frequent first
    lut = palette.getpalette()
    index = next(i for _, i in counts if tuple(lut[3 * i:3 * i + 3]) != (255, 255, 255))
    palette.save(folder / "b_palette.png", transparency=index)

    rgb[2].convert("L").save(folder / "c_gray.png")
    files = [folder / "a_rgba.png", folder / "b_palette.png", folder / "c_gray.png"]
    return guids[:3], texts[:3], files, ("RGBA", "P", "L")


@pytest.mark.parametrize("which", ["flava", "compact"])
def test_cached_path_equals_end_to_end_for_images_needing_a_mode_repair(which, request, repaired_mode_posts):
    """Files (feature cache) and the same images opened in memory (end-to-end) become the same RGB
    pixels (msa_utils.data.images.to_rgb: alpha on white), so both paths give the same logits."""
    backbone, classifier = backbone_and_classifier(request, which)
    guids, texts, files, modes = repaired_mode_posts
    in_memory = [Image.open(f) for f in files]
    assert tuple(image.mode for image in in_memory) == modes
    assert "transparency" in in_memory[1].info
    # not vacuous: a plain convert("RGB") gives other pixels for (a) and (b)
    for image in in_memory[:2]:
        assert image.convert("RGB").tobytes() != to_rgb(image)[0].tobytes()
    feats = backbone.prepare(extract_features(backbone, texts, files, guids, progress=False, dtype="float32"))
    with torch.no_grad():
        cached = classifier(feats.text_states, feats.text_mask, feats.image_states).logits
    end_to_end = EndToEndModel(backbone, classifier).predict(texts, in_memory)
    assert tuple(image.mode for image in in_memory) == modes  # the caller's images are left as they were
    assert torch.allclose(cached, end_to_end, atol=1e-5, rtol=0), (cached - end_to_end).abs().max()


def test_classifier_reads_image_tokens_as_given(compact_classifier, compact_backbone_grid2, real_posts):
    """Pooling is the backbone's: the classifier no longer pools, the end-to-end model prepares."""
    backbone = compact_backbone_grid2
    _, texts, paths = real_posts
    t, m, i = backbone.encode(texts[:2], paths[:2])
    assert i.shape == (2, 49, 1280)
    batch = backbone.tokenize(texts[:2])
    with torch.no_grad():
        unpooled = compact_classifier(t, m, i).logits
        pooled = compact_classifier(t, m, backbone.prepare_image_states(i)).logits
        end_to_end = EndToEndModel(backbone, compact_classifier)(batch["input_ids"], batch["attention_mask"],
                                                                 backbone.preprocess_images(paths[:2]))
    assert (unpooled - pooled).abs().max() > 1e-4
    torch.testing.assert_close(end_to_end, pooled, atol=1e-6, rtol=0)


@pytest.mark.parametrize("which", ["flava", "compact"])
def test_gradients_reach_trained_parts_only(which, request, real_posts):
    """(d) one backward: frozen encoders get no gradients; projections, encoder, head do."""
    backbone, classifier = backbone_and_classifier(request, which)
    _, texts, paths = real_posts
    model = EndToEndModel(backbone, classifier)
    classifier.train()
    classifier.zero_grad(set_to_none=True)
    try:
        batch = backbone.tokenize(texts[:3])
        logits = model(batch["input_ids"], batch["attention_mask"], backbone.preprocess_images(paths[:3]))
        torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2])).backward()
        for module in (backbone.text_encoder, backbone.image_encoder):
            assert all(p.grad is None and not p.requires_grad for p in module.parameters())
        for name in ("text_projection", "image_projection", "multimodal", "head"):
            params = list(getattr(classifier, name).named_parameters())
            missing = [n for n, p in params if p.grad is None]
            assert not missing, f"{name}: no gradient for {missing}"
            assert any(p.grad.abs().sum() > 0 for _, p in params), name
        assert {id(p) for p in model.parameters()} == {id(p) for p in classifier.parameters()}
    finally:
        classifier.zero_grad(set_to_none=True)
        classifier.eval()


@pytest.mark.parametrize("which", ["flava", "compact"])
def test_save_and_load_round_trip(which, request, real_posts, tmp_path):
    """(e) save_pretrained / from_pretrained give identical logits."""
    backbone, classifier = backbone_and_classifier(request, which)
    _, texts, paths = real_posts
    t, m, i = encode_prepared(backbone, texts, paths)
    classifier.save_pretrained(tmp_path / "ckpt")
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["config.json", "model.safetensors"]
    loaded = MultimodalClassifier.from_pretrained(tmp_path / "ckpt").eval()
    assert loaded.config == classifier.config
    with torch.no_grad():
        assert torch.equal(loaded(t, m, i).logits, classifier(t, m, i).logits)


def test_from_pretrained_rejects_mismatched_weights(compact_classifier, tmp_path):
    compact_classifier.save_pretrained(tmp_path)
    config = ClassifierConfig.from_dict({**compact_classifier.config.to_dict(), "hidden_size": 64})
    (tmp_path / "config.json").write_text(__import__("json").dumps(config.to_dict()))
    with pytest.raises(RuntimeError):
        MultimodalClassifier.from_pretrained(tmp_path)


@pytest.mark.parametrize("which", ["flava", "compact"])
def test_mask_modality(which, request, real_posts):
    """(f) a dropped modality no longer influences the logits."""
    backbone, classifier = backbone_and_classifier(request, which)
    _, texts, paths = real_posts
    t, m, i = encode_prepared(backbone, texts[:3], paths[:3])
    t2, m2, _ = encode_prepared(backbone, texts[3:6], paths[:3])  # other texts, same images
    _, _, i2 = encode_prepared(backbone, texts[:3], paths[3:6])  # same texts, other images
    nulls = backbone.null_inputs()
    with torch.no_grad():
        keep_a = classifier(t, m, i).logits
        keep_b = classifier(t2, m2, i).logits
        assert (keep_a - keep_b).abs().max() > 1e-3  # the text does matter when kept
        no_text_a = classifier(*mask_modality(t, m, i, "text", nulls)).logits
        no_text_b = classifier(*mask_modality(t2, m2, i, "text", nulls)).logits
        assert torch.equal(no_text_a, no_text_b)
        no_image_a = classifier(*mask_modality(t, m, i, "image", nulls)).logits
        no_image_b = classifier(*mask_modality(t, m, i2, "image", nulls)).logits
        assert torch.equal(no_image_a, no_image_b)
    states, mask, images = mask_modality(t, m, i, "text", nulls)
    assert states.shape == t.shape and not mask.any() and images is i
    assert torch.equal(states[2], nulls.text_states[0])
    texts_kept, mask_kept, images = mask_modality(t, m, i, "image", nulls)
    assert texts_kept is t and mask_kept is m and torch.equal(images[1], nulls.image_states[0])
    assert mask_modality(t, m, i, None) == (t, m, i)
    with pytest.raises(ValueError):
        mask_modality(t, m, i, "audio", nulls)
    with pytest.raises(ValueError, match="null inputs"):
        mask_modality(t, m, i, "image", None)
    zero = nulls.zero_states()  # the other reading of "zero tokens": zero states after the encoders
    states, mask, images = mask_modality(t, m, i, "text", zero)
    assert not states.any() and mask.tolist() == [[1] + [0] * (mask.shape[1] - 1)] * 3 and images is i
    _, _, images = mask_modality(t, m, i, "image", zero)
    assert images.shape == i.shape and not images.any()
    with torch.no_grad():  # the fusion attends to the one zero text token: other logits than the masked text
        assert not torch.equal(classifier(*mask_modality(t, m, i, "text", zero)).logits, no_text_a)


def test_mask_modality_rejects_unpooled_null_image(compact_backbone, compact_backbone_grid2, real_posts):
    _, texts, paths = real_posts
    t, m, i = compact_backbone.encode(texts[:2], paths[:2])
    pooled = compact_backbone_grid2.prepare_image_states(i)
    with pytest.raises(ValueError, match="pool"):
        mask_modality(t, m, pooled, "image", compact_backbone.null_inputs())  # 49 null tokens, 4 feature tokens
    out = mask_modality(t, m, pooled, "image", compact_backbone_grid2.null_inputs())
    assert out[2].shape == (2, 4, 1280)


def test_head_and_config():
    head = build_head(32, (16, 8), 0.3)
    kinds = [type(layer).__name__ for layer in head]
    assert kinds == ["Linear", "ReLU", "Dropout", "Linear", "ReLU", "Dropout", "Linear"]
    assert head[2].p == 0.3 and head[-1].out_features == 3
    config = ClassifierConfig(text_dim=384, image_dim=1280, hidden_size=64, num_heads=4)
    assert config.intermediate_size == 256
    assert ClassifierConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError):
        ClassifierConfig(text_dim=1, image_dim=1, hidden_size=30, num_heads=4)
    with pytest.raises(TypeError, match="unknown ClassifierConfig fields"):  # e.g. an older checkpoint
        ClassifierConfig.from_dict({**config.to_dict(), "image_grid": 2, "backbone": "compact"})
    model = MultimodalClassifier(config)
    with pytest.raises(ValueError):
        model(torch.zeros(2, 5, 384), torch.ones(2, 5), torch.zeros(3, 4, 1280))
    with pytest.raises(ValueError):
        model(torch.zeros(2, 5, 100), torch.ones(2, 5), torch.zeros(2, 4, 1280))
    out = model.eval()(torch.randn(2, 5, 384).half(), torch.ones(2, 5, dtype=torch.long), torch.randn(2, 4, 1280))
    assert out.logits.shape == (2, 3) and out.cls_embedding.shape == (2, 64) and out.logits.dtype == torch.float32


@pytest.mark.parametrize("which", ["flava", "compact"])
def test_trim_text_padding_keeps_logits(which, request, real_posts):
    backbone, classifier = backbone_and_classifier(request, which)
    _, texts, paths = real_posts
    t, m, i = encode_prepared(backbone, [texts[0][:20], texts[3][:12], "ok"], paths[:3])
    t_short, m_short = trim_text_padding(t, m)
    assert t_short.shape[1] == int(m.sum(1).max()) < t.shape[1]
    with torch.no_grad():
        torch.testing.assert_close(classifier(t_short, m_short, i).logits, classifier(t, m, i).logits,
                                   atol=1e-5, rtol=0)
    _, empty = trim_text_padding(t, torch.zeros_like(m))
    assert empty.shape == (3, 1)
