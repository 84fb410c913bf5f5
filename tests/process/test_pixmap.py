"""Fast pixel maps against astropy's full WCS transform.

The helpers at the top (`acs_wfc_chip_wcs`, `skycell_like_wcs`) build a
realistic ACS/WFC chip WCS (the CD matrix and 5th-order SIP coefficients of a
real Gaia-aligned FLC, jbt122x8q SCI,1) and a sky-cell-like TAN output WCS; the
other tests in this folder import them.
"""

from __future__ import annotations

import numpy as np
import pytest
from astropy.wcs import WCS, DistortionLookupTable
from drizzle.utils import calc_pixmap

from mvmdb.process.pixmap import ArrayPixmap, PixmapModel, fast_pixmap, pixmap_error

# CD matrix (deg/px) and SIP coefficients of ACS/WFC jbt122x8q_flc.fits[SCI,1] (IDC_4bb1536cj-FIT_IMG_GAIAeDR3).
ACS_WFC_CD = np.array([[-6.6275758441432e-06, 1.1779525087793e-05], [1.2157825574257e-05, 7.5195589514049e-06]])
ACS_WFC_SIP_A = {
    (0, 2): 2.16637264746676e-06, (1, 1): -5.2138466070707e-06, (2, 0): 8.55493852067576e-06,
    (0, 3): 5.60296179679536e-12, (1, 2): -5.1968980318799e-10, (2, 1): -2.7063082190587e-11,
    (3, 0): -4.9200490300678e-10, (0, 4): 1.7696363541919e-14, (1, 3): -8.4361008880696e-15,
    (2, 2): 3.87946929136827e-14, (3, 1): 5.87855134415994e-15, (4, 0): 2.56454262955869e-14,
    (0, 5): 2.97622071355518e-18, (1, 4): -8.3652422219902e-18, (2, 3): -7.5049985374007e-20,
    (3, 2): 6.28736832915021e-19, (4, 1): -3.6472935952381e-18, (5, 0): 3.1672176655724e-18,
}
ACS_WFC_SIP_B = {
    (0, 2): -7.2360831937133e-06, (1, 1): 6.18811607751593e-06, (2, 0): -1.7414350824049e-06,
    (0, 3): -3.7881534849095e-10, (1, 2): -7.5271285714448e-11, (2, 1): -5.1652255503335e-10,
    (3, 0): 1.00539479699536e-10, (0, 4): 7.67613780175722e-15, (1, 3): 1.2187805583748e-14,
    (2, 2): -3.1376323058712e-14, (3, 1): -9.5798089996605e-16, (4, 0): -1.8467310712473e-14,
    (0, 5): -3.0622965786427e-17, (1, 4): 1.50629802046874e-17, (2, 3): -1.6527760125857e-18,
    (3, 2): -1.6239715565632e-18, (4, 1): 1.4508930728285e-18, (5, 0): -3.2114956631838e-18,
}


