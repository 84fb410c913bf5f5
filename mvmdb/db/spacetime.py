"""Space-time coverage queries: usable exposures' chip ranges with their times, and the exposures
that saw a position (or a cone) between two times.

*Usable* here (:data:`mvmdb.db.coverage.USABLE`) means what would be drizzled: kept by the
ingest rules (``excluded_reason IS NULL``) and not excluded by the operator or ``mvm qa``
(``exposure_exclusion``: :data:`mvmdb.db.predicates.NOT_EXCLUDED`, the test memberships use).
Exposures without EXPSTART/EXPEND have no time and are left out.

Units and conventions: times are MJD UTC (``exposure.expstart``/``expend``, HST's
EXPSTART/EXPEND); intervals are closed, an exposure meets ``[t1, t2]`` when
``expstart <= t2 AND expend >= t1``. Sky ranges are HEALPix NESTED order-29 half-open
``[lo, hi)`` (:mod:`mvmdb.sky.healpix`), as ``chip_hpx.hpx`` stores them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
import sqlalchemy as sa
from numpy.typing import NDArray

from mvmdb.db.coverage import USABLE, WIDENED, Row, exposures_at, exposures_in_cone
from mvmdb.db.predicates import filter_matches, filter_param
from mvmdb.sky.healpix import MAX_ORDER, order_shift

__all__ = ["CHUNK_ROWS", "RangeChunk", "SpanSummary", "range_chunks", "span_summary", "exposures_seen_between"]

_TIMED = "e.expstart IS NOT NULL AND e.expend IS NOT NULL"
_FILTER = filter_matches("e.filter")

CHUNK_ROWS = 200_000
"""Rows per chunk of :func:`range_chunks` (each 40 bytes in numpy)."""


class RangeChunk(NamedTuple):
    """One range per row: ``exposure_id`` (int64), ``ranges`` ``(n, 2)`` order-29 int64,
    ``expstart``/``expend`` (float64, MJD UTC) of the range's exposure."""

    exposure_id: NDArray[np.int64]
    ranges: NDArray[np.int64]
    expstart: NDArray[np.float64]
    expend: NDArray[np.float64]


class SpanSummary(NamedTuple):
    """What :func:`range_chunks` covers: usable timed exposures and their chips, first start and last end (MJD UTC; None when empty)."""

    n_exposures: int
    n_chips: int
    first_mjd: float | None
    last_mjd: float | None


_RANGES = f"""
SELECT x.exposure_id, lower(r) AS lo, upper(r) AS hi, x.expstart, x.expend
FROM (
    SELECT e.id AS exposure_id, e.expstart, e.expend,
           range_agg({WIDENED}) AS covered
    FROM chip_hpx AS h
    JOIN chip AS c ON c.id = h.chip_id
    JOIN exposure AS e ON e.id = c.exposure_id
    WHERE {USABLE} AND {_TIMED} AND {_FILTER}
    GROUP BY e.id
) AS x, unnest(x.covered) AS r
ORDER BY x.exposure_id, lo
"""

_CHUNK_DTYPE = np.dtype([("id", "i8"), ("lo", "i8"), ("hi", "i8"), ("t1", "f8"), ("t2", "f8")])


def range_chunks(conn: sa.Connection, *, space_order: int = MAX_ORDER, filter: str | None = None,
                 chunk_rows: int = CHUNK_ROWS) -> Iterator[RangeChunk]:
    """The usable timed exposures' chip cover, per exposure, streamed in chunks of ``chunk_rows`` rows.

    Each exposure's chips are merged into one set of order-29 ranges widened to whole cells of
    HEALPix ``space_order`` (0-29; from the catalog's order 13 up nothing changes), by
    exposure id then ``lo``. An exposure may straddle two chunks. Server-side cursor: memory
    stays at one chunk whatever the catalog size. ``filter``: only that filter (case-insensitive).
    """
    params = {"shift": order_shift(space_order), "filter": filter_param(filter)}
    result = conn.execution_options(stream_results=True).execute(sa.text(_RANGES), params)
    for rows in result.partitions(chunk_rows):
        table = np.fromiter(map(tuple, rows), dtype=_CHUNK_DTYPE, count=len(rows))
        yield RangeChunk(table["id"], np.column_stack([table["lo"], table["hi"]]), table["t1"], table["t2"])


def span_summary(conn: sa.Connection, *, filter: str | None = None) -> SpanSummary:
    """Counts and time span of what :func:`range_chunks` returns (same exposures, same filter)."""
    sql = f"""
        SELECT count(DISTINCT e.id) AS n_exposures, count(*) AS n_chips,
               min(e.expstart) AS first_mjd, max(e.expend) AS last_mjd
        FROM chip AS c JOIN exposure AS e ON e.id = c.exposure_id
        WHERE {USABLE} AND {_TIMED} AND {_FILTER}
          AND EXISTS (SELECT 1 FROM chip_hpx AS h WHERE h.chip_id = c.id)
    """
    row = conn.execute(sa.text(sql), {"filter": filter_param(filter)}).one()
    return SpanSummary(int(row.n_exposures), int(row.n_chips), row.first_mjd, row.last_mjd)


def exposures_seen_between(engine: sa.Engine, ra_deg: float, dec_deg: float, mjd_from: float, mjd_to: float, *,
                           radius_deg: float | None = None, filter: str | None = None) -> list[Row]:
    """Usable exposures that saw (ra, dec) (or, with ``radius_deg``, have a chip within that cone),
    degrees, and whose ``[expstart, expend]`` meets ``[mjd_from, mjd_to]`` (MJD UTC, closed), by start.

    :func:`mvmdb.db.coverage.exposures_at` / ``exposures_in_cone`` (HEALPix candidates, then the
    exact chip polygon) given ``between``; keys :data:`mvmdb.db.coverage.TIMED_EXPOSURE_KEYS`.
    """
    between = (mjd_from, mjd_to)
    if radius_deg is None:
        return exposures_at(engine, ra_deg, dec_deg, filter=filter, between=between)
    return exposures_in_cone(engine, ra_deg, dec_deg, radius_deg, filter=filter, between=between)
