"""Extraction and training sharded over 2 CPU processes (``torchrun`` + accelerate), as on 2 GPUs.

Notebooks 01 and 03 run on the ``smoke`` profile (60 labelled posts); then
``python -m msa_utils.runner.distributed`` runs once with 2 processes and once with 1. The 2-process
cache must hold the rows a single process extracts, and, without dropout, the 2-process training
must end at the weights of the 1-process training: each step is the whole batch's.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from msa_utils.features.encoders import load_backbone
from msa_utils.features.extraction import extract_features
from msa_utils.features.feature_cache import load_features
from msa_utils.data.posts import load_posts
from msa_utils.config.profiles import get_profile
from msa_utils.runner.study import run_study

pytestmark = pytest.mark.slow
SETTINGS = ["--set", "dropout=0.0", "--set", "max_epochs=2", "--set", "patience=2", "--set", "group_by_length=true"]


def launch(processes: int, results: Path, cache: Path, settings: list[str] = SETTINGS) -> str:
    env = {**os.environ, "MSA_RESULTS_DIR": str(results), "MSA_CACHE_DIR": str(cache), "OMP_NUM_THREADS": "1",
           "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes),
               "-m", "msa_utils.runner.distributed", "--profile", "smoke", *settings]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("distributed")
    results, cache = root / "results", root / "cache"
    os.environ["MSA_RESULTS_DIR"], os.environ["MSA_CACHE_DIR"] = str(results), str(cache)
    try:
        run_study("smoke", only=["01", "03"])
    finally:
        del os.environ["MSA_RESULTS_DIR"], os.environ["MSA_CACHE_DIR"]
    single = root / "results_single"
    shutil.copytree(results, single)
    two = launch(2, results, cache)
    (folder,) = [f for f in cache.iterdir() if f.name.startswith("features-compact-")]
    cached = sorted(f.name for f in cache.iterdir())
    one = launch(1, single, cache)  # finds the 2-process cache: trains only
    return root, results, single, cache, folder, cached, two, one


def test_two_processes_write_the_one_cache_a_single_process_would(study):
    _, results, _, cache, folder, cached, two, _ = study
    assert "processes: 2 (DistributedType.MULTI_CPU)" in two
    assert cached == [folder.name]  # the parts were joined and deleted
    stored = load_features(folder, folder.name.split("-")[-1]).in_memory()
    cfg = get_profile("smoke", results_dir=str(results))
    posts = load_posts(cfg.paths).set_index("guid").loc[stored.guids.numpy()]
    backbone = load_backbone(cfg)
    alone = extract_features(backbone, posts["text"].tolist(), [Path(cfg.data.data_dir) / f for f in posts["image_file"]],
                             stored.guids, progress=False, dtype=cfg.features.cache_dtype)
    assert len(stored) > 60 and torch.equal(stored.text_mask, alone.text_mask)
    assert torch.allclose(stored.text_states.float(), alone.text_states.float(), atol=1e-3)
    assert torch.allclose(stored.image_states.float(), alone.image_states.float(), atol=1e-3)


def test_two_processes_train_to_the_weights_of_one(study):
    _, results, single, _, _, _, two, one = study
    assert "processes: 1 " in one
    weights = [load_file(str(r / "checkpoints" / "distributed" / "seed0" / "model.safetensors")) for r in (results, single)]
    assert weights[0].keys() == weights[1].keys()
    moved = [name for name in weights[0] if not torch.allclose(weights[0][name], weights[1][name], atol=1e-4)]
    assert not moved, moved[:5]
    assert two.split("validation")[1] == one.split("validation")[1].replace(str(single), str(results))


def test_more_processes_than_rows_in_a_batch(study):
    root, results, *_ = study
    three = root / "results_three"
    shutil.copytree(results, three)
    out = launch(3, three, root / "cache", SETTINGS + ["--set", "batch_size=1", "--set", "max_epochs=1"])
    assert "processes: 3 (DistributedType.MULTI_CPU)" in out  # two processes have no row of any batch
