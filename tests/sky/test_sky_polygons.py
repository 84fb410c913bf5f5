"""``cells_overlapping``: exact polygon / sky-cell intersection against an independent brute force."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mvmdb.sky.grid import ProjectionCell, SkyCell
from mvmdb.sky.overlap import MAX_POLYGON_RADIUS_DEG, cells_at, cells_overlapping

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CHIP = (200 / 3600, 100 / 3600)


def overlapping(ra, dec):
    return cells_overlapping([(ra, dec)]).names()


def check_against_brute(brute, ra, dec):
    got = set(overlapping(ra, dec))
    definite, ambiguous = brute.cells_overlapping(ra, dec)
    assert definite <= got, f"missing {sorted(definite - got)}"
    assert got <= definite | ambiguous, f"extra {sorted(got - definite - ambiguous)}"
    return got


# --------------------------------------------------------------------------- fixed cases


def test_chip_at_worked_example(brute):
    ra, dec = brute.rect_polygon(181.1754, 27.9031, *CHIP, 0.0)
    got = overlapping(ra, dec)
    assert {"skycell-p1889x07y19", "skycell-p1970x15y02"} <= set(got)


def test_chip_at_upstream_position(brute):
    ra, dec = brute.rect_polygon(137.86, -64.88, *CHIP, 30.0)
    assert overlapping(ra, dec) == ["skycell-p0121x12y16"]


def test_cell_wholly_inside_polygon(brute):
    """A 0.6-deg square around a sky cell's centre: the cell (0.24 deg) is inside, no vertex in it."""
    sc = SkyCell.from_name("skycell-p1889x07y19")
    ra0, dec0 = (float(v) for v in sc.wcs().pixel_to_world_values(10976.5, 10976.5))
    ra, dec = brute.rect_polygon(ra0, dec0, 0.6, 0.6, 0.0)
    got = check_against_brute(brute, ra, dec)
    assert "skycell-p1889x07y19" in got
    # ... and rotated by 45 degrees (corners far outside the cell, edges cutting neighbours)
    ra, dec = brute.rect_polygon(ra0, dec0, 0.5, 0.5, 45.0)
    assert "skycell-p1889x07y19" in check_against_brute(brute, ra, dec)


def test_polygon_across_ra_zero(brute):
    ra, dec = brute.rect_polygon(0.0, 1.0, 0.2, 0.1, 10.0)
    assert ra.max() > 359 and ra.min() < 1  # straddles RA 0/360
    got = check_against_brute(brute, ra, dec)
    assert any(n.startswith("skycell-p1322") for n in got)
    # a wider one reaches the last band of the ring too
    ra, dec = brute.rect_polygon(358.2, 2.0, 1.0, 0.2, 0.0)
    got = check_against_brute(brute, ra, dec)
    assert {n[:13] for n in got} >= {"skycell-p1411", "skycell-p1322"}


@pytest.mark.parametrize("dec0", [90.0, -90.0])
def test_polygon_around_the_pole(brute, dec0):
    ra, dec = brute.rect_polygon(0.0, dec0, 0.3, 0.3, 17.0)
    got = check_against_brute(brute, ra, dec)
    pc = 2643 if dec0 > 0 else 0
    assert f"skycell-p{pc:04d}x11y11" in got


def test_polygon_near_pole_ring_edges(brute):
    for dec0 in (88.4, 86.5, -86.4, -88.55):
        for ra0 in (0.0, 20.0, 200.0):
            ra, dec = brute.rect_polygon(ra0, dec0, 0.4, 0.1, 33.0)
            check_against_brute(brute, ra, dec)


def test_orientation_closure_and_vertex_count_do_not_matter(brute):
    ra, dec = brute.rect_polygon(181.1754, 27.9031, *CHIP, 20.0, points_per_edge=3)
    a = overlapping(ra, dec)
    assert overlapping(ra[::-1], dec[::-1]) == a
    assert overlapping(np.append(ra, ra[0]), np.append(dec, dec[0])) == a
    assert overlapping(ra - 360.0, dec) == a


def test_batch_equals_individual_calls(brute):
    rng = np.random.default_rng(3)
    polys = []
    for k in range(300):
        ra0, dec0 = rng.uniform(0, 360), math.degrees(math.asin(rng.uniform(-1, 1)))
        n = int(rng.integers(1, 5))
        polys.append(brute.rect_polygon(ra0, dec0, *CHIP, rng.uniform(0, 360), points_per_edge=n))
    hits = cells_overlapping(polys)
    per = hits.per_input(len(polys))
    for i in range(0, 300, 7):
        assert per[i] == overlapping(*polys[i])
    # the (M, 2, V) array form gives the same answer for equal-length polygons
    same = [p for p in polys if p[0].size == 4]
    arr = np.array([[p[0], p[1]] for p in same])
    assert cells_overlapping(arr).per_input(len(same)) == cells_overlapping(same).per_input(len(same))


