"""Time-domain layer sets in the catalog: ``layer_set`` configuration and the memberships it implies.

Every usable exposure is a member of its ``all`` layers (ingest,
:func:`mvmdb.db.members.write_new`). Each *enabled* layer set that applies to a sky cell
(``layer_set.scope`` ``catalog`` or that sky cell; several entries of one set add up)
derives, from every ``all`` membership, one membership per key of the exposure in that
set: the layer of the same sky cell, instrument, detector, filter and scale, named
``rules.layer_name(..., key)``. The keys are computed in SQL (:data:`KEYS_SQL`), the
same rules as :mod:`mvmdb.layersets` (``tests/db/test_layersets_sql.py`` checks them
against each other on the boundaries):

* ``year``: the year of the exposure's start date, DATE-OBS, or ``floor(EXPSTART)`` as a
  UTC date when DATE-OBS is missing (:data:`DAY_SQL`);
* ``exptime``: ``short`` below 15 s, ``med`` below 120 s, else ``long`` (a limit goes up);
* ``epochs``: each user range (``YYYYMMDD-YYYYMMDD``, inclusive) holding the start date;
  automatic epochs (``gap_days``) depend on every member of an ``all`` layer and are
  computed per layer with window functions (:data:`_AUTO_EPOCHS`, as
  :func:`mvmdb.layersets.auto_epochs`), the whole layer again whenever a member comes or goes.

Since they derive from ``all`` memberships, exclusions (issue 16) and the ingest rules
apply to every set. A layer is *active* (planned, drawn) when its set is ``all`` or an
enabled entry applies to its sky cell (:data:`ACTIVE_SQL`); a disabled set keeps its
layers, memberships and products. Everything runs in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import psycopg
import sqlalchemy as sa

from mvmdb.db.bulk import driver_connection
from mvmdb.db.predicates import NOT_EXCLUDED

__all__ = [
    "DAY_SQL", "KEYS_SQL", "ACTIVE_SQL", "active_sql", "derived_name_sql", "S_GROUP", "LayerSetConfig",
    "SyncResult", "LayerSetSummary", "upsert", "set_enabled", "configs", "resync", "sync", "resync_auto_epochs",
    "summaries", "sql_keys", "covers_sql",
]

DAY_SQL = "coalesce(e.date_obs, DATE '1858-11-17' + CAST(floor(e.expstart) AS integer))"
"""The UTC date an exposure ``e`` starts: DATE-OBS, else the day of EXPSTART (MJD 0 = 1858-11-17)."""

KEYS_SQL = f"""
SELECT CASE c.name
           WHEN 'year' THEN to_char({DAY_SQL}, 'FMYYYY')
           ELSE CASE WHEN e.exptime < 15 THEN 'short' WHEN e.exptime < 120 THEN 'med' ELSE 'long' END
       END
