"""Layer memberships: the whole NEW/OLD life of ``layer_member``, in one place.

A membership is born NEW (ingest: :func:`write_new`, which also marks every member of a
layer whose membership changed NEW again, with a fresh ``member_generation_seq`` value);
the planner reads the layers with NEW members (:func:`plan_rows`, the ``plan_rows``
statement of ``schema/plan.sql``); a finished job flips the memberships it drew to OLD
(:func:`flip_old`), only those with ``generation <= job.generation``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import psycopg
import sqlalchemy as sa

from mvmdb.db import layersets
from mvmdb.db.bulk import StagingTable, copy_rows, driver_connection
from mvmdb.db.predicates import NOT_EXCLUDED
from mvmdb.layersets import ALL_KEY
from mvmdb.db.models import Layer, LayerMember
from mvmdb.resources import sql_statements

__all__ = ["STAGING", "write_new", "max_new_generation", "plan_rows", "flip_old", "lock_layers"]


def max_new_generation(conn: sa.Connection, sky_cell_id: int) -> int | None:
    """The highest generation of the sky cell's NEW memberships (None when it has none)."""
    return conn.execute(
        sa.select(sa.func.max(LayerMember.generation))
        .join(Layer, Layer.id == LayerMember.layer_id)
        .where(Layer.sky_cell_id == sky_cell_id, LayerMember.status == "NEW")
    ).scalar()


def plan_rows(conn: sa.Connection, skycells: Sequence[str] | None = None) -> list[tuple]:
    """Run the plan query: one row per (sky cell, exposure) of every layer with NEW members.

    Plain tuples, columns in the order of ``plan_rows`` in ``schema/plan.sql``; rows ordered
    by sky cell, then file name. ``skycells``: full names, or None for all. Runs in the
    caller's transaction, with settings local to it: enough ``work_mem`` for the sort of a
    nightly plan (~100 k rows) to stay in memory, and no JIT compilation, which costs more
    than it saves on this index-driven join. The rows are fetched by the psycopg cursor
    itself: building a SQLAlchemy ``Row`` per line cost as much as the query on a worst-case
    plan (350 k lines, ``benchmarks/bench_plan.py``).
    """
    conn.exec_driver_sql("SET LOCAL work_mem = '64MB'")
    conn.exec_driver_sql("SET LOCAL jit = off")
    params = {"skycells": list(skycells) if skycells else None}
    with driver_connection(conn).cursor() as cur:
        cur.execute(_driver_sql(sql_statements("plan.sql")["plan_rows"]), params)
        return cur.fetchall()


def _driver_sql(sql: str) -> str:
    """A ``text()`` statement (``:name`` parameters) in psycopg's ``%(name)s`` style."""
    return re.sub(r"(?<![:\w]):(\w+)", r"%(\1)s", sql.replace("%", "%%"))


_LOCK_LAYERS = "SELECT id FROM layer WHERE id = ANY(CAST(:ids AS integer[])) ORDER BY id FOR NO KEY UPDATE"
_WITH_MEMBERS = "SELECT DISTINCT layer_id FROM layer_member WHERE layer_id = ANY(CAST(:ids AS integer[]))"


def lock_layers(conn: sa.Connection, layer_ids: Sequence[int]) -> set[int]:
    """Lock the ``layer`` rows until the end of the transaction; return those that still have a member.

    The writer that can empty a layer and retire its product (``mvm exclude``) and the one that
    publishes a product (a finishing job) both take these locks, in id order (no deadlock
    between them), before they change memberships or product rows, so whichever comes second
    sees what the first committed (READ COMMITTED: the membership query after the lock has a
    fresh snapshot). ``FOR NO KEY UPDATE`` does not block the foreign-key checks of new
    memberships (``FOR KEY SHARE``).
    """
    if not layer_ids:
        return set()
    ids = {"ids": sorted(set(layer_ids))}
    conn.execute(sa.text(_LOCK_LAYERS), ids)
    return set(conn.execute(sa.text(_WITH_MEMBERS), ids).scalars())


def flip_old(conn: sa.Connection, layer_id: int, exposure_ids: Sequence[int], generation: int) -> None:
    """NEW -> OLD for the given memberships of a layer whose generation is ``<= generation``."""
    conn.execute(
        sa.update(LayerMember)
        .where(
            LayerMember.layer_id == layer_id,
            LayerMember.status == "NEW",
            LayerMember.generation <= generation,
            LayerMember.exposure_id.in_(list(exposure_ids)),
        )
        .values(status="OLD", changed_at=sa.func.now())
    )


# --------------------------------------------------------------------------- ingest: write NEW

S_RECOMPUTE = StagingTable("s_ingest_recompute", (("ipppssoot", "text"), ("filetype", "text"), ("redraw", "bool")))
"""Exposures whose memberships are recomputed; ``redraw``: their old layers are marked for redraw too."""
S_MEMBER = StagingTable("s_ingest_member", (
    ("ipppssoot", "text"), ("filetype", "text"), ("sky_cell_id", "int4"), ("instrument", "text"),
    ("detector", "text"), ("filter", "text"), ("scale", "text"), ("name", "text"),
    ("layer_set", "text"), ("layer_key", "text"),
))
"""The layers each recomputed exposure belongs to now: the callers give the ``all`` layers,
:data:`SQL_DERIVE` adds those of every enabled layer set (:mod:`mvmdb.db.layersets`)."""
S_DIRTY = StagingTable("s_ingest_dirty", (("layer_id", "int4"),))
"""Layers whose members all become NEW again (redraw)."""
STAGING = (S_RECOMPUTE, S_MEMBER, S_DIRTY)

