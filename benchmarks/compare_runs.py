"""Did a change of the code move the study's validation scores? Two results folders, variant by variant.

For every variant in both folders' ``metrics/runs/<variant>.csv`` (one row per seed), prints the
validation weighted F1 before and after (mean ± std over the seeds) and the seed-paired
difference after − before with a 95% t-interval (``scipy``-free: Student's t quantiles for up to
9 degrees of freedom are tabulated). A difference whose interval contains 0 is "within noise".
Only validation scores are compared: a change is judged on validation, never on the test part.

Usage, e.g. the committed results before and after a commit::

    mkdir -p /tmp/before && git archive <commit> results/metrics | tar -x -C /tmp/before
    python benchmarks/compare_runs.py /tmp/before/results results
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pandas as pd

T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}
"""Two-sided 95% quantiles of Student's t by degrees of freedom."""


def paired_t_interval(differences) -> tuple[float, float]:
    """95% Student-t interval of the mean of 2-10 seed-paired differences (NaN ends otherwise)."""
    diff = pd.Series(differences, dtype=float)
    n = len(diff)
    half = T_975[n - 1] * diff.std(ddof=1) / math.sqrt(n) if 2 <= n <= 10 else float("nan")
    return diff.mean() - half, diff.mean() + half


def compare(before: Path, after: Path, metric: str = "val_weighted_f1") -> pd.DataFrame:
    """One row per variant present in both folders: before / after mean and std, the paired
    difference's mean and 95% t-interval, and the verdict.

    Raises:
        FileNotFoundError: if a folder has no ``metrics/runs``.
    """
    rows = []
    for path in sorted((before / "metrics" / "runs").glob("*.csv")):
        if path.stem.endswith("_history") or not (after / "metrics" / "runs" / path.name).is_file():
            continue
        old = pd.read_csv(path).set_index("seed")[metric]
        new = pd.read_csv(after / "metrics" / "runs" / path.name).set_index("seed")[metric]
        seeds = old.index.intersection(new.index)
        diff = new[seeds] - old[seeds]
        n = len(seeds)
        low, high = paired_t_interval(diff)
        rows.append({"variant": path.stem, "seeds": n, "before": f"{old[seeds].mean():.3f} ± {old[seeds].std():.3f}",
                     "after": f"{new[seeds].mean():.3f} ± {new[seeds].std():.3f}",
                     "difference": round(diff.mean(), 3), "low": round(low, 3), "high": round(high, 3),
                     "verdict": "within noise" if low <= 0 <= high else ("higher" if low > 0 else "lower")})
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--metric", default="val_weighted_f1")
    args = parser.parse_args()
    table = compare(args.before, args.after, args.metric)
    print(f"| variant | seeds | before {args.metric} | after | difference [95% t-interval] | verdict |")
    print("|---|---:|---|---|---|---|")
    for r in table.itertuples():
        print(f"| {r.variant} | {r.seeds} | {r.before} | {r.after} | {r.difference:+.3f} [{r.low:+.3f}, {r.high:+.3f}] "
              f"| {r.verdict} |")


if __name__ == "__main__":
    main()
