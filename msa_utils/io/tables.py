"""Markdown tables and "mean ± std" cells: the one way the study's reports format numbers."""

from __future__ import annotations

import math

import pandas as pd


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def mean_std(mean: float, std: float, fmt: str = ".3f") -> str:
    """``"0.674 ± 0.010"``, or just the mean where ``std`` is missing (one seed, a deterministic baseline)."""
    return format(mean, fmt) if _missing(std) else f"{format(mean, fmt)} ± {format(std, fmt)}"


def markdown_table(frame: pd.DataFrame, floatfmt: str = ".3f") -> str:
    """``frame`` as a Markdown table: floats formatted with ``floatfmt``, missing values as ``–``."""
    def cell(value) -> str:
        return "–" if _missing(value) else format(value, floatfmt) if isinstance(value, float) else str(value)

    rows = [list(frame.columns), ["---"] * len(frame.columns),
            *([cell(value) for value in row] for row in frame.itertuples(index=False))]
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)
