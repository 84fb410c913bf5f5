"""Ring table, projection cells, sky cells, names and WCS: the spec's §6 vectors bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from mvmdb.sky import grid
from mvmdb.sky.grid import (
    COARSE_SCALE,
    FINE_SCALE,
    PC_CRPIX,
    PC_NAXIS,
    SC_NXY,
    SC_OLAP,
    SC_SPACING,
    ProjectionCell,
    SkyCell,
    parse_skycell_name,
    ring_table,
    scale_arcsec,
    skycell_name,
)
from mvmdb.sky.overlap import project_to_pc_pixels

FINE_CD = 1.1111111111111112e-05
COARSE_CD = 3.333333333333333e-05


def assert_wcs(w, crval, crpix, naxis, cd):
    """Exact (bit-for-bit) comparison of a TAN WCS with a spec vector."""
    assert list(w.wcs.ctype) == ["RA---TAN", "DEC--TAN"]
    assert w.wcs.crval[0] == crval[0] and w.wcs.crval[1] == crval[1]
    assert w.wcs.crpix[0] == crpix[0] and w.wcs.crpix[1] == crpix[1]
    assert tuple(w.pixel_shape) == (naxis, naxis)
    assert w.wcs.cd[0, 0] == -cd and w.wcs.cd[1, 1] == cd
    assert w.wcs.cd[0, 1] == 0.0 and w.wcs.cd[1, 0] == 0.0


# --------------------------------------------------------------------------- constants and table


def test_constants():
    assert (FINE_SCALE, COARSE_SCALE) == (0.04, 0.12)
    assert (PC_NAXIS, PC_CRPIX, SC_NXY, SC_OLAP, SC_SPACING) == (450287, 225144.0, 21, 256, 21442)
    assert grid.scale_ratio("coarse") == 0.33333333333333337
    assert grid.scale_ratio("fine") == 1.0
    assert grid.skycell_naxis("fine") == 21954 and grid.skycell_naxis("coarse") == 7318


def test_ring_table():
    rt = ring_table()
    assert len(rt) == 46
    assert rt.nband.tolist() == [1, 9, 15, 21, 27, 33, 39, 45, 50, 55, 60, 64, 68, 72, 76, 79, 82, 84, 86, 88, 89, 89,
                                 90, 90, 89, 89, 88, 86, 84, 82, 79, 76, 72, 68, 64, 60, 55, 50, 45, 39, 33, 27, 21,
                                 15, 9, 1]
    assert int(rt.nband.sum()) == 2644
    assert rt.projcell.tolist() == np.concatenate([[0], np.cumsum(rt.nband)[:-1]]).tolist()
    assert rt.dec[0] == -89.999999999997 and rt.dec[-1] == 89.999999999997
    assert np.all(rt.dec[1:-1] == np.arange(-86, 87, 4))
    assert np.all(np.diff(rt.dec_min) > 0) and np.all(np.diff(rt.dec_max) > 0)
    assert (rt.dec_min[29], rt.dec_max[29]) == pytest.approx((23.47633, 28.50001), abs=1e-5)
    assert np.all(rt.xcell == PC_NAXIS) and np.all(rt.ycell == PC_NAXIS)
    with pytest.raises(ValueError):
        rt.dec[0] = 0.0  # read-only


@pytest.mark.parametrize("ring", [1, 6, 15, 22, 23, 29, 38, 44])
def test_ring_dec_range_is_the_pc_box_extent(ring):
    """DEC_MIN/DEC_MAX are the Dec extremes over the edges of the PC box 0..450287 (0-based px), to ~1 px."""
    w = ProjectionCell.from_ring_band(ring, 0).wcs()
    e = np.unique(np.concatenate([np.linspace(0, PC_NAXIS, 4001), [PC_CRPIX - 1]]))
    z = np.zeros_like(e)
    n = np.full_like(e, PC_NAXIS)
    _, dec = w.pixel_to_world_values(np.concatenate([e, e, z, n]), np.concatenate([z, n, e, e]))
    rt = ring_table()
    assert dec.min() == pytest.approx(rt.dec_min[ring], abs=1.2e-5)
    assert dec.max() == pytest.approx(rt.dec_max[ring], abs=1.2e-5)


# --------------------------------------------------------------------------- projection cells


def test_pc_1889():
    pc = ProjectionCell.from_id(1889)
    assert (pc.ring, pc.band, pc.nband) == (29, 41, 82)
    assert_wcs(pc.wcs(), (180.0, 26.0), (225144.0, 225144.0), 450287, FINE_CD)
    corners = pc.corners
    assert corners.shape == (5, 2) and np.all(corners[0] == corners[-1])
    expected = [(182.723, 23.476), (182.841, 28.470), (177.158, 28.470), (177.277, 23.476)]
    np.testing.assert_allclose(corners[:4], expected, atol=1e-3)
    np.testing.assert_array_equal(pc.footprint, corners[:4])


def test_pc_wcs_at_other_scales_changes_only_cd():
    w = ProjectionCell.from_id(1889).wcs("coarse")
    assert_wcs(w, (180.0, 26.0), (225144.0, 225144.0), 450287, 0.12 / 3600)


def test_every_projection_cell_builds():
    rt = ring_table()
    seen = []
    for i in range(2644):
        pc = ProjectionCell.from_id(i)
        r = pc.ring
        assert rt.projcell[r] <= i < rt.projcell[r] + rt.nband[r]
        assert pc.band == i - rt.projcell[r]
        w = pc.wcs()
        assert w.wcs.crval[0] == pc.band * 360 / pc.nband
        assert w.wcs.crval[1] == rt.dec[r]
        assert tuple(w.wcs.crpix) == (225144.0, 225144.0) and tuple(w.pixel_shape) == (450287, 450287)
        seen.append(pc.crval)
    crval = np.array(seen)
    assert np.all((crval[:, 0] >= 0) & (crval[:, 0] < 360))
    # corners of a sample (including both poles and RA ~ 360) are finite and close
    for i in (0, 1, 9, 1321, 1322, 1411, 2642, 2643):
        c = ProjectionCell.from_id(i).corners
        assert np.all(np.isfinite(c)) and np.all(c[0] == c[-1])


def test_pc_lookup_errors():
    for bad in (-1, 2644, 10**6):
        with pytest.raises(ValueError, match="out of range"):
            ProjectionCell.from_id(bad)
    with pytest.raises(ValueError):
        ProjectionCell.from_id("12")
    with pytest.raises(ValueError):
        ProjectionCell.from_ring_band(29, 82)
    assert ProjectionCell.from_ring_band(30, 40).id == 1970


# --------------------------------------------------------------------------- sky cells: §6 vectors


VECTORS = [
    # name, crval, fine crpix
    ("skycell-p1889x07y19", (180.0, 26.0), (96492.0, -160812.0)),
    ("skycell-p1970x15y02", (182.27848101265823, 30.0), (-75044.0, 203702.0)),
    ("skycell-p1889x01y01", (180.0, 26.0), (225144.0, 225144.0)),
    ("skycell-p1889x21y21", (180.0, 26.0), (-203696.0, -203696.0)),
    ("skycell-p0121x12y16", (138.46153846153845, -66.0), (-10718.0, -96486.0)),
    ("skycell-p0000x11y11", (0.0, -89.999999999997), (10724.0, 10724.0)),
    ("skycell-p2643x06y10", (0.0, 89.999999999997), (117934.0, 32166.0)),
]


@pytest.mark.parametrize("name,crval,crpix", VECTORS)
def test_spec_vectors_fine(name, crval, crpix):
    sc = SkyCell.from_name(name)
    assert sc.name == name
    assert_wcs(sc.wcs(), crval, crpix, 21954, FINE_CD)
    assert_wcs(sc.wcs("fine"), crval, crpix, 21954, FINE_CD)
    assert_wcs(sc.wcs(0.04), crval, crpix, 21954, FINE_CD)
    assert sc.crpix() == crpix and sc.naxis() == 21954


def test_spec_vector_coarse():
    sc = SkyCell.from_name("skycell-p1889x07y19")
    assert_wcs(sc.wcs("coarse"), (180.0, 26.0), (32164.000000000004, -53604.00000000001), 7318, COARSE_CD)
    assert sc.crpix("coarse") == (32164.000000000004, -53604.00000000001)
    assert sc.naxis("coarse") == 7318
    assert sc.wcs(0.12).wcs.crpix.tolist() == [32164.000000000004, -53604.00000000001]


def test_skycell_x07y19_corners_and_pixels():
    sc = SkyCell.from_name("skycell-p1889x07y19")
    expected = [(181.2111, 27.7810), (181.2136, 28.0246), (180.9376, 28.0267), (180.9356, 27.7831)]
    c = sc.corners()
    assert c.shape == (5, 2) and np.all(c[0] == c[-1])
    np.testing.assert_allclose(c[:4], expected, atol=1e-4)
    # The worked example's PC pixels (0-based) in both rings describe one position, about
    # (181.17542, 27.90314) ("about RA 181.1754, Dec +27.9031" in the spec).
    ra, dec = ProjectionCell.from_id(1889).wcs().pixel_to_world_values(131593.4, 396937.9)
    assert (float(ra), float(dec)) == pytest.approx((181.1754, 27.9031), abs=1e-4)
    x, y = ProjectionCell.from_id(1970).wcs().world_to_pixel_values(ra, dec)
    assert (float(x), float(y)) == pytest.approx((312942.5, 36737.1), abs=0.1)
    x, y = sc.wcs().world_to_pixel_values(ra, dec)
    assert (float(x), float(y)) == pytest.approx((131593.4 - 6 * 21442, 396937.9 - 18 * 21442), abs=1e-6)


def test_skycell_layout():
    sc = SkyCell(1889, 21, 21)
    x0, x1, y0, y1 = sc.pc_pixel_box()
    assert (x0, x1) == (20 * 21442, 20 * 21442 + 21954)
    # x = 21 covers 1-based PC pixels 428841..450794: it ends 507 px past the PC's NAXIS
    assert (x0 + 1, x0 + 21954, x0 + 21954 - PC_NAXIS) == (428841, 450794, 507)
    # 512 px overlap between neighbours, all on the +x side
    assert SkyCell(1889, 1, 1).pc_pixel_box()[1] - SkyCell(1889, 2, 1).pc_pixel_box()[0] == 512
    assert sc.ltv() == (PC_CRPIX - sc.crpix()[0], PC_CRPIX - sc.crpix()[1])
    assert SkyCell(1889, 7, 19).id == 18890719
    assert SkyCell(1889, 7, 19).scellid == "p1889x07y19"
    assert SkyCell(1889, 7, 19) == SkyCell.from_name("p1889x07y19")
    assert str(SkyCell(5, 1, 2)) == "skycell-p0005x01y02"
    assert sorted([SkyCell(2, 1, 1), SkyCell(1, 3, 1), SkyCell(1, 2, 5)])[0] == SkyCell(1, 2, 5)


def test_skycell_sub_array_of_pc():
    """The same sky position has sky-cell pixel = PC pixel - (x-1)*S, at fine scale."""
    sc = SkyCell(1889, 7, 19)
    pcw = ProjectionCell.from_id(1889).wcs()
    scw = sc.wcs()
    ra, dec = scw.pixel_to_world_values(np.array([0.0, 100.5, 21953.0]), np.array([0.0, 7.25, 21953.0]))
    px, py = pcw.world_to_pixel_values(ra, dec)
    np.testing.assert_allclose(px - 6 * SC_SPACING, [0.0, 100.5, 21953.0], atol=1e-6)
    np.testing.assert_allclose(py - 18 * SC_SPACING, [0.0, 7.25, 21953.0], atol=1e-6)


# --------------------------------------------------------------------------- names


def test_names_round_trip():
    assert skycell_name(1889, 7, 19) == "skycell-p1889x07y19"
    assert parse_skycell_name("skycell-p1889x07y19") == (1889, 7, 19)
    assert parse_skycell_name("p0121x12y16") == (121, 12, 16)
    for pc, x, y in [(0, 1, 1), (2643, 21, 21), (1000, 10, 3)]:
        assert parse_skycell_name(skycell_name(pc, x, y)) == (pc, x, y)


@pytest.mark.parametrize("bad", [
    "skycell-p1889x7y19", "skycell-p1889x07y19x", "skycell-1889x07y19", "skycell_p1889x07y19",
    "SKYCELL-P1889X07Y19", "", "skycell-", "skycell-p188ax07y19", "hst_skycell-p1889x07y19",
])
def test_malformed_names(bad):
    with pytest.raises(ValueError, match="does not match skycell-pPPPPxXXyYY"):
        parse_skycell_name(bad)


@pytest.mark.parametrize("bad,what", [
    ("skycell-p2644x01y01", "projection cell"), ("skycell-p9999x01y01", "projection cell"),
    ("skycell-p1889x00y01", "x index"), ("skycell-p1889x22y01", "x index"),
    ("skycell-p1889x01y00", "y index"), ("skycell-p1889x01y22", "y index"),
])
def test_out_of_range_names(bad, what):
    with pytest.raises(ValueError, match=what):
        SkyCell.from_name(bad)


def test_bad_constructor_args():
    with pytest.raises(ValueError):
        SkyCell(1889, 0, 1)
    with pytest.raises(ValueError):
        SkyCell(1889, 1.0, 1)
    with pytest.raises(ValueError):
        skycell_name(1889, 1, 22)
    with pytest.raises(ValueError):
        parse_skycell_name(1889)


def test_scales():
    assert scale_arcsec("fine") == 0.04 and scale_arcsec("coarse") == 0.12 and scale_arcsec("COARSE") == 0.12
    assert scale_arcsec(0.1) == 0.1 and scale_arcsec(1) == 1.0
    for bad in ("medium", -0.1, 0, float("nan"), None, True):
        with pytest.raises(ValueError):
            scale_arcsec(bad)
    # another scale: CRPIX and NAXIS rescaled the archive's way
    sc = SkyCell(1889, 7, 19)
    ratio = 0.04 / 0.1
    assert sc.naxis(0.1) == int(21954 * ratio)
    assert sc.crpix(0.1) == ((225144.0 - 6 * 21442) * ratio, (225144.0 - 18 * 21442) * ratio)


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("name", [v[0] for v in VECTORS] + ["skycell-p1322x01y21", "skycell-p0009x21y01"])
@pytest.mark.parametrize("scale", ["fine", "coarse"])
def test_pixel_sky_pixel_round_trip(name, scale):
    """Pixel -> sky (astropy) -> pixel (astropy and the numpy projection) to 1e-6 px, poles included."""
    sc = SkyCell.from_name(name)
    w = sc.wcs(scale)
    n = sc.naxis(scale)
    rng = np.random.default_rng(sum(map(ord, name + scale)))
    px = np.concatenate([[0.0, n - 1.0, -0.5, n - 0.5], rng.uniform(-0.5, n - 0.5, 200)])
    py = np.concatenate([[0.0, n - 1.0, n - 0.5, -0.5], rng.uniform(-0.5, n - 0.5, 200)])
    ra, dec = w.pixel_to_world_values(px, py)
    bx, by = w.world_to_pixel_values(ra, dec)
    np.testing.assert_allclose(bx, px, rtol=0, atol=1e-6)
    np.testing.assert_allclose(by, py, rtol=0, atol=1e-6)
    # numpy projection (fine PC pixels) -> this cell's pixels at this scale
    ratio = 0.04 / scale_arcsec(scale)
    x, y = project_to_pc_pixels(ra, dec, sc.projection_cell)
    c1, c2 = sc.crpix(scale)
    np.testing.assert_allclose((x + 1 - PC_CRPIX) * ratio + c1 - 1, px, rtol=0, atol=1e-6)
    np.testing.assert_allclose((y + 1 - PC_CRPIX) * ratio + c2 - 1, py, rtol=0, atol=1e-6)
