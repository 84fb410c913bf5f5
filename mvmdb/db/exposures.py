"""Exposure rows: ingest's staging tables and set-based write path, and the catalog look-ups it needs.

One ingest batch is one transaction on a psycopg cursor (:mod:`mvmdb.db.bulk`): its rows
are COPYed into TEMP staging tables (made once per connection by :func:`prepare`) and
applied with a few set-based statements (:func:`write`), keyed on ``(ipppssoot, filetype)``.
Memberships are written by :func:`mvmdb.db.members.write_new` in the same transaction.

Units: exposure times in seconds, EXPSTART/EXPEND MJD, angles in degrees, HEALPix order-29
NESTED ranges ``[lo, hi)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import psycopg
import sqlalchemy as sa

from mvmdb.db import members
from mvmdb.db.bulk import StagingTable, copy_rows, drop_staging, ensure_staging

__all__ = [
    "STAGING", "Existing", "Writes", "IngestConnection", "prepare", "cleanup", "errors_on_record", "existing", "cells_of",
    "details", "fast_match", "write",
]

S_EXP = StagingTable("s_ingest_exposure", (
    ("ipppssoot", "text"), ("filetype", "text"), ("filename", "text"), ("path", "text"),
    ("file_size", "int8"), ("file_mtime_ns", "int8"), ("instrument", "text"), ("detector", "text"),
    ("filter", "text"), ("exptime", "float8"), ("expstart", "float8"), ("expend", "float8"),
    ("date_obs", "date"), ("proposid", "int4"), ("program_id", "text"), ("obset_id", "text"),
    ("wcsname", "text"), ("header_hash", "text"), ("wcs_hash", "text"), ("excluded_reason", "text"),
    ("keywords", "jsonb"), ("is_update", "bool"),
))
S_CHIP = StagingTable("s_ingest_chip", (
    ("ipppssoot", "text"), ("filetype", "text"), ("extver", "int2"), ("naxis1", "int4"), ("naxis2", "int4"),
    ("ra", "float8[]"), ("dec", "float8[]"), ("cra", "float8"), ("cdec", "float8"), ("lo", "int8[]"), ("hi", "int8[]"),
))
S_CELL = StagingTable("s_ingest_cell", (
    ("ipppssoot", "text"), ("filetype", "text"), ("sky_cell_id", "int4"), ("name", "text"),
    ("pc", "int2"), ("x", "int2"), ("y", "int2"),
))
S_REASON = StagingTable("s_ingest_reason", (("ipppssoot", "text"), ("filetype", "text"), ("excluded_reason", "text")))
S_TOUCH = StagingTable("s_ingest_touch", (
    ("ipppssoot", "text"), ("filetype", "text"), ("path", "text"), ("filename", "text"),
    ("file_size", "int8"), ("file_mtime_ns", "int8"),
))
S_PATHS = StagingTable("s_ingest_paths", (("path", "text"), ("file_size", "int8"), ("file_mtime_ns", "int8")))
S_IDS = StagingTable("s_ingest_ids", (("id", "int8"),))
STAGING = (S_EXP, S_CHIP, S_CELL, S_REASON, *members.STAGING, S_TOUCH, S_PATHS, S_IDS)

_KEY = "e.ipppssoot = s.ipppssoot AND e.filetype = s.filetype"
_EXP_COLS = ("ipppssoot, filetype, filename, path, file_size, file_mtime_ns, instrument, detector, filter, exptime, "
             "expstart, expend, date_obs, proposid, program_id, obset_id, wcsname, header_hash, wcs_hash, "
             "excluded_reason, keywords")
_EXP_UPDATE = ", ".join(f"{c} = EXCLUDED.{c}" for c in _EXP_COLS.split(", ") if c not in ("ipppssoot", "filetype"))

SQL_RECORD_ERROR = """
INSERT INTO ingest_error (path, reason) VALUES (%s, %s)
ON CONFLICT (path_md5) DO UPDATE
SET reason = EXCLUDED.reason, at = now(), attempts = ingest_error.attempts + 1
"""
"""One row per failing path: a repeated failure updates it (reason, last time, attempts). The key is
``md5(path)`` (a b-tree cannot hold paths over ~2.7 kB)."""
SQL_CLEAR_ERRORS = "DELETE FROM ingest_error WHERE path_md5 IN (SELECT md5(p) FROM unnest(CAST(%s AS text[])) AS p)"

SQL_UPSERT_EXPOSURES = f"""
INSERT INTO exposure ({_EXP_COLS})
SELECT {_EXP_COLS} FROM {S_EXP.name} ORDER BY ipppssoot, filetype
ON CONFLICT (ipppssoot, filetype) DO UPDATE SET {_EXP_UPDATE}, updated_at = now()
"""
SQL_DELETE_CHIPS = f"""
DELETE FROM chip c USING exposure e, {S_EXP.name} s
WHERE c.exposure_id = e.id AND {_KEY} AND s.is_update
"""
SQL_DELETE_CELLS = f"""
DELETE FROM exposure_sky_cell x USING exposure e, {S_EXP.name} s
WHERE x.exposure_id = e.id AND {_KEY} AND s.is_update
"""
SQL_INSERT_CHIPS = f"""
INSERT INTO chip (exposure_id, extver, naxis1, naxis2, ra_deg, dec_deg, center_ra_deg, center_dec_deg)
SELECT e.id, s.extver, s.naxis1, s.naxis2, s.ra, s.dec, s.cra, s.cdec
FROM {S_CHIP.name} s JOIN exposure e ON {_KEY}
"""
SQL_INSERT_HPX = f"""
INSERT INTO chip_hpx (chip_id, hpx)
SELECT c.id, int8range(u.lo, u.hi)
FROM {S_CHIP.name} s
JOIN exposure e ON {_KEY}
JOIN chip c ON c.exposure_id = e.id AND c.extver = s.extver
CROSS JOIN LATERAL unnest(s.lo, s.hi) AS u (lo, hi)
"""
SQL_INSERT_SKY_CELLS = f"""
INSERT INTO sky_cell (id, name, projection_cell_id, x, y)
SELECT DISTINCT sky_cell_id, name, pc, x, y FROM {S_CELL.name} ORDER BY sky_cell_id
ON CONFLICT DO NOTHING
"""
SQL_INSERT_EXPOSURE_CELLS = f"""
INSERT INTO exposure_sky_cell (exposure_id, sky_cell_id)
SELECT e.id, s.sky_cell_id FROM {S_CELL.name} s JOIN exposure e ON {_KEY}
ON CONFLICT DO NOTHING
"""
SQL_UPDATE_REASONS = f"""
UPDATE exposure e SET excluded_reason = s.excluded_reason, updated_at = now()
FROM {S_REASON.name} s WHERE {_KEY}
"""
SQL_TOUCH = f"""
UPDATE exposure e SET path = s.path, filename = s.filename, file_size = s.file_size, file_mtime_ns = s.file_mtime_ns
FROM {S_TOUCH.name} s WHERE {_KEY}
"""
SQL_EXISTING = """
SELECT id, ipppssoot, filetype, path, header_hash, wcs_hash, excluded_reason, instrument, detector, filter
FROM exposure WHERE ipppssoot = ANY(%s)
"""
SQL_FAST_MATCH = f"""
SELECT e.id, e.ipppssoot, e.filetype, e.path, e.excluded_reason, e.instrument, e.detector, e.filter,
       (e.filetype = 'flt' AND EXISTS (
            SELECT 1 FROM exposure f WHERE f.ipppssoot = e.ipppssoot AND f.filetype = 'flc')) AS has_flc
