"""Generated blocks of the documentation, and the command that refreshes them.

A block lies between the lines ``<!-- NAME:start -->`` and ``<!-- NAME:end -->``; ``python
scripts/render_docs.py`` rewrites every one, ``--check`` exits 1 naming the stale files. A tool of the
repository (it edits README.md and docs/), not of the installed package."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd

from msa_utils import io
from msa_utils.data import reasons
from msa_utils.io.tables import markdown_table
from msa_utils.report import summary

ROOT = Path(__file__).resolve().parents[1]
STUDY_TIMES = "benchmarks/results/study_times.csv"


def study_times(root: Path) -> str:
    """The table of the ``cpu`` profile's cold runs in :data:`STUDY_TIMES`."""
    runs = pd.read_csv(Path(root) / STUDY_TIMES)
    runs = runs[(runs["profile"] == "cpu") & (runs["cache"] == "cold")]
    notebooks = [c for c in runs.columns if c.endswith(".ipynb")]
    table = runs[["date", "wall_s", "peak_rss_gib", *notebooks]].copy()
    table.columns = ["date", "wall [s]", "peak memory [GiB]", *(c.removesuffix(".ipynb") for c in notebooks)]
    return (markdown_table(table, floatfmt=".1f") + "\n\n"
            f"Cold runs of the `cpu` profile, one row per `python benchmarks/time_study.py` (from `{STUDY_TIMES}`; "
            "the numbered columns are each notebook's seconds).")


BLOCKS: list[tuple[str, str, Callable[[Path], str]]] = [
    ("README.md", "results", lambda root: summary.readme_results(Path(root) / "results")),
    ("docs/data-handling.md", "reasons", lambda root: reasons.reasons_table()),
    ("docs/performance.md", "study-times", study_times),
]
"""(path relative to the root, block name, function of the root giving its text)."""


def replace_block(path: str | os.PathLike, name: str, text: str, write: bool = True) -> bool:
    """Set block ``name`` of ``path`` to ``text``, written atomically if ``write``; False if it was up to date.
    ValueError for missing, repeated or swapped markers."""
    content = Path(path).read_text(encoding="utf-8")
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    if content.count(start) != 1 or content.count(end) != 1 or content.index(end) < content.index(start):
        raise ValueError(f"{path}: generated block {name!r}: expected one {start!r} line, then one {end!r} line")
    head, rest = content.split(start, 1)
    new = f"{head}{start}\n{text.rstrip()}\n{end}{rest.split(end, 1)[1]}"
    if write and new != content:
        io.write_text(Path(path), new)
    return new != content


def main(argv: Sequence[str] | None = None) -> int:
    """Regenerate every block (0), or with ``--check`` print the stale files (1 if any)."""
    parser = argparse.ArgumentParser(prog="python scripts/render_docs.py", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a generated block is stale")
    parser.add_argument("--root", default=str(ROOT), help="repository root (default: %(default)s)")
    args = parser.parse_args(argv)
    stale = []
    for rel, name, render in BLOCKS:
        if not replace_block(Path(args.root) / rel, name, render(Path(args.root)), write=not args.check):
            continue
        if args.check:
            stale.append(rel)
            print(f"stale generated documentation: {rel} (run python scripts/render_docs.py)", file=sys.stderr)
        else:
            print(f"updated {rel} (block {name!r})")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
