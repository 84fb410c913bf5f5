"""HEALPix NESTED coverage of polygons as merged order-29 ranges."""

from __future__ import annotations

import healpy as hp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mvmdb.sky.healpix import (
    MAX_ORDER,
    ORDER,
    cone_ranges,
    convex_hull_vertices,
    merge_ranges,
    pixels_to_ranges,
    point_index,
    polygon_contains,
    polygon_ranges,
    spherical_polygons_overlap,
)


def chip(ra0, dec0, w_arcsec, h_arcsec, n=16, rot_deg=0.0):
    """A rectangle outline (n points per edge) about (ra0, dec0), gnomonic, rotated."""
    f = np.arange(n) / n
    xs = np.concatenate([f * w_arcsec, np.full(n, w_arcsec), w_arcsec - f * w_arcsec, np.zeros(n)]) - w_arcsec / 2
    ys = np.concatenate([np.zeros(n), f * h_arcsec, np.full(n, h_arcsec), h_arcsec - f * h_arcsec]) - h_arcsec / 2
    t = np.radians(rot_deg)
    xs, ys = xs * np.cos(t) - ys * np.sin(t), xs * np.sin(t) + ys * np.cos(t)
    xi, eta = np.radians(xs / 3600), np.radians(ys / 3600)
    d0 = np.radians(dec0)
    dec = np.arcsin((np.sin(d0) + eta * np.cos(d0)) / np.sqrt(1 + xi**2 + eta**2))
    ra = ra0 + np.degrees(np.arctan2(xi, np.cos(d0) - eta * np.sin(d0)))
    return ra % 360.0, np.degrees(dec)


def inside(index, lo, hi):
    index = np.atleast_1d(index)
    k = np.searchsorted(lo, index, side="right") - 1
    return (k >= 0) & (index < hi[np.maximum(k, 0)])


def test_pixels_to_ranges_merges_runs():
    lo, hi = pixels_to_ranges([5, 3, 4, 9, 4], order=MAX_ORDER).T
    assert lo.tolist() == [3, 9] and hi.tolist() == [6, 10]
    lo, hi = pixels_to_ranges([0, 1, 7], order=28).T
    assert lo.tolist() == [0, 28] and hi.tolist() == [8, 32]
    assert pixels_to_ranges([], order=ORDER).shape == (0, 2)
    with pytest.raises(ValueError):
        pixels_to_ranges([12 * 4**3], order=3)
    with pytest.raises(ValueError):
        pixels_to_ranges([1], order=30)


def test_merge_ranges():
    lo, hi = merge_ranges([[10, 15], [0, 5], [5, 7], [20, 21]]).T
    assert lo.tolist() == [0, 10, 20] and hi.tolist() == [7, 15, 21]


@pytest.mark.parametrize(("ra", "dec"), [(137.86, -64.9), (0.001, 10.0), (359.999, -30.0), (45.0, 89.99), (10.0, -89.99)])
@pytest.mark.parametrize(("w", "h"), [(202, 100), (136, 123), (29, 26)])
def test_polygon_cover_contains_every_outline_point_and_centre(ra, dec, w, h):
    pra, pdec = chip(ra, dec, w, h, rot_deg=33.0)
    lo, hi = polygon_ranges(pra, pdec).T
    assert np.all(lo < hi) and np.all(lo[1:] > hi[:-1])  # sorted, disjoint, merged
    assert np.all((lo % 4 ** (MAX_ORDER - ORDER)) == 0)
    assert inside(point_index(pra, pdec), lo, hi).all()
    assert inside(point_index(ra, dec), lo, hi).all()
    # a point 3 chip widths away is not covered
    far = chip(ra, dec, 6 * max(w, h), 6 * max(w, h))
    assert not inside(point_index(far[0][0], far[1][0]), lo, hi).any()


@settings(max_examples=60, deadline=None)
@given(
    ra=st.floats(0, 360, exclude_max=True), dec=st.floats(-89.9, 89.9),
    w=st.floats(5, 400), h=st.floats(5, 400), rot=st.floats(0, 180),
    u=st.floats(0, 1), v=st.floats(0, 1),
)
def test_random_interior_point_is_covered(ra, dec, w, h, rot, u, v):
    pra, pdec = chip(ra, dec, w, h, rot_deg=rot)
    lo, hi = polygon_ranges(pra, pdec).T
    # a random interior point: bilinear in the gnomonic plane of the chip
    px, py = (u - 0.5) * w * 0.999, (v - 0.5) * h * 0.999
    t = np.radians(rot)
    x, y = px * np.cos(t) - py * np.sin(t), px * np.sin(t) + py * np.cos(t)
    xi, eta = np.radians(x / 3600), np.radians(y / 3600)
    d0 = np.radians(dec)
    pdec_ = np.degrees(np.arcsin((np.sin(d0) + eta * np.cos(d0)) / np.sqrt(1 + xi**2 + eta**2)))
    pra_ = ra + np.degrees(np.arctan2(xi, np.cos(d0) - eta * np.sin(d0)))
    assert inside(point_index(pra_, pdec_), lo, hi).all()
    assert polygon_contains(pra, pdec, pra_, pdec_)


def test_hull_drops_collinear_edge_samples():
    pra, pdec = chip(137.86, -64.9, 202, 100, n=16)
    hull = convex_hull_vertices(pra, pdec)
    assert 4 <= hull.shape[0] <= 64
    hp.query_polygon(2**ORDER, hull, inclusive=True, nest=True)  # healpy accepts it


@pytest.mark.parametrize(
    "poly",
    [
        ([10.0, 10.0, 10.0], [5.0, 5.0, 5.0]),  # one point
        ([10.0, 10.001, 10.002], [5.0, 5.0, 5.0]),  # a line
        ([10.0, np.nan, 10.1], [5.0, 5.1, 5.2]),
        ([0.0, 120.0, 240.0], [0.0, 0.0, 0.0]),  # a great circle
        ([1.0, 2.0], [1.0, 2.0]),
    ],
)
def test_degenerate_polygons_raise_valueerror(poly):
    with pytest.raises(ValueError):
        polygon_ranges(*poly)


def test_point_index_matches_healpy():
    idx = point_index([10.0, 200.0], [-5.0, 60.0])
    assert idx.tolist() == hp.ang2pix(2**29, [10.0, 200.0], [-5.0, 60.0], nest=True, lonlat=True).tolist()
    assert isinstance(point_index(10.0, -5.0), int)


def test_cone_ranges_cover_the_centre():
    lo, hi = cone_ranges(181.1754, 27.9031, 0.01).T
    assert inside(point_index(181.1754, 27.9031), lo, hi).all()
    with pytest.raises(ValueError):
        cone_ranges(0.0, 0.0, 0.0)


def test_exact_overlap():
    a = chip(10.0, 20.0, 100, 100)
    assert spherical_polygons_overlap(*a, *chip(10.0 + 90 / 3600 / np.cos(np.radians(20)), 20.0, 100, 100))
    assert not spherical_polygons_overlap(*a, *chip(10.0 + 110 / 3600 / np.cos(np.radians(20)), 20.0, 100, 100))
    assert spherical_polygons_overlap(*a, *chip(10.0, 20.0, 10, 10))  # contained
    assert spherical_polygons_overlap(*chip(10.0, 20.0, 10, 10), *a)
    assert not spherical_polygons_overlap(*a, *chip(190.0, -20.0, 100, 100))
    assert spherical_polygons_overlap(*chip(359.99, 0.0, 100, 100), *chip(0.01, 0.0, 100, 100))
    assert not polygon_contains(*a, 190.0, -20.0)
