"""A star with a proper motion: rendered where the per-exposure truth says, moving as asked."""

from __future__ import annotations

import math

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS
from click.testing import CliRunner

from mvmdb.cli.simulate import simulate
from mvmdb.simulate import SimulationError, add_visit, detector_model, moving_positions, positions_at, simulate_scene
from mvmdb.simulate.instruments import tan_project

PM = 400.0  # mas/yr: 2" over the scene's 5 years, a few file pixels at downscale 8
HALF = 5


@pytest.fixture(scope="module")
def years_pm(tmp_path_factory):
    return simulate_scene("years", tmp_path_factory.mktemp("years_pm"), seed=2, downscale=8, proper_motion=PM,
                          proper_motion_pa=120.0)


def test_years_scene_spans_calendar_years_and_exposure_classes(years_pm):
    m = years_pm.manifest
    ir = m[(m["detector"] == "IR") & (m["filter"] == "F160W")]
    assert sorted({int(d[:4]) for d in ir["date_obs"]}) == [2011, 2013, 2016]
    assert len({int(d[:4]) for d in m[m["detector"] == "WFC"]["date_obs"]}) == 2
    assert {float(t) for t in ir["exptime"]} == {12.7, 102.9, 252.9}  # short, med, long (mvmdb.layersets)


def test_truth_per_exposure(years_pm):
    truth = Table.read(years_pm.truth_path, format="ascii.ecsv")
    star = truth[truth["id"] == truth.meta["pm_star_id"]][0]
    assert star["pm_epoch"] == min(years_pm.manifest["epoch"])  # reference: the first EXPSTART
    assert math.hypot(star["pm_ra"], star["pm_dec"]) == pytest.approx(PM)
    assert math.degrees(math.atan2(star["pm_ra"], star["pm_dec"])) == pytest.approx(120.0)
    assert truth.meta["pm_isolation_arcsec"] > 3.0
    assert (truth["pm_ra"][truth["id"] != star["id"]] == 0).all()
    pos = moving_positions(truth)
    m = years_pm.manifest
    assert list(pos["ipppssoot"]) == list(m["ipppssoot"])
    assert np.allclose(pos["mjd"], m["epoch"] + m["exptime"] / 2 / 86400, atol=1e-7)
    for row in pos:
        years = (row["mjd"] - star["pm_epoch"]) / 365.25
        east, north = tan_project(row["ra"], row["dec"], star["ra"], star["dec"])
        assert east * 1000 == pytest.approx(star["pm_ra"] * years, abs=1e-3)  # mas
        assert north * 1000 == pytest.approx(star["pm_dec"] * years, abs=1e-3)
        ra, dec = positions_at(truth, row["mjd"])
        i = int(np.flatnonzero(truth["id"] == row["id"])[0])
        assert (ra[i], dec[i]) == pytest.approx((row["ra"], row["dec"]), abs=1e-12)


def test_star_sits_at_its_per_exposure_truth(years_pm, centroid):
    truth = Table.read(years_pm.truth_path, format="ascii.ecsv")
    pos = {r["ipppssoot"]: r for r in moving_positions(truth)}
    star = truth[truth["id"] == truth.meta["pm_star_id"]][0]
    moved = []
    for row in years_pm.manifest:
        p = pos[row["ipppssoot"]]
        det = detector_model(row["instrument"], row["detector"])
        found = 0
        with fits.open(years_pm.out_dir / row["path"]) as hdul:
            for ext in range(1, len(det.chips) + 1):
                sci, dq, hdr = hdul["SCI", ext].data, hdul["DQ", ext].data, hdul["SCI", ext].header
                w = WCS(hdr)
                x, y = w.all_world2pix(p["ra"], p["dec"], 0)
                ny, nx = sci.shape
                if not (HALF + 3 < x < nx - HALF - 4 and HALF + 3 < y < ny - HALF - 4):
                    continue
                fx, fy = centroid(sci, float(x), float(y), HALF, good=(dq & 0x1000) == 0)
                assert math.hypot(fx - x, fy - y) < 0.05, f"{row['path']}: off by {fx - x:.3f}, {fy - y:.3f} px"
                ra, dec = w.all_pix2world(fx, fy, 0)
                moved.append(math.hypot(*tan_project(float(ra), float(dec), star["ra"], star["dec"])))  # arcsec
                found += 1
        assert found == 1, f"{row['path']}: the moving star is on {found} chips"
    span = (max(years_pm.manifest["epoch"]) - min(years_pm.manifest["epoch"])) / 365.25
    assert max(moved) == pytest.approx(PM / 1000 * span, rel=0.05)  # it did move, as far as asked


def test_new_visit_records_the_star(years_pm, tmp_path):
    import shutil

    out = shutil.copytree(years_pm.out_dir, tmp_path / "copy")
    added = add_visit(out)
    pos = moving_positions(Table.read(out / "truth.ecsv", format="ascii.ecsv"))
    assert list(pos["ipppssoot"][-len(added.paths):]) == [p.name[:9] for p in added.paths]


def test_positions_without_proper_motion_are_the_columns():
    t = Table({"ra": [1.0, 2.0], "dec": [3.0, 4.0]})
    ra, dec = positions_at(t, 60000.0)
    assert ra.tolist() == [1.0, 2.0] and dec.tolist() == [3.0, 4.0]
    assert len(moving_positions(t)) == 0


def test_proper_motion_option(tmp_path):
    with pytest.raises(SimulationError):
        simulate_scene("bulk", tmp_path / "b", n_exposures=2, header_only=True, proper_motion=10.0)
    runner = CliRunner()
    res = runner.invoke(simulate, ["--scene", "years", "--out", str(tmp_path / "y"), "--downscale", "32",
                                   "--header-only", "--proper-motion", "25", "--no-progress"])
    assert res.exit_code == 0, res.output
    truth = Table.read(tmp_path / "y" / "truth.ecsv", format="ascii.ecsv")
    assert math.hypot(*[float(truth[c][-1]) for c in ("pm_ra", "pm_dec")]) == pytest.approx(25.0)
    res = runner.invoke(simulate, ["--out", str(tmp_path / "y"), "--new-visit", "--proper-motion", "3"])
    assert res.exit_code != 0 and "--proper-motion" in res.output
