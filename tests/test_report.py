"""Coverage arithmetic (mvmdb.sky.coverage_maps, ranges of mvmdb.sky.healpix), the PNG map and the MOC (mvmdb.report)."""

from __future__ import annotations

import math

import coverage_data
import healpy as hp
import numpy as np
import pytest
from astropy import units as u
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.image import imread
from mocpy import MOC

from mvmdb import report
from mvmdb.db import coverage
from mvmdb.sky import coverage_maps as cm
from mvmdb.sky import healpix as hpx

FULL = 12 * 4**29


# --- ranges and areas ---------------------------------------------------------------------


def test_pixel_area_and_orders():
    assert 12 * cm.pixel_area_deg2(0) == pytest.approx(cm.SKY_AREA_DEG2) == pytest.approx(41252.96124941927)
    assert cm.pixel_area_deg2(29) * FULL == pytest.approx(cm.SKY_AREA_DEG2)
    assert cm.order_of_nside(1) == 0 and cm.order_of_nside(64) == 6 and cm.order_of_nside(2**29) == 29
    for bad in (0, 3, 96, 2**30):
        with pytest.raises(ValueError):
            cm.order_of_nside(bad)


def test_merge_ranges():
    merged = hpx.merge_ranges([[10, 20], [0, 5], [5, 7], [15, 30], [40, 40], [31, 32]])
    np.testing.assert_array_equal(merged, [[0, 7], [10, 30], [31, 32]])
    assert hpx.merge_ranges([]).shape == (0, 2)


def test_pixels_to_ranges_and_degrade():
    ranges = hpx.pixels_to_ranges([9, 5, 6, 7, 6], order=3)
    np.testing.assert_array_equal(ranges, [[5 << 52, 8 << 52], [9 << 52, 10 << 52]])
    np.testing.assert_array_equal(cm.degrade_ranges(ranges, 3), [[5, 8], [9, 10]])
    np.testing.assert_array_equal(cm.degrade_ranges(ranges, 2), [[1, 3]])
    # A sliver of a pixel still touches it.
    np.testing.assert_array_equal(cm.degrade_ranges([[(4 << 52) - 1, 4 << 52]], 3), [[3, 4]])


def test_ranges_area_counts_overlaps_once():
    pixel16 = 4 ** (29 - 16)
    one = [[0, 4 * pixel16]]
    assert cm.ranges_area_deg2(one) == pytest.approx(4 * cm.pixel_area_deg2(16))
    assert cm.ranges_area_deg2(one + one + [[2 * pixel16, 6 * pixel16]]) == pytest.approx(6 * cm.pixel_area_deg2(16))
    assert cm.ranges_area_deg2([[0, FULL]]) == pytest.approx(cm.SKY_AREA_DEG2)


# --- all-sky maps -------------------------------------------------------------------------


def _brute_map(ranges, owners, weights, nside):
    shift = 2 * (29 - cm.order_of_nside(nside))
    touched: dict[int, set[int]] = {}
    weight: dict[int, float] = {}
    for (lo, hi), owner, w in zip(ranges, owners, weights):
        touched.setdefault(owner, set()).update(range(lo >> shift, ((hi - 1) >> shift) + 1))
        weight[owner] = w
    values = np.zeros(12 * nside**2)
    for owner, pixels in touched.items():
        values[sorted(pixels)] += weight[owner]
    return values


@st.composite
def _owned_ranges(draw):
    n = draw(st.integers(0, 12))
    starts = draw(st.lists(st.integers(0, FULL - 2), min_size=n, max_size=n))
    lengths = draw(st.lists(st.integers(1, 4**27), min_size=n, max_size=n))
    ranges = [[s, min(s + length, FULL)] for s, length in zip(starts, lengths)]
    owners = draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))
    weights = [float(10 * o + 1) for o in owners]
    return ranges, owners, weights


