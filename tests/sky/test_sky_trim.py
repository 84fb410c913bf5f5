"""Trimmed boxes (spec §5.4), their WCS, and fine <-> coarse box conversion."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mvmdb.sky.grid import SkyCell
from mvmdb.sky.overlap import box_wcs, coarse_box_to_fine, fine_box_to_coarse, trimmed_box, trimmed_wcs

X07Y19 = SkyCell.from_name("skycell-p1889x07y19")


def test_archive_trimmed_layer_wcs():
    """§6 'x07y19 trimmed layer': box x 2132..12971, y 10281..21952 -> CRPIX (94360, -171093), NAXIS 10840 x 11672."""
    w = box_wcs(X07Y19, (2132, 12971, 10281, 21952))
    assert w.wcs.crpix.tolist() == [94360.0, -171093.0]
    assert tuple(w.pixel_shape) == (10840, 11672)
    assert w.wcs.crval.tolist() == [180.0, 26.0]
    assert w.wcs.cd.tolist() == X07Y19.wcs().wcs.cd.tolist()
    # the example's target (PC px 131593.4, 396937.9) lands at trimmed px (809.4, 700.9)
    from mvmdb.sky.grid import ProjectionCell

    ra, dec = ProjectionCell.from_id(1889).wcs().pixel_to_world_values(131593.4, 396937.9)
    x, y = w.world_to_pixel_values(ra, dec)
    assert (float(x), float(y)) == pytest.approx((809.4, 700.9), abs=1e-6)
    # the box's corners span RA ~181.049-181.187, Dec ~27.895-28.026
    ra, dec = w.pixel_to_world_values(np.array([0, 10839, 0, 10839]), np.array([0, 0, 11671, 11671]))
    assert ra.min() == pytest.approx(181.049, abs=2e-3) and ra.max() == pytest.approx(181.187, abs=2e-3)
    assert dec.min() == pytest.approx(27.895, abs=2e-3) and dec.max() == pytest.approx(28.026, abs=2e-3)


def test_real_mvm_product_wcs_is_a_box_of_its_skycell(hst_dir):
    """sample_mvm_drc.fits (skycell p1749x18y06, fine): CRVAL bit-exact, CRPIX an integer shift, CD equal."""
    from astropy.io import fits

    h = fits.getheader(hst_dir / "sample_mvm_drc.fits", 1)
    sc = SkyCell.from_name("skycell-" + fits.getval(hst_dir / "sample_mvm_drc.fits", "SCELLID"))
    assert sc.name == "skycell-p1749x18y06"
    full = sc.wcs("fine")
    assert (h["CRVAL1"], h["CRVAL2"]) == tuple(full.wcs.crval)
    xmin, ymin = full.wcs.crpix[0] - h["CRPIX1"], full.wcs.crpix[1] - h["CRPIX2"]
    assert xmin == int(xmin) and ymin == int(ymin) and xmin >= 0 and ymin >= 0
    w = box_wcs(sc, (int(xmin), int(xmin) + 9, int(ymin), int(ymin) + 9))
    assert w.wcs.crpix.tolist() == [h["CRPIX1"], h["CRPIX2"]]
    assert h["CD1_1"] == pytest.approx(w.wcs.cd[0, 0], rel=1e-12) and h["CD2_2"] == pytest.approx(w.wcs.cd[1, 1], rel=1e-12)


def _polygon_in_cell(sc, scale, pts):
    """RA, Dec of a polygon given by 0-based pixel vertices of ``sc`` at ``scale``."""
    xs, ys = np.array(pts, dtype=float).T
    return sc.wcs(scale).pixel_to_world_values(xs, ys)


@pytest.mark.parametrize("scale", ["fine", "coarse"])
def test_box_of_a_polygon_inside_the_cell(scale):
    pts = [(1000.2, 2000.7), (3000.4, 2100.0), (2900.0, 4000.49), (1100.0, 3900.51)]
    box = trimmed_box(X07Y19, [_polygon_in_cell(X07Y19, scale, pts)], scale)
    # pixel i spans [i-0.5, i+0.5]: 1000.2 -> 1000, 3000.4 -> 3000, 2000.7 -> 2001, 4000.49 -> 4000
    assert box == (1000, 3000, 2001, 4000)


def test_box_of_several_polygons_and_clipping():
    a = _polygon_in_cell(X07Y19, "fine", [(100, 100), (200, 100), (200, 200), (100, 200)])
    b = _polygon_in_cell(X07Y19, "fine", [(5000, 21000), (7000, 21000), (7000, 23000), (5000, 23000)])
    assert trimmed_box(X07Y19, [a, b]) == (100, 7000, 100, 21953)  # b runs off the top edge
    # a polygon larger than the cell in every direction: the whole array
    c = _polygon_in_cell(X07Y19, "fine", [(-5000, -5000), (30000, -6000), (31000, 30000), (-4000, 29000)])
    assert trimmed_box(X07Y19, [c]) == (0, 21953, 0, 21953)
    assert trimmed_box(X07Y19, [c], "coarse") == (0, 7317, 0, 7317)
    # outside the cell: None
    d = _polygon_in_cell(X07Y19, "fine", [(-900, 100), (-600, 100), (-600, 200), (-900, 200)])
    assert trimmed_box(X07Y19, [d]) is None
    assert trimmed_wcs(X07Y19, [d]) is None
    # a polygon on the far side of the sky does not break the projection
    assert trimmed_box(X07Y19, [([0.0, 1.0, 1.0], [-26.0, -26.0, -25.0])]) is None


def test_trimmed_wcs_matches_box_wcs():
    a = _polygon_in_cell(X07Y19, "coarse", [(10.6, 20.6), (400.2, 20.6), (400.2, 300.7), (10.6, 300.7)])
    box = trimmed_box(X07Y19, [a], "coarse")
    assert box == (11, 400, 21, 301)
    w = trimmed_wcs(X07Y19, [a], "coarse")
    assert w.wcs.crpix.tolist() == [32164.000000000004 - 11, -53604.00000000001 - 21]
    assert tuple(w.pixel_shape) == (390, 281)


def test_coarse_pixel_spans_fine_3q_plus_1_to_3q_plus_3_by_the_wcs():
    """Derive the fine<->coarse relation from the two WCSs, not from the formula."""
    fine, coarse = X07Y19.wcs("fine"), X07Y19.wcs("coarse")
    q = np.array([0, 1, 710, 4323, 7317])
    ra, dec = coarse.pixel_to_world_values(q.astype(float), q.astype(float))
    fx, fy = fine.world_to_pixel_values(ra, dec)
    np.testing.assert_allclose(fx, 3 * q + 2, atol=1e-6)
    np.testing.assert_allclose(fy, 3 * q + 2, atol=1e-6)


def test_box_conversions():
    assert fine_box_to_coarse((2132, 12971, 10281, 21952)) == (710, 4323, 3426, 7317)
    assert coarse_box_to_fine((710, 4323, 3426, 7317)) == (2131, 12972, 10279, 21953)
    assert fine_box_to_coarse((0, 21953, 0, 21953)) == (0, 7317, 0, 7317)
    assert coarse_box_to_fine((0, 7317, 0, 7317)) == (1, 21953, 1, 21953)
    for box in [(0, 0, 0, 0), (1, 2, 3, 5), (3, 3, 6, 8)]:
        fine = coarse_box_to_fine(box)
        assert fine_box_to_coarse(fine) == box
    # the coarse box always covers the fine one (within the cell)
    for fbox in [(2132, 12971, 10281, 21952), (1, 1, 4, 4), (3, 3, 3, 3), (5, 100, 7, 8)]:
        back = coarse_box_to_fine(fine_box_to_coarse(fbox))
        assert back[0] <= fbox[0] and back[1] >= fbox[1] and back[2] <= fbox[2] and back[3] >= fbox[3]
    with pytest.raises(ValueError):
        fine_box_to_coarse((5, 4, 0, 1))
    with pytest.raises(ValueError):
        box_wcs(X07Y19, (0, 1, 2))


def test_coarse_wcs_pixel_centres_sit_on_fine_pixel_3i_plus_2():
    """Documents the archive's coarse grid: CRPIX*ratio puts coarse pixel i's centre on fine pixel 3i+2,
    so coarse pixel i spans fine 3i+1..3i+3, the mapping the box conversions use."""
    i = np.array([0.0, 1.0, 100.0, 7317.0])
    ra, dec = X07Y19.wcs("coarse").pixel_to_world_values(i, i)
    fx, fy = X07Y19.wcs("fine").world_to_pixel_values(ra, dec)
    np.testing.assert_allclose(fx, 3 * i + 2, atol=1e-6)
    np.testing.assert_allclose(fy, 3 * i + 2, atol=1e-6)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cx=st.floats(-2000, 24000), cy=st.floats(-2000, 24000), w=st.floats(50, 8000), h=st.floats(50, 8000),
    theta=st.floats(0, 360), scale=st.sampled_from(["fine", "coarse"]),
)
def test_property_box_equals_clipped_bbox(brute, cx, cy, w, h, theta, scale):
    """The box is the pixel span of (polygon clipped to the array), the clip done independently."""
    n = X07Y19.naxis(scale)
    f = 1.0 if scale == "fine" else 1 / 3
    c, s = math.cos(math.radians(theta)), math.sin(math.radians(theta))
    lx = np.array([-w, w, w, -w]) / 2 * f
    ly = np.array([-h, -h, h, h]) / 2 * f
    xs = cx * f + c * lx - s * ly
    ys = cy * f + s * lx + c * ly
    ra, dec = X07Y19.wcs(scale).pixel_to_world_values(xs, ys)
    got = trimmed_box(X07Y19, [(ra, dec)], scale)
    # reference: areas of the polygon clipped (Sutherland-Hodgman) to the array and to strips of it
    lo, hi = -0.5, n - 0.5
    if got is None:
        assert brute.clip_area(xs, ys, lo, hi, lo, hi) < 1e-6
        return
    xmin, xmax, ymin, ymax = got
    # each column/row range edge: the polygon has area inside the edge pixels and none beyond them
    eps = 1e-4
    # (tol: an edge exactly on a pixel boundary moves by ~1e-10 px in the sky round trip)
    tol = 1e-6
    assert brute.clip_area(xs, ys, xmin - 0.5, xmin + 0.5 + tol, lo, hi) > 0
    assert brute.clip_area(xs, ys, xmax - 0.5 - tol, xmax + 0.5, lo, hi) > 0
    assert brute.clip_area(xs, ys, lo, hi, ymin - 0.5, ymin + 0.5 + tol) > 0
    assert brute.clip_area(xs, ys, lo, hi, ymax - 0.5 - tol, ymax + 0.5) > 0
    assert brute.clip_area(xs, ys, lo, xmin - 0.5 - eps, lo, hi) == 0
    assert brute.clip_area(xs, ys, xmax + 0.5 + eps, hi, lo, hi) == 0
    assert brute.clip_area(xs, ys, lo, hi, lo, ymin - 0.5 - eps) == 0
    assert brute.clip_area(xs, ys, lo, hi, ymax + 0.5 + eps, hi) == 0
