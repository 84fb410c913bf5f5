"""``mvm skycell``: the command's forms, JSON contract and error handling (no database needed)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from mvmdb.cli.skycell import skycell
from mvmdb.locate import (
    cells_for_positions,
    describe_position,
    describe_skycell,
    footprint_cells,
    parse_angle,
    read_positions_csv,
)


def run(*args):
    return CliRunner().invoke(skycell, [str(a) for a in args])


def ok(*args):
    res = run(*args)
    assert res.exit_code == 0, (res.output, res.exception)
    return res


def fails(*args, code=None):
    res = run(*args)
    assert res.exit_code != 0
    if code is not None:
        assert res.exit_code == code
    assert res.stdout == ""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    return lines[0]


# --------------------------------------------------------------------------- RA DEC


def test_position_json():
    out = json.loads(ok(181.1754, 27.9031, "--json").stdout)
    assert out["ra"] == 181.1754 and out["dec"] == 27.9031
    assert out["cells"] == ["skycell-p1889x07y19", "skycell-p1970x15y02"]
    first = out["skycells"][0]
    assert first["crpix"] == [96492.0, -160812.0] and first["naxis"] == 21954
    assert 0 <= first["pixel"][0] <= 21954


def test_position_negative_dec_and_coarse():
    out = json.loads(ok(137.86, -64.88, "--scale", "coarse", "--json").stdout)
    assert out["cells"] == ["skycell-p0121x12y16"]
    assert out["skycells"][0]["naxis"] == 7318


def test_position_sexagesimal_and_human_output():
    res = ok("12:04:42.1", "+27:54:11")
    assert "skycell-p1889x07y19" in res.stdout and "skycell-p1970x15y02" in res.stdout
    assert parse_angle("12:04:42.1", is_ra=True) == pytest.approx(181.17541667)
    assert parse_angle("-64d52m48s", is_ra=False) == pytest.approx(-64.88)
    assert parse_angle("-1", is_ra=True) == 359.0


@pytest.mark.parametrize("args", [("abc", "1"), ("10", "95"), ("10", "nan"), ("inf", "0")])
def test_bad_positions(args):
    msg = fails(*args)
    assert "RA" in msg or "Dec" in msg


# --------------------------------------------------------------------------- NAME


def test_name_json_fine_and_coarse():
    out = json.loads(ok("skycell-p1889x07y19", "--json").stdout)
    assert out["name"] == "skycell-p1889x07y19" and out["scellid"] == "p1889x07y19"
    assert out["crval"] == [180.0, 26.0] and out["crpix"] == [96492.0, -160812.0]
    assert out["naxis"] == [21954, 21954]
    assert out["cd"] == [[-1.1111111111111112e-05, 0.0], [0.0, 1.1111111111111112e-05]]
    assert out["ctype"] == ["RA---TAN", "DEC--TAN"]
    assert len(out["corners"]) == 5 and out["corners"][0] == out["corners"][-1]
    out = json.loads(ok("skycell-p1889x07y19", "--scale", "coarse", "--json").stdout)
    assert out["crpix"] == [32164.000000000004, -53604.00000000001] and out["naxis"] == [7318, 7318]
    assert out["cd"][0][0] == -3.333333333333333e-05


def test_name_human_output():
    res = ok("skycell-p2643x06y10")
    assert "CRPIX   117934.0, 32166.0" in res.stdout
    assert "CRVAL   0.0, 89.999999999997" in res.stdout


@pytest.mark.parametrize("name", ["skycell-p2644x01y01", "skycell-p1889x22y01", "skycell-p1889x7y19", "p1889"])
def test_bad_names(name):
    msg = fails(name)
    assert name in msg


# --------------------------------------------------------------------------- --positions


def test_positions_csv_json(tmp_path):
    f = tmp_path / "pos.csv"
    f.write_text("ra,dec\n181.1754,27.9031\n137.86,-64.88\n\n0,90\n")
    lines = ok("--positions", f, "--json").stdout.strip().splitlines()
    rows = [json.loads(line) for line in lines]
    assert [sorted(r) for r in rows] == [["cells", "dec", "ra"]] * 3
    assert rows[0] == {"ra": 181.1754, "dec": 27.9031, "cells": ["skycell-p1889x07y19", "skycell-p1970x15y02"]}
    assert rows[1]["cells"] == ["skycell-p0121x12y16"]
    assert rows[2]["cells"] == ["skycell-p2643x11y11"]
    human = ok("--positions", f).stdout
    assert "skycell-p0121x12y16" in human


def test_positions_csv_variants(tmp_path):
    f = tmp_path / "swapped.csv"
    f.write_text("id,dec,ra\n1,27.9031,181.1754\n")
    ra, dec = read_positions_csv(f)
    assert (ra.tolist(), dec.tolist()) == ([181.1754], [27.9031])
    g = tmp_path / "noheader.csv"
    g.write_text("137.86,-64.88\n")
    assert cells_for_positions(*read_positions_csv(g)) == [["skycell-p0121x12y16"]]
    e = tmp_path / "empty.csv"
    e.write_text("ra,dec\n")
    assert ok("--positions", e, "--json").stdout == ""


@pytest.mark.parametrize("text,match", [
    ("x,y\n1,2\n", "'ra' and 'dec'"),
    ("ra,dec\n1,abc\n", "malformed"),
    ("ra,dec\n1,2\n3\n", "malformed"),
    ("ra,dec\n1,95\n", "invalid position"),
])
def test_bad_positions_files(tmp_path, text, match):
    f = tmp_path / "bad.csv"
    f.write_text(text)
    assert match in fails("--positions", f, "--json")


def test_missing_positions_file(tmp_path):
    assert "cannot read" in fails("--positions", tmp_path / "none.csv")


# --------------------------------------------------------------------------- --footprint


def test_footprint_json(hst_dir):
    a = hst_dir / "sample_ipppssoot_flc.fits"
    b = hst_dir / "sample_flc_header.fits"
    rows = [json.loads(line) for line in ok("--footprint", a, b, "--json").stdout.strip().splitlines()]
    assert [sorted(r) for r in rows] == [["cells", "path"]] * 2
    assert rows[0]["path"] == str(a) and "skycell-p0121x12y16" in rows[0]["cells"]
    assert rows[1]["path"] == str(b) and rows[1]["cells"] == sorted(rows[1]["cells"]) and rows[1]["cells"]
    human = ok("--footprint", a).stdout
    assert "skycell-p0121x12y16" in human and "2 chips" in human


def test_footprint_function(hst_dir):
    (r,) = footprint_cells([hst_dir / "sample_ipppssoot_flt.fits"])
    assert r["cells"] == ["skycell-p0121x12y16"] and r["chips"] == 1


def test_footprint_errors(hst_dir, tmp_path):
    assert "no celestial WCS" in fails("--footprint", hst_dir / "test0.fits", "--json")
    assert "no such file" in fails("--footprint", tmp_path / "nope.fits")
    fails("--footprint", code=2)


# --------------------------------------------------------------------------- usage


@pytest.mark.parametrize("args", [(), ("1", "2", "3"), ("--positions", "x.csv", "1"), ("--bogus", "1", "2")])
def test_usage_errors(args):
    fails(*args, code=2)


def test_help():
    res = ok("--help")
    assert "--positions" in res.stdout and "--footprint" in res.stdout


def test_plain_functions():
    info = describe_skycell("skycell-p0000x11y11")
    assert info["crpix"] == [10724.0, 10724.0] and info["crval"] == [0.0, -89.999999999997]
    pos = describe_position(0.0, -90.0)
    assert pos["cells"] == ["skycell-p0000x11y11"]
