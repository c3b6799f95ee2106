"""Where the posts come from: ``data.data_dir`` names an MVSA folder (:mod:`msa_utils.data.mvsa`) or one table of
posts (:mod:`msa_utils.data.table`). The one place that tells the two apart: the folder that image and text paths
are relative to, the loaded frame, the listed guids, and the checks the runner makes before notebook 01."""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from msa_utils.config.labels import LABEL_MAPS, LABELS, resolve_label_map
from msa_utils.config.profiles import Profile
from msa_utils.data import mvsa, table
from msa_utils.data.data_report import DataReport
from msa_utils.data.splits import stratified_subset

LAYOUTS = ("an MVSA folder (data/{guid}.txt and an image each, train.txt, optional test_without_label.txt) or one "
           "table of posts "
           f"({', '.join(table.TABLE_SUFFIXES)})")
"""The accepted layouts, in words (error messages)."""


def is_table(data_dir: str | os.PathLike) -> bool:
    """True if ``data_dir`` names a table of posts (by its suffix) rather than an MVSA folder."""
    return table.is_table(data_dir) and not Path(data_dir).is_dir()


def source_root(data_dir: str | os.PathLike) -> Path:
    """The folder the posts' image and text paths are relative to: ``data_dir`` itself, or a table's folder."""
    return Path(data_dir).parent if is_table(data_dir) else Path(data_dir)


def load_source(data_dir: str | os.PathLike, report: DataReport,
                label_map: str | dict[str, str] | None = None, read_labels: bool = True) -> pd.DataFrame:
    """One row per post, columns :data:`~msa_utils.data.mvsa.LOADED_COLUMNS`, stage ``load`` reported, labels read
    through ``label_map`` (``read_labels=False``: not read, no post left out for its tag):
    :func:`~msa_utils.data.table.load_table` of a table, else :func:`~msa_utils.data.mvsa.load_mvsa`. Raises
    FileNotFoundError or ValueError as they do; ValueError for a file that is no table."""
    if is_table(data_dir):
        return table.load_table(data_dir, report, label_map, read_labels)
    if Path(data_dir).is_file():
        raise ValueError(f"{data_dir} is a file but not a table of posts: give {LAYOUTS}")
    return mvsa.load_mvsa(data_dir, report, label_map, read_labels)


def source_guids(data_dir: str | os.PathLike) -> dict[str, list[int]]:
    """``{"train": [...], "test": [...]}``: the well-formed guids the source lists (label files, or the table's
    labelled and unlabelled rows), each once, in order; ``test`` empty without ``test_without_label.txt``. Raises
    as :func:`load_source`."""
    if is_table(data_dir):
        rows = table.split_rows(table.read_table(data_dir))
        return {split: list(dict.fromkeys(int(g) for _, g, _ in rows[split] if mvsa.is_guid(g)))
                for split in ("train", "test")}
    folder = Path(data_dir)
    test = folder / mvsa.LABEL_FILES["test"]
    return {"train": mvsa.label_file_guids(folder / mvsa.LABEL_FILES["train"]),
            "test": mvsa.label_file_guids(test) if test.exists() else []}


def min_posts_per_class(folds: int, val_fraction: float) -> int:
    """The fewest posts ``n`` of a class for every test fold and every validation part to hold one, and the
    training part two: ``n >= folds`` (each of the K folds gets ``n / K``), ``rest = n - ceil(n / K) >= round(1 /
    f)`` (the validation part is one of ``round(1 / f)`` grouped folds of the other folds' posts) and ``rest -
    ceil(rest / round(1 / f)) >= 2`` (the baselines choose ``C`` by a cross-validation of at least 2 folds of the
    training part's largest class: ``experiments/baselines.py``); about ``max(K, K / ((K - 1) f))``.
    K = 5, f = 0.2: 7; K = 2: 10; K = 10: 10; K = 2, f = 0.5: 8."""
    parts = max(2, round(1.0 / val_fraction))
    n = folds
    while (rest := n - math.ceil(n / folds)) < parts or rest - math.ceil(rest / parts) < 2:
        n += 1
    return n


