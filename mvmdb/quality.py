"""``mvm qa``: pixel quality checks of catalogued exposures, stored, acted upon (issue 16).

1. Exposures never checked, or whose file size or mtime changed since (:func:`mvmdb.db.qa.to_check`),
   are read once (:func:`mvmdb.fitsio.pixels.read_exposure_pixels`) and checked
   (:func:`mvmdb.qa.check_exposure`): the trail row is stored with the exposure's WCS family,
   and its alignment sources (sky positions through the header WCS) are kept.
2. A trailed exposure is excluded (kind ``trailed``, the check's reason, which starts with
   ``trailed``) unless ``report_only``: its layers are drawn again without it.
3. Each layer an exposure checked here belongs to is measured for alignment across its
   visits (visit = ipppssoot[:6]) with the stored sources; an exposure in several layers
   keeps its largest offset. Visits above the threshold (mas, the catalog's
   ``alignment_threshold_mas``, default 20) are flagged; with the catalog's
   ``alignment_policy`` ``exclude`` (default ``report``) they are excluded (kind ``alignment``).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import sqlalchemy as sa

from mvmdb import rules
from mvmdb.db import qa as qa_db
from mvmdb.errors import MvmdbError
from mvmdb.exclusion import exclude
from mvmdb.fitsio.pixels import PixelsError, read_exposure_pixels
from mvmdb.qa import check_exposure, measure_alignment
from mvmdb.sky.grid import normalize_skycell_names

__all__ = ["QaReport", "run_qa", "check_file", "configure", "layer_quality"]

QUALITY_KEYS = ("wcs_families", "flagged", "excluded")
"""Keys :func:`layer_quality` adds to a layer's coverage row (``mvm coverage --skycell``)."""


@dataclass
class QaReport:
    """``rows``: one dict per exposure and check (``ipppssoot, check, flagged, value, reason,
    wcs_family, excluded``); ``layer_families``: per layer measured, its members' WCS
    families; ``excluded``: ipppssoots excluded by this run; ``skycells``: sky cells to redraw."""

    rows: list[dict] = field(default_factory=list)
    layer_families: dict[str, list[str]] = field(default_factory=dict)
    excluded: list[str] = field(default_factory=list)
    skycells: list[str] = field(default_factory=list)
    policy: str = "report"
    threshold_mas: float = 20.0


def check_file(path: str) -> tuple[dict, np.ndarray, np.ndarray]:
    """Trail row (without ipppssoot) and alignment sources (ra, dec degrees) of one exposure file.

    An unreadable file gives an unflagged row whose reason starts with ``unchecked``.
    """
    try:
        chips = read_exposure_pixels(path)
    except PixelsError as exc:
        return {"check": "trail", "flagged": False, "value": float("nan"), "reason": f"unchecked: {exc}"}, \
            np.zeros(0), np.zeros(0)
    checks = check_exposure([(c.sci, c.dq) for c in chips], chips[0].pixel_scale)
    ras, decs = [np.zeros(0)], [np.zeros(0)]
    for chip, (x, y) in zip(chips, checks.sources):
        if len(x):
            r, d = chip.wcs.all_pix2world(np.asarray(x, float), np.asarray(y, float), 0)
            ras.append(np.asarray(r, float))
            decs.append(np.asarray(d, float))
    row = checks.trail.row("")
    row.pop("ipppssoot")
    return row, np.concatenate(ras), np.concatenate(decs)


def configure(engine: sa.Engine, *, policy: str | None = None, threshold_mas: float | None = None) -> None:
    """Store the catalog's alignment policy (``report`` | ``exclude``) and/or threshold (mas, > 0)."""
    if policy is not None and policy not in qa_db.POLICIES:
        raise MvmdbError(f"alignment policy must be one of {', '.join(qa_db.POLICIES)}, not {policy!r}")
    if threshold_mas is not None and not (math.isfinite(threshold_mas) and threshold_mas > 0):
        raise MvmdbError(f"alignment threshold must be a positive number of mas, not {threshold_mas}")
    with engine.begin() as conn:
        if policy is not None:
            qa_db.set_setting(conn, "alignment_policy", policy)
        if threshold_mas is not None:
            qa_db.set_setting(conn, "alignment_threshold_mas", repr(float(threshold_mas)))


