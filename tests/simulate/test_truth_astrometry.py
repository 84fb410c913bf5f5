"""The pixels agree with the truth catalogue through each file's own WCS."""

from __future__ import annotations

import math

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from mvmdb.simulate import ExposureSpec, detector_model, flux_column, make_truth, source_rates, write_exposure

HALF = 5  # fit box half-size, file pixels


def measured_offsets(fit_centroid, sci: np.ndarray, dq: np.ndarray, hdr: fits.Header, truth: Table, rate: np.ndarray,
                     exptime: float, sky_e: float, read_noise: float, per_second: bool, fwhm: float,
                     min_snr: float = 150.0):
    """(dx, dy) fitted - projected for every bright, isolated, clean star on one chip."""
    w = WCS(hdr)
    ny, nx = sci.shape
    ra, dec = np.asarray(truth["ra"], float), np.asarray(truth["dec"], float)
    # A SIP polynomial only means something near its chip: keep the sources whose linear
    # (TAN) position is within 25% of the chip size, then project them exactly.
    lx, ly = w.wcs_world2pix(ra, dec, 0)
    near_chip = (lx > -0.25 * nx) & (lx < 1.25 * nx) & (ly > -0.25 * ny) & (ly < 1.25 * ny)
    x = np.full(ra.size, -1e9)
    y = np.full(ra.size, -1e9)
    x[near_chip], y[near_chip] = w.all_world2pix(ra[near_chip], dec[near_chip], 0)
    counts = rate * exptime
    sigma = fwhm / 2.3548
    snr = counts / np.sqrt(counts + 4 * math.pi * sigma**2 * (sky_e + read_noise**2))
    galaxy = np.asarray(truth["kind"]).astype(str) == "galaxy"
    margin = HALF + 3
    inside = (x > margin) & (x < nx - 1 - margin) & (y > margin) & (y < ny - 1 - margin)
    image = sci * exptime if per_second else sci
    out = []
    for i in np.flatnonzero(inside & ~galaxy & (snr > min_snr)):
        d = np.hypot(x - x[i], y - y[i])
        near = (d > 0) & (d < 2 * HALF + 2)
        neighbours = (near & (counts > 2e-3 * counts[i])) | ((d < 2.5 * HALF) & galaxy)
        if neighbours.any():
            continue
        ix, iy = int(round(x[i])), int(round(y[i]))
        box = dq[iy - HALF : iy + HALF + 1, ix - HALF : ix + HALF + 1]
        if box[HALF - 1 : HALF + 2, HALF - 1 : HALF + 2].any() or (box != 0).mean() > 0.2:
            continue  # a cosmic ray, hot pixel or saturation on the core, or too many bad pixels
        fx, fy = fit_centroid(image, x[i], y[i], HALF, good=(dq == 0))
        out.append((fx - x[i], fy - y[i]))
    return np.array(out).reshape(-1, 2)


def test_bright_isolated_stars_land_on_their_projected_positions(pg1202_k8, centroid):
    result = pg1202_k8
    truth = Table.read(result.truth_path, format="ascii.ecsv")
    manifest = result.manifest
    all_offsets = []
    for row in manifest:
        det = detector_model(row["instrument"], row["detector"])
        rate = np.asarray(truth[flux_column(det, row["filter"])], float)
        per_file = []
        with fits.open(result.out_dir / row["path"]) as hdul:
            for ext in range(1, len(det.chips) + 1):
                sky = float(row[f"sky_sci{ext}"])
                sky_e = sky * row["exptime"] if det.per_second else sky
                off = measured_offsets(
                    centroid,
                    hdul["SCI", ext].data, hdul["DQ", ext].data, hdul["SCI", ext].header, truth, rate,
                    float(row["exptime"]), sky_e, det.read_noise, det.per_second, float(row["psf_fwhm_px"]),
                )
                per_file.append(off)
        off = np.concatenate(per_file)
        assert len(off) >= 2, f"{row['path']}: only {len(off)} bright isolated stars measured"
        worst = np.abs(off).max()
        assert worst < 0.05, f"{row['path']}: centroid off by {worst:.3f} px"
        all_offsets.append(off)
    allo = np.concatenate(all_offsets)
    assert len(allo) >= 100
    assert np.abs(allo.mean(axis=0)).max() < 0.01  # no systematic shift (e.g. a half-pixel convention slip)


@pytest.mark.parametrize(
    "instrument,detector,filt,downscale",
    [("WFC3", "IR", "F160W", 1), ("ACS", "HRC", "F435W", 2), ("ACS", "SBC", "F140LP", 2), ("ACS", "WFC", "F814W", 16)],
)
def test_custom_exposure_astrometry(tmp_path, centroid, instrument, detector, filt, downscale):
    """A single exposure from ExposureSpec: stars at the WCS-projected positions."""
    center = (210.80227, 54.34895)
    det = detector_model(instrument, detector)
    # a dense field scaled to the detector: ~300 stars over 1.5x its footprint
    radius = 0.75 * det.chips[0].nx * det.native_scale() * len(det.chips) ** 0.5
    truth = make_truth(center, radius, 300, 0, 7)
    truth["flux"] = 10 ** np.random.default_rng(5).uniform(0.5, 3.0, len(truth))  # e-/s in any filter
    spec = ExposureSpec(instrument, detector, filt, ra=center[0], dec=center[1], orientat=63.0, exptime=900.0,
                        downscale=downscale, seed=11, ipppssoot=f"{det.letter}abc01xyq")
    res = write_exposure(spec, truth, tmp_path)
    rate = source_rates(truth, det, det.filter(filt))
    offs = []
    with fits.open(res.path) as hdul:
        for ext, sky in enumerate(res.sky_level, start=1):
            sky_e = sky * spec.exptime if det.per_second else sky
            offs.append(measured_offsets(
                centroid,
                hdul["SCI", ext].data, hdul["DQ", ext].data, hdul["SCI", ext].header, truth, rate, spec.exptime,
                sky_e, det.read_noise, det.per_second, res.psf_fwhm, min_snr=150.0,
            ))
    off = np.concatenate(offs)
    assert len(off) >= 3
    assert np.abs(off).max() < 0.05
