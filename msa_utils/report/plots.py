"""The study's figures: training curves with seed bands (the paper's Figures 3-5), test scores per
model, the claims' intervals, confusion matrix.

Every figure function returns a :class:`matplotlib.figure.Figure` and draws with the current
matplotlib/seaborn settings (notebooks call :func:`set_style` first, through :func:`msa_utils.runner.notebook.setup`).
:func:`save_figure` is the one way the study writes a figure: an atomic PNG without the
matplotlib version in its metadata, after which the figure is closed. A notebook shows the saved
file, so what the reader sees is exactly what was written::

    from IPython.display import Image, display
    display(Image(filename=plots.save_figure(fig, paths.figures / "07_scores.png")))

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

from msa_utils import io
from msa_utils.config.labels import LABELS

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
    (:func:`msa_utils.runner.notebook.setup` calls it)."""
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


def training_curve(histories: dict[str, pd.DataFrame], metric: str, titles: dict[str, str]) -> Figure:
    """Validation curves against the epoch, mean ± standard deviation over seeds (the paper's
    Figures 3, 4, 5, with seed bands).

    Drawn with ``seaborn.lineplot`` (colour = model, ``errorbar="sd"``: the band is one standard
    deviation over the seeds that ran that epoch; early stopping ends seeds at different epochs).
    The loss plot adds the training loss, dashed. Each legend entry gives the kept (best
    validation) epoch of every seed.

    Args:
        histories: model name -> the rows of ``metrics/runs/<model>_history.csv`` (columns
            ``seed``, ``epoch``, ``train_loss``, ``val_loss``, ``val_accuracy``,
            ``val_weighted_f1``), in legend order.
        metric: ``"loss"``, ``"accuracy"`` or ``"f1"``.
        titles: model name -> legend label (the name where it has none).

    Returns:
        The figure: x label ``epoch``; y label from :data:`CURVES` (``"loss (cross-entropy)"``
        on the loss plot, which shows both splits).

    Raises:
        KeyError: for an unknown ``metric`` or a missing history column.
        ValueError: if ``histories`` is empty.
    """
    column, label = CURVES[metric]
    if metric == "loss":
        label = "loss (cross-entropy)"
    if not histories:
        raise ValueError("no training histories to plot")
    names = []
    rows = []
    for name, history in histories.items():
        best = history.loc[history.groupby("seed")["val_weighted_f1"].idxmax(), "epoch"].astype(int).tolist()
        title = f"{titles.get(name, name)} (best epochs {', '.join(map(str, best))})"
        names.append(title)
        rows.append(pd.DataFrame({"epoch": history["epoch"].astype(int), "value": history[column].astype(float),
                                  "model": title, "split": "validation"}))
        if metric == "loss":
            rows.append(pd.DataFrame({"epoch": history["epoch"].astype(int),
                                      "value": history["train_loss"].astype(float), "model": title,
                                      "split": "training"}))
    long = pd.concat(rows, ignore_index=True)
    fig, ax = plt.subplots(figsize=(8.2, 3.9))
    sns.lineplot(data=long, x="epoch", y="value", hue="model", hue_order=names,
                 style="split" if metric == "loss" else None,
                 style_order=["validation", "training"] if metric == "loss" else None,
                 marker="o", dashes=True, errorbar="sd", ax=ax)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.set_xlabel("epoch")
    ax.set_ylabel(label)
    ax.set_title(f"{label[0].upper()}{label[1:]} per epoch (mean ± std over seeds)", fontsize=11)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def scores_chart(runs: pd.DataFrame, paper: dict[str, dict], titles: dict[str, str],
                 baselines: pd.DataFrame | None = None) -> Figure:
    """Test accuracy and weighted F1 of each model: every seed, their mean ± std, the paper's value.

    ``seaborn.pointplot`` (``errorbar="sd"``) of the per-seed scores with the seeds as dots
    (``seaborn.stripplot``); an open black diamond marks the paper's value where it reports one;
    the baselines (deterministic, one value) are dashed horizontal lines.

    Args:
        runs: per-seed rows (``metrics/runs/<variant>.csv``: ``variant``, ``test_accuracy``,
            ``test_weighted_f1``), in plot order.
        paper: variant -> ``{"accuracy", "weighted_f1"}`` (e.g. :data:`msa_utils.report.summary.PAPER`).
        titles: variant -> tick label.
        baselines: optional ``metrics/baselines.csv`` rows (index: baseline; ``title``,
            ``test_accuracy``, ``test_weighted_f1``) drawn as lines.

    Returns:
        The figure: two axes, ``"accuracy"`` and ``"weighted F1"``.

    Raises:
        ValueError: if ``runs`` is empty.
    """
    if len(runs) == 0:
        raise ValueError("no runs to plot")
    names = list(dict.fromkeys(runs["variant"]))
    ticks = [titles.get(n, n) for n in names]
    frame = runs.assign(model=runs["variant"].map(lambda n: titles.get(n, n)))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4), sharey=True)
    for ax, key, name in ((axes[0], "accuracy", "accuracy"), (axes[1], "weighted_f1", "weighted F1")):
        sns.stripplot(data=frame, x="model", y=f"test_{key}", order=ticks, color="0.6", size=4, jitter=False, ax=ax)  # no jitter: same PNG every run
        sns.pointplot(data=frame, x="model", y=f"test_{key}", order=ticks, errorbar="sd", color=OURS_COLOR,
                      linestyle="none", capsize=0.15, markers="o", ax=ax)
        shown = [(i, paper[n][key]) for i, n in enumerate(names) if n in paper]
        if shown:
            ax.plot([i + 0.25 for i, _ in shown], [v for _, v in shown], marker="D", markersize=7,
                    markerfacecolor="none", markeredgecolor=PAPER_COLOR, markeredgewidth=1.5, linestyle="none")
        if baselines is not None:
            styles = ["--", ":", "-.", (0, (5, 1, 1, 1))]  # equal values stay distinguishable
            for i, ((base, row), color) in enumerate(zip(baselines.iterrows(), sns.color_palette("muted", len(baselines)))):
                ax.axhline(row[f"test_{key}"], color=color, linestyle=styles[i % len(styles)], linewidth=1.2,
                           label=row["title"])
        ax.set_xticks(range(len(ticks)), ticks, rotation=35, ha="right", fontsize=8)
        ax.set_xlabel("")
        ax.set_ylabel(f"test {name}")
        ax.set_title(name, fontsize=11)
        ax.grid(axis="y", alpha=0.3)
    handles = [Line2D([], [], marker="o", color=OURS_COLOR, label="ours: mean ± std over seeds"),
               Line2D([], [], marker="o", color="0.6", linestyle="none", label="one seed"),
               Line2D([], [], marker="D", markerfacecolor="none", markeredgecolor=PAPER_COLOR, linestyle="none",
                      label="paper")]
    if baselines is not None:
        handles += axes[0].get_legend_handles_labels()[0][:len(baselines)]
    fig.legend(handles=handles, loc="upper center", ncols=4, fontsize=8, frameon=False, bbox_to_anchor=(0.5, 1.08))
    fig.tight_layout()
    return fig


