"""The data report: every dropped or repaired item, counted and named.

Each stage of the study records what it did to an item that was not clean (``repaired``),
what it left out (``excluded``) and what it noticed but kept as is (``noted``), with the guid,
the stage and the reason. Nothing is dropped silently: if an item is not in the output of a
stage, the report says why.

Every reason code is registered in :mod:`msa_utils.data.reasons`, which fixes its stage and action:
:meth:`DataReport.add` takes only the code, the guid and a detail.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import pandas as pd

from msa_utils import io
from msa_utils.data import reasons

Action = Literal["repaired", "excluded", "noted"]
"""The actions of :data:`msa_utils.data.reasons.ACTIONS`, as a type."""
COLUMNS = ["stage", "guid", "action", "reason", "detail"]


@dataclass(frozen=True)
class ReportEntry:
    """One item a stage did something about.

    Attributes:
        stage: the study stage, e.g. ``"load"``, ``"clean"``, ``"translate"``, ``"images"``.
        guid: the post id (``None`` for a file-level entry such as a bad label-file line).
        action: ``"repaired"``, ``"excluded"`` or ``"noted"``.
        reason: a code registered in :mod:`msa_utils.data.reasons`, e.g. ``"decoded_gb18030"``.
        detail: free text for a person (the bad value, the repair made, ...).
    """

    stage: str
    guid: int | None
    action: Action
    reason: str
    detail: str = ""


@dataclass
class DataReport:
    """An append-only list of :class:`ReportEntry`, with summaries and CSV persistence."""

    entries: list[ReportEntry] = field(default_factory=list)

    def add(self, reason: str, guid: int | None, detail: str = "") -> None:
        """Record one entry; its stage and action are the registered ones of ``reason``.

        Args:
            reason: a code of :mod:`msa_utils.data.reasons` (a constant such as
                ``reasons.EMPTY_TEXT_FILE``, or a family member such as
                ``reasons.mode_to_rgb("RGBA")``).
            guid: the post id, or ``None`` for a file-level entry.
            detail: free text for a person.

        Raises:
            ValueError: if ``reason`` is not in the registry (:func:`msa_utils.data.reasons.lookup`).
        """
        registered = reasons.lookup(reason)
        self.entries.append(ReportEntry(registered.stage, None if guid is None else int(guid), registered.action,
                                        reason, str(detail)))

    def __len__(self) -> int:
        return len(self.entries)

    def to_frame(self) -> pd.DataFrame:
        """All entries as a DataFrame with columns ``stage, guid, action, reason, detail``."""
        frame = pd.DataFrame([asdict(e) for e in self.entries], columns=COLUMNS)
        frame["guid"] = frame["guid"].astype("Int64")
        return frame

    def summary(self) -> pd.DataFrame:
        """Counts per ``(stage, action, reason)``, with up to five example guids each."""
        frame = self.to_frame()
        if frame.empty:
            return pd.DataFrame(columns=["stage", "action", "reason", "count", "example_guids"])
        grouped = frame.groupby(["stage", "action", "reason"], sort=True, dropna=False)
        out = grouped.agg(
            count=("reason", "size"),
            example_guids=("guid", lambda g: ", ".join(str(x) for x in g.dropna().head(5))),
        )
        return out.reset_index()

    def guids(self, stage: str | None = None, action: Action | None = None, reason: str | None = None) -> list[int]:
        """Sorted unique guids of the entries that match every given filter."""
        found = {
            e.guid
            for e in self.entries
            if e.guid is not None
            and (stage is None or e.stage == stage)
            and (action is None or e.action == action)
            and (reason is None or e.reason == reason)
        }
        return sorted(found)

    def save(self, path: str | os.PathLike) -> Path:
        """Atomically write all entries as CSV (UTF-8) to ``path``."""
        return io.write_csv(path, self.to_frame())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "DataReport":
        """Read a report written by :meth:`save`. A missing file gives an empty report.

        The entries are taken as written (a report of an older version may hold codes the
        registry no longer has); only the action is checked.

        Raises:
            ValueError: if a row's ``action`` is not one of ``repaired``, ``excluded``, ``noted``.
        """
        path = Path(path)
        if not path.exists():
            return cls()
        frame = pd.read_csv(path, dtype={"guid": "Int64"}, keep_default_na=False, na_values={"guid": [""]})
        report = cls()
        for row in frame.itertuples(index=False):
            guid = None if pd.isna(row.guid) else int(row.guid)
            if row.action not in reasons.ACTIONS:
                raise ValueError(f"{path}: action must be one of {reasons.ACTIONS}, got {row.action!r}")
            report.entries.append(ReportEntry(row.stage, guid, row.action, row.reason, str(row.detail)))
        return report
