"""``mvm plan``: a thin wrapper over :func:`mvmdb.plan.plan` (JSON lines, summary, dry run)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from mvmdb.cli.main import cli
from mvmdb.poller import read_poller
from plan_data import Catalog

P1889 = "skycell-p1889x07y19"
P1970 = "skycell-p1970x15y02"


@pytest.fixture
def cat(engine):
    c = Catalog(engine)
    old = c.exposure("jbl70rtvq", "ACS", "WFC", "f775w", proposid=12286, exptime=486.0, svm=True)
    c.member(old, P1889, P1970, status="OLD")
    new = c.exposure("ib4606cpq", "WFC3", "IR", "f160w", proposid=11665, exptime=699.232483, filetype="flt")
    c.member(new, P1889)
    return c


def mvm(db_url, *args: str):
    url = db_url.render_as_string(hide_password=False)
    return CliRunner().invoke(cli, ["--db", url, "plan", *args], catch_exceptions=False)


def test_json_lines_one_object_per_poller(db_url, cat, tmp_path):
    out = tmp_path / "pollers"
    result = mvm(db_url, "--out", str(out), "--json")
    assert result.exit_code == 0, result.output
    (record,) = [json.loads(line) for line in result.output.splitlines()]
    assert record["skycell"] == P1889
    assert record["poller"] == str((out / f"{P1889}_mvm_poller.txt").resolve())
    assert record["layers"] == [f"hst_{P1889}_wfc3_ir_f160w_all", f"hst_{P1889}_wfc3_ir_f160w_coarse-all"]
    assert (record["new"], record["old"]) == (1, 0)
    assert record["job_action"] == "created"
    (row,) = read_poller(record["poller"])
    assert (row.filename, row.exptime, row.status) == ("ib4606cpq_flt.fits", 699.232483, "NEW")

    again = mvm(db_url, "--out", str(out), "--json")
    assert json.loads(again.output)["job_action"] == "unchanged"
    assert len(cat.jobs()) == 1


def test_summary_table_and_default_out(db_url, cat, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = mvm(db_url)
    assert result.exit_code == 0, result.output
    assert P1889 in result.output
    assert "1 NEW and 0 OLD rows; jobs 1 created" in result.output
    assert "wrote 1 poller file(s)" in result.output
    assert (tmp_path / "pollers" / f"{P1889}_mvm_poller.txt").is_file()


def test_dry_run_writes_and_queues_nothing(db_url, cat, tmp_path):
    result = mvm(db_url, "--out", str(tmp_path / "p"), "--dry-run", "--skycell", "p1889x07y19")
    assert result.exit_code == 0, result.output
    assert "would write 1 poller file(s)" in result.output
    assert not (tmp_path / "p").exists()
    assert cat.jobs() == []


def test_nothing_to_plan(db_url, cat, tmp_path):
    cat.mark_old()
    result = mvm(db_url, "--out", str(tmp_path))
    assert result.exit_code == 0
    assert result.output.strip() == "nothing to plan: no layer has NEW members"
    assert mvm(db_url, "--out", str(tmp_path), "--json").output == ""


def test_bad_skycell_is_one_line_error(db_url, cat, tmp_path):
    result = mvm(db_url, "--out", str(tmp_path), "--skycell", "skycell-p1889x7y19")
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "mvm: error: sky cell 'skycell-p1889x7y19' does not match skycell-pPPPPxXXyYY"
    ]
