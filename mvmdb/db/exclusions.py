"""Exclusions of exposures by the operator or by ``mvm qa``: ``exposure_exclusion`` and its audit trail.

An exclusion is keyed by ipppssoot (FLT and FLC alike) and survives re-ingest: ingest writes
no membership for an excluded exposure (:func:`mvmdb.db.members.write_new`). Excluding
removes the exposure's memberships and marks every other member of those layers NEW (the
layer is drawn again without it); a layer left without members loses its product row
(the caller removes the file). Including writes the memberships back, all NEW.
Everything runs in the caller's transaction (``engine.begin()``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import sqlalchemy as sa

from mvmdb.db import exposures, members
from mvmdb.db.bulk import driver_connection, ensure_staging

__all__ = [
    "Affected", "ExclusionRow", "add", "remove", "active", "events", "usable_exposures", "cells_of",
    "rewrite_members", "affected_layers",
]


class ExclusionRow(NamedTuple):
    """An exclusion in force; ``excluded_at`` a timezone-aware datetime."""

    ipppssoot: str
    kind: str  # operator | trailed | alignment
    reason: str
    excluded_by: str
    excluded_at: object


class Affected(NamedTuple):
    """A layer whose membership changed: its id, name and sky cell name."""

    layer_id: int
    layer: str
    skycell: str


_ADD = """
INSERT INTO exposure_exclusion AS x (ipppssoot, kind, reason, excluded_by)
SELECT i, :kind, :reason, :by FROM unnest(CAST(:ipps AS text[])) AS i
ON CONFLICT (ipppssoot) DO UPDATE
SET kind = EXCLUDED.kind, reason = EXCLUDED.reason, excluded_by = EXCLUDED.excluded_by, excluded_at = now()
WHERE CAST(:replace AS boolean) AND (x.kind, x.reason) IS DISTINCT FROM (EXCLUDED.kind, EXCLUDED.reason)
RETURNING x.ipppssoot
"""
_EVENT = """
INSERT INTO exclusion_event (ipppssoot, action, kind, reason, by)
SELECT i, :action, :kind, :reason, :by FROM unnest(CAST(:ipps AS text[])) AS i
"""


def add(conn: sa.Connection, ipppssoots: Sequence[str], kind: str, reason: str, by: str, *,
        replace: bool = True) -> list[str]:
    """Record exclusions (and their events); return the ipppssoots whose exclusion is new or changed.

    ``replace``: an exclusion already in force takes the new kind and reason (False: it is kept).
    """
    changed = sorted(conn.execute(sa.text(_ADD), {"ipps": list(ipppssoots), "kind": kind, "reason": reason,
                                                  "by": by, "replace": replace}).scalars())
    if changed:
        conn.execute(sa.text(_EVENT), {"ipps": changed, "action": "exclude", "kind": kind, "reason": reason, "by": by})
    return changed


def remove(conn: sa.Connection, ipppssoots: Sequence[str], by: str) -> list[str]:
    """Lift exclusions (recording an ``include`` event); return the ipppssoots that were excluded."""
    gone = sorted(conn.execute(
        sa.text("DELETE FROM exposure_exclusion WHERE ipppssoot = ANY(CAST(:ipps AS text[])) RETURNING ipppssoot"),
        {"ipps": list(ipppssoots)},
    ).scalars())
    if gone:
        conn.execute(sa.text(_EVENT), {"ipps": gone, "action": "include", "kind": None, "reason": None, "by": by})
    return gone


def active(conn: sa.Connection, ipppssoots: Sequence[str] | None = None) -> list[ExclusionRow]:
    """The exclusions in force (of the given ipppssoots, or all), by ipppssoot."""
    where = "" if ipppssoots is None else "WHERE ipppssoot = ANY(CAST(:ipps AS text[]))"
    rows = conn.execute(sa.text(f"SELECT ipppssoot, kind, reason, excluded_by, excluded_at FROM exposure_exclusion "
                                f"{where} ORDER BY ipppssoot"), {"ipps": list(ipppssoots or [])})
    return [ExclusionRow(*r) for r in rows]


def events(conn: sa.Connection, ipppssoot: str) -> list[sa.Row]:
    """The audit trail of one ipppssoot, oldest first: ``action, kind, reason, by, at``."""
    return conn.execute(sa.text("SELECT action, kind, reason, by, at FROM exclusion_event WHERE ipppssoot = :i "
                                "ORDER BY id"), {"i": ipppssoot}).all()


def usable_exposures(conn: sa.Connection, ipppssoots: Sequence[str]) -> list[sa.Row]:
    """Catalogued exposures of these ipppssoots that the ingest rules keep (``excluded_reason IS NULL``):
    ``id, ipppssoot, filetype, instrument, detector, filter``."""
    return conn.execute(sa.text(
        "SELECT id, ipppssoot, filetype, instrument, detector, filter FROM exposure "
        "WHERE ipppssoot = ANY(CAST(:ipps AS text[])) AND excluded_reason IS NULL ORDER BY id"
    ), {"ipps": list(ipppssoots)}).all()


def cells_of(conn: sa.Connection, exposure_ids: Sequence[int]) -> dict[int, list[tuple]]:
    """``(sky_cell_id, name, pc, x, y)`` of the sky cells of each exposure id (as ingest stores them)."""
    with driver_connection(conn).cursor() as cur:
        return exposures.cells_of(cur, list(exposure_ids))


_AFFECTED = """
SELECT DISTINCT l.id, l.name, s.name FROM layer_member m
JOIN exposure e ON e.id = m.exposure_id JOIN layer l ON l.id = m.layer_id JOIN sky_cell s ON s.id = l.sky_cell_id
WHERE e.ipppssoot = ANY(CAST(:ipps AS text[]))
ORDER BY l.name
"""


def affected_layers(conn: sa.Connection, ipppssoots: Sequence[str]) -> list[Affected]:
    """The layers these ipppssoots are members of now."""
    return [Affected(*r) for r in conn.execute(sa.text(_AFFECTED), {"ipps": list(ipppssoots)})]


def rewrite_members(conn: sa.Connection, recompute: Sequence[tuple], member_rows: Sequence[tuple]) -> None:
    """Recompute memberships with ingest's own statements (:func:`mvmdb.db.members.write_new`):
    ``recompute`` ``(ipppssoot, filetype, True)``, ``member_rows`` as ``write_new`` takes them.
    Every layer an exposure leaves or joins has all its members marked NEW."""
    with driver_connection(conn).cursor() as cur:
        ensure_staging(cur, members.STAGING)
        members.write_new(cur, recompute, member_rows)
