"""Fault injection: ``kill -9`` a worker mid-drizzle, after writing, mid-commit; two workers, one queue.

A real ``mvm worker`` runs in a subprocess with a failpoint (``MVMDB_FAILPOINT``, see
:mod:`mvmdb.process.failpoints`); the test waits for the failpoint's marker file, kills the
process with SIGKILL, checks what is visible, lets the reaper re-queue the job and runs
another worker. Afterwards each layer has exactly one product, on disk and in the catalog,
every membership is OLD, and no temporary file is left.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from astropy.io import fits

from mvmdb.db import jobs
from mvmdb.process import queue, run
from test_run import tiny_cells
from test_job import ingest_and_plan

HEARTBEAT = 0.2
STALE_AFTER = 1.0
# Hang guards only: a worker on a loaded machine may take far longer than on an idle one.
WAIT = 300.0


def _worker(db_url, products: Path, *args: str, env: dict | None = None,
            stale_after: float = STALE_AFTER) -> subprocess.Popen:
    url = db_url.render_as_string(hide_password=False)
    cmd = [sys.executable, "-m", "mvmdb.cli.main", "--db", url, "worker", "--products", str(products),
           "--heartbeat", str(HEARTBEAT), "--stale-after", str(stale_after), "--poll", "0.05", "--json", *args]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})


def _wait_for(marker_dir: Path, name: str, proc: subprocess.Popen, timeout: float = WAIT) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if any(p.name.startswith(name + ".") for p in marker_dir.glob("*")):
            return
        if proc.poll() is not None:
            raise AssertionError(f"worker exited ({proc.returncode}) before {name}: {proc.communicate()[1]}")
        time.sleep(0.02)
    proc.kill()
    raise AssertionError(f"worker never reached failpoint {name}")


def _state(engine):
    with engine.connect() as conn:
        job = conn.execute(sa.text("SELECT id, state, attempts, worker FROM job ORDER BY id DESC")).first()
        statuses = sorted(conn.execute(sa.text("SELECT status FROM layer_member")).scalars())
        products = conn.execute(sa.text("SELECT layer_id, path, checksum, size_bytes FROM product")).all()
    return job, statuses, products


def _visible(products_dir: Path) -> tuple[list[str], list[str]]:
    """(product file names, hidden temporary names) under the products directory."""
    files = [p for p in products_dir.rglob("*") if p.is_file()]
    return (sorted(p.name for p in files if not p.name.startswith(".")),
            sorted(p.name for p in files if p.name.startswith(".")))


@pytest.fixture
def one_cell(engine, tmp_path):
    cells = tiny_cells(tmp_path / "in", 1)
    ingest_and_plan(engine, [p for _, p in cells], tmp_path / "pollers")
    return cells[0][0]


@pytest.mark.parametrize("point", ["mid_drizzle", "after_product_write", "before_commit"])
def test_kill_9_then_reclaim_draws_each_layer_once(engine, db_url, tmp_path, one_cell, point):
    products = tmp_path / "products"
    markers = tmp_path / "markers"
    proc = _worker(db_url, products, "--once",
                   env={"MVMDB_FAILPOINT": f"{point}:sleep", "MVMDB_FAILPOINT_DIR": str(markers)})
    try:
        _wait_for(markers, point, proc)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()  # reap it and close the pipes
    assert proc.returncode == -signal.SIGKILL

    # what the killed worker left: no product in the catalog, memberships NEW, job still running
    job, statuses, rows = _state(engine)
    assert job.state == "running" and set(statuses) == {"NEW"} and rows == []
    names, hidden = _visible(products)
    if point == "before_commit":
        # the products were renamed into place inside the uncommitted transaction: complete files
        assert len(names) == 2
        for p in (products / one_cell.name).iterdir():
            if not p.name.startswith("."):
                with fits.open(p) as h:
                    assert [x.name for x in h] == ["PRIMARY", "SCI", "WHT", "CTX", "HDRTAB", "NEXP"]
                    h.verify("exception")
    else:
        assert names == []  # nothing visible under a product name, only hidden temporaries
    assert all(".tmp" in n or n.startswith(".spool-") for n in hidden)

    # a fresh heartbeat protects the job from the reaper; a stale one does not
    assert not jobs.reap(engine, stale_after=60)
    time.sleep(STALE_AFTER + 3 * HEARTBEAT)
    assert jobs.reap(engine, stale_after=STALE_AFTER).requeued == [job.id]
    assert run.run_worker(engine, products, once=True, stale_after=STALE_AFTER) == 1

    job, statuses, rows = _state(engine)
    assert job.state == "done" and job.attempts == 1 and set(statuses) == {"OLD"}
    assert len(rows) == 2 and len({r.layer_id for r in rows}) == 2  # one product per layer
    names, hidden = _visible(products)
    assert hidden == [] and len(names) == 2
    for r in rows:
        data = Path(r.path).read_bytes()
        assert hashlib.sha256(data).hexdigest() == r.checksum and len(data) == r.size_bytes


def test_two_worker_processes_share_one_queue(engine, db_url, tmp_path):
    """Two live workers on one queue draw every layer exactly once.

    What this tests is sharing (SKIP LOCKED claims, one job per sky cell), not the reaper:
    the stale limit is far beyond any stall, so a worker whose heartbeat thread starves on
    a loaded machine (drizzle holds the GIL for a whole chip) is not taken for dead.
    The killed-worker tests above exercise the reaper.
    """
    cells = tiny_cells(tmp_path / "in", 6)
    ingest_and_plan(engine, [p for _, p in cells], tmp_path / "pollers")
    products = tmp_path / "products"
    procs = [_worker(db_url, products, "--idle-exit", "1.5", stale_after=3600) for _ in range(2)]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=WAIT)
        assert p.returncode == 0, err
        outs.append([json.loads(line) for line in out.splitlines()])
    layers = [r["layer"] for o in outs for r in o]
    assert len(layers) == 12 and len(set(layers)) == 12  # every layer drawn, none twice
    assert {r["status"] for o in outs for r in o} == {"done"}
    with engine.connect() as conn:
        job_ids = conn.execute(sa.text("SELECT state, attempts, worker FROM job")).all()
        assert conn.execute(sa.text("SELECT count(*) FROM product")).scalar_one() == 12
    assert {j.state for j in job_ids} == {"done"} and {j.attempts for j in job_ids} == {0}
    assert {j.worker.rsplit(":", 1)[1] for j in job_ids} <= {str(p.pid) for p in procs}


def test_sigterm_gives_the_job_back(engine, db_url, tmp_path, one_cell):
    products = tmp_path / "products"
    markers = tmp_path / "markers"
    proc = _worker(db_url, products, env={"MVMDB_FAILPOINT": "mid_drizzle:sleep", "MVMDB_FAILPOINT_DIR": str(markers)})
    try:
        _wait_for(markers, "mid_drizzle", proc)
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        out, err = proc.communicate(timeout=WAIT)
    assert proc.returncode == 0, err
    job, statuses, rows = _state(engine)
    assert job.state == "queued" and job.attempts == 0 and job.worker is None  # back in the queue, not failed
    assert set(statuses) == {"NEW"} and rows == []
    names, hidden = _visible(products)
    assert names == [] and hidden == []  # its temporary files were removed on the way out


def _freeze(proc, engine) -> None:
    """SIGSTOP ``proc`` at a moment when none of its sessions is inside a transaction.

    Stopped between its heartbeat's UPDATE and COMMIT, the worker would hold the job row's
    lock for as long as it is stopped, and the test's own UPDATE of that row would wait
    forever; then it is let go for a moment and stopped again.
    """
    busy = sa.text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                   "AND pid <> pg_backend_pid() AND state <> 'idle'")  # active, or idle in transaction
    deadline = time.monotonic() + WAIT
    while True:
        os.kill(proc.pid, signal.SIGSTOP)
        with engine.connect() as conn:
            if conn.execute(busy).scalar_one() == 0:
                return
        os.kill(proc.pid, signal.SIGCONT)
        assert time.monotonic() < deadline, "the worker never left its transaction"
        time.sleep(0.05)


def _make_stale(engine, seconds=600):
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE job SET heartbeat_at = now() - make_interval(secs => :s)"), {"s": seconds})


def _consistent(engine, products: Path) -> None:
    """Every catalogued product is on disk with the catalog's sha256; no hidden file is left."""
    _, _, rows = _state(engine)
    for r in rows:
        assert hashlib.sha256(Path(r.path).read_bytes()).hexdigest() == r.checksum
    names, hidden = _visible(products)
    assert hidden == [] and sorted(names) == sorted(Path(r.path).name for r in rows)


