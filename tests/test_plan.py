"""The planner: layers with NEW members -> one poller file and one queued job per sky cell."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from mvmdb.plan import PlanError, plan
from mvmdb.resources import sql_statements
from mvmdb.poller import read_poller
from plan_data import Catalog

P1889 = "skycell-p1889x07y19"
P1970 = "skycell-p1970x15y02"  # the same position in the next ring's projection cell
P0778 = "skycell-p0778x18y20"

ACS_LAYER = f"hst_{P1889}_acs_wfc_f775w_all"
IR_FINE = f"hst_{P1889}_wfc3_ir_f160w_all"
IR_COARSE = f"hst_{P1889}_wfc3_ir_f160w_coarse-all"


@pytest.fixture
def cat(engine):
    """GQ Com: ACS/WFC F775W (SVM and pipeline names) and WFC3/IR F160W in p1889x07y19, all
    drawn (OLD); a WFC3/UVIS exposure elsewhere, drawn too."""
    c = Catalog(engine)
    c.svm = c.exposure("jbl70rtvq", "ACS", "WFC", "f775w", proposid=12286, exptime=486.0, svm=True)
    c.pipe = c.exposure("jbl70ruaq", "ACS", "WFC", "f775w", proposid=12286, exptime=699.232483)
    c.ir = c.exposure("ib4606cpq", "WFC3", "IR", "f160w", proposid=11665, exptime=502.93, filetype="flt")
    c.uvis = c.exposure("ibj207r5q", "WFC3", "UVIS", "f814w", proposid=12311, exptime=50.0, svm=True)
    for e in (c.svm, c.pipe, c.ir):
        c.member(e, P1889, status="OLD")
    c.member(c.uvis, P0778, status="OLD")
    return c


def lines(poller) -> list[str]:
    return poller.path.read_text().split("\n")


def test_nothing_new_plans_nothing(engine, cat, tmp_path):
    assert plan(engine, tmp_path) == []
    assert list(tmp_path.iterdir()) == []
    assert cat.jobs() == []


def test_a_new_member_plans_exactly_its_layer_and_sky_cell(engine, cat, tmp_path):
    new = cat.exposure("jbl70rtwq", "ACS", "WFC", "f775w", proposid=12286, exptime=50.0)
    cat.member(new, P1889)
    (poller,) = plan(engine, tmp_path / "pollers")
    assert poller.skycell == P1889
    assert poller.path == (tmp_path / "pollers" / f"{P1889}_mvm_poller.txt").resolve()
    assert poller.layers == (ACS_LAYER,)  # the IR layers of the sky cell have no NEW member
    assert (poller.new, poller.old) == (1, 2)
    assert poller.path.read_bytes()[-1:] != b"\n"
    assert lines(poller) == [
        f"hst_12286_0r_acs_wfc_f775w_jbl70rtv_flc.fits,12286,BL7,0R,486.0,F775W,WFC,{P1889},OLD,{cat.svm.path}",
        f"jbl70rtwq_flc.fits,12286,BL7,0R,50.0,F775W,WFC,{P1889},NEW,{new.path}",
        f"jbl70ruaq_flc.fits,12286,BL7,0R,699.232483,F775W,WFC,{P1889},OLD,{cat.pipe.path}",
    ]
    assert [r.status for r in read_poller(poller.path)] == ["OLD", "NEW", "OLD"]
    assert sorted(p.name for p in (tmp_path / "pollers").iterdir()) == [f"{P1889}_mvm_poller.txt"]


def test_svm_named_new_member_gives_the_archive_docs_line(engine, cat, tmp_path):
    cat.mark_new(cat.layer_id(ACS_LAYER))
    (poller,) = plan(engine, tmp_path)
    assert lines(poller)[0] == (
        "hst_12286_0r_acs_wfc_f775w_jbl70rtv_flc.fits,12286,BL7,0R,486.0,F775W,WFC,skycell-p1889x07y19,NEW,"
        f"{cat.svm.path}"
    )


def test_marked_old_plans_nothing_and_a_redirtied_layer_is_planned_again(engine, cat, tmp_path):
    new = cat.exposure("jbl70rtwq", "ACS", "WFC", "f775w", proposid=12286, exptime=50.0)
    cat.member(new, P1889)
    assert len(plan(engine, tmp_path)) == 1
    assert cat.mark_old() == 1  # processing drew the layer
    assert plan(engine, tmp_path) == []
    assert cat.mark_new(cat.layer_id(ACS_LAYER)) == 3  # e.g. a member's WCS changed: redraw
    (poller,) = plan(engine, tmp_path)
    assert (poller.layers, poller.new, poller.old) == ((ACS_LAYER,), 3, 0)


def test_ir_exposure_in_fine_and_coarse_layers_is_one_line(engine, cat, tmp_path):
    new_ir = cat.exposure("ib4606d0q", "WFC3", "IR", "f160w", proposid=11665, exptime=302.9, filetype="flt")
    fine, coarse = cat.member(new_ir, P1889)
    with engine.begin() as conn:  # NEW in the coarse layer only: still NEW, listed once
        conn.execute(sa.text("UPDATE layer_member SET status = 'OLD' WHERE layer_id = :l"), {"l": fine})
    (poller,) = plan(engine, tmp_path)
    assert poller.layers == (IR_COARSE,)
    assert [line.split(",")[0::8] for line in lines(poller)] == [
        ["ib4606cpq_flt.fits", "OLD"],
        ["ib4606d0q_flt.fits", "NEW"],
    ]
    cat.mark_new(fine)
    (poller,) = plan(engine, tmp_path)
    assert poller.layers == (IR_FINE, IR_COARSE)  # sorted names: '_all' < '_coarse-all'
    assert (poller.new, poller.old) == (2, 0)
    assert lines(poller)[0].split(",")[2:8] == ["B46", "06", "502.93", "F160W", "IR", P1889]


def test_a_sky_cell_in_two_projection_cells_gets_two_pollers(engine, cat, tmp_path):
    a = cat.exposure("jbl71aaaq", "ACS", "WFC", "f775w", proposid=12903, exptime=500.0)
    b = cat.exposure("ib4607bbq", "WFC3", "IR", "f160w", proposid=12903, exptime=250.0, filetype="flt")
    cat.member(a, P1889, P1970)
    cat.member(b, P1970)
    pollers = plan(engine, tmp_path, skycells=None)
    assert [p.skycell for p in pollers] == [P1889, P1970]
    p1889, p1970 = pollers
    assert p1889.layers == (ACS_LAYER,)
    assert (p1889.new, p1889.old) == (1, 2)
    assert p1970.layers == (
        f"hst_{P1970}_acs_wfc_f775w_all",
        f"hst_{P1970}_wfc3_ir_f160w_all",
        f"hst_{P1970}_wfc3_ir_f160w_coarse-all",
    )
    assert (p1970.new, p1970.old) == (2, 0)
    assert all(line.split(",")[7] == P1970 for line in lines(p1970))
    assert lines(p1970)[0].startswith("ib4607bbq_flt.fits,12903,B46,07,250.0,F160W,IR,")
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{P1889}_mvm_poller.txt", f"{P1970}_mvm_poller.txt"]
    assert len(cat.jobs()) == 2


def test_skycell_filter_dry_run_and_json(engine, cat, tmp_path):
    a = cat.exposure("jbl71aaaq", "ACS", "WFC", "f775w", proposid=12903, exptime=500.0)
    cat.member(a, P1889, P1970)
    (dry,) = plan(engine, tmp_path, skycells=["p1970x15y02"], dry_run=True)
    assert (dry.skycell, dry.job_action, dry.job_id) == (P1970, "dry-run", None)
    assert list(tmp_path.iterdir()) == [] and cat.jobs() == []
    (only,) = plan(engine, tmp_path, skycells=[P1970])
    assert [j.sky_cell_id for j in cat.jobs()] == [only.sky_cell_id]
    record = json.loads(json.dumps(only.to_json()))
    assert {k: record[k] for k in ("skycell", "poller", "layers", "new", "old")} == {
        "skycell": P1970,
        "poller": str(only.path),
        "layers": [f"hst_{P1970}_acs_wfc_f775w_all"],
        "new": 1,
        "old": 0,
    }


@pytest.mark.parametrize(
    ("names", "message"),
    [(["skycell-p1889x7y19"], "does not match"), (["skycell-p2700x01y01"], "outside the grid"), (["p0001x01y01"], "unknown sky cell")],
)
def test_bad_skycell_arguments(engine, cat, tmp_path, names, message):
    with pytest.raises(PlanError, match=message):
        plan(engine, tmp_path, skycells=names)


# -- jobs --------------------------------------------------------------------------------


def test_replanning_is_idempotent(engine, cat, tmp_path):
    new = cat.exposure("jbl70rtwq", "ACS", "WFC", "f775w", proposid=12286, exptime=50.0)
    cat.member(new, P1889)
    (first,) = plan(engine, tmp_path)
    (again,) = plan(engine, tmp_path)
    (job,) = cat.jobs()
    assert (first.job_action, again.job_action) == ("created", "unchanged")
    assert first.job_id == again.job_id == job.id
    assert (job.state, job.generation, job.poller_path) == ("queued", cat.max_generation(), str(first.path))


def test_new_ingest_extends_the_queued_job(engine, cat, tmp_path):
    cat.member(cat.exposure("jbl70rtwq", "ACS", "WFC", "f775w", proposid=12286, exptime=50.0), P1889)
    (first,) = plan(engine, tmp_path)
    cat.member(cat.exposure("ib4606d0q", "WFC3", "IR", "f160w", proposid=11665, exptime=302.9), P1889)
    (second,) = plan(engine, tmp_path / "elsewhere")
    (job,) = cat.jobs()
    assert second.job_action == "extended" and second.job_id == first.job_id == job.id
    assert job.generation == cat.max_generation() > first.generation
    assert job.poller_path == str(second.path)
    assert second.layers == (ACS_LAYER, IR_FINE, IR_COARSE)
    assert (second.new, second.old) == (2, 3)


def test_a_running_job_gets_a_new_queued_job_beside_it(engine, cat, tmp_path):
    cat.member(cat.exposure("jbl70rtwq", "ACS", "WFC", "f775w", proposid=12286, exptime=50.0), P1889)
    (first,) = plan(engine, tmp_path)
    cat.set_job_state(first.job_id, "running")
    (covered,) = plan(engine, tmp_path)  # the running job already covers every NEW member
    assert covered.job_action == "running" and covered.job_id == first.job_id
    assert len(cat.jobs()) == 1

    cat.member(cat.exposure("jbl70ruzq", "ACS", "WFC", "f775w", proposid=12286, exptime=60.0), P1889)
    (second,) = plan(engine, tmp_path)
    running, queued = cat.jobs()
    assert second.job_action == "created" and second.job_id == queued.id != running.id
    assert (running.state, running.generation) == ("running", first.generation)
    assert (queued.state, queued.generation) == ("queued", cat.max_generation())
    (third,) = plan(engine, tmp_path)
    assert third.job_action == "unchanged" and len(cat.jobs()) == 2

    cat.mark_old(max_generation=running.generation)  # the running job finishes
    cat.set_job_state(running.id, "done")
    (fourth,) = plan(engine, tmp_path)
    assert (fourth.new, fourth.job_id, fourth.job_action) == (1, queued.id, "unchanged")


# -- the query itself ---------------------------------------------------------------------


def test_plan_query_is_the_sql_file():
    sql = sql_statements("plan.sql")
    assert set(sql) >= {"plan_rows", "enqueue_jobs", "open_jobs"}
    assert "FROM layer_member\n    WHERE status = 'NEW'" in sql["plan_rows"]
    assert "ON CONFLICT (sky_cell_id) WHERE state = 'queued' DO UPDATE" in sql["enqueue_jobs"]


def test_plan_query_reads_the_partial_index(engine, cat):
    new = cat.exposure("jbl70rtwq", "ACS", "WFC", "f775w", proposid=12286, exptime=50.0)
    cat.member(new, P1889)
    with engine.begin() as conn:
        conn.execute(sa.text("ANALYZE"))
        # A handful of rows fit in one page, where a sequential scan is cheapest; on the
        # real catalog the partial index wins on its own (benchmarks/bench_plan.py). Here
        # sequential scans are priced out so that EXPLAIN shows the index can serve.
        conn.execute(sa.text("SET LOCAL enable_seqscan = off"))
        explained = conn.execute(
            sa.text("EXPLAIN (FORMAT JSON) " + sql_statements("plan.sql")["plan_rows"]), {"skycells": None}
        ).scalar_one()
    text = json.dumps(explained)
    assert '"Index Name": "ix_layer_member_new"' in text