FROM {S_PATHS.name} p
JOIN exposure e ON e.path = p.path AND e.file_size = p.file_size AND e.file_mtime_ns = p.file_mtime_ns
"""
SQL_DETAILS_CELLS = f"""
SELECT x.exposure_id, sc.name
FROM {S_IDS.name} i JOIN exposure_sky_cell x ON x.exposure_id = i.id JOIN sky_cell sc ON sc.id = x.sky_cell_id
"""
SQL_DETAILS_LAYERS = f"""
SELECT m.exposure_id, l.name
FROM {S_IDS.name} i JOIN layer_member m ON m.exposure_id = i.id JOIN layer l ON l.id = m.layer_id
"""
SQL_CELLS_OF = """
SELECT x.exposure_id, sc.id, sc.name, sc.projection_cell_id, sc.x, sc.y
FROM exposure_sky_cell x JOIN sky_cell sc ON sc.id = x.sky_cell_id
WHERE x.exposure_id = ANY(%s)
"""


@dataclass
class Existing:
    """A catalogued exposure as ingest compares it with a file."""

    id: int
    ipppssoot: str
    filetype: str
    path: str
    header_hash: str | None
    wcs_hash: str | None
    reason: str | None
    instrument: str
    detector: str
    filter: str


@dataclass
class Writes:
    """Everything one ingest batch writes; each list holds rows in its staging table's column order.

    ``exposures`` (:data:`S_EXP`, last column ``is_update``), ``chips`` (:data:`S_CHIP`),
    ``cells`` (:data:`S_CELL`), ``reasons`` (:data:`S_REASON`), ``recompute`` and ``members``
    (:func:`mvmdb.db.members.write_new`), ``touches`` (:data:`S_TOUCH`: new path, size,
    mtime of an unchanged file), ``errors`` ``(path, reason)``, ``read_ok``: paths read and
    catalogued (their old errors go).
    """

    exposures: list[tuple] = field(default_factory=list)
    chips: list[tuple] = field(default_factory=list)
    cells: list[tuple] = field(default_factory=list)
    reasons: list[tuple] = field(default_factory=list)
    recompute: list[tuple] = field(default_factory=list)
    members: list[tuple] = field(default_factory=list)
    touches: list[tuple] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)
    read_ok: list[str] = field(default_factory=list)
    superseded: int = 0


class IngestConnection:
    """The one psycopg connection of an ingest run (taken from ``engine``'s pool), staging tables made.

    Each :meth:`transaction` yields a cursor and commits when its block ends (rolls back on
    an exception); :meth:`close` drops the staging tables (``drop_staging``) when asked and
    gives the connection back.
    """

    def __init__(self, engine: sa.Engine):
        self._raw = engine.raw_connection()
        try:
            with self.transaction() as cur:
                prepare(cur)
        except BaseException:
            self._raw.close()
            raise

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Cursor]:
        pg = self._raw.driver_connection
        try:
            with pg.cursor() as cur:
                yield cur
            pg.commit()
        except BaseException:
            pg.rollback()
            raise

    def close(self, *, drop_staging: bool = True) -> None:
        try:
            if drop_staging:
                with self.transaction() as cur:
                    cleanup(cur)
        finally:
            self._raw.close()


def prepare(cur: psycopg.Cursor) -> None:
    """Create the session's staging tables (idempotent)."""
    ensure_staging(cur, STAGING)


def cleanup(cur: psycopg.Cursor) -> None:
    """Drop the session's staging tables."""
    drop_staging(cur, STAGING)


def errors_on_record(cur: psycopg.Cursor) -> bool:
    """Whether ``ingest_error`` has any row (when none, successes need not clear anything)."""
    return bool(cur.execute("SELECT EXISTS (SELECT FROM ingest_error)").fetchone()[0])


def existing(cur: psycopg.Cursor, ipppssoots: Sequence[str]) -> dict[tuple[str, str], Existing]:
    """Catalogued exposures of these ipppssoots, by ``(ipppssoot, filetype)``."""
    if not ipppssoots:
        return {}
    cur.execute(SQL_EXISTING, (list(ipppssoots),))
    return {(row[1], row[2]): Existing(*row) for row in cur.fetchall()}


def cells_of(cur: psycopg.Cursor, ids: Sequence[int]) -> dict[int, list[tuple]]:
    """``(sky_cell_id, name, pc, x, y)`` of the sky cells of each exposure id."""
    out: dict[int, list[tuple]] = {i: [] for i in ids}
    if ids:
        cur.execute(SQL_CELLS_OF, (list(ids),))
        for eid, sid, name, pc, x, y in cur.fetchall():
            out[eid].append((sid, name, pc, x, y))
    return out


def details(cur: psycopg.Cursor, ids: Iterable[int]) -> tuple[dict[int, list[str]], dict[int, list[str]]]:
    """Sky-cell names and layer names of each exposure id (two dicts; ids without any are absent)."""
    copy_rows(cur, S_IDS, ((i,) for i in ids))
    cur.execute("ANALYZE " + S_IDS.name)  # a fresh temp table has no statistics
    cells: dict[int, list[str]] = {}
    layers: dict[int, list[str]] = {}
    for sql, out in ((SQL_DETAILS_CELLS, cells), (SQL_DETAILS_LAYERS, layers)):
        cur.execute(sql)
        for eid, name in cur.fetchall():
            out.setdefault(eid, []).append(name)
    return cells, layers


def fast_match(cur: psycopg.Cursor, stats: dict[str, tuple[int, int]]) -> list[tuple]:
    """Catalog rows whose (path, size, mtime ns) equal a file's ``stats[path] = (size, mtime_ns)``.

    Rows: ``(id, ipppssoot, filetype, path, excluded_reason, instrument, detector, filter, has_flc)``.
    """
    if not stats:
        return []
    copy_rows(cur, S_PATHS, ((p, s, m) for p, (s, m) in stats.items()))
    cur.execute(SQL_FAST_MATCH)
    return cur.fetchall()


def write(cur: psycopg.Cursor, w: Writes, *, clear_errors: bool) -> None:
    """Apply one batch (see :class:`Writes`) in the cursor's transaction.

    ``clear_errors``: delete the ``ingest_error`` rows of ``w.read_ok``.
    """
    if w.exposures:
        copy_rows(cur, S_EXP, w.exposures)
        cur.execute(SQL_UPSERT_EXPOSURES)
        if any(row[-1] for row in w.exposures):
            cur.execute(SQL_DELETE_CHIPS)
            cur.execute(SQL_DELETE_CELLS)
    if w.chips:
        copy_rows(cur, S_CHIP, w.chips)
        cur.execute(SQL_INSERT_CHIPS)
        cur.execute(SQL_INSERT_HPX)
    if w.cells:
        copy_rows(cur, S_CELL, w.cells)
        cur.execute(SQL_INSERT_SKY_CELLS)
        cur.execute(SQL_INSERT_EXPOSURE_CELLS)
    if w.reasons:
        copy_rows(cur, S_REASON, w.reasons)
        cur.execute(SQL_UPDATE_REASONS)
    members.write_new(cur, w.recompute, w.members)
    if w.touches:
        copy_rows(cur, S_TOUCH, w.touches)
        cur.execute(SQL_TOUCH)
    if w.errors:
        cur.executemany(SQL_RECORD_ERROR, w.errors)
    if w.read_ok and clear_errors:
        cur.execute(SQL_CLEAR_ERRORS, (w.read_ok,))