def run_qa(engine: sa.Engine, skycells: Sequence[str] | None = None, *, report_only: bool = False,
           by: str | None = None) -> QaReport:
    """Check the exposures not checked yet (of the named sky cells, or all), store, exclude; see the module doc."""
    if skycells:
        try:
            skycells = normalize_skycell_names(skycells)
        except ValueError as exc:
            raise MvmdbError(str(exc)) from None
    with engine.begin() as conn:
        sett = qa_db.settings(conn)
        todo = qa_db.to_check(conn, skycells)
    policy = sett.get("alignment_policy", "report")
    if policy not in qa_db.POLICIES:
        raise MvmdbError(f"qa_setting alignment_policy must be one of {', '.join(qa_db.POLICIES)}, not {policy!r}")
    threshold = float(sett.get("alignment_threshold_mas", 20.0))
    report = QaReport(policy=policy, threshold_mas=threshold)
    families = {t.ipppssoot: rules.wcs_family(t.wcsname) for t in todo}
    trailed: list[tuple[str, str]] = []
    for t in todo:
        row, ra, dec = check_file(t.path)
        row = {"ipppssoot": t.ipppssoot, **row, "wcs_family": families[t.ipppssoot], "file_size": t.file_size,
               "file_mtime_ns": t.file_mtime_ns}
        with engine.begin() as conn:
            qa_db.store_checks(conn, [row])
            qa_db.store_sources(conn, t.ipppssoot, ra, dec)
        report.rows.append(row)
        if row["flagged"]:
            trailed.append((t.ipppssoot, row["reason"]))
    if not report_only:
        for ipp, reason in trailed:
            _exclude(engine, report, [ipp], reason, by, "trailed")
    align = _alignment(engine, [t.ipppssoot for t in todo], threshold, report)
    if policy == "exclude" and not report_only:
        for r in align:
            if r["flagged"]:
                _exclude(engine, report, [r["ipppssoot"]], r["reason"], by, "alignment")
    report.rows.extend(align)
    excluded = set(report.excluded)
    for r in report.rows:
        r.pop("file_size", None)
        r.pop("file_mtime_ns", None)
        r["excluded"] = r["ipppssoot"] in excluded
        r.setdefault("wcs_family", None)
        if isinstance(r["value"], float) and not math.isfinite(r["value"]):
            r["value"] = None
    report.rows.sort(key=lambda r: (r["ipppssoot"], r["check"]))
    report.skycells = sorted(set(report.skycells))
    return report


def _exclude(engine: sa.Engine, report: QaReport, ipps: list[str], reason: str, by: str | None, kind: str) -> None:
    res = exclude(engine, ipps, reason, by=by or "mvm qa", kind=kind, replace=False)
    report.excluded.extend(res.changed)
    report.skycells.extend(res.skycells)


def _alignment(engine: sa.Engine, checked: list[str], threshold: float, report: QaReport) -> list[dict]:
    """Measure every layer the checked exposures are members of; store and return one row per exposure."""
    if not checked:
        return []
    with engine.connect() as conn:
        members = qa_db.layer_sources(conn, qa_db.layers_of(conn, checked))
    by_layer: dict[str, list] = defaultdict(list)
    for m in members:
        by_layer[m.layer].append(m)
    best: dict[str, dict] = {}
    for layer, rows in by_layer.items():
        visits: dict[str, list] = defaultdict(list)
        for m in rows:
            visits[m.ipppssoot[:6]].append(m)
        cats = {v: (np.concatenate([m.ra_deg for m in ms]), np.concatenate([m.dec_deg for m in ms]))
                for v, ms in visits.items()}
        offsets = measure_alignment(cats, threshold_mas=threshold)
        for v, ms in visits.items():
            for m in ms:
                row = offsets[v].row(m.ipppssoot)
                old = best.get(m.ipppssoot)
                if old is None or _worse(row, old):
                    best[m.ipppssoot] = row
    rows = [best[k] for k in sorted(best)]
    with engine.begin() as conn:
        qa_db.store_checks(conn, rows)
        fams = {r.ipppssoot: r.wcs_family for r in qa_db.checks(conn, list(best)) if r.check == "trail"}
    for layer, ms in by_layer.items():
        report.layer_families[layer] = sorted({fams.get(m.ipppssoot) or "other" for m in ms})
    for r in rows:
        r["wcs_family"] = fams.get(r["ipppssoot"])
    return rows


def _worse(a: dict, b: dict) -> bool:
    """Whether alignment row ``a`` should replace ``b`` (flagged first, then the larger measured offset)."""
    va = a["value"] if math.isfinite(a["value"]) else -1.0
    vb = b["value"] if b["value"] is not None and math.isfinite(b["value"]) else -1.0
    return (a["flagged"], va) > (b["flagged"], vb)


def layer_quality(engine: sa.Engine, sky_cell: str) -> dict[str, dict]:
    """Per layer name of a sky cell: ``wcs_families`` of its members (sorted,
    :func:`mvmdb.rules.wcs_family` of WCSNAME), ``flagged`` (ipppssoots of members or excluded
    exposures with a flagged check) and ``excluded`` (``ipppssoot:kind`` of excluded exposures
    that would be members)."""
    from mvmdb.db.coverage import layer_quality as rows_of

    out: dict[str, dict] = {}
    for r in rows_of(engine, sky_cell):
        q = out.setdefault(r["layer_name"], {"wcs_families": set(), "flagged": [], "excluded": []})
        if r["excluded_kind"] is None:
            q["wcs_families"].add(rules.wcs_family(r["wcsname"]))
        else:
            q["excluded"].append(f"{r['ipppssoot']}:{r['excluded_kind']}")
        if r["flagged"]:
            q["flagged"].append(r["ipppssoot"])
    for q in out.values():
        q["wcs_families"] = sorted(q["wcs_families"])
    return out
