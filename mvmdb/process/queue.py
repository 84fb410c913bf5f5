"""A worker's side of the job queue: claim, heartbeat thread, publish products, finish.

The queue itself -- the ``job`` rows and every statement on them -- is
:mod:`mvmdb.db.jobs` (its docstring has the rules). This module adds what a worker does
around it:

* :func:`claim` (with the ``after_claim`` failpoint);
* :class:`Heartbeat`, a daemon thread with its own connection that stamps
  ``heartbeat_at`` every few seconds while the worker draws;
* **Finish** (:func:`finish`): ONE transaction locks the job row (the reaper skips locked
  rows, so it cannot steal a job while it is being finished) and checks ownership FIRST: a
  worker that lost its job learns it here, before it renames or writes anything outside its
  own staging directory. Then it places each product's completed temporary file onto its
  final name keeping the old file in the stage until COMMIT (:func:`mvmdb.process.staging.place`),
  upserts the ``product`` rows, flips to OLD exactly the memberships that were drawn, are still
  NEW and have ``generation <= job.generation``, stores the sky cell's common box and closes
  the job. A crash before COMMIT leaves the memberships NEW and the job ``running`` until its
  owner's lease is gone and it is reaped; the next run of the sky cell puts the old files
  back (:func:`mvmdb.process.staging.recover`), so product files and ``product.checksum``
  agree after a crash at any point, and draws the layer again.

The invariant, with :mod:`mvmdb.db.jobs`: a job belongs to one live owner (its lease) at a
time; a live owner -- however slow -- is never reaped and never loses a file; an owner that
lost its job (dead connection, reaped) can neither publish nor delete anything but its own
staging directory; every layer is drawn and recorded exactly once.

Intervals are seconds.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from mvmdb.db import jobs, members
from mvmdb.db.jobs import ClaimedJob, JobLost
from mvmdb.db.members import flip_old
from mvmdb.db.skycells import set_common_box
from mvmdb.process import failpoints, staging

log = logging.getLogger(__name__)

DEFAULT_HEARTBEAT = 10.0
"""Seconds between heartbeats."""


def worker_identity(suffix: str | None = None) -> str:
    """``host:pid`` (plus ``:suffix``) naming this process in ``job.worker``."""
    ident = f"{socket.gethostname()}:{os.getpid()}"
    return f"{ident}:{suffix}" if suffix else ident


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


def claim(
    engine: sa.Engine,
    worker: str,
    *,
    job_id: int | None = None,
    sky_cell_id: int | None = None,
) -> ClaimedJob | None:
    """:func:`mvmdb.db.jobs.claim`, then the ``after_claim`` failpoint when a job was claimed."""
    job = jobs.claim(engine, worker, job_id=job_id, sky_cell_id=sky_cell_id)
    if job is not None:
        failpoints.hit("after_claim")
    return job


class Heartbeat:
    """Context manager: a daemon thread calling :func:`mvmdb.db.jobs.heartbeat` every ``interval`` seconds.

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
                if not jobs.heartbeat(self.engine, self.job):
                    log.warning("job %d is no longer ours (reaped or closed elsewhere)", self.job.id)
                    self.lost.set()
                    return
            except Exception as exc:  # noqa: BLE001 - keep beating through transient errors
                log.warning("heartbeat of job %d failed: %s", self.job.id, " ".join(str(exc).split())[:300])

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


# --------------------------------------------------------------------------- finish


def discard(products: Iterable[StagedProduct]) -> None:
    """Remove staged temporary files (best effort)."""
    for p in products:
        try:
            Path(p.tmp_path).unlink()
        except FileNotFoundError:
            pass


def _still_wanted(conn: sa.Connection, products: Sequence[StagedProduct]) -> list[StagedProduct]:
    """Lock the products' layers; drop (and discard) those whose layer lost every member while drawn.

    ``mvm exclude`` of a layer's last member, committed while the job drew it, has already
    retired the layer's product; publishing the new one would bring back a product of
    excluded exposures that nothing plans again.
    """
    alive = members.lock_layers(conn, [p.layer_id for p in products])
    gone = [p for p in products if p.layer_id not in alive]
    if gone:
        discard(gone)
        for p in gone:
            log.warning("%s: every member was excluded while it was drawn; product not published",
                        Path(p.final_path).name)
    return [p for p in products if p.layer_id in alive]


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
    When it raises anything else after placing files, the stage (``tmp_path``'s directory)
    keeps what :func:`mvmdb.process.staging.recover` needs: leave it for the next run.
    """
    failures = dict(failures or {})
    pairs: list[tuple[Path, Path]] = []
    try:
        with jobs.owned_transaction(engine, job) as conn:
            products = _still_wanted(conn, products)
            pairs = [(Path(p.tmp_path), Path(p.final_path)) for p in products]
            staging.place(pairs)
            for layer_id, member_ids in consumed:
                flip_old(conn, layer_id, member_ids, job.generation)
            for p in products:
                jobs.upsert_product(conn, p.layer_id, str(p.final_path), p.checksum, p.size_bytes, p.n_members,
                                    p.keywords, p.box)
                if p.member_ids:
                    flip_old(conn, p.layer_id, p.member_ids, job.generation)
            if box is not None:
                set_common_box(conn, job.sky_cell_id, box)
            jobs.close(conn, job, failures)
            failpoints.hit("before_commit")
    except JobLost as exc:
        discard(products)
        raise JobLost(f"{exc}; its products were discarded") from None
    staging.committed(pairs)
    failpoints.hit("after_commit")
    for p in products:
        if p.replaces is not None and Path(p.replaces) != Path(p.final_path):
            try:
                Path(p.replaces).unlink()
            except FileNotFoundError:
                pass
    log.info("job %d %s: %d products", job.id, "failed" if failures else "done", len(products))


def new_token() -> str:
    """A short random token (for unique temporary names)."""
    return uuid.uuid4().hex[:10]
