"""Figures draw post texts as written: no mathtext, no crash, no flood of missing-glyph warnings."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import pytest

from msa_utils.report import explore
from msa_utils.data.mvsa import load_mvsa
from msa_utils.data.data_report import DataReport
from msa_utils.data.images import inspect_images
from msa_utils.data.post_text import MISSING_GLYPH, draw_post_text, drawable

WILD = Path(__file__).parent / "data" / "mvsa_wild"


def _render(fig) -> None:
    """Draw the figure fully (as savefig does), turning every warning into an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig.savefig(io.BytesIO(), format="png", dpi=40)
    plt.close(fig)


@pytest.mark.parametrize("text", [
    "Won $5 at #bingo and $10 more!", r"a \frac{1}{2} path C:\new_folder", "x_1^2 $$ $", "100% & #1 _under_",
])
def test_post_text_is_drawn_as_written(text):
    fig, ax = plt.subplots()
    artist, missing = draw_post_text(ax, 0, 0, text)
    assert (artist.get_text(), missing, artist.get_parse_math()) == (text, 0, False)
    _render(fig)


@pytest.mark.parametrize("text", [
    "今天很好 😍 ok",  # DejaVu Sans has neither; a CJK or emoji font may be installed
    "ding\x07dong\x04 \ue000 \U0010ffff \ud800 tab\there ok",  # control, private use, unassigned, surrogate
])
def test_glyphs_no_font_has_become_a_square_without_warnings(text):
    shown, missing = drawable(text)
    assert shown.endswith(" ok") and len(shown) == len(text)
    assert missing == shown.count(MISSING_GLYPH)
    assert "\x07" not in text or missing == 5 and "tab here" in shown
    fig, ax = plt.subplots()
    draw_post_text(ax, 0, 0, text)
    _render(fig)


@pytest.fixture(scope="module")
def wild_posts():
    report = DataReport()
    return inspect_images(load_mvsa(WILD, report), WILD, report)


@pytest.mark.parametrize("seed", range(6))
def test_example_grid_draws_every_wild_post_with_any_seed(wild_posts, seed):
    labelled = int(((wild_posts["split"] == "train") & wild_posts["image_ok"]).sum())
    fig = explore.example_grid_figure(wild_posts, WILD, n=labelled, seed=seed, columns=8)
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert any("Won $5 at #bingo and $10 more!" in t.replace("\n", " ") for t in texts)
    _render(fig)
