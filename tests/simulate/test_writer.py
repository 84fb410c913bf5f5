"""One custom exposure (ExposureSpec + write_exposure): pointing, units, sky, CRs, DQ, determinism."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from mvmdb.simulate import DQ, ExposureSpec, detector_model, make_truth, write_exposure


def test_ir_frame_at_a_given_pointing(tmp_path):
    spec = ExposureSpec("WFC3", "IR", "F160W", ra=53.1, dec=-27.8, orientat=75.0, exptime=602.9, expstart=56000.25,
                        proposid=13000, targname="MY-FIELD", ipppssoot="ic0a01abq", downscale=8, seed=4)
    res = write_exposure(spec, None, tmp_path)
    assert res.path == tmp_path / "ic0a01abq_flt.fits"
    with fits.open(res.path) as hdul:
        p, h = hdul[0].header, hdul["SCI", 1].header
        assert (p["PROPOSID"], p["TARGNAME"], p["EXPTIME"], p["EXPSTART"]) == (13000, "MY-FIELD", 602.9, 56000.25)
        assert p["DATE-OBS"] == "2012-03-14" and p["TIME-OBS"] == "06:00:00"
        assert p["OBSMODE"] == "MULTIACCUM" and p["NSAMP"] >= 2
        assert abs((75.0 - detector_model("WFC3", "IR").theta_minus_pav3 - p["PA_V3"]) % 360) < 1e-4
        assert (h["RA_APER"], h["DEC_APER"], h["PA_APER"]) == (53.1, -27.8, 75.0)
        assert abs(h["ORIENTAT"] - 75.0) < 0.5  # the chip's y axis, up to the detector's skew
        w = WCS(h)
        ra, dec = w.all_pix2world([[h["CRPIX1"] - 1, h["CRPIX2"] - 1]], 0)[0]
        assert abs(ra - 53.1) < 1e-9 and abs(dec + 27.8) < 1e-9  # IR: aperture reference = chip reference
        assert hdul["SAMP", 1].data.shape == hdul["SCI", 1].data.shape
        assert np.all(hdul["TIME", 1].data == np.float32(602.9))


@pytest.mark.parametrize("det,levels", [(("ACS", "WFC", "F606W"), (150.0, 170.0)), (("WFC3", "IR", "F140W"), 1.75),
                                        (("ACS", "SBC", "F140LP"), 3.0)])
def test_given_sky_level_in_file_units(tmp_path, det, levels):
    spec = ExposureSpec(*det, ra=200.0, dec=10.0, sky_level=levels, downscale=4, exptime=800.0, seed=1)
    res = write_exposure(spec, None, tmp_path)
    want = [levels] * len(res.sky_level) if np.ndim(levels) == 0 else list(levels)
    assert res.sky_level == pytest.approx(want)
    with fits.open(res.path) as hdul:
        for ext, level in enumerate(want, start=1):
            sci, dq = hdul["SCI", ext].data, hdul["DQ", ext].data
            good = sci[dq == 0]
            assert np.mean(good) == pytest.approx(level, rel=0.01)
            err = hdul["ERR", ext].data[dq == 0]
            noise = np.std(good)
            assert np.median(err) == pytest.approx(noise, rel=0.1)  # ERR matches the scatter


def test_default_sky_differs_between_exposures(tmp_path):
    a = write_exposure(ExposureSpec("ACS", "WFC", "F814W", 1.0, 1.0, ipppssoot="jaaa01aaq", sky_factor=1.0,
                                    header_only=True), None, tmp_path)
    b = write_exposure(ExposureSpec("ACS", "WFC", "F814W", 1.0, 1.0, ipppssoot="jaaa01abq", sky_factor=1.3,
                                    header_only=True), None, tmp_path)
    assert b.sky_level[0] / a.sky_level[0] == pytest.approx(1.3, rel=0.05)
    assert a.sky_level[0] != a.sky_level[1]  # the two chips differ a little too


def test_cosmic_rays_and_detector_defects_in_dq(tmp_path):
    ccd = write_exposure(ExposureSpec("ACS", "WFC", "F814W", 5.0, 5.0, exptime=1000.0, downscale=8, seed=3), None,
                         tmp_path / "ccd.fits")
    with fits.open(ccd.path) as hdul:
        assert hdul[0].header["DRIZCORR"] == "COMPLETE"
        dq = np.concatenate([hdul["DQ", e].data.ravel() for e in (1, 2)])
        sci = np.concatenate([hdul["SCI", e].data.ravel() for e in (1, 2)])
    assert ccd.n_cr > 100
    cr = (dq & DQ.CR_DRIZ) > 0
    assert 0.005 < cr.mean() < 0.1 and not (dq & DQ.CR_CAL).any()
    assert np.median(sci[cr]) > np.median(sci[dq == 0]) + 100  # the charge is in the pixels
    for bit in (DQ.HOT, DQ.WARM, DQ.BAD_DETECTOR, DQ.BAD_COLUMN):
        assert (dq & bit).any(), bit

    ir = write_exposure(ExposureSpec("WFC3", "IR", "F125W", 5.0, 5.0, exptime=1000.0, downscale=4, seed=3), None,
                        tmp_path / "ir.fits")
    with fits.open(ir.path) as hdul:
        dq, sci = hdul["DQ", 1].data, hdul["SCI", 1].data
    cr = (dq & DQ.CR_CAL) > 0
    assert cr.any() and not (dq & DQ.CR_DRIZ).any() and not (dq & DQ.BAD_COLUMN).any()
    assert abs(np.median(sci[cr & ((dq & ~DQ.CR_CAL) == 0)]) - np.median(sci[dq == 0])) < 0.1  # ramp fit removed it

    quiet = write_exposure(ExposureSpec("ACS", "WFC", "F814W", 5.0, 5.0, downscale=8, cosmic_rays=False,
                                        detector_defects=False), None, tmp_path / "quiet.fits")
    unflagged = write_exposure(ExposureSpec("ACS", "WFC", "F814W", 5.0, 5.0, downscale=8, cr_flag=0), None,
                               tmp_path / "unflagged.fits")
    with fits.open(quiet.path) as q, fits.open(unflagged.path) as u:
        assert quiet.n_cr == 0 and not q["DQ", 1].data.any()
        assert unflagged.n_cr > 0 and not (u["DQ", 1].data & (DQ.CR_DRIZ | DQ.CR_CAL)).any()
        assert u[0].header["DRIZCORR"] == "PERFORM"


def test_saturation(tmp_path):
    truth = make_truth((30.0, 40.0), 1.0, 1, 0, 1)
    truth["ra"][0], truth["dec"][0] = 30.0, 40.0 + 50.0 / 3600  # on WFC1, not in the chip gap
    truth["flux"] = [2.0e5]  # e-/s: far above full well in 500 s
    res = write_exposure(ExposureSpec("ACS", "WFC", "F606W", 30.0, 40.0, downscale=4, cosmic_rays=False), truth,
                         tmp_path)
    with fits.open(res.path) as hdul:
        hits = [((hdul["DQ", e].data & DQ.SATURATED) > 0) for e in (1, 2)]
        ext = 1 if hits[0].any() else 2
        sat = hits[ext - 1]
        assert sat.sum() >= 4
        assert hdul["SCI", ext].data[sat].max() <= 84700.0 * 4**2  # full well x K^2 at downscale K


def test_same_spec_same_bytes_and_keyword_overrides(tmp_path):
    truth = make_truth((100.0, -5.0), 120.0, 200, 5, 2)
    spec = dict(instrument="WFC3", detector="UVIS", filter="F475W", ra=100.0, dec=-5.0, orientat=12.0,
                downscale=16, ipppssoot="iabc01deq", keywords={"SCAN_TYP": "D", "FLASHCUR": "LOW"})
    a = write_exposure(ExposureSpec(**spec), truth, tmp_path / "a.fits")
    b = write_exposure(ExposureSpec(**spec), truth, tmp_path / "b.fits")
    c = write_exposure(ExposureSpec(**spec, seed=1), truth, tmp_path / "c.fits")
    assert a.path.read_bytes() == b.path.read_bytes() != c.path.read_bytes()
    h = fits.getheader(a.path, 0)
    assert (h["SCAN_TYP"], h["FLASHCUR"], h["CHINJECT"]) == ("D", "LOW", "NONE")


def test_flt_of_a_cte_detector(tmp_path):
    res = write_exposure(ExposureSpec("ACS", "WFC", "F435W", 1.0, 1.0, filetype="flt", header_only=True,
                                      ipppssoot="jabc01xyq"), None, tmp_path)
    assert res.path.name == "jabc01xyq_flt.fits"
    h = fits.getheader(res.path, 0)
    assert h["PCTECORR"] == "PERFORM" and (h["FILTER1"], h["FILTER2"]) == ("CLEAR1L", "F435W")


def test_unknown_filter_or_detector():
    with pytest.raises(ValueError):
        ExposureSpec("ACS", "WFC", "F160W", 0.0, 0.0)
    with pytest.raises(ValueError):
        detector_model("WFPC2", "PC")
    with pytest.raises(ValueError):  # WFC3 rootnames start with 'i'
        ExposureSpec("WFC3", "IR", "F160W", 0.0, 0.0, ipppssoot="jabc01xyq")
    assert ExposureSpec("WFC3", "IR", "F160W", 0.0, 0.0, ipppssoot="IABC01XYQ").filename == "iabc01xyq_flt.fits"


def _pixel_area_arcsec2(w: WCS, x, y, d: float = 0.5):
    """Sky area (arcsec^2) of the pixels at 0-based (x, y), from the WCS by finite differences."""
    ra0, de0 = w.all_pix2world(x, y, 0)
    rx, dx = w.all_pix2world(x + d, y, 0)
    ry, dy = w.all_pix2world(x, y + d, 0)
    c = np.cos(np.radians(de0))
    return np.abs((rx - ra0) * c * (dy - de0) - (ry - ra0) * c * (dx - de0)) / d**2 * 3600.0**2


def test_source_counts_are_flat_fielded_by_the_pixel_area_map(tmp_path):
    """As in archive FLTs (uniform sky per pixel), a star's counts are rate x EXPTIME / PAM, the
    PAM being the pixel's sky area over (IDCSCALE x K)^2: drizzle multiplies it back."""
    truth = make_truth((30.0, 40.0), 1.0, 1, 0, 1)
    east, north = np.meshgrid(np.linspace(-95, 95, 7), np.linspace(-95, 95, 7))  # arcsec, over both chips
    truth = truth[np.zeros(east.size, int)]
    truth["id"] = np.arange(east.size)
    truth["ra"] = 30.0 + east.ravel() / 3600 / np.cos(np.radians(40.0))
    truth["dec"] = 40.0 + north.ravel() / 3600
    truth["flux"] = 100.0  # e-/s
    k, t = 4, 500.0
    spec = ExposureSpec("ACS", "WFC", "F814W", 30.0, 40.0, orientat=30.0, exptime=t, downscale=k, noise=False,
                        cosmic_rays=False, detector_defects=False, sky_level=0.0)
    res = write_exposure(spec, truth, tmp_path)
    counts, pam = [], []
    with fits.open(res.path) as hdul:
        for ext in (1, 2):
            sci, h = hdul["SCI", ext].data, hdul["SCI", ext].header
            w = WCS(h, hdul)
            x, y = w.all_world2pix(truth["ra"], truth["dec"], 0)
            inside = (x > 10) & (y > 10) & (x < sci.shape[1] - 11) & (y < sci.shape[0] - 11)
            yy, xx = np.mgrid[0:21, 0:21] - 10
            for xs, ys in zip(x[inside], y[inside]):
                xi, yi = int(round(xs)), int(round(ys))
                stamp = sci[yi - 10:yi + 11, xi - 10:xi + 11]
                counts.append(stamp[(xx + xi - xs) ** 2 + (yy + yi - ys) ** 2 <= 8.0**2].sum())
            pam.extend(_pixel_area_arcsec2(w, x[inside], y[inside]) / (h["IDCSCALE"] * k) ** 2)
    counts, pam = np.array(counts), np.array(pam)
    assert counts.size >= 30
    assert np.ptp(pam) > 0.05  # ACS/WFC's distortion: pixel areas differ by several per cent
    np.testing.assert_allclose(counts * pam, 100.0 * t, rtol=2e-3)  # 8 px: >99.9% of the PSF
