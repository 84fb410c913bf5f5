"""Each optional defect is applied, and only to its own exposures."""

from __future__ import annotations

import numpy as np
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from mvmdb.simulate import detector_model, flux_column, read_manifest


def _rows(result, label):
    m = read_manifest(result.out_dir)
    return [r for r in m if label in str(r["defects"]).split(",") or str(r["defects"]).startswith(label)]


def _primary(result, row):
    return fits.getheader(result.out_dir / row["path"], 0)


def test_header_defects(pg1202_defects):
    res = pg1202_defects
    m = read_manifest(res.out_dir)
    assert len(m) == 17 + 12  # trail 1, wcs_error 2, grism 2 x 2, one each for the other five
    clean = m[m["defects"] == ""]
    assert len(clean) == 17 + 2  # plus the direct images of the two grism visits
    grisms = _rows(res, "grism")
    assert sorted(r["filter"] for r in grisms) == ["G141", "G800L"]
    for r in grisms:
        h = _primary(res, r)
        assert h["OBSTYPE"] == "SPECTROSCOPIC" and r["expected_exclusion"] == "OBSTYPE"
        if r["instrument"] == "WFC3":
            assert h["FILTER"] == "G141"
        else:
            assert (h["FILTER1"], h["FILTER2"]) == ("G800L", "CLEAR2L")
    directs = m[(m["visit"] == grisms[0]["visit"]) & (m["defects"] == "")]
    assert len(directs) == 1 and _primary(res, directs[0])["OBSTYPE"] == "IMAGING"
    expect = {"moving_target": ("MTFLAG", "T"), "gsfail": ("QUALITY", "GSFAIL"), "spatial_scan": ("SCAN_TYP", "C"),
              "charge_injection": ("CHINJECT", "LINE17"), "dark_target": ("TARGNAME", "DARK")}
    for label, (key, value) in expect.items():
        (row,) = _rows(res, label)
        assert _primary(res, row)[key] == value
        assert row["expected_exclusion"] == key
    (dark,) = _rows(res, "dark_target")
    assert dark["sky_sci1"] == 0.0
    for r in clean:
        h = _primary(res, r)
        assert h["MTFLAG"].strip() == "" and h["QUALITY"] == "" and h["OBSTYPE"] == "IMAGING"


def _second_moments(image, x, y, half=12):
    ix, iy = int(round(x)), int(round(y))
    sub = image[iy - half : iy + half + 1, ix - half : ix + half + 1].astype(float)
    sub = np.clip(sub - np.median(sub), 0, None)
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1]
    w = sub / sub.sum()
    mx, my = (w * xx).sum(), (w * yy).sum()
    cov = np.array([[(w * (xx - mx) ** 2).sum(), (w * (xx - mx) * (yy - my)).sum()],
                    [(w * (xx - mx) * (yy - my)).sum(), (w * (yy - my) ** 2).sum()]])
    ev = np.linalg.eigvalsh(cov)
    return np.sqrt(ev[1] / max(ev[0], 1e-6))


def _elongation(res, row):
    truth = Table.read(res.truth_path, format="ascii.ecsv")
    det = detector_model(row["instrument"], row["detector"])
    rate = np.asarray(truth[flux_column(det, row["filter"])])
    with fits.open(res.out_dir / row["path"]) as hdul:
        sci, h = hdul["SCI", 1].data, hdul["SCI", 1].header
        x, y = WCS(h).all_world2pix(truth["ra"], truth["dec"], 0, quiet=True)
        ny, nx = sci.shape
        ok = (x > 15) & (x < nx - 16) & (y > 15) & (y < ny - 16) & (np.asarray(truth["kind"]) != "galaxy")
        best = np.flatnonzero(ok)[np.argsort(rate[ok])[::-1][:5]]
        return np.median([_second_moments(sci, x[i], y[i]) for i in best])


def test_trailed_exposures_are_smeared(pg1202_defects):
    res = pg1202_defects
    (trail,) = _rows(res, "trail")
    (mt,) = _rows(res, "moving_target")
    clean = read_manifest(res.out_dir)[0]
    assert trail["trail_arcsec"] == 4.0 and trail["expected_exclusion"] == "guiding"
    e_clean, e_trail, e_mt = _elongation(res, clean), _elongation(res, trail), _elongation(res, mt)
    assert e_clean < 1.3
    assert e_trail > 2.0
    assert e_mt > 1.3


def test_wcs_error_visit_is_offset_by_n_pixels(pg1202_defects, centroid):
    res = pg1202_defects
    rows = _rows(res, "wcs_error")
    assert len(rows) == 2 and {r["defects"] for r in rows} == {"wcs_error:6px"}
    truth = Table.read(res.truth_path, format="ascii.ecsv")
    for row in rows:
        d = np.array([row["wcs_dx"], row["wcs_dy"]])
        assert abs(np.hypot(*d) - 6.0) < 1e-5
        det = detector_model(row["instrument"], row["detector"])
        rate = np.asarray(truth[flux_column(det, row["filter"])]) * row["exptime"]
        with fits.open(res.out_dir / row["path"]) as hdul:
            assert hdul["SCI", 1].header["WCSNAME"] == "IDC_4bb1536cj"  # not aligned
            offsets = []
            for ext in (1, 2):
                sci, dq, h = hdul["SCI", ext].data, hdul["DQ", ext].data, hdul["SCI", ext].header
                x, y = WCS(h).all_world2pix(truth["ra"], truth["dec"], 0, quiet=True)
                ny, nx = sci.shape
                ok = (x > 14) & (x < nx - 15) & (y > 14) & (y < ny - 15) & (rate > 2e5)
                ok &= np.asarray(truth["kind"]) != "galaxy"
                for i in np.flatnonzero(ok):
                    xt, yt = x[i] - d[0], y[i] - d[1]  # where the star really is
                    fx, fy = centroid(sci, xt, yt, 5, good=(dq == 0))
                    offsets.append((x[i] - fx, y[i] - fy))
        offsets = np.array(offsets)
        assert len(offsets) >= 5
        med = np.median(offsets, axis=0)
        assert np.abs(med - d).max() < 0.05, f"header-projected minus measured = {med}, expected {d}"
