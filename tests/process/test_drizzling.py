"""Layer drizzling: astrometry, photometry, DQ rejection, tiling, context, sinks."""

from __future__ import annotations

import numpy as np
import pytest
from drizzle.resample import Drizzle
from drizzle.utils import calc_pixmap
from scipy.special import erf
from test_pixmap import acs_wfc_chip_wcs, skycell_like_wcs

from mvmdb.process.drizzling import (
    DrizzleInput,
    LayerArrays,
    drizzle_layer,
    final_bits,
    good_pixels,
)
from mvmdb.process.pixmap import PixmapModel, pixel_scale_arcsec

CHIP = (512, 1024)
SIGMA_IN = 1.3  # star Gaussian sigma, input pixels
DITHERS = [(0.0, 0.0, 10.0), (0.00035, 0.00021, 10.0), (-0.00028, 0.00031, 35.0)]  # dRA, dDec (deg), rotation


def _star_image(shape, x0, y0, counts):
    """Pixel-integrated Gaussian of total ``counts`` centred at (x0, y0) (0-based)."""
    img = np.zeros(shape)
    r = 12
    xi0, yi0 = int(round(x0)), int(round(y0))
    xs = np.arange(max(0, xi0 - r), min(shape[1], xi0 + r + 1))
    ys = np.arange(max(0, yi0 - r), min(shape[0], yi0 + r + 1))
    if xs.size == 0 or ys.size == 0:
        return img
    s2 = SIGMA_IN * np.sqrt(2.0)
    fx = 0.5 * (erf((xs + 0.5 - x0) / s2) - erf((xs - 0.5 - x0) / s2))
    fy = 0.5 * (erf((ys + 0.5 - y0) / s2) - erf((ys - 0.5 - y0) / s2))
    img[np.ix_(ys, xs)] = counts * np.outer(fy, fx)
    return img


@pytest.fixture(scope="module")
def scene():
    """Three dithered exposures of 40 stars; star counts follow the pixel-area map (as in FLTs)."""
    out_wcs = skycell_like_wcs(shape=(1300, 1300))
    rng = np.random.default_rng(11)
    base = acs_wfc_chip_wcs(shape=CHIP)
    # stars well inside every chip
    xy = rng.uniform([150, 120], [870, 390], (40, 2))
    ra, dec = base.all_pix2world(xy[:, 0], xy[:, 1], 0)
    rate = rng.uniform(50.0, 500.0, 40)  # true e-/s
    exptime = 300.0
    sky_e = 30.0
    inputs = []
    for k, (dra, ddec, rot) in enumerate(DITHERS):
        w = acs_wfc_chip_wcs(ra=150.0 + dra, dec=2.2 + ddec, shape=CHIP, rotation_deg=rot)
        model = PixmapModel(w, out_wcs, CHIP)
        iscale = (pixel_scale_arcsec(out_wcs) / pixel_scale_arcsec(w)) ** 2
        sci = np.full(CHIP, sky_e)
        px, py = w.all_world2pix(ra, dec, 0)
        for x0, y0, f in zip(px, py, rate):
            # pixel area map: area of an input pixel relative to nominal, from the local Jacobian
            o = model.evaluate_points([x0 - 0.5, x0 + 0.5, x0, x0], [y0, y0, y0 - 0.5, y0 + 0.5])
            jac = np.array([[o[0][1] - o[0][0], o[0][3] - o[0][2]], [o[1][1] - o[1][0], o[1][3] - o[1][2]]])
            pam = abs(np.linalg.det(jac)) * iscale
            sci += _star_image(CHIP, x0, y0, f * exptime / pam)
        inputs.append(DrizzleInput(sci=sci.astype(np.float32), exptime=exptime, dq=np.zeros(CHIP, np.int16),
                                   in_wcs=w, units="electrons", sky=sky_e, name=f"exp{k}"))
    return dict(out_wcs=out_wcs, inputs=inputs, ra=ra, dec=dec, rate=rate)


def _measure(img, x, y, r=8):
    yy, xx = np.mgrid[0:img.shape[0], 0:img.shape[1]]
    m = (xx - x) ** 2 + (yy - y) ** 2 <= r * r
    v = np.where(m & np.isfinite(img), img, 0.0)
    f = v.sum()
    return f, (v * xx).sum() / f, (v * yy).sum() / f


