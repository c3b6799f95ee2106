"""Several training runs at once (profile ``parallel_runs``): worker processes, one run each at a time.

On the smoke study (real MVSA posts, the compact backbone), in fp32: the runs trained in two worker
processes of one thread each equal the same runs trained one by one in this process on one thread
(weights and logits within 1e-5, same histories and predictions), and a study killed with SIGKILL
mid-run, workers and all, resumes from the states they saved to the numbers of an uninterrupted one.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from msa_utils.config.profiles import get_profile
from msa_utils.data.posts import PostTable, build_posts, save_posts, usable
from msa_utils.data.folds import make_folds, save_folds
from msa_utils.experiments import dataset, variants
from msa_utils.io import read_tensor_metadata
from msa_utils.model.classifier import MultimodalClassifier
from msa_utils.train.loop import predict_logits

NAMES = ["full", "no_text"]

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:The least populated class:UserWarning")]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A smoke study's posts and folds in ``base/``; ``make(folder, **overrides)`` copies them to a new results folder."""
    root = tmp_path_factory.mktemp("parallel")
    cfg = get_profile("smoke", results_dir=str(root / "base"), cache_dir=str(root / "cache"))
    built = build_posts(cfg)
    labelled = built.posts[(built.posts["split"] == "train") & usable(built.posts)]
    save_posts(PostTable(built.posts, built.report), cfg.paths)
    save_folds(make_folds(labelled["guid"].to_numpy(), labelled["label"].to_numpy(int),
                          labelled["content_group"].to_numpy(), cfg.data.folds), cfg.paths.splits)
    dataset.prepare(cfg)  # the feature cache, shared by every copy

    def make(folder: str, **overrides):
        shutil.copytree(root / "base", root / folder)
        return get_profile("smoke", results_dir=str(root / folder), cache_dir=str(root / "cache"), **overrides)
    return make


def _one_thread_one_by_one(cfg, names=NAMES):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return variants.run_variants(dataset.prepare(cfg), names, progress=False)
    finally:
        torch.set_num_threads(threads)


def test_runs_trained_at_once_equal_runs_trained_one_by_one(study, monkeypatch):
    one_by_one = study("one_by_one", parallel_runs=1)
    alone = _one_thread_one_by_one(one_by_one)
    cfg = study("at_once", parallel_runs=2)
    data = dataset.prepare(cfg)

    def not_here(*args, **kwargs):
        raise AssertionError("a run was trained in the notebook's process")
    monkeypatch.setattr(variants, "_train_run", not_here)  # the workers import their own
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)  # 2 threads shared by 2 workers: 1 each
    at_once = variants.run_variants(data, NAMES, progress=False)
    monkeypatch.undo()

    for name in NAMES:
        a, b = alone[name], at_once[name]
        assert list(b.runs["seed"]) == [0, 1] and set(b.history["threads"]) == {1}
        pd.testing.assert_frame_equal(a.runs.drop(columns="mean_epoch_seconds"),
                                      b.runs.drop(columns="mean_epoch_seconds"))
        pd.testing.assert_frame_equal(a.history.drop(columns="seconds"), b.history.drop(columns="seconds"))
        pd.testing.assert_frame_equal(a.predictions, b.predictions)
        for fold in (0, 1):  # the kept weights, and their logits on the validation part
            ours, theirs = (MultimodalClassifier.from_pretrained(c.paths.checkpoints / name / f"r0f{fold}")
                            for c in (one_by_one, cfg))
            for key, value in ours.state_dict().items():
                torch.testing.assert_close(theirs.state_dict()[key], value, rtol=0, atol=1e-5)
            drop = variants.VARIANTS[name].drop
            val = data.run(0, fold).features["val"]
            logits = [predict_logits(m, val, drop=drop, nulls=data.nulls) for m in (ours, theirs)]
            assert (logits[0] - logits[1]).abs().max() <= 1e-5
    written = pd.read_csv(Path(cfg.results_dir) / "metrics" / "runs" / "no_text_history.csv")
    assert list(written["seed"].unique()) == [0, 1]  # each variant's own file, in seed order