def test_a_stopped_worker_keeps_its_job(engine, db_url, tmp_path, one_cell):
    """A live owner frozen (SIGSTOP) far beyond stale-after keeps its job: no reap, no attempt, no second drawer."""
    products = tmp_path / "products"
    markers = tmp_path / "markers"
    proc = _worker(db_url, products, "--once", env={"MVMDB_FAILPOINT": "mid_drizzle:sleep", "MVMDB_FAILPOINT_SLEEP": "10",
                                                    "MVMDB_FAILPOINT_DIR": str(markers)})
    try:
        _wait_for(markers, "mid_drizzle", proc)
        _freeze(proc, engine)
        _make_stale(engine)  # its heartbeat is 10 minutes old: to a heartbeat-only reaper it is dead
        assert not jobs.reap(engine, stale_after=STALE_AFTER, max_attempts=1)
        assert run.run_worker(engine, products, once=True, stale_after=STALE_AFTER) == 0  # nothing to steal
        job, _, _ = _state(engine)
        assert job.state == "running" and job.attempts == 0
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    out, err = proc.communicate(timeout=WAIT)
    assert proc.returncode == 0, err
    assert {json.loads(line)["status"] for line in out.splitlines()} == {"done"}
    job, statuses, rows = _state(engine)
    assert job.state == "done" and job.attempts == 0 and set(statuses) == {"OLD"} and len(rows) == 2
    _consistent(engine, products)


