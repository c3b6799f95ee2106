"""Time the whole study (notebooks 01-07 via ``msa-study``) on a profile, as a user runs it.

    python benchmarks/time_study.py                 # cpu profile, cold: feature cache and checkpoints removed first
    python benchmarks/time_study.py --warm          # keep them (a rerun then skips finished work)
    python benchmarks/time_study.py --up-to-date    # a plain rerun: notebooks that are up to date are skipped
    python benchmarks/time_study.py --profile smoke

Prints the wall time of the whole run, the time of each notebook (from ``run_times.json``) and
the peak resident memory of the child processes, and appends one line to
``benchmarks/results/study_times.csv``.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from msa_utils import io
from msa_utils.config.profiles import get_profile


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--warm", action="store_true", help="keep the feature cache (default: time a cold run)")
    parser.add_argument("--up-to-date", action="store_true",
                        help="do not pass --force: time a plain rerun, which skips up-to-date notebooks")
    parser.add_argument("--out", default="benchmarks/results/study_times.csv")
    args = parser.parse_args()
    cfg = get_profile(args.profile)
    if not args.warm:  # cold: no cached features, no finished training to reuse
        for folder in (Path(cfg.cache_dir), cfg.paths.checkpoints):
            if folder.exists():
                shutil.rmtree(folder)
    msa_study = Path(sys.executable).with_name("msa-study")
    start = time.perf_counter()
    command = [str(msa_study), "--profile", args.profile] + ([] if args.up_to_date else ["--force"])
    done = subprocess.run(command)
    wall = time.perf_counter() - start
    peak_gib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    if done.returncode:
        print(f"msa-study failed with exit code {done.returncode}")
        return done.returncode
    # run_times.json keeps the last time of each notebook; a skipped notebook has no time this run
    per_notebook = {} if args.up_to_date else io.read_json(cfg.paths.metrics / "run_times.json")["seconds"]
    for name, seconds in per_notebook.items():
        print(f"{name:28s} {seconds:7.1f} s")
    print(f"{'whole study (wall)':28s} {wall:7.1f} s  = {wall / 60:.1f} min; peak RSS of one child {peak_gib:.1f} GiB")
    row = pd.DataFrame([{
        "date": time.strftime("%Y-%m-%d"), "profile": args.profile, "cache": "up-to-date" if args.up_to_date else "warm" if args.warm else "cold",
        "wall_s": round(wall, 1), "peak_rss_gib": round(peak_gib, 2), "cpus": os.cpu_count(),
        "machine": platform.machine(), **{k: v for k, v in per_notebook.items()},
    }])
    out = Path(args.out)
    table = pd.concat([pd.read_csv(out), row]) if out.exists() else row
    io.write_csv(out, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
