"""The study's figures, in :func:`set_style`'s style; :func:`save_figure` gives the same bytes for the
same inputs, so a notebook shows the saved file: ``display(Image(filename=plots.save_figure(fig, path)))``."""

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
    "loss": ("val_loss", "loss (cross-entropy)"),  # with the training loss
    "accuracy": ("val_accuracy", "validation accuracy"),
    "f1": ("val_weighted_f1", "validation weighted F1"),
}

OURS_COLOR = "tab:blue"
PAPER_COLOR = "black"


def set_style() -> None:
    """Seaborn's ``ticks`` theme at 110 dpi."""
    sns.set_theme(context="notebook", style="ticks", rc={"figure.dpi": 110, "savefig.dpi": 110})


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int = 110) -> Path:
    """Write ``fig`` as PNG to ``path`` atomically, without the matplotlib version, and close it (also on
    failure: the inline backend would show it twice); return ``path``. OSError leaves ``path`` untouched."""
    path = Path(path)
    try:
        with io.atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    finally:
        plt.close(fig)
    return path


def _epoch_axis(ax, label: str) -> None:
    ax.set(xlabel="epoch", ylabel=label)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)


def training_curve(histories: dict[str, pd.DataFrame], metric: str, titles: dict[str, str]) -> Figure:
    """Validation ``metric`` (a key of :data:`CURVES`; loss adds the training loss, dashed) per epoch of
    each model of ``histories`` (name -> ``<model>_history.csv`` rows), mean ± std over seeds, each
    seed's best epoch in the legend. KeyError for an unknown metric or column; ValueError if empty."""
    column, label = CURVES[metric]
    if not histories:
        raise ValueError("no training histories to plot")
    names, rows = [], []
    for name, history in histories.items():
        best = history.loc[history.groupby("seed")["val_weighted_f1"].idxmax(), "epoch"].astype(int).tolist()
        names.append(f"{titles.get(name, name)} (best epochs {', '.join(map(str, best))})")
        for split, values in (("validation", column), ("training", "train_loss"))[:2 if metric == "loss" else 1]:
            rows.append(pd.DataFrame({"epoch": history["epoch"].astype(int), "value": history[values].astype(float),
                                      "model": names[-1], "split": split}))
    long = pd.concat(rows, ignore_index=True)
    fig, ax = plt.subplots(figsize=(8.2, 3.9))
    style = {"style": "split", "style_order": ["validation", "training"]} if metric == "loss" else {}
    sns.lineplot(data=long, x="epoch", y="value", hue="model", hue_order=names, marker="o", dashes=True,
                 errorbar="sd", ax=ax, **style)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    _epoch_axis(ax, label)
    ax.set_title(f"{label[0].upper()}{label[1:]} per epoch (mean ± std over seeds)", fontsize=11)
    fig.tight_layout()
    return fig


def run_curve(history: pd.DataFrame, title: str) -> Figure:
    """One seed's losses (left) and validation weighted F1 (right) per epoch, the best epoch marked."""
    best = int(history.loc[history["val_weighted_f1"].idxmax(), "epoch"])
    fig, (loss, f1) = plt.subplots(1, 2, figsize=(9, 3.4))
    loss.plot(history["epoch"], history["train_loss"], "o--", label="training")
    loss.plot(history["epoch"], history["val_loss"], "o-", label="validation")
    loss.legend(fontsize=8)
    f1.plot(history["epoch"], history["val_weighted_f1"], "o-", color="tab:green")
    for ax, label in ((loss, CURVES["loss"][1]), (f1, CURVES["f1"][1])):
        ax.axvline(best, color="0.5", linestyle=":", linewidth=1)
        _epoch_axis(ax, label)
    fig.suptitle(f"{title}: best validation epoch {best}", fontsize=11)
    fig.tight_layout()
    return fig


def scores_chart(runs: pd.DataFrame, paper: dict[str, dict], titles: dict[str, str],
                 baselines: pd.DataFrame | None = None) -> Figure:
    """Test accuracy and weighted F1 of each model of ``runs`` (per-run rows, in plot order): every run,
    mean ± std, the ``paper``'s value; ``baselines`` rows as horizontal lines. ValueError if no runs."""
    if len(runs) == 0:
        raise ValueError("no runs to plot")
    names = list(dict.fromkeys(runs["variant"]))
    ticks = [titles.get(n, n) for n in names]
    frame = runs.assign(model=runs["variant"].map(lambda n: titles.get(n, n)))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4), sharey=True)
    for ax, key, name in ((axes[0], "accuracy", "accuracy"), (axes[1], "weighted_f1", "weighted F1")):
        sns.stripplot(data=frame, x="model", y=f"test_{key}", order=ticks, color="0.6", size=4, jitter=False,
                      ax=ax)  # no jitter: same PNG every run
        sns.pointplot(data=frame, x="model", y=f"test_{key}", order=ticks, errorbar="sd", color=OURS_COLOR,
                      linestyle="none", capsize=0.15, markers="o", ax=ax)
        shown = [(i, paper[n][key]) for i, n in enumerate(names) if n in paper]
        if shown:
            ax.plot([i + 0.25 for i, _ in shown], [v for _, v in shown], marker="D", markersize=7,
                    markerfacecolor="none", markeredgecolor=PAPER_COLOR, markeredgewidth=1.5, linestyle="none")
        if baselines is not None:
            styles = ["--", ":", "-.", (0, (5, 1, 1, 1))]  # equal values stay distinguishable
            colors = sns.color_palette("muted", len(baselines))
            for i, ((_, row), color) in enumerate(zip(baselines.iterrows(), colors)):
                ax.axhline(row[f"test_{key}"], color=color, linestyle=styles[i % len(styles)], linewidth=1.2,
                           label=row["title"])
        ax.set_xticks(range(len(ticks)), ticks, rotation=35, ha="right", fontsize=8)
        ax.set(xlabel="", ylabel=f"test {name}")
        ax.set_title(name, fontsize=11)
        ax.grid(axis="y", alpha=0.3)
    handles = [Line2D([], [], marker="o", color=OURS_COLOR, label="ours: mean ± std over runs"),
               Line2D([], [], marker="o", color="0.6", linestyle="none", label="one run"),
               Line2D([], [], marker="D", markerfacecolor="none", markeredgecolor=PAPER_COLOR, linestyle="none",
                      label="paper")]
    if baselines is not None:
        handles += axes[0].get_legend_handles_labels()[0][:len(baselines)]
    fig.legend(handles=handles, loc="upper center", ncols=4, fontsize=8, frameon=False, bbox_to_anchor=(0.5, 1.08))
    fig.tight_layout()
    return fig