def test_crash_before_commit_of_a_redraw_keeps_catalog_and_files_in_agreement(engine, db_url, tmp_path, one_cell):
    """A redraw killed between placing its files and COMMIT: the old files come back, then the layer is redrawn."""
    products = tmp_path / "products"
    assert run.run_worker(engine, products, once=True) == 1
    _consistent(engine, products)
    with engine.begin() as conn:  # every layer needs a redraw
        conn.execute(sa.text("UPDATE layer_member SET status = 'NEW'"))
    jobs.enqueue(engine, _sky_cell_id(engine))
    markers = tmp_path / "markers"
    proc = _worker(db_url, products, "--once",
                   env={"MVMDB_FAILPOINT": "before_commit:sleep", "MVMDB_FAILPOINT_DIR": str(markers)})
    try:
        _wait_for(markers, "before_commit", proc)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()
    from mvmdb.process import staging

    assert staging.recover(engine, products / one_cell.name) == 1  # the dead owner's stage: undone, removed
    _consistent(engine, products)
    _make_stale(engine)
    assert jobs.reap(engine, stale_after=STALE_AFTER).requeued
    assert run.run_worker(engine, products, once=True, stale_after=STALE_AFTER) == 1
    job, statuses, _ = _state(engine)
    assert job.state == "done" and set(statuses) == {"OLD"}
    _consistent(engine, products)


def _sky_cell_id(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT DISTINCT sky_cell_id FROM job")).scalar_one()


def test_a_local_write_error_gives_the_job_back(engine, tmp_path, one_cell):
    """The sky cell's product directory cannot be made (a file is in the way): the job is released, not failed."""
    products = tmp_path / "products"
    products.mkdir()
    (products / one_cell.name).write_text("in the way")
    outcomes = []
    assert run.run_worker(engine, products, once=True, on_outcome=outcomes.append) == 1
    assert {r.status for o in outcomes for r in o.results} == {"failed"}
    assert "given back to the queue" in outcomes[0].results[0].reason
    job, statuses, rows = _state(engine)
    assert job.state == "queued" and job.attempts == 0 and set(statuses) == {"NEW"} and rows == []


def test_exclusion_while_drawn_retires_the_layer_for_good(engine, tmp_path, one_cell, monkeypatch):
    """``mvm exclude`` of a layer's only member, committed while a job draws the layer: the job
    does not publish that layer's product afterwards (it would hold an excluded exposure, and
    nothing would ever plan the empty layer again); its file is not left behind either."""
    from mvmdb.exclusion import exclude

    with engine.connect() as conn:
        (ipp,) = conn.execute(sa.text("SELECT ipppssoot FROM exposure")).scalars()
    real_finish = queue.finish

    def exclude_then_finish(*args, **kwargs):
        result = exclude(engine, [ipp], "satellite trail seen by eye")
        assert len(result.layers) == 2 and result.retired == []  # no product yet: nothing to retire
        return real_finish(*args, **kwargs)

    monkeypatch.setattr(queue, "finish", exclude_then_finish)
    products = tmp_path / "products"
    assert run.run_worker(engine, products, once=True) == 1
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM product")).scalar_one() == 0
        assert conn.execute(sa.text("SELECT count(*) FROM layer_member")).scalar_one() == 0
        assert conn.execute(sa.text("SELECT state FROM job")).scalar_one() == "done"
    assert not [p for p in products.rglob("*.fits")]
