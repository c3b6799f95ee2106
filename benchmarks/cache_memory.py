"""Memory of training from the feature cache: does it stay flat when the cache grows 20-fold?

Writes a synthetic cache (:class:`msa_utils.features.feature_cache.ShardWriter`, default shard size) with the
real cache's row shapes for ``N`` posts and for ``factor x N`` posts, one after the other, to a
temporary folder. Each is then opened in a FRESH Python process (:func:`measure_cache_memory`):
:func:`msa_utils.features.feature_cache.load_features` (shard hashes verified, shards memory-mapped), then one
pass over all posts in a random order, in batches of 32 gathered as training gathers them
(:func:`msa_utils.train.loop._batch`: rows to float32, padding trimmed), with a sum of each batch so
that the data is read. A thread samples ``/proc/self/status`` every 5 ms.

What is reported, in MB (10^6 bytes):

* **anonymous memory** (``RssAnon``: the process's own heap and tensors): at the start (after
  the imports) and its peak. This is what the cache must not inflate: with memory-mapped shards
  the token states are never copied into it; only ``guids`` and ``text_mask`` (520 bytes a post
  with 64 tokens) and one batch are.
* **resident memory** (``VmRSS``, peak = the kernel's ``VmHWM``): anonymous + file-backed pages.
  The shard pages a pass has touched stay mapped into the process and count here, but they are
  the kernel's page cache, shared and clean: under memory pressure the kernel drops them (and
  reads them again when needed) instead of running out of memory. So peak VmRSS grows with the
  cache (up to its size, if memory allows) without the process needing that memory.

The ratio big/small of the peak anonymous memory is the figure of merit (1.0: flat; 20: linear).

Usage (from the repository root, ``PYTHONPATH=.`` or the package installed)::

    python benchmarks/cache_memory.py [--posts 4511] [--factor 20] [--rows compact|flava] [--tmp DIR]

Defaults: the 4,511 posts of the study and the compact backbone's float16 rows (text 64 x 384,
image 49 x 1280: 175 kB a post), so the big cache is 90,220 posts, 15.8 GB on disk (the script
refuses to start without that much free space plus 2 GB). ``--rows flava`` (64 x 768 + 197 x 768,
401 kB a post) needs ``--posts 2000`` or so to stay under 20 GB. Prints a Markdown table and
writes ``benchmarks/results/cache_memory.csv``. About 90 s on the 2-core project machine
(writing the 15.8 GB cache: 50 s).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd
import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from msa_utils import io  # noqa: E402
from msa_utils.features.feature_cache import ShardWriter, load_features  # noqa: E402

ROWS = {"compact": ((64, 384), (49, 1280)), "flava": ((64, 768), (197, 768))}
"""Row shapes ``(text (L, Dt), image (Li, Di))`` of each backbone's cache."""
KEY = "synthetic"
MB = 1e6


def write_synthetic_cache(folder: str | Path, posts: int, rows: str = "compact", dtype: torch.dtype = torch.float16,
                          chunk: int = 1024) -> int:
    """Write a cache of ``posts`` posts with the row shapes ``ROWS[rows]`` (random states, one
    random block of ``chunk`` posts repeated; masks with 1..L real tokens; guids ``0..posts-1``).

    Returns:
        Its size on disk, in bytes.

    Raises:
        KeyError: for an unknown ``rows``.
    """
    text, image = ROWS[rows]
    generator = torch.Generator().manual_seed(0)
    text_states = torch.randn(chunk, *text, generator=generator).to(dtype)
    image_states = torch.randn(chunk, *image, generator=generator).to(dtype)
    lengths = torch.randint(1, text[0] + 1, (chunk,), generator=generator)
    mask = (torch.arange(text[0]) < lengths[:, None]).long()
    with ShardWriter(folder, KEY) as writer:
        for start in range(0, posts, chunk):
            n = min(chunk, posts - start)
            writer.append(text_states[:n], mask[:n], image_states[:n], torch.arange(start, start + n))
    return sum(f.stat().st_size for f in Path(folder).iterdir())


def _status_mb() -> dict[str, float]:
    """``RssAnon``, ``VmRSS`` and ``VmHWM`` of this process, in MB."""
    values = {}
    with open("/proc/self/status") as handle:
        for line in handle:
            name, _, rest = line.partition(":")
            if name in ("RssAnon", "VmRSS", "VmHWM"):
                values[name] = int(rest.split()[0]) * 1024 / MB
    return values


