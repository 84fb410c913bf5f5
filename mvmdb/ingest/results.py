"""What an ingest run reports: one :class:`FileResult` per input file, an :class:`IngestSummary`."""

from __future__ import annotations

import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from mvmdb import rules

__all__ = ["STATUSES", "FileResult", "IngestSummary", "print_error_line"]

STATUSES = ("ingested", "unchanged", "updated", "excluded", "error")
"""The status of a file (see :mod:`mvmdb.ingest`)."""


@dataclass
class FileResult:
    """The outcome for one input file (``to_json`` gives the ``mvm ingest --json`` object)."""

    path: str
    status: str
    ipppssoot: str | None = None
    reason: str | None = None
    sky_cells: list[str] = field(default_factory=list)
    layers: list[str] = field(default_factory=list)
    filetype: str | None = None
    exposure_id: int | None = None

    def to_json(self) -> dict[str, Any]:
        """Keys ``path``, ``ipppssoot``, ``status``, ``reason``, ``sky_cells``, ``layers`` (a contract)."""
        return {
            "path": self.path,
            "ipppssoot": self.ipppssoot,
            "status": self.status,
            "reason": self.reason,
            "sky_cells": sorted(self.sky_cells),
            "layers": sorted(self.layers),
        }


@dataclass
class IngestSummary:
    """Counts of one :func:`ingest` run and every file's :class:`FileResult`.

    ``superseded``: FLT rows already in the catalog that an FLC of this run superseded (not
    inputs of this run, so not in ``results``). ``seconds``: wall time.
    """

    results: list[FileResult] = field(default_factory=list)
    superseded: int = 0
    seconds: float = 0.0

    @property
    def counts(self) -> Counter:
        c = Counter({s: 0 for s in STATUSES})
        c.update(r.status for r in self.results)
        return c

    @property
    def excluded_by_reason(self) -> Counter:
        """Newly excluded files (status ``excluded``) by reason category."""
        return Counter(rules.reason_category(r.reason) for r in self.results if r.status == "excluded" and r.reason)

    @property
    def errors(self) -> list[tuple[str, str]]:
        return [(r.path, r.reason or "") for r in self.results if r.status == "error"]

    @property
    def exit_code(self) -> int:
        """0, or 2 when any file failed."""
        return 2 if any(r.status == "error" for r in self.results) else 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "files": len(self.results),
            **{s: n for s, n in self.counts.items()},
            "excluded_by_reason": dict(sorted(self.excluded_by_reason.items())),
            "superseded": self.superseded,
            "seconds": round(self.seconds, 3),
        }

    def lines(self) -> list[str]:
        """A human summary, one fact per line."""
        c = self.counts
        rate = len(self.results) / self.seconds if self.seconds > 0 else float("nan")
        out = [
            f"{len(self.results)} files in {self.seconds:.1f} s ({rate:.0f}/s): {c['ingested']} ingested, "
            f"{c['unchanged']} unchanged, {c['updated']} updated, {c['excluded']} excluded, {c['error']} errors"
        ]
        for reason, n in sorted(self.excluded_by_reason.items(), key=lambda kv: (-kv[1], kv[0])):
            out.append(f"  excluded: {n} {reason}")
        if self.superseded:
            out.append(f"  {self.superseded} catalogued FLT(s) superseded by their FLC")
        return out


_CONTROL_RE = re.compile("[\x00-\x1f\x7f\x85\u2028\u2029]")


def _printable(text: str) -> str:
    """``text`` with control characters and line breaks escaped (``\\n``): one line whatever a path holds."""
    return _CONTROL_RE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def print_error_line(result: FileResult, stream=None) -> None:
    """``mvm: <path>: <reason>`` on stderr for a failed file, on one line (control characters escaped)."""
    print(f"mvm: {_printable(result.path)}: {_printable(result.reason or '')}", file=stream or sys.stderr, flush=True)
