"""The data report: every item a stage repaired, left out (excluded) or noticed (noted), with the
guid, the stage and a reason code of :mod:`msa_utils.data.reasons`; nothing is dropped silently."""

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
    """One item a stage did something about; ``guid`` is ``None`` for a file-level entry (a bad
    label-file line), ``detail`` free text for a person."""

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
        """Record ``reason``, with the stage and action the registry gives it (ValueError if it has none)."""
        registered = reasons.lookup(reason)
        self.entries.append(ReportEntry(registered.stage, None if guid is None else int(guid), registered.action,
                                        reason, str(detail)))

    def __len__(self) -> int:
        return len(self.entries)

    def to_frame(self) -> pd.DataFrame:
        """The entries, columns :data:`COLUMNS` (``guid`` as ``Int64``)."""
        return pd.DataFrame([asdict(e) for e in self.entries], columns=COLUMNS).astype({"guid": "Int64"})

    def summary(self) -> pd.DataFrame:
        """Counts per ``(stage, action, reason)``, with up to five example guids each."""
        frame = self.to_frame()
        if frame.empty:
            return pd.DataFrame(columns=["stage", "action", "reason", "count", "example_guids"])
        return frame.groupby(["stage", "action", "reason"], sort=True, dropna=False).agg(
            count=("reason", "size"), example_guids=("guid", lambda g: ", ".join(str(x) for x in g.dropna().head(5))),
        ).reset_index()

    def guids(self, stage: str | None = None, action: Action | None = None, reason: str | None = None) -> list[int]:
        """Sorted unique guids of the entries that match every given filter."""
        return sorted({e.guid for e in self.entries if e.guid is not None and stage in (None, e.stage)
                       and action in (None, e.action) and reason in (None, e.reason)})

    def why_left_out(self, guids, also: tuple[str, ...] = (), fallback: str = "not usable (see data_report.csv)"
                     ) -> list[str]:
        """For each of ``guids``, the reasons of its ``excluded`` entries (and of those with a reason in ``also``),
        each once, joined with ``"; "``; ``fallback`` for a guid without any."""
        why: dict[int, dict[str, None]] = {}
        for e in self.entries:
            if e.guid is not None and (e.action == "excluded" or e.reason in also):
                why.setdefault(e.guid, {})[e.reason] = None
        return ["; ".join(why[g]) if g in why else fallback for g in map(int, guids)]

    def save(self, path: str | os.PathLike) -> Path:
        """Atomically write the entries as CSV (UTF-8) to ``path``."""
        return io.write_csv(path, self.to_frame())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "DataReport":
        """The report :meth:`save` wrote, codes as written (no file: an empty report); ValueError if an
        ``action`` is not one of :data:`msa_utils.data.reasons.ACTIONS`."""
        report = cls()
        if not Path(path).exists():
            return report
        frame = pd.read_csv(path, dtype={"guid": "Int64"}, keep_default_na=False, na_values={"guid": [""]})
        for row in frame.itertuples(index=False):
            if row.action not in reasons.ACTIONS:
                raise ValueError(f"{path}: action must be one of {reasons.ACTIONS}, got {row.action!r}")
            guid = None if pd.isna(row.guid) else int(row.guid)
            report.entries.append(ReportEntry(row.stage, guid, row.action, row.reason, str(row.detail)))
        return report
