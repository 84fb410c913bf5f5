"""The processing queue in PostgreSQL: enqueue, claim, heartbeat, reap, release, close.

One ``job`` row per sky cell to (re)draw (see :mod:`mvmdb.db.models`). Its life::

    queued --claim--> running --finish--> done | failed
      ^                  |
      +------reap--------+   (heartbeat stale; attempts + 1; failed after max attempts)

Rules that make "each layer is drawn exactly once, nothing is lost" hold for any mix of
workers on any number of machines:

* **Enqueue** (:func:`enqueue_jobs`, the ``enqueue_jobs`` statement of ``schema/plan.sql``
  and the only statement that creates jobs): one queued job per sky cell, idempotently
  (``INSERT ... ON CONFLICT (sky_cell_id) WHERE state = 'queued' DO UPDATE``). The planner
  enqueues a batch; :func:`enqueue` one sky cell (``mvm process`` of a sky cell or poller).
* **Claim** (:func:`claim`) locks one queued row with ``SELECT ... FOR UPDATE SKIP LOCKED``
  (concurrent claimers skip each other's rows instead of waiting) and sets it ``running``
  with the worker's id and ``claimed_at``. At most one job per sky cell runs at a time: the
  claimer also takes a transaction-level advisory lock on the sky cell and refuses a job
  whose sky cell already has a running job (the planner may queue a second job for a sky
  cell while the first runs; it waits). The job's ``generation`` is recomputed at claim as
  the highest generation of the sky cell's NEW memberships.
* **Ownership** is the pair (``worker``, ``claimed_at``): :func:`heartbeat` and the
  finishing transaction (:func:`owned_transaction`) only act on a row that is still
  ``running`` with that pair, so a worker whose job was reaped and claimed again elsewhere
  can never record anything: it learns it lost the job in the finishing transaction, with
  the row locked, before it renames any file.
* **Lease**: the claim is made on a connection of its own (:class:`Lease`, never pooled)
  that takes the session-level advisory lock ``(LEASE_NAMESPACE, job id)`` in the claiming
  transaction and keeps it -- and the connection -- while the worker works on the job. The
  lock lives exactly as long as the owner's PostgreSQL session: a worker that is merely
  slow (CPU-starved, its heartbeat thread stalled by drizzle holding the GIL, or stopped
  with SIGSTOP) keeps it; a worker that died (kill -9, crash, lost host: the server closes
  the connection, with TCP keepalives set on it) loses it at once.
* **Reap** (:func:`reap`): a ``running`` job is abandoned only when its owner is really
  gone: its heartbeat is older than ``stale_after`` seconds AND no session holds its lease.
  A stale heartbeat alone (a live but starved owner) never reaps, re-queues or fails a
  job. An abandoned job is queued again with ``attempts + 1`` (``attempts`` counts
  abandoned runs), or marked ``failed`` once ``attempts`` reaches ``max_attempts``. The
  partial unique index allows one queued job per sky cell: when one is already queued,
  the stale job is merged into it (the queued job takes the larger generation and attempt
  count, the stale row is deleted) instead of violating the index.
* **Finish**: :mod:`mvmdb.process.queue` publishes products inside
  :func:`owned_transaction` (which locks the job row: the reaper skips locked rows) with
  :func:`upsert_product`, :func:`mvmdb.db.members.flip_old` and :func:`close`.

Times are the database server's (``now()``); intervals are seconds.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from mvmdb.db.members import max_new_generation
from mvmdb.db.models import Job, Product, SkyCellRow
from mvmdb.errors import MvmdbError
from mvmdb.resources import sql_statements

__all__ = [
    "ADVISORY_NAMESPACE", "ClaimedJob", "EnqueuedJob", "JobLost", "OpenJob", "ReapResult",
    "enqueue_jobs", "enqueue", "lock_planners", "open_jobs", "claim", "claimable_jobs", "heartbeat", "reap", "release", "fail",
    "owned_transaction", "upsert_product", "close", "running_job", "Lease", "LEASE_NAMESPACE", "lease_held", "owner_alive",
]

log = logging.getLogger(__name__)

ADVISORY_NAMESPACE = 0x6D766D  # 'mvm': first key of pg_try_advisory_xact_lock(ns, sky_cell_id)
LEASE_NAMESPACE = 0x6D766E  # first key of the session-level lease lock pg_advisory_lock(ns, job_id)
PLAN_LOCK_KEY = 0x6D766D_706C616E  # "mvm" "plan"
"""Key of the transaction-level advisory lock that serializes planners."""
DEFAULT_STALE_AFTER = 120.0
"""Seconds without a heartbeat after which a running job counts as abandoned."""
DEFAULT_MAX_ATTEMPTS = 3
"""Abandoned runs after which a job is marked failed instead of queued again."""


class JobLost(MvmdbError):
    """The job is no longer ours (reaped, re-claimed or closed by someone else)."""


class Lease:
    """The owner's hold on a claimed job: a dedicated connection holding ``(LEASE_NAMESPACE, job id)``.

    ``backend_pid`` is the PostgreSQL backend of that connection; together with the job id
    it names the owner (e.g. in the owner-tagged staging directory of its files, see
    :func:`lease_held`). :meth:`release` unlocks and closes the connection (idempotent);
    if the process dies, the server ends the session and the lock goes with it.
    """

    def __init__(self, conn: sa.Connection, job_id: int, backend_pid: int):
        self.conn = conn
        self.job_id = job_id
        self.backend_pid = backend_pid

    @property
    def tag(self) -> str:
        """``j<job id>-b<backend pid>``: names files owned by this lease."""
        return f"j{self.job_id}-b{self.backend_pid}"

    def __del__(self) -> None:  # dropped without release(): closing the session releases the lock
        conn, self.conn = getattr(self, "conn", None), None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - interpreter shutdown, connection already gone
                pass

    def release(self) -> None:
        conn, self.conn = self.conn, None
        if conn is None:
            return
        try:
            conn.execute(sa.select(sa.func.pg_advisory_unlock(LEASE_NAMESPACE, self.job_id)))
            conn.commit()
        except Exception:  # noqa: BLE001 - the connection is gone: so is the lock
            conn.invalidate()
        finally:
            conn.close()


_LEASE_ENGINES: dict[str, sa.Engine] = {}


def _lease_engine(engine: sa.Engine) -> sa.Engine:
    """A NullPool twin of ``engine``: a lease connection is closed, never pooled with its lock held."""
    key = engine.url.render_as_string(hide_password=False)
    eng = _LEASE_ENGINES.get(key)
    if eng is None:
        eng = _LEASE_ENGINES[key] = sa.create_engine(
            engine.url, poolclass=sa.pool.NullPool,
            connect_args={"connect_timeout": 10, "application_name": "mvmdb-lease",
                          "keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3},
        )
    return eng


_LEASE_LOCK_SQL = """
SELECT 1 FROM pg_locks l
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND l.classid = {ns} AND l.objid = {job}
"""


def _unleased() -> sa.TextClause:
    """SQL condition on a ``job`` row: no session holds its lease."""
    return sa.text(f"NOT EXISTS ({_LEASE_LOCK_SQL.format(ns=LEASE_NAMESPACE, job=Job.__tablename__ + '.id')})")


def lease_held(conn: sa.Connection, job_id: int, backend_pid: int | None = None) -> bool:
    """Whether a session (backend ``backend_pid``, if given) holds job ``job_id``'s lease."""
    sql = _LEASE_LOCK_SQL.format(ns=LEASE_NAMESPACE, job=":job") + (" AND l.pid = :pid" if backend_pid else "")
    params = {"job": job_id} | ({"pid": backend_pid} if backend_pid else {})
    return conn.execute(sa.text(sql), params).first() is not None


