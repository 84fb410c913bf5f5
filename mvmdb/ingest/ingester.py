"""One ingest run: classify each file against the catalog, write batches, report each file.

:func:`ingest` drives the run (inputs -> fast path for files whose path, size and mtime
match the catalog -> reader pool -> batches); :class:`Ingester` holds the parent-side
state (one catalog connection, :class:`mvmdb.db.exposures.IngestConnection`) and decides, per file, its status and what is written --
the rules are in the :mod:`mvmdb.ingest` docstring. All SQL is in
:mod:`mvmdb.db.exposures` (and :func:`mvmdb.db.members.write_new`, called from it).
"""

from __future__ import annotations

import logging
import os
import stat
import time
from collections.abc import Callable, Iterable, Sequence

import psycopg
import sqlalchemy as sa
from psycopg.types.json import Jsonb

from mvmdb import rules
from mvmdb.db import exposures
from mvmdb.db.exposures import Existing, IngestConnection, Writes
from mvmdb.errors import one_line
from mvmdb.fitsio.exposure import file_kind
from mvmdb.fitsio.reader import READ_TIME_LIMIT, ReadResult
from mvmdb.ingest.inputs import default_jobs, expand_inputs
from mvmdb.ingest.pool import Progress, batches, read_stream, start_pool
from mvmdb.ingest.results import FileResult, IngestSummary

__all__ = ["DEFAULT_BATCH", "Ingester", "ingest"]

log = logging.getLogger(__name__)

DEFAULT_BATCH = 500
"""Files per write transaction."""


def layers_for(instrument: str, detector: str, filt: str, cells: Iterable[tuple], reason: str | None) -> list[tuple]:
    """(sky_cell_id, instrument, detector, filter, scale, name) of every layer an exposure belongs to."""
    if reason is not None:
        return []
    scales = rules.layer_scales(instrument, detector)
    return [
        (c[0], instrument, detector, filt, scale, rules.layer_name(c[1], instrument, detector, filt, scale))
        for c in cells
        for scale in scales
    ]


def final_reason(content: str | None, instrument: str, detector: str, filetype: str, ipppssoot: str,
                 has_flc: bool, include_small: bool, only_cte: bool) -> str | None:
    """Content reason, else supersession (FLT with an FLC), else the switch rules."""
    if content is not None:
        return content
    if filetype == "flt" and has_flc:
        return rules.superseded_reason(ipppssoot)
    return rules.switch_exclusion(instrument, detector, filetype, include_small=include_small, only_cte=only_cte)


