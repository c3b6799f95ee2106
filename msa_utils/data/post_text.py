"""Drawing a post's text in a figure exactly as written: no mathtext (``Won $5 and $10`` would fail),
the installed :data:`FALLBACK_FONTS`, and :data:`MISSING_GLYPH` where none has a character (no warnings)."""

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
"""Font families tried in order, missing ones skipped (Debian: ``fonts-noto-*``, ``fonts-symbola``)."""
MISSING_GLYPH = "\u25a1"
"""What a character no installed font can draw becomes: ``□`` (in DejaVu Sans)."""


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
    """``(text, number replaced)``: line breaks kept, other whitespace a space, each character no
    installed font has (control, private-use, unassigned and surrogate ones always) :data:`MISSING_GLYPH`."""
    covered = [codes for _, codes in installed_fonts()]
    out, missing = [], 0
    for ch in text:
        if ch == "\n" or ch.isspace():
            out.append(ch if ch == "\n" else " ")
        elif unicodedata.category(ch) not in ("Cc", "Co", "Cn", "Cs") and any(ord(ch) in codes for codes in covered):
            out.append(ch)
        else:
            out.append(MISSING_GLYPH)
            missing += 1
    return "".join(out), missing


def draw_post_text(ax: Axes, x: float, y: float, text: str, **kwargs) -> tuple[Text, int]:
    """``ax.text(x, y, text, **kwargs)`` as written (``parse_math``, ``fontfamily`` set here); returns
    ``(artist, number of characters drawn as`` :data:`MISSING_GLYPH` ``)``."""
    shown, missing = drawable(text)
    families = [family for family, _ in installed_fonts()] or None
    return ax.text(x, y, shown, parse_math=False, fontfamily=families, **kwargs), missing