@settings(max_examples=60, deadline=None)
@given(_owned_ranges(), st.sampled_from([1, 2, 4, 16]))
def test_coverage_map_matches_brute_force(data, nside):
    ranges, owners, weights = data
    got = cm.coverage_map(np.array(ranges, dtype=np.int64).reshape(-1, 2), owners, weights, nside)
    np.testing.assert_array_equal(got, _brute_map(ranges, owners, weights, nside))


def test_coverage_map_counts_an_owner_once_per_pixel():
    pixel = 4**29  # one order-0 pixel per 4**29
    ranges = [[0, 10], [20, 30], [pixel + 5, pixel + 6], [0, 1]]
    values = cm.coverage_map(ranges, owners=[7, 7, 7, 8], weights=[100.0, 100.0, 100.0, 1.0], nside=1)
    np.testing.assert_array_equal(values, [101.0, 100.0] + [0.0] * 10)


# --- exact geometry -----------------------------------------------------------------------


def _dense_edges(ra, dec, n=4000):
    """Points along each great-circle edge of the polygon (unit vectors)."""
    v = np.stack(hp.ang2vec(np.asarray(ra), np.asarray(dec), lonlat=True))
    w = np.roll(v, -1, axis=0)
    t = np.linspace(0, 1, n)[:, None, None]
    pts = (1 - t) * v[None] + t * w[None]
    return (pts / np.linalg.norm(pts, axis=-1, keepdims=True)).reshape(-1, 3)


@pytest.mark.parametrize(
    "centre",
    [(180.0, 26.0), (0.0, -30.0), (359.999, 10.0), (45.0, 89.95), (300.0, -89.9)],
)
def test_polygon_contains_and_distance(centre):
    ra, dec = coverage_data.rectangle(*centre, 0.05, 0.03)
    assert hpx.polygon_contains(ra, dec, *centre) and hpx.polygon_distance_deg(ra, dec, *centre) == 0.0
    edges = _dense_edges(ra, dec)  # edge points ~1e-5 deg apart: a distance to them overestimates by less
    rng = np.random.default_rng(1)
    for _ in range(20):
        p_ra = centre[0] + rng.uniform(-0.2, 0.2)
        p_dec = float(np.clip(centre[1] + rng.uniform(-0.1, 0.1), -90, 90))
        p = hp.ang2vec(p_ra, p_dec, lonlat=True)
        dense = math.degrees(np.arccos(np.clip(edges @ p, -1, 1)).min())
        got = hpx.polygon_distance_deg(ra, dec, p_ra, p_dec)
        if hpx.polygon_contains(ra, dec, p_ra, p_dec):
            assert got == 0.0
        else:
            assert dense - 1e-5 < got <= dense + 1e-9


def test_polygon_far_away_is_outside():
    ra, dec = coverage_data.rectangle(10.0, 0.0, 0.05, 0.05)
    assert not hpx.polygon_contains(ra, dec, 190.0, 0.0)
    # The nearest point to the antipode of the centre is the corner farthest from the centre.
    assert hpx.polygon_distance_deg(ra, dec, 190.0, 0.0) == pytest.approx(180.0 - 0.025 * math.sqrt(2), abs=1e-6)


@pytest.mark.parametrize("radius_deg", [1e-4, 0.01, 1.0, 30.0])
def test_cone_ranges_cover_the_cone(radius_deg):
    ranges = hpx.cone_ranges(120.0, -45.0, radius_deg)
    angles = np.linspace(0, 2 * np.pi, 200, endpoint=False)
    vec = hp.ang2vec(120.0, -45.0, lonlat=True)
    east = np.cross([0, 0, 1], vec)
    east /= np.linalg.norm(east)
    north = np.cross(vec, east)
    r = math.radians(radius_deg) * 0.999
    rim = np.cos(r) * vec + np.sin(r) * (np.cos(angles)[:, None] * east + np.sin(angles)[:, None] * north)
    pixels = hp.vec2pix(2**29, rim[:, 0], rim[:, 1], rim[:, 2], nest=True)
    assert all(np.any((ranges[:, 0] <= p) & (p < ranges[:, 1])) for p in pixels)
    assert cm.ranges_area_deg2(ranges) < 4 * math.pi * radius_deg**2 + 1e-9  # not absurdly large


