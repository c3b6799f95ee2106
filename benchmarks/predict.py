"""msa-predict's speed and memory: classifying new posts from a warm start, and whether memory stays flat.

"Warm": the encoders and the fold models are loaded once, before the clock starts; what is timed is
:func:`msa_utils.experiments.inference.classify_posts` on an MVSA folder of ``N`` real posts (the first
``N`` guids of the shipped release, their files linked into a temporary folder and listed in its
``test_without_label.txt``): reading, image checks, cleaning, translation (from the study's cache when
``--results`` has one; this machine has no network), encoding, the fold models and writing the files.

The fold models are the ``cpu`` profile's classifier (5 of them, as the study's 5 runs) with random
weights: the time of a forward pass does not depend on the weights' values, and this benchmark must
run without a trained study. (The test ``tests/test_predict.py`` checks the numbers on a trained one.)

Each ``N`` of ``--posts`` runs in a fresh process (so each peak is its own) that samples its
resident memory (``VmRSS``) every 5 ms: peak above the memory after loading the models [MB, 10^6
bytes]. Flat memory: the peak does not grow with ``N`` (posts are encoded ``CHUNK`` at a time).

Usage, from the repository root, on an otherwise idle machine::

    python benchmarks/predict.py [--posts 250 1000 2000] [--threads 2] [--results results]

Prints a Markdown table and writes ``benchmarks/results/predict.csv``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from msa_utils.io.tables import markdown_table  # noqa: E402

DATA = REPO / "data" / "mvsa_ecnu"
RUNS = 5


def _rss_mb() -> float:
    """This process's resident memory [MB] (``VmRSS`` of ``/proc/self/status``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024 / 1e6
    return float("nan")


def make_folder(root: Path, n: int) -> Path:
    """An MVSA folder of the first ``n`` posts of the release (files linked, all in ``test_without_label.txt``)."""
    from msa_utils.data.mvsa import LABEL_FILES, label_file_guids

    guids = [g for name in LABEL_FILES.values() for g in label_file_guids(DATA / name)][:n]
    (root / "data").mkdir(parents=True)
    for guid in guids:
        for suffix in (".txt", ".jpg"):
            if (DATA / "data" / f"{guid}{suffix}").exists():
                (root / "data" / f"{guid}{suffix}").symlink_to(DATA / "data" / f"{guid}{suffix}")
    (root / "train.txt").write_text("guid,tag\n")
    (root / "test_without_label.txt").write_text("guid,tag\n" + "".join(f"{g},null\n" for g in guids))
    return root


def measure(n: int, threads: int, results: str) -> dict:
    """One ``n`` in this process: load the encoders and ``RUNS`` random fold models, then time and watch one
    :func:`classify_posts`."""
    import torch

    from msa_utils.config.profiles import get_profile
    from msa_utils.config.runtime import set_seed
    from msa_utils.experiments.inference import TrainedModel, classify_posts
    from msa_utils.features.encoders import load_backbone
    from msa_utils.model import factory

    torch.set_num_threads(threads)
    cfg = get_profile("cpu", results_dir=results)
    t0 = time.perf_counter()
    backbone = load_backbone(cfg)
    set_seed(0)
    classifiers = [factory.build_classifier(backbone, cfg).eval() for _ in range(RUNS)]
    model = TrainedModel(cfg, "full", backbone, classifiers, [f"r0f{k}" for k in range(RUNS)], None,
                         backbone.null_inputs(), cfg.train.train_precision)
    load_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        folder = make_folder(Path(tmp) / "posts", n)
        base, peak, done = _rss_mb(), [0.0], threading.Event()

        def watch() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], _rss_mb())
                time.sleep(0.005)
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        t0 = time.perf_counter()
        result = classify_posts(model, folder, Path(tmp) / "out")
        seconds = time.perf_counter() - t0
        done.set()
        watcher.join()
    classified = int((result.predictions["tag"] != "null").sum())
    return {"posts": n, "classified": classified, "load_s": round(load_s, 1), "seconds": round(seconds, 1),
            "posts_per_s": round(n / seconds, 1), "rss_after_load_mb": round(base), "peak_above_mb": round(peak[0] - base)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--posts", type=int, nargs="+", default=[250, 1000, 2000])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--results", default=str(REPO / "results"), help="its translation cache is reused")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: measure one N, print JSON
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.threads, args.results)))
        return
    rows = []
    for n in args.posts:  # each in a fresh process: its own peak
        out = subprocess.run([sys.executable, __file__, "--one", str(n), "--threads", str(args.threads),
                              "--results", args.results], check=True, capture_output=True, text=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    (REPO / "benchmarks" / "results").mkdir(exist_ok=True)
    table.to_csv(REPO / "benchmarks" / "results" / "predict.csv", index=False)
    print(markdown_table(table, floatfmt=".1f"))


if __name__ == "__main__":
    main()