def test_footprint_cells_include_cells_of_its_vertices(brute):
    """Vertices lie in the polygon, so every cell holding a vertex (position rule) overlaps it."""
    rng = np.random.default_rng(11)
    m = 2000
    polys = [brute.rect_polygon(rng.uniform(0, 360), math.degrees(math.asin(rng.uniform(-1, 1))), *CHIP,
                          rng.uniform(0, 360)) for _ in range(m)]
    over = cells_overlapping(polys)
    have = set(zip(over.index.tolist(), over.ids().tolist()))
    ra = np.concatenate([p[0] for p in polys])
    dec = np.concatenate([p[1] for p in polys])
    at = cells_at(ra, dec)
    owner = at.index // 4
    assert set(zip(owner.tolist(), at.ids().tolist())) <= have


def test_empty_and_bad_input(brute):
    e = cells_overlapping([])
    assert len(e) == 0 and e.per_input(0) == []
    with pytest.raises(ValueError, match="at least 3"):
        cells_overlapping([([1.0, 2.0], [1.0, 2.0])])
    with pytest.raises(ValueError, match="different lengths"):
        cells_overlapping([([1.0, 2.0, 3.0], [1.0, 2.0])])
    with pytest.raises(ValueError, match="non-finite"):
        cells_overlapping([([1.0, np.nan, 3.0], [1.0, 2.0, 1.0])])
    with pytest.raises(ValueError, match="Dec"):
        cells_overlapping([([1.0, 2.0, 3.0], [1.0, 95.0, 1.0])])
    with pytest.raises(ValueError, match="larger"):
        ra, dec = brute.rect_polygon(0.0, 0.0, 2 * MAX_POLYGON_RADIUS_DEG, 2 * MAX_POLYGON_RADIUS_DEG, 0.0)
        cells_overlapping([(ra, dec)])
    with pytest.raises(ValueError, match="pair"):
        cells_overlapping([1.0, 2.0])
    with pytest.raises(ValueError, match=r"\(M, 2, V\)"):
        cells_overlapping(np.zeros((3, 3, 4)))


# --------------------------------------------------------------------------- properties


@st.composite
def polygons(draw):
    """Parameters (ra0, dec0, width, height, theta, points_per_edge) of a rectangle polygon (degrees)."""
    kind = draw(st.sampled_from(["any", "ra0", "pole", "atpole", "cellcorner", "big"]))
    if kind == "any":
        ra0, dec0 = draw(st.floats(0, 360, exclude_max=True)), draw(st.floats(-89.9, 89.9))
    elif kind == "ra0":
        ra0, dec0 = draw(st.floats(-0.2, 0.2)) % 360.0, draw(st.floats(-89, 89))
    elif kind == "pole":
        ra0, dec0 = draw(st.floats(0, 360, exclude_max=True)), draw(st.floats(86, 90)) * draw(st.sampled_from([-1, 1]))
    elif kind == "atpole":
        ra0, dec0 = draw(st.floats(0, 360, exclude_max=True)), draw(st.sampled_from([-90.0, 90.0]))
    else:  # near a sky-cell corner of a random PC (where 2-4 cells meet)
        pc = draw(st.integers(0, 2643))
        ix, iy = draw(st.integers(1, 21)), draw(st.integers(1, 21))
        off = draw(st.sampled_from([0, 21954, 450287 - 20 * 21442]))
        px = (ix - 1) * 21442 + off + draw(st.floats(-3000, 3000))
        py = (iy - 1) * 21442 + off + draw(st.floats(-3000, 3000))
        ra0, dec0 = (float(v) for v in ProjectionCell.from_id(pc).wcs().pixel_to_world_values(px, py))
    if kind == "big":
        w, h = draw(st.floats(0.05, 1.0)), draw(st.floats(0.05, 1.0))
    else:
        w, h = draw(st.floats(10 / 3600, 600 / 3600)), draw(st.floats(10 / 3600, 600 / 3600))
    theta = draw(st.floats(0, 360))
    n = draw(st.integers(1, 3))
    return ra0, dec0, w, h, theta, n


@FAST
@given(polygons())
@example((181.1754, 27.9031, *CHIP, 0.0, 1))
@example((0.0, 90.0, 0.3, 0.1, 0.0, 1))
@example((359.99, -89.95, 0.3, 0.1, 45.0, 2))
def test_property_cells_overlapping_equals_brute_force(brute, params):
    """Random rectangles (chip-sized or up to 1 deg, any rotation, 4-12 vertices; anywhere,
    near RA 0, near or around the poles, across sky-cell corners) against the brute force."""
    ra0, dec0, w, h, theta, n = params
    ra, dec = brute.rect_polygon(ra0, dec0, w, h, theta, points_per_edge=n)
    check_against_brute(brute, ra, dec)
