"""The frozen-encoder pass and training sharded over several processes with ``accelerate``.

For a post set that outgrows one GPU: one process per GPU, each encoding a slice of the posts and
training on a share of every batch. Without GPUs the same code runs as several CPU processes
(``torchrun``; ``accelerate launch`` starts CPU processes only through MPI), which is how the
tests check it. Notebooks 01 and 03 must have run for the profile (the post table and the split)::

    accelerate launch --num_processes 4 -m msa_utils.runner.distributed --profile paper   # 4 GPUs
    torchrun --nproc_per_node 2 -m msa_utils.runner.distributed --profile smoke           # 2 CPU processes

Stop a run with Ctrl-C (or by killing the launcher's process group): ``kill -9`` of the launcher
alone leaves its worker processes running (torch's launchers do not forward SIGKILL).

1. **Extraction** (:func:`extract_in_parts`): the posts are cut into one contiguous slice per
   process (``PartialState.split_between_processes``); each process encodes its slice
   (:func:`msa_utils.features.feature_cache.encode_into`) into a folder of its own, then the main process
   joins the slices into the ONE cache folder the notebooks read (a streaming copy, one shard in
   memory), so notebook 04 finds the cache and encodes nothing.
   The states equal a single process's up to float rounding (each process forms its own
   length-sorted batches, so the texts are cut at other lengths).
2. **Training** (:func:`msa_utils.train.loop.fit` with ``processes``): the full model, seed
   ``cfg.seed``; every process draws the same batches and computes its share of each, and the
   gradients are summed before each step: the step of the whole batch (with dropout, each
   process draws its own masks). The main process writes
   the classifier to ``checkpoints/distributed/seed{seed}`` and prints the validation scores.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
from pathlib import Path
from typing import Sequence

import torch

from msa_utils.features.feature_cache import encode_into, load_features, save_features
from msa_utils.features.sets import FeatureSet, LazyRows


def extract_in_parts(backbone, guids: torch.Tensor, texts: Sequence[str], image_paths: Sequence[str | os.PathLike],
                     folder: str | os.PathLike, key: str, processes, *, dtype: str, batch_size: int,
                     workers: int = 0, progress: bool = True) -> FeatureSet:
    """Encode ``N`` posts over the processes of ``processes`` and write them to the cache ``folder``.

    Process ``r`` encodes its contiguous slice into ``{folder}.part{r}``; after a barrier the main
    process joins the parts in order into ``folder`` (:func:`msa_utils.features.feature_cache.save_features` of
    the memory-mapped parts) and deletes them; after a second barrier every process reads
    ``folder``. Called by :func:`msa_utils.features.feature_cache.load_or_extract_features` with ``processes``.

    Args:
        backbone: a :class:`msa_utils.features.encoders.FrozenBackbone` on this process's device.
        guids: ``(N,)`` int64; texts, image_paths: ``N`` posts, aligned.
        folder, key: the cache folder and its key (:func:`msa_utils.features.feature_cache.feature_cache_key`).
        processes: an ``accelerate.PartialState``.
        dtype, batch_size, workers, progress: as for :func:`msa_utils.features.feature_cache.encode_into`.

    Returns:
        The joined cache, read lazily, rows in input order (the same on every process).

    Raises:
        OSError: if an image cannot be read (on the process that reads it).
    """
    folder = Path(folder)
    part = lambda rank: Path(f"{folder}.part{rank}")  # noqa: E731
    with processes.split_between_processes(list(range(len(guids)))) as mine:
        if mine:
            encode_into(part(processes.process_index), key, backbone, guids[mine], [texts[i] for i in mine],
                        [image_paths[i] for i in mine], dtype=dtype, batch_size=batch_size, workers=workers,
                        progress=progress and processes.is_main_process)
    processes.wait_for_everyone()
    if processes.is_main_process:
        parts = [load_features(part(r), key, verify=False) for r in range(processes.num_processes)
                 if part(r).is_dir()]
        save_features(join_feature_sets(parts), folder, key)
        for r in range(processes.num_processes):
            shutil.rmtree(part(r), ignore_errors=True)
    processes.wait_for_everyone()
    return load_features(folder, key, verify=False)


def join_feature_sets(parts: Sequence[FeatureSet]) -> FeatureSet:
    """The rows of ``parts`` (whole caches as :func:`msa_utils.features.feature_cache.load_features` reads them)
    one after the other, without copying token states: their memory-mapped blocks are joined.

    Raises:
        ValueError: if ``parts`` is empty, a part is a view of some rows of its cache (a subset), or
            the parts differ in dtype or row shape.
    """
    if not parts:
        raise ValueError("no feature sets to join")

    def join(columns: list[LazyRows]) -> LazyRows:
        for column in columns:
            if not isinstance(column, LazyRows) or len(column) != sum(len(b) for b in column.blocks):
                raise ValueError("join_feature_sets joins whole memory-mapped caches, not subsets or tensors")
        return LazyRows([block for column in columns for block in column.blocks])

    return FeatureSet(guids=torch.cat([p.guids for p in parts]), text_mask=torch.cat([p.text_mask for p in parts]),
                      text_states=join([p.text_states for p in parts]),
                      image_states=join([p.image_states for p in parts]))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m msa_utils.runner.distributed`` under ``torchrun`` / ``accelerate launch``.

    Returns:
        0 (the process exit status).
    """
    from accelerate import PartialState

    from msa_utils.experiments.dataset import prepare
    from msa_utils.train.metrics import classification_metrics
    from msa_utils.runner.notebook import setup
    from msa_utils.config.runtime import set_seed
    from msa_utils.runner.study import parse_overrides
    from msa_utils.train.loop import fit, predict_logits

    parser = argparse.ArgumentParser(prog="python -m msa_utils.runner.distributed", description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    cfg = setup(args.profile, parse_overrides(args.overrides), announce=False)
    on_gpu = torch.cuda.is_available() and cfg.device != "cpu"
    processes = PartialState(cpu=not on_gpu)
    if on_gpu:
        cfg = dataclasses.replace(cfg, device=str(processes.device))
    data = prepare(cfg, processes=processes)
    set_seed(cfg.seed)
    model = data.backbone.build_classifier(cfg)
    result = fit(model, data.features["train"], data.labels["train"], data.features["val"], data.labels["val"],
                 lr=cfg.lr, batch_size=cfg.batch_size, max_epochs=cfg.max_epochs, patience=cfg.patience,
                 resample=cfg.resample, class_weighted_loss=cfg.class_weighted_loss,
                 early_stopping=cfg.early_stopping, group_by_length=cfg.group_by_length, seed=cfg.seed,
                 device=cfg.device, processes=processes, progress=False)
    if processes.is_main_process:
        scores = classification_metrics(data.labels["val"], predict_logits(model, data.features["val"],
                                                                           device=cfg.device).argmax(1).numpy())
        saved = model.save_pretrained(cfg.paths.checkpoints / "distributed" / f"seed{cfg.seed}")
        print(f"processes: {processes.num_processes} ({processes.distributed_type}); {len(data.labels['train'])} "
              f"training posts; best epoch {result.best_epoch} of {len(result.history)}; validation "
              f"weighted F1 {scores['weighted_f1']:.4f}, accuracy {scores['accuracy']:.4f}; classifier in {saved}")
    processes.wait_for_everyone()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