def test_a_worker_that_loads_other_data_is_refused(study, monkeypatch):
    cfg = study("other", parallel_runs=2)
    data = dataset.prepare(cfg)
    data.labels.iloc[:] = (data.labels + 1) % 3  # changed in memory: a worker would train on the files'
    monkeypatch.setattr(variants, "_WORKER", {})  # what a new worker process starts with
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)  # this process keeps its threads
    monkeypatch.setattr(variants, "log_warnings", lambda: None)  # and its logging
    with pytest.raises(RuntimeError, match="other posts, labels or folds"):  # the worker's first task, run here
        variants._train_in_worker(cfg, 1, variants._parts(data), "no_text", 0, 0)
    assert not variants._WORKER  # nothing kept: every later task checks again


KILLABLE_STUDY = r'''
import os, signal, sys
from msa_utils.config.profiles import get_profile
from msa_utils.experiments import dataset, variants
from msa_utils.io import read_tensor_metadata

if os.environ.get("KILL_AT_EPOCH"):  # module level: the spawned workers run it too
    fit, epoch_to_kill = variants.fit, int(os.environ["KILL_AT_EPOCH"])

    def killing_fit(*args, **kwargs):
        def on_step(epoch, step):
            if epoch == epoch_to_kill and step == 1:
                os.killpg(0, signal.SIGKILL)  # this worker, the other one and the main process
        return fit(*args, **kwargs, on_step=on_step)
    variants.fit = killing_fit

if __name__ == "__main__":
    cfg = get_profile("smoke", results_dir=sys.argv[1], cache_dir=sys.argv[2], parallel_runs=2, max_epochs=3,
                      patience=3)
    variants.run_variants(dataset.prepare(cfg), ["full"], progress=False)
'''


def test_a_study_killed_with_its_workers_resumes_to_the_same_result(study, tmp_path):
    script = tmp_path / "study.py"
    script.write_text(KILLABLE_STUDY)

    def run(cfg, kill_at_epoch):
        env = {**os.environ, "KILL_AT_EPOCH": str(kill_at_epoch), "OMP_NUM_THREADS": "2"}  # 1 thread per worker
        return subprocess.run([sys.executable, str(script), cfg.results_dir, cfg.cache_dir], env=env,
                              capture_output=True, text=True, timeout=300, start_new_session=True)

    reference, killed = (study(name, max_epochs=3, patience=3) for name in ("reference", "killed"))
    _one_thread_one_by_one(reference, ["full"])  # what the workers of one thread each give (test above)
    first = run(killed, kill_at_epoch=2)
    assert first.returncode == -signal.SIGKILL, first.stderr[-2000:]
    assert not (killed.paths.metrics / "runs" / "full.csv").exists()
    saved = {int(path.name[3]): json.loads(read_tensor_metadata(path)["progress"])["history"]  # seed -> epochs done
             for path in (killed.paths.checkpoints / "full").glob("r0f*_training_state.safetensors")}
    assert any(saved.values()), "no run had finished an epoch"
    _one_thread_one_by_one(killed, ["full"])  # resumed here: the same runs, on one thread as in a worker
    history = pd.read_csv(killed.paths.metrics / "runs" / "full_history.csv")
    for seed, epochs in saved.items():  # resumed, not redone: the epochs done before the kill kept their times
        kept = history[history["seed"] == seed].head(len(epochs))
        assert kept["seconds"].tolist() == pytest.approx([round(e["seconds"], 6) for e in epochs], abs=1e-6)
    metrics = [c.paths.metrics / "runs" for c in (reference, killed)]
    pd.testing.assert_frame_equal(*(pd.read_csv(m / "full_history.csv").drop(columns="seconds") for m in metrics))
    predictions = [c.paths.predictions / "runs" / "full.csv" for c in (reference, killed)]
    pd.testing.assert_frame_equal(*(pd.read_csv(p) for p in predictions))
