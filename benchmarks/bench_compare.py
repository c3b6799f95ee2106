"""Coverage of the claims statistics' interval (:func:`msa_utils.experiments.compare.corrected_t`) in simulated studies.

Each simulated study draws N posts from a population; per post the difference of two 0/1 correctness indicators
(A right and B wrong on ``(disagree + delta) / 2`` of the posts, the reverse on ``(disagree - delta) / 2``: true
difference ``delta``). Each of ``--repeats`` repeats is a fresh random partition into K folds; run j's score
difference = the mean over its test fold + seed noise N(0, run_sd²) + a training-set effect, the mean of per-post
influences w_i ~ N(0, tau²) over the posts its model learnt from (tau such that the effect's sd is ``--train-sd``):
all posts of the other folds ("overlap", runs share (K−2)/(K−1) of them) or the share kept after a validation part
of ``--val`` drawn afresh per run ("fresh"). Prints, per design, the share of studies whose 95% interval covers
delta, for the ratio n_test / n_fit (n_fit the fitted part), 1/(K−1) (Bouckaert & Frank), and the plain t.
``tests/test_compare.py`` runs :func:`simulate` itself (2,000 studies, seed 0) and asserts the coverage.

Usage, from the repository root, with the package installed (``pip install -e .``) or ``PYTHONPATH=.``::

    python benchmarks/bench_compare.py [--studies 16000] [--repeats 1 2] [--train-sd 0.01] [--run-sd 0.01]
"""

from __future__ import annotations

import argparse
import math

import numpy as np
from scipy import stats

from msa_utils.experiments.compare import corrected_t


def simulate(rng, studies, repeats, fresh, n_posts, k, val, delta, disagree, run_sd, train_sd) -> np.ndarray:
    """(studies, repeats·k) per-run differences A − B."""
    n_test = n_posts // k
    n_model = round((n_posts - n_test) * (1 - val)) if fresh else n_posts - n_test
    u = rng.random((studies, n_posts))
    d = (u < (disagree + delta) / 2).astype(float) - ((u >= (disagree + delta) / 2) & (u < disagree))
    w = rng.normal(0.0, train_sd * math.sqrt(n_model), (studies, n_posts))
    runs = []
    for _ in range(repeats):
        fold = rng.permuted(np.broadcast_to(np.arange(n_posts) % k, (studies, n_posts)), axis=1)
        for j in range(k):
            test = fold == j
            model = ~test & (rng.random((studies, n_posts)) >= val) if fresh else ~test
            effect = np.einsum("ij,ij->i", w, model) / model.sum(1)
            runs.append(np.einsum("ij,ij->i", d, test) / n_test + effect + rng.normal(0.0, run_sd, studies))
    return np.stack(runs, axis=1)


def coverage(diffs: np.ndarray, ratio: float, delta: float) -> float:
    """Share of rows whose 95% :func:`corrected_t` interval contains ``delta`` (ratio 0: the plain t)."""
    if ratio == 0:
        return float(np.mean(stats.ttest_1samp(diffs, delta, axis=1).pvalue >= 0.05))
    return float(np.mean([(ci := corrected_t(row, ratio)).low <= delta <= ci.high for row in diffs]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=16000)
    parser.add_argument("--repeats", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--posts", type=int, default=4000)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--val", type=float, default=0.2)
    parser.add_argument("--delta", type=float, default=0.02)
    parser.add_argument("--disagree", type=float, default=0.2)
    parser.add_argument("--run-sd", type=float, default=0.01)
    parser.add_argument("--train-sd", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    n_test = args.posts // args.folds
    ratios = {"n_test/n_fit": n_test / round((args.posts - n_test) * (1 - args.val)), "1/(K-1)": 1 / (args.folds - 1),
              "plain t": 0.0}
    print(f"{args.studies} studies, {args.posts} posts, {args.folds} folds, run sd {args.run_sd}, "
          f"training-set sd {args.train_sd}\n")
    print("| design | J | " + " | ".join(ratios) + " |")
    print("|---|---:|" + "---:|" * len(ratios))
    rng = np.random.default_rng(args.seed)
    for fresh in (False, True):
        for repeats in args.repeats:
            diffs = np.concatenate([simulate(rng, min(2000, args.studies - done), repeats, fresh, args.posts,
                                             args.folds, args.val, args.delta, args.disagree, args.run_sd,
                                             args.train_sd) for done in range(0, args.studies, 2000)])
            cells = " | ".join(f"{coverage(diffs, r, args.delta):.3f}" for r in ratios.values())
            print(f"| {'fresh' if fresh else 'overlap'} | {repeats * args.folds} | {cells} |", flush=True)


if __name__ == "__main__":
    main()
