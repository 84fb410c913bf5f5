"""Process one job: draw a sky cell's layers from a catalog snapshot, re-embed, publish.

:func:`process_job` -- a job claimed from the queue (:mod:`mvmdb.process.queue`). It
reads a snapshot of the sky cell from the catalog (:func:`mvmdb.db.snapshot.load_snapshot`),
draws every layer that has a NEW member covered by the job's generation (from *all* its
members, NEW and OLD: spec §1.2 item 4; :func:`mvmdb.process.draw.draw_layer`), re-embeds
the other layers' products if the common box grew, and publishes everything with
:func:`mvmdb.process.queue.finish` in one transaction. A heartbeat thread keeps the claim
alive meanwhile. :func:`process_sky_cell` claims (creating if needed) the job of a sky cell
and runs it.

The common box (see :mod:`mvmdb.process.embed`): union of the chip footprints of every
member of every layer of the sky cell, clipped to the cell, aligned to the coarse grid,
never shrinking (union with the stored ``sky_cell.box_*``). Fine layers use it as is,
coarse layers its coarse image, so all layers of a sky cell overlay pixel for pixel. Each
product is first written, complete and fsynced, into the job's own hidden staging
directory in the target directory (``.stage-j<job>-b<backend pid>-<token>``, named after the
job's lease: :mod:`mvmdb.process.staging`) and renamed onto its final name inside the
finishing transaction.

Failures: a layer whose inputs are missing or unreadable fails with a reason naming the
file; the other layers of the job are still published, the failed layer's memberships stay
NEW and the job is closed ``failed`` with the reasons. A local ``OSError`` (products
directory unwritable, disk full) gives the job back to the queue, unchanged: it is this
worker's problem, not the job's. Any other error fails the whole job (nothing published). A worker killed at any point leaves only its staging directory and
the job ``running`` until reaped (its lease died with it); the next job of that sky cell
undoes an unfinished publication and removes the directory (:func:`mvmdb.process.staging.recover`).
Directories of live owners are never touched.

Orphans: a product whose layer has no member left (an automatic epoch renamed by a new
exposure: its members moved to the new key; a layer every exposure left) is retired first,
as ``mvm exclude`` retires one: its product row is deleted and committed, then its file
(``product.path``) removed; the layer row stays. It is reported ``skipped``, product None.

Units: pixel boxes 0-based inclusive; times in seconds.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from mvmdb.db import jobs, products
from mvmdb.db.jobs import ClaimedJob, JobLost
from mvmdb.db.snapshot import CellSnapshot, LayerInfo, load_snapshot
from mvmdb.process import embed, queue, staging
from mvmdb.process.draw import DrawOptions, draw_layer, footprint_box
from mvmdb.process.headers import json_keywords, layer_set_keywords, quality_keywords
from mvmdb.process.queue import StagedProduct
from mvmdb.process.reembed import reembed_product
from mvmdb.sky.grid import SkyCell

__all__ = ["STATUSES", "JSON_KEYS", "LayerResult", "layers_to_draw", "process_job", "process_sky_cell"]

log = logging.getLogger(__name__)

STATUSES = ("done", "skipped", "failed")
JSON_KEYS = ("layer", "product", "status", "reason", "members", "keywords")
"""Keys of the per-layer ``--json`` object (a contract)."""

@dataclass
class LayerResult:
    """The outcome for one layer; :meth:`to_json` is the ``--json`` object (keys :data:`JSON_KEYS`)."""

    layer: str
    product: str | None
    status: str
    reason: str | None = None
    members: int = 0
    keywords: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "layer": self.layer,
            "product": self.product,
            "status": self.status,
            "reason": self.reason,
            "members": self.members,
            "keywords": self.keywords,
        }


def layers_to_draw(snap: CellSnapshot, generation: int) -> tuple[list[LayerInfo], list[LayerInfo]]:
    """Layers to draw, and the layer objects restricted to the members the job covers.

    A layer is drawn when it has a NEW member with ``generation <= job generation``, or has
    members but no product (or its product file is missing). Drawn from all members except
    NEW ones newer than the job (they are left for the next job). Layers of a disabled
    layer set (``active`` False) are never drawn.
    """
    draw = []
    for lay in snap.layers:
        if not lay.active:
            continue
        covered = [m for m in lay.members if m.status == "OLD" or (m.generation or 0) <= generation]
        if not covered:
            continue
        has_new = any(m.status == "NEW" and (m.generation or 0) <= generation for m in covered)
        missing = lay.product_path is None or not os.path.exists(lay.product_path)
        if has_new or missing:
            draw.append(dataclasses.replace(lay, members=covered))
    return draw, snap.layers


@dataclass
class _JobRun:
    """What one job has drawn so far: staged products, results, failed layers, layers with nothing to draw."""

    job: ClaimedJob
    target: Path
    options: DrawOptions
    stage: Path | None = None
    staged: list[StagedProduct] = field(default_factory=list)
    results: list[LayerResult] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)
    consumed: list[tuple[int, list[int]]] = field(default_factory=list)

    def draw(self, layers: list[LayerInfo], cell: SkyCell, box: embed.Box | None, hb: queue.Heartbeat) -> set[int]:
        """Draw ``layers`` onto ``box``; returns the ids of the layers looked at (drawn or skipped)."""
        from mvmdb.process.inputs import InputError

        drawn_ids = set()
        for lay in layers:
            if hb.lost.is_set():
                raise JobLost(f"job {self.job.id} was reaped while drawing")
            try:
                d = None if box is None else draw_layer(
                    lay, cell, box, self.stage, staging=True, options=self.options,
                    extra_keywords={"MVMGEN": (self.job.generation, "catalog generation drawn (job)"),
                                    **quality_keywords(lay), **layer_set_keywords(lay)},
                )
            except InputError as exc:
                self.failures[lay.name] = str(exc)
                self.results.append(LayerResult(lay.name, None, "failed", str(exc), len(lay.members)))
                log.warning("layer %s failed: %s", lay.name, exc)
                continue
            drawn_ids.add(lay.id)
            if d is None:
                self.results.append(LayerResult(lay.name, None, "skipped", "no member chip falls on the sky cell",
                                                len(lay.members)))
                self.consumed.append((lay.id, [m.exposure_id for m in lay.members]))
                continue
            final = self.target / d.product_name
            self.staged.append(StagedProduct(
                layer_id=lay.id, tmp_path=d.path, final_path=final, checksum=d.checksum,
                size_bytes=d.size_bytes, n_members=d.n_members, keywords=d.primary, box=d.box,
                member_ids=d.member_ids,
                # the previous product under another name in the same directory (drz -> drc)
                replaces=Path(lay.product_path) if lay.product_path and Path(lay.product_path).parent == self.target
                else None,
            ))
            self.results.append(LayerResult(lay.name, str(final), "done", None, d.n_members, d.keywords))
        return drawn_ids

    def reembed(self, layers: list[LayerInfo], drawn_ids: set[int], cell: SkyCell, box: embed.Box | None,
                hb: queue.Heartbeat) -> None:
        """Re-embed the products of the layers not drawn when the common box grew."""
        for lay in layers:
            if lay.id in drawn_ids or lay.product_path is None or box is None:
                continue
            want = embed.at_scale(box, lay.scale)
            if lay.product_box == want:
                continue
            if hb.lost.is_set():
                raise JobLost(f"job {self.job.id} was reaped while re-embedding")
            src = Path(lay.product_path)
            if not src.is_file():
                continue  # product file gone: the layer is redrawn by the next job (layers_to_draw)
            tmp = self.stage / f".{src.name}.tmp-{uuid.uuid4().hex[:12]}"
            checksum, size = reembed_product(src, lay.product_box, want, cell, lay.scale, tmp)
            self.staged.append(StagedProduct(
                layer_id=lay.id, tmp_path=tmp, final_path=src, checksum=checksum, size_bytes=size,
                n_members=lay.product_members, keywords=lay.product_keywords, box=want, member_ids=None,
            ))
            note = "re-embedded onto the grown common box"
            failed = next((r for r in self.results if r.layer == lay.name and r.status == "failed"), None)
            if failed is not None:  # one result per layer: the failure, with what happened to its product
                failed.reason += f"; its previous product {src.name} was {note}"
                continue
            self.results.append(LayerResult(lay.name, str(src), "done", note, lay.product_members,
                                            json_keywords(lay.product_keywords)))

    def report_up_to_date(self, layers: list[LayerInfo]) -> None:
        """One result per layer of the sky cell: the layers not reported yet are up to date."""
        reported = {r.layer for r in self.results}
        for lay in layers:
            if lay.name not in reported:
                self.results.append(LayerResult(lay.name, lay.product_path, "skipped", "up to date: no NEW member",
                                                lay.product_members, json_keywords(lay.product_keywords)))

    def failed(self, reason: str) -> list[LayerResult]:
        """Every layer reported so far (or the sky cell) as failed with ``reason``."""
        return [LayerResult(r.layer, None, "failed", reason, r.members) for r in self.results] or [
            LayerResult(self.job.sky_cell_name, None, "failed", reason, 0)]


def process_job(
    engine: sa.Engine,
    job: ClaimedJob,
    products_dir: Path,
    *,
    options: DrawOptions = DrawOptions(),
    heartbeat_interval: float = queue.DEFAULT_HEARTBEAT,
) -> list[LayerResult]:
    """Draw a claimed job's sky cell and publish the products (see the module docstring).

    Returns one :class:`LayerResult` per layer of the sky cell: drawn or re-embedded
    (``done``), failed, or ``skipped`` (nothing to draw; an up-to-date layer keeps its product).
    Never raises for layer or job failures (the job is closed ``failed`` with the reason);
    on KeyboardInterrupt, SystemExit or a worker stop request (any non-``Exception``) the job
    is given back to the queue and the exception re-raised.
    """
    run = _JobRun(job, Path(products_dir) / job.sky_cell_name, options)
    try:
        with queue.Heartbeat(engine, job, heartbeat_interval) as hb:
            return _run_job(engine, job, run, hb)
    finally:
        if run.stage is not None and not staging.needs_recovery(run.stage):
            staging.remove(run.stage)
        job.release_lease()  # after this the job is reapable if still running (e.g. a failed COMMIT)


def retire_orphans(engine: sa.Engine, sky_cell_id: int) -> list[LayerResult]:
    """Retire the products of the sky cell's layers without members: rows deleted, committed, then files removed."""
    with engine.begin() as conn:
        retired = products.retire_memberless(conn, sky_cell_id=sky_cell_id)
    for name, path in retired:  # after the COMMIT: a crash leaves a file without a row, never the reverse
        Path(path).unlink(missing_ok=True)
        log.info("retired %s: no member left, %s removed", name, path)
    return [LayerResult(name, None, "skipped", f"no member left: product {Path(path).name} retired", 0)
            for name, path in retired]


