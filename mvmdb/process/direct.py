"""``mvm process POLLER`` for a poller the catalog does not know: draw its files directly.

If the catalog knows the poller's sky cell and every file the poller lists, the sky cell's
job is processed instead (:mod:`mvmdb.process.run`). Otherwise (an archive poller naming
files never ingested) the poller's files are drawn *directly*: headers and footprints are
read with the catalog's reader (:func:`mvmdb.fitsio.reader.read_files`), layers are formed
from the poller rows as the archive does (detector + filter, fine twin of coarse layers;
layers without a NEW row are skipped), products are written atomically and nothing is
recorded in the catalog; every result says so in its ``reason``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

from mvmdb import rules
from mvmdb.db import jobs, skycells, snapshot
from mvmdb.db.snapshot import LayerInfo, MemberInfo
from mvmdb.fitsio.reader import read_files
from mvmdb.process import embed
from mvmdb.process.draw import DrawOptions, draw_layer, footprint_box
from mvmdb.process.job import LayerResult
from mvmdb.sky.grid import SkyCell

__all__ = ["DIRECT_NOTE", "catalog_match", "busy_results", "process_poller_direct"]

DIRECT_NOTE = "not in the catalog: drawn directly from the poller's files, no catalog bookkeeping"


def catalog_match(engine: sa.Engine, rows) -> tuple[int | None, list[str]]:
    """(sky cell id if catalogued, paths of poller rows the catalog does not know)."""
    with engine.connect() as conn:
        sid = skycells.id_of(conn, rows[0].skycell)
    return sid, snapshot.unknown_paths(engine, [os.path.abspath(r.path) for r in rows])


def busy_results(engine: sa.Engine, sky_cell_id: int) -> list[LayerResult]:
    """Every layer of a sky cell that another worker is processing, reported ``skipped``."""
    running = jobs.running_job(engine, sky_cell_id)
    who = f"job {running[0]} on worker {running[1]}" if running else "another worker"
    return [LayerResult(n, None, "skipped", f"sky cell is being processed by {who}", c)
            for n, c in snapshot.member_counts(engine, sky_cell_id)]


@dataclass
class _DirectLayer:
    """The members of one (instrument, detector, filter) of a poller, and whether a row is NEW."""

    members: list[MemberInfo] = field(default_factory=list)
    new: bool = False
    excluded: list[str] = field(default_factory=list)


def _read_poller_files(rows) -> tuple[dict[tuple[str, str, str], _DirectLayer], list[MemberInfo], list[tuple[Any, str]]]:
    """Read the poller's files: layers by (instrument, detector, filter), all members, unreadable rows.

    Exposures are left out of their layers by the same rules as at ingest, including the
    ``MVM_INCLUDE_SMALL`` / ``MVM_ONLY_CTE`` switches read from the environment.
    """
    include_small = rules.switch_from_env(os.environ, "MVM_INCLUDE_SMALL", True)
    only_cte = rules.switch_from_env(os.environ, "MVM_ONLY_CTE", False)
    reads = read_files([os.path.abspath(r.path) for r in rows], healpix=False)
    layers: dict[tuple[str, str, str], _DirectLayer] = {}
    bad: list[tuple[Any, str]] = []
    all_members: list[MemberInfo] = []
    for row, res in zip(rows, reads):
        if res.error is not None or res.header is None:
            bad.append((row, f"input {res.path}: {res.error}"))
            continue
        h = res.header
        m = MemberInfo(path=res.path, filetype=res.filetype, exptime=h.exptime,
                       polygons=[(np.asarray(c.ra, float), np.asarray(c.dec, float)) for c in res.chips],
                       status=row.status)
        all_members.append(m)
        entry = layers.setdefault((h.instrument, h.detector, h.filter), _DirectLayer())
        entry.new |= row.status == "NEW"
        reason = rules.exclusion_reason(h.keywords, include_small=include_small, only_cte=only_cte,
                                        filetype=res.filetype)
        if reason:
            entry.excluded.append(f"{os.path.basename(res.path)}: {reason}")
        else:
            entry.members.append(m)
    return layers, all_members, bad


def process_poller_direct(rows, products_dir: Path, *, options: DrawOptions = DrawOptions(),
                          note: str = DIRECT_NOTE) -> list[LayerResult]:
    """Draw a poller's files without the catalog (see the module docstring)."""
    skycell = SkyCell.from_name(rows[0].skycell)
    layers, all_members, bad = _read_poller_files(rows)
    box = embed.common_box(None, footprint_box(skycell, all_members))
    results: list[LayerResult] = []
    target = Path(products_dir) / skycell.name
    bad_by_key: dict = {}
    for row, why in bad:
        inst = rules.instrument_from_rootname(os.path.basename(row.path)) or "?"
        bad_by_key.setdefault((inst, row.detector.upper(), row.filters.lower()), []).append(why)
    for key, why in bad_by_key.items():
        if key not in layers:
            name = f"hst_{skycell.name}_{key[0].lower()}_{key[1].lower()}_{key[2]}"
            results.append(LayerResult(name, None, "failed", f"{why[0]}; {note}", len(why)))
    for (inst, det, filt), entry in sorted(layers.items()):
        for scale in rules.layer_scales(inst, det):
            name = rules.layer_name(skycell.name, inst, det, filt, scale)
            lay = LayerInfo(name, inst, det, filt, scale, entry.members)
            results.append(_direct_layer(lay, entry, skycell, box, target, options, note,
                                         bad_by_key.get((inst, det, filt))))
    return results


def _direct_layer(lay: LayerInfo, entry: _DirectLayer, skycell: SkyCell, box: embed.Box | None, target: Path,
                  options: DrawOptions, note: str, bad: list[str] | None) -> LayerResult:
    """Draw one layer of a poller drawn directly (or say why not)."""
    n = len(entry.members)
    if bad:
        return LayerResult(lay.name, None, "failed", f"{bad[0]}; {note}", n)
    if not entry.new:
        return LayerResult(lay.name, None, "skipped", f"no NEW row in the poller; {note}", n)
    if not entry.members or box is None:
        why = "all members excluded: " + "; ".join(entry.excluded) if not entry.members \
            else "no member chip falls on the sky cell"
        return LayerResult(lay.name, None, "skipped", f"{why}; {note}", 0)
    try:
        d = draw_layer(lay, skycell, box, target, staging=False, options=options)
    except Exception as exc:  # InputError and anything file-specific: this layer only
        return LayerResult(lay.name, None, "failed", f"{exc}; {note}", n)
    if d is None:
        return LayerResult(lay.name, None, "skipped", f"no member chip falls on the sky cell; {note}", n)
    return LayerResult(lay.name, str(d.path), "done", note, d.n_members, d.keywords)
