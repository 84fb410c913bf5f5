"""Nightly ingest runs (``ingest_run``) and the advisory lock that keeps them exclusive.

One row per run of ``scripts/nightly_ingest``: inserted ``running`` at the start
(:func:`start`), finished ``success`` or ``failed`` with a JSON summary (:func:`finish`).
Times are the database server's.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

from mvmdb.db.models import IngestRun

__all__ = ["ADVISORY_LOCK_KEY", "exclusive", "last_success", "start", "finish"]

ADVISORY_LOCK_KEY = 0x6D766D_6E696768  # "mvm" "nigh"
"""Key of the session advisory lock held by a nightly run (any root)."""


@contextmanager
def exclusive(engine: sa.Engine) -> Iterator[bool]:
    """Try the nightly runs' session advisory lock; yields whether it was taken (released on exit)."""
    with engine.connect() as conn:
        got = conn.execute(sa.select(sa.func.pg_try_advisory_lock(ADVISORY_LOCK_KEY))).scalar_one()
        conn.commit()
        try:
            yield bool(got)
        finally:
            if got:
                conn.execute(sa.select(sa.func.pg_advisory_unlock(ADVISORY_LOCK_KEY)))
                conn.commit()


def last_success(engine: sa.Engine, root: str) -> dt.datetime | None:
    """When the last successful run of ``root`` started, or None."""
    with engine.connect() as conn:
        return conn.execute(
            sa.select(sa.func.max(IngestRun.started_at)).where(IngestRun.root == root, IngestRun.status == "success")
        ).scalar()


def start(engine: sa.Engine, root: str) -> tuple[int, dt.datetime]:
    """Record a new ``running`` run of ``root``; returns its id and start time."""
    with engine.begin() as conn:
        row = conn.execute(
            sa.insert(IngestRun).values(root=root).returning(IngestRun.id, IngestRun.started_at)
        ).one()
    return row.id, row.started_at


def finish(engine: sa.Engine, run_id: int, status: str, summary: Mapping[str, Any]) -> None:
    """Close run ``run_id`` with ``status`` (success | failed) and its summary (JSON; other values as str)."""
    with engine.begin() as conn:
        conn.execute(
            sa.update(IngestRun)
            .where(IngestRun.id == run_id)
            .values(status=status, finished_at=sa.func.now(), summary=json.loads(json.dumps(summary, default=str)))
        )
