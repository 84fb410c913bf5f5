"""The catalog's space-time coverage: an IVOA space-time MOC (mocpy ``STMOC``) of the usable exposures.

Each usable exposure (:data:`mvmdb.db.coverage.USABLE`, with EXPSTART and EXPEND) adds its chips'
footprint (``chip_hpx`` ranges) over its start..end (MJD UTC). The ranges come from
:func:`mvmdb.db.spacetime.range_chunks` chunk by chunk (one chunk in memory at a time), each
chunk becomes an STMOC (:func:`mvmdb.sky.stmoc.stmoc_from_ranges`) and the chunks are united;
:func:`mvmdb.fitsio.moc.write_stmoc` writes the file. This is what ``mvm coverage moc --time`` runs.

Resolution: space HEALPix order ``space_order`` (default 13, the catalog's own: 25.8" cells),
time order ``time_order`` (default 41: 1.048576 s cells); both make a superset
(:mod:`mvmdb.sky.stmoc`).
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import sqlalchemy as sa

from mvmdb.db.spacetime import CHUNK_ROWS, SpanSummary, range_chunks, span_summary
from mvmdb.sky.stmoc import SPACE_ORDER, TIME_ORDER, stmoc_from_ranges

__all__ = ["StmocWritten", "catalog_stmoc", "coverage_stmoc"]


class StmocWritten(NamedTuple):
    """A written space-time MOC: its file and size (bytes), orders, and what went in (:class:`SpanSummary`)."""

    path: Path
    size_bytes: int
    space_order: int
    time_order: int
    span: SpanSummary


def _union_all(mocs: list):
    """The union of STMOCs, pairwise in a balanced tree (each union costs the size of its operands)."""
    while len(mocs) > 1:
        mocs = [a.union(b) for a, b in zip(mocs[::2], mocs[1::2], strict=False)] + mocs[len(mocs) // 2 * 2:]
    return mocs[0]


def catalog_stmoc(conn: sa.Connection, *, filter: str | None = None, space_order: int = SPACE_ORDER,
                  time_order: int = TIME_ORDER, chunk_rows: int = CHUNK_ROWS):
    """The STMOC of the usable exposures (optionally of one filter, case-insensitive); empty when none."""
    from mocpy import STMOC

    parts = []
    for chunk in range_chunks(conn, space_order=space_order, filter=filter, chunk_rows=chunk_rows):
        _, first, owners = np.unique(chunk.exposure_id, return_index=True, return_inverse=True)
        parts.append(stmoc_from_ranges(chunk.ranges, owners, chunk.expstart[first], chunk.expend[first],
                                       time_order=time_order, space_order=space_order))
    if not parts:
        return STMOC.new_empty(time_order, space_order)
    return _union_all(parts)


def coverage_stmoc(engine: sa.Engine, path: str | Path, *, filter: str | None = None,
                   space_order: int = SPACE_ORDER, time_order: int = TIME_ORDER,
                   chunk_rows: int = CHUNK_ROWS) -> StmocWritten:
    """Build :func:`catalog_stmoc` and write it to ``path`` (IVOA MOC 2.0 FITS, overwritten).

    The summary and the MOC are read in one REPEATABLE READ transaction, so they describe
    the same catalog even while ingest runs.
    """
    from mvmdb.fitsio.moc import write_stmoc

    with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn:
        span = span_summary(conn, filter=filter)
        stmoc = catalog_stmoc(conn, filter=filter, space_order=space_order, time_order=time_order,
                              chunk_rows=chunk_rows)
    keywords = {"ORIGIN": "mvmdb", "MVMFILT": (filter or "all").strip().lower()}
    written = write_stmoc(stmoc, path, keywords=keywords)
    return StmocWritten(written, written.stat().st_size, space_order, time_order, span)
