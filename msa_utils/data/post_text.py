"""Drawing a post's text in a figure exactly as written.

Post text is user input, not markup: matplotlib reads ``$...$`` as mathtext (``Won $5 at #bingo
and $10 more!`` raises a parse error when the figure is drawn), and warns once per glyph that
its font lacks (a Japanese post gives a dozen warnings). :func:`draw_post_text` turns math
parsing off (``parse_math=False``: ``$``, ``\\`` and ``_`` are drawn as they are), gives
matplotlib a list of fonts to fall back on (those of :data:`FALLBACK_FONTS` that are installed),
and replaces each character that none of them has by :data:`MISSING_GLYPH` before drawing,
so that nothing is left to warn about; the number replaced is returned.
"""

from __future__ import annotations

import functools
import unicodedata

from matplotlib import font_manager
from matplotlib.axes import Axes
from matplotlib.text import Text

FALLBACK_FONTS: tuple[str, ...] = (
    "DejaVu Sans",  # matplotlib's own: Latin, Greek, Cyrillic, many symbols
    "Noto Sans CJK JP", "Noto Sans CJK SC", "WenQuanYi Zen Hei", "Droid Sans Fallback",  # CJK
    "Noto Sans Arabic", "Noto Sans Hebrew", "Noto Sans Thai", "Noto Sans Devanagari",
    "Noto Sans Symbols 2", "Noto Emoji", "Symbola",  # symbols, emoji (monochrome)
)
"""Font families tried in order for post text; the missing ones are skipped (Debian packages
``fonts-noto-cjk``, ``fonts-noto-core``, ``fonts-noto-extra``, ``fonts-symbola`` bring them)."""

_NEVER_DRAWN = {"Cc", "Co", "Cn", "Cs"}
MISSING_GLYPH = "\u25a1"
"""What a character no installed font can draw becomes: ``□`` (WHITE SQUARE, in DejaVu Sans)."""


@functools.lru_cache(maxsize=1)
def installed_fonts() -> tuple[tuple[str, frozenset[int]], ...]:
    """``(family, code points it covers)`` of each installed font of :data:`FALLBACK_FONTS`, in order."""
    found = []
    for family in FALLBACK_FONTS:
        try:
            path = font_manager.findfont(font_manager.FontProperties(family=family), fallback_to_default=False)
        except ValueError:
            continue
        font = font_manager.get_font(path)
        if font.family_name == family:
            found.append((family, frozenset(font.get_charmap())))
    return tuple(found)


def drawable(text: str) -> tuple[str, int]:
    """``text`` with each character no installed font has replaced by :data:`MISSING_GLYPH`.

    Line breaks are kept and other whitespace becomes a space; control, private-use,
    unassigned and surrogate characters (which no font draws) count as missing. Returns
    ``(text, number of characters replaced)``.
    """
    covered = [codes for _, codes in installed_fonts()]
    out, missing = [], 0
    for ch in text:
        if ch == "\n":
            out.append(ch)
        elif ch.isspace():
            out.append(" ")
        elif unicodedata.category(ch) not in _NEVER_DRAWN and any(ord(ch) in codes for codes in covered):
            out.append(ch)
        else:
            out.append(MISSING_GLYPH)
            missing += 1
    return "".join(out), missing


def draw_post_text(ax: Axes, x: float, y: float, text: str, **kwargs) -> tuple[Text, int]:
    """Draw user text at ``(x, y)`` as written: no mathtext, font fallback, no missing-glyph warning.

    Args:
        ax: the axes to draw on.
        x, y: position, in the coordinates ``kwargs["transform"]`` gives (data by default).
        text: the post text (any Unicode).
        **kwargs: passed to :meth:`matplotlib.axes.Axes.text` (``fontsize``, ``ha`` ...);
            ``parse_math`` and ``fontfamily`` are set here.

    Returns:
        ``(artist, number of characters drawn as`` :data:`MISSING_GLYPH` ``)``.
    """
    shown, missing = drawable(text)
    families = [family for family, _ in installed_fonts()] or None
    artist = ax.text(x, y, shown, parse_math=False, fontfamily=families, **kwargs)
    return artist, missing