@dataclass
class SourceSummary:
    """What :func:`check_source` found: the source's ``kind`` and ``path``, usable labelled posts per class
    (``counts``: a text and an image file, after any ``train_sample``), posts to predict (``to_predict``; ``None``
    without a test file), the per-class ``minimum`` and the ``folds`` it is for, and ``warnings`` for a person."""

    kind: str
    path: str
    counts: dict[str, int]
    to_predict: int | None
    minimum: int
    folds: int
    warnings: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """The summary in a few lines, warnings last (``WARNING ...``)."""
        classes = ", ".join(f"{name} {n}" for name, n in self.counts.items())
        predict = ("no post to predict (no test_without_label.txt): the study runs, and its prediction files hold "
                   "only their header" if self.to_predict is None else
                   "no post to predict (no unlabelled post): the prediction files hold only their header"
                   if self.to_predict == 0 else f"{self.to_predict} posts to predict")
        return [f"data: {self.kind} {self.path}: {sum(self.counts.values())} labelled posts with a text and an image "
                f"({classes}; with {self.folds} folds each class needs at least {self.folds}, the largest at least "
                f"{self.minimum}); {predict}",
                *(f"WARNING {w}" for w in self.warnings)]


def check_source(cfg: Profile) -> SourceSummary:
    """Check ``cfg.data``'s posts before any notebook runs: the source exists and parses, ``train.txt`` (or the
    table's labels) has no unknown tag, and every class present among the labelled posts (a text and an image
    file, after ``train_sample``) has at least ``folds`` posts (each test fold gets one) and the largest at least
    :func:`min_posts_per_class` (the validation parts can be split); a smaller class is a warning. Raises
    FileNotFoundError for a missing source or ``train.txt``; ValueError naming unknown tags with their counts and
    the expected ones, or the posts per class found, the minimum and the settings that change it."""
    data = cfg.data
    path = Path(data.data_dir)
    if not path.exists():
        raise FileNotFoundError(f"data_dir {path} not found: give {LAYOUTS}")
    if path.is_dir() and not (path / mvsa.LABEL_FILES["train"]).is_file():
        raise FileNotFoundError(f"{path / mvsa.LABEL_FILES['train']} not found: the labelled posts (guid,tag) are "
                                f"required; give {LAYOUTS}")
    _refuse_unknown_tags(path, data.label_map)
    report = DataReport()
    posts = load_source(path, report, data.label_map)
    train = posts[posts["split"] == "train"]
    if data.train_sample is not None:
        with warnings.catch_warnings():  # a sample that cannot be stratified: notebook 01 warns
            warnings.simplefilter("ignore", UserWarning)
            train = train.iloc[stratified_subset(train["label"].to_numpy(dtype=int), data.train_sample, cfg.seed)]
    labelled = train[train["has_text"] & train["has_image"]]
    counts = labelled["label"].astype(int).value_counts().reindex(range(len(LABELS)), fill_value=0)
    counts = {name: int(counts[i]) for i, name in enumerate(LABELS)}
    test = posts[posts["split"] == "test"]
    if data.test_sample is not None:
        test = test.head(data.test_sample)
    no_test = not is_table(path) and not (path / mvsa.LABEL_FILES["test"]).exists()
    summary = SourceSummary("table" if is_table(path) else "folder", str(path), counts,
                            None if no_test else int((test["has_text"] & test["has_image"]).sum()),
                            min_posts_per_class(data.folds, data.val_fraction), data.folds)
    _check_sizes(summary, data.folds, data.val_fraction, len(train) - len(labelled))
    return summary