class Ingester:
    """Parent-side state of one :func:`ingest` run (one database connection)."""

    def __init__(self, catalog: IngestConnection, include_small: bool, only_cte: bool, details: bool,
                 emit: Callable[[FileResult], None], summary: IngestSummary):
        self.catalog = catalog
        self.include_small = include_small
        self.only_cte = only_cte
        self.details = details
        self.emit = emit
        self.summary = summary
        with catalog.transaction() as cur:
            self.errors_on_record = exposures.errors_on_record(cur)

    # -- writing

    def _write(self, cur: psycopg.Cursor, w: Writes) -> None:
        exposures.write(cur, w, clear_errors=self.errors_on_record or bool(w.errors))
        if w.errors:
            self.errors_on_record = True

    def _fill_details(self, cur: psycopg.Cursor, results: list[FileResult]) -> None:
        want = [r for r in results if r.exposure_id is not None and r.status == "unchanged"]
        if not want or not self.details:
            return
        cells, layers = exposures.details(cur, (r.exposure_id for r in want))
        for r in want:
            r.sky_cells = sorted(cells.get(r.exposure_id, []))
            r.layers = sorted(layers.get(r.exposure_id, []))

    def record_errors(self, errors: list[tuple[str, str]]) -> None:
        """Record ``(path, reason)`` rows in ``ingest_error`` (own transaction)."""
        with self.catalog.transaction() as cur:
            self._write(cur, Writes(errors=errors))

    @staticmethod
    def _recompute(w: Writes, key: tuple[str, str], redraw: bool, layers: list[tuple]) -> None:
        w.recompute.append((key[0], key[1], redraw))
        w.members.extend((key[0], key[1], *layer) for layer in layers)

    # -- batches of files that were read

    def read_batch(self, items: list[ReadResult]) -> None:
        """Classify and write one batch; on a database error, retry its files one by one."""
        try:
            results, writes = self._classify(items)
            with self.catalog.transaction() as cur:
                self._write(cur, writes)
                self._fill_details(cur, results)
        except Exception as exc:  # rolled back
            if len(items) > 1:
                log.info("batch of %d files failed (%s); retrying file by file", len(items), one_line(exc))
                for item in items:
                    self.read_batch([item])
                return
            log.debug("ingest of %s failed", items[0].path, exc_info=True)
            item = items[0]
            reason = f"database refused the exposure: {one_line(exc)}"
            self.record_errors([(item.path, reason)])
            results = [FileResult(item.path, "error", item.header.ipppssoot if item.header else None, reason)]
            writes = Writes()
        self.summary.superseded += writes.superseded
        for r in results:
            self.emit(r)

    def _classify(self, items: list[ReadResult]) -> tuple[list[FileResult], Writes]:
        w = Writes()
        results: list[FileResult] = []
        ok = [r for r in items if r.error is None]
        batch_keys = {r.key for r in ok}
        with self.catalog.transaction() as cur:
            existing = exposures.existing(cur, sorted({r.header.ipppssoot for r in ok}))
        sibling_checked: set[tuple[str, str]] = set()
        for r in items:
            if r.error is not None:
                w.errors.append((r.path, r.error))
                results.append(FileResult(r.path, "error", None, r.error))
                continue
            results.append(self._classify_one(w, r, existing, batch_keys))
            self._supersede_catalogued_flt(w, r, existing, batch_keys, sibling_checked)
            w.read_ok.append(r.path)
        return results, w

    def _classify_one(self, w: Writes, r: ReadResult, existing: dict[tuple[str, str], Existing],
                      batch_keys: set) -> FileResult:
        """The status of one file that was read; its writes go to ``w``."""
        h = r.header
        key = r.key
        has_flc = r.filetype == "flt" and ((h.ipppssoot, "flc") in existing or (h.ipppssoot, "flc") in batch_keys)
        reason = final_reason(r.content_reason, h.instrument, h.detector, r.filetype, h.ipppssoot, has_flc,
                              self.include_small, self.only_cte)
        layers = layers_for(h.instrument, h.detector, h.filter, r.sky_cells, reason)
        old = existing.get(key)
        res = FileResult(r.path, "", h.ipppssoot, reason, [c[1] for c in r.sky_cells], [x[5] for x in layers],
                         r.filetype, old.id if old else None)
        if old is None or old.header_hash != h.header_hash or old.wcs_hash != r.wcs_hash:
            is_update = old is not None
            self._add_exposure(w, r, reason, is_update)
            self._recompute(w, key, is_update, layers)
            res.status = "updated" if is_update else ("excluded" if reason else "ingested")
            return res
        # same content: the stored path moves only if the old file is gone
        if old.path == r.path or not os.path.exists(old.path):
            w.touches.append((*key, r.path, rules.catalog_filename(r.path, *key), r.size, r.mtime_ns))
        if reason != old.reason:
            w.reasons.append((*key, reason))
            self._recompute(w, key, False, layers)
            res.status = "updated"
        else:
            res.status = "unchanged"
        return res

    def _supersede_catalogued_flt(self, w: Writes, r: ReadResult, existing: dict[tuple[str, str], Existing],
                                  batch_keys: set, checked: set) -> None:
        """An FLC supersedes a catalogued FLT that is not part of this batch."""
        h = r.header
        if r.filetype != "flc" or (h.ipppssoot, "flt") in batch_keys or r.key in checked:
            return
        checked.add(r.key)
        flt = existing.get((h.ipppssoot, "flt"))
        if flt is not None and not rules.is_content_reason(flt.reason):
            new_reason = rules.superseded_reason(h.ipppssoot)
            if flt.reason != new_reason:
                w.reasons.append((h.ipppssoot, "flt", new_reason))
                self._recompute(w, (h.ipppssoot, "flt"), False, [])
                w.superseded += 1

    @staticmethod
    def _add_exposure(w: Writes, r: ReadResult, reason: str | None, is_update: bool) -> None:
        h = r.header
        w.exposures.append((
            h.ipppssoot, r.filetype, rules.catalog_filename(r.path, h.ipppssoot, r.filetype), r.path, r.size, r.mtime_ns, h.instrument,
            h.detector, h.filter, h.exptime, h.expstart, h.expend, h.date_obs, h.proposid, h.program_id,
            h.obset_id, r.wcsname, h.header_hash, r.wcs_hash, reason, Jsonb(h.keywords), is_update,
        ))
        for c in r.chips:
            w.chips.append((h.ipppssoot, r.filetype, c.extver, c.naxis1, c.naxis2, c.ra, c.dec, c.center_ra,
                            c.center_dec, c.hpx_lo, c.hpx_hi))
        for cell in r.sky_cells:
            w.cells.append((h.ipppssoot, r.filetype, *cell))

    # -- files whose path, size and mtime match the catalog

    def fast_batch(self, rows: list[tuple]) -> None:
        """Files not re-read: re-evaluate switch-dependent exclusions; report the rest unchanged."""
        w = Writes()
        results: list[FileResult] = []
        changed: list[tuple[FileResult, tuple, str | None]] = []
        for eid, ip, ft, path, reason, inst, det, filt, has_flc in rows:
            res = FileResult(path, "unchanged", ip, reason, filetype=ft, exposure_id=eid)
            if not rules.is_content_reason(reason):
                new = final_reason(None, inst, det, ft, ip, bool(has_flc), self.include_small, self.only_cte)
                if new != reason:
                    res.status, res.reason = "updated", new
                    changed.append((res, (eid, ip, ft, inst, det, filt), new))
            results.append(res)
        with self.catalog.transaction() as cur:
            if changed:
                cells = exposures.cells_of(cur, [c[1][0] for c in changed])
                for res, (eid, ip, ft, inst, det, filt), new in changed:
                    layers = layers_for(inst, det, filt, cells[eid], new)
                    w.reasons.append((ip, ft, new))
                    self._recompute(w, (ip, ft), False, layers)
                    res.sky_cells = [c[1] for c in cells[eid]]
                    res.layers = [x[5] for x in layers]
                self._write(cur, w)
            self._fill_details(cur, results)
        for r in results:
            self.emit(r)

    def fast_lookup(self, stats: dict[str, tuple[int, int]]) -> list[tuple]:
        """Catalog rows whose (path, size, mtime) equal a file's."""
        with self.catalog.transaction() as cur:
            return exposures.fast_match(cur, stats)


