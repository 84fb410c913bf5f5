"""Space-time coverage of an ingested catalog (issue 17): ``mvm coverage moc --time`` writes an STMOC
that answers "was this position observed then", and it agrees with ``mvm coverage --from/--to``
and the cookbook query ``exposures-at-pixel-between``.

Catalog: the simulator's ``years`` scene (WFC3/IR F160W and ACS/WFC F814W, 2011-2016, 14
exposures; header-only files, which is all ingest reads), with one exposure excluded by the
operator (``exposure_exclusion``) and one by an ingest rule (``excluded_reason``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from mvmdb.cli.main import cli
from mvmdb.db.coverage import exposure_ranges
from mvmdb.db.spacetime import range_chunks, span_summary
from mvmdb.exclusion import exclude
from mvmdb.fitsio.moc import read_stmoc
from mvmdb.ingest import ingest
from mvmdb.simulate import simulate_scene
from mvmdb.sky.healpix import point_index
from mvmdb.sky.stmoc import observed
from mvmdb.spacetime import catalog_stmoc
from mvmdb.timespan import mjd_interval

COOKBOOK = Path(__file__).resolve().parents[1] / "schema" / "cookbook.sql"
SECOND = 1 / 86400  # days


@pytest.fixture(scope="module")
def years_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("years")
    simulate_scene("years", out, header_only=True, downscale=4)
    return out


@pytest.fixture
def catalog(engine, db_url, years_dir):
    """The ingested scene, two exposures excluded; ``.run(*args)`` runs ``mvm --db URL ...``."""
    ingest(engine, [years_dir], jobs=1)
    exps = _exposures(engine)
    # the first visit's first exposure: excluded by the operator; a 2016 exposure: by an ingest rule
    operator, rule = exps[0], next(e for e in exps if e["expstart"] > 57000)
    exclude(engine, [operator["ipppssoot"]], "test: operator", by="test")
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE exposure SET excluded_reason = 'test: rule' WHERE id = :id"), {"id": rule["id"]})
    url = db_url.render_as_string(hide_password=False)

    class Catalog:
        exposures = {e["id"]: e for e in exps}
        excluded = {operator["id"], rule["id"]}
        usable = [e for e in exps if e["id"] not in {operator["id"], rule["id"]}]

        @staticmethod
        def run(*args: str, code: int = 0):
            result = CliRunner().invoke(cli, ["--db", url, *args], catch_exceptions=False)
            assert result.exit_code == code, result.output
            return result

    return Catalog


def _exposures(engine) -> list[dict]:
    """Every exposure with its first chip's centre (degrees), by start time."""
    sql = """SELECT DISTINCT ON (e.expstart, e.id) e.id, e.ipppssoot, e.expstart, e.expend,
                    c.center_ra_deg AS ra, c.center_dec_deg AS dec
             FROM exposure e JOIN chip c ON c.exposure_id = e.id ORDER BY e.expstart, e.id, c.extver"""
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.text(sql)).mappings()]


def _cookbook(engine, ra: float, dec: float, t1: float, t2: float) -> list[int]:
    """Exposure ids of the cookbook query ``exposures-at-pixel-between``."""
    sql = re.search(r"^-- name: exposures-at-pixel-between\n--[^\n]*\n(.*?);", COOKBOOK.read_text(),
                    flags=re.MULTILINE | re.DOTALL).group(1)
    with engine.connect() as conn:
        rows = conn.execute(sa.text(sql), {"pixel": point_index(ra, dec), "mjd_from": t1, "mjd_to": t2})
        return [r.id for r in rows]


def catalog_stmoc_of(engine):
    with engine.connect() as conn:
        return catalog_stmoc(conn)


def _cli_ids(catalog, ra: float, dec: float, t1: float, t2: float) -> list[int]:
    rows = json.loads(catalog.run("coverage", "--ra", repr(ra), "--dec", repr(dec), "--from", repr(t1),
                                  "--to", repr(t2), "--json").stdout)
    return sorted(r["exposure_id"] for r in rows)


def test_stmoc_file_answers_where_and_when(catalog, tmp_path):
    out = tmp_path / "years-stmoc.fits"
    line = catalog.run("coverage", "moc", "--time", "--out", str(out)).output
    n = len(catalog.usable)
    assert line.startswith(f"wrote {out}: space-time MOC, {n} exposures, ") and f"{out.stat().st_size} bytes" in line
    stmoc = read_stmoc(out)
    first = min(e["expstart"] for e in catalog.usable)
    for e in catalog.usable:
        mid = (e["expstart"] + e["expend"]) / 2
        assert observed(stmoc, e["ra"], e["dec"], mid, mid).item(), e["ipppssoot"]  # chip centre, mid-exposure
        assert not observed(stmoc, e["ra"], e["dec"], first - 365.25, first - 365.25).item()  # a year before
        assert not observed(stmoc, e["ra"], e["dec"], first - 365.25, first - SECOND).item()  # nor until then
        assert not observed(stmoc, e["ra"] + 10, e["dec"] - 5, mid, mid).item()  # far from every footprint
    for i in catalog.excluded:  # alone in their time (the exposures of a visit follow each other)
        e = catalog.exposures[i]
        assert not observed(stmoc, e["ra"], e["dec"], e["expstart"] + SECOND, e["expend"] - SECOND).item()