# --- the PNG ------------------------------------------------------------------------------


def _coloured_map_pixels(path) -> int:
    """Saturated pixels inside the map's axes (the colour bar and title are outside)."""
    image = imread(path)
    height = image.shape[0]
    sky = image[int(0.10 * height) : int(0.84 * height), :, :3]
    return int(np.count_nonzero(sky.max(axis=-1) - sky.min(axis=-1) > 0.15))


def test_write_map_png(tmp_path):
    nside = 16
    values = np.zeros(12 * nside**2)
    values[hp.ang2pix(nside, 80.0, 20.0, nest=True, lonlat=True)] = 5.0
    values[hp.ang2pix(nside, 200.0, -60.0, nest=True, lonlat=True)] = 5000.0
    path = report.write_map_png(values, tmp_path / "map.png", title="test", label="exposure time (s)", log=True)
    image = imread(path)
    assert image.shape[:2] == (930, 1500)
    assert _coloured_map_pixels(path) > 50
    empty = report.write_map_png(np.zeros(12), tmp_path / "empty.png", title="empty", label="s", log=True)
    assert _coloured_map_pixels(empty) == 0
    sky = imread(empty)[465, 100:1400, :3]  # along the equator: grey sky, not white paper
    assert np.all(sky < 0.99) and np.any(sky > 0.5)


def test_coverage_map_png_from_the_catalog(engine, tmp_path):
    coverage_data.build(engine)
    summary = report.coverage_map_png(engine, tmp_path / "exptime.png", nside=64)
    assert (summary.n_exposures, summary.nside) == (5, 64)  # the excluded u4 is left out
    assert summary.max_value == 1100.0  # u1 + u2 + u3 + j1 share a pixel
    assert _coloured_map_pixels(summary.path) > 0
    count = report.coverage_map_png(engine, tmp_path / "count.png", metric="count", nside=128, filter="F606W")
    assert (count.n_exposures, count.max_value) == (3, 3.0)
    assert imread(count.path).shape[:2] == (930, 1500)


def test_exposure_ranges_are_aligned_to_the_map(engine):
    catalog = coverage_data.build(engine)
    ranges, ids, exptimes = coverage.exposure_ranges(engine, 256)
    assert np.all(ranges % 4 ** (29 - 8) == 0)
    full = cm.coverage_map(
        np.concatenate([catalog.ranges(n) for n in ("u1", "u2", "u3", "j1", "i1")]),
        np.concatenate([[n] * len(catalog.ranges(n)) for n in ("u1", "u2", "u3", "j1", "i1")]),
        np.concatenate([[catalog.exposures[n].exptime] * len(catalog.ranges(n)) for n in ("u1", "u2", "u3", "j1", "i1")]),
        256,
    )
    np.testing.assert_array_equal(cm.coverage_map(ranges, ids, exptimes, 256), full)


# --- the MOC ------------------------------------------------------------------------------


def test_moc_sky_fraction_matches_the_view(engine, tmp_path):
    coverage_data.build(engine)
    areas = {r["filter"]: r["area_deg2"] for r in coverage.filter_areas(engine)}
    report.coverage_moc(engine, tmp_path / "f606w.fits", filter="f606w")
    moc = MOC.load(tmp_path / "f606w.fits", format="fits")
    assert moc.sky_fraction * cm.SKY_AREA_DEG2 == pytest.approx(areas["f606w"], rel=0.02)
    report.coverage_moc(engine, tmp_path / "all.fits")
    everything = MOC.load(tmp_path / "all.fits", format="fits")
    # f606w and f814w overlap: the union is less than the sum of the per-filter areas.
    assert everything.sky_fraction * cm.SKY_AREA_DEG2 < sum(areas.values())
    assert everything.contains_lonlat(np.array([180.0]) * u.deg, np.array([26.0]) * u.deg)[0]
    coarse = report.coverage_moc(engine, tmp_path / "coarse.fits", max_depth=10)
    assert coarse.sky_fraction >= everything.sky_fraction

