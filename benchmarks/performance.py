"""Where the time goes, side by side with what the machine can do: one run, one table.

On a sample of ``--posts`` real MVSA posts with the ``cpu`` profile's compact backbone:

* **the machine's limit:** ``torch.matmul`` of two square ``--matmul-size`` matrices, fp32 and
  bf16, GFLOP/s (the best of 5 after a warm-up; a product costs 2 n³ FLOPs);
* **image decoding alone:** :func:`msa_utils.data.images.load_image` of every post, posts/s;
* **the frozen encoders, in fp32 and in bf16 autocast** (the ``precision`` field): the text and
  the image encoder, each timed over the batches the study forms (similar text lengths, each cut
  to its longest text), with their FLOPs counted over the same batches by
  ``torch.utils.flop_counter.FlopCounterMode`` (not estimated by hand): posts/s, achieved GFLOP/s
  and its share of the fp32 and bf16 limits; the whole :func:`msa_utils.features.extraction.extract_features` pass
  as the study runs it (decoding + preprocessing + both encoders); the relative error of the
  bf16 states against the fp32 ones (the tolerance);
* **training:** one epoch of the profile's classifier from the cached features
  (:func:`msa_utils.train.loop.fit` on the sample, validation on one batch) in the drawn order,
  grouped by text length (the study's) and grouped with ``train_precision=bfloat16``, FLOPs (forward and
  backward) counted the same way; and one epoch end-to-end through the profile's frozen encoders
  (:class:`msa_utils.model.classifier.EndToEndModel`: the same classifier, posts and batch size), and the
  ratio;
* **what else might pay** (issue 18): two runs at once in two processes of one thread each, fp32
  and bf16 (aggregate posts/s, against one process of two threads running them one after the
  other); three runs as one batched model (``torch.func.stack_module_state`` + ``vmap``); ``torch.compile(dynamic=True)`` of the classifier (an epoch after its compiling one);
  the validation pass (``predict_logits``) under ``no_grad`` or ``inference_mode``, in batches
  of 64, 256 (the study's) or 1,024;
* **memory flat in the number of posts:** one pass of batches over a synthetic cache of
  ``--memory-posts`` posts and over one 20 times larger (``benchmarks/cache_memory.py``, each in
  a fresh process): peak anonymous memory above the start;
* **peak resident memory** of each other part above the process's memory before it [MB]
  (sampled from ``/proc/self/status`` every 5 ms).

Usage, from the repository root, on an otherwise idle machine::

    python benchmarks/performance.py [--posts 512] [--threads N] [--out benchmarks/results]

Prints a Markdown table and writes ``performance.csv`` (one row per part) to ``--out``.
"""

from __future__ import annotations

import argparse
import copy
import csv
import multiprocessing
import platform
import threading
import time
from pathlib import Path

import numpy as np
import torch
import transformers.models.flava.modeling_flava as flava
from torch.func import functional_call, stack_module_state, vmap
from torch.utils.flop_counter import FlopCounterMode

from cache_memory import compare_cache_sizes  # benchmarks/ is on sys.path when a script in it runs
from gpu_check import sample_posts
from msa_utils.features.encoders import load_backbone
from msa_utils.features.extraction import extract_features, length_sorted_batches
from msa_utils.data.images import load_image
from msa_utils.model.classifier import EndToEndModel
from msa_utils.model.factory import build_classifier
from msa_utils.config.profiles import get_profile
from msa_utils.config.runtime import autocast, set_seed
from msa_utils.train.loop import _batch, fit, length_grouped, predict_logits, text_lengths

def _rss_mb() -> float:
    """This process's resident memory [MB], from ``/proc/self/status`` (0 where there is none)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class Part:
    """Times a block [s] and samples its peak resident memory above the start [MB]."""

    def __enter__(self) -> "Part":
        self.base = self.peak = _rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        self.start = time.perf_counter()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, _rss_mb())

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.start
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak, _rss_mb()) - self.base


def matmul_gflops(n: int, dtype: torch.dtype, repeats: int = 5) -> float:
    """Best GFLOP/s of ``torch.matmul`` on two random ``n x n`` matrices of ``dtype``."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    torch.matmul(a, b)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def relative_error(exact: torch.Tensor, approx: torch.Tensor) -> float:
    """``||approx - exact|| / ||exact||`` (Frobenius norms, float32)."""
    exact, approx = exact.float(), approx.float()
    return float((approx - exact).norm() / exact.norm())


