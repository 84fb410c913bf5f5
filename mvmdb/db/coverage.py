"""Coverage queries: the coverage views, exposures at a position or in a cone, HEALPix ranges.

The views (``v_layer_coverage``, ``v_projection_cell_coverage``, ``v_filter_area``) are
made by migration 0002 and described in ``schema/views.sql``. Position queries compute
HEALPix pixels/ranges at order 29 with healpy (:mod:`mvmdb.sky.healpix`), find
candidate chips through the SP-GiST index on ``chip_hpx.hpx`` (``@>`` a pixel, ``&&`` a
range), then refine exactly against the stored chip polygons.

Rows are plain dicts whose keys are the tuples below (the CLI's ``--json`` keys).
Units: degrees, seconds, deg²; dates are ISO ``datetime.date``. Only usable exposures
(:data:`USABLE`) count as coverage: none with an ingest ``excluded_reason``, none excluded
by the operator or ``mvm qa``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import sqlalchemy as sa
from numpy.typing import NDArray

from mvmdb.db.predicates import NOT_EXCLUDED, filter_matches, filter_param  # shared with memberships, spacetime
from mvmdb.sky.coverage_maps import order_of_nside
from mvmdb.sky.healpix import (
    as_ranges,
    cone_ranges,
    order_shift,
    point_index,
    polygon_contains,
    polygon_distance_deg,
)

Row = dict[str, Any]

FILTER_AREA_KEYS = (
    "instrument",
    "detector",
    "filter",
    "n_exposures",
    "n_excluded",
    "total_exptime_s",
    "area_deg2",
    "footprint_sum_deg2",
)
LAYER_KEYS = (
    "layer_name",
    "sky_cell_name",
    "instrument",
    "detector",
    "filter",
    "scale",
    "n_exposures",
    "n_new",
    "total_exptime_s",
    "median_exptime_s",
    "first_date",
    "last_date",
    "proposals",
    "product_status",
)
PROJECTION_CELL_KEYS = (
    "projection_cell_id",
    "ra_deg",
    "dec_deg",
    "n_sky_cells",
    "n_exposures",
    "n_excluded",
    "n_layers",
    "n_products",
)
EXPOSURE_KEYS = (
    "exposure_id",
    "ipppssoot",
    "filetype",
    "instrument",
    "detector",
    "filter",
    "exptime_s",
    "date_obs",
    "proposid",
)

def _rows(engine: sa.Engine, sql: str, keys: Sequence[str], **params: Any) -> list[Row]:
    with engine.connect() as conn:
        result = conn.execute(sa.text(sql), params)
        return [{key: row[key] for key in keys} for row in result.mappings()]


def filter_areas(engine: sa.Engine, *, filter: str | None = None) -> list[Row]:
    """``v_filter_area`` rows (keys :data:`FILTER_AREA_KEYS`), by instrument, detector, filter."""
    sql = f"""
        SELECT * FROM v_filter_area
        WHERE {filter_matches("filter")}
        ORDER BY instrument, detector, filter
    """
    return _rows(engine, sql, FILTER_AREA_KEYS, filter=filter_param(filter))


def layer_coverage(engine: sa.Engine, *, sky_cell: str | None = None, filter: str | None = None) -> list[Row]:
    """``v_layer_coverage`` rows (keys :data:`LAYER_KEYS`), optionally of one sky cell (by name)."""
    sql = f"""
        SELECT * FROM v_layer_coverage
        WHERE (CAST(:sky_cell AS text) IS NULL OR sky_cell_name = CAST(:sky_cell AS text))
          AND {filter_matches("filter")}
        ORDER BY sky_cell_name, instrument, detector, filter, scale
    """
    return _rows(engine, sql, LAYER_KEYS, sky_cell=sky_cell, filter=filter_param(filter))


def projection_cell_coverage(engine: sa.Engine) -> list[Row]:
    """``v_projection_cell_coverage`` rows (keys :data:`PROJECTION_CELL_KEYS`)."""
    sql = "SELECT * FROM v_projection_cell_coverage ORDER BY projection_cell_id"
    return _rows(engine, sql, PROJECTION_CELL_KEYS)


def sky_cell_exists(engine: sa.Engine, name: str) -> bool:
    """Whether the catalog has the sky cell ``name`` (sky cells appear when an exposure touches them)."""
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT 1 FROM sky_cell WHERE name = :name"), {"name": name}).first() is not None


USABLE = f"e.excluded_reason IS NULL AND {NOT_EXCLUDED}"
"""SQL test on ``exposure AS e`` of the position and space-time searches: kept by ingest and not
excluded by the operator or ``mvm qa`` (what would be drizzled)."""


_CANDIDATE_CHIPS = f"""
    SELECT DISTINCT ON (c.id)
        c.id AS chip_id, c.ra_deg AS chip_ra_deg, c.dec_deg AS chip_dec_deg,
        e.id AS exposure_id, e.ipppssoot, e.filetype, e.instrument, e.detector, e.filter,
        e.exptime AS exptime_s, e.date_obs, e.proposid, e.expstart,
        e.expstart AS expstart_mjd, e.expend AS expend_mjd
    FROM chip_hpx AS h
    {{match}}
    JOIN chip AS c ON c.id = h.chip_id
    JOIN exposure AS e ON e.id = c.exposure_id
    WHERE {{where}} {USABLE} AND {filter_matches("e.filter")}
    ORDER BY c.id
