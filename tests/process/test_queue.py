"""The job queue: claim (SKIP LOCKED, one running job per sky cell), heartbeat, reap, finish, fail."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlalchemy as sa

from mvmdb.db import jobs
from mvmdb.db.models import Exposure, Job, Layer, LayerMember, Product, SkyCellRow
from mvmdb.sky.grid import skycell_id
from mvmdb.process import queue
from mvmdb.process.queue import StagedProduct


def add_sky_cell(conn, pc=1889, x=7, y=19) -> int:
    sid = skycell_id(pc, x, y)
    conn.execute(
        sa.insert(SkyCellRow).values(id=sid, name=f"skycell-p{pc:04d}x{x:02d}y{y:02d}", projection_cell_id=pc, x=x, y=y)
    )
    return sid


def add_member(conn, sid: int, root: str, *, filt="f814w", status="NEW") -> tuple[int, int]:
    """An exposure + its (fine ACS/WFC) layer in sky cell ``sid`` + the membership; returns (layer, exposure)."""
    eid = conn.execute(
        sa.insert(Exposure)
        .values(
            ipppssoot=root, filetype="flc", filename=f"{root}_flc.fits", path=f"/nowhere/{root}_flc.fits",
            instrument="ACS", detector="WFC", filter=filt, exptime=100.0, program_id=root[1:4].upper(),
            obset_id=root[4:6].upper(), header_hash="0" * 64, wcs_hash="0" * 64,
        )
        .returning(Exposure.id)
    ).scalar_one()
    name = conn.execute(sa.select(SkyCellRow.name).where(SkyCellRow.id == sid)).scalar_one()
    lname = f"hst_{name}_acs_wfc_{filt}_all"
    lid = conn.execute(sa.select(Layer.id).where(Layer.name == lname)).scalar()
    if lid is None:
        lid = conn.execute(
            sa.insert(Layer)
            .values(sky_cell_id=sid, instrument="ACS", detector="WFC", filter=filt, scale="fine", name=lname)
            .returning(Layer.id)
        ).scalar_one()
    conn.execute(sa.insert(LayerMember).values(layer_id=lid, exposure_id=eid, status=status))
    return lid, eid


def _state(engine, job_id):
    with engine.connect() as conn:
        return conn.execute(sa.select(Job).where(Job.id == job_id)).one()


@pytest.fixture
def cells(engine):
    """Three sky cells with one NEW member each and a queued job each."""
    with engine.begin() as conn:
        sids = [add_sky_cell(conn, 1889, 7, y) for y in (17, 18, 19)]
        for i, sid in enumerate(sids):
            add_member(conn, sid, f"j{i:02d}a01bq")
    job_ids = [jobs.enqueue(engine, sid) for sid in sids]
    return sids, job_ids


def test_enqueue_is_idempotent_and_tracks_generation(engine, cells):
    sids, job_ids = cells
    assert jobs.enqueue(engine, sids[0]) == job_ids[0]
    with engine.begin() as conn:
        add_member(conn, sids[0], "j99a01bq")
        gen = conn.execute(sa.select(sa.func.max(LayerMember.generation))).scalar_one()
    assert jobs.enqueue(engine, sids[0]) == job_ids[0]
    assert _state(engine, job_ids[0]).generation == gen


def test_claim_fifo_and_generation_recomputed(engine, cells):
    sids, job_ids = cells
    with engine.begin() as conn:  # a member arriving after enqueue is covered by the claim
        add_member(conn, sids[0], "j98a01bq")
        gen = conn.execute(sa.select(sa.func.max(LayerMember.generation))).scalar_one()
    job = queue.claim(engine, "w1")
    assert job.id == job_ids[0] and job.sky_cell_id == sids[0] and job.generation == gen
    assert job.sky_cell_name == "skycell-p1889x07y17"
    row = _state(engine, job.id)
    assert row.state == "running" and row.worker == "w1" and row.heartbeat_at is not None
    assert queue.claim(engine, "w2", job_id=job_ids[0]) is None  # already running
    assert queue.claim(engine, "w2").id == job_ids[1]


def test_one_running_job_per_sky_cell(engine, cells):
    sids, job_ids = cells
    first = queue.claim(engine, "w1", sky_cell_id=sids[0])
    with engine.begin() as conn:
        add_member(conn, sids[0], "j97a01bq")
    second = jobs.enqueue(engine, sids[0])  # planner adds a queued job while the first runs
    assert second != first.id
    assert queue.claim(engine, "w2", job_id=second) is None
    assert (second, sids[0]) not in jobs.claimable_jobs(engine)
    queue.finish(engine, first, [])
    assert queue.claim(engine, "w2", job_id=second).id == second


def test_concurrent_claimers_take_each_job_once(engine):
    n_jobs, n_workers = 40, 8
    with engine.begin() as conn:
        sids = [add_sky_cell(conn, 1889, 1 + i // 20, 1 + i % 20) for i in range(n_jobs)]
        for i, sid in enumerate(sids):
            add_member(conn, sid, f"j{i:02d}b01bq")
    for sid in sids:
        jobs.enqueue(engine, sid)
    eng = sa.create_engine(engine.url, pool_size=n_workers + 2)
    claimed: dict[str, list[int]] = {}
    barrier = threading.Barrier(n_workers)

    def work(w: str) -> None:
        barrier.wait()
        mine = claimed.setdefault(w, [])
        while (job := queue.claim(eng, w)) is not None:
            mine.append(job.id)
            queue.finish(eng, job, [])

    try:
        with ThreadPoolExecutor(n_workers) as pool:
            list(pool.map(work, [f"w{i}" for i in range(n_workers)]))
    finally:
        eng.dispose()
    all_ids = [j for ids in claimed.values() for j in ids]
    assert len(all_ids) == n_jobs and len(set(all_ids)) == n_jobs
    with engine.connect() as conn:
        states = conn.execute(sa.select(Job.state, sa.func.count()).group_by(Job.state)).all()
    assert dict(states) == {"done": n_jobs}


def test_heartbeat_and_lost_ownership(engine, cells):
    job = queue.claim(engine, "w1")
    before = _state(engine, job.id).heartbeat_at
    time.sleep(0.01)
    assert jobs.heartbeat(engine, job)
    assert _state(engine, job.id).heartbeat_at > before
    with queue.Heartbeat(engine, job, interval=0.05) as hb:
        time.sleep(0.2)
        assert not hb.lost.is_set()
    with engine.begin() as conn:  # someone else took it over
        conn.execute(sa.update(Job).where(Job.id == job.id).values(worker="thief"))
    assert not jobs.heartbeat(engine, job)
    with queue.Heartbeat(engine, job, interval=0.02) as hb:
        assert hb.lost.wait(120)  # returns as soon as the loss is seen; the limit is a hang guard


def _make_stale(engine, job_id, seconds=600):
    with engine.begin() as conn:
        conn.execute(
            sa.update(Job).where(Job.id == job_id).values(heartbeat_at=sa.func.now() - sa.text(f"interval '{seconds} s'"))
        )


def _dies(engine, job, seconds=600):
    """The owner of ``job`` dies: its lease goes, its heartbeat gets stale."""
    job.release_lease()
    _make_stale(engine, job.id, seconds)


def test_a_live_owner_is_never_reaped(engine, cells):
    sids, job_ids = cells
    job = queue.claim(engine, "w1", job_id=job_ids[0])
    assert job.lease is not None
    _make_stale(engine, job.id)  # a starved owner: heartbeat long stale, lease held
    assert not jobs.reap(engine, stale_after=60, max_attempts=1)
    assert _state(engine, job.id).state == "running" and jobs.heartbeat(engine, job)
    job.release_lease()  # the owner is gone
    _make_stale(engine, job.id)
    assert jobs.reap(engine, stale_after=60).requeued == [job.id]


def test_reap_requeues_then_fails(engine, cells):
    sids, job_ids = cells
    job = queue.claim(engine, "w1", job_id=job_ids[0])
    assert not jobs.reap(engine, stale_after=60)  # fresh heartbeat: untouched
    _dies(engine, job)
    res = jobs.reap(engine, stale_after=60, max_attempts=2)
    assert res.requeued == [job.id]
    row = _state(engine, job.id)
    assert row.state == "queued" and row.attempts == 1 and row.worker is None and "w1" in row.reason
    assert not jobs.heartbeat(engine, job)  # the old holder lost it
    again = queue.claim(engine, "w2", job_id=job_ids[0])
    _dies(engine, again)
    res = jobs.reap(engine, stale_after=60, max_attempts=2)
    assert res.failed == [job.id]
    row = _state(engine, job.id)
    assert row.state == "failed" and row.attempts == 2 and "abandoned 2 times" in row.reason


def test_reap_merges_into_queued_job(engine, cells):
    sids, job_ids = cells
    job = queue.claim(engine, "w1", job_id=job_ids[0])
    with engine.begin() as conn:
        add_member(conn, sids[0], "j96a01bq")
    newer = jobs.enqueue(engine, sids[0])
    _dies(engine, job)
    res = jobs.reap(engine, stale_after=60)
    assert res.merged == {job.id: newer}
    with engine.connect() as conn:
        rows = conn.execute(sa.select(Job.id, Job.state, Job.attempts).where(Job.sky_cell_id == sids[0])).all()
    assert [(r.id, r.state, r.attempts) for r in rows] == [(newer, "queued", 1)]
    got = queue.claim(engine, "w2", sky_cell_id=sids[0])
    assert got.id == newer and got.generation >= job.generation


def test_reap_skips_a_job_being_finished(engine, cells):
    sids, job_ids = cells
    job = queue.claim(engine, "w1", job_id=job_ids[0])
    _dies(engine, job)
    with engine.connect() as conn, conn.begin():
        conn.execute(sa.select(Job.id).where(Job.id == job.id).with_for_update())
        assert not jobs.reap(engine, stale_after=60)


def test_finish_publishes_products_and_flips_only_covered_members(engine, cells, tmp_path):
    sids, job_ids = cells
    with engine.connect() as conn:
        lid, eid = conn.execute(
            sa.select(LayerMember.layer_id, LayerMember.exposure_id)
            .join(Layer, Layer.id == LayerMember.layer_id)
            .where(Layer.sky_cell_id == sids[0])
        ).one()
    job = queue.claim(engine, "w1", job_id=job_ids[0])
    with engine.begin() as conn:  # arrives during the run: newer generation, not drawn
        _, late = add_member(conn, sids[0], "j95a01bq")
    tmp = tmp_path / ".x.fits.tmp-1"
    tmp.write_bytes(b"complete product")
    final = tmp_path / "x.fits"
    staged = StagedProduct(
        layer_id=lid, tmp_path=tmp, final_path=final, checksum="c" * 64, size_bytes=16, n_members=1,
        keywords={"NPIXFRAC": 0.5}, box=(1, 2, 3, 4), member_ids=[eid, late],
    )
    queue.finish(engine, job, [staged], box=(1, 2, 3, 4))
    assert final.read_bytes() == b"complete product" and not tmp.exists()
    with engine.connect() as conn:
        status = dict(conn.execute(sa.select(LayerMember.exposure_id, LayerMember.status).where(LayerMember.layer_id == lid)).all())
        prod = conn.execute(sa.select(Product).where(Product.layer_id == lid)).one()
        cell = conn.execute(sa.select(SkyCellRow).where(SkyCellRow.id == sids[0])).one()
    assert status == {eid: "OLD", late: "NEW"}
    assert prod.path == str(final) and prod.keywords == {"NPIXFRAC": 0.5} and (prod.box_xmin, prod.box_ymax) == (1, 4)
    assert (cell.box_xmin, cell.box_xmax, cell.box_ymin, cell.box_ymax) == (1, 2, 3, 4)
    assert _state(engine, job.id).state == "done"


def test_finish_refuses_a_lost_job_and_discards(engine, cells, tmp_path):
    sids, job_ids = cells
    job = queue.claim(engine, "w1", job_id=job_ids[0])
    _dies(engine, job)
    jobs.reap(engine, stale_after=60)
    tmp = tmp_path / ".y.tmp-1"
    tmp.write_bytes(b"x")
    staged = StagedProduct(1, tmp, tmp_path / "y.fits", "c" * 64, 1, 1, {}, (0, 0, 0, 0), [1])
    with pytest.raises(jobs.JobLost):
        queue.finish(engine, job, [staged])
    assert not tmp.exists() and not (tmp_path / "y.fits").exists()
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(Product)).scalar_one() == 0


def test_fail_and_release(engine, cells):
    sids, job_ids = cells
    job = queue.claim(engine, "w1", job_id=job_ids[0])
    assert jobs.release(engine, job)
    assert _state(engine, job.id).state == "queued"
    job = queue.claim(engine, "w1", job_id=job_ids[0])
    assert jobs.fail(engine, job, "input /x/y_flc.fits unreadable")
    row = _state(engine, job.id)
    assert row.state == "failed" and "y_flc.fits" in row.reason and row.finished_at is not None
    assert not jobs.fail(engine, job, "again")


def test_finish_consumes_layers_with_nothing_to_draw(engine, cells):
    sids, job_ids = cells
    with engine.connect() as conn:
        lid, eid = conn.execute(
            sa.select(LayerMember.layer_id, LayerMember.exposure_id)
            .join(Layer, Layer.id == LayerMember.layer_id)
            .where(Layer.sky_cell_id == sids[1])
        ).one()
    job = queue.claim(engine, "w1", job_id=job_ids[1])
    queue.finish(engine, job, [], consumed=[(lid, [eid])])
    with engine.connect() as conn:
        assert conn.execute(sa.select(LayerMember.status).where(LayerMember.layer_id == lid)).scalar_one() == "OLD"
        assert conn.execute(sa.select(sa.func.count()).select_from(Product)).scalar_one() == 0