def claims_chart(claims: pd.DataFrame) -> Figure:
    """Each claim's difference with its interval, coloured by verdict, the paper's effect (``paper_low`` to
    ``paper_high``) marked beside it where it states one; ValueError if no claim has a difference."""
    shown = claims.dropna(subset=["difference"]).reset_index(drop=True)
    if len(shown) == 0:
        raise ValueError("no claim with a difference to plot")
    colors = {"supported": "tab:green", "reproduced": "tab:green", "contradicted": "tab:red", "opposite": "tab:red"}
    fig, ax = plt.subplots(figsize=(8.5, 0.42 * len(shown) + 1.2))
    y = np.arange(len(shown))[::-1]
    for yi, (_, row) in zip(y, shown.iterrows()):
        ax.errorbar(row["difference"], yi, xerr=[[row["difference"] - row["low"]], [row["high"] - row["difference"]]],
                    fmt="o", color=colors.get(row["verdict"].split()[0], "tab:gray"), capsize=4)
        if not pd.isna(row.get("paper_low", np.nan)):
            ax.plot([row["paper_low"], row["paper_high"]], [yi - 0.25] * 2, color="black", marker="v", markersize=5,
                    linewidth=2)
    ax.axvline(0.0, color="black", linewidth=0.8)
    labels = [f"{r['id']}: {r['claim']}" for _, r in shown.iterrows()]
    ax.set_yticks(y, [label if len(label) < 70 else label[:67] + "..." for label in labels], fontsize=8)
    ax.set_xlabel("weighted F1 (1a-m: macro F1): claimed better minus worse (1a: ours minus the paper's 0.73)")
    handles = [Line2D([], [], marker="o", color=c, linestyle="none", label=v)
               for v, c in (("supported / reproduced", "tab:green"), ("contradicted / opposite", "tab:red"),
                            ("inconclusive", "tab:gray"))]
    handles.append(Line2D([], [], marker="v", color="black", label="the paper's effect"))
    ax.legend(handles=handles, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.12 - 1.0 / (len(shown) + 3)),
              ncols=4, frameon=False)
    ax.set_title("The paper's claims over the cross-validation runs (95% corrected resampled t intervals)", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def confusion_matrix_plot(matrix: np.ndarray, title: str = "") -> Figure:
    """A (3, 3) count matrix (rows gold) as a heatmap of row shares, cells annotated with count and share;
    ValueError if it is not (3, 3) or has negative entries."""
    matrix = np.asarray(matrix)
    if matrix.shape != (len(LABELS), len(LABELS)) or (matrix < 0).any():
        raise ValueError(f"need a non-negative ({len(LABELS)}, {len(LABELS)}) count matrix, got shape {matrix.shape}")
    matrix = matrix.astype(np.int64)
    shares = matrix / matrix.sum(1, keepdims=True).clip(min=1)
    annot = np.array([[f"{n}\n{share:.0%}" for n, share in zip(*row)] for row in zip(matrix, shares)])
    fig, ax = plt.subplots(figsize=(4.8, 3.9))
    sns.heatmap(pd.DataFrame(shares, index=list(LABELS), columns=list(LABELS)), annot=annot, fmt="",
                cmap="Blues", vmin=0.0, vmax=1.0, square=True, linewidths=0.5, linecolor="white",
                cbar_kws={"label": "share of the gold row"}, annot_kws={"fontsize": 9}, ax=ax)
    ax.set(xlabel="predicted", ylabel="gold")
    ax.tick_params(axis="y", labelrotation=0)
    ax.set_title(f"{title}\n(n = {matrix.sum()})" if title else f"n = {matrix.sum()}", fontsize=10)
    fig.tight_layout()
    return fig


def class_counts_chart(table: pd.DataFrame) -> Figure:
    """Bars per class (``table``'s index) of its ``before`` and ``after`` (one re-sampled epoch) counts."""
    fig, ax = plt.subplots(figsize=(5, 3.4))
    x = np.arange(len(table))
    ax.bar(x - 0.2, table["before"], 0.4, label="training split")
    ax.bar(x + 0.2, table["after"], 0.4, label="re-sampled (one epoch)")
    ax.set(xticks=x, xticklabels=table.index, ylabel="posts")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig
