"""Plan: layers with NEW members -> archive-format poller files and queued jobs.

A layer (sky cell + instrument + detector + filter + scale) needs drawing when at least
one of its members is NEW. :func:`plan` runs the plan query
(:func:`mvmdb.db.members.plan_rows`), which answers that from the partial index
``ix_layer_member_new`` and expands each such layer to *all* its members: a layer is
always redrawn from every member, NEW ones listed as NEW and already drawn ones as OLD
(the archive's documented intent, spec §1.2 item 4 and §5.7). Layers of a sky cell
without a NEW member are not listed.

One poller file and ONE JOB PER SKY CELL
----------------------------------------
The common trimmed box is a property of the sky cell, not of a layer: all layers of a
sky cell must stay pixel-aligned on one sub-array (spec §5.4). So one job draws all
affected layers of a sky cell together and, if their exposures make the box grow,
re-embeds the sky cell's other layers in the larger box. Hence one poller file per sky
cell, ``<out>/<skycell-name>_mvm_poller.txt``, listing every member of the affected layers
once (an exposure in both the fine and the coarse WFC3/IR layer is one line, NEW if it
is NEW in either), and one job per sky cell.

Jobs (:func:`mvmdb.db.jobs.enqueue_jobs`) are enqueued idempotently with
``INSERT ... ON CONFLICT (sky_cell_id) WHERE state = 'queued' DO UPDATE``:

* planning twice with nothing new changes nothing;
* planning after new ingests *extends* the queued job: its ``generation`` is raised to
  the highest NEW member generation now planned and its ``poller_path`` updated;
* a running job is never touched: a new queued job is added beside it (the partial
  unique index allows one queued job per sky cell), unless the running job's
  generation already covers every NEW member planned (then nothing is queued).

A job's ``generation`` is the highest generation among the NEW members its poller lists;
finishing it flips to OLD only memberships with ``generation <= job.generation``.

Files are written before jobs are committed, so a queued job never names a missing
poller; runs of ``plan`` are serialized by a transaction-level advisory lock so that two
planners cannot interleave writes of one sky cell's poller.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from mvmdb.db import jobs, skycells
from mvmdb.db.members import plan_rows
from mvmdb.errors import MvmdbError
from mvmdb import rules
from mvmdb.poller import PollerError, PollerRow, row_problem, write_poller
from mvmdb.sky.grid import normalize_skycell_names

POLLER_SUFFIX = "_mvm_poller.txt"
"""Poller file name: ``<skycell-name>_mvm_poller.txt``."""

DEFAULT_OUT = Path("pollers")


class PlanError(MvmdbError):
    """The catalog cannot be planned as asked (bad sky cell name)."""


@dataclass(frozen=True)
class PollerFile:
    """One sky cell's plan: its poller file, the layers it redraws and its job."""

    skycell: str
    sky_cell_id: int
    path: Path
    layers: tuple[str, ...]
    rows: tuple[PollerRow, ...] = field(repr=False)
    generation: int
    job_id: int | None = None
    job_action: str = "none"
    """created | extended | unchanged (queued job already covers it) | running (a running job
    covers every NEW member; nothing queued) | dry-run | none | error (see ``error``)."""
    error: str | None = None
    """Why this sky cell cannot be planned (a catalog row a poller line cannot hold); its poller
    is not written and no job is queued; the other sky cells are planned as usual."""

    @property
    def new(self) -> int:
        return sum(1 for row in self.rows if row.is_new)

    @property
    def old(self) -> int:
        return len(self.rows) - self.new

    def to_json(self) -> dict[str, Any]:
        """The ``mvm plan --json`` object (keys ``skycell``, ``poller``, ``layers``, ``new``, ``old``, ``error``
        are a contract; ``error`` is null for a planned sky cell)."""
        return {
            "skycell": self.skycell,
            "poller": str(self.path),
            "layers": list(self.layers),
            "new": self.new,
            "old": self.old,
            "job": self.job_id,
            "job_action": self.job_action,
            "generation": self.generation,
            "error": self.error,
        }


# -- plan -------------------------------------------------------------------------------


def normalize_skycells(names: Iterable[str]) -> list[str]:
    """Accept ``skycell-p1889x07y19`` or ``p1889x07y19``; raise :class:`PlanError` on bad names."""
    try:
        return normalize_skycell_names(names)
    except ValueError as exc:
        raise PlanError(str(exc)) from None


def build_pollers(rows: Iterable[Sequence], out_dir: Path) -> list[PollerFile]:
    """Group plan rows (tuples ordered by sky cell, file name) into one :class:`PollerFile` per sky cell."""
    out_dir = Path(out_dir).resolve()
    pollers: list[PollerFile] = []
    group: list[Sequence] = []
    for row in rows:
        if group and row[0] != group[0][0]:  # sky_cell_id
            pollers.append(_poller_file(group, out_dir))
            group = []
        group.append(row)
    if group:
        pollers.append(_poller_file(group, out_dir))
    return pollers


