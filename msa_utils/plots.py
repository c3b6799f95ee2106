"""The study's figures: training curves (the paper's Figures 3-5), ablation chart, confusion matrix.

Every figure function returns a :class:`matplotlib.figure.Figure` and draws with the current
matplotlib/seaborn settings (notebooks call :func:`set_style` first, through :func:`msa_utils.notebook.setup`).
:func:`save_figure` is the one way the study writes a figure: an atomic PNG without the
matplotlib version in its metadata, after which the figure is closed. A notebook shows the saved
file, so what the reader sees is exactly what was written::

    from IPython.display import Image, display
    display(Image(filename=plots.save_figure(fig, paths.figures / "06_ablation.png")))

Every figure is deterministic: the same inputs and settings give the same PNG bytes (the
bootstrap intervals are seeded).
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from . import LABEL2ID, LABELS, io
from .metrics import bootstrap_interval, weighted_f1
from .summary import VARIANT_TITLES

CURVES = {
    "loss": ("val_loss", "validation loss (cross-entropy)"),
    "accuracy": ("val_accuracy", "validation accuracy"),
    "f1": ("val_weighted_f1", "validation weighted F1"),
}
"""``training_curve`` metric -> (history column, axis label)."""

OURS_COLOR = "tab:blue"
PAPER_COLOR = "black"


def set_style() -> None:
    """Plotting defaults of every figure of the study: seaborn's ``ticks`` theme, 110 dpi
    (:func:`msa_utils.notebook.setup` calls it)."""
    sns.set_theme(context="notebook", style="ticks", rc={"figure.dpi": 110, "savefig.dpi": 110})


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int = 110) -> Path:
    """Write ``fig`` as PNG to ``path`` atomically, then close it; return the path.

    The write goes through :func:`msa_utils.io.atomic_path` (parent folders created; an
    interrupted save leaves no partial file). The PNG's ``Software`` text chunk is left out, so
    the bytes do not depend on the matplotlib version string. The figure is closed afterwards
    (also when saving fails) so that a notebook does not accumulate open figures and the inline
    backend does not show it a second time; display the saved file instead, e.g.
    ``display(Image(filename=save_figure(fig, path)))``.

    Args:
        fig: the figure to write.
        path: destination ``.png`` file.
        dpi: resolution in dots per inch.

    Returns:
        ``path`` as a :class:`pathlib.Path`.

    Raises:
        OSError: if the file cannot be written (``path`` is then left untouched).
    """
    path = Path(path)
    try:
        with io.atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    finally:
        plt.close(fig)
    return path


def best_epoch(history: pd.DataFrame) -> int:
    """The epoch whose weights :func:`msa_utils.train.fit` keeps: the first with the highest
    validation weighted F1 (column ``val_weighted_f1``).

    Raises:
        KeyError: if ``history`` lacks the ``epoch`` or ``val_weighted_f1`` column.
        ValueError: if ``history`` is empty.
    """
    if len(history) == 0:
        raise ValueError("empty training history")
    return int(history["epoch"].iloc[int(np.argmax(history["val_weighted_f1"].to_numpy()))])


def training_curve(histories: dict[str, pd.DataFrame], metric: str, titles: dict[str, str] | None = None) -> Figure:
    """One validation curve per model variant against the epoch (the paper's Figures 3, 4, 5).

    Drawn with ``seaborn.lineplot`` (colour = variant). The loss plot adds the training loss,
    dashed. A large open circle marks each variant's kept epoch (:func:`best_epoch`, the highest
    validation weighted F1), so the reader sees which checkpoint the reported numbers come from.

    Args:
        histories: variant name -> history from :func:`msa_utils.train.fit` (columns ``epoch``,
            ``train_loss``, ``val_loss``, ``val_accuracy``, ``val_weighted_f1``), in legend order.
        metric: ``"loss"``, ``"accuracy"`` or ``"f1"``.
        titles: variant name -> legend label; default :data:`msa_utils.summary.VARIANT_TITLES`
            (the variant name where it has none).

    Returns:
        The figure: x label ``epoch``; y label from :data:`CURVES` (``"loss (cross-entropy)"``
        on the loss plot, which shows both splits); title ``"<Y label> per epoch"``.

    Raises:
        KeyError: for an unknown ``metric`` or a missing history column.
        ValueError: if ``histories`` is empty.
    """
    column, label = CURVES[metric]
    if metric == "loss":
        label = "loss (cross-entropy)"
    if not histories:
        raise ValueError("no training histories to plot")
    if titles is None:
        titles = VARIANT_TITLES
    names = [titles.get(name, name) for name in histories]
    rows = []
    for name, history in zip(names, histories.values()):
        rows.append(pd.DataFrame({"epoch": history["epoch"].astype(int), "value": history[column].astype(float),
                                  "variant": name, "split": "validation"}))
        if metric == "loss":
            rows.append(pd.DataFrame({"epoch": history["epoch"].astype(int), "value": history["train_loss"].astype(float),
                                      "variant": name, "split": "training"}))
    long = pd.concat(rows, ignore_index=True)
    palette = dict(zip(names, sns.color_palette(n_colors=len(names))))
    fig, ax = plt.subplots(figsize=(7.4, 3.8))
    sns.lineplot(data=long, x="epoch", y="value", hue="variant", hue_order=names, palette=palette,
                 style="split" if metric == "loss" else None,
                 style_order=["validation", "training"] if metric == "loss" else None,
                 markers=metric == "loss", marker=None if metric == "loss" else "o", dashes=True, errorbar=None,
                 ax=ax)
    for name, history in zip(names, histories.values()):
        epoch = best_epoch(history)
        value = float(history.loc[history["epoch"] == epoch, column].iloc[0])
        ax.plot([epoch], [value], marker="o", markersize=13, markerfacecolor="none",
                markeredgecolor=palette[name], markeredgewidth=1.5, linestyle="none")
    handles, labels = ax.get_legend_handles_labels()
    handles.append(Line2D([], [], marker="o", markersize=11, markerfacecolor="none", markeredgecolor="gray",
                          linestyle="none"))
    labels.append("kept epoch (best val. weighted F1)")
    ax.legend(handles, labels, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.set_xlabel("epoch")
    ax.set_ylabel(label)
    ax.set_title(f"{label[0].upper()}{label[1:]} per epoch", fontsize=11)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def _label_ids(values: pd.Series, what: str) -> np.ndarray:
    ids = values.map(LABEL2ID)
    if ids.isna().any():
        bad = sorted(set(values[ids.isna()].astype(str)))[:5]
        raise ValueError(f"{what}: labels not in {LABELS}: {bad}")
    return ids.to_numpy(dtype=np.int64)


def ablation_chart(
    val_predictions: dict[str, pd.DataFrame],
    paper: dict[str, dict],
    titles: dict[str, str] | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
) -> Figure:
    """Validation accuracy and weighted F1 per model variant, with 95% bootstrap intervals, beside
    the paper's numbers.

    Left panel: ``seaborn.pointplot`` of the mean per-post correctness (= accuracy) with
    ``errorbar=("ci", 95)``, ``n_boot=n_resamples``, ``seed=seed``. Right panel: our weighted F1
    (scikit-learn, over the three classes) with the interval of
    :func:`msa_utils.metrics.bootstrap_interval` (same resampling scheme and seed). The paper's
    value is an open black diamond right of ours (no diamond where ``paper`` lacks the variant).
    Intervals cover the sampling variation of the validation posts only, not training randomness.

    Args:
        val_predictions: variant name -> the content of ``predictions/val_<variant>.csv``
            (columns ``gold``, ``pred`` with names from :data:`msa_utils.LABELS`), in plot order.
        paper: variant name -> ``{"accuracy": float, "weighted_f1": float}``, e.g.
            :data:`msa_utils.summary.PAPER`.
        titles: variant name -> x tick label; default :data:`msa_utils.summary.VARIANT_TITLES`
            (the variant name where it has none).
        n_resamples: bootstrap resamples per variant and metric (about 2 s per variant at 1000).
        seed: seed of every bootstrap, so the PNG is the same on every run.

    Returns:
        The figure: two axes titled ``"accuracy"`` and ``"weighted F1"`` (y labels ``validation
        accuracy`` / ``validation weighted F1``), x label ``model``.

    Raises:
        ValueError: if ``val_predictions`` is empty, a frame is empty or has labels outside
            :data:`msa_utils.LABELS`.
        KeyError: if a frame lacks the ``gold`` or ``pred`` column.
    """
    if not val_predictions:
        raise ValueError("no validation predictions to plot")
    if titles is None:
        titles = VARIANT_TITLES
    names = list(val_predictions)
    ticks = [titles.get(name, name) for name in names]
    correct_rows, f1_rows, sizes = [], [], []
    for name, tick in zip(names, ticks):
        frame = val_predictions[name]
        if len(frame) == 0:
            raise ValueError(f"{name}: no validation predictions")
        gold = _label_ids(frame["gold"], name)
        pred = _label_ids(frame["pred"], name)
        sizes.append(len(frame))
        correct_rows.append(pd.DataFrame({"model": tick, "correct": (gold == pred).astype(float)}))
        f1 = weighted_f1(gold, pred)
        low, high = bootstrap_interval(gold, pred, "weighted_f1", n_resamples=n_resamples, seed=seed)
        f1_rows.append((f1, low, high))
    correct = pd.concat(correct_rows, ignore_index=True)
    accuracy = correct.groupby("model", sort=False)["correct"].mean().to_numpy()

    fig, axes = plt.subplots(1, 2, figsize=(10.5, 4.2), sharey=True)
    ax_acc, ax_f1 = axes
    x = np.arange(len(names))
    sns.pointplot(data=correct, x="model", y="correct", order=ticks, errorbar=("ci", 95), n_boot=n_resamples,
                  seed=seed, color=OURS_COLOR, linestyle="none", capsize=0.12, err_kws={"linewidth": 1.5},
                  ax=ax_acc)
    f1 = np.array(f1_rows)
    ax_f1.errorbar(x, f1[:, 0], yerr=[f1[:, 0] - f1[:, 1], f1[:, 2] - f1[:, 0]], fmt="o", color=OURS_COLOR,
                   capsize=5, elinewidth=1.5, markersize=7)
    for ax, ours, key in ((ax_acc, accuracy, "accuracy"), (ax_f1, f1[:, 0], "weighted_f1")):
        theirs = [paper.get(name, {}).get(key) for name in names]
        shown = [(i, v) for i, v in enumerate(theirs) if v is not None]
        if shown:
            ax.plot([i + 0.22 for i, _ in shown], [v for _, v in shown], marker="D", markersize=7,
                    markerfacecolor="none", markeredgecolor=PAPER_COLOR, markeredgewidth=1.5, linestyle="none")
        for i, v in enumerate(ours):
            ax.annotate(f"{v:.3f}", (i, v), xytext=(-8, 0), textcoords="offset points", ha="right", va="center",
                        fontsize=8, color=OURS_COLOR)
        ax.set_xticks(x, ticks, fontsize=9)
        ax.set_xlim(-0.6, len(names) - 0.4)
        ax.margins(y=0.12)
        ax.set_xlabel("model")
        ax.grid(axis="y", alpha=0.3)
    ax_acc.set_ylabel("validation accuracy")
    ax_f1.set_ylabel("validation weighted F1")
    ax_f1.yaxis.set_tick_params(labelleft=True)
    ax_acc.set_title("accuracy", fontsize=11)
    ax_f1.set_title("weighted F1", fontsize=11)
    n_text = f"n = {sizes[0]}" if len(set(sizes)) == 1 else "n = " + ", ".join(map(str, sizes))
    fig.suptitle(f"Ablation on the validation posts ({n_text}; 95% bootstrap intervals, {n_resamples} resamples)",
                 fontsize=11)
    handles = [
        Line2D([], [], marker="o", color=OURS_COLOR, markersize=7, label="ours, 95% bootstrap interval"),
        Line2D([], [], marker="D", markersize=7, markerfacecolor="none", markeredgecolor=PAPER_COLOR,
               markeredgewidth=1.5, linestyle="none", label="paper"),
    ]
    fig.legend(handles=handles, loc="lower center", ncols=2, fontsize=9, frameon=False, bbox_to_anchor=(0.5, -0.02))
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig


def confusion_matrix_plot(matrix: np.ndarray, title: str = "") -> Figure:
    """A (3, 3) confusion matrix as a ``seaborn.heatmap`` of row shares, annotated with counts and shares.

    Rows are the gold classes, columns the predicted ones, both in :data:`msa_utils.LABELS`
    order (as :func:`msa_utils.metrics.confusion` returns them). The colour is the share of the
    gold row (0-1, so the diagonal reads as per-class recall); each cell shows ``count`` and
    ``share``. A row without posts shows 0 %.

    Args:
        matrix: (3, 3) non-negative counts.
        title: axes title; `` (n = <total>)`` is appended.

    Returns:
        The figure: x label ``predicted``, y label ``gold``.

    Raises:
        ValueError: if ``matrix`` is not (3, 3) or has negative entries.
    """
    matrix = np.asarray(matrix)
    if matrix.shape != (len(LABELS), len(LABELS)) or (matrix < 0).any():
        raise ValueError(f"need a non-negative ({len(LABELS)}, {len(LABELS)}) count matrix, got shape {matrix.shape}")
    matrix = matrix.astype(np.int64)
    shares = matrix / matrix.sum(1, keepdims=True).clip(min=1)
    annot = np.array([[f"{matrix[i, j]}\n{shares[i, j]:.0%}" for j in range(matrix.shape[1])]
                      for i in range(matrix.shape[0])])
    fig, ax = plt.subplots(figsize=(4.8, 3.9))
    sns.heatmap(pd.DataFrame(shares, index=list(LABELS), columns=list(LABELS)), annot=annot, fmt="",
                cmap="Blues", vmin=0.0, vmax=1.0, square=True, linewidths=0.5, linecolor="white",
                cbar_kws={"label": "share of the gold row"}, annot_kws={"fontsize": 9}, ax=ax)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    ax.tick_params(axis="y", labelrotation=0)
    total = int(matrix.sum())
    ax.set_title(f"{title} (n = {total})" if title else f"n = {total}", fontsize=10)
    fig.tight_layout()
    return fig


def class_counts_chart(table: pd.DataFrame) -> Figure:
    """Bars of class counts before and after re-sampling, per class.

    Args:
        table: one row per class (index = class name) with columns ``before`` (posts in the
            training split) and ``after`` (posts drawn for one re-sampled epoch).

    Returns:
        The figure: y label ``posts``.

    Raises:
        KeyError: if a column is missing.
    """
    fig, ax = plt.subplots(figsize=(5, 3.4))
    x = np.arange(len(table))
    ax.bar(x - 0.2, table["before"], 0.4, label="training split")
    ax.bar(x + 0.2, table["after"], 0.4, label="re-sampled (one epoch)")
    ax.set_xticks(x, table.index)
    ax.set_ylabel("posts")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig
