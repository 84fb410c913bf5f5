"""Named scenes: contents, truth, manifest, determinism, speed, sky cells, new visits."""

from __future__ import annotations

import csv
import filecmp
import hashlib
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from mvmdb.simulate import SCENES, SimulationError, add_visit, read_manifest, simulate_scene
from mvmdb.simulate.instruments import tan_project

ALLSKY = Path(__file__).resolve().parents[2] / "mvmdb" / "data" / "allsky_cells.csv"
S, N = 21442, 21954  # sky-cell spacing and size, fine pixels (spec section 2.4)


def sky_cells(ra: float, dec: float) -> set[str]:
    """Sky cells whose padded box holds (ra, dec): the spec's membership rule, written out."""
    out = set()
    with ALLSKY.open() as f:
        rings = list(csv.DictReader(f))
    for r in rings:
        if not float(r["DEC_MIN"]) <= dec <= float(r["DEC_MAX"]):
            continue
        nband = int(r["NBAND"])
        b0 = int(np.rint(ra * nband / 360.0)) % nband
        for band in {(b0 - 1) % nband, b0, (b0 + 1) % nband}:
            east, north = tan_project(ra, dec, band * 360.0 / nband, float(r["DEC"]))
            x0, y0 = 225143.0 - east / 0.04, 225143.0 + north / 0.04  # 0-based PC pixels
            if not (0 <= x0 <= 450287 and 0 <= y0 <= 450287):
                continue
            for x in range(1, 22):
                for y in range(1, 22):
                    if 0 <= x0 - (x - 1) * S <= N and 0 <= y0 - (y - 1) * S <= N:
                        out.add(f"skycell-p{int(r['PROJCELL']) + band:04d}x{x:02d}y{y:02d}")
    return out


def footprint_cells(result) -> set[str]:
    cells = set()
    for path in result.paths:
        with fits.open(path) as hdul:
            for hdu in hdul:
                if hdu.name == "SCI":
                    v = np.array(hdu.header["S_REGION"].split()[2:], float).reshape(-1, 2)
                    for ra, dec in v:
                        cells |= sky_cells(ra, dec)
    return cells


def test_pg1202_contents(pg1202_k8):
    result = pg1202_k8
    m = read_manifest(result.out_dir)
    combos = {(r["instrument"], r["detector"], r["filter"]) for r in m}
    assert combos == {("ACS", "WFC", "F775W"), ("ACS", "WFC", "F850LP"), ("WFC3", "IR", "F105W"),
                      ("WFC3", "IR", "F125W"), ("WFC3", "IR", "F160W"), ("WFC3", "UVIS", "F475W")}
    assert set(m["proposid"]) == {12286, 12903}
    assert {str(v) for v in m["visit"]} >= {"jbl70r"}  # the docs' example visit, jbl70r..
    assert len(m) == 17 and not any(m["defects"]) and not any(m["expected_exclusion"])
    assert set(m["filetype"]) == {"flc", "flt"}
    assert all((m["filetype"] == "flc") == np.isin(m["detector"], ["WFC", "UVIS"]))
    # sky differs from exposure to exposure (something for sky matching to do)
    f775 = m[m["filter"] == "F775W"]
    rate = f775["sky_sci1"] / f775["exptime"]
    assert np.ptp(rate) / np.mean(rate) > 0.1  # same filter, different sky
    assert (m["n_cr"][m["detector"] != "SBC"] > 0).all()
    truth = Table.read(result.truth_path, format="ascii.ecsv")
    assert truth["kind"][0] == "qso" and abs(truth["ra"][0] - 181.1754) < 1e-9
    assert {"star", "galaxy"} <= set(truth["kind"])
    for col in ("flux_acs_wfc_f775w", "flux_acs_wfc_f850lp", "flux_wfc3_ir_f160w", "flux_wfc3_uvis_f475w"):
        assert col in truth.colnames and (truth[col] > 0).all()
        assert str(truth[col].unit) == "electron / s"


def test_pg1202_is_one_sky_cell_per_projection_cell(pg1202_k8):
    cells = footprint_cells(pg1202_k8)
    assert cells == {"skycell-p1889x07y19", "skycell-p1970x15y02"}


def test_other_scenes(all_scenes_k16):
    ra0 = all_scenes_k16["ra0"]
    m = read_manifest(ra0.out_dir)
    for path in ra0.paths:  # every exposure straddles RA = 0
        with fits.open(path) as hdul:
            ras = np.concatenate([np.array(h.header["S_REGION"].split()[2:], float)[0::2]
                                  for h in hdul if h.name == "SCI"])
        assert ras.max() > 359.9 and ras.min() < 0.1
    assert len(footprint_cells(ra0)) == 1

    pole = all_scenes_k16["pole"]
    m = read_manifest(pole.out_dir)
    assert (m["dec_aper"] > 88.0).all()
    assert set(m["detector"]) == {"WFC", "HRC", "UVIS", "IR", "SBC"}
    assert footprint_cells(pole) == {"skycell-p2643x09y14"}
    sbc = m[m["detector"] == "SBC"]
    assert (sbc["bunit"] == "COUNTS").all() and (sbc["n_cr"] == 0).all()

    deep = all_scenes_k16["deep"]
    m = read_manifest(deep.out_dir)
    assert len(m) >= 60
    years = [int(str(d)[:4]) for d in m["date_obs"]]
    assert max(years) - min(years) >= 10
    assert len(set(m["proposid"])) >= 5
    cells = footprint_cells(deep)
    assert len(cells) == 2 and len({c.split("x")[0] for c in cells}) == 2  # one sky cell in each of two PCs