def claims_chart(claims: pd.DataFrame) -> Figure:
    """Each claim's paired difference on the test part with its 95% interval, coloured by verdict.

    Args:
        claims: :func:`msa_utils.experiments.claims.claims_table` (columns ``id``, ``claim``, ``difference``,
            ``low``, ``high``, ``verdict``); rows without a difference (the best epochs, claims not
            tested) are left out.

    Returns:
        The figure: one horizontal interval per claim, a vertical line at 0.

    Raises:
        ValueError: if no row has a difference.
    """
    shown = claims.dropna(subset=["difference"]).reset_index(drop=True)
    if len(shown) == 0:
        raise ValueError("no claim with a difference to plot")
    colors = {"supported": "tab:green", "contradicted": "tab:red", "inconclusive": "tab:gray"}
    fig, ax = plt.subplots(figsize=(8.5, 0.42 * len(shown) + 1.2))
    y = np.arange(len(shown))[::-1]
    for yi, (_, row) in zip(y, shown.iterrows()):
        ax.errorbar(row["difference"], yi, xerr=[[row["difference"] - row["low"]], [row["high"] - row["difference"]]],
                    fmt="o", color=colors.get(row["verdict"], "black"), capsize=4)
    ax.axvline(0.0, color="black", linewidth=0.8)
    labels = [f"{r['id']}: {r['claim']}" for _, r in shown.iterrows()]
    ax.set_yticks(y, [label if len(label) < 70 else label[:67] + "..." for label in labels], fontsize=8)
    ax.set_xlabel("test weighted F1: claimed better minus worse (1a: ours minus the paper's 0.73)")
    handles = [Line2D([], [], marker="o", color=c, linestyle="none", label=v) for v, c in colors.items()]
    ax.legend(handles=handles, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.12 - 1.0 / (len(shown) + 3)),
              ncols=3, frameon=False)
    ax.set_title("The paper's claims on the held-out test part (95% paired bootstrap intervals over posts and seeds)",
                 fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def confusion_matrix_plot(matrix: np.ndarray, title: str = "") -> Figure:
    """A (3, 3) confusion matrix as a ``seaborn.heatmap`` of row shares, annotated with counts and shares.

    Rows are the gold classes, columns the predicted ones, both in :data:`msa_utils.LABELS`
    order (as :func:`msa_utils.train.metrics.confusion` returns them). The colour is the share of the
    gold row (0-1, so the diagonal reads as per-class recall); each cell shows ``count`` and
    ``share``. A row without posts shows 0 %.

    Args:
        matrix: (3, 3) non-negative counts.
        title: axes title; a second line ``(n = <total>)`` is added.

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
    ax.set_title(f"{title}\n(n = {total})" if title else f"n = {total}", fontsize=10)
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