def owner_alive(engine: sa.Engine, job_id: int, backend_pid: int) -> bool:
    """Whether backend ``backend_pid`` still holds the lease of job ``job_id``."""
    with engine.connect() as conn:
        return lease_held(conn, job_id, backend_pid)


@dataclass(frozen=True)
class ClaimedJob:
    """A job this worker holds. ``generation`` is the highest NEW-member generation it covers.

    ``lease`` (None only for jobs built by hand) is the :class:`Lease` that keeps it ours
    while we are alive; whoever ends the job's work calls ``lease.release()``.
    """

    id: int
    sky_cell_id: int
    sky_cell_name: str
    generation: int
    worker: str
    claimed_at: dt.datetime
    attempts: int
    poller_path: str | None = None
    lease: Lease | None = field(default=None, compare=False, repr=False)

    def release_lease(self) -> None:
        if self.lease is not None:
            self.lease.release()


@dataclass
class ReapResult:
    """What :func:`reap` did: job ids queued again, marked failed, merged into a queued job."""

    requeued: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    merged: dict[int, int] = field(default_factory=dict)  # stale job id -> queued job id

    def __bool__(self) -> bool:
        return bool(self.requeued or self.failed or self.merged)


class EnqueuedJob(NamedTuple):
    """A job :func:`enqueue_jobs` inserted (``created``) or extended."""

    id: int
    sky_cell_id: int
    generation: int
    created: bool


