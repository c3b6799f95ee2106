"""Does bf16 training learn as fp32 training does? The ``cpu`` profile's full model, seed by seed, both ways.

For each seed, the full variant of the ``cpu`` profile is trained twice from the same initialisation,
batches and dropout stream: ``train_precision=float32`` and ``bfloat16`` (each step's forward and loss,
and the validation pass, under bf16 autocast: :func:`msa_utils.config.runtime.autocast`). Per run: the
kept epoch, epochs run, mean epoch seconds (training + validation pass), and the validation weighted
and macro F1 of the kept weights. Then, for each metric, the paired difference bf16 − fp32 (mean over
seeds) with a 95% Student-t interval over the seeds' differences: run-to-run noise only, not the noise
of the one set of validation posts both sides are scored on. The verdict "equal within noise" needs the
interval to contain 0. The test part is not read.

Usage, from the repository root, on an otherwise idle machine (the features come from the ``cpu``
profile's cache, built by notebook 04 or by this script)::

    python benchmarks/bf16_training.py [--seeds 5] [--out benchmarks/results]

Prints a Markdown table and writes ``bf16_training.csv`` (one row per seed and precision).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

from compare_runs import paired_t_interval  # benchmarks/ is on sys.path when a script in it runs
from msa_utils.config.profiles import get_profile
from msa_utils.config.runtime import set_seed
from msa_utils.experiments import dataset
from msa_utils.model import factory
from msa_utils.train.loop import fit, predict_logits
from msa_utils.train.metrics import classification_metrics

PRECISIONS = ("float32", "bfloat16")
METRICS = ("weighted_f1", "macro_f1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    cfg = get_profile("cpu")
    data = dataset.prepare(cfg).run(0, 0)  # the first cross-validation run's parts; its test fold is not read
    val, gold = data.features["val"], data.labels["val"]
    rows = []
    for seed in range(cfg.seed, cfg.seed + args.seeds):
        for precision in PRECISIONS:
            run = cfg.replace(seed=seed, train_precision=precision)
            set_seed(seed)
            model = factory.build_classifier(data.backbone, run)
            start = time.perf_counter()
            result = fit(model, data.features["train"], data.labels["train"], val, gold, run.train, seed=seed,
                         device=run.device, progress=False)
            seconds = time.perf_counter() - start
            predicted = predict_logits(model, val, device=run.device, precision=precision).argmax(1).numpy()
            scores = classification_metrics(gold, predicted)
            rows.append({"seed": seed, "precision": precision, "best_epoch": result.best_epoch,
                         "epochs_run": len(result.history), "seconds": round(seconds, 1),
                         "mean_epoch_seconds": round(float(result.history["seconds"].mean()), 2),
                         **{f"val_{m}": round(scores[m], 4) for m in METRICS}})
            print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "bf16_training.csv", index=False)

    wide = table.pivot(index="seed", columns="precision")
    print(f"\n{args.seeds} seeds, the `cpu` profile's full model, {len(gold)} validation posts\n")
    print("| | fp32 | bf16 | bf16 − fp32 (paired) | 95% t-interval, seeds |")
    print("|---|---:|---:|---:|---|")
    for metric in METRICS:
        a, b = wide[(f"val_{metric}", "bfloat16")], wide[(f"val_{metric}", "float32")]
        diff = a - b
        low, high = paired_t_interval(diff)
        print(f"| validation {metric.replace('_', ' ')} | {b.mean():.3f} ± {b.std(ddof=1):.3f} | "
              f"{a.mean():.3f} ± {a.std(ddof=1):.3f} | {diff.mean():+.3f} | [{low:+.3f}, {high:+.3f}] |")
    for column in ("mean_epoch_seconds", "epochs_run"):
        b, a = wide[(column, "float32")], wide[(column, "bfloat16")]
        print(f"| {column.replace('_', ' ')} | {b.mean():.2f} | {a.mean():.2f} | {(a - b).mean():+.2f} | |")


if __name__ == "__main__":
    main()