"""


TIMED_EXPOSURE_KEYS = (*EXPOSURE_KEYS, "expstart_mjd", "expend_mjd")
"""Keys of position searches given ``between``: :data:`EXPOSURE_KEYS` plus start and end, MJD UTC."""


def _between(between: tuple[float, float] | None) -> tuple[str, dict[str, float], tuple[str, ...]]:
    """SQL (ending in AND), parameters and row keys of a time restriction ``(mjd_from, mjd_to)``."""
    if between is None:
        return "", {}, EXPOSURE_KEYS
    mjd_from, mjd_to = (float(t) for t in between)
    if mjd_from > mjd_to:
        raise ValueError(f"MJD {mjd_from} is after MJD {mjd_to}")
    where = "e.expstart <= CAST(:mjd_to AS float8) AND e.expend >= CAST(:mjd_from AS float8) AND"
    return where, {"mjd_from": mjd_from, "mjd_to": mjd_to}, TIMED_EXPOSURE_KEYS


def _refined(rows: Sequence[sa.RowMapping], keep: Callable[[sa.RowMapping], bool],
             keys: tuple[str, ...] = EXPOSURE_KEYS) -> list[Row]:
    """Exposures having a candidate chip that ``keep`` accepts, by start time."""
    found: dict[int, sa.RowMapping] = {}
    for row in rows:
        if row["exposure_id"] not in found and keep(row):
            found[row["exposure_id"]] = row
    ordered = sorted(found.values(), key=lambda r: (r["expstart"] is None, r["expstart"], r["exposure_id"]))
    return [{key: row[key] for key in keys} for row in ordered]


def exposures_at(engine: sa.Engine, ra_deg: float, dec_deg: float, *, filter: str | None = None,
                 between: tuple[float, float] | None = None) -> list[Row]:
    """Usable exposures with a chip whose footprint polygon contains (ra, dec), degrees.

    Candidates: chips whose order-29 ranges contain the position's pixel
    (``hpx @> pixel``); then the exact point-in-polygon test on the chip footprint.
    ``between``: ``(mjd_from, mjd_to)`` MJD UTC, closed: only exposures whose
    ``[expstart, expend]`` meets it; the rows then have :data:`TIMED_EXPOSURE_KEYS`.
    Usable: :data:`USABLE`, with or without ``between``.
    """
    when, params, keys = _between(between)
    sql = _CANDIDATE_CHIPS.format(match="", where=f"h.hpx @> CAST(:pixel AS bigint) AND {when}")
    with engine.connect() as conn:
        params.update(pixel=point_index(ra_deg, dec_deg), filter=filter_param(filter))
        rows = conn.execute(sa.text(sql), params)
        rows = rows.mappings().all()
    return _refined(rows, lambda r: polygon_contains(r["chip_ra_deg"], r["chip_dec_deg"], ra_deg, dec_deg), keys)


def exposures_in_cone(
    engine: sa.Engine, ra_deg: float, dec_deg: float, radius_deg: float, *, filter: str | None = None,
    between: tuple[float, float] | None = None,
) -> list[Row]:
    """Usable exposures with a chip footprint within ``radius_deg`` of (ra, dec), degrees.

    Candidates: chips whose ranges overlap (``&&``) the cone's HEALPix cover (healpy
    ``query_disc``, inclusive); then the exact polygon-to-point distance, in Python per
    candidate chip (~30 µs each): fine for cones of a few degrees, slow for a hemisphere.
    ``between``: a time restriction as in :func:`exposures_at`.
    """
    when, params, keys = _between(between)
    ranges = cone_ranges(ra_deg, dec_deg, radius_deg)
    match = "JOIN unnest(CAST(:lo AS bigint[]), CAST(:hi AS bigint[])) AS q(lo, hi) ON h.hpx && int8range(q.lo, q.hi)"
    params.update(lo=ranges[:, 0].tolist(), hi=ranges[:, 1].tolist(), filter=filter_param(filter))
    with engine.connect() as conn:
        rows = conn.execute(sa.text(_CANDIDATE_CHIPS.format(match=match, where=when)), params).mappings().all()
    return _refined(
        rows, lambda r: polygon_distance_deg(r["chip_ra_deg"], r["chip_dec_deg"], ra_deg, dec_deg) <= radius_deg, keys
    )


def coverage_ranges(engine: sa.Engine, *, filter: str | None = None) -> NDArray[np.int64]:
    """The union of the usable exposures' chip ranges (order 29, merged, sorted), shape ``(n, 2)``."""
    sql = f"""
        SELECT lower(r) AS lo, upper(r) AS hi
        FROM (
            SELECT range_agg(h.hpx) AS covered
            FROM chip_hpx AS h
            JOIN chip AS c ON c.id = h.chip_id
            JOIN exposure AS e ON e.id = c.exposure_id
            WHERE {USABLE} AND {filter_matches("e.filter")}
        ) AS u, unnest(u.covered) AS r
        ORDER BY lo
    """
    with engine.connect() as conn:
        rows = conn.execute(sa.text(sql), {"filter": filter_param(filter)}).all()
    return as_ranges(rows)