def test_final_bits_table():
    assert final_bits("ACS", "WFC", 2) == 80
    assert final_bits("acs", "hrc", 5) == 80
    assert final_bits("WFC3", "UVIS", 3) == 80
    assert final_bits("WFC3", "IR", 2) == 528
    assert final_bits("WFPC2", "PC", 4) == 1034
    for inst, det in [("ACS", "WFC"), ("WFC3", "IR"), ("WFC3", "UVIS"), ("ACS", "HRC")]:
        assert final_bits(inst, det, 1) == 65535
    assert final_bits("ACS", "SBC", 3, filter_name="F122M") == 0
    assert final_bits("ACS", "SBC", 3, filter_name="F165LP") == 528
    with pytest.raises(ValueError):
        final_bits("ACS", "SBC", 3)
    with pytest.raises(ValueError):
        final_bits("STIS", "CCD", 2)


def test_good_pixels_semantics():
    sci = np.array([1.0, 2.0, np.nan, 4.0, 5.0, 6.0], dtype=np.float32)
    dq = np.array([0, 64, 0, 4096, 16 | 64, 32768], dtype=np.uint16).view(np.int16)
    assert good_pixels(sci, dq, 80).tolist() == [True, True, False, False, True, False]
    assert good_pixels(sci, dq, 65535).tolist() == [True, True, False, True, True, True]
    assert good_pixels(sci, None, 0).tolist() == [True, True, False, True, True, True]


def test_point_sources_land_on_wcs_and_conserve_flux(scene):
    out_wcs = scene["out_wcs"]
    layer = drizzle_layer(scene["inputs"], out_wcs, (1300, 1300), bits=80, tile_shape=(512, 512))
    assert layer.sci.dtype == np.float32 and layer.wht.dtype == np.float32 and layer.nexp.dtype == np.int16
    tx, ty = out_wcs.all_world2pix(scene["ra"], scene["dec"], 0)
    dpos, dflux = [], []
    for x, y, f in zip(tx, ty, scene["rate"]):
        if layer.nexp[int(round(y)), int(round(x))] < 3:
            continue
        flux, cx, cy = _measure(layer.sci, x, y)
        dpos.append(np.hypot(cx - x, cy - y))
        dflux.append(flux / f - 1.0)
    assert len(dpos) >= 20
    assert max(dpos) < 0.02  # output pixels
    assert max(np.abs(dflux)) < 0.01
    # sky subtracted: background ~ 0; NaN only where no input
    bg = layer.sci[(layer.nexp > 0)]
    assert abs(np.nanmedian(bg)) < 1e-3
    assert np.array_equal(np.isnan(layer.sci), layer.wht == 0)
    # EXP weighting: drizzle's weight is exptime x overlap / (input pixel area in output pixels),
    # i.e. exptime x (output/input scale)^2 per exposure where a pixel is fully covered
    iscale = (pixel_scale_arcsec(out_wcs) / pixel_scale_arcsec(scene["inputs"][0].in_wcs)) ** 2
    assert np.median(layer.wht[layer.nexp == 3]) == pytest.approx(3 * 300.0 * iscale, rel=0.02)


def test_dq_rejected_pixels_leave_no_trace(scene):
    out_wcs = scene["out_wcs"]
    base = scene["inputs"]
    shape = (1300, 1300)

    def with_pixels(value, flag):
        inp = base[1]
        sci = inp.sci.copy()
        dq = inp.dq.copy()
        ys, xs = np.array([100, 200, 300, 400]), np.array([300, 500, 700, 600])
        sci[ys, xs] += value
        dq[ys, xs] |= flag
        mod = DrizzleInput(sci=sci, exptime=inp.exptime, dq=dq, in_wcs=inp.in_wcs, units=inp.units,
                           sky=inp.sky, name=inp.name)
        return drizzle_layer([base[0], mod, base[2]], out_wcs, shape, bits=80, tile_shape=(700, 700)).sci

    clean = with_pixels(0.0, 4096)
    cr = with_pixels(1.0e5, 4096)  # cosmic rays flagged 4096, not in bits 80: rejected
    np.testing.assert_array_equal(cr, clean)
    unflagged = with_pixels(1.0e5, 0)
    assert np.nanmax(unflagged - clean) > 10.0  # the same hits would show if accepted
    accepted = with_pixels(1.0e5, 64)  # flag 64 is in bits 80: accepted
    assert np.nanmax(accepted - clean) > 10.0