def _refuse_unknown_tags(path: Path, label_map: str | dict[str, str] | None) -> None:
    """ValueError naming the labelled posts' tags that are no class name (nor mapped), with their counts."""
    if is_table(path):
        rows, name = table.split_rows(table.read_table(path))["train"], path.name
    else:
        rows, name = mvsa.read_label_lines(path / mvsa.LABEL_FILES["train"])[0], mvsa.LABEL_FILES["train"]
    mapping = resolve_label_map(label_map) or {}
    tags = pd.Series([tag.strip().lower() for _, guid, tag in rows if mvsa.is_guid(guid.strip())], dtype=object)
    unknown = tags[~tags.map(lambda t: mapping.get(t, t)).isin(LABELS)].value_counts()
    if unknown.empty:
        return
    ordered = sorted(unknown.items(), key=lambda item: (len(item[0]), item[0]))  # '2' before '10'
    found = ", ".join(f"{tag!r} ({count})" for tag, count in ordered[:10])
    found += f" and {len(ordered) - 10} more" if len(ordered) > 10 else ""
    hint = ("they are the paper's numbering (0 positive, 1 negative, 2 neutral): run with --set label_map=paper"
            if set(unknown.index) <= set(LABEL_MAPS["paper"]) else
            "fix or remove those lines, or map each tag to a class: --set 'label_map={"
            + ", ".join(f'"{tag}": "positive"' for tag, _ in ordered[:2]) + "}' (with the right classes)")
    raise ValueError(f"{path if is_table(path) else path / name}: {unknown.sum()} of {len(tags)} labelled posts have "
                     f"a tag that is no class name: {found}; expected {', '.join(LABELS)} (any case)"
                     + (f" or a tag of the label map {sorted(mapping)}" if mapping else "")
                     + f"; {hint} (docs/running.md, \"Your own posts\")")


def _check_sizes(summary: SourceSummary, folds: int, val_fraction: float, unusable: int) -> None:
    """ValueError if a class present has fewer than ``folds`` posts or the largest fewer than ``summary.minimum``
    (the validation parts cannot be split), naming the counts, the minimum and the settings that change it; a
    warning in ``summary`` for a class between the two, or a class with no post."""
    present = {name: n for name, n in summary.counts.items() if n}
    found = ", ".join(f"{name} {n}" for name, n in summary.counts.items())
    left_out = f"; {unusable} more lack a text or an image file" if unusable else ""
    if not present:
        raise ValueError(f"{summary.path}: no labelled post with a text and an image file{left_out}")
    small = [name for name, n in present.items() if n < folds]
    largest = max(present.values())
    if small or largest < summary.minimum:
        why = (f"{' and '.join(small)} {'has' if len(small) == 1 else 'have'} fewer than {folds}, so some test "
               "folds would hold none" if small else
               f"even the largest class has fewer than {summary.minimum}, so no validation part can be carved")
        remedies = [f"add labelled posts (at least {summary.minimum} per class)"]
        if settings := _settings_that_run(present, folds, val_fraction):
            remedies.append(f"{settings} (the most folds and the smallest validation share these classes allow; "
                            "some validation parts may then miss a class)")
        raise ValueError(f"{summary.path}: too few labelled posts per class to cross-validate: {found} (posts with "
                         f"a text and an image file{left_out}). With folds={folds} and val_fraction={val_fraction}, "
                         f"a class needs at least {folds} posts for every test fold (1/{folds} of it) to hold one, "
                         f"and {summary.minimum} for every validation part ({val_fraction:.0%} of the other folds) "
                         f"to hold one too: {why}. To run: {'; or '.join(remedies)}")
    for name, n in present.items():
        if n < summary.minimum:
            summary.warnings.append(
                f"class {name} has {n} labelled posts, fewer than {summary.minimum}: some validation parts "
                f"({val_fraction:.0%} of the other folds) will hold none of it (notebook 03 says which)")
    if len(present) < len(LABELS):
        summary.warnings.append(f"no labelled post of class {', '.join(sorted(set(LABELS) - set(present)))}: the "
                                "models never predict it")


def _settings_that_run(counts: dict[str, int], folds: int, val_fraction: float) -> str:
    """``--set`` options under which ``counts`` (posts per class present) pass :func:`check_source`: the most folds
    (at most ``folds``), then the smallest validation share (at least ``val_fraction``, at most 0.5) for which the
    largest class reaches :func:`min_posts_per_class`; ``""`` if none do."""
    largest = max(counts.values())
    shares = sorted({val_fraction, *(f for f in (0.25, 1 / 3, 0.5) if f > val_fraction)})
    for new_folds in range(min(folds, min(counts.values())), 1, -1):
        for share in shares:
            if min_posts_per_class(new_folds, share) <= largest:
                changed = [f"--set folds={new_folds}"] if new_folds != folds else []
                return " ".join([*changed, *([f"--set val_fraction={share:.3g}"] if share != val_fraction else [])])
    return ""
