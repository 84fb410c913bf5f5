"""Hard cases for trail detectors: spikes, bleeds, CTE tails, satellites, cosmic rays; defect values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from astropy.io import fits

from mvmdb.simulate import ExposureSpec, SimulationError, make_truth, read_manifest, simulate_scene, write_exposure
from mvmdb.simulate import render
from mvmdb.simulate.scene import HARD_CASES
from mvmdb.simulate.truth import add_flux_columns
from mvmdb.simulate.writer import render_exposure, wcs_error_offset_mas

CENTRE = (33.3, 44.4)


def _spec(**kw):
    base = dict(instrument="ACS", detector="WFC", filter="F814W", ra=CENTRE[0], dec=CENTRE[1], orientat=10.0,
                exptime=500.0, downscale=16, seed=61, ipppssoot="jart01a1q")
    base.update(kw)
    return ExposureSpec(**base)


def test_spikes_run_along_four_arms_and_carry_their_share():
    img = np.zeros((201, 201))
    psf = render.PSF(2.0)
    n = render.add_spikes(img, np.array([100.0, 50.0]), np.array([100.0, 50.0]), np.array([4e6, 10.0]), psf,
                          30.0, 1e6, 80.0)
    assert n == 1  # only the bright star
    assert img.sum() == pytest.approx(4e6 * render.SPIKE_FRACTION, rel=1e-6)
    t, t_off = math.radians(30.0 + 90.0), math.radians(30.0 + 135.0)
    on = img[int(round(100 + 30 * math.sin(t))), int(round(100 + 30 * math.cos(t)))]
    off = img[int(round(100 + 30 * math.sin(t_off))), int(round(100 + 30 * math.cos(t_off)))]
    assert on > 1000 * max(off, 1e-12)


def test_bleed_fills_the_columns_of_saturated_stars_only():
    level = np.zeros((100, 60))
    level[48:52, 20:23] = 10.0  # 12 pixels, each 9 full wells too many
    mask = render.bleed_mask(level, 1.0)
    assert mask[48:52, 20:23].all()
    assert mask[:, 20].sum() == 4 + 36 and not mask[:, 19].any() and not mask[:, 23].any()
    assert mask[30:48, 20].all() and mask[52:70, 20].all()  # half up, half down


def test_cte_tails_are_one_sided_grow_with_transfers_and_keep_the_flux():
    sig = np.zeros((200, 3))
    sig[[10, 150], 1] = 1000.0
    out = render.cte_tails(sig, True, 0.3, 2.0)
    assert out.sum() == pytest.approx(sig.sum(), rel=1e-9)  # the tails end on the chip
    assert out[:10, 1].sum() == 0.0 and out[11:20, 1].sum() > 0  # tail only behind (+y)
    assert 1000.0 - out[150, 1] > 10 * (1000.0 - out[10, 1])  # far rows lose more
    flipped = render.cte_tails(sig, False, 0.3, 2.0)
    assert flipped[151:, 1].sum() == 0.0 and flipped[140:150, 1].sum() > 0


def test_satellite_streak_crosses_the_chip():
    img = np.zeros((300, 400))
    x0, y0, ang = render.add_satellite(img, np.random.default_rng(3), render.PSF(1.5), 1000.0)
    d = np.arange(-100, 101, 20)
    xs = np.rint(x0 + d * math.cos(math.radians(ang))).astype(int)
    ys = np.rint(y0 + d * math.sin(math.radians(ang))).astype(int)
    ok = (xs >= 0) & (xs < 400) & (ys >= 0) & (ys < 300)
    assert (img[ys[ok], xs[ok]] > 100.0).all()


def test_artifacts_are_validated_and_render_exposure_matches_the_file(tmp_path):
    with pytest.raises(ValueError, match="unknown artifacts"):
        _spec(artifacts=("glitter",))
    truth = make_truth(CENTRE, 150.0, 300, 5, 62)
    spec = _spec(artifacts=("spikes", "bleed", "cte", "satellite"))
    add_flux_columns(truth, [(spec.model, spec.filter_info)])
    res = write_exposure(spec, truth, tmp_path)
    chips = render_exposure(spec, truth)
    with fits.open(res.path) as hdul:
        for c in chips:
            np.testing.assert_array_equal(hdul["SCI", c.extver].data, c.sci)
            np.testing.assert_array_equal(hdul["DQ", c.extver].data, c.dq)


def test_cr_factor_multiplies_the_cosmic_rays(tmp_path):
    truth = make_truth(CENTRE, 150.0, 10, 0, 63)
    a = write_exposure(_spec(), truth, tmp_path / "a")
    b = write_exposure(_spec(cr_factor=4.0, cr_flag=0), truth, tmp_path / "b")
    assert b.n_cr > 3 * a.n_cr > 0
    with fits.open(b.path) as hdul:
        assert not (hdul["DQ", 1].data & 4096).any()  # left unflagged


def test_wcs_error_offset_truth_is_the_pixel_error_on_the_sky():
    east, north = wcs_error_offset_mas(_spec(downscale=1, wcs_error=(4.0, 0.0)))
    assert math.hypot(east, north) == pytest.approx(4 * 50.0, rel=0.05)  # ACS/WFC ~ 0.05"/px
    assert wcs_error_offset_mas(_spec()) == (0.0, 0.0)


def test_defect_values_and_hard_cases(tmp_path):
    res = simulate_scene("pg1202", tmp_path, seed=64, downscale=16, header_only=True,
                         defects=("trail:1.5:33", "wcs_error:4:90", "hard_cases"))
    m = read_manifest(res.out_dir)
    trail = m[m["defects"] == "trail"]
    assert list(trail["trail_arcsec"]) == [1.5]
    wcs = m[np.char.startswith(m["defects"].astype(str), "wcs_error")]
    assert len(wcs) == 2 and np.allclose(wcs["wcs_dx"], 0.0, atol=1e-6) and np.allclose(wcs["wcs_dy"], 4.0)
    hard = m[np.char.startswith(m["defects"].astype(str), "hard_case:")]
    assert sorted(hard["defects"]) == sorted(f"hard_case:{k}" for k in HARD_CASES)
    assert set(hard["expected_exclusion"]) == {""} and (hard["trail_arcsec"] == 0).all()
    with pytest.raises(SimulationError, match="LEN"):
        simulate_scene("pg1202", tmp_path / "bad", seed=64, downscale=16, header_only=True, defects=("trail:long",))
