"""Tables and figures of the data exploration (notebook 01) from the post table; KeyError for a missing column."""

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
from msa_utils.data.sources import source_root


def class_balance_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Columns ``split, tag, posts, share_pct`` (share of the split [%]); tags in :data:`LABELS` order first."""
    counts = frame.groupby(["split", "tag"], sort=False).size().rename("posts").reset_index()
    counts["share_pct"] = (100 * counts["posts"] / counts.groupby("split")["posts"].transform("sum")).round(1)
    order = {"split": {"train": 0, "test": 1}, "tag": {t: i for i, t in enumerate(LABELS)}}
    counts = counts.sort_values(["split", "tag"], key=lambda c: c.map(order[c.name]).fillna(len(order[c.name])))
    return counts.reset_index(drop=True)


def class_balance_figure(frame: pd.DataFrame) -> Figure:
    """Bars of the ``train`` posts per tag, with counts and shares."""
    counts = frame.loc[frame["split"] == "train", "tag"].value_counts().reindex(LABELS, fill_value=0)
    fig, ax = plt.subplots(figsize=(5, 3.2))
    bars = ax.bar(counts.index, counts.to_numpy(), color=["tab:green", "tab:red", "tab:gray"])
    total = max(int(counts.sum()), 1)
    for bar, n in zip(bars, counts.to_numpy()):
        ax.annotate(f"{n} ({100 * n / total:.0f}%)", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center", va="bottom", fontsize=9)
    ax.set(ylabel="posts", title=f"Class balance of train.txt (n={total})")
    ax.margins(y=0.15)
    return fig


def text_lengths(frame: pd.DataFrame, column: str = "text_raw") -> pd.DataFrame:
    """Columns ``chars, tokens``: each text's length in characters and whitespace tokens."""
    texts = frame[column].fillna("").astype(str)
    return pd.DataFrame({"chars": texts.str.len(), "tokens": texts.str.split().str.len()}, index=frame.index)


def text_length_figure(frame: pd.DataFrame, columns: tuple[str, ...] = ("text_raw", "text_clean")) -> Figure:
    """Step histograms of text length in characters and tokens, one outline per column of ``columns``
    in ``frame`` (legend: its median)."""
    present = [c for c in columns if c in frame.columns]
    long = pd.concat([text_lengths(frame, c).assign(text=c) for c in present] or [pd.DataFrame()], ignore_index=True)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for ax, unit, xlabel in zip(axes, ("chars", "tokens"), ("characters", "whitespace tokens")):
        if len(long):
            hue_names = {c: f"{c} (median {long.loc[long['text'] == c, unit].median():.0f})" for c in present}
            data = long.assign(text=long["text"].map(hue_names))
            sns.histplot(data=data, x=unit, hue="text", hue_order=list(hue_names.values()), element="step",
                         fill=False, common_bins=True, linewidth=1.5, ax=ax,
                         **({"discrete": True} if unit == "tokens" else {"bins": 30}))
            ax.set_ylim(0, ax.get_ylim()[1] * 1.3)  # headroom for the legend
            if ax.get_legend() is not None:
                sns.move_legend(ax, "upper left" if unit == "chars" else "upper right", title=None)
                plt.setp(ax.get_legend().get_texts(), fontsize=8)
        ax.set(xlabel=xlabel, ylabel="posts")
    fig.suptitle("Text length")
    fig.tight_layout()
    return fig


def language_counts(frame: pd.DataFrame, column: str = "lang") -> pd.Series:
    """Posts per detected language code (``und`` = too little text to tell), largest first."""
    return frame[column].value_counts().rename("posts")


def language_figure(frame: pd.DataFrame, column: str = "lang", top: int = 15) -> Figure:
    """Bars of the ``top`` non-English languages (``en`` and ``und`` counts in the title)."""
    counts = language_counts(frame, column)
    other = counts.drop(["en", "und"], errors="ignore").head(top)
    fig, ax = plt.subplots(figsize=(5, 0.3 * max(len(other), 3) + 1))
    ax.barh(other.index[::-1], other.to_numpy()[::-1], color="tab:blue")
    ax.set_xlabel("posts")
    n_en, n_und = int(counts.get("en", 0)), int(counts.get("und", 0))
    ax.set_title(f"Non-English posts: {int(other.sum())} (en {n_en}, und {n_und})", fontsize=10)
    return fig


