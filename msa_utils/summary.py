"""Results tables and ``REPORT.md``, built only from the files the notebooks wrote.

Notebook 04 writes ``metrics/full.json``, ``metrics/baselines.json``; notebook 05 writes
``metrics/no_image.json`` and ``metrics/no_text.json``; each variant also has
``metrics/<name>_history.csv`` and ``predictions/val_<name>.csv``. This module reads them back,
puts the paper's numbers beside ours and writes the report.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from . import LABELS, io
from .posts import usable
from .profiles import Profile
from .splits import load_split

PAPER = {
    "full": {"accuracy": 0.73, "weighted_f1": 0.73},
    "no_image": {"accuracy": 0.63, "weighted_f1": 0.62},
    "no_text": {"accuracy": 0.70, "weighted_f1": 0.70},
}
"""The paper's reported accuracy and weighted F1 (validation split of ``train.txt``)."""

VARIANT_TITLES = {
    "full": "image + text",
    "no_image": "without image",
    "no_text": "without text",
    "linear_probe": "linear probe (pooled features)",
    "majority": "majority class",
}


MAIN_COLUMNS = ["model", "accuracy", "weighted_f1", "macro_f1", "paper_accuracy", "paper_weighted_f1"]
"""The columns of the main results table, in REPORT.md and in the README."""

BACKBONE_FILE = "backbone.json"
"""Written by notebook 04 under ``metrics/`` (:func:`msa_utils.dataset.write_backbone_card`)."""


def load_variant_metrics(metrics_dir: Path, name: str) -> dict:
    """Read ``<metrics_dir>/<name>.json``.

    Raises:
        FileNotFoundError: with the notebook to run, if the variant was not trained yet.
    """
    path = Path(metrics_dir) / f"{name}.json"
    if not path.exists():
        notebook = "04_finetune" if name == "full" else "05_ablation"
        raise FileNotFoundError(f"{path} not found: run notebooks/{notebook}.ipynb first")
    return io.read_json(path)


def results_table(metrics_dir: Path) -> pd.DataFrame:
    """One row per model (full, ablations, baselines): our validation metrics and the paper's.

    Columns: ``model, accuracy, weighted_f1, macro_f1, f1_positive, f1_negative, f1_neutral,
    best_epoch, paper_accuracy, paper_weighted_f1`` (paper columns empty where the paper
    reports nothing).
    """
    metrics_dir = Path(metrics_dir)
    rows = []
    for name in ("full", "no_image", "no_text"):
        m = load_variant_metrics(metrics_dir, name)
        rows.append({"variant": name, **m["val"], "best_epoch": m["best_epoch"]})
    baselines = io.read_json(metrics_dir / "baselines.json")
    for name in ("linear_probe", "majority"):
        rows.append({"variant": name, **baselines[name]})
    table = pd.DataFrame(rows).set_index("variant")
    table["paper_accuracy"] = [PAPER.get(v, {}).get("accuracy") for v in table.index]
    table["paper_weighted_f1"] = [PAPER.get(v, {}).get("weighted_f1") for v in table.index]
    columns = ["accuracy", "weighted_f1", "macro_f1"] + [f"f1_{c}" for c in LABELS] + ["best_epoch", "paper_accuracy", "paper_weighted_f1"]
    table = table.reindex(columns=columns)
    table.insert(0, "model", [VARIANT_TITLES[v] for v in table.index])
    return table


def ablation_table(metrics_dir: Path) -> pd.DataFrame:
    """The paper's ablation table (full, without image, without text), ours beside the paper's."""
    table = results_table(metrics_dir).loc[["full", "no_image", "no_text"]]
    return table[["model", "accuracy", "weighted_f1", "paper_accuracy", "paper_weighted_f1"]]