def _stat_files(files: Sequence[str], early: list[tuple[str, str]]) -> dict[str, tuple[int, int]]:
    """``(size, mtime_ns)`` per regular file; the others (cannot be stat'ed, FIFOs, devices, sockets,
    directories) go to ``early`` as errors and are never opened."""
    stats: dict[str, tuple[int, int]] = {}
    for p in files:
        try:
            st = os.stat(p)
        except OSError as exc:
            early.append((p, f"cannot stat ({exc.strerror or exc})"))
            continue
        if stat.S_ISREG(st.st_mode):
            stats[p] = (st.st_size, st.st_mtime_ns)
        else:  # a FIFO would block the reader for ever, a device could have side effects
            early.append((p, f"not a regular file ({file_kind(st.st_mode)}), not opened"))
    return stats


def ingest(
    engine: sa.Engine,
    paths: Iterable[str | os.PathLike],
    *,
    jobs: int | None = None,
    include_small: bool = True,
    only_cte: bool = False,
    progress: bool = False,
    batch_size: int = DEFAULT_BATCH,
    details: bool = True,
    on_result: Callable[[FileResult], None] | None = None,
    file_time_limit: float = READ_TIME_LIMIT,
) -> IngestSummary:
    """Ingest files, directories and list files into the catalog of ``engine``.

    ``jobs``: header-reading processes (default: the usable cores; 1 reads in-process).
    ``include_small``/``only_cte``: the parsed ``MVM_INCLUDE_SMALL``/``MVM_ONLY_CTE``
    switches (:func:`mvmdb.ingest.switches_from_env`). ``progress``: a progress bar on stderr.
    ``details``: fill ``sky_cells``/``layers`` of unchanged files from the catalog.
    ``on_result`` is called with each :class:`FileResult` as soon as it is final (results
    come in batch order, not strictly input order). ``file_time_limit``: seconds one file may
    take to read before it is given up as an error. Never raises for bad files; database
    connection problems do raise.
    """
    t0 = time.monotonic()
    jobs = default_jobs() if jobs is None else max(1, int(jobs))
    summary = IngestSummary()
    files, input_errors = expand_inputs(paths)
    early: list[tuple[str, str]] = list(input_errors)
    stats = _stat_files(files, early)
    pool = start_pool(jobs) if jobs > 1 and len(stats) >= 2 * jobs else None
    bar = Progress(progress, len(files) + len(input_errors))

    def emit(r: FileResult) -> None:
        r.sky_cells.sort()
        r.layers.sort()
        summary.results.append(r)
        bar.advance()
        if on_result is not None:
            on_result(r)

    catalog = None
    done = False
    try:
        catalog = IngestConnection(engine)
        run = Ingester(catalog, include_small, only_cte, details, emit, summary)
        if early:
            run.record_errors(early)
            for path, reason in early:
                emit(FileResult(path, "error", None, reason))

        fast = run.fast_lookup(stats)
        fast_paths = {row[3] for row in fast}
        for i in range(0, len(fast), batch_size):
            run.fast_batch(fast[i:i + batch_size])

        to_read = [p for p in files if p in stats and p not in fast_paths]
        for batch in batches(read_stream(to_read, jobs, pool, time_limit=file_time_limit), batch_size):
            run.read_batch(batch)
        done = True
    finally:
        bar.close()
        if pool is not None:
            pool.terminate()
            pool.join()
        if catalog is not None:
            catalog.close(drop_staging=done)
    summary.seconds = time.monotonic() - t0
    return summary