def acs_wfc_chip_wcs(ra=150.0, dec=2.2, shape=(2048, 4096), rotation_deg=0.0, lookup_tables=False, seed=0) -> WCS:
    """TAN-SIP WCS of an ACS/WFC-like chip centred on (ra, dec), ``shape`` = (ny, nx).

    The SIP polynomial is that of a real chip (~50 px of distortion at the
    corners); ``rotation_deg`` rotates the CD matrix; ``lookup_tables`` adds
    smooth synthetic 64 x 32 D2IM and NPOL tables (amplitude ~0.05 px) like the
    real ``D2IMARR``/``WCSDVARR`` extensions.
    """
    ny, nx = shape
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN-SIP", "DEC--TAN-SIP"]
    w.wcs.crval = [ra, dec]
    w.wcs.crpix = [nx / 2.0, ny / 2.0]
    t = np.deg2rad(rotation_deg)
    rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    w.wcs.cd = rot @ ACS_WFC_CD
    order = 5
    a = np.zeros((order + 1, order + 1))
    b = np.zeros((order + 1, order + 1))
    for (p, q), v in ACS_WFC_SIP_A.items():
        a[p, q] = v
    for (p, q), v in ACS_WFC_SIP_B.items():
        b[p, q] = v
    from astropy.wcs import Sip

    w.sip = Sip(a, b, None, None, w.wcs.crpix)
    w.pixel_shape = (nx, ny)
    if lookup_tables:
        rng = np.random.default_rng(seed)
        yy, xx = np.mgrid[0:32, 0:64]

        def table():
            phase = rng.uniform(0, 2 * np.pi, 3)
            d = 0.03 * np.sin(xx / 7.0 + phase[0]) * np.cos(yy / 5.0 + phase[1]) + 0.02 * np.sin(xx / 3.0 + phase[2])
            d = d + rng.normal(0.0, 0.005, d.shape)
            return d.astype(np.float32)

        cell = (nx / 64.0, ny / 32.0)
        w.det2im1 = DistortionLookupTable(table(), (0.0, 0.0), (0.0, 0.0), cell)
        w.det2im2 = DistortionLookupTable(table(), (0.0, 0.0), (0.0, 0.0), cell)
        w.cpdis1 = DistortionLookupTable(table(), (0.0, 0.0), (0.0, 0.0), cell)
        w.cpdis2 = DistortionLookupTable(table(), (0.0, 0.0), (0.0, 0.0), cell)
    return w


def skycell_like_wcs(ra=150.0, dec=2.2, shape=(8000, 8000), scale_arcsec=0.04, tangent_offset_deg=(0.7, -0.4)) -> WCS:
    """North-up TAN WCS of scale ``scale_arcsec`` whose array of ``shape`` is centred
    on (ra, dec) but whose tangent point is offset, as a sky cell's projection-cell
    tangent point is."""
    ny, nx = shape
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [ra + tangent_offset_deg[0], dec + tangent_offset_deg[1]]
    s = scale_arcsec / 3600.0
    w.wcs.cd = [[-s, 0.0], [0.0, s]]
    w.wcs.crpix = [1.0, 1.0]
    cx, cy = w.all_world2pix(ra, dec, 0)
    w.wcs.crpix = [1.0 + (nx - 1) / 2.0 - float(cx), 1.0 + (ny - 1) / 2.0 - float(cy)]
    w.pixel_shape = (nx, ny)
    return w


@pytest.fixture(scope="module")
def chip():
    return acs_wfc_chip_wcs(rotation_deg=37.0)


@pytest.fixture(scope="module")
def out_wcs():
    return skycell_like_wcs()


def test_full_chip_matches_calc_pixmap(chip, out_wcs):
    """Whole 4096 x 2048 chip against drizzle's calc_pixmap (astropy at every pixel)."""
    shape = (2048, 4096)
    fast = fast_pixmap(chip, out_wcs, shape)
    ref = calc_pixmap(chip, out_wcs, shape=shape)
    assert fast.shape == ref.shape == (2048, 4096, 2)
    assert np.all(np.isfinite(fast))
    err = np.hypot(fast[..., 0] - ref[..., 0], fast[..., 1] - ref[..., 1])
    assert err.max() <= 0.01
    # edges and corners explicitly
    for edge in (err[0], err[-1], err[:, 0], err[:, -1]):
        assert edge.max() <= 0.01
    # the distortion is real: far from a linear map
    lin = ref[0, 0] + np.array([[0, 0]])
    assert np.abs(ref[-1, -1] - lin).max() > 100


def test_lookup_tables_are_included(out_wcs):
    """Paper IV D2IM/NPOL tables (sub-pixel, piecewise bilinear) reproduced within tolerance."""
    w = acs_wfc_chip_wcs(lookup_tables=True, rotation_deg=-20.0)
    model = PixmapModel(w, out_wcs, (2048, 4096))
    assert model.mode == "spline"
    err = pixmap_error(w, out_wcs, (2048, 4096), sample=20000, pixmap=model.evaluate())
    assert err.max_px <= 0.01
    # and the tables matter at that level: ignoring them would be wrong by > 0.01 px
    smooth = PixmapModel(model._smooth_wcs, out_wcs, (2048, 4096))
    xs = np.arange(0, 4096, 97)
    ys = np.arange(0, 2048, 89)
    diff = model.evaluate_grid(xs, ys) - smooth.evaluate_grid(xs, ys)
    assert np.abs(diff).max() > 0.02


