"""Timings of the compact backbone on this machine's CPU.

1. Feature extraction throughput of the frozen encoders (MiniLM-L6 text, EfficientNet-Lite0
   images at 224 px), batch 32, on real MVSA-Single posts [posts/s].
2. Forward + backward time of :class:`msa_utils.model.classifier.MultimodalClassifier` per batch of 32 for a
   grid of compact designs (fusion width, layers, image-token grid, text tokens) [ms], with the
   implied time of one training epoch over 3,200 posts (100 batches) [s].

Usage::

    python benchmarks/bench_fusion.py [--threads 2] [--posts 96] [--repeats 5]

from the repository root, with the package installed (``pip install -e .``) or ``PYTHONPATH=.``.

Prints Markdown tables. Numbers vary run to run (2-3x on these shared machines; docs/paper-profile.md).
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import torch

from msa_utils.features.backbone import to_rgb_images
from msa_utils.features.compact import CompactBackbone
from msa_utils.model.classifier import ClassifierConfig, MultimodalClassifier
from msa_utils.config.profiles import DEFAULT_DATA_DIR


def read_text(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        return raw.decode("gb18030", errors="replace").strip()


def bench_extraction(posts: int, batch_size: int = 32) -> list[tuple[str, float]]:
    """Posts/s for: text (tokenise + encode), image loading + preprocessing, image encoding.

    Each stage is timed over all posts twice; the faster pass is reported.
    """
    backbone = CompactBackbone(max_text_tokens=64, image_size=224, device="cpu")
    folder = Path(DEFAULT_DATA_DIR) / "data"
    guids = sorted(int(p.stem) for p in folder.glob("*.jpg"))[:posts]
    texts = [read_text(folder / f"{g}.txt") for g in guids]
    paths = [folder / f"{g}.jpg" for g in guids]
    backbone.encode_text(**backbone.tokenize(texts[:batch_size]))  # warm-up
    backbone.encode_image(backbone.preprocess_images(paths[:4]))

    names = ["text: tokenise + MiniLM-L6 (64 tokens)", "image: load + resize + normalise",
             "image: EfficientNet-Lite0 (224 px)"]
    best = {name: float("inf") for name in names}
    for _ in range(2):
        timings = _time_extraction(backbone, texts, paths, names, batch_size)
        best = {name: min(best[name], timings[name]) for name in names}
    return [(name, len(guids) / best[name]) for name in names]


def _time_extraction(backbone, texts, paths, names, batch_size):
    timings = dict.fromkeys(names, 0.0)
    for start in range(0, len(texts), batch_size):
        t0 = time.perf_counter()
        backbone.encode_text(**backbone.tokenize(texts[start:start + batch_size]))
        t1 = time.perf_counter()
        pixels = backbone.preprocess_images(to_rgb_images(paths[start:start + batch_size]))
        t2 = time.perf_counter()
        backbone.encode_image(pixels)
        t3 = time.perf_counter()
        timings[names[0]] += t1 - t0
        timings[names[1]] += t2 - t1
        timings[names[2]] += t3 - t2
    return timings


def bench_fusion(repeats: int, batch_size: int = 32) -> list[dict]:
    """Forward + backward (+ zero_grad) time per batch for each design, on random features of
    ``grid * grid`` image tokens: the backbone pools the 7 x 7 map once, when the cached features
    are prepared (``CompactBackbone.prepare``), not in every training step.

    Reports the best and the median of ``repeats`` timed steps (after 2 warm-up steps): on a
    shared 2-core machine the best is the steadier estimate of the cost itself.
    """
    rows = []
    for hidden, layers, grid, text_tokens in itertools.product((128, 256), (1, 2), (1, 2, 3, 7), (64, 32)):
        torch.manual_seed(0)
        config = ClassifierConfig(text_dim=384, image_dim=1280, hidden_size=hidden, num_layers=layers,
                                  num_heads=4, head_hidden=(256, 128), dropout=0.3)
        model = MultimodalClassifier(config).train()
        text = torch.randn(batch_size, text_tokens, 384)
        mask = torch.ones(batch_size, text_tokens, dtype=torch.long)
        mask[:, text_tokens // 2:] = 0  # typical padding
        image = torch.randn(batch_size, grid * grid, 1280)  # as prepared by CompactBackbone(image_grid=grid)
        labels = torch.randint(0, 3, (batch_size,))
        times = []
        for i in range(repeats + 2):
            t0 = time.perf_counter()
            loss = torch.nn.functional.cross_entropy(model(text, mask, image).logits, labels)
            loss.backward()
            model.zero_grad(set_to_none=True)
            if i >= 2:  # two warm-up steps
                times.append(time.perf_counter() - t0)
        best, median = min(times), sorted(times)[len(times) // 2]
        rows.append(dict(hidden=hidden, layers=layers, grid=grid, image_tokens=grid * grid, text_tokens=text_tokens,
                         params=sum(p.numel() for p in model.parameters()), ms=1000 * best,
                         median_ms=1000 * median, epoch_s=100 * best))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--posts", type=int, default=96, help="posts for the extraction timing")
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per design (median reported)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads\n")

    print(f"## Frozen-encoder throughput (batch 32, {args.posts} real posts)\n")
    print("| stage | posts/s |\n|---|---:|")
    for name, rate in bench_extraction(args.posts):
        print(f"| {name} | {rate:.1f} |")

    print("\n## MultimodalClassifier forward + backward, batch 32 (grid x grid image tokens, pooled beforehand)\n")
    print("| hidden | layers | image grid | image tokens | text tokens | params (M) | best ms / batch "
          "| median ms | s / 100 batches (best) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in bench_fusion(args.repeats):
        print(f"| {row['hidden']} | {row['layers']} | {row['grid']} | {row['image_tokens']} | {row['text_tokens']} | "
              f"{row['params'] / 1e6:.2f} | {row['ms']:.1f} | {row['median_ms']:.1f} | {row['epoch_s']:.1f} |")


if __name__ == "__main__":
    main()
