"""The classifier heads the paper compared (msa_utils.model.heads.HEADS) and the frozen-fusion switch.

Most tests run a tiny compact classifier (the ``smoke`` profile's sizes) on random token states;
the build_classifier tests use the compact backbone (2 x 2 image tokens) and the tiny random FLAVA
of tests/conftest.py.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from PIL import Image

from msa_utils.config.profiles import HEAD_NAMES, get_profile
from msa_utils.model.classifier import FUSION_MODULES, ClassifierConfig, EndToEndModel, MultimodalClassifier
from msa_utils.model.factory import build_classifier, compact_classifier
from msa_utils.model.heads import HEADS, AttentionPool, ModalitySumPool, TokenAttentionPool, masked_softmax

TEXT_DIM, IMAGE_DIM, NUM_IMAGE = 12, 10, 4
HIDDEN = 32  # the smoke profile's fusion_hidden
MLP_KEYS = ["head.0.weight", "head.0.bias", "head.3.weight", "head.3.bias", "head.6.weight", "head.6.bias"]
"""The head's state-dict keys of a classifier built before there was a choice of heads."""
POOLS = {"mlp": type(None), "linear": type(None), "token_attention": TokenAttentionPool,
         "modality_sum": ModalitySumPool, "attention": AttentionPool}
ZERO_GRAD_BY_DESIGN = ("score.bias",)
"""A bias added to every softmax score shifts them all alike: the softmax, hence the loss, does
not depend on it, so its gradient is exactly zero (``pool.score.bias``, ``pool.text_score.bias``...)."""


def build(head: str, seed: int = 0, **overrides) -> MultimodalClassifier:
    """A smoke-sized compact classifier with ``head`` (hidden 32, 1 layer, 2 heads, MLP (16, 8))."""
    torch.manual_seed(seed)
    return compact_classifier(TEXT_DIM, IMAGE_DIM, get_profile("smoke", head=head, **overrides))


def random_batch(seed: int = 1):
    """``(text_states (3, 5, Dt), text_mask (3, 5), image_states (3, 4, Di))``: posts with 3, 5 and
    1 real text tokens."""
    generator = torch.Generator().manual_seed(seed)
    text = torch.randn(3, 5, TEXT_DIM, generator=generator)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]])
    image = torch.randn(3, NUM_IMAGE, IMAGE_DIM, generator=generator)
    return text, mask, image


def test_the_head_registry_holds_exactly_the_names_profiles_accept():
    assert tuple(HEADS) == HEAD_NAMES  # config keeps the names (it imports no model), the registry the builders


def head_parameters(model: MultimodalClassifier) -> dict[str, torch.nn.Parameter]:
    """The parameters on top of the fusion part (``head.*`` and ``pool.*``)."""
    return {n: p for n, p in model.named_parameters() if not n.startswith(tuple(f"{m}." for m in FUSION_MODULES))}


@pytest.mark.parametrize("head", HEAD_NAMES)
def test_every_head_gives_finite_logits_and_gradients(head):
    model = build(head).train()
    assert model.config.head == head and isinstance(model.pool, POOLS[head])
    text, mask, image = random_batch()
    out = model(text, mask, image)
    assert out.logits.shape == (3, 3) and torch.isfinite(out.logits).all()
    assert out.cls_embedding.shape == (3, HIDDEN)
    torch.nn.functional.cross_entropy(out.logits, torch.tensor([0, 1, 2])).backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
        if name.startswith(("head.", "pool.")) and not name.endswith(ZERO_GRAD_BY_DESIGN):
            assert parameter.grad.abs().sum() > 0, name
    assert set(head_parameters(model)) >= {n for n, _ in model.head.named_parameters(prefix="head")}
    for name in FUSION_MODULES:  # train_fusion (the default): the fusion part learns too
        assert any(p.grad.abs().sum() > 0 for p in getattr(model, name).parameters()), name


def test_head_shapes_and_cls_embedding():
    """The fusion part draws the same random numbers whatever the head, so the CLS token (the
    output's ``cls_embedding``) is the same; each head's input has the documented width."""
    text, mask, image = random_batch()
    widths = {"mlp": HIDDEN, "linear": HIDDEN, "token_attention": HIDDEN, "modality_sum": 3 * HIDDEN,
              "attention": HIDDEN}
    reference = None
    for head in HEAD_NAMES:
        model = build(head).eval()
        with torch.no_grad():
            out = model(text, mask, image)
        first_linear = next(m for m in model.head.modules() if isinstance(m, torch.nn.Linear))
        assert first_linear.in_features == widths[head], head
        reference = out.cls_embedding if reference is None else reference
        torch.testing.assert_close(out.cls_embedding, reference, atol=0, rtol=0)
    assert [type(layer).__name__ for layer in build("linear").head] == ["Dropout", "Linear"]
    assert build("linear").head[0].p == get_profile("smoke").model.dropout
    attention = build("attention")
    assert attention.pool.attention.num_heads == attention.config.num_heads == 2
    assert attention.pool.attention.batch_first and isinstance(attention.head, torch.nn.Linear)