_KEY = "e.ipppssoot = s.ipppssoot AND e.filetype = s.filetype"

SQL_OLD_LAYERS_DIRTY = f"""
INSERT INTO {S_DIRTY.name} (layer_id)
SELECT m.layer_id FROM layer_member m
JOIN exposure e ON e.id = m.exposure_id
JOIN {S_RECOMPUTE.name} s ON {_KEY}
WHERE s.redraw
"""
SQL_DERIVE = f"""
INSERT INTO {S_MEMBER.name}
    (ipppssoot, filetype, sky_cell_id, instrument, detector, filter, scale, name, layer_set, layer_key)
SELECT DISTINCT m.ipppssoot, m.filetype, m.sky_cell_id, m.instrument, m.detector, m.filter, m.scale,
       {layersets.derived_name_sql("m.name", "k.key")}, c.name, k.key
FROM {S_MEMBER.name} m
JOIN exposure e ON e.ipppssoot = m.ipppssoot AND e.filetype = m.filetype
JOIN layer_set c ON c.enabled AND {layersets.covers_sql("c", "m.sky_cell_id")}
CROSS JOIN LATERAL ({layersets.KEYS_SQL}) AS k (key)
WHERE m.layer_set = 'all'
"""
SQL_INSERT_LAYERS = f"""
INSERT INTO layer (sky_cell_id, instrument, detector, filter, scale, name, layer_set, layer_key)
SELECT DISTINCT sky_cell_id, instrument, detector, filter, scale, name, layer_set, layer_key
FROM {S_MEMBER.name} ORDER BY name
ON CONFLICT DO NOTHING
"""
SQL_DELETE_GONE_MEMBERS = f"""
WITH want AS (
    SELECT e.id AS exposure_id, l.id AS layer_id
    FROM {S_MEMBER.name} s JOIN exposure e ON {_KEY} JOIN layer l ON l.name = s.name
    WHERE {NOT_EXCLUDED}
), gone AS (
    DELETE FROM layer_member m USING exposure e, {S_RECOMPUTE.name} s
    WHERE m.exposure_id = e.id AND {_KEY}
      AND NOT EXISTS (SELECT 1 FROM want w WHERE w.exposure_id = m.exposure_id AND w.layer_id = m.layer_id)
    RETURNING m.layer_id
)
INSERT INTO {S_DIRTY.name} (layer_id) SELECT layer_id FROM gone
"""
SQL_INSERT_MEMBERS = f"""
INSERT INTO layer_member (layer_id, exposure_id)
SELECT l.id, e.id FROM {S_MEMBER.name} s JOIN exposure e ON {_KEY} JOIN layer l ON l.name = s.name
WHERE {NOT_EXCLUDED}
ORDER BY l.id, e.id
ON CONFLICT DO NOTHING
"""
SQL_NEW_LAYERS_DIRTY = f"""
INSERT INTO {S_DIRTY.name} (layer_id)
SELECT l.id FROM {S_MEMBER.name} m
JOIN {S_RECOMPUTE.name} s ON s.ipppssoot = m.ipppssoot AND s.filetype = m.filetype
JOIN layer l ON l.name = m.name
WHERE s.redraw
"""
SQL_CHANGED_ALL_LAYERS = f"""
SELECT l.id FROM {S_MEMBER.name} AS m JOIN layer AS l ON l.name = m.name WHERE m.layer_set = 'all'
UNION SELECT layer_id FROM {S_DIRTY.name}
"""
"""Layers an exposure of the batch joined or left: their automatic epochs are recomputed."""
SQL_REDRAW = f"""
UPDATE layer_member SET status = 'NEW', generation = nextval('member_generation_seq'), changed_at = now()
WHERE layer_id IN (SELECT layer_id FROM {S_DIRTY.name})
"""


def write_new(cur: psycopg.Cursor, recompute: Sequence[tuple], members: Sequence[tuple]) -> None:
    """Recompute the memberships of exposures (in the cursor's transaction; staging tables made by ingest).

    ``recompute``: ``(ipppssoot, filetype, redraw)`` per exposure; ``members``:
    ``(ipppssoot, filetype, sky_cell_id, instrument, detector, filter, scale, layer name)``
    of every ``all`` layer each belongs to now; the layers of every enabled layer set
    (``layer_set``) are derived from them in SQL (:data:`SQL_DERIVE`). Missing layers are created; new memberships join as
    NEW (none for an exposure in ``exposure_exclusion``); the automatic epochs of the ``all``
    layers an exposure joined or left are recomputed whole (:func:`mvmdb.db.layersets.resync_auto_epochs`); memberships no longer wanted are removed and their layers marked for redraw, as
    are all layers (before and after) of exposures with ``redraw`` (re-aligned or changed):
    every member of a layer marked for redraw becomes NEW with a fresh generation.
    """
    if not recompute:
        return
    copy_rows(cur, S_RECOMPUTE, recompute)
    if members:
        copy_rows(cur, S_MEMBER, ((*row, ALL_KEY, ALL_KEY) for row in members))
        cur.execute(SQL_DERIVE)
        cur.execute(SQL_INSERT_LAYERS)
    if any(row[2] for row in recompute):
        cur.execute(SQL_OLD_LAYERS_DIRTY)
    cur.execute(SQL_DELETE_GONE_MEMBERS)
    if members:
        cur.execute(SQL_INSERT_MEMBERS)
        cur.execute(SQL_NEW_LAYERS_DIRTY)
    layersets.resync_auto_epochs(cur, SQL_CHANGED_ALL_LAYERS)
    cur.execute(SQL_REDRAW)
