"""Tables and figures of the data exploration (notebook ``01_explore``).

Each ``*_figure`` function takes the post table (:func:`msa_utils.data.posts.build_posts`, the
columns named in its docstring) and returns a ``matplotlib.figure.Figure``; each
``*_table``/``*_counts`` function returns a small DataFrame/Series. Figures are written with
:func:`msa_utils.report.plots.save_figure`, which closes them.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from msa_utils.config.labels import LABELS
from msa_utils.io import hashing
from msa_utils.data.images import ImageLoadError, load_image
from msa_utils.data.post_text import draw_post_text

SPLIT_ORDER = ("train", "test")


def class_balance_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Posts per split and tag, with the share of each tag within its split [%].

    Columns: ``split, tag, posts, share_pct``; tags in :data:`msa_utils.LABELS` order, then others.
    """
    counts = frame.groupby(["split", "tag"], sort=False).size().rename("posts").reset_index()
    counts["share_pct"] = (100 * counts["posts"] / counts.groupby("split")["posts"].transform("sum")).round(1)
    order = {t: i for i, t in enumerate(LABELS)}
    counts["_split"] = counts["split"].map({s: i for i, s in enumerate(SPLIT_ORDER)}).fillna(len(SPLIT_ORDER))
    counts["_tag"] = counts["tag"].map(order).fillna(len(order))
    return counts.sort_values(["_split", "_tag"]).drop(columns=["_split", "_tag"]).reset_index(drop=True)