def split_counts(posts: pd.DataFrame, split: dict[str, np.ndarray]) -> pd.DataFrame:
    """Posts per class in the train / val split, and the usable test posts.

    Args:
        posts: the post table (:func:`msa_utils.posts.load_posts`).
        split: ``{"train", "val"}`` guid arrays (:func:`msa_utils.splits.load_split`).

    Returns:
        Rows ``positive, negative, neutral, total``; columns ``train``, ``val`` (posts per class)
        and ``test`` (the usable test posts, in the ``total`` row only: they have no label).

    Raises:
        KeyError: if a guid of the split is not in ``posts``.
    """
    labelled = posts.set_index("guid")
    columns = {}
    for part in ("train", "val"):
        labels = labelled.loc[split[part], "label"].astype(int)
        columns[part] = labels.value_counts().reindex(range(len(LABELS)), fill_value=0).to_numpy()
    table = pd.DataFrame(columns, index=list(LABELS))
    table.loc["total"] = table.sum()
    test = posts[(posts["split"] == "test") & usable(posts)]
    table["test"] = [0] * len(LABELS) + [len(test)]
    return table


def standard_error(accuracy: float, n: int) -> float:
    """Binomial standard error ``sqrt(p (1 - p) / n)`` of an accuracy ``p`` measured on ``n`` posts."""
    return math.sqrt(accuracy * (1.0 - accuracy) / n) if n > 0 else float("nan")