class OpenJob(NamedTuple):
    """The open job of a sky cell: the queued one if any, else the newest running one."""

    sky_cell_id: int
    id: int
    state: str
    generation: int


# --------------------------------------------------------------------------- enqueue


def _statement(name: str) -> sa.TextClause:
    return sa.text(sql_statements("plan.sql")[name])


def enqueue_jobs(
    conn: sa.Connection,
    sky_cell_ids: Sequence[int],
    generations: Sequence[int],
    poller_paths: Sequence[str | None],
    *,
    beside_running: bool = False,
) -> dict[int, EnqueuedJob]:
    """Create or extend one queued job per sky cell; the jobs created or extended, by sky cell id.

    ``generations``: the highest NEW-member generation each job must cover. A ``None``
    poller path keeps the queued job's. A running job that already covers the generation
    makes the sky cell need no queued job, unless ``beside_running``. Runs in the caller's
    transaction.
    """
    params = {
        "sky_cell_ids": list(sky_cell_ids),
        "generations": list(generations),
        "poller_paths": list(poller_paths),
        "beside_running": beside_running,
    }
    return {r.sky_cell_id: EnqueuedJob(*r) for r in conn.execute(_statement("enqueue_jobs"), params)}


def lock_planners(conn: sa.Connection) -> None:
    """Wait for the planners' transaction-level advisory lock (one planner writes pollers and jobs at a time)."""
    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(PLAN_LOCK_KEY)))


def open_jobs(conn: sa.Connection, sky_cell_ids: Sequence[int]) -> dict[int, OpenJob]:
    """The open job of each of the sky cells that has one, by sky cell id."""
    rows = conn.execute(_statement("open_jobs"), {"sky_cell_ids": list(sky_cell_ids)})
    return {r.sky_cell_id: OpenJob(*r) for r in rows}


def enqueue(engine: sa.Engine, sky_cell_id: int, *, poller_path: str | None = None) -> int:
    """Make sure sky cell ``sky_cell_id`` has a queued job; return its id.

    Creates one (generation = the sky cell's highest NEW generation, 0 if none) or raises
    the generation of the existing queued job, also beside a running job. Safe against
    concurrent enqueuers (the partial unique index decides; the loser updates the winner's row).
    """
    with engine.begin() as conn:
        gen = max_new_generation(conn, sky_cell_id) or 0
        done = enqueue_jobs(conn, [sky_cell_id], [gen], [poller_path], beside_running=True)
        if sky_cell_id in done:
            return done[sky_cell_id].id
        return open_jobs(conn, [sky_cell_id])[sky_cell_id].id  # the queued job already covered it


# --------------------------------------------------------------------------- claim


def _candidates(conn: sa.Connection, after: int, limit: int, job_id: int | None, sky_cell_id: int | None):
    running = sa.orm.aliased(Job)
    q = (
        sa.select(Job.id, Job.sky_cell_id)
        .where(Job.state == "queued", Job.id > after)
        .where(~sa.exists().where(running.sky_cell_id == Job.sky_cell_id, running.state == "running"))
        .order_by(Job.id)
        .limit(limit)
    )
    if job_id is not None:
        q = q.where(Job.id == job_id)
    if sky_cell_id is not None:
        q = q.where(Job.sky_cell_id == sky_cell_id)
    return conn.execute(q).all()


