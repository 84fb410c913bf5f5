"""SQL over the ingested HEALPix ranges: which exposures cover a position, which overlap a polygon.

The SP-GiST index ``ix_chip_hpx_hpx`` answers the coarse question (``@>`` a point's
order-29 index; ``&&`` each order-29 range of the query polygon); the stored chip outline
refines it exactly in Python. The test catalogue is tiny, so the planner would rather scan
the table: ``SET LOCAL enable_seqscan = off`` makes it show the index plan it uses at scale.
"""

from __future__ import annotations

import numpy as np
import sqlalchemy as sa

from mvmdb.ingest import ingest
from mvmdb.sky.healpix import point_index, polygon_contains, polygon_ranges, spherical_polygons_overlap

COVER_POINT = sa.text("""
SELECT DISTINCT e.ipppssoot, e.filetype, c.id AS chip_id, c.ra_deg, c.dec_deg
FROM chip_hpx AS h
JOIN chip AS c ON c.id = h.chip_id
JOIN exposure AS e ON e.id = c.exposure_id
WHERE h.hpx @> CAST(:pixel AS bigint)
""")

OVERLAP_POLYGON = sa.text("""
SELECT DISTINCT e.ipppssoot, e.filetype, c.id AS chip_id, c.ra_deg, c.dec_deg
FROM unnest(CAST(:lo AS bigint[]), CAST(:hi AS bigint[])) AS q (lo, hi)
JOIN chip_hpx AS h ON h.hpx && int8range(q.lo, q.hi)
JOIN chip AS c ON c.id = h.chip_id
JOIN exposure AS e ON e.id = c.exposure_id
""")


def _explain(conn, stmt, params) -> str:
    conn.execute(sa.text("SET LOCAL enable_seqscan = off"))
    return "\n".join(r[0] for r in conn.execute(sa.text("EXPLAIN " + stmt.text), params))


def _all_chips(conn):
    return conn.execute(sa.text(
        "SELECT e.ipppssoot, c.id AS chip_id, c.ra_deg, c.dec_deg FROM chip c JOIN exposure e ON e.id = c.exposure_id"
    )).all()


def test_which_exposures_cover_a_position(engine, hst_dir):
    ingest(engine, sorted(hst_dir.glob("*.fits")), jobs=1)
    ra, dec = 53.0735, -27.7090  # GOODS-S, inside the three WFC3/IR exposures of visits ib6o21/ib6o23
    with engine.begin() as conn:
        plan = _explain(conn, COVER_POINT, {"pixel": point_index(ra, dec)})
        assert "ix_chip_hpx_hpx" in plan and "Index" in plan
        candidates = conn.execute(COVER_POINT, {"pixel": point_index(ra, dec)}).all()
        exact = {r.ipppssoot for r in candidates if polygon_contains(r.ra_deg, r.dec_deg, ra, dec)}
        truth = {r.ipppssoot for r in _all_chips(conn) if polygon_contains(r.ra_deg, r.dec_deg, ra, dec)}
    assert exact == truth == {"ib6o21qnq", "ib6o21qqq", "ib6o23rtq"}
    # a position no exposure covers
    with engine.connect() as conn:
        assert conn.execute(COVER_POINT, {"pixel": point_index(200.0, 10.0)}).all() == []


def test_which_exposures_overlap_a_polygon(engine, hst_dir):
    ingest(engine, sorted(hst_dir.glob("*.fits")), jobs=1)
    # a 50" x 50" box over the 10 x 10 px cut-outs of the sample IR chip and UVIS chip 1
    # (p0121x12y16), not over UVIS chip 2 (~60" west)
    ra0, dec0, half = 137.858, -64.882, 25 / 3600
    cosd = np.cos(np.radians(dec0))
    box_ra = np.array([ra0 - half / cosd, ra0 + half / cosd, ra0 + half / cosd, ra0 - half / cosd])
    box_dec = np.array([dec0 - half, dec0 - half, dec0 + half, dec0 + half])
    lo, hi = polygon_ranges(box_ra, box_dec).T
    params = {"lo": lo.tolist(), "hi": hi.tolist()}
    with engine.begin() as conn:
        plan = _explain(conn, OVERLAP_POLYGON, params)
        assert "ix_chip_hpx_hpx" in plan
        candidates = conn.execute(OVERLAP_POLYGON, params).all()
        exact = {(r.ipppssoot, r.chip_id) for r in candidates
                 if spherical_polygons_overlap(box_ra, box_dec, r.ra_deg, r.dec_deg)}
        truth = {(r.ipppssoot, r.chip_id) for r in _all_chips(conn)
                 if spherical_polygons_overlap(box_ra, box_dec, r.ra_deg, r.dec_deg)}
    assert exact == truth  # the index loses nothing
    assert sorted(ip for ip, _ in exact) == ["ib4606c5q", "ib4606cpq"]  # one UVIS chip, the IR chip