def test_tiles_are_seamless_and_match_bare_drizzle():
    """Small tiles (many edges through rotated, distorted chips) == one tile == bare drizzle."""
    out_wcs = skycell_like_wcs(shape=(1100, 1100))
    rng = np.random.default_rng(2)
    inputs = []
    for k, rot in enumerate([0.0, 30.0, 60.0]):
        w = acs_wfc_chip_wcs(ra=150.0 + 0.0002 * k, dec=2.2 - 0.0001 * k, shape=(400, 800), rotation_deg=rot)
        sci = rng.normal(200.0, 5.0, (400, 800)).astype(np.float32)
        dq = np.where(rng.random((400, 800)) < 0.02, 4096, 0).astype(np.int16)
        inputs.append(DrizzleInput(sci=sci, exptime=100.0 + 50 * k, dq=dq, in_wcs=w, units="electrons",
                                   sky=100.0, name=f"c{k}"))
    tiled = drizzle_layer(inputs, out_wcs, (1100, 1100), bits=80, tile_shape=(160, 230))
    whole = drizzle_layer(inputs, out_wcs, (1100, 1100), bits=80, tile_shape=(1100, 1100))
    # chips cut by a tile edge get a guard band, where the corners of the chip's outermost pixels
    # come from the pixel-map model; chips drizzled whole (no cut) get them by drizzle's linear
    # extrapolation: those corners differ by ~1e-4 px, so edge-pixel weights by ~1e-4 relative
    assert 0 < tiled.halo_px and whole.halo_px > 0  # in this scene chips cross the output's edges
    np.testing.assert_allclose(tiled.wht, whole.wht, rtol=2e-6, atol=5e-3)
    np.testing.assert_allclose(tiled.sci, whole.sci, rtol=1e-5, atol=1e-5)  # same edge pixels, re-weighted
    np.testing.assert_array_equal(tiled.nexp, whole.nexp)

    # bare drizzle of whole chips with astropy's pixel maps, onto a 100 px larger output that is
    # then cropped (a chip crossing the edge of bare drizzle's own output loses edge pixels)
    m = 100
    bare = Drizzle(out_shape=(1100 + 2 * m, 1100 + 2 * m))
    for inp in inputs:
        good = good_pixels(inp.sci, inp.dq, 80)
        ratio = pixel_scale_arcsec(out_wcs) / pixel_scale_arcsec(inp.in_wcs)
        bare.add_image(np.where(good, inp.sci - inp.sky, 0).astype(np.float32), exptime=inp.exptime,
                       pixmap=calc_pixmap(inp.in_wcs, out_wcs, shape=inp.shape) + m,
                       weight_map=np.where(good, inp.exptime, 0).astype(np.float32),
                       iscale=ratio**2, pixel_scale_ratio=ratio, in_units="counts")
    crop = (slice(m, m + 1100), slice(m, m + 1100))
    bare_wht, bare_sci = bare.out_wht[crop], bare.out_img[crop]
    assert (bare_wht > 0).sum() < 0.9 * 1100 * 1100  # chips cross the output edges
    # same pixels covered; weights and values agree to the pixel-map tolerance (~1e-3 px)
    assert not np.any((tiled.wht > 0.5) & (bare_wht == 0)) and not np.any((bare_wht > 0.5) & (tiled.wht == 0))
    np.testing.assert_allclose(tiled.wht, bare_wht, rtol=0, atol=0.1)
    covered = bare_wht > 1.0
    np.testing.assert_allclose(tiled.sci[covered], bare_sci[covered], rtol=0, atol=2e-3)
    ctx_count = np.bitwise_count(bare.out_ctx[(slice(None),) + crop].view(np.uint32)).sum(axis=0)
    assert np.abs(tiled.nexp.astype(int) - ctx_count).max() <= 1
    assert (tiled.nexp != ctx_count).mean() < 1e-3  # only sliver pixels at chip edges differ