def test_from_to_agrees_with_cookbook_and_stmoc(catalog, engine):
    stmoc = catalog_stmoc_of(engine)
    e = catalog.usable[0]
    visit_end = max(x["expend"] for x in catalog.exposures.values() if x["expstart"] < e["expstart"] + 30)
    next_start = min(x["expstart"] for x in catalog.exposures.values() if x["expstart"] > visit_end + 30)
    cases = [
        (e["ra"], e["dec"], e["expstart"], e["expend"], True),  # inside a chip, during its exposure
        (e["ra"], e["dec"], visit_end + 1, next_start - 1, False),  # between two visits
    ] + [(x["ra"], x["dec"], x["expstart"] + SECOND, x["expend"] - SECOND, False)  # only an excluded one then
         for x in (catalog.exposures[i] for i in sorted(catalog.excluded))]
    for ra, dec, t1, t2, expected in cases:
        sql = sorted(_cookbook(engine, ra, dec, t1, t2))
        assert _cli_ids(catalog, ra, dec, t1, t2) == sql
        assert bool(sql) is expected and observed(stmoc, ra, dec, t1, t2).item() is expected
        assert not catalog.excluded & set(sql)
    assert e["id"] in _cookbook(engine, e["ra"], e["dec"], e["expstart"], e["expend"])


def test_stmoc_and_cookbook_agree_on_a_grid(catalog, engine):
    """Both test the same order-13 cover and closed intervals: same answer at every position and year."""
    stmoc = catalog_stmoc_of(engine)
    rng = np.random.default_rng(17)
    ras = 150.1 + rng.uniform(-0.12, 0.12, 40)
    decs = 2.2 + rng.uniform(-0.12, 0.12, 40)
    hits = 0
    for year in range(2010, 2018):
        t1, t2 = mjd_interval(str(year), str(year))
        got = observed(stmoc, ras, decs, t1, t2)
        want = np.array([bool(_cookbook(engine, ra, dec, t1, t2)) for ra, dec in zip(ras, decs, strict=True)])
        assert got.tolist() == want.tolist(), year
        hits += int(want.sum())
    assert 0 < hits < 8 * len(ras)  # some positions seen in some years, not all


def test_chunks_and_summary_cover_the_usable_exposures(catalog, engine):
    with engine.connect() as conn:
        chunks = list(range_chunks(conn, chunk_rows=5))
        span = span_summary(conn)
        whole = catalog_stmoc(conn, chunk_rows=10**6)
        chunked = catalog_stmoc(conn, chunk_rows=3)
    ids = np.concatenate([c.exposure_id for c in chunks])
    assert len(chunks) > 2 and all(len(c.exposure_id) <= 5 for c in chunks)
    assert set(ids.tolist()) == {e["id"] for e in catalog.usable} and (np.diff(ids) >= 0).all()
    assert span.n_exposures == len(catalog.usable)
    assert span.first_mjd == min(e["expstart"] for e in catalog.usable)
    assert span.last_mjd == max(e["expend"] for e in catalog.usable)
    assert whole == chunked  # an exposure split between chunks adds the same cover


def test_filter_and_orders(catalog, engine, tmp_path):
    out = tmp_path / "f814w.fits"
    line = catalog.run("coverage", "moc", "--time", "--filter", "F814W", "--space-order", "10", "--time-order", "30",
                       "--out", str(out)).output
    with engine.connect() as conn:
        filters = dict(conn.execute(sa.text("SELECT id, filter FROM exposure")).all())
    acs = [e for e in catalog.usable if filters[e["id"]] == "f814w"]
    assert f"{len(acs)} exposures" in line and "space order 10, time order 30" in line
    stmoc = read_stmoc(out)
    assert stmoc.max_depth == (30, 10)
    for e in catalog.usable:
        mid = (e["expstart"] + e["expend"]) / 2
        assert observed(stmoc, e["ra"], e["dec"], mid, mid).item() is (e in acs), e["ipppssoot"]


def test_position_searches_and_maps_without_dates_leave_out_every_exclusion(catalog, engine):
    """Without --from/--to, the position and cone searches, the cookbook's exposures-at-pixel and the
    coverage maps (MOC, HEALPix) count the same usable exposures as the space-time queries."""
    usable = {e["id"] for e in catalog.usable}
    at_pixel = re.search(r"^-- name: exposures-at-pixel\n(?:--[^\n]*\n)+(.*?);", COOKBOOK.read_text(),
                         flags=re.MULTILINE | re.DOTALL).group(1)
    for i in sorted(catalog.excluded):
        x = catalog.exposures[i]
        for extra in ([], ["--radius", "0.01"]):
            rows = json.loads(catalog.run("coverage", "--ra", repr(x["ra"]), "--dec", repr(x["dec"]), *extra,
                                          "--json").stdout)
            ids = {r["exposure_id"] for r in rows}
            assert ids and ids <= usable, (x["ipppssoot"], extra, ids)  # its visit's other exposures, not it
            if not extra:  # the cookbook tests the HEALPix cover, which holds the exact answer
                with engine.connect() as conn:
                    cover = {r.id for r in conn.execute(sa.text(at_pixel), {"pixel": point_index(x["ra"], x["dec"])})}
                assert ids <= cover <= usable
    _, ids, _ = exposure_ranges(engine, 64)
    assert set(ids.tolist()) == usable
