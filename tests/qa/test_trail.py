"""Trail detection: trailed exposures are flagged, none of the hard cases is (own seeds 31-49)."""

from __future__ import annotations

import numpy as np
import pytest
from qa_scenes import render, truth_table

from mvmdb.qa.trail import TrailResult, detect_trail


def check(chips):
    return detect_trail([(c.sci, c.dq) for c in chips], chips[0].pixel_scale)


@pytest.mark.parametrize(
    ("instrument", "detector", "filt", "length", "pa", "seed"),
    [
        ("ACS", "WFC", "F814W", 1.0, 33.0, 32),
        ("WFC3", "UVIS", "F606W", 2.5, 101.0, 33),
        ("WFC3", "IR", "F160W", 1.2, 160.0, 34),
    ],
)
def test_trailed_exposures_are_flagged(ordinary_truth, instrument, detector, filt, length, pa, seed):
    _, chips = render(ordinary_truth, seed=seed, instrument=instrument, detector=detector, filt=filt,
                      trail=(length, pa))
    res = check(chips)
    assert res.flagged, res.reason
    assert res.reason.startswith("trailed") and res.score >= 0.5 and res.n_aligned >= 5


def test_clean_exposure_is_not_flagged(ordinary_truth):
    _, chips = render(ordinary_truth, seed=35)
    res = check(chips)
    assert not res.flagged and res.reason.startswith("ok") and res.score < 0.2
    assert res.n_objects > 30


@pytest.mark.parametrize(
    ("case", "kw", "truth_kw"),
    [
        ("spikes_bleed", dict(artifacts=("spikes", "bleed")), dict(bright=8)),
        ("cte", dict(artifacts=("cte",)), {}),
        ("satellite", dict(artifacts=("satellite",)), {}),
        ("cosmic_rays", dict(cr_factor=4.0, cr_flag=0), {}),
        ("galaxies", {}, dict(n_stars=100, n_galaxies=80, r_eff_range=(0.5, 4.0))),
        ("dense", {}, dict(n_stars=8000, radius=130.0)),
    ],
)
def test_hard_cases_are_not_flagged(case, kw, truth_kw):
    seed = 40 + ["spikes_bleed", "cte", "satellite", "cosmic_rays", "galaxies", "dense"].index(case)
    truth = truth_table(seed, **truth_kw)
    _, chips = render(truth, seed=seed, **kw)
    if case == "spikes_bleed":
        assert any((c.dq & 256).any() for c in chips)  # the case really has saturated stars
    res = check(chips)
    assert not res.flagged, f"{case}: {res.reason}"


def test_dq_is_optional_and_empty_sky_is_unchecked():
    blank = np.random.default_rng(1).normal(100.0, 5.0, (400, 400)).astype(np.float32)
    res = detect_trail([(blank, None)], 0.2)
    assert not res.flagged and res.reason.startswith("unchecked") and res.score == 0.0


def test_result_row_is_storable():
    row = TrailResult(True, 0.9, "trailed: x", 10, 9, 45.0).row("jabc01xyq")
    assert row == {"ipppssoot": "jabc01xyq", "check": "trail", "flagged": True, "value": 0.9, "reason": "trailed: x"}


def test_check_exposure_shares_one_pass(ordinary_truth):
    from mvmdb.qa.alignment import exposure_sources
    from mvmdb.qa.exposure import check_exposure

    _, chips = render(ordinary_truth, seed=36, trail=(1.5, 70.0))
    pairs = [(c.sci, c.dq) for c in chips]
    both = check_exposure(pairs, chips[0].pixel_scale)
    assert both.trail == detect_trail(pairs, chips[0].pixel_scale) and both.trail.flagged
    for (x1, y1), (x2, y2) in zip(both.sources, exposure_sources(pairs, chips[0].pixel_scale)):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