def test_chips_inside_one_tile_are_drizzled_exactly_as_bare_add_image():
    """No halo, no guard band when nothing is clipped: bit for bit the bare kernel on the same maps."""
    out_wcs = skycell_like_wcs(shape=(900, 1000))
    rng = np.random.default_rng(5)
    inputs = []
    for k, rot in enumerate([0.0, 25.0]):
        w = acs_wfc_chip_wcs(ra=150.0 + 0.0001 * k, dec=2.2, shape=(300, 500), rotation_deg=rot)
        sci = rng.normal(200.0, 5.0, (300, 500)).astype(np.float32)
        dq = np.where(rng.random((300, 500)) < 0.02, 4096, 0).astype(np.int16)
        inputs.append(DrizzleInput(sci=sci, exptime=100.0 + 50 * k, dq=dq, in_wcs=w, units="electrons",
                                   sky=100.0, name=f"c{k}"))
    res = drizzle_layer(inputs, out_wcs, (900, 1000), bits=80, tile_shape=(900, 1000))
    assert res.halo_px == 0
    bare = Drizzle(out_shape=(900, 1000), fillval=None)
    for inp in inputs:
        good = good_pixels(inp.sci, inp.dq, 80)
        ratio = pixel_scale_arcsec(out_wcs) / pixel_scale_arcsec(inp.in_wcs)
        bare.add_image(np.where(good, inp.sci - np.float32(inp.sky), 0).astype(np.float32), exptime=inp.exptime,
                       pixmap=PixmapModel(inp.in_wcs, out_wcs, inp.shape).evaluate(),
                       weight_map=np.where(good, np.float32(inp.exptime), 0).astype(np.float32),
                       iscale=ratio**2, pixel_scale_ratio=ratio, in_units="counts")
    assert (bare.out_wht > 0).sum() > 0.2 * 900 * 1000
    np.testing.assert_array_equal(res.wht, bare.out_wht)
    np.testing.assert_array_equal(res.sci, bare.out_img)
    # when a tile edge cuts the chips, halos and guard bands come back, and the result stays the same
    cut = drizzle_layer(inputs, out_wcs, (900, 1000), bits=80, tile_shape=(450, 500))
    assert cut.halo_px > 0
    np.testing.assert_allclose(cut.wht, res.wht, rtol=2e-6, atol=5e-3)


