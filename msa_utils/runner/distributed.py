"""The frozen-encoder pass and training sharded over several processes with ``accelerate``.

One process per GPU, or CPU processes under ``torchrun`` (the tests), after notebooks 01 and 03; what each does:
docs/running.md. It trains the first cross-validation run (repeat 0, fold 0); the main process writes
``checkpoints/distributed/seed{seed}`` and prints the validation scores.
Stop it with Ctrl-C or by killing the launcher's process group: torch's launchers do not forward SIGKILL to workers."""

import argparse
from typing import Sequence

import torch
from accelerate import Accelerator

from msa_utils.config.runtime import set_seed
from msa_utils.experiments.dataset import prepare
from msa_utils.model.factory import build_classifier
from msa_utils.runner.cli import parse_overrides
from msa_utils.runner.notebook import setup
from msa_utils.train.loop import fit, predict_logits
from msa_utils.train.metrics import classification_metrics


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m msa_utils.runner.distributed`` under ``torchrun`` / ``accelerate launch``; returns 0."""
    parser = argparse.ArgumentParser(prog="python -m msa_utils.runner.distributed", description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    cfg = setup(args.profile, parse_overrides(args.overrides), announce=False)
    on_gpu = torch.cuda.is_available() and cfg.device != "cpu"
    accelerator = Accelerator(cpu=not on_gpu)
    if on_gpu:
        cfg = cfg.replace(device=str(accelerator.device))
    data = prepare(cfg, processes=accelerator).run(0, 0)
    set_seed(data.seed)
    model = build_classifier(data.backbone, cfg)
    result = fit(model, data.features["train"], data.labels["train"], data.features["val"], data.labels["val"],
                 cfg.train, seed=data.seed, device=cfg.device, accelerator=accelerator, progress=False)
    if accelerator.is_main_process:
        logits = predict_logits(model, data.features["val"], device=cfg.device, precision=cfg.train.train_precision)
        scores = classification_metrics(data.labels["val"], logits.argmax(1).numpy())
        saved = model.save_pretrained(cfg.paths.checkpoints / "distributed" / f"seed{data.seed}")
        print(f"processes: {accelerator.num_processes} ({accelerator.distributed_type}); {len(data.labels['train'])} "
              f"training posts; best epoch {result.best_epoch} of {len(result.history)}; validation "
              f"weighted F1 {scores['weighted_f1']:.4f}, accuracy {scores['accuracy']:.4f}; classifier in {saved}")
    accelerator.wait_for_everyone()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