def image_size_figure(frame: pd.DataFrame) -> Figure:
    """Histograms of image width, height [px] and megapixels (rows without a size skipped)."""
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


def duplicate_summary(frame: pd.DataFrame, data_dir: str | os.PathLike) -> pd.DataFrame:
    """Column ``count``: groups of identical non-empty raw texts, posts in them, groups whose train
    labels conflict; the same for byte-identical images (SHA-256 of ``image_file`` under the source's root folder,
    :func:`~msa_utils.data.sources.source_root` of ``data_dir``)."""
    counts = {}
    root = source_root(data_dir)
    hashes = pd.Series(hashing.file_hashes(root / rel for rel in frame["image_file"]), index=frame.index,
                       dtype=object)
    for kind, keys in (("text", frame["text_raw"]), ("image", hashes)):
        keyed = frame.assign(_key=keys)
        dup = keyed[keyed["_key"].notna() & (keyed["_key"] != "")]
        dup = dup[dup["_key"].duplicated(keep=False)]
        labels = dup[dup["split"] == "train"].groupby("_key")["label"].nunique()
        counts |= {f"identical-{kind} groups": dup["_key"].nunique(), f"posts in identical-{kind} groups": len(dup),
                   f"identical-{kind} groups with conflicting labels": int((labels > 1).sum())}
    return pd.DataFrame({"count": counts})


def example_grid_figure(frame: pd.DataFrame, data_dir: str | os.PathLike, n: int = 8, seed: int = 0,
                        columns: int = 4, wrap: int = 34, text_column: str = "text_raw") -> Figure:
    """A grid of ``n`` train posts with a readable image, round-robin over the classes (seeded), each titled
    with its tag and guid: :func:`post_grid_figure` (images under :func:`~msa_utils.data.sources.source_root` of
    ``data_dir``)."""
    pool = frame[(frame["split"] == "train") & frame["image_ok"]]
    rng = np.random.default_rng(seed)
    per_class = [pool[pool["tag"] == tag].sample(frac=1, random_state=int(rng.integers(2**31))) for tag in LABELS]
    examples = pd.DataFrame([group.iloc[i] for i in range(n) for group in per_class if i < len(group)][:n])
    titles = [f"{post['tag']} (guid {post['guid']})" for _, post in examples.iterrows()]
    return post_grid_figure(examples, source_root(data_dir), titles, columns=columns, wrap=wrap,
                            text_column=text_column)


def post_grid_figure(posts: pd.DataFrame, root: str | os.PathLike, titles: list[str], columns: int = 4,
                     wrap: int = 34, text_column: str = "text_raw") -> Figure:
    """A grid of ``posts`` (``image_file`` relative to ``root``), each with its title from ``titles``, its image
    and ``text_column`` (<= 5 lines of ``wrap`` characters); characters no installed font has are drawn as ``□``
    and counted in a footnote. ValueError if ``titles`` and ``posts`` differ in length."""
    if len(titles) != len(posts):
        raise ValueError(f"{len(posts)} posts but {len(titles)} titles")
    rows = max(1, -(-len(posts) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(3.0 * columns, 4.0 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    missing = 0
    for ax, title, (_, post) in zip(axes.ravel(), titles, posts.iterrows()):
        try:
            ax.imshow(load_image(Path(root) / post["image_file"]))
        except ImageLoadError as exc:
            ax.text(0.5, 0.5, f"unreadable image\n{exc.reason}", ha="center", va="center")
        ax.set_title(title, fontsize=10)
        lines = textwrap.wrap(str(post[text_column]), wrap)
        text = "\n".join(lines[:5]) + (" …" if len(lines) > 5 else "")
        missing += draw_post_text(ax, 0.0, -0.04, text, transform=ax.transAxes, va="top", ha="left", fontsize=8)[1]
    if missing:
        fig.text(0.0, 0.0, f"{missing} characters without a glyph in the installed fonts are drawn as □",
                 fontsize=7, parse_math=False)
    fig.tight_layout()
    return fig
