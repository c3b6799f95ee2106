"""FLAVA is loaded whole or not at all: the ``paper`` profile's loader (``load_backbone``) reads a tiny random
``FlavaForPreTraining`` checkpoint (the form of ``facebook/flava-full``: tensors prefixed ``flava.`` plus pretraining
heads) or a bare ``FlavaModel`` one with every tensor of the encoders and the fusion equal to the saved ones, and
refuses a checkpoint that lacks one of them, or holds one in another shape, naming it (offline, a few seconds)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from conftest import TINY_FLAVA_IMAGE_SIZE, TINY_FLAVA_TEXT_TOKENS, save_random_flava
from safetensors.torch import load_file, save_file

from msa_utils.config.profiles import get_profile
from msa_utils.features.encoders import load_backbone
from msa_utils.features.flava import STUDY_MODULES

WEIGHTS = "model.safetensors"


def load_paper_backbone(folder: Path):
    """The ``paper`` profile's backbone, on the CPU, from ``folder``."""
    profile = get_profile("paper", flava_name_or_path=str(folder), device="cpu",
                          max_text_tokens=TINY_FLAVA_TEXT_TOKENS, image_size=TINY_FLAVA_IMAGE_SIZE)
    return load_backbone(profile)


@pytest.fixture(scope="module")
def pretraining_dir(tmp_path_factory) -> Path:
    """A random ``FlavaForPreTraining`` (hidden 32, 2 layers, 64 px images, 16 px patches, a small image codebook)
    with the tiny FLAVA's processor, written with save_pretrained."""
    from transformers import FlavaConfig, FlavaForPreTraining

    small = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    config = FlavaConfig(
        text_config=dict(small, vocab_size=30522, max_position_embeddings=64),
        image_config=dict(small, image_size=TINY_FLAVA_IMAGE_SIZE, patch_size=16),
        multimodal_config=dict(small), hidden_size=32, projection_dim=32,
        image_codebook_config=dict(hidden_size=8, vocab_size=64, num_blocks_per_group=1),
    )
    folder = save_random_flava(tmp_path_factory.mktemp("flava_pretraining"), config, TINY_FLAVA_IMAGE_SIZE)
    torch.manual_seed(1)
    FlavaForPreTraining(config).save_pretrained(folder)  # replaces the FlavaModel's config and weights
    return folder


def edited_copy(folder: Path, destination: Path, edit) -> Path:
    """A copy of checkpoint ``folder`` at ``destination`` with ``edit(tensors)`` applied to its weights."""
    shutil.copytree(folder, destination)
    tensors = load_file(destination / WEIGHTS)
    edit(tensors)
    save_file(tensors, destination / WEIGHTS, metadata={"format": "pt"})
    return destination


def assert_study_tensors_loaded(backbone, saved: dict[str, torch.Tensor], prefix: str) -> None:
    """Every tensor of the encoders and the fusion equals the saved one (loaded, not initialised at random)."""
    state = {k: v for k, v in backbone.flava.state_dict().items() if k.split(".")[0] in STUDY_MODULES}
    assert {k.split(".")[0] for k in state} == set(STUDY_MODULES)
    assert all(torch.equal(tensor, saved[prefix + key]) for key, tensor in state.items())


def test_pretraining_checkpoint_loads_whole(pretraining_dir):
    saved = load_file(pretraining_dir / WEIGHTS)
    assert any(k.startswith("mlm_head.") for k in saved) and any(k.startswith("flava.text_model.") for k in saved)
    assert_study_tensors_loaded(load_paper_backbone(pretraining_dir), saved, "flava.")


@pytest.mark.parametrize("key", [
    "flava.text_model.encoder.layer.1.attention.attention.query.weight",  # text encoder
    "flava.image_model.embeddings.patch_embeddings.projection.weight",  # image encoder
    "flava.multimodal_model.encoder.layer.0.output.dense.bias",  # fusion: multimodal encoder
    "flava.image_to_mm_projection.weight",  # fusion: projection into it
])
def test_checkpoint_missing_a_study_tensor_is_refused(pretraining_dir, tmp_path, key):
    folder = edited_copy(pretraining_dir, tmp_path / "ckpt", lambda tensors: tensors.pop(key))
    with pytest.raises(ValueError, match="not a complete FLAVA checkpoint: 1 tensor") as error:
        load_paper_backbone(folder)
    assert key.removeprefix("flava.") in str(error.value)


def test_tensor_of_another_shape_is_refused(pretraining_dir, tmp_path):
    key = "flava.text_to_mm_projection.weight"
    folder = edited_copy(pretraining_dir, tmp_path / "ckpt",
                         lambda tensors: tensors.__setitem__(key, torch.zeros(32, 16)))
    with pytest.raises(ValueError, match="of another shape") as error:
        load_paper_backbone(folder)
    assert "text_to_mm_projection.weight (32, 16) != (32, 32)" in str(error.value)


def test_bare_flava_model_checkpoint_loads_whole(tiny_flava_dir):
    assert_study_tensors_loaded(load_paper_backbone(tiny_flava_dir), load_file(tiny_flava_dir / WEIGHTS), "")
