"""Exclude exposures from, and include them back into, their layers (``mvm exclude`` / ``mvm include``).

An exclusion (:mod:`mvmdb.db.exclusions`) is recorded by ipppssoot with who, when and why,
and survives re-ingest. Excluding removes the exposure's memberships and marks the other
members of every layer it was in NEW, so ``mvm plan`` lists exactly those sky cells and the
job draws the layers without it; a layer left with no member loses its product (row and
file). Including writes the memberships back (NEW), so the layers are drawn with it again.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from mvmdb import rules
from mvmdb.db import exclusions, members, products
from mvmdb.errors import MvmdbError
from mvmdb.ingest.ingester import layers_for

__all__ = ["ExclusionResult", "default_user", "exclude", "include", "normalize_ipppssoots"]


@dataclass
class ExclusionResult:
    """What an exclude/include changed. ``changed``: ipppssoots whose state changed (the others
    were already so); ``layers``/``skycells``: layers marked for redraw and their sky cells;
    ``retired``: product files removed because their layer has no member left."""

    action: str  # exclude | include
    changed: list[str]
    unchanged: list[str]
    layers: list[str] = field(default_factory=list)
    skycells: list[str] = field(default_factory=list)
    retired: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"action": self.action, "changed": self.changed, "unchanged": self.unchanged, "layers": self.layers,
                "skycells": self.skycells, "retired_products": self.retired}


def default_user() -> str:
    """Who is acting: the OS user name (``getpass.getuser``), ``unknown`` when there is none."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def normalize_ipppssoots(names: Sequence[str]) -> list[str]:
    """Lower-cased ipppssoots (a file name ``j9ab01a1q_flc.fits`` gives its rootname); raises MvmdbError."""
    out = []
    for name in names:
        root = os.path.basename(str(name)).strip().lower().split("_")[0].split(".")[0]
        if not rules.is_ipppssoot(root):
            raise MvmdbError(f"not an ipppssoot: {name!r}")
        out.append(root)
    if not out:
        raise MvmdbError("no ipppssoot given")
    return sorted(set(out))


def exclude(engine: sa.Engine, ipppssoots: Sequence[str], reason: str, *, by: str | None = None,
            kind: str = "operator", replace: bool = True) -> ExclusionResult:
    """Exclude exposures (``kind``: operator | trailed | alignment) and mark their layers for redraw.

    ``replace``: an exclusion already in force takes this kind and reason (``mvm qa`` passes
    False, so it never rewrites the operator's decision)."""
    ipps = normalize_ipppssoots(ipppssoots)
    if not str(reason).strip():
        raise MvmdbError("an exclusion needs a --reason")
    with engine.begin() as conn:
        changed = exclusions.add(conn, ipps, kind, str(reason).strip(), by or default_user(), replace=replace)
        affected = exclusions.affected_layers(conn, changed)
        members.lock_layers(conn, [a.layer_id for a in affected])  # a job finishing now waits, then sees the change
        exps = exclusions.usable_exposures(conn, changed)
        exclusions.rewrite_members(conn, [(e.ipppssoot, e.filetype, True) for e in exps], [])
        retired = sorted(path for _, path in products.retire_memberless(conn, layer_ids=[a.layer_id for a in affected]))
    _remove_files(retired)
    return _result("exclude", ipps, changed, affected, retired)


def include(engine: sa.Engine, ipppssoots: Sequence[str], *, by: str | None = None) -> ExclusionResult:
    """Lift exclusions: the exposures join their layers again (NEW), which are marked for redraw."""
    ipps = normalize_ipppssoots(ipppssoots)
    with engine.begin() as conn:
        changed = exclusions.remove(conn, ipps, by or default_user())
        exps = exclusions.usable_exposures(conn, changed)
        cells = exclusions.cells_of(conn, [e.id for e in exps])
        member_rows = [(e.ipppssoot, e.filetype, *layer)
                       for e in exps for layer in layers_for(e.instrument, e.detector, e.filter, cells[e.id], None)]
        exclusions.rewrite_members(conn, [(e.ipppssoot, e.filetype, True) for e in exps], member_rows)
        affected = exclusions.affected_layers(conn, changed)
    return _result("include", ipps, changed, affected, [])


def _result(action: str, ipps: list[str], changed: list[str], affected, retired: list[str]) -> ExclusionResult:
    return ExclusionResult(
        action, changed, [i for i in ipps if i not in changed], [a.layer for a in affected],
        sorted({a.skycell for a in affected}), retired,
    )


def _remove_files(paths: Sequence[str]) -> None:
    """Remove retired product files (after the commit: a crash leaves a file without a row, never the reverse)."""
    for p in paths:
        Path(p).unlink(missing_ok=True)
