"""Sky matching: injected per-exposure offsets are recovered from the overlaps."""

from __future__ import annotations

import numpy as np
import pytest
from test_pixmap import acs_wfc_chip_wcs, skycell_like_wcs

from mvmdb.process.drizzling import DrizzleInput
from mvmdb.process.pixmap import PixmapModel
from mvmdb.process.skymatch import clipped_median, skymatch

CHIP = (512, 1024)
EXPTIME = 500.0
SKY = 0.3  # e-/s per input pixel, common to all exposures
OFFSETS = [0.12, 0.0, 0.25, 0.40]  # injected extra sky per exposure, e-/s per input pixel
POINTINGS = [(0.0, 0.0, 5.0), (0.0015, 0.0008, 5.0), (-0.001, 0.0012, 25.0), (0.0005, -0.0009, -15.0)]


def _exposure(out_wcs, stars_world, k, rng, extra_sky=None, pointing=None, name=None, units="electrons"):
    dra, ddec, rot = pointing or POINTINGS[k]
    w = acs_wfc_chip_wcs(ra=150.0 + dra, dec=2.2 + ddec, shape=CHIP, rotation_deg=rot)
    pm = PixmapModel(w, out_wcs, CHIP).evaluate()
    x, y = pm[..., 0], pm[..., 1]
    # extended emission (a nebula) covering part of the field, fixed on the sky
    rate = SKY + 0.6 * np.exp(-((x - 900.0) ** 2 + (y - 1000.0) ** 2) / (2 * 250.0**2))
    rate += OFFSETS[k] if extra_sky is None else extra_sky
    sx, sy = w.all_world2pix(stars_world[0], stars_world[1], 0)
    yy, xx = np.mgrid[-8:9, -8:9]
    for x0, y0, f in zip(sx, sy, stars_world[2]):
        xi, yi = int(round(x0)), int(round(y0))
        if 8 <= xi < CHIP[1] - 8 and 8 <= yi < CHIP[0] - 8:
            rate[yi - 8:yi + 9, xi - 8:xi + 9] += f / (2 * np.pi * 2.0) * np.exp(
                -((xx + xi - x0) ** 2 + (yy + yi - y0) ** 2) / 4.0)
    counts = rng.normal(rate * EXPTIME, np.sqrt(rate * EXPTIME + 25.0))
    dq = np.zeros(CHIP, np.uint16)
    cr = rng.random(CHIP) < 0.003
    counts[cr] += rng.uniform(500.0, 5000.0, cr.sum())
    dq[cr] = 4096  # cosmic rays, flagged (not in bits 80)
    hot = rng.random(CHIP) < 0.001
    counts[hot] = 1e6
    dq[hot] = 16 | 4096
    sci = counts.astype(np.float32)
    if units == "electrons/s":
        sci = (counts / EXPTIME).astype(np.float32)
    return DrizzleInput(sci=sci, exptime=EXPTIME, dq=dq, in_wcs=w, units=units, name=name or f"e{k}")


@pytest.fixture(scope="module")
def layer():
    out_wcs = skycell_like_wcs(shape=(2200, 2200))
    rng = np.random.default_rng(5)
    sxy = rng.uniform(0, 2200, (150, 2))
    ra, dec = out_wcs.all_pix2world(sxy[:, 0], sxy[:, 1], 0)
    stars = (ra, dec, rng.lognormal(3.0, 1.0, 150))
    inputs = [_exposure(out_wcs, stars, k, rng) for k in range(4)]
    return out_wcs, inputs, stars


def test_match_recovers_offsets_within_one_percent(layer):
    out_wcs, inputs, _ = layer
    res = skymatch(inputs, bits=80, out_wcs=out_wcs, method="match", subsample=2)
    rates = np.array(res.sky) / EXPTIME  # inputs are in electrons
    assert rates[1] == 0.0  # the lowest background is kept (archive 'match')
    for k, off in enumerate(OFFSETS):
        if off > 0:
            assert abs(rates[k] - off) <= 0.01 * off, (k, rates[k], off)
    assert len(res.pairs) == 6 and all(p.used for p in res.pairs)
    assert {e.group for e in res.exposures} == {0}
    assert "e0 - e1" in res.summary()


def test_match_beats_local_sky_and_globalmin(layer):
    out_wcs, inputs, _ = layer
    match = np.array(skymatch(inputs, bits=80, out_wcs=out_wcs, method="match", subsample=2).sky) / EXPTIME
    local_res = skymatch(inputs, bits=80, out_wcs=out_wcs, method="local", subsample=2)
    local = np.array(local_res.sky) / EXPTIME
    inj = np.array(OFFSETS)
    err_match = np.abs((match - match[1]) - (inj - inj[1])).max()
    err_local = np.abs((local - local[1]) - (inj - inj[1])).max()
    # the nebula covers the exposures differently, so per-exposure levels are biased
    assert err_match < 0.01 * inj.max() < err_local
    gm = skymatch(inputs, bits=80, out_wcs=out_wcs, method="globalmin+match", subsample=2)
    gm_rates = np.array(gm.sky) / EXPTIME
    np.testing.assert_allclose(gm_rates - gm_rates[1], match - match[1], atol=1e-12)
    remaining = np.array([e.local_rate for e in gm.exposures]) - gm_rates
    assert remaining.min() == pytest.approx(0.0, abs=1e-12)


def test_chips_of_one_exposure_share_sky_and_units(layer):
    out_wcs, inputs, stars = layer
    rng = np.random.default_rng(9)
    # exposure e2 as two "chips": the second in e-/s and a different exptime units path
    chip_b = _exposure(out_wcs, stars, 2, rng, pointing=(-0.001, 0.0012 - 0.0035, 25.0), name="e2b",
                       units="electrons/s")
    chip_b.exposure = "e2"
    inputs[2].exposure = "e2"
    try:
        res = skymatch(list(inputs) + [chip_b], bits=80, out_wcs=out_wcs, method="match", subsample=2)
    finally:
        inputs[2].exposure = None
    assert [e.exposure for e in res.exposures] == ["e0", "e1", "e2", "e3"]
    assert res.exposures[2].chips == ["e2", "e2b"]
    assert res.sky[4] == pytest.approx(res.sky[2] / EXPTIME)  # same rate, e-/s units
    assert abs(res.sky[2] / EXPTIME - OFFSETS[2]) <= 0.01 * OFFSETS[2]


def test_isolated_exposure_and_masking(layer):
    out_wcs, inputs, stars = layer
    rng = np.random.default_rng(3)
    far = _exposure(out_wcs, stars, 0, rng, extra_sky=0.5, pointing=(0.03, 0.03, 0.0), name="far")
    res = skymatch([inputs[0], inputs[1], far], bits=80, out_wcs=out_wcs, method="match", subsample=2)
    by = {e.exposure: e for e in res.exposures}
    assert by["far"].group != by["e0"].group
    assert res.sky[2] == 0.0  # nothing to match against
    # the robust local level ignores stars, CRs and hot pixels
    assert by["far"].local_rate == pytest.approx(SKY + 0.5, abs=0.01)


def test_clipped_median():
    rng = np.random.default_rng(0)
    v = np.concatenate([rng.normal(10.0, 1.0, 10000), rng.uniform(50, 1000, 500), [np.nan, np.inf]])
    med, sig, keep = clipped_median(v, 3.0)
    assert med == pytest.approx(10.0, abs=0.05) and sig == pytest.approx(1.0, rel=0.05)
    assert not keep[-3:].any()
