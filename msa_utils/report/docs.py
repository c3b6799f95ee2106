"""Generated blocks of the documentation, and the command that refreshes them.

A generated block is the text between two marker lines in a Markdown file::

    <!-- reasons:start -->
    ... generated, do not edit by hand ...
    <!-- reasons:end -->

:data:`BLOCKS` lists every block as ``(path relative to the repository root, block name,
render function)``. ``python -m msa_utils.report.docs`` rewrites them all; ``python -m msa_utils.report.docs
--check`` writes nothing and exits 1 naming the files whose blocks are stale (a test runs it).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd

from msa_utils import io
from msa_utils.data import reasons
from msa_utils.report import summary
from msa_utils.io.tables import markdown_table

ROOT = Path(__file__).resolve().parents[2]
"""The repository root (the folder holding ``msa_utils/`` and ``docs/``)."""

STUDY_TIMES = "benchmarks/results/study_times.csv"
"""The log of timed runs of the study, one row per run of ``benchmarks/time_study.py``."""


def readme_results(root: Path) -> str:
    """README.md's results block: :func:`msa_utils.report.summary.readme_results` of ``<root>/results``."""
    return summary.readme_results(Path(root) / "results")


def study_times(root: Path) -> str:
    """``docs/performance.md``'s table of timed runs, from :data:`STUDY_TIMES` (cold runs of the
    ``cpu`` profile: wall time [s], peak memory [GiB] and the seconds of each notebook)."""
    runs = pd.read_csv(Path(root) / STUDY_TIMES)
    runs = runs[(runs["profile"] == "cpu") & (runs["cache"] == "cold")]
    notebooks = [c for c in runs.columns if c.endswith(".ipynb")]
    table = runs[["date", "wall_s", "peak_rss_gib", *notebooks]].copy()
    table.columns = ["date", "wall [s]", "peak memory [GiB]", *(c.removesuffix(".ipynb") for c in notebooks)]
    return (markdown_table(table, floatfmt=".1f") + "\n\n"
            f"Cold runs of the `cpu` profile, one row per `python benchmarks/time_study.py` (from `{STUDY_TIMES}`; "
            "the numbered columns are each notebook's seconds).")


BLOCKS: list[tuple[str, str, Callable[[Path], str]]] = [
    ("README.md", "results", readme_results),
    ("docs/data-handling.md", "reasons", lambda root: reasons.reasons_table()),
    ("docs/performance.md", "study-times", study_times),
]
"""Every generated block: (path relative to :data:`ROOT`, block name, function of the repository
root returning the block's text)."""


def _markers(name: str) -> tuple[str, str]:
    """The start and end marker lines of block ``name``."""
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def render_block(content: str, name: str, text: str) -> str:
    """``content`` with the text between the markers of block ``name`` replaced by ``text``.

    The markers stay on their own lines; ``text`` is put between them with exactly one newline
    at its end.

    Returns:
        The new content (equal to ``content`` if the block was already up to date).

    Raises:
        ValueError: if a marker is missing, appears more than once, or the end comes before the start.
    """
    start, end = _markers(name)
    if content.count(start) != 1 or content.count(end) != 1:
        raise ValueError(f"expected one {start!r} and one {end!r} marker line, found "
                         f"{content.count(start)} and {content.count(end)}")
    if content.index(end) < content.index(start):
        raise ValueError(f"the marker {end!r} comes before {start!r}")
    head, rest = content.split(start, 1)
    tail = rest.split(end, 1)[1]
    return f"{head}{start}\n{text.rstrip()}\n{end}{tail}"


def replace_block(path: str | os.PathLike, name: str, text: str) -> bool:
    """Replace the generated block ``name`` of the file ``path`` by ``text`` (written atomically).

    Returns:
        True if the file changed, False if the block was already up to date (nothing is written).

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if the file lacks the markers ``<!-- {name}:start -->`` / ``<!-- {name}:end -->``
            (the message names the file).
    """
    path = Path(path)
    content, new = _render_file(path, name, text)
    if new == content:
        return False
    io.write_text(path, new)
    return True


def _render_file(path: Path, name: str, text: str) -> tuple[str, str]:
    """``(content of path, content with block name rendered)``; errors name the file."""
    content = path.read_text(encoding="utf-8")
    try:
        return content, render_block(content, name, text)
    except ValueError as error:
        raise ValueError(f"{path}: generated block {name!r}: {error}") from None


def stale_files(root: str | os.PathLike = ROOT) -> list[str]:
    """The files of :data:`BLOCKS` (relative paths) with at least one block that is not up to date.

    Raises:
        FileNotFoundError / ValueError: as :func:`replace_block`.
    """
    stale = []
    for rel, name, render in BLOCKS:
        content, new = _render_file(Path(root) / rel, name, render(Path(root)))
        if new != content and rel not in stale:
            stale.append(rel)
    return stale


def main(argv: Sequence[str] | None = None) -> int:
    """Regenerate every block of :data:`BLOCKS`, or with ``--check`` only report stale files.

    Returns:
        The exit status: 0, or 1 with ``--check`` when a file is stale (its name is printed to
        stderr). Called as ``python -m msa_utils.report.docs``, the process exits with it.

    Raises:
        FileNotFoundError / ValueError: as :func:`replace_block` (a file or its markers missing).
    """
    parser = argparse.ArgumentParser(prog="python -m msa_utils.report.docs", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a generated block is stale")
    parser.add_argument("--root", default=str(ROOT), help="repository root (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files(args.root)
        for rel in stale:
            print(f"stale generated documentation: {rel} (run python -m msa_utils.report.docs)", file=sys.stderr)
        return 1 if stale else 0
    for rel, name, render in BLOCKS:
        if replace_block(Path(args.root) / rel, name, render(Path(args.root))):
            print(f"updated {rel} (block {name!r})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