def _try_claim(engine: sa.Engine, job_id: int, sky_cell_id: int, worker: str) -> ClaimedJob | None:
    """Claim job ``job_id`` on a fresh lease connection; the connection is kept only if it claimed."""
    conn = _lease_engine(engine).connect()
    try:
        job = _claim_on(conn, job_id, sky_cell_id, worker)
    except BaseException:
        conn.invalidate()
        conn.close()
        raise
    if job is None:
        conn.close()  # closing the session drops any lock taken
    return job


def _claim_on(conn: sa.Connection, job_id: int, sky_cell_id: int, worker: str) -> ClaimedJob | None:
    # the server notices a vanished owner host within about a minute (TCP; no-op on a local socket)
    for setting in ("tcp_keepalives_idle = 30", "tcp_keepalives_interval = 10", "tcp_keepalives_count = 3"):
        conn.exec_driver_sql(f"SET {setting}")
    conn.commit()
    with conn.begin():
        locked = conn.execute(
            sa.select(Job.id).where(Job.id == job_id, Job.state == "queued").with_for_update(skip_locked=True)
        ).first()
        if locked is None:
            return None
        # Serialise claimers of one sky cell, then check nobody runs it: a second claimer
        # gets the lock only after the first committed, so its check sees the running row.
        if not conn.execute(sa.select(sa.func.pg_try_advisory_xact_lock(ADVISORY_NAMESPACE, sky_cell_id))).scalar():
            return None
        if _running(conn, sky_cell_id) is not None:
            return None
        # The lease: session-level, so it outlives this transaction (and is held by nobody
        # else: a job's previous owner lost it with its session, or released it).
        if not conn.execute(sa.select(sa.func.pg_try_advisory_lock(LEASE_NAMESPACE, job_id))).scalar():
            return None
        backend = conn.execute(sa.select(sa.func.pg_backend_pid())).scalar_one()
        gen = max_new_generation(conn, sky_cell_id)
        row = conn.execute(
            sa.update(Job)
            .where(Job.id == job_id)
            .values(
                state="running",
                worker=worker,
                claimed_at=sa.func.clock_timestamp(),
                heartbeat_at=sa.func.clock_timestamp(),
                finished_at=None,
                generation=sa.func.coalesce(gen, Job.generation),
            )
            .returning(Job.id, Job.sky_cell_id, Job.generation, Job.worker, Job.claimed_at, Job.attempts, Job.poller_path)
        ).one()
        name = conn.execute(sa.select(SkyCellRow.name).where(SkyCellRow.id == sky_cell_id)).scalar_one()
    job = ClaimedJob(
        id=row.id,
        sky_cell_id=row.sky_cell_id,
        sky_cell_name=name,
        generation=int(row.generation),
        worker=row.worker,
        claimed_at=row.claimed_at,
        attempts=row.attempts,
        poller_path=row.poller_path,
        lease=Lease(conn, row.id, backend),
    )
    log.info("claimed job %d (%s, generation %d) as %s", job.id, name, job.generation, worker)
    return job


def claim(
    engine: sa.Engine,
    worker: str,
    *,
    job_id: int | None = None,
    sky_cell_id: int | None = None,
    page: int = 16,
) -> ClaimedJob | None:
    """Claim the oldest claimable queued job (or job ``job_id`` / the one of ``sky_cell_id``).

    Returns ``None`` when nothing is claimable: no queued job, all locked by concurrent
    claimers, or their sky cells are being processed by a running job.
    """
    after = 0
    while True:
        with engine.connect() as conn:
            cands = _candidates(conn, after, page, job_id, sky_cell_id)
        if not cands:
            return None
        for cand in cands:
            job = _try_claim(engine, cand.id, cand.sky_cell_id, worker)
            if job is not None:
                return job
        after = cands[-1].id


def claimable_jobs(engine: sa.Engine) -> list[tuple[int, int]]:
    """``(job id, sky_cell id)`` of queued jobs whose sky cell has no running job, oldest first."""
    with engine.connect() as conn:
        return [(r.id, r.sky_cell_id) for r in _candidates(conn, 0, 1_000_000, None, None)]