def test_context_planes_sink_and_memmap(tmp_path):
    """40 small inputs -> 2 context planes; sink tiles tile the output; memmap output equals in-memory."""
    out_wcs = skycell_like_wcs(shape=(300, 400))
    rng = np.random.default_rng(4)
    inputs = []
    for k in range(40):
        w = acs_wfc_chip_wcs(ra=150.0 + rng.uniform(-0.002, 0.002), dec=2.2 + rng.uniform(-0.0015, 0.0015),
                             shape=(60, 90), rotation_deg=rng.uniform(0, 90))
        inputs.append(DrizzleInput(sci=np.full((60, 90), 5.0, np.float32), exptime=10.0, in_wcs=w,
                                   units="electrons/s", name=f"i{k}"))
    res = drizzle_layer(inputs, out_wcs, (300, 400), bits=0, tile_shape=(128, 128), context=True)
    assert res.ctx.shape == (2, 300, 400) and res.ctx.dtype == np.int32
    np.testing.assert_array_equal(np.bitwise_count(res.ctx.view(np.uint32)).sum(axis=0), res.nexp)
    # each bit is that input's own footprint
    for k in (0, 33, 39):
        alone = drizzle_layer([inputs[k]], out_wcs, (300, 400), bits=0, tile_shape=(128, 128))
        bit = (res.ctx[k // 32].view(np.uint32) >> np.uint32(k % 32)) & 1
        np.testing.assert_array_equal(bit.astype(bool), alone.wht > 0)
    iscale = (pixel_scale_arcsec(out_wcs) / pixel_scale_arcsec(inputs[0].in_wcs)) ** 2
    np.testing.assert_allclose(res.sci[res.nexp > 0], 5.0 * iscale, rtol=1e-5)

    seen = np.zeros((300, 400), int)
    got = np.full((300, 400), np.nan, np.float32)

    def sink(tile):
        seen[tile.slices] += 1
        got[tile.slices] = tile.sci

    sunk = drizzle_layer(inputs, out_wcs, (300, 400), bits=0, tile_shape=(128, 128), sink=sink)
    assert sunk.sci is None and sunk.tiles == 12
    assert (seen == 1).all()
    np.testing.assert_array_equal(got, res.sci)

    mm = LayerArrays(
        sci=np.lib.format.open_memmap(tmp_path / "sci.npy", "w+", np.float32, (300, 400)),
        wht=np.lib.format.open_memmap(tmp_path / "wht.npy", "w+", np.float32, (300, 400)),
        nexp=np.lib.format.open_memmap(tmp_path / "nexp.npy", "w+", np.int16, (300, 400)),
        ctx=None, total_exptime=0.0,
    )
    out = drizzle_layer(inputs, out_wcs, (300, 400), bits=0, tile_shape=(128, 128), out=mm)
    np.testing.assert_array_equal(out.sci, res.sci)
    np.testing.assert_array_equal(out.nexp, res.nexp)


def test_units_and_precomputed_pixmap_agree():
    out_wcs = skycell_like_wcs(shape=(700, 900))
    w = acs_wfc_chip_wcs(shape=(256, 512), rotation_deg=20.0)
    rng = np.random.default_rng(8)
    rate = rng.uniform(1.0, 2.0, (256, 512)).astype(np.float32)
    counts = DrizzleInput(sci=rate * 250.0, exptime=250.0, in_wcs=w, units="ELECTRONS", name="a")
    cps = DrizzleInput(sci=rate, exptime=250.0, in_wcs=w, units="electrons/s", name="a")
    pm = DrizzleInput(sci=rate, exptime=250.0, pixmap=calc_pixmap(w, out_wcs, shape=(256, 512)),
                      pixel_scale=pixel_scale_arcsec(w), units="cps", name="a")
    a = drizzle_layer([counts], out_wcs, (700, 900), bits=0, tile_shape=(256, 256))
    b = drizzle_layer([cps], out_wcs, (700, 900), bits=0, tile_shape=(256, 256))
    c = drizzle_layer([pm], out_wcs, (700, 900), bits=0, tile_shape=(256, 256))
    np.testing.assert_allclose(a.sci, b.sci, rtol=1e-5)
    np.testing.assert_array_equal(a.wht, b.wht)
    ok = b.wht > 1.0
    np.testing.assert_allclose(c.sci[ok], b.sci[ok], atol=2e-3)
    with pytest.raises(ValueError):
        drizzle_layer([DrizzleInput(sci=rate, exptime=0.0, in_wcs=w, name="z")], out_wcs, (700, 900), bits=0)
    with pytest.raises(ValueError):
        drizzle_layer([DrizzleInput(sci=rate, exptime=1.0, in_wcs=w, units="jansky", name="z")], out_wcs,
                      (700, 900), bits=0)


def test_one_input_counts_its_pixels_without_a_context_image():
    """A tile with a single input skips the context planes: NEXP from its weights is the NEXP that
    its context bit gives, pixel for pixel, and the other arrays are the same."""
    out_wcs = skycell_like_wcs(shape=(400, 500))
    rng = np.random.default_rng(11)
    w = acs_wfc_chip_wcs(ra=150.0, dec=2.2, shape=(200, 300), rotation_deg=17.0)
    dq = np.where(rng.random((200, 300)) < 0.05, 4096, 0).astype(np.int16)
    inp = DrizzleInput(sci=rng.normal(10.0, 1.0, (200, 300)).astype(np.float32), exptime=50.0, dq=dq, in_wcs=w,
                       units="electrons", name="one")
    for tile_shape in ((400, 500), (128, 160)):
        plain = drizzle_layer([inp], out_wcs, (400, 500), bits=0, tile_shape=tile_shape)
        with_ctx = drizzle_layer([inp], out_wcs, (400, 500), bits=0, tile_shape=tile_shape, context=True)
        assert plain.ctx is None and 0 < (plain.nexp > 0).sum() < 400 * 500
        np.testing.assert_array_equal(plain.nexp, with_ctx.nexp)
        np.testing.assert_array_equal(plain.nexp, np.bitwise_count(with_ctx.ctx[0].view(np.uint32)))
        np.testing.assert_array_equal(plain.sci, with_ctx.sci)
        np.testing.assert_array_equal(plain.wht, with_ctx.wht)
