"""``cells_at``: the spec's positions, poles, RA wrap, and property tests against brute force."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mvmdb.sky.grid import ProjectionCell, SkyCell
from mvmdb.sky.overlap import CellHits, cells_at, project_to_pc_pixels

S = 21442
FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def names_at(ra, dec):
    return cells_at(ra, dec).names()


# --------------------------------------------------------------------------- spec vectors


def test_worked_example():
    assert names_at(181.1754, 27.9031) == ["skycell-p1889x07y19", "skycell-p1970x15y02"]


def test_upstream_test_position():
    assert names_at(137.86, -64.88) == ["skycell-p0121x12y16"]


@pytest.mark.parametrize("name", ["skycell-p0000x11y11", "skycell-p2643x06y10", "skycell-p1889x01y01",
                                  "skycell-p1889x21y21", "skycell-p1970x15y02"])
def test_cell_centre_position_finds_the_cell(name):
    """Which position gives each vector's cell: the centre pixel of the cell (astropy pixel -> sky)."""
    sc = SkyCell.from_name(name)
    w = sc.wcs()
    c = 21954 / 2
    if sc.x == 21:  # the part of x = 21 inside the PC: PC pixels 428840..450287
        c = (450287 - 20 * S) / 2
    ra, dec = w.pixel_to_world_values(c, c)
    assert name in names_at(float(ra), float(dec))


def test_poles():
    assert names_at(0.0, -90.0) == ["skycell-p0000x11y11"]
    assert names_at(123.0, 90.0) == ["skycell-p2643x11y11"]
    # the pole PC's tangent point is 1e-11 deg off the pole: every RA agrees at the pole
    ra = np.linspace(0, 360, 37)
    hits = cells_at(ra, np.full(ra.size, -90.0))
    assert set(hits.names()) == {"skycell-p0000x11y11"}
    assert hits.counts(ra.size).tolist() == [1] * ra.size
    # p2643x06y10 (a §6 vector) lies ~1 deg from the north pole
    ra, dec = SkyCell.from_name("skycell-p2643x06y10").wcs().pixel_to_world_values(10977.0, 10977.0)
    assert 88.5 < float(dec) < 90.0
    assert "skycell-p2643x06y10" in names_at(float(ra), float(dec))


def test_ra_wrap():
    # RA 359.999 and -0.001 and 0.001 near Dec 0: band rint(...) of 90 -> 90 mod 90 = 0
    a = set(names_at(359.999, 1.0))
    assert a == set(names_at(-0.001, 1.0))
    assert any(n.startswith("skycell-p1322") for n in a)  # ring 23 (Dec 2), band 0
    assert set(names_at(720.5, 1.0)) == set(names_at(0.5, 1.0))
    # RA 358 lies in the boxes of ring 23's last band (1411, RA 356) and band 0 (1322, RA 0)
    pcs = {n[:13] for n in names_at(358.0, 2.0)}
    assert {"skycell-p1411", "skycell-p1322"} <= pcs


def test_vectorized_shapes_and_result_object():
    ra = np.array([[181.1754, 137.86], [0.0, 10.0]])
    dec = np.array([[27.9031, -64.88], [-90.0, 0.0]])
    hits = cells_at(ra, dec)
    assert isinstance(hits, CellHits)
    per = hits.per_input(4)
    assert per[0] == ["skycell-p1889x07y19", "skycell-p1970x15y02"]
    assert per[1] == ["skycell-p0121x12y16"]
    assert per[2] == ["skycell-p0000x11y11"]
    assert len(per[3]) >= 1
    assert np.all(np.diff(hits.index) >= 0)
    assert hits.counts(4).sum() == len(hits)
    assert hits.ids()[0] == 18890719
    assert [s.name for s in hits.skycells()] == hits.names()
    # scalar input
    assert cells_at(181.1754, 27.9031).names() == per[0]
    # empty input
    e = cells_at([], [])
    assert len(e) == 0 and e.per_input(0) == [] and e.names() == []


@pytest.mark.parametrize("ra,dec", [(np.nan, 0.0), (0.0, 90.5), (0.0, -91.0), (np.inf, 1.0)])
def test_bad_positions(ra, dec):
    with pytest.raises(ValueError):
        cells_at([ra], [dec])


# --------------------------------------------------------------------------- numpy projection vs astropy


def test_numpy_projection_matches_astropy():
    """The numpy gnomonic projection agrees with astropy's WCS to 1e-6 px in every kind of PC."""
    rng = np.random.default_rng(42)
    for pc_id in (0, 1, 5, 9, 10, 121, 1321, 1322, 1411, 1889, 1970, 2633, 2634, 2643):
        w = ProjectionCell.from_id(pc_id).wcs()
        px = rng.uniform(-10, 450297, 500)
        py = rng.uniform(-10, 450297, 500)
        ra, dec = w.pixel_to_world_values(px, py)
        x, y = project_to_pc_pixels(ra, dec, pc_id)
        ax, ay = w.world_to_pixel_values(ra, dec)
        assert np.max(np.abs(x - ax)) < 1e-6 and np.max(np.abs(y - ay)) < 1e-6, pc_id
        assert np.max(np.abs(x - px)) < 1e-6 and np.max(np.abs(y - py)) < 1e-6, pc_id