def _running(conn: sa.Connection, sky_cell_id: int) -> sa.Row | None:
    return conn.execute(
        sa.select(Job.id, Job.worker).where(Job.sky_cell_id == sky_cell_id, Job.state == "running").limit(1)
    ).first()


def running_job(engine: sa.Engine, sky_cell_id: int) -> tuple[int, str] | None:
    """``(job id, worker)`` of a job running on the sky cell, or None."""
    with engine.connect() as conn:
        row = _running(conn, sky_cell_id)
    return (row.id, row.worker) if row is not None else None


# --------------------------------------------------------------------------- ownership, heartbeat


def _owned(job: ClaimedJob):
    return sa.and_(
        Job.id == job.id, Job.state == "running", Job.worker == job.worker, Job.claimed_at == job.claimed_at
    )


def heartbeat(engine: sa.Engine, job: ClaimedJob) -> bool:
    """Stamp ``heartbeat_at = now()``; False if the job is no longer ours."""
    with engine.begin() as conn:
        n = conn.execute(sa.update(Job).where(_owned(job)).values(heartbeat_at=sa.func.clock_timestamp())).rowcount
    return n == 1


# --------------------------------------------------------------------------- reap / release


def _requeue(conn: sa.Connection, job_id: int, sky_cell_id: int, generation: int, attempts: int, note: str) -> int | None:
    """Put job ``job_id`` back to queued, or merge it into the sky cell's queued job.

    Returns the id of the queued job it was merged into, or ``None`` if requeued in place.
    """
    other = conn.execute(
        sa.select(Job.id)
        .where(Job.sky_cell_id == sky_cell_id, Job.state == "queued", Job.id != job_id)
        .with_for_update()
    ).first()
    if other is not None:
        conn.execute(
            sa.update(Job)
            .where(Job.id == other.id)
            .values(
                generation=sa.func.greatest(Job.generation, generation),
                attempts=sa.func.greatest(Job.attempts, attempts),
                reason=f"absorbed job {job_id}: {note}",
            )
        )
        conn.execute(sa.delete(Job).where(Job.id == job_id))
        return other.id
    conn.execute(
        sa.update(Job)
        .where(Job.id == job_id)
        .values(state="queued", attempts=attempts, worker=None, claimed_at=None, heartbeat_at=None, reason=note)
    )
    return None


def _stale(stale_after: float):
    """Abandoned: running, heartbeat older than ``stale_after`` seconds, and nobody holds the lease."""
    return sa.and_(
        Job.state == "running",
        Job.heartbeat_at < sa.func.clock_timestamp() - sa.func.make_interval(0, 0, 0, 0, 0, 0, stale_after),
        _unleased(),
    )


def reap(
    engine: sa.Engine,
    stale_after: float = DEFAULT_STALE_AFTER,
    *,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
) -> ReapResult:
    """Re-queue (or fail) abandoned running jobs: heartbeat older than ``stale_after`` seconds and lease gone.

    A job whose owner is alive (its lease held) is never reaped, however late its heartbeat.
    ``attempts`` becomes ``attempts + 1``; at ``max_attempts`` the job is marked failed with
    a reason instead. Jobs being finished (row locked) are skipped.
    """
    result = ReapResult()
    with engine.connect() as conn:
        stale = conn.execute(sa.select(Job.id).where(_stale(stale_after)).order_by(Job.id)).scalars().all()
    for job_id in stale:
        for _ in range(3):  # a concurrent enqueuer may win the unique index: retry once or twice
            try:
                _reap_one(engine, job_id, stale_after, max_attempts, result)
                break
            except sa.exc.IntegrityError:
                log.info("job %d: concurrent enqueue while reaping; retrying", job_id)
    return result


