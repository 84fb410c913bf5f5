"""Per sky cell processing: the common box, coarse/fine alignment, re-embedding, drawn layers.

Integration tests run the real path: simulated exposures -> ``mvmdb.ingest.ingest`` ->
``mvmdb.plan.plan`` -> ``mvmdb.process.run.run_queue`` -> products, checked against the
simulator's truth. The helpers at the top (:func:`star_truth`, :func:`write_member`,
:func:`crop_exposure`) are shared by the other process tests.

Data sets, all around ``CENTER`` (RA 148.05, Dec 2.11), which lies in the single sky cell
p1359x11y11 (no ring, PC or cell overlap, so one job draws it):

* ACS/HRC F814W, 3 dithered, rotated exposures at native scale (0.025"/px, PSF well
  sampled): a 4x4 grid of bright isolated stars, different injected skies, cosmic rays
  flagged 4096, detector defects. Accuracy tests.
* WFC3/IR, native-scale exposures cropped to small sub-arrays: fine + coarse layers,
  box growth. Orchestration tests use tiny crops so a job takes a fraction of a second.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS, FITSFixedWarning
from hypothesis import given, settings
from hypothesis import strategies as st

from mvmdb.process import embed
from mvmdb.sky.grid import SkyCell
from mvmdb.sky.overlap import box_wcs

CELL = SkyCell(1889, 7, 19)
CENTER = (148.05, 2.11)
HRC_CELL = SkyCell(1359, 11, 11)


# =========================================================================== data helpers


def star_truth(center=CENTER, n=4, step=5.0, mags=(17.0, 18.0)) -> Table:
    """An n x n grid of stars ``step`` arcsec apart around ``center`` (truth.ecsv columns)."""
    from mvmdb.simulate.instruments import tan_deproject

    e, nn = np.meshgrid((np.arange(n) - (n - 1) / 2) * step, (np.arange(n) - (n - 1) / 2) * step)
    ra, dec = tan_deproject(e.ravel(), nn.ravel(), *center)
    k = ra.size
    return Table({"id": np.arange(k), "kind": ["star"] * k, "ra": np.asarray(ra) % 360, "dec": dec,
                  "mag": np.linspace(mags[0], mags[1], k), "color": np.zeros(k)})


def write_member(out_dir: Path, truth: Table | None, instrument: str, detector: str, filt: str, root: str, *,
                 center=CENTER, offset=(0.0, 0.0), orientat=0.0, exptime=300.0, sky=None, seed=1,
                 expstart=55800.0, crop: int | None = None, proposid=10000, **kw):
    """Write one simulated exposure (``offset`` arcsec east/north of ``center``); optionally crop it."""
    from mvmdb.simulate import ExposureSpec, write_exposure
    from mvmdb.simulate.instruments import tan_deproject

    ra, dec = tan_deproject(offset[0], offset[1], *center)
    spec = ExposureSpec(instrument, detector, filt, ra=float(ra) % 360, dec=float(dec), orientat=orientat,
                        exptime=exptime, expstart=expstart, ipppssoot=root, sky_level=sky, seed=seed,
                        proposid=proposid, **kw)
    res = write_exposure(spec, truth, out_dir)
    if crop:
        crop_exposure(res.path, center, crop)
    return res


def crop_exposure(path: Path, center, size: int) -> None:
    """Cut an exposure in place to a ``size`` x ``size`` sub-array of the chip holding ``center``.

    SCI/ERR/DQ of that chip are kept (other extensions dropped); CRPIX and LTV move by the
    cut's origin, so the WCS (SIP included, relative to CRPIX) stays exact.
    """
    with fits.open(path) as hdul:
        best = None
        for h in hdul:
            if h.name != "SCI":
                continue
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FITSFixedWarning)
                w = WCS(h.header, hdul)
            x, y = w.all_world2pix(center[0], center[1], 0)
            ny, nx = h.data.shape
            if 0 <= x < nx and 0 <= y < ny:
                best = (h.ver, float(x), float(y), nx, ny)
        assert best is not None, f"{center} is not on any chip of {path}"
        ver, x, y, nx, ny = best
        x0 = int(np.clip(round(x) - size // 2, 0, nx - size))
        y0 = int(np.clip(round(y) - size // 2, 0, ny - size))
        out = [fits.PrimaryHDU(header=hdul[0].header)]
        for h in hdul[1:]:
            if h.ver != ver or h.name not in ("SCI", "ERR", "DQ"):
                continue
            hdr = h.header.copy()
            for key, d in (("CRPIX1", x0), ("CRPIX2", y0)):
                if key in hdr:
                    hdr[key] = hdr[key] - d
            for key, d in (("LTV1", x0), ("LTV2", y0)):
                hdr[key] = hdr.get(key, 0.0) - d
            hdr["SIZAXIS1"], hdr["SIZAXIS2"] = size, size
            hdu = fits.ImageHDU(data=h.data[y0:y0 + size, x0:x0 + size].copy(), header=hdr, name=h.name)
            hdu.ver = 1
            out.append(hdu)
        out[0].header["NEXTEND"] = len(out) - 1
    fits.HDUList(out).writeto(path, overwrite=True)


def ingest_and_plan(engine, paths, pollers: Path):
    from mvmdb.ingest import ingest
    from mvmdb.plan import plan

    summary = ingest(engine, [str(p) for p in paths], jobs=1)
    bad = [(r.path, r.status, r.reason) for r in summary.results if r.status not in ("ingested", "updated")]
    assert not bad, bad
    return plan(engine, pollers)


# =========================================================================== box geometry


@settings(max_examples=200, deadline=None)
@given(
    x0=st.integers(0, 21953), w=st.integers(0, 3000), y0=st.integers(0, 21953), h=st.integers(0, 3000)
)
def test_aligned_box_covers_and_maps_onto_coarse_blocks(x0, w, y0, h):
    raw = (x0, min(x0 + w, 21953), y0, min(y0 + h, 21953))
    box = embed.align(raw)
    q = embed.coarse_cover(box)
    assert embed.is_aligned(box) and embed.coarse_to_fine(q) == box
    ny, nx = embed.shape(box)
    assert ny % 3 == 0 and nx % 3 == 0 and embed.shape(q) == (ny // 3, nx // 3)
    # covers everything but fine column/row 0, never sticks out beyond fine 21954
    inner = (max(raw[0], 1), raw[1], max(raw[2], 1), raw[3])
    if inner[0] <= inner[1] and inner[2] <= inner[3]:
        assert embed.contains(box, inner)
    assert box[0] >= 1 and box[1] <= 21954 and 0 <= q[0] and q[1] <= 7317


def test_fine_and_coarse_box_wcs_overlay_pixel_for_pixel():
    box = embed.align((2132, 12971, 10281, 21952))  # the spec's example layer, padded
    fine = box_wcs(CELL, box, "fine")
    coarse = box_wcs(CELL, embed.at_scale(box, "coarse"), "coarse")
    assert fine.pixel_shape == tuple(3 * n for n in coarse.pixel_shape)
    rng = np.random.default_rng(1)
    i = rng.integers(0, coarse.pixel_shape[0], 200)
    j = rng.integers(0, coarse.pixel_shape[1], 200)
    ra, dec = coarse.pixel_to_world_values(i, j)
    fx, fy = fine.world_to_pixel_values(ra, dec)
    # the coarse pixel (i, j) is centred on fine pixel (3i+1, 3j+1): the middle of its 3x3 block
    np.testing.assert_allclose(fx, 3 * i + 1, atol=1e-6)
    np.testing.assert_allclose(fy, 3 * j + 1, atol=1e-6)
    # and its outer corner is the outer corner of the block
    ra, dec = coarse.pixel_to_world_values(i - 0.5, j - 0.5)
    fx, fy = fine.world_to_pixel_values(ra, dec)
    np.testing.assert_allclose(fx, 3 * i - 0.5, atol=1e-6)
    np.testing.assert_allclose(fy, 3 * j - 0.5, atol=1e-6)


def test_common_box_only_grows():
    a = embed.common_box(None, (100, 200, 300, 400))
    b = embed.common_box(a, (50, 120, 350, 360))
    assert embed.contains(b, a) and b[0] <= 50 and embed.is_aligned(b)
    assert embed.common_box(b, None) == b
    assert embed.common_box(None, None) is None


def test_embed_pastes_without_resampling():
    old = embed.align((100, 200, 300, 400))
    new = embed.align((10, 260, 290, 500))
    arr = np.arange(np.prod(embed.shape(old)), dtype=np.float32).reshape(embed.shape(old))
    out = embed.embed(arr, old, new, fill=np.nan)
    dy, dx = embed.offset(new, old)
    np.testing.assert_array_equal(out[dy : dy + arr.shape[0], dx : dx + arr.shape[1]], arr)
    assert np.isnan(out).sum() == out.size - arr.size
    ctx = np.ones((2,) + embed.shape(old), dtype=np.int32)
    assert embed.embed(ctx, old, new).shape == (2,) + embed.shape(new)
    with pytest.raises(ValueError):
        embed.embed(arr, new, old)


# =========================================================================== accuracy (ACS/HRC)

HRC_SKY = (80.0, 140.0, 210.0)  # injected sky, e- per input pixel, per exposure
HRC_EXPTIME = 300.0


@pytest.fixture(scope="module")
def hrc_scene(tmp_path_factory):
    out = tmp_path_factory.mktemp("hrc")
    truth = star_truth()
    truth.write(out / "truth.ecsv")
    members = []
    for i, (sky, post) in enumerate(zip(HRC_SKY, [(0.0, 0.0), (0.31, 0.17), (-0.22, 0.41)])):
        members.append(write_member(out, truth, "ACS", "HRC", "F814W", f"j9aa01{i}1q", offset=post,
                                    orientat=20.0 + 7 * i, exptime=HRC_EXPTIME, sky=sky, seed=i + 1,
                                    expstart=55800.0 + i))
    return out, truth, members


@pytest.fixture(scope="module")
def hrc_product(hrc_scene, db_factory, tmp_path_factory):
    """The HRC layer processed once for the module (its own database)."""
    from mvmdb.db.engine import make_engine
    from mvmdb.process import run

    out, truth, members = hrc_scene
    url = db_factory.create()
    eng = make_engine(url, poolclass=sa.pool.NullPool)
    try:
        products = tmp_path_factory.mktemp("hrc_products")
        pollers = ingest_and_plan(eng, [m.path for m in members], tmp_path_factory.mktemp("hrc_pollers"))
        assert [p.skycell for p in pollers] == [HRC_CELL.name]
        outcomes = run.run_queue(eng, products, executor="inline")
        results = [r for o in outcomes for r in o.results]
        with eng.connect() as conn:
            cell_box = conn.execute(sa.text("SELECT box_xmin, box_xmax, box_ymin, box_ymax FROM sky_cell")).one()
            prod = conn.execute(sa.text("SELECT * FROM product")).one()
            members_status = conn.execute(sa.text("SELECT status FROM layer_member")).scalars().all()
        yield dict(results=results, cell_box=tuple(cell_box), prod=prod, statuses=members_status,
                   products=products, truth=truth, members=members)
    finally:
        eng.dispose()
        db_factory.drop(url)


def _centroid(sci, x, y, sigma=1.2, r_max=10, r_bg=(18, 24), half=26):
    """Gaussian-windowed centroid (iterated) and background of a star near (x, y), 0-based px."""
    yy, xx = np.mgrid[-half:half + 1, -half:half + 1]
    cx, cy = x, y
    for _ in range(30):
        ix, iy = int(round(cx)), int(round(cy))
        stamp = sci[iy - half:iy + half + 1, ix - half:ix + half + 1]
        X, Y = xx + ix, yy + iy
        r = np.hypot(X - cx, Y - cy)
        bg = np.nanmedian(stamp[(r > r_bg[0]) & (r < r_bg[1])])
        g = np.exp(-0.5 * r**2 / sigma**2) * (r < r_max)
        v = (stamp - bg) * g
        dx = np.nansum(v * (X - cx)) / np.nansum(v)
        dy = np.nansum(v * (Y - cy)) / np.nansum(v)
        cx, cy = cx + 2 * dx, cy + 2 * dy
        if abs(dx) + abs(dy) < 1e-6:
            break
    return cx, cy, bg


def _aperture_flux(img, x, y, r, r_bg, bad=None):
    """Sum of ``img - background`` within radius ``r`` of (x, y); None if a ``bad`` pixel is inside."""
    half = int(r_bg[1]) + 2
    ix, iy = int(round(x)), int(round(y))
    yy, xx = np.mgrid[iy - half:iy + half + 1, ix - half:ix + half + 1]
    if yy.min() < 0 or xx.min() < 0 or yy.max() >= img.shape[0] or xx.max() >= img.shape[1]:
        return None
    stamp = img[yy, xx]
    rr = np.hypot(xx - x, yy - y)
    if bad is not None and bad[yy, xx][rr < r].any():
        return None
    bg = np.nanmedian(stamp[(rr > r_bg[0]) & (rr < r_bg[1])])
    return float(np.nansum((stamp - bg)[rr < r]))


def test_hrc_product_file(hrc_product):
    res = hrc_product["results"]
    assert len(res) == 1 and res[0].status == "done" and res[0].members == 3
    path = Path(res[0].product)
    assert path.name == "hst_skycell-p1359x11y11_acs_hrc_f814w_all_drz.fits"  # FLT inputs -> drz
    assert path.parent == hrc_product["products"] / HRC_CELL.name
    assert set(hrc_product["statuses"]) == {"OLD"}
    prod = hrc_product["prod"]
    assert prod.path == str(path) and prod.size_bytes == path.stat().st_size and prod.n_members == 3
    import hashlib

    assert prod.checksum == hashlib.sha256(path.read_bytes()).hexdigest()
    with fits.open(path) as h:
        assert [x.name for x in h] == ["PRIMARY", "SCI", "WHT", "CTX", "HDRTAB", "NEXP"]
        p = h[0].header
        assert p["SCELLID"] == "p1359x11y11" and p["INSTRUME"] == "ACS" and p["DETECTOR"] == "HRC"
        assert p["NUMEXP"] == 3 and p["FILENAME"] == path.name and p["D001KERN"] == "square"
        assert h["SCI"].header["BUNIT"] == "ELECTRONS/S"
        box = hrc_product["cell_box"]
        assert (prod.box_xmin, prod.box_xmax, prod.box_ymin, prod.box_ymax) == box and embed.is_aligned(box)
        expected = box_wcs(HRC_CELL, box, "fine")
        w = WCS(h["SCI"].header)
        assert h["SCI"].data.shape == embed.shape(box)
        np.testing.assert_allclose(w.wcs.crpix, expected.wcs.crpix)
        np.testing.assert_allclose(w.wcs.crval, expected.wcs.crval)
        np.testing.assert_allclose(w.pixel_scale_matrix, expected.pixel_scale_matrix)
        tab = h["HDRTAB"].data
        assert sorted(tab["ROOTNAME"]) == ["j9aa0101q", "j9aa0111q", "j9aa0121q"] and len(tab) == 3
        assert h["NEXP"].data.max() == 3
        assert np.all(np.isnan(h["SCI"].data[h["WHT"].data == 0]))


def test_hrc_star_positions_match_truth(hrc_product):
    truth = hrc_product["truth"]
    with fits.open(hrc_product["results"][0].product) as h:
        sci = h["SCI"].data.astype(float)
        w = WCS(h["SCI"].header)
    x0, y0 = w.world_to_pixel_values(truth["ra"], truth["dec"])  # truth through the sky cell WCS
    err = []
    for x, y in zip(x0, y0):
        cx, cy, _ = _centroid(sci, x, y)
        err.append(np.hypot(cx - x, cy - y))
    assert len(err) == 16
    assert max(err) < 0.02, err


R_AP, R_BG = 0.4, (0.7, 0.9)  # aperture radius and background annulus, arcsec


def test_hrc_star_fluxes_agree_across_members(hrc_product):
    """Each member drizzled alone onto the layer grid (with the sky the layer subtracted from
    it): aperture fluxes (e-/s) of the isolated stars agree between members and with the
    product within 1%. A member counts for a star only if no input pixel within 6 px of its
    centre is rejected and its drizzle alone has no empty pixel in the aperture: a rejected
    pixel in a star's core leaves a hole that one member cannot fill (in the layer the other
    members fill it)."""
    from mvmdb.process.drizzling import drizzle_layer
    from mvmdb.process.inputs import open_inputs

    truth = hrc_product["truth"]
    with fits.open(hrc_product["results"][0].product) as h:
        sci = h["SCI"].data.astype(float)
        w = WCS(h["SCI"].header)
        tab = h["HDRTAB"].data
        sky = dict(zip(tab["HAPEXPNAME"], tab["MDRIZSKY"]))
    xs, ys = w.world_to_pixel_values(truth["ra"], truth["dec"])
    r_px, bg_px = R_AP / 0.04, (R_BG[0] / 0.04, R_BG[1] / 0.04)
    product = [_aperture_flux(sci, x, y, r_px, bg_px) for x, y in zip(xs, ys)]
    per_member = []
    for m in hrc_product["members"]:
        with open_inputs([(str(m.path), None)]) as li:
            chip = li.chips[0]
            chip.sky = sky[m.path.name]
            alone = drizzle_layer(li.chips, w, sci.shape, bits=80).sci.astype(float)
            ix, iy = chip.in_wcs.all_world2pix(truth["ra"], truth["dec"], 0)
            flagged = (np.asarray(chip.dq) & ~80) != 0  # rejected by final_bits 80
        fluxes = []
        for k, (x, y) in enumerate(zip(xs, ys)):
            core_clean = _aperture_flux(flagged.astype(float), ix[k], iy[k], 6, (30, 31)) == 0
            no_hole = _aperture_flux(np.isnan(alone).astype(float), x, y, r_px, (30, 31)) == 0
            fluxes.append(_aperture_flux(alone, x, y, r_px, bg_px) if core_clean and no_hole else None)
        per_member.append(fluxes)
    n_compared = 0
    for i in range(len(truth)):
        vals = np.array([f[i] for f in per_member if f[i] is not None])
        if len(vals) < 2:
            continue
        n_compared += 1
        assert np.ptp(vals) / vals.mean() < 0.01, (i, vals)  # members agree
        assert abs(product[i] / vals.mean() - 1) < 0.01, (i, product[i], vals)  # and the product with them
    assert n_compared >= 8


def test_hrc_sky_offsets_removed(hrc_product):
    """Sky matching takes out the injected per-exposure sky differences (skymethod 'match')."""
    with fits.open(hrc_product["results"][0].product) as h:
        tab = h["HDRTAB"].data
        sky = dict(zip(tab["ROOTNAME"], tab["MDRIZSKY"]))
        sci = h["SCI"].data.astype(float)
        nexp = h["NEXP"].data
    injected = dict(zip(["j9aa0101q", "j9aa0111q", "j9aa0121q"], HRC_SKY))
    low = min(HRC_SKY)
    for root, inj in injected.items():
        # subtracted = injected - lowest sky, within 1% of the injected level
        assert abs(sky[root] - (inj - low)) < 0.01 * inj, (root, sky[root], inj)
    # what remains everywhere is the lowest sky, as a rate on the 0.04" grid
    ratio = (0.04 / 0.02651) ** 2
    remaining = low / HRC_EXPTIME * ratio
    for k in (1, 2, 3):
        bg = np.nanmedian(sci[nexp == k])
        assert abs(bg / remaining - 1) < 0.01, (k, bg, remaining)


def test_hrc_flagged_cosmic_rays_leave_no_excess(hrc_product):
    from mvmdb.process.pixmap import exact_pixmap_points

    truth = hrc_product["truth"]
    with fits.open(hrc_product["results"][0].product) as h:
        sci = h["SCI"].data.astype(float)
        out_wcs = WCS(h["SCI"].header)
    sx, sy = out_wcs.world_to_pixel_values(truth["ra"], truth["dec"])
    bg = np.nanmedian(sci)
    rms = 1.4826 * np.nanmedian(np.abs(sci - bg))
    hits = []
    n_cr = 0
    for m in hrc_product["members"]:
        with fits.open(m.path) as hm:
            dq = hm["DQ"].data
            w = WCS(hm["SCI"].header, hm)
            sci_in = hm["SCI"].data
            yy, xx = np.nonzero(dq & 4096)
            n_cr += yy.size
            # the flagged pixels carry real CR charge in the input
            assert np.median(sci_in[yy, xx]) > np.median(sci_in) + 100
        ox, oy = exact_pixmap_points(w, out_wcs, xx.astype(float), yy.astype(float))
        ix, iy = np.rint(ox).astype(int), np.rint(oy).astype(int)
        ok = (ix >= 0) & (iy >= 0) & (ix < sci.shape[1]) & (iy < sci.shape[0])
        far = np.min(np.hypot(ox[:, None] - sx[None, :], oy[:, None] - sy[None, :]), axis=1) > 25
        hits.append(sci[iy[ok & far], ix[ok & far]])
    values = np.concatenate(hits)
    values = values[np.isfinite(values)]
    assert n_cr > 1000 and values.size > 500
    # at CR pixels the product is plain sky: same median, no outliers beyond the noise
    assert abs(np.median(values) - bg) < 0.2 * rms
    assert np.percentile(values, 99.9) < bg + 6 * rms


def test_hrc_mvm_keywords_match_an_independent_computation(hrc_product):
    """Masks from the member WCSs directly (output pixel centres mapped into each chip)."""
    prod = hrc_product["prod"]
    res = hrc_product["results"][0]
    box = hrc_product["cell_box"]
    with fits.open(res.product) as h:
        hdr = h[0].header
        wht = h["WHT"].data
        out_wcs = WCS(h["SCI"].header)
    ny, nx = embed.shape(box)
    yy, xx = np.mgrid[0:ny, 0:nx]
    ra, dec = out_wcs.pixel_to_world_values(xx.ravel(), yy.ravel())
    total = np.zeros(ny * nx, dtype=int)
    scaled = np.zeros(ny * nx)
    for m in hrc_product["members"]:
        with fits.open(m.path) as hm:
            w = WCS(hm["SCI"].header, hm)
            n2, n1 = hm["SCI"].data.shape
            t = hm[0].header["EXPTIME"]
        px, py = w.all_world2pix(ra, dec, 0)
        inside = (px >= -0.5) & (px < n1 - 0.5) & (py >= -0.5) & (py < n2 - 0.5)
        total += inside
        scaled += inside * t
    good = total > 0
    full = 21954**2
    expect = {
        "NPIXFRAC": good.sum() / full,
        "MEANEXPT": scaled[good].mean(),
        "MEDEXPT": np.median(scaled[good]),
        "MEANNEXP": total[good].mean(),
        "MEDNEXP": np.median(total[good]),
        "MEANWHT": wht[wht > 0].mean(dtype=np.float64),
        "MEDWHT": np.median(wht[wht > 0]),
    }
    for key, value in expect.items():
        assert hdr[key] == pytest.approx(value, rel=1e-4), key  # a few edge pixels at most
        assert res.keywords[key] == pytest.approx(hdr[key], rel=1e-12), key
        assert prod.keywords[key] == pytest.approx(hdr[key], rel=1e-12), key
    assert res.keywords["SCELLID"] == "p1359x11y11"
    assert "Fraction of pixels with data".startswith(hdr.comments["NPIXFRAC"])


# =========================================================================== WFC3/IR: coarse + fine, growth, failures


def _run(engine, products):
    from mvmdb.process import run

    outcomes = run.run_queue(engine, products, executor="inline")
    return {r.layer: r for o in outcomes for r in o.results}


def _ir_pair(out: Path, truth, filt="F160W", roots=("iaaa01a1q", "iaaa01b1q"), offset=(0.0, 0.0), crop=200):
    return [
        write_member(out, truth, "WFC3", "IR", filt, root, offset=(offset[0] + 0.4 * k, offset[1] + 0.3 * k),
                     center=_shift(CENTER, offset), orientat=10.0 + 5 * k, exptime=250.0, seed=10 + k,
                     expstart=56000.0 + k, crop=crop)
        for k, root in enumerate(roots)
    ]


def _shift(center, offset):
    from mvmdb.simulate.instruments import tan_deproject

    ra, dec = tan_deproject(offset[0], offset[1], *center)
    return float(ra) % 360, float(dec)


def _layer(results, filt, scale):
    suffix = "coarse-all" if scale == "coarse" else "all"
    return results[f"hst_{HRC_CELL.name}_wfc3_ir_{filt}_{suffix}"]


def test_fine_and_coarse_layers_overlay_pixel_for_pixel(engine, tmp_path):
    truth = star_truth(n=3, step=6.0, mags=(18.5, 19.0))  # bright, below saturation
    (tmp_path / "in").mkdir()
    members = _ir_pair(tmp_path / "in", truth)
    ingest_and_plan(engine, [m.path for m in members], tmp_path / "pollers")
    res = _run(engine, tmp_path / "products")
    fine, coarse = _layer(res, "f160w", "fine"), _layer(res, "f160w", "coarse")
    assert fine.status == coarse.status == "done" and fine.members == coarse.members == 2
    assert Path(coarse.product).name == "hst_skycell-p1359x11y11_wfc3_ir_f160w_coarse-all_drz.fits"
    with fits.open(fine.product) as hf, fits.open(coarse.product) as hc:
        f_sci, c_sci = hf["SCI"].data.astype(float), hc["SCI"].data.astype(float)
        f_n, c_n = hf["NEXP"].data, hc["NEXP"].data
        wf, wc = WCS(hf["SCI"].header), WCS(hc["SCI"].header)
        assert hc[0].header["PSCALE"] == 0.12 and hf[0].header["PSCALE"] == 0.04
    assert f_sci.shape == (3 * c_sci.shape[0], 3 * c_sci.shape[1])
    # coarse pixel (i, j) is the 3x3 block of fine pixels 3i..3i+2, 3j..3j+2 of the products
    j, i = np.mgrid[0:c_sci.shape[0]:7, 0:c_sci.shape[1]:7]
    ra, dec = wc.pixel_to_world_values(i, j)
    fx, fy = wf.world_to_pixel_values(ra, dec)
    np.testing.assert_allclose(fx, 3 * i + 1, atol=1e-6)
    np.testing.assert_allclose(fy, 3 * j + 1, atol=1e-6)
    # and holds their flux: e-/s per coarse pixel = sum of the 9 fine pixels (blocks seen by both exposures)
    ny, nx = c_sci.shape
    blocks = f_sci.reshape(ny, 3, nx, 3).sum(axis=(1, 3))
    full = (f_n.reshape(ny, 3, nx, 3).min(axis=(1, 3)) == 2) & (c_n == 2)
    rel = np.abs(c_sci[full] - blocks[full]) / np.abs(blocks[full]).clip(1e-3)
    assert full.sum() > 1000 and np.median(rel) < 1e-4 and np.percentile(rel, 90) < 2e-2
    # stars sit at the same place in both (first moments over the same 13x13 coarse = 39x39 fine pixels)
    xs, ys = wf.world_to_pixel_values(truth["ra"], truth["dec"])
    n_stars = 0
    for x, y in zip(xs, ys):
        qi, qj = int(round((x - 1) / 3)), int(round((y - 1) / 3))
        c = c_sci[qj - 6:qj + 7, qi - 6:qi + 7]
        f = f_sci[3 * qj - 18:3 * qj + 21, 3 * qi - 18:3 * qi + 21]
        if not (np.isfinite(c).all() and np.isfinite(f).all()):
            continue  # a pixel without data (edge, or rejected in both exposures)
        n_stars += 1
        cj, ci = np.mgrid[qj - 6:qj + 7, qi - 6:qi + 7]
        fj, fi = np.mgrid[3 * qj - 18:3 * qj + 21, 3 * qi - 18:3 * qi + 21]
        cx, cy = (c * ci).sum() / c.sum(), (c * cj).sum() / c.sum()
        fx_, fy_ = ((f * fi).sum() / f.sum() - 1) / 3, ((f * fj).sum() / f.sum() - 1) / 3
        assert abs(cx - fx_) < 0.02 and abs(cy - fy_) < 0.02, (cx - fx_, cy - fy_)
    assert n_stars >= 5


def test_growing_box_reembeds_other_layers_without_resampling(engine, tmp_path):
    from mvmdb.process import queue

    (tmp_path / "in").mkdir()
    truth = star_truth(n=3, step=6.0)
    first = _ir_pair(tmp_path / "in", truth)
    ingest_and_plan(engine, [m.path for m in first], tmp_path / "pollers")
    products = tmp_path / "products"
    res1 = _run(engine, products)
    before = {}
    for scale in ("fine", "coarse"):
        with fits.open(_layer(res1, "f160w", scale).product) as h:
            before[scale] = {x.name: (x.header.copy(), None if x.data is None else np.array(x.data)) for x in h}
    with engine.connect() as conn:
        box1 = tuple(conn.execute(sa.text("SELECT box_xmin, box_xmax, box_ymin, box_ymax FROM sky_cell")).one())
        gen1 = dict(conn.execute(sa.text("SELECT exposure_id, generation FROM layer_member")).all())
    # a new F110W exposure 20" to the east: the common box grows
    new = write_member(tmp_path / "in", truth, "WFC3", "IR", "F110W", "iaaa02a1q", center=_shift(CENTER, (20, 0)),
                       offset=(20.0, 0.0), exptime=200.0, seed=30, expstart=56100.0, crop=200)
    ingest_and_plan(engine, [new.path], tmp_path / "pollers")
    res2 = _run(engine, products)
    for scale in ("fine", "coarse"):
        assert _layer(res2, "f110w", scale).status == "done"
        re = _layer(res2, "f160w", scale)
        assert re.status == "done" and "re-embedded" in re.reason and re.members == 2
    with engine.connect() as conn:
        box2 = tuple(conn.execute(sa.text("SELECT box_xmin, box_xmax, box_ymin, box_ymax FROM sky_cell")).one())
        rows = conn.execute(sa.text(
            "SELECT l.name, l.scale, p.path, p.checksum, p.box_xmin, p.box_xmax, p.box_ymin, p.box_ymax "
            "FROM product p JOIN layer l ON l.id = p.layer_id")).all()
        gen2 = dict(conn.execute(sa.text("SELECT exposure_id, generation FROM layer_member")).all())
        assert set(conn.execute(sa.text("SELECT status FROM layer_member")).scalars()) == {"OLD"}
    assert box2 != box1 and embed.contains(box2, box1) and embed.is_aligned(box2)
    assert all(gen2[k] == v for k, v in gen1.items())  # the re-embedded layers' members were not touched
    assert len(rows) == 4
    for r in rows:  # every layer of the sky cell now lies on the common box
        assert (r.box_xmin, r.box_xmax, r.box_ymin, r.box_ymax) == embed.at_scale(box2, r.scale)
        import hashlib

        assert hashlib.sha256(Path(r.path).read_bytes()).hexdigest() == r.checksum
    for scale in ("fine", "coarse"):
        old_box, new_box = embed.at_scale(box1, scale), embed.at_scale(box2, scale)
        dy, dx = embed.offset(new_box, old_box)
        with fits.open(_layer(res2, "f160w", scale).product) as h:
            old = before[scale]
            assert [x.name for x in h] == list(old)
            assert h[0].header == old["PRIMARY"][0]  # keywords unchanged
            for name, fill in (("SCI", np.nan), ("WHT", 0), ("NEXP", 0)):
                arr, prev = h[name].data, old[name][1]
                assert arr.shape == embed.shape(new_box)
                np.testing.assert_array_equal(arr[dy:dy + prev.shape[0], dx:dx + prev.shape[1]], prev)
                outside = np.ones(arr.shape, bool)
                outside[dy:dy + prev.shape[0], dx:dx + prev.shape[1]] = False
                np.testing.assert_array_equal(arr[outside], np.full(outside.sum(), fill, arr.dtype))
                changed = {k for k in set(h[name].header) | set(old[name][0])
                           if h[name].header.get(k) != old[name][0].get(k)}
                assert changed <= {"CRPIX1", "CRPIX2", "NAXIS1", "NAXIS2", "S_REGION", "CHECKSUM", "DATASUM"}, changed
            assert h["HDRTAB"].data.tobytes() == old["HDRTAB"][1].tobytes()
            # same sky position for the same pixel content
            w_old, w_new = WCS(old["SCI"][0]), WCS(h["SCI"].header)
            ra, dec = w_old.pixel_to_world_values(10.0, 20.0)
            np.testing.assert_allclose(w_new.world_to_pixel_values(ra, dec), (10.0 + dx, 20.0 + dy), atol=1e-7)
    assert not [p for p in (products / HRC_CELL.name).iterdir() if p.name.startswith(".")]


def test_missing_input_fails_its_layer_only(engine, tmp_path):
    (tmp_path / "in").mkdir()
    truth = star_truth(n=3, step=6.0)
    pair = _ir_pair(tmp_path / "in", truth)
    other = write_member(tmp_path / "in", truth, "WFC3", "IR", "F110W", "iaaa02a1q", exptime=200.0, seed=30,
                         crop=200)
    ingest_and_plan(engine, [m.path for m in pair] + [other.path], tmp_path / "pollers")
    os.unlink(pair[1].path)
    products = tmp_path / "products"
    res = _run(engine, products)
    for scale in ("fine", "coarse"):
        bad = _layer(res, "f160w", scale)
        assert bad.status == "failed" and bad.product is None and str(pair[1].path) in bad.reason
        assert _layer(res, "f110w", scale).status == "done"
    with engine.connect() as conn:
        job = conn.execute(sa.text("SELECT state, reason FROM job")).one()
        statuses = dict(conn.execute(sa.text(
            "SELECT l.filter || ' ' || l.scale, array_agg(DISTINCT m.status) FROM layer l "
            "JOIN layer_member m ON m.layer_id = l.id GROUP BY 1")).all())
        names = set(conn.execute(sa.text("SELECT l.filter FROM product p JOIN layer l ON l.id = p.layer_id")).scalars())
    assert job.state == "failed" and str(pair[1].path) in job.reason
    assert statuses == {"f160w fine": ["NEW"], "f160w coarse": ["NEW"], "f110w fine": ["OLD"], "f110w coarse": ["OLD"]}
    assert names == {"f110w"}
    files = sorted(p.name for p in (products / HRC_CELL.name).iterdir())
    assert files == ["hst_skycell-p1359x11y11_wfc3_ir_f110w_all_drz.fits",
                     "hst_skycell-p1359x11y11_wfc3_ir_f110w_coarse-all_drz.fits"]