def encoder_rows(backbone, texts, paths, batch) -> tuple[list[tuple], dict]:
    """Time each encoder over the batches the study forms (:func:`length_sorted_batches`, each cut
    to its longest text) and count their FLOPs over the same batches; then the whole pass."""
    lengths = backbone.tokenize(texts)["attention_mask"].sum(1)
    batches = length_sorted_batches(lengths, batch)
    tokens = []
    for rows in batches:
        t = backbone.tokenize([texts[r] for r in rows])
        width = int(t["attention_mask"].sum(1).max())
        tokens.append((t["input_ids"][:, :width], t["attention_mask"][:, :width]))
    pixels = [backbone.preprocess_images([paths[r] for r in rows]) for rows in batches]
    n, out = len(texts), []
    for name, encode, inputs in (("text encoder", lambda t: backbone.encode_text(*t), tokens),
                                 ("image encoder", backbone.encode_image, pixels)):
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            for item in inputs:
                encode(item)
        flops = counter.get_total_flops()
        with Part() as m, torch.no_grad():
            for item in inputs:
                encode(item)
        out.append((f"{name} ({flops / n / 1e9:.2f} GFLOP/post)", m, n / m.seconds, flops / m.seconds / 1e9))
    return out, {"mean_tokens": float(lengths.float().mean())}


def _one_thread_epoch(model, features, labels, val_rows: int, settings) -> float:
    """One epoch of ``fit`` in this (worker) process on one torch thread; its seconds."""
    torch.set_num_threads(1)
    start = time.perf_counter()
    fit(model, features, labels, features.subset(features.guids[:val_rows]), labels[:val_rows], settings, progress=False)
    return time.perf_counter() - start


def _four_d_mask(config, inputs_embeds, attention_mask, **kwargs):
    """transformers' mask helper without its data-dependent "no padding" shortcut, which vmap cannot trace."""
    batch, query = inputs_embeds.shape[:2]
    return attention_mask[:, None, None, :].bool().expand(batch, 1, query, attention_mask.shape[-1])


