"""``mvm qa`` on a small simulated archive: a trailed exposure and a visit with a WCS error
are flagged, stored, excluded and their sky cells re-planned (issue 16)."""

from __future__ import annotations

import json
import math

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from qa_scenes import CENTRE, truth_table

from mvmdb.cli.main import cli
from mvmdb.db import exclusions
from mvmdb.db import qa as qa_db
from mvmdb.ingest import ingest
from mvmdb.plan import plan
from mvmdb.quality import configure, run_qa
from mvmdb.simulate import ExposureSpec, write_exposure
from mvmdb.simulate.instruments import offset_position
from mvmdb.simulate.truth import add_flux_columns
from mvmdb.simulate.writer import wcs_error_offset_mas

TRAILED = "jtq104a1q"
MISALIGNED = "jtq102a1q"


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """Five ACS/WFC visits (downscale 4, own seeds 61-65): one trailed 2" at PA 40, one with a
    header WCS error of 4 native px; returns (directory, truth offset of the misaligned visit in mas)."""
    out = tmp_path_factory.mktemp("qa_archive")
    truth = truth_table(61, n_stars=600)
    offset = None
    for v in range(5):
        point = offset_position(CENTRE[0], CENTRE[1], 6.0 * v, -4.0 * v)
        ang = math.radians(70.0)
        err = (math.cos(ang), math.sin(ang)) if v == 2 else (0.0, 0.0)
        spec = ExposureSpec("ACS", "WFC", "F814W", point[0], point[1], orientat=20.0 + 10 * v, exptime=500.0,
                            downscale=4, seed=61 + v, ipppssoot=f"jtq10{v}a1q", wcs_error=err,
                            trail=(2.0, 40.0) if v == 4 else None, expstart=56000.0 + 3 * v)
        add_flux_columns(truth, [(spec.model, spec.filter_info)])
        write_exposure(spec, truth, out)
        if v == 2:
            offset = math.hypot(*wcs_error_offset_mas(spec))
    return out, offset


def test_mvm_qa_flags_excludes_and_replans(tmp_path, engine, db_url, archive):
    directory, truth_mas = archive
    ingest(engine, [directory])
    plan(engine, tmp_path / "pollers")  # everything planned once: nothing NEW left
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE layer_member SET status = 'OLD'"))  # as if drawn
    assert plan(engine, tmp_path / "pollers", dry_run=True) == []

    r = CliRunner().invoke(cli, ["--db", db_url, "qa", "--alignment-policy", "exclude", "--json"])
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in r.output.splitlines()]
    by = {(x["ipppssoot"], x["check"]): x for x in rows}
    assert {k[0] for k in by} == {f"jtq10{v}a1q" for v in range(5)}
    for x in rows:
        assert set(x) >= {"ipppssoot", "check", "flagged", "value", "reason"}
    trail = by[(TRAILED, "trail")]
    assert trail["flagged"] and trail["reason"].startswith("trailed") and trail["excluded"]
    assert [k for k, x in by.items() if x["flagged"]] == [(MISALIGNED, "alignment"), (TRAILED, "trail")]
    mis = by[(MISALIGNED, "alignment")]
    assert mis["excluded"] and abs(mis["value"] - truth_mas) < max(0.1 * truth_mas, 5.0)
    assert all(x["value"] < 20 for k, x in by.items() if k[1] == "alignment" and k[0] != MISALIGNED)
    assert by[("jtq100a1q", "trail")]["wcs_family"] in ("gaia-fit", "a-priori", "pipeline-default", "other")

    with engine.connect() as conn:
        excl = {x.ipppssoot: x for x in exclusions.active(conn)}
        assert set(excl) == {TRAILED, MISALIGNED}
        assert excl[TRAILED].kind == "trailed" and excl[TRAILED].reason.startswith("trailed")
        assert excl[MISALIGNED].kind == "alignment"
        stored = qa_db.checks(conn, [TRAILED])
        assert [(s.check, s.flagged) for s in stored] == [("trail", True)]  # trailed: not used for alignment
    # re-planned: the layers they were in have NEW members again
    planned = plan(engine, tmp_path / "pollers", dry_run=True)
    assert planned and all(not {TRAILED, MISALIGNED} & {row.filename[:9] for row in p.rows} for p in planned)

    # nothing left to check; a changed file is checked again
    assert run_qa(engine).rows == []


def test_mvm_qa_report_only_excludes_nothing(engine, archive):
    directory, _ = archive
    ingest(engine, [directory])
    configure(engine, policy="exclude")
    report = run_qa(engine, ["skycell-p0000x01y01"], report_only=True)  # another sky cell: nothing there
    assert report.rows == []
    report = run_qa(engine, report_only=True)
    flagged = {(x["ipppssoot"], x["check"]) for x in report.rows if x["flagged"]}
    assert flagged == {(MISALIGNED, "alignment"), (TRAILED, "trail")}
    assert report.excluded == [] and not any(x["excluded"] for x in report.rows)
    with engine.connect() as conn:
        assert exclusions.active(conn) == []


def test_human_summary_lists_flagged_and_mixed_layers(capsys):
    from mvmdb.cli.qa import _summary
    from mvmdb.quality import QaReport

    report = QaReport(rows=[
        {"ipppssoot": TRAILED, "check": "trail", "flagged": True, "value": 0.8, "reason": "trailed: x",
         "wcs_family": "a-priori", "excluded": True},
        {"ipppssoot": "jtq100a1q", "check": "trail", "flagged": False, "value": None, "reason": "ok",
         "wcs_family": "gaia-fit", "excluded": False},
    ], layer_families={"hst_x": ["a-priori", "gaia-fit"], "hst_y": ["gaia-fit"]}, excluded=[TRAILED],
        skycells=["skycell-p0001x01y01"])
    _summary(report)
    out = capsys.readouterr().out
    assert TRAILED in out and "trailed: x" in out and "layer hst_x mixes WCS families: a-priori, gaia-fit" in out
    assert "hst_y" not in out and "checked 2 exposure(s): 1 flagged, 1 excluded" in out
