"""The processing queue in PostgreSQL: claim, heartbeat, reap, finish, fail.

One ``job`` row per sky cell to (re)draw (see :mod:`mvmdb.db.models`). Its life::

    queued --claim--> running --finish--> done | failed
      ^                  |
      +------reap--------+   (heartbeat stale; attempts + 1; failed after max attempts)

Rules that make "each layer is drawn exactly once, nothing is lost" hold for any mix of
workers on any number of machines:

* **Claim** (:func:`claim`) locks one queued row with ``SELECT ... FOR UPDATE SKIP LOCKED``
  (concurrent claimers skip each other's rows instead of waiting) and sets it ``running``
  with the worker's id and ``claimed_at``. At most one job per sky cell runs at a time: the
  claimer also takes a transaction-level advisory lock on the sky cell and refuses a job
  whose sky cell already has a running job (the planner may queue a second job for a sky
  cell while the first runs; it waits). The job's ``generation`` is recomputed at claim as
  the highest generation of the sky cell's NEW memberships.
* **Ownership** is the pair (``worker``, ``claimed_at``): :func:`heartbeat` and
  :func:`finish` only act on a row that is still ``running`` with that pair, so a worker
  whose job was reaped and claimed again elsewhere can never record anything.
* **Heartbeat**: :class:`Heartbeat`, a daemon thread with its own connection, stamps
  ``heartbeat_at`` every few seconds while the worker draws.
* **Reap** (:func:`reap`): a ``running`` job whose ``heartbeat_at`` is older than
  ``stale_after`` seconds is queued again with ``attempts + 1`` (``attempts`` counts
  abandoned runs), or marked ``failed`` once ``attempts`` reaches ``max_attempts``. The
  partial unique index allows one queued job per sky cell: when one is already queued,
  the stale job is merged into it (the queued job takes the larger generation and attempt
  count, the stale row is deleted) instead of violating the index.
* **Finish** (:func:`finish`): ONE transaction locks the job row (the reaper skips locked
  rows, so it cannot steal a job while it is being finished), checks ownership, renames each
  product's completed temporary file onto its final name (``os.replace``, then the
  directory is fsynced), upserts the ``product`` rows, flips to OLD exactly the memberships
  that were drawn, are still NEW and have ``generation <= job.generation``, stores the sky
  cell's common box and closes the job. A crash before COMMIT leaves the memberships NEW
  and the job ``running`` until reaped, so the layer is drawn again; a product already
  renamed into place is complete (never partial) and is simply replaced by the next run.

Times are the database server's (``now()``); intervals are seconds.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from mvmdb.db.models import Job, Layer, LayerMember, Product, SkyCell
from mvmdb.process import failpoints

log = logging.getLogger(__name__)

ADVISORY_NAMESPACE = 0x6D766D  # 'mvm': first key of pg_try_advisory_xact_lock(ns, sky_cell_id)
DEFAULT_STALE_AFTER = 120.0
"""Seconds without a heartbeat after which a running job counts as abandoned."""
DEFAULT_HEARTBEAT = 10.0
"""Seconds between heartbeats."""
DEFAULT_MAX_ATTEMPTS = 3
"""Abandoned runs after which a job is marked failed instead of queued again."""


class JobLost(RuntimeError):
    """The job is no longer ours (reaped, re-claimed or closed by someone else)."""


def worker_identity(suffix: str | None = None) -> str:
    """``host:pid`` (plus ``:suffix``) naming this process in ``job.worker``."""
    ident = f"{socket.gethostname()}:{os.getpid()}"
    return f"{ident}:{suffix}" if suffix else ident


@dataclass(frozen=True)
class ClaimedJob:
    """A job this worker holds. ``generation`` is the highest NEW-member generation it covers."""

    id: int
    sky_cell_id: int
    sky_cell_name: str
    generation: int
    worker: str
    claimed_at: dt.datetime
    attempts: int
    poller_path: str | None = None


@dataclass
class StagedProduct:
    """A layer product written to a temporary file in its final directory, not yet published.

    ``box`` is the product's pixel box at the layer's scale (0-based, inclusive);
    ``member_ids`` the exposure ids drawn into it (``None`` for a re-embedded product,
    whose memberships must not change).
    """

    layer_id: int
    tmp_path: Path
    final_path: Path
    checksum: str
    size_bytes: int
    n_members: int
    keywords: dict[str, Any]
    box: tuple[int, int, int, int]
    member_ids: list[int] | None = None
    replaces: Path | None = None  # previous product path if it had another name (removed after commit)


@dataclass
class ReapResult:
    """What :func:`reap` did: job ids queued again, marked failed, merged into a queued job."""

    requeued: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    merged: dict[int, int] = field(default_factory=dict)  # stale job id -> queued job id

    def __bool__(self) -> bool:
        return bool(self.requeued or self.failed or self.merged)


# --------------------------------------------------------------------------- enqueue


def _max_new_generation(conn: sa.Connection, sky_cell_id: int) -> int | None:
    return conn.execute(
        sa.select(sa.func.max(LayerMember.generation))
        .join(Layer, Layer.id == LayerMember.layer_id)
        .where(Layer.sky_cell_id == sky_cell_id, LayerMember.status == "NEW")
    ).scalar()


def enqueue(engine: sa.Engine, sky_cell_id: int, *, poller_path: str | None = None) -> int:
    """Make sure sky cell ``sky_cell_id`` has a queued job; return its id.

    Creates one (generation = the sky cell's highest NEW generation, 0 if none) or raises
    the generation of the existing queued job. Safe against concurrent enqueuers (the
    partial unique index decides; the loser updates the winner's row).
    """
    with engine.begin() as conn:
        gen = _max_new_generation(conn, sky_cell_id) or 0
        stmt = (
            pg_insert(Job)
            .values(sky_cell_id=sky_cell_id, state="queued", generation=gen, poller_path=poller_path)
            .on_conflict_do_update(
                index_elements=[Job.sky_cell_id],
                index_where=Job.state == "queued",
                set_={
                    "generation": sa.func.greatest(Job.generation, gen),
                    "poller_path": sa.func.coalesce(sa.literal(poller_path, sa.Text), Job.poller_path),
                },
            )
            .returning(Job.id)
        )
        return int(conn.execute(stmt).scalar_one())


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
    with engine.begin() as conn:
        locked = conn.execute(
            sa.select(Job.id).where(Job.id == job_id, Job.state == "queued").with_for_update(skip_locked=True)
        ).first()
        if locked is None:
            return None
        # Serialise claimers of one sky cell, then check nobody runs it: a second claimer
        # gets the lock only after the first committed, so its check sees the running row.
        if not conn.execute(sa.select(sa.func.pg_try_advisory_xact_lock(ADVISORY_NAMESPACE, sky_cell_id))).scalar():
            return None
        busy = conn.execute(
            sa.select(Job.id).where(Job.sky_cell_id == sky_cell_id, Job.state == "running").limit(1)
        ).first()
        if busy is not None:
            return None
        gen = _max_new_generation(conn, sky_cell_id)
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
        name = conn.execute(sa.select(SkyCell.name).where(SkyCell.id == sky_cell_id)).scalar_one()
    job = ClaimedJob(
        id=row.id,
        sky_cell_id=row.sky_cell_id,
        sky_cell_name=name,
        generation=int(row.generation),
        worker=row.worker,
        claimed_at=row.claimed_at,
        attempts=row.attempts,
        poller_path=row.poller_path,
    )
    log.info("claimed job %d (%s, generation %d) as %s", job.id, name, job.generation, worker)
    failpoints.hit("after_claim")
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


class Heartbeat:
    """Context manager: a daemon thread calling :func:`heartbeat` every ``interval`` seconds.

    Uses its own connections (the engine's pool hands each thread its own). ``lost`` is set
    when the job turned out not to be ours any more; database errors are logged and retried
    at the next beat (a short outage must not kill a long drizzle; the reaper's timeout
    should be several intervals).
    """

    def __init__(self, engine: sa.Engine, job: ClaimedJob, interval: float = DEFAULT_HEARTBEAT):
        self.engine = engine
        self.job = job
        self.interval = interval
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-job-{job.id}", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                if not heartbeat(self.engine, self.job):
                    log.warning("job %d is no longer ours (reaped or closed elsewhere)", self.job.id)
                    self.lost.set()
                    return
            except Exception as exc:  # noqa: BLE001 - keep beating through transient errors
                log.warning("heartbeat of job %d failed: %s", self.job.id, exc)

    def stop(self) -> None:
        """Stop beating (idempotent). Called before :func:`finish`, which locks the job row."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=max(5.0, self.interval))

    def __enter__(self) -> "Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


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


def reap(
    engine: sa.Engine,
    stale_after: float = DEFAULT_STALE_AFTER,
    *,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
) -> ReapResult:
    """Re-queue (or fail) running jobs whose heartbeat is older than ``stale_after`` seconds.

    ``attempts`` becomes ``attempts + 1``; at ``max_attempts`` the job is marked failed with
    a reason instead. Jobs being finished (row locked) are skipped.
    """
    result = ReapResult()
    with engine.connect() as conn:
        stale = conn.execute(
            sa.select(Job.id).where(
                Job.state == "running",
                Job.heartbeat_at < sa.func.clock_timestamp() - sa.func.make_interval(0, 0, 0, 0, 0, 0, stale_after),
            ).order_by(Job.id)
        ).scalars().all()
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
            .where(
                Job.id == job_id,
                Job.state == "running",
                Job.heartbeat_at < sa.func.clock_timestamp() - sa.func.make_interval(0, 0, 0, 0, 0, 0, stale_after),
            )
            .with_for_update(skip_locked=True)
        ).first()
        if row is None:
            return
        attempts = row.attempts + 1
        note = f"worker {row.worker} stopped heart-beating (last {row.heartbeat_at:%Y-%m-%d %H:%M:%S%z})"
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
    """Give a claimed job back (queued again, attempts unchanged), e.g. on shutdown."""
    with engine.begin() as conn:
        row = conn.execute(
            sa.select(Job.id, Job.sky_cell_id, Job.generation, Job.attempts).where(_owned(job)).with_for_update()
        ).first()
        if row is None:
            return False
        _requeue(conn, job.id, row.sky_cell_id, row.generation, row.attempts, note)
    return True


# --------------------------------------------------------------------------- finish / fail


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def discard(products: Iterable[StagedProduct]) -> None:
    """Remove staged temporary files (best effort)."""
    for p in products:
        try:
            Path(p.tmp_path).unlink()
        except FileNotFoundError:
            pass


def _flip(conn: sa.Connection, job: ClaimedJob, layer_id: int, member_ids: Sequence[int]) -> None:
    """NEW -> OLD for the given memberships of a layer, if their generation is covered by the job."""
    conn.execute(
        sa.update(LayerMember)
        .where(
            LayerMember.layer_id == layer_id,
            LayerMember.status == "NEW",
            LayerMember.generation <= job.generation,
            LayerMember.exposure_id.in_(list(member_ids)),
        )
        .values(status="OLD", changed_at=sa.func.now())
    )


def finish(
    engine: sa.Engine,
    job: ClaimedJob,
    products: Sequence[StagedProduct],
    *,
    box: tuple[int, int, int, int] | None = None,
    failures: dict[str, str] | None = None,
    consumed: Sequence[tuple[int, list[int]]] = (),
) -> None:
    """Publish ``products`` and close ``job`` in one transaction (see the module docstring).

    ``box`` is the sky cell's common fine box to store. ``failures`` maps layer names to
    reasons: the successful products are still recorded, the job is closed ``failed`` with
    the reasons, and the failed layers' memberships stay NEW. ``consumed`` lists
    ``(layer_id, exposure_ids)`` of layers that were looked at but have nothing to draw (no
    member chip on the sky cell): their memberships are flipped like drawn ones, without a
    product, so the planner does not plan them forever.
    Raises :class:`JobLost` (after discarding the temporary files) if the job is not ours.
    """
    failures = dict(failures or {})
    with engine.connect() as conn:
        with conn.begin():
            owned = conn.execute(sa.select(Job.id).where(_owned(job)).with_for_update()).first()
            if owned is None:
                discard(products)
                raise JobLost(f"job {job.id} is no longer held by {job.worker}; its products were discarded")
            dirs = set()
            for p in products:
                os.replace(p.tmp_path, p.final_path)
                dirs.add(Path(p.final_path).parent)
            for d in dirs:
                _fsync_dir(d)
            for layer_id, member_ids in consumed:
                _flip(conn, job, layer_id, member_ids)
            for p in products:
                values = dict(
                    layer_id=p.layer_id,
                    path=str(p.final_path),
                    checksum=p.checksum,
                    size_bytes=p.size_bytes,
                    n_members=p.n_members,
                    keywords=p.keywords,
                    box_xmin=p.box[0],
                    box_xmax=p.box[1],
                    box_ymin=p.box[2],
                    box_ymax=p.box[3],
                )
                upd = {k: v for k, v in values.items() if k != "layer_id"} | {"created_at": sa.func.now()}
                conn.execute(pg_insert(Product).values(**values).on_conflict_do_update(index_elements=[Product.layer_id], set_=upd))
                if p.member_ids:
                    _flip(conn, job, p.layer_id, p.member_ids)
            if box is not None:
                conn.execute(
                    sa.update(SkyCell)
                    .where(SkyCell.id == job.sky_cell_id)
                    .values(box_xmin=box[0], box_xmax=box[1], box_ymin=box[2], box_ymax=box[3])
                )
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
            failpoints.hit("before_commit")
    failpoints.hit("after_commit")
    for p in products:
        if p.replaces is not None and Path(p.replaces) != Path(p.final_path):
            try:
                Path(p.replaces).unlink()
            except FileNotFoundError:
                pass
    log.info("job %d %s: %d products", job.id, "failed" if failures else "done", len(products))


def fail(engine: sa.Engine, job: ClaimedJob, reason: str) -> bool:
    """Close ``job`` as failed with ``reason`` (nothing else changes); False if not ours."""
    with engine.begin() as conn:
        n = conn.execute(
            sa.update(Job)
            .where(_owned(job))
            .values(state="failed", reason=reason, finished_at=sa.func.clock_timestamp())
        ).rowcount
    return n == 1


def new_token() -> str:
    """A short random token (for unique temporary names)."""
    return uuid.uuid4().hex[:10]