def markdown_table(frame: pd.DataFrame, floatfmt: str = ".3f") -> str:
    """``frame`` as a Markdown table: floats formatted once with ``floatfmt``, missing values as ``–``."""
    def fmt(v):
        if v is None or (isinstance(v, float) and pd.isna(v)):
            return "–"
        if isinstance(v, float):
            return format(v, floatfmt)
        return str(v)

    header = "| " + " | ".join(frame.columns) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    body = ["| " + " | ".join(fmt(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def write_report(cfg: Profile, data_summary: pd.DataFrame, split_counts: pd.DataFrame, test_counts: pd.Series) -> Path:
    """Write ``<results_dir>/REPORT.md``: data, results ours beside the paper's, figures.

    Args:
        cfg: the profile of the run.
        data_summary: :meth:`msa_utils.data_report.DataReport.summary` of the run.
        split_counts: posts per class and split (train / val / test).
        test_counts: predicted tag -> number of test posts.

    Returns:
        The path written.
    """
    paths = cfg.paths
    table = results_table(paths.metrics)
    full = load_variant_metrics(paths.metrics, "full")
    history = pd.read_csv(paths.metrics / "full_history.csv")
    n_val = int(split_counts.loc["total", "val"])
    accuracy = float(full["val"]["accuracy"])
    main = table.reset_index(drop=True)[MAIN_COLUMNS]
    per_class = table.reset_index(drop=True)[["model"] + [f"f1_{c}" for c in LABELS]]
    backbone = io.read_json(paths.metrics / BACKBONE_FILE)["description"]
    lines = [
        f"# Results: multimodal sentiment analysis on MVSA-Single, profile `{cfg.name}`",
        "",
        f"Produced by `msa-study --profile {cfg.name}` (notebooks 01-06). Backbone: {backbone}.",
        f"All scores are on our validation split ({cfg.val_fraction:.0%} of the labelled posts of `train.txt`, "
        f"stratified, seed {cfg.seed}); the paper's are on its own 8:2 split. With {n_val} validation posts, one "
        f"standard error of the full model's accuracy ({accuracy:.3f}) is ±{standard_error(accuracy, n_val):.3f}. "
        "The validation split also chose the best epoch (early stopping), so its scores are slightly optimistic; "
        "`test_without_label.txt` has no labels to report on.",
        "",
        "## Main results (validation)",
        "",
        markdown_table(main),
        "",
        "## F1 per class (validation)",
        "",
        markdown_table(per_class),
        "",
        "## Training of the full model",
        "",
        f"Best epoch {full['best_epoch']} of {len(history)} run (early stopping on validation weighted F1, "
        f"patience {cfg.patience}); Adam lr {cfg.lr:g}, batch {cfg.batch_size}, "
        f"{'inverse-class-frequency re-sampling' if cfg.resample else 'no re-sampling'}.",
        "",
        markdown_table(history),  # formatted once, to 3 decimals (rounding twice gave 0.673 for 0.67351)
        "",
        "## Data",
        "",
        markdown_table(split_counts.reset_index().rename(columns={"index": "class"}), floatfmt=".0f"),
        "",
        "Every item that was repaired, excluded or noted (full list: `data_report.csv`):",
        "",
        markdown_table(data_summary),
        "",
        "## Test predictions",
        "",
        f"`predictions/test_predictions.txt`, format `guid,tag` as in `test_without_label.txt`: "
        + ", ".join(f"{tag} {n}" for tag, n in test_counts.items()) + ".",
        "",
        "## Figures",
        "",
        "![validation loss](figures/06_val_loss.png) ![validation accuracy](figures/06_val_accuracy.png) "
        "![validation weighted F1](figures/06_val_f1.png)",
        "",
        "![ablation](figures/06_ablation.png) ![confusion matrix](figures/06_confusion_full.png)",
        "",
    ]
    return io.write_text(paths.results / "REPORT.md", "\n".join(lines))


CLAIMS = (
    ("image + text beats text alone", "full", "no_image"),
    ("image + text beats the image alone", "full", "no_text"),
    ("the image carries more than the text", "no_text", "no_image"),
)
"""The paper's comparisons: (claim, the variant it says is better, the variant it says is worse)."""


def readme_results(results_dir: str | Path, profile: str = "cpu") -> str:
    """The README's results block, rendered from the files of one results folder.

    A table of the validation scores (ours beside the paper's), the paper's claims with the
    direction our run shows, and where the numbers come from. Written into README.md by
    ``python -m msa_utils.docs``; a test checks that README.md holds exactly this text.

    Raises:
        FileNotFoundError: if the results folder lacks the metrics of notebooks 04-05.
    """
    metrics_dir = Path(results_dir) / "metrics"
    table = results_table(metrics_dir)
    main = table.reset_index(drop=True)[MAIN_COLUMNS]
    main.columns = [f"model (validation, `{profile}` profile)", "accuracy", "weighted F1", "macro F1",
                    "paper: accuracy", "paper: weighted F1"]
    rows = []
    for claim, better, worse in CLAIMS:
        paper = PAPER[better]["accuracy"] - PAPER[worse]["accuracy"]
        ours = table.loc[better, "accuracy"] - table.loc[worse, "accuracy"]
        rows.append({"the paper's claim": claim, "paper: accuracy difference": f"{paper:+.3f}",
                     "ours": f"{round(ours, 3) + 0.0:+.3f}", "same direction": "yes" if ours * paper > 0 else "no"})
    probe = table.loc["full", "weighted_f1"] - table.loc["linear_probe", "weighted_f1"]
    rows.append({"the paper's claim": "(ours) the fusion model beats a linear probe on the same features",
                 "paper: accuracy difference": "–", "ours": f"{round(probe, 3) + 0.0:+.3f} weighted F1", "same direction": "–"})
    full = load_variant_metrics(metrics_dir, "full")
    n_val = len(load_split(Path(results_dir) / "splits")["val"])
    accuracy = float(full["val"]["accuracy"])
    return "\n".join([
        markdown_table(main),
        "",
        markdown_table(pd.DataFrame(rows)),
        "",
        f"One seed ({n_val} validation posts: one standard error of the full model's accuracy is "
        f"±{standard_error(accuracy, n_val):.3f}); the full model's best epoch was {full['best_epoch']} of "
        f"{full['epochs_run']}. No claim gets a verdict from one seed: differences within about two standard "
        "errors are not evidence. Rendered from `results/` by `python -m msa_utils.docs`; all numbers and the "
        "training curves are in [`results/REPORT.md`](results/REPORT.md).",
    ])
