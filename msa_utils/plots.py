"""The study's figures: training curves (the paper's Figures 3-5), ablation chart, confusion matrix.

Every function returns a :class:`matplotlib.figure.Figure`; :func:`save` writes it as PNG.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from . import LABELS, io

CURVES = {
    "loss": ("val_loss", "validation loss (cross-entropy)"),
    "accuracy": ("val_accuracy", "validation accuracy"),
    "f1": ("val_weighted_f1", "validation weighted F1"),
}


def save(fig: Figure, path: str | os.PathLike, dpi: int = 110) -> Path:
    """Atomically write ``fig`` as a PNG to ``path`` (parent folders created) and return the path."""
    path = Path(path)
    with io.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    return path


def training_curve(histories: dict[str, pd.DataFrame], metric: str) -> Figure:
    """One validation curve per model variant against the epoch (the paper's Figures 3, 4, 5).

    Args:
        histories: variant name -> history from :func:`msa_utils.train.fit`.
        metric: ``"loss"``, ``"accuracy"`` or ``"f1"``; training loss is drawn dashed on the loss plot.

    Raises:
        KeyError: for an unknown ``metric``.
    """
    column, label = CURVES[metric]
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for name, history in histories.items():
        (line,) = ax.plot(history["epoch"], history[column], marker="o", label=name)
        if metric == "loss":
            ax.plot(history["epoch"], history["train_loss"], ls="--", color=line.get_color(), alpha=0.6, label=f"{name} (train)")
    ax.set_xlabel("epoch")
    ax.set_ylabel(label)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def ablation_chart(table: pd.DataFrame) -> Figure:
    """Grouped bars of accuracy and weighted F1, ours next to the paper's, per model variant.

    Args:
        table: one row per variant (index = variant name) with columns ``accuracy``,
            ``weighted_f1``, ``paper_accuracy``, ``paper_weighted_f1``.
    """
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    x = np.arange(len(table))
    bars = [
        ("accuracy", "ours: accuracy", "tab:blue", None),
        ("weighted_f1", "ours: weighted F1", "tab:orange", None),
        ("paper_accuracy", "paper: accuracy", "tab:blue", "//"),
        ("paper_weighted_f1", "paper: weighted F1", "tab:orange", "//"),
    ]
    width = 0.2
    for i, (column, label, color, hatch) in enumerate(bars):
        values = table[column].astype(float).to_numpy()
        ax.bar(x + (i - 1.5) * width, values, width, label=label, color=color, hatch=hatch,
               alpha=0.45 if hatch else 0.9, edgecolor="black", linewidth=0.4)
    ax.set_xticks(x, table.index)
    ax.set_ylim(0, 1)
    ax.set_ylabel("validation score")
    ax.legend(fontsize=8, ncols=4, loc="upper center", bbox_to_anchor=(0.5, -0.1), frameon=False)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def confusion_matrix_plot(matrix: np.ndarray, title: str = "") -> Figure:
    """A (3, 3) confusion matrix (rows gold, columns predicted) with counts and row shares."""
    matrix = np.asarray(matrix)
    shares = matrix / matrix.sum(1, keepdims=True).clip(min=1)
    fig, ax = plt.subplots(figsize=(4.2, 3.6))
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            ax.text(j, i, f"{matrix[i, j]}\n{shares[i, j]:.0%}", ha="center", va="center",
                    color="white" if shares[i, j] > 0.6 else "black", fontsize=9)
    ax.set_xticks(range(len(LABELS)), LABELS)
    ax.set_yticks(range(len(LABELS)), LABELS)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def class_counts_chart(table: pd.DataFrame) -> Figure:
    """Bars of class counts before and after re-sampling (columns ``before``, ``after``)."""
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