def measure_cache_memory(folder: str | Path, batch_size: int = 32, seed: int = 0, threads: int | None = 1
                         ) -> dict[str, float]:
    """Open the cache at ``folder`` in THIS process and read every post once, in batches, as
    training does; sample memory every 5 ms. Meaningful in a fresh process only (the module
    docstring; :func:`measure_in_subprocess`).

    Args:
        folder: a cache written by :func:`write_synthetic_cache`.
        batch_size: posts per batch. seed: of the random order.
        threads: ``torch.set_num_threads`` (``None``: torch's default). Memory does not depend on
            it; one thread keeps the timings sane on a machine whose cores are busy (a parallel
            copy waits for every thread at each batch).

    Returns:
        ``posts``; ``start_anon_mb`` (after the imports), ``load_anon_mb`` (after
        :func:`~msa_utils.features.feature_cache.load_features`), ``peak_anon_mb``, ``peak_vmrss_mb`` [MB];
        ``load_s`` (verifying the shards' SHA-256 included), ``pass_s`` [s].

    Raises:
        FileNotFoundError / ValueError: if ``folder`` is not a cache of key ``"synthetic"``.
    """
    from msa_utils.train.loop import _batch

    if threads is not None:
        torch.set_num_threads(threads)
    peaks = {"RssAnon": 0.0, "VmRSS": 0.0}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            now = _status_mb()
            for name in peaks:
                peaks[name] = max(peaks[name], now[name])
            time.sleep(0.005)

    start_anon = _status_mb()["RssAnon"]
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        begin = time.perf_counter()
        features = load_features(folder, KEY)
        loaded = time.perf_counter()
        load_anon = _status_mb()["RssAnon"]  # + guids and masks, copied into memory (520 bytes a post)
        order = torch.randperm(len(features), generator=torch.Generator().manual_seed(seed))
        total = 0.0
        for start in range(0, len(features), batch_size):
            text, mask, image = _batch(features, order[start:start + batch_size], None, None, torch.device("cpu"))
            total += float(text.sum()) + float(image.sum()) + float(mask.sum())
        done = time.perf_counter()
    finally:
        stop.set()
        sampler.join()
    final = _status_mb()
    return {"posts": len(features), "start_anon_mb": start_anon, "load_anon_mb": load_anon,
            "peak_anon_mb": max(peaks["RssAnon"], final["RssAnon"]),
            "peak_vmrss_mb": max(peaks["VmRSS"], final["VmHWM"]), "load_s": loaded - begin, "pass_s": done - loaded}


def measure_in_subprocess(folder: str | Path, batch_size: int = 32) -> dict[str, float]:
    """:func:`measure_cache_memory` in a fresh Python process (this script with ``--measure``).

    Raises:
        subprocess.CalledProcessError: if the measurement fails.
    """
    result = subprocess.run([sys.executable, __file__, "--measure", str(folder), "--batch-size", str(batch_size)],
                            capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def compare_cache_sizes(posts: int = 4511, factor: int = 20, rows: str = "compact", batch_size: int = 32,
                        tmp: Path | None = None) -> list[dict]:
    """Write a synthetic cache of ``posts`` and one of ``factor * posts`` posts (``rows``' shapes,
    float16) in turn, and measure each in a fresh process (:func:`measure_in_subprocess`).

    Returns:
        One dict per cache: ``rows, posts, shards, cache_mb, write_s`` and the measures of
        :func:`measure_cache_memory`.

    Raises:
        SystemExit: if the temp folder lacks the disk the big cache needs plus 2 GB.
    """
    text, image = ROWS[rows]
    row_bytes = 2 * (text[0] * text[1] + image[0] * image[1]) + 8 * (text[0] + 1)
    needed = factor * posts * row_bytes
    root = Path(tmp or tempfile.gettempdir())
    free = shutil.disk_usage(root).free
    if free < needed + 2e9:
        sys.exit(f"{root} has {free / 1e9:.1f} GB free; the big cache needs {needed / 1e9:.1f} GB + 2 GB: "
                 "use --posts, --factor or --tmp")
    out = []
    for count in (posts, factor * posts):
        with tempfile.TemporaryDirectory(dir=root, prefix="cache_memory-") as scratch:
            begin = time.perf_counter()
            size = write_synthetic_cache(Path(scratch) / "cache", count, rows)
            write_s = time.perf_counter() - begin
            shards = len(list((Path(scratch) / "cache").glob("shard-*")))
            measured = measure_in_subprocess(Path(scratch) / "cache", batch_size)
        out.append({"rows": rows, "posts": count, "shards": shards, "cache_mb": size / MB, "write_s": write_s,
                    **{k: v for k, v in measured.items() if k != "posts"}})
        print(f"{count} posts done", file=sys.stderr, flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--posts", type=int, default=4511, help="posts of the small cache")
    parser.add_argument("--factor", type=int, default=20, help="the big cache has factor x posts")
    parser.add_argument("--rows", choices=sorted(ROWS), default="compact", help="row shapes of which backbone")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--tmp", type=Path, default=None, help="where to write the caches (default: the temp dir)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "cache_memory.csv")
    parser.add_argument("--measure", type=Path, default=None, help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args()
    if args.measure is not None:
        print(json.dumps(measure_cache_memory(args.measure, args.batch_size)))
        return

    rows = compare_cache_sizes(args.posts, args.factor, args.rows, args.batch_size, args.tmp)
    table = pd.DataFrame(rows)
    small, big = table.iloc[0], table.iloc[1]
    print("| posts | shards | cache [MB] | anonymous: start / after load / peak [MB] | peak VmRSS [MB] "
          "| load [s] | pass [s] |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for _, r in table.iterrows():
        print(f"| {r.posts:,} | {r.shards} | {r.cache_mb:,.0f} | {r.start_anon_mb:,.0f} / {r.load_anon_mb:,.0f} / "
              f"{r.peak_anon_mb:,.0f} | {r.peak_vmrss_mb:,.0f} | {r.load_s:.1f} | {r.pass_s:.1f} |")
    growth = (big.peak_anon_mb - big.start_anon_mb) / (small.peak_anon_mb - small.start_anon_mb)
    print(f"\nbig/small ({args.factor}x the posts, {big.cache_mb / small.cache_mb:.1f}x the cache): peak anonymous "
          f"{big.peak_anon_mb / small.peak_anon_mb:.2f}x ({growth:.2f}x above the start), "
          f"peak VmRSS {big.peak_vmrss_mb / small.peak_vmrss_mb:.2f}x")
    io.write_csv(args.out, table.round(3))


if __name__ == "__main__":
    main()