WIDENED = ("int8range((lower(h.hpx) >> CAST(:shift AS int)) << CAST(:shift AS int), "
           "(((upper(h.hpx) - 1) >> CAST(:shift AS int)) + 1) << CAST(:shift AS int))")
"""SQL: the range ``chip_hpx AS h``'s ``hpx`` widened to whole pixels of an order (``:shift`` =
:func:`mvmdb.sky.healpix.order_shift` of it), still as order-29 indices."""


def exposure_ranges(
    engine: sa.Engine, nside: int, *, filter: str | None = None
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]:
    """Per usable exposure, its chips' ranges widened to whole pixels at ``nside``.

    Returns ``(ranges, exposure_ids, exptimes_s)``, one row per merged range: order-29
    ranges aligned to ``nside``'s pixels, enough for :func:`coverage_map` at that nside
    and far fewer rows than the chips' own ranges.
    """
    shift = order_shift(order_of_nside(nside))
    sql = f"""
        SELECT x.exposure_id, x.exptime, lower(r) AS lo, upper(r) AS hi
        FROM (
            SELECT e.id AS exposure_id, e.exptime,
                   range_agg({WIDENED}) AS covered
            FROM chip_hpx AS h
            JOIN chip AS c ON c.id = h.chip_id
            JOIN exposure AS e ON e.id = c.exposure_id
            WHERE {USABLE} AND {filter_matches("e.filter")}
            GROUP BY e.id
        ) AS x, unnest(x.covered) AS r
    """
    with engine.connect() as conn:
        rows = conn.execute(sa.text(sql), {"shift": shift, "filter": filter_param(filter)}).all()
    ids = np.array([r.exposure_id for r in rows], dtype=np.int64)
    exptimes = np.array([r.exptime for r in rows], dtype=np.float64)
    return as_ranges([(r.lo, r.hi) for r in rows]), ids, exptimes


# --------------------------------------------------------------------------- exclusions and quality (issue 16)

EXCLUSION_KEYS = ("kind", "n_exposures")
"""Keys of :func:`exclusion_kinds` rows (view ``v_exclusion_kind``)."""


def exclusion_kinds(engine: sa.Engine) -> list[Row]:
    """Excluded exposures by kind (``operator``, ``trailed``, ``alignment`` and the ingest rules' categories)."""
    return _rows(engine, "SELECT kind, n_exposures FROM v_exclusion_kind ORDER BY kind", EXCLUSION_KEYS)


_LAYER_QUALITY = """
WITH lay AS (
    SELECT l.id, l.name, l.sky_cell_id, l.instrument, l.detector, l.filter
    FROM layer AS l JOIN sky_cell AS s ON s.id = l.sky_cell_id
    WHERE s.name = :sky_cell
), cand AS (
    SELECT lay.id AS layer_id, e.ipppssoot, e.wcsname
    FROM lay JOIN layer_member AS m ON m.layer_id = lay.id JOIN exposure AS e ON e.id = m.exposure_id
    UNION
    SELECT lay.id, e.ipppssoot, e.wcsname
    FROM lay JOIN exposure_sky_cell AS c ON c.sky_cell_id = lay.sky_cell_id
    JOIN exposure AS e ON e.id = c.exposure_id AND e.instrument = lay.instrument AND e.detector = lay.detector
                      AND e.filter = lay.filter AND e.excluded_reason IS NULL
    JOIN exposure_exclusion AS x ON x.ipppssoot = e.ipppssoot
)
SELECT lay.name AS layer_name, cand.ipppssoot, cand.wcsname, x.kind AS excluded_kind,
       coalesce(bool_or(q.flagged), false) AS flagged
FROM lay JOIN cand ON cand.layer_id = lay.id
LEFT JOIN exposure_exclusion AS x ON x.ipppssoot = cand.ipppssoot
LEFT JOIN qa_check AS q ON q.ipppssoot = cand.ipppssoot
GROUP BY lay.name, cand.ipppssoot, cand.wcsname, x.kind
ORDER BY lay.name, cand.ipppssoot
"""


def layer_quality(engine: sa.Engine, sky_cell: str) -> list[Row]:
    """Per layer of a sky cell (by name), each member or excluded would-be member:
    ``layer_name, ipppssoot, wcsname, excluded_kind`` (None when a member), ``flagged``
    (any stored ``mvm qa`` check flagged)."""
    return _rows(engine, _LAYER_QUALITY, ("layer_name", "ipppssoot", "wcsname", "excluded_kind", "flagged"),
                 sky_cell=sky_cell)
