"""Order processing tasks largest first, so that a pool of processes finishes them together.

A task draws one sky cell (a job or a poller of a catalogued sky cell). Its cost is roughly
proportional to the pixels it drizzles and writes: the area of the sky cell's common box
(the union of its members' chip footprints, :func:`mvmdb.process.draw.footprint_box`) times
its layers, a coarse layer counting 1/9 of a fine one (its pixels are 3x larger). Handing
the tasks to the processes in decreasing order of that estimate (longest processing time
first) keeps the last process from starting a large sky cell when the others are done.

Estimates only order the tasks; they change nothing that is drawn. A task whose sky cell
is not in the catalog (a poller drawn directly) has an unknown cost and goes first. Each
estimate reads the sky cell's snapshot, so only up to :data:`MAX_ORDERED` tasks are ordered;
longer lists (a night's queue) are handed out as given, where the many tasks balance anyway.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import sqlalchemy as sa

__all__ = ["MAX_ORDERED", "cell_work", "largest_first"]

MAX_ORDERED = 64
"""Longest task list that :func:`largest_first` orders (one catalog snapshot read per task)."""


def cell_work(conn: sa.Connection, sky_cell_id: int) -> float:
    """Estimated work of drawing sky cell ``sky_cell_id``: fine pixels of its common box times its
    layers (fine 1, coarse 1/9); 0 when no member falls on the cell."""
    from mvmdb.db.snapshot import load_snapshot
    from mvmdb.process.draw import footprint_box

    snap = load_snapshot(conn, sky_cell_id)
    box = footprint_box(snap.cell, (m for lay in snap.layers for m in lay.members))
    if box is None:
        return 0.0
    area = (box[1] - box[0] + 1) * (box[3] - box[2] + 1)
    return float(area * sum(1.0 if lay.scale == "fine" else 1.0 / 9.0 for lay in snap.layers))


def _poller_cell(conn: sa.Connection, poller: str) -> int | None:
    """The catalogued sky cell id of a poller file's first row, or None."""
    from mvmdb.db import skycells
    from mvmdb.poller import read_poller

    try:
        rows = read_poller(poller)
    except Exception:  # noqa: BLE001 - a bad poller fails in its task, with its own message
        return None
    return skycells.id_of(conn, rows[0].skycell) if rows else None


def largest_first(engine: sa.Engine, tasks: Sequence, cells: Sequence[int | None] | None = None) -> list:
    """``tasks`` sorted by decreasing :func:`cell_work` (stable; unknown cost first); as given when
    there are more than :data:`MAX_ORDERED`.

    ``cells`` gives each task's sky cell id; by default a task's ``poller`` file is read for it.
    """
    if len(tasks) > MAX_ORDERED:
        return list(tasks)
    keys = []
    with engine.connect() as conn:
        for i, task in enumerate(tasks):
            sid = cells[i] if cells is not None else (_poller_cell(conn, task.poller) if task.poller else None)
            keys.append(math.inf if sid is None else cell_work(conn, sid))
    order = sorted(range(len(tasks)), key=lambda i: -keys[i])
    return [tasks[i] for i in order]
