"""The frozen-encoder pass and training sharded over several processes with ``accelerate``.

For a post set that outgrows one GPU: one process per GPU, each encoding a slice of the posts and
training on a share of every batch. Without GPUs the same code runs as several CPU processes
(``torchrun``; ``accelerate launch`` starts CPU processes only through MPI), which is how the
tests check it. Notebooks 01 and 03 must have run for the profile (the post table and the split)::

    accelerate launch --num_processes 4 -m msa_utils.runner.distributed --profile paper   # 4 GPUs
    torchrun --nproc_per_node 2 -m msa_utils.runner.distributed --profile smoke           # 2 CPU processes

Stop a run with Ctrl-C (or by killing the launcher's process group): ``kill -9`` of the launcher
alone leaves its worker processes running (torch's launchers do not forward SIGKILL).

1. **Extraction** (:func:`msa_utils.features.feature_cache.extract_in_parts`): each process encodes
   a contiguous slice of the posts; the main process joins the slices into the ONE cache folder the
   notebooks read, so notebook 04 encodes nothing. The states equal a single process's up to float
   rounding (each process forms its own length-sorted batches, so texts are cut at other lengths).
2. **Training** (:func:`msa_utils.train.loop.fit` with the ``Accelerator``): the full model, seed
   ``cfg.seed``, wrapped in DDP; every process draws the same batches and computes its share of
   each, so each step is the whole batch's (with dropout, each process draws its own masks). The
   main process writes the classifier to ``checkpoints/distributed/seed{seed}`` and prints the
   validation scores.
"""

from __future__ import annotations

import argparse
from typing import Sequence

import torch
from accelerate import Accelerator

from msa_utils.config.runtime import set_seed
from msa_utils.experiments.dataset import prepare
from msa_utils.model.factory import build_classifier
from msa_utils.runner.notebook import setup
from msa_utils.runner.study import parse_overrides
from msa_utils.train.loop import fit, predict_logits
from msa_utils.train.metrics import classification_metrics


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m msa_utils.runner.distributed`` under ``torchrun`` / ``accelerate launch``;
    returns the exit status 0."""
    parser = argparse.ArgumentParser(prog="python -m msa_utils.runner.distributed", description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    cfg = setup(args.profile, parse_overrides(args.overrides), announce=False)
    on_gpu = torch.cuda.is_available() and cfg.device != "cpu"
    accelerator = Accelerator(cpu=not on_gpu)
    if on_gpu:
        cfg = cfg.replace(device=str(accelerator.device))
    data = prepare(cfg, processes=accelerator)
    set_seed(cfg.seed)
    model = build_classifier(data.backbone, cfg)
    result = fit(model, data.features["train"], data.labels["train"], data.features["val"], data.labels["val"],
                 cfg.train, seed=cfg.seed, device=cfg.device, accelerator=accelerator, progress=False)
    if accelerator.is_main_process:
        scores = classification_metrics(data.labels["val"], predict_logits(model, data.features["val"],
                                                                           device=cfg.device).argmax(1).numpy())
        saved = model.save_pretrained(cfg.paths.checkpoints / "distributed" / f"seed{cfg.seed}")
        print(f"processes: {accelerator.num_processes} ({accelerator.distributed_type}); {len(data.labels['train'])} "
              f"training posts; best epoch {result.best_epoch} of {len(result.history)}; validation "
              f"weighted F1 {scores['weighted_f1']:.4f}, accuracy {scores['accuracy']:.4f}; classifier in {saved}")
    accelerator.wait_for_everyone()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
