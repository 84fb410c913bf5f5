"""Executors and drivers: run_queue (inline, local process pool, Dask), run_worker, poller files."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from mvmdb.process import queue, run
from mvmdb.process.arena import process_arena
from mvmdb.process.direct import DIRECT_NOTE
from mvmdb.process.job import JSON_KEYS
from mvmdb.sky.grid import SkyCell
from test_job import ingest_and_plan, star_truth, write_member

TINY = 40  # px: a 5" WFC3/IR cut-out -> a ~130 x 130 px fine layer, drawn in milliseconds


def cell_center(cell: SkyCell) -> tuple[float, float]:
    ra, dec = cell.wcs().pixel_to_world_values(10977.0, 10977.0)
    return float(ra), float(dec)


def tiny_cells(out: Path, n: int, filt: str = "F160W", tag: str = "a") -> list[tuple[SkyCell, Path]]:
    """One tiny IR exposure at the centre of each of ``n`` sky cells of PC 1359."""
    out.mkdir(parents=True, exist_ok=True)
    made = []
    for k in range(n):
        cell = SkyCell(1359, 11, 5 + k)
        c = cell_center(cell)
        m = write_member(out, star_truth(center=c, n=2, step=2.0, mags=(19.0, 19.0)), "WFC3", "IR", filt,
                         f"ib{tag}0{k:02d}a1q", center=c, exptime=100.0, seed=k, crop=TINY)
        made.append((cell, m.path))
    return made


def _jobs(engine):
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT id, sky_cell_id, state, attempts, worker FROM job ORDER BY id")).all()


def test_make_executor():
    assert run.make_executor("inline").name == "inline"
    ex = run.make_executor("local:2")
    try:
        assert ex.name == "local:2"
    finally:
        ex.close()
    for bad in ("local:0", "local:x", "threads", "inline:2x"):
        with pytest.raises(ValueError):
            run.make_executor(bad)
    with pytest.raises(ValueError):
        run.make_executor("local", scheduler="tcp://nowhere:1")


def test_run_queue_local_pool_draws_each_job_once(engine, tmp_path):
    cells = tiny_cells(tmp_path / "in", 4)
    ingest_and_plan(engine, [p for _, p in cells], tmp_path / "pollers")
    seen: list[run.TaskOutcome] = []
    outcomes = run.run_queue(engine, tmp_path / "products", executor="local:2", on_outcome=seen.append)
    assert len(outcomes) == 4 == len(seen) and all(o.claimed for o in outcomes)
    assert sorted(o.job_id for o in outcomes) == [j.id for j in _jobs(engine)]
    layers = [r for o in outcomes for r in o.results]
    assert len(layers) == 8 and {r.status for r in layers} == {"done"}
    assert len({r.layer for r in layers}) == 8
    for r in layers:
        assert Path(r.product).is_file() and set(r.to_json()) == set(JSON_KEYS)
    jobs = _jobs(engine)
    assert {j.state for j in jobs} == {"done"} and {j.attempts for j in jobs} == {0}
    assert run.run_queue(engine, tmp_path / "products", executor="inline") == []  # nothing left


def test_local_executor_draws_in_this_process_and_in_its_pool(engine, tmp_path):
    """local:2 is this process plus one spawned one, taking tasks from one list: every poller is
    drawn exactly once, by both processes."""
    import os

    cells = tiny_cells(tmp_path / "in", 4)
    pollers = ingest_and_plan(engine, [p for _, p in cells], tmp_path / "pollers")
    with run.make_executor("local:2") as ex:
        ex.start()
        outcomes = run.run_pollers(engine, [p.path for p in pollers], tmp_path / "products", executor=ex)
    assert len(outcomes) == 4 and all(o.claimed for o in outcomes)
    assert sorted(o.skycell for o in outcomes) == sorted(c.name for c, _ in cells)
    assert {r.status for o in outcomes for r in o.results} == {"done"}
    jobs = _jobs(engine)
    assert {j.state for j in jobs} == {"done"}
    pids = {j.worker.split(":")[1] for j in jobs}
    assert str(os.getpid()) in pids and len(pids) == 2


def test_tasks_are_ordered_largest_sky_cell_first(engine, tmp_path):
    from mvmdb.poller import PollerRow, write_poller
    from mvmdb.process.order import largest_first

    paths = []
    (tmp_path / "in").mkdir()
    for k, crop in enumerate((TINY, 3 * TINY, 2 * TINY)):
        cell = SkyCell(1359, 11, 5 + k)
        c = cell_center(cell)
        m = write_member(tmp_path / "in", star_truth(center=c, n=2, step=2.0, mags=(19.0, 19.0)), "WFC3", "IR",
                         "F160W", f"ibo0{k:02d}a1q", center=c, exptime=100.0, seed=k, crop=crop)
        paths.append(m.path)
    pollers = sorted(ingest_and_plan(engine, paths, tmp_path / "pollers"), key=lambda p: p.skycell)
    row = PollerRow(filename="x_flt.fits", proposal_id=1, program_id="B00", obset_id="00", exptime=1.0,
                    filters="F160W", detector="IR", skycell="skycell-p0001x01y01", status="NEW", path="/nowhere")
    unknown = write_poller(tmp_path / "unknown.out", [row])
    tasks = [run.Task("poller", poller=str(p)) for p in [*(q.path for q in pollers), unknown]]
    ordered = largest_first(engine, tasks)
    assert [t.poller for t in ordered] == [str(unknown), str(pollers[1].path), str(pollers[2].path),
                                           str(pollers[0].path)]
    assert run.make_executor("inline").order(engine, tasks) == tasks  # inline keeps the given order


def test_run_queue_dask_local_cluster(engine, tmp_path):
    cells = tiny_cells(tmp_path / "in", 2)
    ingest_and_plan(engine, [p for _, p in cells], tmp_path / "pollers")
    outcomes = run.run_queue(engine, tmp_path / "products", executor="dask:2")
    assert sorted(o.skycell for o in outcomes) == sorted(c.name for c, _ in cells)
    assert {r.status for o in outcomes for r in o.results} == {"done"}
    assert {j.state for j in _jobs(engine)} == {"done"}


def test_run_worker_once_and_idle_exit(engine, tmp_path):
    cells = tiny_cells(tmp_path / "in", 3)
    ingest_and_plan(engine, [p for _, p in cells], tmp_path / "pollers")
    got: list[run.TaskOutcome] = []
    assert run.run_worker(engine, tmp_path / "products", once=True, on_outcome=got.append, worker="w-once") == 1
    assert [j.state for j in _jobs(engine)] == ["done", "queued", "queued"]
    assert process_arena().nbytes > 0  # the drawing memory stays for the next job ...
    n = run.run_worker(engine, tmp_path / "products", idle_exit=0.3, poll_interval=0.05, on_outcome=got.append)
    assert n == 2 and len(got) == 3
    assert process_arena().nbytes == 0  # ... and goes back once the queue is empty
    assert {j.state for j in _jobs(engine)} == {"done"} and _jobs(engine)[0].worker == "w-once"
    assert run.run_worker(engine, tmp_path / "products", once=True) == 0


def test_poller_of_catalogued_sky_cell_claims_its_job(engine, tmp_path):
    cells = tiny_cells(tmp_path / "in", 2)
    pollers = ingest_and_plan(engine, [p for _, p in cells], tmp_path / "pollers")
    outcomes = run.run_pollers(engine, [pollers[0].path], tmp_path / "products", executor="inline")
    (out,) = outcomes
    assert out.claimed and out.job_id == pollers[0].job_id and out.skycell == pollers[0].skycell
    assert [r.status for r in out.results] == ["done", "done"] and all(r.reason is None for r in out.results)
    states = {j.id: j.state for j in _jobs(engine)}
    assert states == {pollers[0].job_id: "done", pollers[1].job_id: "queued"}
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM product")).scalar_one() == 2
    # the same poller again: nothing NEW, the sky cell's job is created and closed at once
    again = run.run_pollers(engine, [pollers[0].path], tmp_path / "products", executor="inline")
    assert again[0].claimed and [r.status for r in again[0].results] == ["skipped", "skipped"]
    assert all(r.reason.startswith("up to date") and Path(r.product).is_file() for r in again[0].results)


def test_poller_busy_sky_cell_is_skipped(engine, tmp_path):
    cells = tiny_cells(tmp_path / "in", 1)
    (poller,) = ingest_and_plan(engine, [p for _, p in cells], tmp_path / "pollers")
    held = queue.claim(engine, "elsewhere:1")
    (out,) = run.run_pollers(engine, [poller.path], tmp_path / "products", executor="inline")
    assert not out.claimed and {r.status for r in out.results} == {"skipped"}
    assert all("elsewhere:1" in r.reason for r in out.results) and len(out.results) == 2
    queue.finish(engine, held, [])


def test_poller_of_unknown_files_is_drawn_directly(engine, tmp_path):
    from mvmdb.poller import PollerRow, write_poller

    cells = tiny_cells(tmp_path / "in", 1, filt="F125W")
    cell, path = cells[0]
    row = PollerRow(filename=path.name, proposal_id=10000, program_id="B00", obset_id="00", exptime=100.0,
                    filters="F125W", detector="IR", skycell=cell.name, status="NEW", path=str(path))
    poller = write_poller(tmp_path / "archive_poller.out", [row])
    (out,) = run.run_pollers(engine, [poller], tmp_path / "products", executor="inline")
    assert out.note == DIRECT_NOTE and out.job_id is None
    assert sorted(r.layer for r in out.results) == [
        f"hst_{cell.name}_wfc3_ir_f125w_all", f"hst_{cell.name}_wfc3_ir_f125w_coarse-all"]
    for r in out.results:
        assert r.status == "done" and DIRECT_NOTE in r.reason and Path(r.product).is_file()
        assert r.members == 1 and r.keywords["SCELLID"] == cell.scellid
    with engine.connect() as conn:  # no catalog bookkeeping at all
        for table in ("job", "product", "exposure", "sky_cell"):
            assert conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one() == 0
    # an OLD-only poller draws nothing; a missing file fails its layer with the path
    old = write_poller(tmp_path / "old.out", [row._replace(status="OLD")])
    (out,) = run.run_pollers(engine, [old], tmp_path / "products2", executor="inline")
    assert {r.status for r in out.results} == {"skipped"}
    gone = write_poller(tmp_path / "gone.out", [row._replace(path=str(tmp_path / "nope_flt.fits"))])
    (out,) = run.run_pollers(engine, [gone], tmp_path / "products3", executor="inline")
    assert out.results and {r.status for r in out.results} == {"failed"}
    assert all("nope_flt.fits" in r.reason for r in out.results)


def test_large_layers_are_tiled_and_spooled_with_the_same_result(engine, tmp_path, monkeypatch):
    import numpy as np
    from astropy.io import fits

    from mvmdb.process import draw, job

    cells = tiny_cells(tmp_path / "in", 1)
    (poller,) = ingest_and_plan(engine, [p for _, p in cells], tmp_path / "pollers")
    (out,) = run.run_queue(engine, tmp_path / "memory", executor="inline")
    # the same layer again, as if it were too big for memory: 64 x 64 tiles spooled to disk
    monkeypatch.setattr(draw, "IN_MEMORY_MAX_PIXELS", 1000)
    monkeypatch.setattr(draw, "LARGE_TILE", (64, 64))
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE layer_member SET status = 'NEW'"))
    spooled = job.process_sky_cell(engine, cells[0][0].id, tmp_path / "spooled")
    assert {r.status for r in spooled} == {"done"}
    for a, b in zip(sorted(out.results, key=lambda r: r.layer), sorted(spooled, key=lambda r: r.layer)):
        with fits.open(a.product) as ha, fits.open(b.product) as hb:
            for name in ("SCI", "WHT", "NEXP"):
                # chips cut by tile edges are drizzled with guard bands (their edge-pixel corners from the
                # pixel-map model), whole chips as drizzle alone does (corners extrapolated): pixels on
                # chip edges differ by ~1e-4 relative, all others agree
                x, y = ha[name].data, hb[name].data
                np.testing.assert_allclose(x, y, rtol=1e-3, atol=1e-6, equal_nan=True)
                assert np.isclose(x, y, rtol=1e-5, atol=1e-6, equal_nan=True).mean() > 0.9, name
    assert not [p for p in (tmp_path / "spooled").rglob(".*")]  # spool files removed


def test_flc_member_turns_the_layer_into_drc_and_replaces_the_drz(engine, tmp_path):
    cell = SkyCell(1359, 11, 6)
    c = cell_center(cell)
    truth = star_truth(center=c, n=2, step=1.0, mags=(19.0, 19.0))
    (tmp_path / "in").mkdir()
    flt = write_member(tmp_path / "in", truth, "ACS", "HRC", "F814W", "j9ff01a1q", center=c, crop=60, seed=1)
    ingest_and_plan(engine, [flt.path], tmp_path / "pollers")
    (first,) = run.run_queue(engine, tmp_path / "products", executor="inline")
    (r1,) = first.results
    assert Path(r1.product).name.endswith("_all_drz.fits")
    flc = write_member(tmp_path / "in", truth, "ACS", "HRC", "F814W", "j9ff02a1q", center=c, crop=60, seed=2,
                       filetype="flc", expstart=55900.0)
    ingest_and_plan(engine, [flc.path], tmp_path / "pollers")
    (second,) = run.run_queue(engine, tmp_path / "products", executor="inline")
    (r2,) = second.results
    assert r2.status == "done" and Path(r2.product).name.endswith("_all_drc.fits") and r2.members == 1
    assert not Path(r1.product).exists() and Path(r2.product).is_file()  # FLT and FLC never mixed
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT path FROM product")).scalar_one() == r2.product
        assert set(conn.execute(sa.text("SELECT status FROM layer_member")).scalars()) == {"OLD"}


def test_run_worker_backs_off_after_failures_in_a_row(engine, tmp_path, monkeypatch):
    """After FAST_FAILURES failed jobs in a row the worker pauses 1, 2, 4 ... s (capped), not draining the queue."""
    cells = tiny_cells(tmp_path / "in", run.FAST_FAILURES + 3)
    ingest_and_plan(engine, [p for _, p in cells], tmp_path / "pollers")
    for _, path in cells:
        Path(path).unlink()  # every layer of every job now fails: its input is gone
    pauses: list[float] = []
    real_sleep = run.time.sleep

    def sleep(seconds: float) -> None:  # record the back-off pauses without waiting; idle polls really wait
        if seconds >= 1.0:
            pauses.append(seconds)
        else:
            real_sleep(seconds)

    monkeypatch.setattr(run.time, "sleep", sleep)
    monkeypatch.setattr(run, "MAX_BACKOFF", 3.0)
    drawn = run.run_worker(engine, tmp_path / "products", idle_exit=0.3, poll_interval=0.05, max_attempts=1)
    assert drawn == len(cells)
    assert pauses == [1.0, 2.0, 3.0, 3.0]  # failures 3, 4, 5, 6 in a row; 2 ** 2 = 4 capped at MAX_BACKOFF
    assert {j.state for j in _jobs(engine)} == {"failed"}
