"""Alignment of visits: offsets recovered from source positions (own seeds 51-59)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from qa_scenes import CENTRE, render, truth_table

from mvmdb.qa.alignment import VisitOffset, exposure_sources, measure_alignment, pair_offset
from mvmdb.simulate.instruments import offset_position, tan_deproject
from mvmdb.simulate.writer import wcs_error_offset_mas


def _catalogs(shifts_mas, n=300, jitter_mas=5.0, seed=51, ra0=0.01, dec0=-30.0):
    """Visit catalogs of the same stars, each shifted by (east, north) mas and jittered."""
    rng = np.random.default_rng(seed)
    east, north = rng.uniform(-100, 100, n), rng.uniform(-100, 100, n)
    out = {}
    for name, (de, dn) in shifts_mas.items():
        keep = rng.random(n) < 0.8  # each visit sees most, not all, of the stars
        e = east[keep] + (de + rng.normal(0, jitter_mas, keep.sum())) / 1000.0
        no = north[keep] + (dn + rng.normal(0, jitter_mas, keep.sum())) / 1000.0
        out[name] = tan_deproject(e, no, ra0, dec0)
    return out


def test_misaligned_visit_is_measured_against_the_majority():
    res = measure_alignment(_catalogs({"a": (0, 0), "b": (0, 0), "c": (120.0, -40.0), "d": (0, 0)}))
    c = res["c"]
    assert c.flagged and c.reason.startswith("misaligned")
    assert c.east_mas == pytest.approx(120.0, abs=2.0) and c.north_mas == pytest.approx(-40.0, abs=2.0)
    for v in "abd":
        assert not res[v].flagged and res[v].offset_mas < 2.0
    assert c.error_mas < 2.0 and c.n_matches > 100


def test_threshold_and_two_visits_share_the_offset():
    res = measure_alignment(_catalogs({"a": (0, 0), "b": (30.0, 0.0)}), threshold_mas=20.0)
    # with two visits neither is the reference: each gets half, below 20 mas
    assert res["a"].east_mas == pytest.approx(-15.0, abs=2.0) and res["b"].east_mas == pytest.approx(15.0, abs=2.0)
    assert not res["a"].flagged and not res["b"].flagged
    assert measure_alignment(_catalogs({"a": (0, 0), "b": (30.0, 0.0)}), threshold_mas=10.0)["b"].flagged


def test_a_visit_without_overlap_is_unmeasured():
    cats = _catalogs({"a": (0, 0), "b": (0, 0), "c": (0, 0)})
    cats["far"] = tan_deproject(np.linspace(3000, 3100, 50), np.linspace(0, 100, 50), 0.01, -30.0)
    res = measure_alignment(cats)
    assert math.isnan(res["far"].offset_mas) and not res["far"].flagged
    assert res["far"].reason.startswith("unmeasured")
    assert not any(res[v].flagged for v in "abc")


def test_pair_offset_needs_matches():
    a = np.zeros((3, 2))
    assert pair_offset(a, a) is None


def test_wcs_error_offset_is_recovered_from_pixels():
    """Three visits rendered at downscale 4, one with a header WCS error of 4 native px."""
    truth = truth_table(52, n_stars=600)
    cats, truths = {}, {}
    for v, npx in enumerate((0.0, 4.0, 0.0)):
        ang = math.radians(70.0)
        err = (npx / 4 * math.cos(ang), npx / 4 * math.sin(ang))
        point = offset_position(CENTRE[0], CENTRE[1], 6.0 * v, -4.0 * v)
        spec, chips = render(truth, seed=53 + v, root=f"jtal{v}0a1q", ra_dec=point, orientat=20.0 + 40 * v,
                             wcs_error=err)
        ras, decs = [], []
        for c, (x, y) in zip(chips, exposure_sources([(c.sci, c.dq) for c in chips], chips[0].pixel_scale)):
            r, d = c.header_wcs.all_pix2world(x, y, 0)
            ras.append(r)
            decs.append(d)
        cats[f"v{v}"] = (np.concatenate(ras), np.concatenate(decs))
        truths[f"v{v}"] = wcs_error_offset_mas(spec)
    assert math.hypot(*truths["v1"]) == pytest.approx(200.0, rel=0.05)  # 4 ACS/WFC px ~ 0.2" (skewed pixels)
    res = measure_alignment(cats)
    te, tn = truths["v1"]
    assert res["v1"].flagged
    assert math.hypot(res["v1"].east_mas - te, res["v1"].north_mas - tn) < max(0.1 * math.hypot(te, tn), 5.0)
    assert not res["v0"].flagged and not res["v2"].flagged


def test_row_is_storable():
    row = VisitOffset("v1", 3.0, 4.0, 5.0, 0.1, 9, False, "aligned: 5 mas").row("jabc01xyq")
    assert row == {"ipppssoot": "jabc01xyq", "check": "alignment", "flagged": False, "value": 5.0,
                   "reason": "aligned: 5 mas"}


def test_read_exposure_pixels_reads_what_the_simulator_wrote(tmp_path):
    from mvmdb.fitsio.pixels import PixelsError, read_exposure_pixels
    from mvmdb.simulate import ExposureSpec, write_exposure

    truth = truth_table(57, n_stars=50)
    spec = ExposureSpec("ACS", "WFC", "F814W", CENTRE[0], CENTRE[1], downscale=16, seed=57, ipppssoot="jtpx01a1q")
    _, chips = render(truth, seed=57, downscale=16, root="jtpx01a1q", orientat=0.0)
    path = write_exposure(spec, truth, tmp_path).path
    read = read_exposure_pixels(path)
    assert [c.extver for c in read] == [1, 2]
    for r, c in zip(read, chips):
        np.testing.assert_array_equal(r.sci, c.sci)
        np.testing.assert_array_equal(r.dq, c.dq)
        assert r.pixel_scale == pytest.approx(c.pixel_scale, rel=1e-6)  # area-equivalent scale of the chip
        assert r.wcsname.endswith("FIT_SVM_GAIAeDR3")
    header_only = write_exposure(ExposureSpec("ACS", "WFC", "F814W", 1.0, 2.0, header_only=True), None, tmp_path)
    with pytest.raises(PixelsError, match="no pixels"):
        read_exposure_pixels(header_only.path)