def test_matches_brute_force_over_all_projection_cells():
    """Vectorized check of 3000 positions against every one of the 2644 PCs (geometry only).

    Every PC whose box holds a position (by the numpy projection, itself checked against
    astropy above) is one that ``cells_at`` reports, and vice versa: the ring and band
    pre-selection of the membership rule loses nothing.
    """
    rng = np.random.default_rng(7)
    n = 3000
    ra = rng.uniform(0, 360, n)
    dec = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    dec[:100] = rng.uniform(84, 90, 100) * rng.choice([-1, 1], 100)  # extra weight on the polar caps
    hits = cells_at(ra, dec)
    got = set(zip(hits.index.tolist(), hits.projection_cell.tolist(), hits.x.tolist(), hits.y.tolist()))
    expected = set()
    ambiguous = set()
    for pc in range(2644):
        x, y = project_to_pc_pixels(ra, dec, pc)
        ok = np.isfinite(x) & (x >= -1e-6) & (x <= 450287 + 1e-6) & (y >= -1e-6) & (y <= 450287 + 1e-6)
        for i in np.nonzero(ok)[0].tolist():
            for ix in range(1, 22):
                xs = x[i] - (ix - 1) * S
                if not -1e-6 <= xs <= 21954 + 1e-6:
                    continue
                for iy in range(1, 22):
                    ys = y[i] - (iy - 1) * S
                    if not -1e-6 <= ys <= 21954 + 1e-6:
                        continue
                    edge = min(abs(xs), abs(xs - 21954), abs(ys), abs(ys - 21954), abs(x[i]), abs(x[i] - 450287),
                               abs(y[i]), abs(y[i] - 450287)) < 1e-6
                    (ambiguous if edge else expected).add((i, pc, ix, iy))
    assert expected <= got
    assert got <= expected | ambiguous
    # every position has at least one cell
    assert set(hits.index.tolist()) == set(range(n))


# --------------------------------------------------------------------------- properties


def near_boundary_positions():
    """Positions within a few px of a sky-cell or PC-box edge (astropy pixel -> sky)."""
    return st.builds(
        lambda pc, ix, iy, ex, ey, dx, dy: _pc_pixel_to_world(pc, ix, iy, ex, ey, dx, dy),
        st.integers(0, 2643), st.integers(1, 21), st.integers(1, 21),
        st.sampled_from([0, 21954, S, 450287]), st.sampled_from([0, 21954, S, 450287]),
        st.floats(-3, 3), st.floats(-3, 3),
    )


def _pc_pixel_to_world(pc, ix, iy, ex, ey, dx, dy):
    w = ProjectionCell.from_id(pc).wcs()
    px = (ex if ex == 450287 else (ix - 1) * S + ex) + dx
    py = (ey if ey == 450287 else (iy - 1) * S + ey) + dy
    ra, dec = w.pixel_to_world_values(px, py)
    return float(ra) % 360.0, float(dec)


positions = st.one_of(
    st.tuples(st.floats(0, 360, exclude_max=True), st.floats(-90, 90)),
    st.tuples(st.floats(-0.5, 0.5).map(lambda r: r % 360.0), st.floats(-90, 90)),
    st.tuples(st.floats(0, 360, exclude_max=True), st.floats(85, 90).map(lambda d: d * 1.0)),
    st.tuples(st.floats(0, 360, exclude_max=True), st.floats(-90, -85)),
    near_boundary_positions(),
)


@FAST
@given(positions)
@example((181.1754, 27.9031))
@example((137.86, -64.88))
@example((0.0, 90.0))
@example((0.0, -90.0))
@example((359.9999999, 0.0))
def test_property_cells_at_equals_brute_force(brute, pos):
    ra, dec = pos
    got = names_at(ra, dec)
    assert got == sorted(got) and len(got) >= 1
    definite, ambiguous = brute.cells_at(ra, dec)
    assert definite <= set(got), f"missing {definite - set(got)}"
    assert set(got) <= definite | ambiguous, f"extra {set(got) - definite - ambiguous}"
    # each returned cell contains the point by its own astropy WCS (0-based, inclusive box)
    for name in got:
        sc = SkyCell.from_name(name)
        x, y = brute.skycell_wcs(sc.projection_cell, sc.x, sc.y).world_to_pixel_values(ra, dec)
        assert -1e-6 <= float(x) <= 21954 + 1e-6 and -1e-6 <= float(y) <= 21954 + 1e-6
        assert math.isfinite(float(x))
