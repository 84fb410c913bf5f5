"""``mvm simulate`` through click's test runner."""

from __future__ import annotations

from click.testing import CliRunner

from mvmdb.cli.simulate import simulate
from mvmdb.simulate import read_manifest


def test_simulate_command(tmp_path):
    runner = CliRunner()
    out = tmp_path / "pg"
    res = runner.invoke(simulate, ["--scene", "pg1202", "--out", str(out), "--downscale", "16", "--seed", "3",
                                   "--defect", "wcs_error:4", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "wrote 19 file(s)" in res.output and "defect wcs_error:4px" in res.output
    m = read_manifest(out)
    assert m.meta["seed"] == 3 and m.meta["downscale"] == 16 and len(m) == 19

    res = runner.invoke(simulate, ["--out", str(out), "--new-visit", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "added 2 file(s)" in res.output and "WFC3 IR   F160W" in res.output
    res = runner.invoke(simulate, ["--scene", "pg1202", "--out", str(out), "--new-visit", "--detector", "WFC3/UVIS",
                                   "--filter", "F606W"])
    assert res.exit_code == 0, res.output
    assert len(read_manifest(out)) == 23

    res = runner.invoke(simulate, ["--scene", "ra0", "--out", str(out), "--new-visit"])
    assert res.exit_code != 0 and "holds scene 'pg1202'" in res.output


def test_simulate_command_errors(tmp_path):
    runner = CliRunner()
    assert "pg1202" in runner.invoke(simulate, ["--list"]).output
    res = runner.invoke(simulate, ["--scene", "pg1202", "--out", str(tmp_path), "--defect", "meteor"])
    assert res.exit_code == 1 and "unknown defect" in res.output
    res = runner.invoke(simulate, ["--scene", "atlantis", "--out", str(tmp_path)])
    assert res.exit_code == 2
    res = runner.invoke(simulate, ["--out", str(tmp_path / "nothing"), "--new-visit"])
    assert res.exit_code == 1 and "not a scene directory" in res.output
    res = runner.invoke(simulate, ["--scene", "pg1202"])
    assert res.exit_code != 0 and "--out" in res.output


def test_bulk_header_only_command(tmp_path):
    res = CliRunner().invoke(simulate, ["--scene", "bulk", "--count", "25", "--header-only", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert len(read_manifest(tmp_path)) == 25