def vmapped_epoch(models, features, labels, settings, precision: str, meter) -> None:
    """One epoch of ``len(models)`` runs as one model: ``torch.func.stack_module_state`` + ``vmap`` (each run its
    own length-grouped order and dropout; batches padded to the longest text of the step), Adam on the stacked
    weights, each step's forward and loss under ``precision``'s autocast, as ``fit`` does."""
    params, buffers = stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta").train()
    optimizer = torch.optim.Adam(params.values(), lr=settings.lr)
    run = vmap(lambda p, b, *inputs: functional_call(base, (p, b), inputs).logits, randomness="different")
    y, lengths, size, cpu = torch.as_tensor(labels), text_lengths(features), settings.batch_size, torch.device("cpu")
    orders = [length_grouped(torch.randperm(len(features), generator=torch.Generator().manual_seed(k)), lengths,
                             size, torch.Generator().manual_seed(k)) for k in range(len(models))]
    original, flava.create_bidirectional_mask = flava.create_bidirectional_mask, _four_d_mask
    try:
        with meter:
            for first in range(0, len(features), size):
                steps = [_batch(features, order[first:first + size], None, None, cpu) for order in orders]
                width = max(text.shape[1] for text, _, _ in steps)
                text = torch.stack([torch.nn.functional.pad(t, (0, 0, 0, width - t.shape[1])) for t, _, _ in steps])
                mask = torch.stack([torch.nn.functional.pad(m, (0, width - m.shape[1])) for _, m, _ in steps])
                image = torch.stack([i for _, _, i in steps])
                gold = torch.stack([y[order[first:first + size]] for order in orders])
                optimizer.zero_grad()
                with autocast(precision, cpu):
                    logits = run(params, buffers, text, mask, image)
                    loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), gold.flatten(), reduction="sum")
                (loss / len(steps[0][0])).backward()  # the sum of the runs' mean losses
                optimizer.step()
    finally:
        flava.create_bidirectional_mask = original


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--posts", type=int, default=512)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--matmul-size", type=int, default=2048)
    parser.add_argument("--memory-posts", type=int, default=4511,
                        help="posts of the real-size synthetic cache; the big one has 20 times as many")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    profile = get_profile("cpu")
    guids, texts, paths, labels = sample_posts(args.posts)
    labels = np.array(labels)
    n, batch = len(guids), profile.features.encode_batch_size
    rows: list[dict] = []

    def add(part: str, meter: Part | None, posts_per_s: float | None, gflops: float | None = None, note: str = ""):
        rows.append({"part": part, "seconds": meter.seconds if meter else None, "posts_per_s": posts_per_s,
                     "gflops": gflops, "share_of_fp32_limit": None if gflops is None else gflops / limit,
                     "share_of_bf16_limit": None if gflops is None else gflops / bf16,
                     "peak_mb": meter.peak_mb if meter else None, "note": note})

    limit = matmul_gflops(args.matmul_size, torch.float32)
    bf16 = matmul_gflops(args.matmul_size, torch.bfloat16)
    rows.append({"part": f"matmul fp32 ({args.matmul_size}²)", "gflops": limit, "share_of_fp32_limit": 1.0})
    rows.append({"part": f"matmul bf16 ({args.matmul_size}²)", "gflops": bf16, "share_of_fp32_limit": bf16 / limit,
                 "share_of_bf16_limit": 1.0})

    with Part() as m:
        for path in paths:
            load_image(path)
    add("image decoding alone (load_image, full size)", m, n / m.seconds)

    features, backbones = {}, {}
    for precision in ("float32", "bfloat16"):
        backbone = backbones[precision] = load_backbone(get_profile("cpu", precision=precision))
        parts, facts = encoder_rows(backbone, texts, paths, batch)
        for part, meter, per_s, gflops in parts:
            add(f"{precision}: {part}", meter, per_s, gflops,
                note=f"mean text {facts['mean_tokens']:.1f} tokens" if part.startswith("text") else "")
        with Part() as m:
            features[precision] = extract_features(backbone, texts, paths, guids, batch_size=batch, progress=False,
                                                   dtype="float32")
        add(f"{precision}: frozen-encoder pass as the study runs it (decode + both encoders)", m, n / m.seconds,
            note=f"all 4,511 posts: about {4511 / (n / m.seconds):.0f} s")
    exact, fast = features["float32"], features["bfloat16"]
    pooled = [backbones["float32"].prepare(f).image_states for f in (exact, fast)]
    tolerance = (f"bf16 vs fp32 relative error: text {relative_error(exact.text_states, fast.text_states):.2%}, "
                 f"image map {relative_error(exact.image_states, fast.image_states):.2%}, pooled 2x2 image tokens "
                 f"{relative_error(*pooled):.2%} (min cosine "
                 f"{float(torch.nn.functional.cosine_similarity(pooled[0].flatten(1), pooled[1].flatten(1)).min()):.4f})")
    rows[-1]["note"] += "; " + tolerance

    backbone = backbones[profile.features.precision]
    prepared = backbone.prepare(features[profile.features.precision].subset(guids))
    cached = {}
    for label, grouped, precision in (("drawn order", False, "float32"), ("grouped by length (the study's)", True,
                                      "float32"), ("grouped, bf16 autocast (train_precision)", True, "bfloat16")):
        def epoch(meter):  # one epoch of a fresh model, same seed: the same batches every time
            set_seed(0)
            model = build_classifier(backbone, profile)
            settings = profile.train.model_copy(update={"max_epochs": 1, "group_by_length": grouped,
                                                        "train_precision": precision})
            with meter:  # autocast, if any, is entered by fit step by step (never around the loop)
                fit(model, prepared, labels, prepared.subset(guids[:batch]), labels[:batch], settings, progress=False)
            return meter

        flops = epoch(FlopCounterMode(display=False)).get_total_flops()  # forward and backward
        m = cached[label] = epoch(Part())
        add(f"training epoch from the cache, {label} ({flops / n / 1e9:.2f} GFLOP/post)", m, n / m.seconds,
            flops / m.seconds / 1e9, note=f"the study's 2,560 training posts: about {2560 * m.seconds / n:.1f} s")
    study = profile.train.model_copy(update={"max_epochs": 1, "group_by_length": True})
    for precision in ("float32", "bfloat16"):  # two runs at once: two processes of one thread each
        settings = study.model_copy(update={"train_precision": precision})
        set_seed(0)
        models = [build_classifier(backbone, profile) for _ in range(2)]
        in_memory = prepared.in_memory()
        with multiprocessing.get_context("spawn").Pool(2) as pool:
            jobs = [(model, in_memory, labels, batch, settings) for model in models]
            pool.starmap(_one_thread_epoch, jobs)  # warm-up: the workers' imports and first allocations
            with Part() as m:
                pool.starmap(_one_thread_epoch, jobs)
        add(f"two runs at once, grouped, {precision}: 2 processes x 1 thread (aggregate)", m, 2 * n / m.seconds,
            note=f"per run and epoch of 2,560 posts: about {2560 * m.seconds / (2 * n):.1f} s; one process "
                 f"x 2 threads, run after run: the rows above")
    for precision in ("float32", "bfloat16"):  # three runs as one batched (vmapped) model
        set_seed(0)
        models = [build_classifier(backbone, profile) for _ in range(3)]
        vmapped_epoch(models, prepared, labels, study, precision, Part())  # warm-up
        vmapped_epoch(models, prepared, labels, study, precision, m := Part())
        one = cached["grouped by length (the study's)" if precision == "float32" else
                     "grouped, bf16 autocast (train_precision)"].seconds
        add(f"three runs as one vmapped model, grouped, {precision} (aggregate)", m, 3 * n / m.seconds,
            note=f"{3 * one / m.seconds:.2f}x the rate of one run at a time (the grouped {precision} epoch above)")
    set_seed(0)
    compiled = torch.compile(build_classifier(backbone, profile), dynamic=True)
    with Part() as warm:
        fit(compiled, prepared, labels, prepared.subset(guids[:batch]), labels[:batch], study, progress=False)
    with Part() as m:
        fit(compiled, prepared, labels, prepared.subset(guids[:batch]), labels[:batch], study, progress=False)
    add("training epoch, grouped, fp32, torch.compile(dynamic=True), after its first epoch", m, n / m.seconds,
        note=f"first epoch (compiling) {warm.seconds:.0f} s")
    set_seed(0)
    model, val = build_classifier(backbone, profile), prepared  # all n posts, as the study's 640 in one pass
    for label, batch_size, mode in (("no_grad, batch 256", 256, torch.no_grad),
                                    ("inference_mode, batch 256", 256, torch.inference_mode),
                                    ("no_grad, batch 64 (the study's)", 64, torch.no_grad), ("no_grad, batch 1024", 1024, torch.no_grad)):
        predict_logits(model, val, batch_size=batch_size)  # warm-up
        with Part() as m, mode():
            for _ in range(5):
                predict_logits(model, val, batch_size=batch_size)
        add(f"validation pass, fp32, {label}", m, 5 * len(val) / m.seconds,
            note=f"the study's 640 validation posts: about {640 * m.seconds / (5 * len(val)):.2f} s")
    set_seed(0)
    end_to_end = EndToEndModel(backbone, build_classifier(backbone, profile))
    optimiser = torch.optim.Adam([p for p in end_to_end.parameters() if p.requires_grad], lr=profile.train.lr)
    with Part() as full:
        for start in range(0, n, profile.train.batch_size):
            tok = backbone.tokenize(texts[start:start + profile.train.batch_size])
            pix = backbone.preprocess_images(paths[start:start + profile.train.batch_size])
            logits = end_to_end(tok["input_ids"], tok["attention_mask"], pix)
            loss = torch.nn.functional.cross_entropy(logits, torch.as_tensor(labels[start:start + profile.train.batch_size]))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    study_epoch = cached["grouped by length (the study's)"]
    add(f"training epoch end-to-end through the {profile.features.precision} encoders", full, n / full.seconds,
        note=f"the study's cached epoch is {full.seconds / study_epoch.seconds:.1f}x faster")

    for r in compare_cache_sizes(args.memory_posts, 20):
        rows.append({"part": f"one pass of batches over a synthetic cache of {r['posts']:,} posts (memory-mapped "
                             f"shards, anonymous memory)", "seconds": r["pass_s"],
                     "posts_per_s": r["posts"] / r["pass_s"], "peak_mb": r["peak_anon_mb"] - r["start_anon_mb"],
                     "note": f"cache {r['cache_mb']:,.0f} MB; peak RSS with mapped file pages "
                             f"{r['peak_vmrss_mb']:,.0f} MB"})

    print(f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
          f"torch {torch.__version__}; {n} posts, profile cpu (batch {profile.train.batch_size}, encode batch {batch})")
    print("| part | seconds | posts/s | GFLOP/s | share of fp32 matmul | share of bf16 matmul | peak memory [MB] | note |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    fmt = lambda v, f: "" if v is None else format(v, f)  # noqa: E731
    for r in rows:
        print(f"| {r['part']} | {fmt(r.get('seconds'), '.2f')} | {fmt(r.get('posts_per_s'), '.1f')} | "
              f"{fmt(r.get('gflops'), '.1f')} | {fmt(r.get('share_of_fp32_limit'), '.0%')} | "
              f"{fmt(r.get('share_of_bf16_limit'), '.0%')} | "
              f"{fmt(r.get('peak_mb'), '.0f')} | {r.get('note', '')} |")
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "performance.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, ["part", "seconds", "posts_per_s", "gflops", "share_of_fp32_limit",
                                         "share_of_bf16_limit", "peak_mb", "note"])
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    main()
