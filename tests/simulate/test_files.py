"""Every simulated file has the archive's structure: keywords, extensions, shapes, WCS."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from mvmdb.simulate import DQ, ExposureSpec, read_manifest, write_exposure

PRIMARY_ALL = [
    "TELESCOP", "INSTRUME", "DETECTOR", "EXPTIME", "DATE-OBS", "TIME-OBS", "EXPSTART", "EXPEND", "PROPOSID",
    "ROOTNAME", "ASN_ID", "LINENUM", "PRIMESI", "TARGNAME", "OBSTYPE", "OBSMODE", "MTFLAG", "DRIZCORR", "QUALITY",
    "PA_V3", "RA_TARG", "DEC_TARG", "FILENAME", "DATE", "IRAF-TLM",
]
NATIVE = {("ACS", "WFC"): [(2048, 4096)] * 2, ("WFC3", "UVIS"): [(2051, 4096)] * 2, ("WFC3", "IR"): [(1014, 1014)],
          ("ACS", "HRC"): [(1024, 1024)], ("ACS", "SBC"): [(1024, 1024)]}
UNITS = {"WFC": "ELECTRONS", "UVIS": "ELECTRONS", "HRC": "ELECTRONS", "IR": "ELECTRONS/S", "SBC": "COUNTS"}
SCALES = {"WFC": (0.048, 0.051), "UVIS": (0.039, 0.0405), "IR": (0.126, 0.130), "HRC": (0.026, 0.027),
          "SBC": (0.031, 0.033)}


def check_file(path, row):
    """Assertions shared by every file of every scene."""
    k = int(row["downscale"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with fits.open(path) as hdul:
            hdul.verify("exception")  # FITS-standard cards, mandatory keywords in order
            p = hdul[0].header
            for key in PRIMARY_ALL:
                assert key in p, f"{path.name}: PRIMARY lacks {key}"
            inst, det = p["INSTRUME"], p["DETECTOR"]
            assert (inst, det) == (row["instrument"], row["detector"])
            root = p["ROOTNAME"]
            assert re.fullmatch(r"[ij][0-9a-z]{3}[0-9a-z]{2}[0-9a-z]{2}q", root)
            assert root[0] == {"ACS": "j", "WFC3": "i"}[inst]
            assert path.name == f"{root}_{row['filetype']}.fits" and path.name == p["FILENAME"]
            assert p["ASN_ID"] == "NONE" or p["ASN_ID"][:6] == root[:6].upper()
            assert re.fullmatch(r"\d{4}-\d\d-\d\d", p["DATE-OBS"]) and re.fullmatch(r"\d\d:\d\d:\d\d", p["TIME-OBS"])
            assert p["EXPEND"] > p["EXPSTART"] and abs((p["EXPEND"] - p["EXPSTART"]) * 86400 - p["EXPTIME"]) < 1e-3
            assert p["MTFLAG"] in (" ", "T", "")
            if inst == "WFC3":
                assert p["FILTER"] == row["filter"]
                assert "SCAN_TYP" in p
                assert "PHOTFLAM" in p and "PHOTPLAM" in p
            else:
                f1, f2 = p["FILTER1"], p["FILTER2"]
                if det == "SBC":
                    assert (f1, f2) == (row["filter"], "N/A")
                else:
                    assert row["filter"] in (f1, f2)
                    other = f2 if f1 == row["filter"] else f1
                    assert other.startswith("CLEAR") and other.endswith("L" if det == "WFC" else "S")
            if det == "UVIS":
                assert "CHINJECT" in p
            if det in ("WFC", "UVIS", "HRC"):
                assert "FLASHCUR" in p
            if det in ("WFC", "UVIS"):
                assert p["PCTECORR"] == ("COMPLETE" if row["filetype"] == "flc" else "PERFORM")
            names = [(h.name, h.ver) for h in hdul[1:]]
            shapes = NATIVE[(inst, det)]
            per_chip = ["SCI", "ERR", "DQ"] + (["SAMP", "TIME"] if det == "IR" else [])
            assert names == [(n, v) for v in range(1, len(shapes) + 1) for n in per_chip]
            assert p["NEXTEND"] == len(names)
            for ext, (ny, nx) in enumerate(shapes, start=1):
                sci = hdul["SCI", ext]
                h = sci.header
                want = (max(1, round(ny / k)), max(1, round(nx / k)))
                assert (h["SIZAXIS2"], h["SIZAXIS1"]) == want
                if row["header_only"]:
                    assert sci.data is None or sci.data.size == 0
                else:
                    assert sci.data.shape == want and sci.data.dtype.kind == "f" and sci.data.dtype.itemsize == 4
                    assert hdul["ERR", ext].data.shape == want
                    assert hdul["DQ", ext].data.shape == want and hdul["DQ", ext].header["BITPIX"] == 16
                    assert np.isfinite(sci.data).all()
                assert h["BUNIT"] == UNITS[det] and hdul["ERR", ext].header["BUNIT"] == UNITS[det]
                assert h["EXTNAME"] == "SCI" and h["EXTVER"] == ext
                assert h["CTYPE1"] == "RA---TAN-SIP" and h["CTYPE2"] == "DEC--TAN-SIP"
                assert h["A_ORDER"] == 4 and h["AP_ORDER"] >= 4 and h["WCSNAME"].startswith("IDC_")
                if inst == "ACS" or det == "UVIS":
                    assert "PHOTFLAM" in h and "PHOTPLAM" in h
                if det in ("WFC", "UVIS"):
                    assert h["CCDCHIP"] == (2 if ext == 1 else 1)
                w = WCS(h)
                scale = np.sqrt(abs(np.linalg.det(w.wcs.cd))) * 3600 / k
                lo, hi = SCALES[det]
                assert lo < scale < hi, f"{det} native scale {scale}"
                orient = np.degrees(np.arctan2(h["CD1_2"], h["CD2_2"]))
                assert abs(orient - h["ORIENTAT"]) < 1e-5
                assert np.linalg.det(w.wcs.cd) < 0  # east to the left when north is up
                assert h["S_REGION"].startswith("POLYGON ICRS ")


def test_all_scene_files_have_the_archive_structure(pg1202_k8, all_scenes_k16):
    results = [pg1202_k8, *all_scenes_k16.values()]
    n = 0
    for res in results:
        manifest = read_manifest(res.out_dir)
        assert len(manifest) == len(res.paths)
        for row in manifest:
            check_file(res.out_dir / row["path"], row)
            n += 1
    assert n == 17 + 9 + 10 + 63


@pytest.mark.parametrize("det", [("ACS", "WFC", "F606W"), ("WFC3", "UVIS", "F606W"), ("WFC3", "IR", "F125W"),
                                 ("ACS", "HRC", "F814W"), ("ACS", "SBC", "F150LP")])
def test_native_size_header_only(tmp_path, det):
    """Full-size detectors in header-only mode: NAXIS1=0, NAXIS2=1 and SIZAXIS = the chip."""
    spec = ExposureSpec(*det, ra=10.0, dec=-45.0, orientat=200.0, header_only=True, ipppssoot=None)
    res = write_exposure(spec, None, tmp_path)
    row = {"downscale": 1, "header_only": True, "instrument": det[0], "detector": det[1], "filter": det[2],
           "filetype": spec.file_type}
    check_file(res.path, row)
    with fits.open(res.path) as hdul:
        assert hdul["SCI", 1].header["NAXIS"] == 2
        assert (hdul["SCI", 1].header["NAXIS1"], hdul["SCI", 1].header["NAXIS2"]) == (0, 1)


def test_chips_sit_on_the_detector_with_the_gap(tmp_path):
    """ACS/WFC and WFC3/UVIS: chip 1 (SCI,2) lies above chip 2 (SCI,1) past the inter-chip gap."""
    for inst, det, filt, gap in (("ACS", "WFC", "F814W", (40, 60)), ("WFC3", "UVIS", "F606W", (25, 40))):
        res = write_exposure(ExposureSpec(inst, det, filt, 150.1, 2.2, orientat=33.0, header_only=True), None,
                             tmp_path)
        with fits.open(res.path) as hdul:
            w1, w2 = WCS(hdul["SCI", 1].header), WCS(hdul["SCI", 2].header)
            ny = hdul["SCI", 1].header["SIZAXIS2"]
            # bottom-centre row of chip 1 (SCI,2) seen in chip 2's (SCI,1) pixels
            ra, dec = w2.all_pix2world([2047.5], [-0.5], 0)
            x, y = w1.all_world2pix(ra, dec, 0)
            assert abs(x[0] - 2047.5) < 60
            assert gap[0] < y[0] - (ny - 0.5) < gap[1], f"{det} gap {y[0] - (ny - 0.5):.1f} px"


def test_distortion_and_inverse_sip(tmp_path):
    """Realistic SIP sizes (ACS/WFC: tens of px at the corners) and AP/BP good to < 0.001 px."""
    expect = {"WFC": (20, 80), "UVIS": (5, 30), "IR": (5, 30), "HRC": (1, 15), "SBC": (1, 15)}
    for inst, det, filt in (("ACS", "WFC", "F814W"), ("WFC3", "UVIS", "F606W"), ("WFC3", "IR", "F160W"),
                            ("ACS", "HRC", "F814W"), ("ACS", "SBC", "F140LP")):
        for k in (1, 8):
            res = write_exposure(ExposureSpec(inst, det, filt, 320.0, 60.0, header_only=True, downscale=k), None,
                                 tmp_path)
            with fits.open(res.path) as hdul:
                for hdu in hdul:
                    if hdu.name != "SCI":
                        continue
                    w = WCS(hdu.header)
                    nx, ny = hdu.header["SIZAXIS1"], hdu.header["SIZAXIS2"]
                    gy, gx = np.mgrid[-0.5 : ny - 0.5 : 40j, -0.5 : nx - 0.5 : 40j]
                    pix = np.column_stack([gx.ravel(), gy.ravel()])
                    foc = w.sip_pix2foc(pix, 0)
                    crpix = w.wcs.crpix - 1
                    dist = np.hypot(*(foc - (pix - crpix)).T).max() * k  # in native pixels
                    lo, hi = expect[det]
                    assert lo < dist < hi, f"{det} K={k} corner distortion {dist:.1f} native px"
                    back = w.sip_foc2pix(foc, 0)
                    assert np.abs(back - pix).max() < 1e-3


def test_dq_bits_are_the_archive_values():
    assert (DQ.BAD_DETECTOR, DQ.HOT, DQ.WARM, DQ.SATURATED, DQ.CR_DRIZ, DQ.CR_CAL) == (4, 16, 64, 256, 4096, 8192)
    assert int(DQ.BAD_COLUMN) == 128 and int(DQ.BAD_FLAT) == 512 and int(DQ.GHOST) == 16384