def _reap_one(engine: sa.Engine, job_id: int, stale_after: float, max_attempts: int, result: ReapResult) -> None:
    with engine.begin() as conn:
        row = conn.execute(
            sa.select(Job.id, Job.sky_cell_id, Job.generation, Job.attempts, Job.worker, Job.heartbeat_at)
            .where(Job.id == job_id, _stale(stale_after))
            .with_for_update(skip_locked=True)
        ).first()
        if row is None:
            return
        attempts = row.attempts + 1
        note = (f"worker {row.worker} is gone (its lease was released; last heartbeat "
                f"{row.heartbeat_at:%Y-%m-%d %H:%M:%S%z})")
        if attempts >= max_attempts:
            conn.execute(
                sa.update(Job)
                .where(Job.id == job_id)
                .values(
                    state="failed",
                    attempts=attempts,
                    finished_at=sa.func.clock_timestamp(),
                    reason=f"abandoned {attempts} times (max {max_attempts}); last: {note}",
                )
            )
            result.failed.append(job_id)
            log.warning("job %d failed after %d abandoned runs", job_id, attempts)
            return
        merged = _requeue(conn, job_id, row.sky_cell_id, row.generation, attempts, f"requeued: {note}")
        if merged is None:
            result.requeued.append(job_id)
        else:
            result.merged[job_id] = merged
        log.warning("job %d reaped (%s)", job_id, note)


def release(engine: sa.Engine, job: ClaimedJob, note: str = "released by its worker") -> bool:
    """Give a claimed job back (queued again, attempts unchanged), e.g. on shutdown; its lease goes too."""
    try:
        with engine.begin() as conn:
            row = conn.execute(
                sa.select(Job.id, Job.sky_cell_id, Job.generation, Job.attempts).where(_owned(job)).with_for_update()
            ).first()
            if row is None:
                return False
            _requeue(conn, job.id, row.sky_cell_id, row.generation, row.attempts, note)
        return True
    finally:
        job.release_lease()


def fail(engine: sa.Engine, job: ClaimedJob, reason: str) -> bool:
    """Close ``job`` as failed with ``reason`` (nothing else changes; its lease goes); False if not ours."""
    try:
        with engine.begin() as conn:
            n = conn.execute(
                sa.update(Job)
                .where(_owned(job))
                .values(state="failed", reason=reason, finished_at=sa.func.clock_timestamp())
            ).rowcount
        return n == 1
    finally:
        job.release_lease()


# --------------------------------------------------------------------------- finishing transaction


@contextmanager
def owned_transaction(engine: sa.Engine, job: ClaimedJob) -> Iterator[sa.Connection]:
    """A transaction that holds ``job``'s row locked (the reaper skips it); commits on exit.

    Raises :class:`JobLost` (nothing written) when the job is no longer ours.
    """
    with engine.connect() as conn:
        with conn.begin():
            if conn.execute(sa.select(Job.id).where(_owned(job)).with_for_update()).first() is None:
                raise JobLost(f"job {job.id} is no longer held by {job.worker}")
            yield conn


def upsert_product(conn: sa.Connection, layer_id: int, path: str, checksum: str, size_bytes: int,
                   n_members: int, keywords: Mapping[str, Any], box: tuple[int, int, int, int]) -> None:
    """Insert or replace the ``product`` row of a layer; ``box`` 0-based inclusive (xmin, xmax, ymin, ymax)."""
    values = dict(
        layer_id=layer_id, path=path, checksum=checksum, size_bytes=size_bytes, n_members=n_members,
        keywords=dict(keywords), box_xmin=box[0], box_xmax=box[1], box_ymin=box[2], box_ymax=box[3],
    )
    upd = {k: v for k, v in values.items() if k != "layer_id"} | {"created_at": sa.func.now()}
    conn.execute(pg_insert(Product).values(**values).on_conflict_do_update(index_elements=[Product.layer_id], set_=upd))


def close(conn: sa.Connection, job: ClaimedJob, failures: Mapping[str, str]) -> None:
    """Close ``job`` ``done``, or ``failed`` with the layers' reasons when ``failures`` is not empty."""
    reason = "; ".join(f"{name}: {why}" for name, why in sorted(failures.items())) or None
    conn.execute(
        sa.update(Job)
        .where(Job.id == job.id)
        .values(
            state="failed" if failures else "done",
            finished_at=sa.func.clock_timestamp(),
            heartbeat_at=sa.func.clock_timestamp(),
            reason=reason,
        )
    )