WHERE (c.name = 'year' AND {DAY_SQL} IS NOT NULL) OR (c.name = 'exptime' AND e.exptime IS NOT NULL)
UNION ALL
SELECT r FROM unnest(c.ranges) AS r
WHERE c.name = 'epochs' AND {DAY_SQL} BETWEEN to_date(left(r, 8), 'YYYYMMDD') AND to_date(right(r, 8), 'YYYYMMDD')
"""
"""The layer keys of exposure ``e`` in the set of ``layer_set`` row ``c`` (a LATERAL subquery)."""


def covers_sql(entry: str, sky_cell_id: str) -> str:
    """SQL true where ``layer_set`` row ``entry`` applies to the sky cell whose id is the SQL
    expression ``sky_cell_id``: an entry of scope ``catalog`` (no sky cell) or of that sky cell."""
    return f"({entry}.sky_cell_id IS NULL OR {entry}.sky_cell_id = {sky_cell_id})"


def active_sql(alias: str) -> str:
    """SQL true for a layer ``alias`` that is planned and drawn: set ``all``, or an enabled entry of its set applies."""
    return f"""({alias}.layer_set = 'all' OR EXISTS (
    SELECT 1 FROM layer_set AS c
    WHERE c.enabled AND c.name = {alias}.layer_set AND {covers_sql("c", f"{alias}.sky_cell_id")}))"""


ACTIVE_SQL = active_sql("l")
"""True for a layer ``l`` that is planned and drawn (:func:`active_sql`)."""


def derived_name_sql(all_name: str, key: str) -> str:
    """SQL for a derived layer's name from its ``all`` layer's name: ``..._all`` -> ``..._<key>``,
    ``..._coarse-all`` -> ``..._coarse-<key>`` (as :func:`mvmdb.rules.layer_name`)."""
    return f"(left({all_name}, -3) || {key})"


class LayerSetConfig(NamedTuple):
    """A ``layer_set`` row. ``scope``: ``catalog`` or a sky cell name; ``ranges``: epoch keys."""

    id: int
    name: str
    scope: str
    sky_cell_id: int | None
    gap_days: float | None
    ranges: list[str] | None
    enabled: bool
    created_at: object
    changed_at: object


class SyncResult(NamedTuple):
    """What :func:`sync` changed: layers created, memberships added and removed, layers to redraw."""

    layers_created: int
    added: int
    removed: int
    redraw_layers: int


class LayerSetSummary(NamedTuple):
    """One row of ``mvm layers list``: a set's entry with its layer and membership counts
    (counts over the layers of the set in the entry's scope)."""

    name: str
    scope: str
    enabled: bool
    gap_days: float | None
    ranges: list[str] | None
    n_layers: int
    n_products: int
    n_members: int
    n_new: int
    changed_at: object


_CONFIG_COLUMNS = "id, name, scope, sky_cell_id, gap_days, ranges, enabled, created_at, changed_at"


def upsert(conn: sa.Connection, name: str, scope: str, sky_cell_id: int | None, *,
           gap_days: float | None = None, ranges: Sequence[str] | None = None) -> LayerSetConfig:
    """Enable a set for a scope (create the entry, or enable it and replace its options)."""
    row = conn.execute(sa.text(f"""
        INSERT INTO layer_set (name, scope, sky_cell_id, gap_days, ranges)
        VALUES (:name, :scope, :cell, :gap, CAST(:ranges AS text[]))
        ON CONFLICT (name, scope) DO UPDATE
        SET enabled = true, gap_days = EXCLUDED.gap_days, ranges = EXCLUDED.ranges, changed_at = now()
        RETURNING {_CONFIG_COLUMNS}"""), {"name": name, "scope": scope, "cell": sky_cell_id, "gap": gap_days,
                                          "ranges": list(ranges) if ranges is not None else None}).one()
    return LayerSetConfig(*row)


def set_enabled(conn: sa.Connection, name: str, scope: str, enabled: bool) -> LayerSetConfig | None:
    """Enable or disable an existing entry; None when there is no such entry."""
    row = conn.execute(sa.text(f"""
        UPDATE layer_set SET enabled = :enabled, changed_at = now()
        WHERE name = :name AND scope = :scope RETURNING {_CONFIG_COLUMNS}"""),
        {"name": name, "scope": scope, "enabled": enabled}).one_or_none()
    return None if row is None else LayerSetConfig(*row)


def configs(conn: sa.Connection) -> list[LayerSetConfig]:
    """Every ``layer_set`` entry, by set then scope."""
    rows = conn.execute(sa.text(f"SELECT {_CONFIG_COLUMNS} FROM layer_set ORDER BY name, scope"))
    return [LayerSetConfig(*r) for r in rows]


S_GROUP = "s_layer_set_group"
"""TEMP table of the ``all`` layers (ids) whose derived memberships :func:`resync` recomputes."""

_WANT = f"""
CREATE TEMP TABLE s_layer_set_want ON COMMIT DROP AS
SELECT DISTINCT l.sky_cell_id, l.instrument, l.detector, l.filter, l.scale,
       {derived_name_sql("l.name", "k.key")} AS name, c.name AS layer_set, k.key AS layer_key, m.exposure_id
FROM {S_GROUP} AS g
JOIN layer AS l ON l.id = g.layer_id
JOIN layer_member AS m ON m.layer_id = l.id
JOIN exposure AS e ON e.id = m.exposure_id
JOIN layer_set AS c ON c.enabled AND c.name = %(name)s AND {covers_sql("c", "l.sky_cell_id")}
CROSS JOIN LATERAL ({KEYS_SQL}) AS k (key)
WHERE {NOT_EXCLUDED}
"""
_AUTO_EPOCHS = f"""
INSERT INTO s_layer_set_want
WITH cut AS (
    SELECT g.layer_id, c.gap_days, m.exposure_id, e.expstart,
           CASE WHEN e.expstart - lag(e.expstart) OVER w > c.gap_days THEN 1 ELSE 0 END AS cut
    FROM {S_GROUP} AS g
    JOIN layer AS l ON l.id = g.layer_id
    JOIN layer_set AS c ON c.enabled AND c.name = 'epochs' AND c.gap_days IS NOT NULL
                       AND {covers_sql("c", "l.sky_cell_id")}
    JOIN layer_member AS m ON m.layer_id = l.id
    JOIN exposure AS e ON e.id = m.exposure_id
    WHERE e.expstart IS NOT NULL
      AND {NOT_EXCLUDED}
    WINDOW w AS (PARTITION BY g.layer_id, c.gap_days ORDER BY e.expstart, m.exposure_id)
), numbered AS (
    SELECT *, sum(cut) OVER (PARTITION BY layer_id, gap_days ORDER BY expstart, exposure_id) AS epoch
    FROM cut
), keyed AS (
    SELECT layer_id, exposure_id,
           to_char(DATE '1858-11-17' + CAST(floor(min(expstart) OVER p) AS integer), 'YYYYMMDD') || '-' ||
           to_char(DATE '1858-11-17' + CAST(floor(max(expstart) OVER p) AS integer), 'YYYYMMDD') AS key
    FROM numbered
    WINDOW p AS (PARTITION BY layer_id, gap_days, epoch)
)
SELECT DISTINCT l.sky_cell_id, l.instrument, l.detector, l.filter, l.scale,
       {derived_name_sql("l.name", "k.key")}, 'epochs', k.key, k.exposure_id
FROM keyed AS k JOIN layer AS l ON l.id = k.layer_id
"""
"""Automatic epochs (``layer_set.gap_days``) of the groups' members, as :func:`mvmdb.layersets.auto_epochs`:
sorted by EXPSTART, a new epoch after a gap strictly longer than ``gap_days``; keys from the
UTC dates of the first and last start. Depends on every member of a group, so a group is
always recomputed whole."""
_INSERT_LAYERS = """
INSERT INTO layer (sky_cell_id, instrument, detector, filter, scale, name, layer_set, layer_key)
SELECT DISTINCT sky_cell_id, instrument, detector, filter, scale, name, layer_set, layer_key
FROM s_layer_set_want ORDER BY name
ON CONFLICT DO NOTHING
"""
_REMOVE = f"""
WITH gone AS (
    DELETE FROM layer_member AS m USING layer AS d, {S_GROUP} AS g, layer AS a
    WHERE m.layer_id = d.id AND a.id = g.layer_id AND d.layer_set = %(name)s AND {active_sql("d")}
      AND (d.sky_cell_id, d.instrument, d.detector, d.filter, d.scale)
          = (a.sky_cell_id, a.instrument, a.detector, a.filter, a.scale)
      AND NOT EXISTS (SELECT 1 FROM s_layer_set_want AS w WHERE w.name = d.name AND w.exposure_id = m.exposure_id)
    RETURNING m.layer_id
)
SELECT layer_id, count(*) FROM gone GROUP BY layer_id
"""
_ADD = """
INSERT INTO layer_member (layer_id, exposure_id)
SELECT l.id, w.exposure_id FROM s_layer_set_want AS w JOIN layer AS l ON l.name = w.name
ORDER BY l.id, w.exposure_id
ON CONFLICT DO NOTHING
"""
_REDRAW = """
UPDATE layer_member SET status = 'NEW', generation = nextval('member_generation_seq'), changed_at = now()
WHERE layer_id = ANY(%(ids)s) AND status = 'OLD'
"""
_GROUPS_OF_CELL = f"""
INSERT INTO {S_GROUP} (layer_id)
SELECT id FROM layer WHERE layer_set = 'all' AND (%(cell)s::integer IS NULL OR sky_cell_id = %(cell)s::integer)
"""


def resync(cur: psycopg.Cursor, name: str) -> SyncResult:
    """Recompute the memberships of set ``name`` derived from the ``all`` layers in :data:`S_GROUP`
    (a TEMP table the caller fills, in the cursor's transaction).

    Missing layers are created, missing memberships join as NEW, memberships no longer
    implied (a range removed, an automatic epoch renamed or split) are deleted and their
    layers redrawn (every member NEW). Layers of the set where no enabled entry applies are
    left as they are (a disabled set keeps its layers).
    """
    if name not in ("year", "exptime", "epochs"):
        raise ValueError(f"unknown layer set {name!r}")
    params = {"name": name}
    cur.execute("DROP TABLE IF EXISTS s_layer_set_want")
    cur.execute(_WANT, params)
    if name == "epochs":
        cur.execute(_AUTO_EPOCHS)
    cur.execute("CREATE INDEX ON s_layer_set_want (name, exposure_id)")
    cur.execute("ANALYZE s_layer_set_want")
    created = cur.execute(_INSERT_LAYERS).rowcount
    removed = dict(cur.execute(_REMOVE, params).fetchall())
    added = cur.execute(_ADD).rowcount
    cur.execute(_REDRAW, {"ids": sorted(removed)})
    cur.execute("DROP TABLE s_layer_set_want")
    return SyncResult(created, added, sum(removed.values()), len(removed))


def _new_groups(cur: psycopg.Cursor) -> None:
    cur.execute(f"CREATE TEMP TABLE IF NOT EXISTS {S_GROUP} (layer_id integer PRIMARY KEY) ON COMMIT DELETE ROWS")
    cur.execute(f"DELETE FROM {S_GROUP}")


def sync(conn: sa.Connection, name: str, sky_cell_id: int | None = None) -> SyncResult:
    """Bring the memberships of set ``name`` (in one sky cell, or everywhere) in line with its
    enabled entries: :func:`resync` over every ``all`` layer there, in one set-based pass."""
    with driver_connection(conn).cursor() as cur:
        _new_groups(cur)
        cur.execute(_GROUPS_OF_CELL, {"cell": sky_cell_id})
        cur.execute(f"ANALYZE {S_GROUP}")
        return resync(cur, name)


_AUTO_ENABLED = "SELECT EXISTS (SELECT 1 FROM layer_set WHERE enabled AND name = 'epochs' AND gap_days IS NOT NULL)"


def resync_auto_epochs(cur: psycopg.Cursor, layer_sql: str) -> SyncResult | None:
    """Recompute the automatic epochs of the ``all`` layers that ``layer_sql`` (a SELECT of layer ids)
    names, when an automatic epochs entry is enabled (else nothing, and None). Ingest calls it
    for the layers whose members changed: a new exposure may extend, rename or merge epochs."""
    if not cur.execute(_AUTO_ENABLED).fetchone()[0]:
        return None
    _new_groups(cur)
    cur.execute(f"INSERT INTO {S_GROUP} (layer_id) SELECT DISTINCT x.id FROM ({layer_sql}) AS x (id) "
                f"JOIN layer AS l ON l.id = x.id AND l.layer_set = 'all' ON CONFLICT DO NOTHING")
    return resync(cur, "epochs")


_SUMMARIES = f"""
SELECT c.name, c.scope, c.enabled, c.gap_days, c.ranges,
       count(DISTINCT l.id) AS n_layers, count(DISTINCT p.id) AS n_products,
       count(m.exposure_id) AS n_members, count(m.exposure_id) FILTER (WHERE m.status = 'NEW') AS n_new,
       c.changed_at
FROM layer_set AS c
LEFT JOIN layer AS l ON l.layer_set = c.name AND {covers_sql("c", "l.sky_cell_id")}
LEFT JOIN product AS p ON p.layer_id = l.id
LEFT JOIN layer_member AS m ON m.layer_id = l.id
GROUP BY c.id
ORDER BY c.name, c.scope
"""
_ALL_SUMMARY = """
SELECT 'all', 'catalog', true, CAST(NULL AS double precision), CAST(NULL AS text[]),
       count(DISTINCT l.id), count(DISTINCT p.id), count(m.exposure_id),
       count(m.exposure_id) FILTER (WHERE m.status = 'NEW'), CAST(NULL AS timestamptz)
FROM layer AS l
LEFT JOIN product AS p ON p.layer_id = l.id
LEFT JOIN layer_member AS m ON m.layer_id = l.id
WHERE l.layer_set = 'all'
"""


def summaries(conn: sa.Connection) -> list[LayerSetSummary]:
    """``all`` (always on) then every entry of ``layer_set``, with layer, product, member and NEW counts."""
    rows = conn.execute(sa.text(_ALL_SUMMARY)).all() + conn.execute(sa.text(_SUMMARIES)).all()
    return [LayerSetSummary(*r) for r in rows]


def sql_keys(conn: sa.Connection, name: str, date_obs: Sequence, expstart: Sequence, exptime: Sequence,
             ranges: Sequence[str] | None = None) -> list[list[str]]:
    """The keys :data:`KEYS_SQL` gives, per exposure described by ``(date_obs, expstart, exptime)``
    (for tests of the SQL against :mod:`mvmdb.layersets`); nothing is stored."""
    rows = conn.execute(sa.text(f"""
        SELECT e.i, coalesce(array_agg(k.key ORDER BY k.key) FILTER (WHERE k.key IS NOT NULL), '{{}}')
        FROM unnest(CAST(:d AS date[]), CAST(:s AS double precision[]), CAST(:t AS double precision[]))
             WITH ORDINALITY AS e (date_obs, expstart, exptime, i)
        CROSS JOIN (SELECT CAST(:name AS text) AS name, CAST(:ranges AS text[]) AS ranges) AS c
        LEFT JOIN LATERAL ({KEYS_SQL}) AS k (key) ON true
        GROUP BY e.i ORDER BY e.i"""),
        {"d": list(date_obs), "s": list(expstart), "t": list(exptime), "name": name,
         "ranges": list(ranges) if ranges is not None else None}).all()
    return [list(r[1]) for r in rows]
