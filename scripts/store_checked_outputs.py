"""Store the outputs that nbval compares in the source notebooks.

The notebooks under ``notebooks/`` are kept without outputs, except the cells whose first line is
``# NBVAL_CHECK_OUTPUT``: counts, class balance, table shapes and the data report's reasons on
the ``smoke`` profile. ``bash scripts/test.sh`` runs every notebook under ``nbval --nbval-lax``,
which compares exactly those cells, so a changed count fails the tests.

Run this after changing what such a cell prints (on purpose), then review ``git diff notebooks``::

    .venv/bin/python scripts/store_checked_outputs.py

It runs notebooks 01-08 on the ``smoke`` profile (``msa-study --profile smoke --force``) into a
temporary folder, then copies the outputs of the checked cells into the source notebooks and
clears every other output. Takes about a minute.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import nbformat

CHECK = "# NBVAL_CHECK_OUTPUT"
NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory() as work:
        os.environ["MSA_RESULTS_DIR"] = str(Path(work) / "results")
        os.environ["MSA_CACHE_DIR"] = str(Path(work) / "cache")
        from msa_utils.runner.study import run_study

        run_study("smoke", force=True)
        executed_dir = Path(work) / "results" / "notebooks"
        for source in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
            book = nbformat.read(source, as_version=4)
            executed = nbformat.read(executed_dir / source.name, as_version=4)
            runs = {cell.source: cell for cell in executed.cells if cell.cell_type == "code"}
            stored = 0
            for cell in book.cells:
                if cell.cell_type != "code":
                    continue
                cell.execution_count = None
                cell.outputs = []
                if cell.source.startswith(CHECK):  # nbval wants a stored output to come with its count
                    cell.outputs = runs[cell.source].outputs
                    cell.execution_count = runs[cell.source].execution_count
                    stored += 1
            nbformat.write(book, source)
            print(f"{source.name}: stored the outputs of {stored} checked cell(s)")


if __name__ == "__main__":
    main()