@pytest.mark.parametrize("head", HEAD_NAMES)
def test_logits_do_not_depend_on_text_padding(head):
    """Padding (mask 0) with any states, at the end or in place of the existing padding, leaves the
    logits unchanged: every head masks it."""
    model = build(head).eval()
    text, mask, image = random_batch()
    generator = torch.Generator().manual_seed(7)
    extra = torch.randn(3, 4, TEXT_DIM, generator=generator) * 3
    longer_text = torch.cat([text, extra], dim=1)
    longer_mask = torch.cat([mask, torch.zeros(3, 4, dtype=mask.dtype)], dim=1)
    repadded = torch.where(mask.bool().unsqueeze(-1), text, torch.randn(text.shape, generator=generator))
    with torch.no_grad():
        logits = model(text, mask, image).logits
        torch.testing.assert_close(model(longer_text, longer_mask, image).logits, logits, atol=1e-5, rtol=0)
        torch.testing.assert_close(model(repadded, mask, image).logits, logits, atol=1e-5, rtol=0)
        torch.testing.assert_close(model(longer_text, longer_mask.float(), image).logits, logits, atol=1e-5, rtol=0)
        # not vacuous: the same extra positions, unmasked, do change the logits
        unmasked = model(longer_text, torch.ones_like(longer_mask), image).logits
    assert (unmasked - logits).abs().max() > 1e-4


@pytest.mark.parametrize("head", HEAD_NAMES)
def test_post_without_any_text_token(head):
    """A post with no real text token (the "without text" ablation) gives finite logits and finite
    gradients, and its text states do not matter."""
    model = build(head).train()
    text, mask, image = random_batch()
    mask[1] = 0
    out = model(text, mask, image)
    assert torch.isfinite(out.logits).all()
    out.logits.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    model.eval()
    with torch.no_grad():
        other_text = text.clone()
        other_text[1] = torch.randn(5, TEXT_DIM)
        torch.testing.assert_close(model(other_text, mask, image).logits, model(text, mask, image).logits,
                                   atol=1e-5, rtol=0)


def test_modality_sum_without_text_is_zero():
    """modality_sum's text part is the zero vector for a post without text; its image part is a
    convex combination of the image tokens."""
    torch.manual_seed(0)
    pool = ModalitySumPool(HIDDEN)
    cls, text, image = torch.randn(2, HIDDEN), torch.randn(2, 5, HIDDEN), torch.randn(2, 3, HIDDEN)
    mask = torch.tensor([[1, 1, 0, 0, 0], [0, 0, 0, 0, 0]])
    out = pool(cls, text, mask, image)
    assert out.shape == (2, 3 * HIDDEN)
    assert torch.equal(out[:, :HIDDEN], cls)
    assert torch.equal(out[1, HIDDEN:2 * HIDDEN], torch.zeros(HIDDEN))
    assert (out[0, HIDDEN:2 * HIDDEN]).abs().max() > 0
    weights = torch.softmax(pool.image_score(image).squeeze(-1), dim=-1)
    torch.testing.assert_close(out[:, 2 * HIDDEN:], (weights.unsqueeze(-1) * image).sum(1))


def test_masked_softmax():
    scores = torch.tensor([[1.0, 2.0, 50.0], [3.0, -1.0, 0.5]], requires_grad=True)
    mask = torch.tensor([[1, 1, 0], [0, 0, 0]])
    weights = masked_softmax(scores, mask)
    torch.testing.assert_close(weights[0, :2], torch.softmax(torch.tensor([1.0, 2.0]), dim=0))
    assert weights[0, 2] == 0 and torch.equal(weights[1], torch.zeros(3))
    (weights * torch.arange(3.0)).sum().backward()
    assert torch.isfinite(scores.grad).all() and torch.equal(scores.grad[1], torch.zeros(3))


@pytest.mark.parametrize("head", HEAD_NAMES)
def test_save_and_load_round_trip(head, tmp_path):
    model = build(head).eval()
    text, mask, image = random_batch()
    model.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["head"] == head
    loaded = MultimodalClassifier.from_pretrained(tmp_path).eval()
    assert loaded.config == model.config and isinstance(loaded.pool, POOLS[head])
    with torch.no_grad():
        assert torch.equal(loaded(text, mask, image).logits, model(text, mask, image).logits)


