"""Markdown tables and "mean ± std (n)" cells: the one way the study's reports format numbers."""

from __future__ import annotations

import math

import pandas as pd


def mean_std(mean: float, std: float, n: int, fmt: str = ".3f") -> str:
    """``"0.674 ± 0.010"`` (``std`` NaN, e.g. one seed or a deterministic baseline: just the mean).
    ``n`` is not shown: tables give it in a column of its own."""
    if std is None or (isinstance(std, float) and math.isnan(std)):
        return format(mean, fmt)
    return f"{format(mean, fmt)} ± {format(std, fmt)}"


def markdown_table(frame: pd.DataFrame, floatfmt: str = ".3f") -> str:
    """``frame`` as a Markdown table: floats formatted once with ``floatfmt``, missing values as ``–``."""
    def fmt(v):
        if v is None or (isinstance(v, float) and pd.isna(v)):
            return "–"
        if isinstance(v, float):
            return format(v, floatfmt)
        return str(v)

    header = "| " + " | ".join(frame.columns) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    body = ["| " + " | ".join(fmt(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])