def _run_job(engine: sa.Engine, job: ClaimedJob, run: _JobRun, hb: queue.Heartbeat) -> list[LayerResult]:
    try:
        retired = retire_orphans(engine, job.sky_cell_id)
        with engine.connect() as conn:
            snap = load_snapshot(conn, job.sky_cell_id)
        run.target.mkdir(parents=True, exist_ok=True)
        staging.recover(engine, run.target)
        tag = job.lease.tag if job.lease is not None else f"j{job.id}-b0"
        run.stage = staging.new_stage(run.target, tag)
        draw, all_layers = layers_to_draw(snap, job.generation)
        box = embed.common_box(snap.stored_box, footprint_box(snap.cell, (m for lay in all_layers for m in lay.members)))
        drawn_ids = run.draw(draw, snap.cell, box, hb)
        run.reembed(all_layers, drawn_ids, snap.cell, box, hb)
        run.report_up_to_date(all_layers)
        hb.stop()  # finish() locks the job row and checks ownership itself
        if hb.lost.is_set():
            raise JobLost(f"job {job.id} was reaped before finishing")
        queue.finish(engine, job, run.staged, box=box, failures=run.failures, consumed=run.consumed)
        run.results.extend(retired)
    except JobLost as exc:
        queue.discard(run.staged)
        log.warning("%s", exc)
        return run.failed(f"job lost: {exc}")
    except BaseException as exc:  # noqa: BLE001 - every exit path must leave the queue consistent
        queue.discard(run.staged)
        if isinstance(exc, (sa.exc.OperationalError, sa.exc.InterfaceError)):
            raise  # the database is gone: nothing can be recorded; the job is reaped once our lease is gone
        if isinstance(exc, OSError):  # local (disk full, permissions): not the job's fault, give it back
            reason = f"local error, job given back to the queue: {type(exc).__name__}: {exc}"
            log.error("job %d (%s): %s", job.id, job.sky_cell_name, reason)
            jobs.release(engine, job, f"released by {job.worker}: {reason}")
            return run.failed(reason)
        if isinstance(exc, Exception):
            reason = f"{type(exc).__name__}: {exc}"
            log.exception("job %d (%s) failed", job.id, job.sky_cell_name)
            jobs.fail(engine, job, reason)
            return run.failed(reason)
        jobs.release(engine, job, f"released by {job.worker} on {type(exc).__name__}")
        raise
    return run.results


def process_sky_cell(
    engine: sa.Engine,
    sky_cell: int | ClaimedJob,
    products_dir: Path,
    *,
    worker: str | None = None,
    options: DrawOptions = DrawOptions(),
    heartbeat_interval: float = queue.DEFAULT_HEARTBEAT,
) -> list[LayerResult]:
    """Process one sky cell: a claimed job, or a sky cell id whose job is claimed (created if needed).

    Returns ``[]`` when the sky cell is being processed elsewhere (its job cannot be claimed).
    """
    if isinstance(sky_cell, ClaimedJob):
        job = sky_cell
    else:
        jobs.enqueue(engine, int(sky_cell))
        job = queue.claim(engine, worker or queue.worker_identity(), sky_cell_id=int(sky_cell))
        if job is None:
            return []
    return process_job(engine, job, Path(products_dir), options=options, heartbeat_interval=heartbeat_interval)