def test_config_written_before_heads_loads_as_mlp(tmp_path):
    model = build("mlp").eval()
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    del config["head"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    loaded = MultimodalClassifier.from_pretrained(tmp_path).eval()
    assert loaded.config.head == "mlp" and loaded.pool is None
    text, mask, image = random_batch()
    with torch.no_grad():
        assert torch.equal(loaded(text, mask, image).logits, model(text, mask, image).logits)


def test_unknown_head_is_rejected(flava_backbone):
    with pytest.raises(ValueError, match="head"):
        ClassifierConfig(text_dim=4, image_dim=4, hidden_size=8, num_heads=2, head="cnn")
    with pytest.raises(ValueError, match="head"):
        ClassifierConfig.from_dict({**build("mlp").config.to_dict(), "head": "MLP"})
    with pytest.raises(ValueError, match="head"):
        MultimodalClassifier.from_flava(flava_backbone.flava, head_hidden=(16, 8), head="cnn")


def test_mlp_state_dict_keys_are_unchanged():
    """Checkpoints written before the choice of heads existed must still load."""
    model = build("mlp")
    keys = list(model.state_dict())
    assert [k for k in keys if not k.startswith(tuple(f"{m}." for m in FUSION_MODULES))] == MLP_KEYS
    assert keys[-len(MLP_KEYS):] == MLP_KEYS


@pytest.mark.parametrize("head", HEAD_NAMES)
def test_freeze_fusion_trains_the_head_only(head):
    model = build(head)
    assert model.freeze_fusion() is model
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == set(head_parameters(model)) and trainable
    assert all(n.startswith(("head.", "pool.")) for n in trainable)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    text, mask, image = random_batch()
    torch.nn.functional.cross_entropy(model(text, mask, image).logits, torch.tensor([0, 1, 2])).backward()
    optimizer.step()
    for name, parameter in model.named_parameters():
        if name in trainable:
            if not name.endswith(ZERO_GRAD_BY_DESIGN):
                assert not torch.equal(parameter, before[name]), f"{name} did not change"
        else:
            assert parameter.grad is None and torch.equal(parameter, before[name]), f"{name} changed"


@pytest.mark.parametrize("head", ["token_attention", "attention"])
def test_compact_build_classifier_honours_head_and_train_fusion(head, compact_backbone_grid2):
    profile = get_profile("smoke", head=head, fusion_hidden=32, fusion_layers=1, fusion_heads=2, head_hidden=(16, 8))
    torch.manual_seed(0)
    trained = build_classifier(compact_backbone_grid2, profile)
    torch.manual_seed(0)
    frozen = build_classifier(compact_backbone_grid2, profile.replace(train_fusion=False))
    for model in (trained, frozen):
        assert model.config.head == head and isinstance(model.pool, POOLS[head])
        assert (model.config.text_dim, model.config.image_dim) == (384, 1280)
    assert all(p.requires_grad for p in trained.parameters())
    assert {n for n, p in frozen.named_parameters() if p.requires_grad} == set(head_parameters(frozen))
    # frozen at its random initialisation: the same weights as the trainable one of the same seed
    trained_state, frozen_state = trained.state_dict(), frozen.state_dict()
    assert trained_state.keys() == frozen_state.keys()
    assert all(torch.equal(trained_state[k], frozen_state[k]) for k in trained_state)


@pytest.fixture(scope="module")
def synthetic_posts():
    """Three texts (one empty) and three random 64 px RGB images."""
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)) for _ in range(3)]
    return ["what a wonderful day", "the worst film I have seen this year, and it went on and on", ""], images


@pytest.mark.parametrize("head", ["token_attention", "attention"])
def test_flava_build_classifier_frozen_is_the_pretrained_encoder(head, flava_backbone, synthetic_posts):
    """train_fusion=False keeps FLAVA's pretrained projections and multimodal encoder (copies, equal
    weights, frozen) under a trainable head that reads FlavaModel's own multimodal tokens."""
    flava = flava_backbone.flava
    flags = {n: p.requires_grad for n, p in flava.named_parameters()}
    torch.manual_seed(0)
    model = build_classifier(flava_backbone, get_profile("smoke", head=head, head_hidden=(16, 8), train_fusion=False))
    assert model.config.head == head and isinstance(model.pool, POOLS[head])
    pretrained = {k: v for k, v in flava.multimodal_model.state_dict().items() if not k.startswith("pooler.")}
    ours = model.multimodal.state_dict()
    assert ours.keys() == pretrained.keys() and all(torch.equal(ours[k], pretrained[k]) for k in ours)
    for name, source in (("text_projection", flava.text_to_mm_projection), ("image_projection", flava.image_to_mm_projection)):
        assert torch.equal(getattr(model, name).weight, source.weight)
    assert {n for n, p in model.named_parameters() if p.requires_grad} == set(head_parameters(model))
    assert {n: p.requires_grad for n, p in flava.named_parameters()} == flags  # freezing the copies only
    assert model.multimodal.config.hidden_dropout_prob == 0.0  # frozen and deterministic
    # the head reads exactly FlavaModel.forward's multimodal tokens and mask
    texts, images = synthetic_posts
    batch = flava_backbone.tokenize(texts)
    pixels = flava_backbone.preprocess_images(images)
    model.eval()
    with torch.no_grad():
        reference = flava(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], pixel_values=pixels)
        states = reference.multimodal_embeddings
        num_image = states.shape[1] - batch["attention_mask"].shape[1] - 1
        mask = torch.cat([torch.ones(3, num_image + 1), batch["attention_mask"]], dim=1)
        expected = model.head(model.pool(states, mask))
        ours = EndToEndModel(flava_backbone, model)(batch["input_ids"], batch["attention_mask"], pixels)
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=0)
    assert (expected - expected.mean(0)).abs().max() > 1e-3