def class_balance_figure(frame: pd.DataFrame) -> Figure:
    """Bar chart of the labelled (train) posts per class, with counts and shares on the bars.

    Args:
        frame: posts with columns ``split`` and ``tag``; only ``split == "train"`` rows count.

    Returns:
        The figure: y label ``posts``, title ``Class balance of train.txt (n=<posts>)``.

    Raises:
        KeyError: if a column is missing.
    """
    counts = frame.loc[frame["split"] == "train", "tag"].value_counts().reindex(LABELS, fill_value=0)
    fig, ax = plt.subplots(figsize=(5, 3.2))
    bars = ax.bar(counts.index, counts.to_numpy(), color=["tab:green", "tab:red", "tab:gray"])
    total = max(int(counts.sum()), 1)
    for bar, n in zip(bars, counts.to_numpy()):
        ax.annotate(f"{n} ({100 * n / total:.0f}%)", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center", va="bottom", fontsize=9)
    ax.set_ylabel("posts")
    ax.set_title(f"Class balance of train.txt (n={total})")
    ax.margins(y=0.15)
    return fig


def text_lengths(frame: pd.DataFrame, column: str = "text_raw") -> pd.DataFrame:
    """Length of each text in characters and in whitespace tokens: columns ``chars, tokens``."""
    texts = frame[column].fillna("").astype(str)
    return pd.DataFrame({"chars": texts.str.len(), "tokens": texts.str.split().str.len()}, index=frame.index)


def text_length_figure(frame: pd.DataFrame, columns: tuple[str, ...] = ("text_raw", "text_clean")) -> Figure:
    """Histograms of text length in characters (left) and whitespace tokens (right), one outline per column.

    Drawn with ``seaborn.histplot`` on shared bins (one bin per token count on the right), so the
    columns compare bin by bin. Columns absent from ``frame`` are skipped.

    Args:
        frame: posts, with the text columns named in ``columns``.
        columns: text columns to compare (legend: column and median length).

    Returns:
        The figure: x labels ``characters`` and ``whitespace tokens``, y label ``posts``,
        title ``Text length``.
    """
    present = [c for c in columns if c in frame.columns]
    parts = []
    for column in present:
        lengths = text_lengths(frame, column)
        parts.append(lengths.assign(text=column))
    long = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame({"chars": [], "tokens": [], "text": []})
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for ax, unit, xlabel in zip(axes, ("chars", "tokens"), ("characters", "whitespace tokens")):
        if len(long):
            hue_names = {c: f"{c} (median {long.loc[long['text'] == c, unit].median():.0f})" for c in present}
            data = long.assign(text=long["text"].map(hue_names))
            sns.histplot(data=data, x=unit, hue="text", hue_order=list(hue_names.values()), element="step",
                         fill=False, common_bins=True, linewidth=1.5, ax=ax,
                         **({"discrete": True} if unit == "tokens" else {"bins": 30}))
            ax.set_ylim(0, ax.get_ylim()[1] * 1.3)  # headroom for the legend
            legend = ax.get_legend()
            if legend is not None:
                sns.move_legend(ax, "upper left" if unit == "chars" else "upper right")
                legend = ax.get_legend()
                legend.set_title(None)
                for text in legend.get_texts():
                    text.set_fontsize(8)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("posts")
    fig.suptitle("Text length")
    fig.tight_layout()
    return fig


def language_counts(frame: pd.DataFrame, column: str = "lang") -> pd.Series:
    """Posts per detected language code (``und`` = too little text to tell), largest first."""
    return frame[column].value_counts().rename("posts")


def language_figure(frame: pd.DataFrame, column: str = "lang", top: int = 15) -> Figure:
    """Horizontal bars of the non-English languages detected (``en`` and ``und`` in the title).

    Args:
        frame: posts with a language-code column.
        column: that column's name.
        top: at most this many languages are drawn, largest first.

    Returns:
        The figure: x label ``posts``.

    Raises:
        KeyError: if ``column`` is missing.
    """
    counts = language_counts(frame, column)
    other = counts.drop(["en", "und"], errors="ignore").head(top)
    fig, ax = plt.subplots(figsize=(5, 0.3 * max(len(other), 3) + 1))
    ax.barh(other.index[::-1], other.to_numpy()[::-1], color="tab:blue")
    ax.set_xlabel("posts")
    n_en, n_und = int(counts.get("en", 0)), int(counts.get("und", 0))
    ax.set_title(f"Non-English posts: {int(other.sum())} (en {n_en}, und {n_und})", fontsize=10)
    return fig


def image_size_figure(frame: pd.DataFrame) -> Figure:
    """Histograms of image width, height [px] and size [megapixels].

    Args:
        frame: posts with columns ``width`` and ``height`` (missing sizes are skipped).

    Returns:
        The figure: three axes with x labels ``width [px]``, ``height [px]``, ``megapixels``.

    Raises:
        KeyError: if a column is missing.
    """
    sizes = frame[["width", "height"]].dropna().astype(float)
    megapixels = sizes["width"] * sizes["height"] / 1e6
    fig, axes = plt.subplots(1, 3, figsize=(10, 3))
    for ax, values, label in zip(axes, (sizes["width"], sizes["height"], megapixels),
                                 ("width [px]", "height [px]", "megapixels")):
        ax.hist(values, bins=30, color="tab:purple")
        ax.set_xlabel(label)
    axes[0].set_ylabel("images")
    fig.suptitle(f"Image sizes (n={len(sizes)})")
    fig.tight_layout()
    return fig


def encoding_counts(frame: pd.DataFrame) -> pd.Series:
    """Posts per text-file encoding (``ascii``, ``utf-8``, ``gb18030``; ``""`` = no text)."""
    return frame["encoding"].value_counts().rename("posts")


def file_hashes(frame: pd.DataFrame, data_dir: str | os.PathLike, column: str = "image_file") -> pd.Series:
    """SHA-256 of each file named in ``column`` (relative to ``data_dir``); ``None`` if it is not a
    regular file (:func:`msa_utils.io.hashing.file_hashes`)."""
    hashes = hashing.file_hashes(Path(data_dir) / rel for rel in frame[column])
    return pd.Series(hashes, index=frame.index, name="sha256", dtype=object)


def duplicate_summary(frame: pd.DataFrame, data_dir: str | os.PathLike) -> pd.DataFrame:
    """Counts of duplicated content among the posts of ``frame``.

    Rows: groups of identical raw texts (non-empty), posts in them, those groups whose train
    labels conflict; groups of byte-identical images (SHA-256), posts in them, those whose
    train labels conflict. Column ``count``.
    """
    def groups(keys: pd.Series) -> tuple[int, int, int]:
        keyed = frame.assign(_key=keys)
        keyed = keyed[keyed["_key"].notna() & (keyed["_key"] != "")]
        dup = keyed[keyed["_key"].duplicated(keep=False)]
        labels = dup[dup["split"] == "train"].groupby("_key")["label"].nunique()
        return dup["_key"].nunique(), len(dup), int((labels > 1).sum())

    text_groups, text_posts, text_conflicts = groups(frame["text_raw"])
    image_groups, image_posts, image_conflicts = groups(file_hashes(frame, data_dir))
    return pd.DataFrame({"count": {
        "identical-text groups": text_groups,
        "posts in identical-text groups": text_posts,
        "identical-text groups with conflicting labels": text_conflicts,
        "identical-image groups": image_groups,
        "posts in identical-image groups": image_posts,
        "identical-image groups with conflicting labels": image_conflicts,
    }})


def example_posts(frame: pd.DataFrame, n: int = 8, seed: int = 0) -> pd.DataFrame:
    """``n`` labelled posts with a readable image, drawn round-robin over the classes (seeded)."""
    pool = frame[(frame["split"] == "train") & frame["image_ok"]]
    rng = np.random.default_rng(seed)
    per_class = [pool[pool["tag"] == tag].sample(frac=1, random_state=int(rng.integers(2**31))) for tag in LABELS]
    picked = []
    for i in range(n):
        for group in per_class:
            if len(picked) < n and i < len(group):
                picked.append(group.iloc[i])
    return pd.DataFrame(picked)


def example_grid_figure(frame: pd.DataFrame, data_dir: str | os.PathLike, n: int = 8, seed: int = 0,
                        columns: int = 4, wrap: int = 34, text_column: str = "text_raw") -> Figure:
    """A grid of ``n`` example posts: image, label (title) and wrapped text (below, <= 5 lines).

    The texts are drawn as written (:func:`msa_utils.data.post_text.draw_post_text`: ``$`` is not
    math, fonts fall back for CJK and symbols); characters no installed font has are drawn as
    ``□`` and counted in the figure's footnote.

    Args:
        frame: posts with columns ``split``, ``tag``, ``guid``, ``image_ok``, ``image_file``
            and ``text_column`` (drawn by :func:`example_posts` with ``n`` and ``seed``).
        data_dir: folder the ``image_file`` paths are relative to.
        columns: panels per row; wrap: characters per text line.

    Returns:
        The figure (one panel per post, empty panels hidden).
    """
    examples = example_posts(frame, n, seed)
    rows = max(1, -(-len(examples) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(3.0 * columns, 4.0 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    missing = 0
    for ax, (_, post) in zip(axes.ravel(), examples.iterrows()):
        try:
            ax.imshow(load_image(Path(data_dir) / post["image_file"]))
        except ImageLoadError as exc:
            ax.text(0.5, 0.5, f"unreadable image\n{exc.reason}", ha="center", va="center")
        ax.set_title(f"{post['tag']} (guid {post['guid']})", fontsize=10)
        lines = textwrap.wrap(str(post[text_column]), wrap)
        text = "\n".join(lines[:5]) + (" …" if len(lines) > 5 else "")
        missing += draw_post_text(ax, 0.0, -0.04, text, transform=ax.transAxes, va="top", ha="left", fontsize=8)[1]
    if missing:
        fig.text(0.0, 0.0, f"{missing} characters without a glyph in the installed fonts are drawn as □",
                 fontsize=7, parse_math=False)
    fig.tight_layout()
    return fig
