"""Where copies of an image stop and different pictures start, by perceptual hash: the evidence for
:data:`msa_utils.data.splits.PHASH_MAX_DISTANCE` (docs/data-handling.md, "Near-identical images").

1. **the release**: the ``imagehash.phash`` of every image of ``<data>/data`` as the study computes it
   (:func:`msa_utils.data.images.inspect_images`); the number of image pairs at each Hamming distance,
   how many of them are byte-identical, and the histogram of each image's nearest-neighbour distance;
2. **made copies**: ``--sample`` images, each re-encoded, resized and cropped with Pillow, hashed the
   same way; the distance of each copy to its original (median, 95th percentile, largest, share within
   the threshold);
3. **the groups**: :func:`msa_utils.data.splits.content_groups` on the labelled and unlabelled posts as
   before (raw text, image bytes) and now (the model's text, image bytes, phash): groups of 2+ posts and
   the posts in them.

Usage::

    python benchmarks/near_duplicates.py [--data data/mvsa_ecnu] [--sample 300] [--sheets /tmp/pairs]

from the repository root; ``--sheets`` also writes side-by-side PNGs of pairs at each distance to look
at. Prints the figures; takes about a minute.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from msa_utils.config.profiles import get_profile
from msa_utils.data.data_report import DataReport
from msa_utils.data.images import inspect_images
from msa_utils.data.posts import build_posts
from msa_utils.data.splits import PHASH_MAX_DISTANCE, content_groups
from msa_utils.io import hashing

COPIES = {
    "JPEG quality 50": lambda im: (im, 50),
    "JPEG quality 20": lambda im: (im, 20),
    "resized to 90%, JPEG quality 60": lambda im: (im.resize((im.width * 9 // 10, im.height * 9 // 10)), 60),
    "resized to 50%": lambda im: (im.resize((im.width // 2, im.height // 2)), 95),
    "brightness +20%": lambda im: (im.point(lambda v: min(255, v * 6 // 5)), 95),
    "cropped 2% a side": lambda im: (im.crop((im.width // 50, im.height // 50, im.width * 49 // 50,
                                              im.height * 49 // 50)), 95),
    "cropped 5% off one side": lambda im: (im.crop((0, 0, im.width * 19 // 20, im.height)), 95),
    "cropped 5% a side": lambda im: (im.crop((im.width // 20, im.height // 20, im.width * 19 // 20,
                                              im.height * 19 // 20)), 95),
}
"""Each kind of copy: a function from the original to ``(image, JPEG quality it is saved at)``."""


def phashes(folder: Path, names: list[str]) -> np.ndarray:
    """(N,) uint64 phashes of ``folder/<name>`` as the post table computes them (0 where unreadable)."""
    frame = pd.DataFrame({"guid": range(len(names)), "image_file": names, "has_image": True})
    hexes = inspect_images(frame, folder, DataReport())["image_phash"]
    return np.array([int(h, 16) if h else 0 for h in hexes], dtype=np.uint64)


def distances(bits: np.ndarray) -> np.ndarray:
    """(N, N) uint8 Hamming distances, the diagonal 255."""
    matrix = np.bitwise_count(bits[:, None] ^ bits[None, :])
    np.fill_diagonal(matrix, 255)
    return matrix


def sheet(paths: list[Path], pairs: list[tuple[int, int]], matrix: np.ndarray, out: Path, side: int = 240) -> None:
    """Side-by-side PNG of ``pairs`` (positions into ``paths``), each image labelled with its name and distance."""
    canvas = Image.new("RGB", (2 * side, side * max(len(pairs), 1)), "white")
    draw = ImageDraw.Draw(canvas)
    for row, (i, j) in enumerate(pairs):
        for column, k in enumerate((i, j)):
            with Image.open(paths[k]) as image:
                image = image.convert("RGB")
                image.thumbnail((side - 4, side - 4))
                canvas.paste(image, (column * side, row * side))
            draw.text((column * side + 2, row * side + 2), f"{paths[k].stem} d={matrix[i, j]}", fill="red")
    canvas.save(out)


def release(data: Path, sheets: Path | None) -> None:
    """Section 1: pairs per distance, nearest neighbours; sheets of up to 6 pairs per even distance 0-14."""
    paths = sorted((data / "data").glob("*.jpg"), key=lambda p: int(p.stem) if p.stem.isdigit() else p.stem)
    bits = phashes(data / "data", [p.name for p in paths])
    matrix = distances(bits)
    upper = np.triu_indices(len(paths), 1)
    pair_distance = matrix[upper]
    sha = np.array([hashing.file_sha256(p) for p in paths])
    identical = sha[upper[0]] == sha[upper[1]]
    print(f"## {len(paths)} images: pairs by phash Hamming distance (odd ones only where there are pairs)\n")
    print("| distance | pairs | byte-identical | images whose nearest neighbour is this far |")
    print("|---:|---:|---:|---:|")
    nearest = np.bincount(matrix.min(axis=1), minlength=256)
    for d in (d for d in range(21) if d % 2 == 0 or (pair_distance == d).any()):
        print(f"| {d} | {int((pair_distance == d).sum()):,} | {int((identical & (pair_distance == d)).sum())} "
              f"| {int(nearest[d]):,} |")
    if sheets is not None:
        sheets.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(0)
        for d in range(0, 16, 2):
            at = np.flatnonzero((pair_distance == d) & ~identical)
            chosen = sorted(rng.choice(at, min(6, len(at)), replace=False)) if len(at) else []
            sheet(paths, [(upper[0][k], upper[1][k]) for k in chosen], matrix, sheets / f"distance_{d:02d}.png")


def copies(data: Path, sample: int) -> None:
    """Section 2: the distance of made copies to their originals."""
    paths = sorted((data / "data").glob("*.jpg"))
    chosen = [paths[k] for k in sorted(np.random.default_rng(0).choice(len(paths), sample, replace=False))]
    print(f"\n## {sample} images copied: distance of the copy's phash to the original's\n")
    print(f"| copy | median | 95th percentile | largest | within {PHASH_MAX_DISTANCE} |")
    print("|---|---:|---:|---:|---:|")
    original = phashes(data / "data", [p.name for p in chosen])
    with tempfile.TemporaryDirectory() as folder:
        for kind, make in COPIES.items():
            for path in chosen:
                with Image.open(path) as image:
                    copy, quality = make(image.convert("RGB"))
                copy.save(Path(folder) / path.name, quality=quality)
            d = np.bitwise_count(original ^ phashes(Path(folder), [p.name for p in chosen]))
            print(f"| {kind} | {np.median(d):.0f} | {np.percentile(d, 95):.0f} | {d.max()} "
                  f"| {np.mean(d <= PHASH_MAX_DISTANCE):.1%} |")


def groups(data: Path) -> None:
    """Section 3: groups of 2+ posts and their posts, before and now, all posts and the labelled ones."""
    with tempfile.TemporaryDirectory() as results:
        posts = build_posts(get_profile("smoke", data_dir=str(data), results_dir=results, train_sample=None,
                                        test_sample=None)).posts
    sha = hashing.file_hashes(data / rel for rel in posts["image_file"])
    ways = {"raw text, image bytes (before)": content_groups(list(posts["text_raw"]), sha),
            "model text, image bytes": content_groups(list(posts["text"]), sha),
            f"model text, image bytes, phash within {PHASH_MAX_DISTANCE} (now)":
                content_groups(list(posts["text"]), sha, list(posts["image_phash"]))}
    print(f"\n## content groups of the {len(posts):,} posts (translation off)\n")
    print("| grouped on | groups of 2+ | posts in them | labelled: groups of 2+ | posts in them |")
    print("|---|---:|---:|---:|---:|")
    labelled = (posts["split"] == "train").to_numpy()
    for name, group in ways.items():
        sizes, train_sizes = pd.Series(group).value_counts(), pd.Series(group[labelled]).value_counts()
        print(f"| {name} | {(sizes > 1).sum():,} | {sizes[sizes > 1].sum():,} | {(train_sizes > 1).sum():,} "
              f"| {train_sizes[train_sizes > 1].sum():,} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("data/mvsa_ecnu"))
    parser.add_argument("--sample", type=int, default=300)
    parser.add_argument("--sheets", type=Path, default=None, help="folder for side-by-side PNGs of pairs")
    args = parser.parse_args()
    release(args.data, args.sheets)
    copies(args.data, args.sample)
    groups(args.data)


if __name__ == "__main__":
    main()