def _digest(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def test_same_seed_same_bytes(tmp_path):
    a = simulate_scene("pg1202", tmp_path / "a", seed=5, downscale=16, defects=("trail",))
    b = simulate_scene("pg1202", tmp_path / "b", seed=5, downscale=16, defects=("trail",))
    assert _digest(a.out_dir) == _digest(b.out_dir)
    c = simulate_scene("pg1202", tmp_path / "c", seed=6, downscale=16, defects=("trail",))
    da, dc = _digest(a.out_dir), _digest(c.out_dir)
    assert da.keys() == dc.keys()  # names do not depend on the seed ...
    assert all(da[k] != dc[k] for k in da if k.endswith(".fits"))  # ... the pixels do


def test_defects_do_not_change_the_clean_files(tmp_path):
    a = simulate_scene("ra0", tmp_path / "a", seed=1, downscale=16)
    b = simulate_scene("ra0", tmp_path / "b", seed=1, downscale=16, defects=("grism", "gsfail"))
    assert len(b.paths) == len(a.paths) + 3
    for p in a.paths:
        assert filecmp.cmp(p, b.out_dir / p.name, shallow=False)


def test_add_visit_stays_inside_the_box_and_is_reproducible(tmp_path):
    runs = []
    for name in ("a", "b"):
        base = simulate_scene("pg1202", tmp_path / name, seed=2, downscale=16)
        before = footprint_cells(base)
        v1 = add_visit(base.out_dir)
        v2 = add_visit(base.out_dir)
        runs.append((base, v1, v2))
        m = read_manifest(base.out_dir)
        assert len(m) == len(base.paths) + len(v1.paths) + len(v2.paths)
        assert m.meta["added_visits"] == 2
        new = m[len(base.paths):]
        assert (new["detector"] == "IR").all() and (new["filter"] == "F160W").all()
        assert new["epoch"].min() > np.max(m["epoch"][: len(base.paths)])
        assert len(set(new["visit"])) == 2 and not set(new["visit"]) & set(m["visit"][: len(base.paths)])
        assert footprint_cells(v1) <= before and footprint_cells(v2) <= before
        # the new footprint lies inside the scene's pixel box on the sky cell
        assert _inside_box(base, [*v1.paths, *v2.paths])
    assert _digest(runs[0][0].out_dir) == _digest(runs[1][0].out_dir)
    assert {p.name for p in runs[0][1].paths} != {p.name for p in runs[0][2].paths}


def _inside_box(base, new_paths) -> bool:
    """Corners of new chips inside the RA/Dec box of the base scene's chips (tangent plane)."""
    def corners(paths):
        pts = []
        for p in paths:
            with fits.open(p) as hdul:
                for h in hdul:
                    if h.name == "SCI":
                        pts.append(np.array(h.header["S_REGION"].split()[2:], float).reshape(-1, 2))
        pts = np.concatenate(pts)
        return np.array(tan_project(pts[:, 0], pts[:, 1], 181.1754, 27.9031)).T

    old, new = corners(base.paths), corners(new_paths)
    return bool((new.min(0) >= old.min(0)).all() and (new.max(0) <= old.max(0)).all())


def test_add_visit_with_a_chosen_detector(tmp_path):
    base = simulate_scene("pole", tmp_path, seed=0, downscale=16)
    res = add_visit(tmp_path, instrument="WFC3", detector="UVIS", filter="F336W", n_exposures=3, seed=9)
    m = read_manifest(tmp_path)
    assert len(res.paths) == 3 and (m["filter"][-3:] == "F336W").all()
    truth = Table.read(base.truth_path, format="ascii.ecsv")
    assert "flux_wfc3_uvis_f336w" in truth.colnames  # a new filter gets its truth column


def test_bulk_header_only(tmp_path):
    res = simulate_scene("bulk", tmp_path, seed=1, header_only=True, n_exposures=120)
    m = read_manifest(tmp_path)
    assert len(m) == len(res.paths) == 120 and m["header_only"].all()
    assert m["dec_aper"].min() < -30 and m["dec_aper"].max() > 30
    assert len(set(m["visit"])) >= 30 and len(set(m["ipppssoot"])) == 120
    assert all(p.stat().st_size < 200_000 for p in res.paths)
    with pytest.raises(SimulationError):
        add_visit(tmp_path)


def test_errors(tmp_path):
    assert "pg1202" in SCENES
    with pytest.raises(SimulationError):
        simulate_scene("nowhere", tmp_path)
    with pytest.raises(SimulationError):
        simulate_scene("pg1202", tmp_path, defects=("lightning",))
    with pytest.raises(SimulationError):
        add_visit(tmp_path / "empty")
