"""Time of the claims statistics (:mod:`msa_utils.experiments.compare`) on this machine's CPU.

A 2000-resample :func:`~msa_utils.experiments.compare.paired_bootstrap` of two variants with 3 seeds each on
800 test posts (the study's default sizes), and a :func:`~msa_utils.experiments.compare.bootstrap_mean` of
one of them, for each metric, on random labels (the time does not depend on the values).

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_compare.py [--posts 800] [--seeds 3] [--resamples 2000] [--repeats 5]

from the repository root, with the package installed (``pip install -e .``) or ``PYTHONPATH=.``.
Prints a Markdown table of the best and median of ``--repeats`` runs [ms]. Numbers vary run to
run on shared machines.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from msa_utils.experiments.compare import METRICS, bootstrap_mean, paired_bootstrap


def timed(fn, repeats: int) -> tuple[float, float]:
    """(best, median) wall time of ``repeats`` calls of ``fn`` [ms], after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(1000 * (time.perf_counter() - start))
    return min(times), statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=800)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    gold = rng.integers(0, 3, args.posts)
    pred_a = np.where(rng.random((args.seeds, args.posts)) < 0.7, gold, rng.integers(0, 3, (args.seeds, args.posts)))
    pred_b = np.where(rng.random((args.seeds, args.posts)) < 0.6, gold, rng.integers(0, 3, (args.seeds, args.posts)))

    print(f"{args.resamples} resamples, {args.seeds} seeds x {args.posts} posts, {args.repeats} repeats\n")
    print("| function | metric | best [ms] | median [ms] |")
    print("|---|---|---:|---:|")
    for metric in METRICS:
        best, median = timed(lambda: paired_bootstrap(gold, pred_a, pred_b, metric, n_resamples=args.resamples),
                             args.repeats)
        print(f"| paired_bootstrap | {metric} | {best:.0f} | {median:.0f} |")
    for metric in METRICS:
        best, median = timed(lambda: bootstrap_mean(gold, pred_a, metric, n_resamples=args.resamples), args.repeats)
        print(f"| bootstrap_mean | {metric} | {best:.0f} | {median:.0f} |")


if __name__ == "__main__":
    main()