def test_sub_box_and_out_origin_are_slices_of_full_map(chip, out_wcs):
    shape = (2048, 4096)
    model = PixmapModel(chip, out_wcs, shape)
    full = model.evaluate()
    sub = model.evaluate(1000, 1499, 700, 899)
    np.testing.assert_allclose(sub, full[700:900, 1000:1500], atol=1e-9)
    shifted = fast_pixmap(chip, out_wcs, shape, xmin=1000, xmax=1499, ymin=700, ymax=899, out_origin=(2000, 3000))
    np.testing.assert_allclose(shifted, sub - np.array([2000, 3000]), atol=1e-6)


def test_input_box_covers_every_pixel_mapping_into_output_box(chip, out_wcs):
    shape = (2048, 4096)
    model = PixmapModel(chip, out_wcs, shape)
    full = model.evaluate()
    out_box = (3000, 3600, 2500, 2900)  # x0, x1, y0, y1 half-open
    xmin, xmax, ymin, ymax = model.input_box(out_box)
    x, y = full[..., 0], full[..., 1]
    hit = (x > out_box[0] - 1.5) & (x < out_box[1] + 0.5) & (y > out_box[2] - 1.5) & (y < out_box[3] + 0.5)
    rows, cols = np.nonzero(hit)
    assert rows.size > 0
    assert xmin <= cols.min() and cols.max() <= xmax and ymin <= rows.min() and rows.max() <= ymax
    # and it is not the whole chip
    assert (xmax - xmin + 1) * (ymax - ymin + 1) < 0.5 * full.shape[0] * full.shape[1]
    assert model.input_box((-9000, -8000, -9000, -8000)) is None


def test_footprint_encloses_pixmap(chip, out_wcs):
    from matplotlib.path import Path

    model = PixmapModel(chip, out_wcs, (2048, 4096))
    poly = model.footprint()
    pts = model.coarse[2].reshape(-1, 2)
    assert Path(poly).contains_points(pts).all()
    array_poly = ArrayPixmap(model.evaluate()).footprint()
    assert np.abs(array_poly - poly).max() < 0.05


def test_small_chip_and_exact_fallback(out_wcs):
    """A 10 x 10 chip still gets >= 4 nodes per axis; an impossible tolerance falls back to exact."""
    w = acs_wfc_chip_wcs(shape=(10, 10))
    pm = fast_pixmap(w, out_wcs, (10, 10))
    ref = calc_pixmap(w, out_wcs, shape=(10, 10))
    assert np.abs(pm - ref).max() < 1e-6
    model = PixmapModel(acs_wfc_chip_wcs(shape=(256, 512)), out_wcs, (256, 512), tol=1e-12)
    assert model.mode == "exact"
    assert pixmap_error(model.in_wcs, out_wcs, (256, 512), sample=200, pixmap=model.evaluate()).max_px < 1e-9


def test_fine_lookup_table_uses_pix2foc_path(out_wcs):
    """A per-column D2IM table (too fine for node interpolation) goes through astropy's pix2foc, still exact."""
    w = acs_wfc_chip_wcs(shape=(256, 1024), rotation_deg=12.0)
    d = (0.05 * np.sin(np.arange(1024) / 3.0)).astype(np.float32)
    w.det2im1 = DistortionLookupTable(np.vstack([d, d]), (0.0, 0.0), (0.0, 0.0), (1.0, 256.0))
    model = PixmapModel(w, out_wcs, (256, 1024))
    assert model.mode == "spline+pix2foc"
    assert pixmap_error(w, out_wcs, (256, 1024), sample=3000, pixmap=model.evaluate()).max_px <= 0.01