def _poller_file(group: Sequence[Sequence], out_dir: Path) -> PollerFile:
    """One sky cell's rows of the plan query -> its :class:`PollerFile`."""
    sky_cell_id, skycell = group[0][0], group[0][1]
    layers: set[str] = set()
    lines: list[PollerRow] = []
    generation = 0
    # Positional unpacking, in the column order of plan_rows in schema/plan.sql (fast:
    # a nightly plan has ~10^5 rows).
    for (_, _, _, filename, proposal_id, program_id, obset_id, exptime, filt, detector,
         status, new_generation, row_layers, path) in group:  # fmt: skip
        layers.update(row_layers.split(" "))
        if new_generation is not None and new_generation > generation:
            generation = new_generation
        lines.append(
            PollerRow(filename, proposal_id, program_id.upper(), obset_id.upper(), float(exptime),
                      filt.upper(), detector.upper(), skycell, status, path)  # fmt: skip
        )
    return PollerFile(
        skycell=skycell,
        sky_cell_id=sky_cell_id,
        path=out_dir / f"{skycell}{POLLER_SUFFIX}",
        layers=tuple(sorted(layers)),
        rows=tuple(lines),
        generation=generation,
        error=_rows_problem(lines),
    )


def _rows_problem(rows: Sequence[PollerRow]) -> str | None:
    """The first catalog row of a sky cell that a poller line cannot hold, as one line; None if all can.

    Ingest refuses such exposures (:mod:`mvmdb.rules`), so this only meets rows catalogued by
    older versions or edited by hand: the sky cell is reported and skipped, never the catalog."""
    for row in rows:
        if (problem := row_problem(row)) is not None:
            return f"exposure {rules.display_path(row.path)}: {problem}"
    return None


def _enqueue_pollers(conn: sa.Connection, pollers: Sequence[PollerFile]) -> list[PollerFile]:
    """Create or extend one queued job per poller (see the module docstring); return the pollers with their jobs."""
    if not pollers:
        return []
    ids = [p.sky_cell_id for p in pollers]
    changed = jobs.enqueue_jobs(conn, ids, [p.generation for p in pollers], [str(p.path) for p in pollers])
    open_jobs = jobs.open_jobs(conn, ids)
    result = []
    for p in pollers:
        if p.sky_cell_id in changed:
            job = changed[p.sky_cell_id]
            action = "created" if job.created else "extended"
            job_id = job.id
        else:
            job = open_jobs.get(p.sky_cell_id)  # the queued job as it was, or a running one covering all
            job_id = job.id if job is not None else None
            action = "none" if job is None else "unchanged" if job.state == "queued" else "running"
        result.append(_with_job(p, job_id, action))
    return result


def _with_job(p: PollerFile, job_id: int | None, action: str) -> PollerFile:
    return replace(p, job_id=job_id, job_action=action)


def plan(
    engine: sa.Engine,
    out_dir: str | Path = DEFAULT_OUT,
    *,
    skycells: Sequence[str] | None = None,
    dry_run: bool = False,
) -> list[PollerFile]:
    """Write a poller file and enqueue a job for every sky cell with a layer that has NEW members.

    ``skycells`` restricts the plan to those sky cells (names with or without the
    ``skycell-`` prefix). With ``dry_run`` nothing is written and no job is touched; the
    returned pollers say what would be written (``job_action == "dry-run"``).
    Returns one :class:`PollerFile` per sky cell, ordered by sky cell name. A sky cell whose
    catalog rows a poller cannot hold is returned with ``error`` set and ``job_action``
    ``"error"`` (nothing written or queued for it); the others are planned as usual.
    """
    out = Path(out_dir)
    names = normalize_skycells(skycells) if skycells else None
    with engine.begin() as conn:
        if not dry_run:
            jobs.lock_planners(conn)
        if names:
            _require_known(conn, names)
        pollers = build_pollers(plan_rows(conn, names), out)
        if dry_run:
            return [_with_job(p, None, "dry-run" if p.error is None else "error") for p in pollers]
        good, failed = [], []
        for p in pollers:
            if p.error is None:
                try:
                    write_poller(p.path, p.rows)
                except PollerError as exc:  # rows checked above: a safety net, never the whole plan
                    p = replace(p, error=str(exc))
            (good if p.error is None else failed).append(p)
        planned = _enqueue_pollers(conn, good)
        failed = [_with_job(p, None, "error") for p in failed]
        return sorted(planned + failed, key=lambda p: p.skycell)


def _require_known(conn: sa.Connection, names: Sequence[str]) -> None:
    known = skycells.known_names(conn, names)
    missing = [n for n in names if n not in known]
    if missing:
        raise PlanError(f"unknown sky cell(s), not in the catalog: {', '.join(missing)}")
