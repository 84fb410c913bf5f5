"""Ingest calibrated exposures (FLT/FLC) into the catalog.

:func:`ingest` is the plain function behind ``mvm ingest`` and ``scripts/nightly_ingest``:
``ingest(engine, paths, *, jobs, include_small, only_cte, progress) -> IngestSummary``.
One :class:`FileResult` per input file, with status

* ``ingested`` -- a new exposure, usable for MVM (layer members, NEW);
* ``excluded`` -- a new exposure stored with ``exposure.excluded_reason`` (chips, HEALPix
  ranges and sky cells are stored too; no layer memberships);
* ``unchanged`` -- already catalogued with the same header and WCS: nothing is written
  (``reason`` repeats the stored exclusion, if any);
* ``updated`` -- catalogued before, and its header or WCS changed (re-aligned), or its
  exclusion changed (other switches, an FLC appeared): footprint and memberships are
  recomputed and every affected layer is marked for redraw;
* ``error`` -- not ingested; ``reason`` says why; a row in ``ingest_error``.

``reason`` is the exclusion reason of every excluded exposure, whatever its status
(``excluded`` is the status of *new* excluded exposures only), or the error; else null.

Inputs (:func:`expand_inputs`): files (ingested whatever their name), directories
(recursive; ``*_flt.fits`` and ``*_flc.fits``), or text files listing paths (one per line,
``#`` comments; relative paths are relative to the list file). Paths are stored absolute
(``os.path.abspath``, symlinks kept).

Identity of an exposure: ``ipppssoot`` = lower-cased ``ROOTNAME``; ``filetype`` from the
file name's ``_flt``/``_flc`` suffix, else from the ``FILENAME`` keyword; else the file is
refused. Drizzled products (``_drz``/``_drc`` names, non-ipppssoot ROOTNAMEs) are refused.

FLT / FLC / duplicate paths (the rule)
--------------------------------------
* Exposure rows are unique on ``(ipppssoot, filetype)``.
* When both the FLT and the FLC of an ipppssoot are catalogued, only the FLC joins layers;
  the FLT is kept with ``excluded_reason = 'superseded by <ipppssoot>_flc.fits'`` (its
  chips and sky cells stay). An FLC arriving after its FLT supersedes the FLT then: the
  FLT's memberships are removed and their layers marked for redraw.
* The same ``(ipppssoot, filetype)`` from another path with identical header and WCS hashes
  is ``unchanged``; the stored path is kept unless it no longer exists, in which case it
  moves to the new path (the only write). With different hashes it is ``updated`` and the
  new path is stored. Within one run the inputs are applied in order: the second of two
  files with one identity is compared with the first (it lands in a later batch).

Re-ingest. A file whose absolute path, size and mtime match the stored
``file_size``/``file_mtime_ns`` is not opened at all; its switch-dependent exclusion
(``MVM_INCLUDE_SMALL``, ``MVM_ONLY_CTE``, supersession) is re-evaluated from catalog
columns (content reasons never depend on switches, see :mod:`mvmdb.rules`). A file with
another size or mtime is read; equal hashes -> ``unchanged`` (only the stored size/mtime
are refreshed).

Redraw. Layers whose membership changed are marked for redraw: all their members become
NEW with a fresh ``nextval('member_generation_seq')``. That covers every layer of an
updated exposure (before and after), and every layer that lost a member. A new member
simply joins as NEW.

Speed. Headers are read and footprints computed in worker processes (``jobs``; a fork
pool started before any thread or connection), sky cells in vectorized calls per chunk of
files; the parent writes batches with COPY into TEMP staging tables and set-based SQL, one transaction per batch
(:mod:`mvmdb.db.bulk`). A batch that fails in the database is retried file by file, so
one bad row costs only its own file.

Units: exposure times in seconds, EXPSTART/EXPEND MJD, angles in degrees.
"""

from __future__ import annotations

import logging
import math
import multiprocessing as mp
import os
import sys
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import psycopg
import sqlalchemy as sa
from psycopg.types.json import Jsonb

from mvmdb import rules
from mvmdb.db.bulk import StagingTable, copy_rows, drop_staging, ensure_staging

__all__ = [
    "STATUSES",
    "FileResult",
    "IngestSummary",
    "ReadResult",
    "ingest",
    "expand_inputs",
    "read_files",
    "default_jobs",
    "switches_from_env",
]

log = logging.getLogger(__name__)

STATUSES = ("ingested", "unchanged", "updated", "excluded", "error")
DEFAULT_BATCH = 500
"""Files per write transaction."""
MAX_CHUNK = 32
"""Files per worker task (at most)."""
SCAN_SUFFIXES = ("_flt.fits", "_flc.fits")
"""What a directory scan picks up."""
_FITS_NAMES = (".fits", ".fit", ".fts", ".fits.gz")


# --------------------------------------------------------------------------- results


@dataclass
class FileResult:
    """The outcome for one input file (``to_json`` gives the ``mvm ingest --json`` object)."""

    path: str
    status: str
    ipppssoot: str | None = None
    reason: str | None = None
    sky_cells: list[str] = field(default_factory=list)
    layers: list[str] = field(default_factory=list)
    filetype: str | None = None
    exposure_id: int | None = None

    def to_json(self) -> dict[str, Any]:
        """Keys ``path``, ``ipppssoot``, ``status``, ``reason``, ``sky_cells``, ``layers`` (a contract)."""
        return {
            "path": self.path,
            "ipppssoot": self.ipppssoot,
            "status": self.status,
            "reason": self.reason,
            "sky_cells": sorted(self.sky_cells),
            "layers": sorted(self.layers),
        }


@dataclass
class IngestSummary:
    """Counts of one :func:`ingest` run and every file's :class:`FileResult`.

    ``superseded``: FLT rows already in the catalog that an FLC of this run superseded (not
    inputs of this run, so not in ``results``). ``seconds``: wall time.
    """

    results: list[FileResult] = field(default_factory=list)
    superseded: int = 0
    seconds: float = 0.0

    @property
    def counts(self) -> Counter:
        c = Counter({s: 0 for s in STATUSES})
        c.update(r.status for r in self.results)
        return c

    @property
    def excluded_by_reason(self) -> Counter:
        """Newly excluded files (status ``excluded``) by reason category."""
        return Counter(rules.reason_category(r.reason) for r in self.results if r.status == "excluded" and r.reason)

    @property
    def errors(self) -> list[tuple[str, str]]:
        return [(r.path, r.reason or "") for r in self.results if r.status == "error"]

    @property
    def exit_code(self) -> int:
        """0, or 2 when any file failed."""
        return 2 if any(r.status == "error" for r in self.results) else 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "files": len(self.results),
            **{s: n for s, n in self.counts.items()},
            "excluded_by_reason": dict(sorted(self.excluded_by_reason.items())),
            "superseded": self.superseded,
            "seconds": round(self.seconds, 3),
        }

    def lines(self) -> list[str]:
        """A human summary, one fact per line."""
        c = self.counts
        rate = len(self.results) / self.seconds if self.seconds > 0 else float("nan")
        out = [
            f"{len(self.results)} files in {self.seconds:.1f} s ({rate:.0f}/s): {c['ingested']} ingested, "
            f"{c['unchanged']} unchanged, {c['updated']} updated, {c['excluded']} excluded, {c['error']} errors"
        ]
        for reason, n in sorted(self.excluded_by_reason.items(), key=lambda kv: (-kv[1], kv[0])):
            out.append(f"  excluded: {n} {reason}")
        if self.superseded:
            out.append(f"  {self.superseded} catalogued FLT(s) superseded by their FLC")
        return out


# --------------------------------------------------------------------------- reading (worker side)


@dataclass
class ChipRow:
    """One chip as stored: outline vertices and centre (degrees), HEALPix order-29 ranges [lo, hi)."""

    extver: int
    naxis1: int
    naxis2: int
    ra: np.ndarray
    dec: np.ndarray
    center_ra: float
    center_dec: float
    hpx_lo: np.ndarray
    hpx_hi: np.ndarray


@dataclass
class ReadResult:
    """What reading one file gives (picklable; made in worker processes)."""

    path: str
    size: int | None = None
    mtime_ns: int | None = None
    error: str | None = None
    header: Any = None  # ExposureHeader
    filetype: str | None = None
    content_reason: str | None = None
    wcs_hash: str | None = None
    wcsname: str | None = None
    chips: list[ChipRow] = field(default_factory=list)
    sky_cells: list[tuple[int, str, int, int, int]] = field(default_factory=list)  # (id, name, pc, x, y)

    @property
    def key(self) -> tuple[str, str] | None:
        return (self.header.ipppssoot, self.filetype) if self.error is None and self.header is not None else None


MAX_CHIP_RADIUS_DEG = 1.0
"""A chip outline reaching farther than this from its centre means a broken WCS (HST chips: < 0.1 deg)."""


def _center(ra: np.ndarray, dec: np.ndarray) -> tuple[float, float, float]:
    """Centre (RA, Dec) of an outline -- the normalised mean unit vector -- and its radius, degrees."""
    r, d = np.radians(ra), np.radians(dec)
    vx, vy, vz = np.cos(d) * np.cos(r), np.cos(d) * np.sin(r), np.sin(d)
    x, y, z = vx.sum(), vy.sum(), vz.sum()
    norm = math.sqrt(x * x + y * y + z * z)
    if not norm > 0:
        return float("nan"), float("nan"), 180.0
    cosr = float(np.min((vx * x + vy * y + vz * z) / norm))
    radius = math.degrees(math.acos(max(-1.0, min(1.0, cosr))))
    return float(np.degrees(np.arctan2(y, x)) % 360.0), float(np.degrees(np.arctan2(z, math.hypot(x, y)))), radius


def _read_one(path: str, healpix: bool = True) -> tuple[ReadResult, list]:
    """Read one file up to its footprints; sky cells are added by :func:`read_files`."""
    from mvmdb.fitsio.exposure import (
        HeaderError,
        chip_footprints,
        filetype_from_name,
        parse_exposure_header,
        product_suffix,
        read_exposure_file,
        wcs_hash,
    )
    res = ReadResult(path=path)
    try:
        exp = read_exposure_file(path)
        res.size, res.mtime_ns = exp.size, exp.mtime_ns
        fname_kw = exp.primary.get("FILENAME")
        fname_kw = fname_kw.strip() if isinstance(fname_kw, str) else ""
        suffix = product_suffix(path) or (product_suffix(fname_kw) if fname_kw else None)
        if suffix:
            raise HeaderError(f"a drizzled product (_{suffix}), not an exposure")
        header = parse_exposure_header(exp.primary)
        filetype = filetype_from_name(path) or (filetype_from_name(fname_kw) if fname_kw else None)
        if filetype is None:
            raise HeaderError(
                f"cannot tell FLT from FLC: neither the name {os.path.basename(path)!r} nor FILENAME "
                f"{fname_kw!r} ends in _flt.fits or _flc.fits"
            )
        footprints = chip_footprints(exp)
        chips = []
        for fp in footprints:
            cra, cdec, radius = _center(fp.ra, fp.dec)
            if not radius <= MAX_CHIP_RADIUS_DEG:
                raise HeaderError(f"[SCI,{fp.extver}]: implausible WCS (the chip outline reaches {radius:.3g} deg "
                                  f"from its centre)")
            try:
                if healpix:
                    from mvmdb.sky.healpix import polygon_ranges

                    lo, hi = np.ascontiguousarray(polygon_ranges(fp.ra, fp.dec).T)
                else:
                    lo = hi = np.zeros(0, dtype=np.int64)
            except ValueError as exc:
                raise HeaderError(f"[SCI,{fp.extver}]: chip outline unusable ({_one_line(exc)})") from None
            chips.append(ChipRow(fp.extver, fp.naxis1, fp.naxis2, fp.ra, fp.dec, cra, cdec, lo, hi))
        if len({c.extver for c in chips}) != len(chips):
            raise HeaderError("two SCI extensions with the same EXTVER")
        res.header = header
        res.filetype = filetype
        res.content_reason = rules.content_exclusion(header.keywords)
        res.wcs_hash = wcs_hash(exp.sci)
        res.wcsname = next((fp.wcsname for fp in footprints if fp.wcsname), None)
        res.chips = chips
        return res, [(fp.ra, fp.dec) for fp in footprints]
    except (ValueError, OSError) as exc:  # HeaderError, FootprintError are ValueErrors
        res.error = _one_line(exc).replace(f"{path}[", "[").replace(f"{path}: ", "")
    except MemoryError:
        res.error = "out of memory while reading the header"
    except Exception as exc:  # never let one file stop the run
        log.debug("unexpected error reading %s", path, exc_info=True)
        res.error = f"unexpected error: {type(exc).__name__}: {_one_line(exc)}"
    res.header = None
    res.chips = []
    return res, []


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:500]


def _sky_cells(polygons: list) -> list[list[tuple[int, str, int, int, int]]]:
    from mvmdb.sky.overlap import cells_overlapping

    hits = cells_overlapping(polygons)
    out: list[list] = [[] for _ in polygons]
    for i, pc, x, y in zip(hits.index.tolist(), hits.projection_cell.tolist(), hits.x.tolist(), hits.y.tolist()):
        out[i].append((pc * 10000 + x * 100 + y, f"skycell-p{pc:04d}x{x:02d}y{y:02d}", pc, x, y))
    return out


def read_files(paths: Sequence[str], *, healpix: bool = True) -> list[ReadResult]:
    """Read a chunk of files: headers, footprints, HEALPix ranges, sky cells (one vectorized call).

    Never raises for a bad file: its :class:`ReadResult` carries ``error``. ``healpix=False``
    leaves the chips' HEALPix ranges empty (drawing a poller directly needs none).
    """
    from astropy import log as astropy_log

    level = astropy_log.level
    astropy_log.setLevel("ERROR")  # astropy.wcs logs INFO notes about inconsistent SIP headers
    try:
        return _read_files(paths, healpix)
    finally:
        astropy_log.setLevel(level)


def _read_files(paths: Sequence[str], healpix: bool = True) -> list[ReadResult]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with np.errstate(all="ignore"):
            results, polys = [], []
            for path in paths:
                res, p = _read_one(path, healpix)
                results.append(res)
                polys.append(p)
            flat = [poly for p in polys for poly in p]
            owner = [i for i, p in enumerate(polys) for _ in p]
            try:
                per_chip = _sky_cells(flat) if flat else []
            except Exception:  # isolate the file whose polygon the batch call refused
                per_chip = []
                for poly in flat:
                    try:
                        per_chip.append(_sky_cells([poly])[0])
                    except Exception as exc:
                        per_chip.append(exc)
            cells: dict[int, dict] = {}
            for i, chip_cells in zip(owner, per_chip):
                if isinstance(chip_cells, Exception):
                    results[i].error = f"footprint unusable for sky cells: {_one_line(chip_cells)}"
                    continue
                for c in chip_cells:
                    cells.setdefault(i, {})[c[0]] = c
            for i, res in enumerate(results):
                if res.error is not None:
                    res.header, res.chips = None, []
                    continue
                res.sky_cells = sorted(cells.get(i, {}).values(), key=lambda c: c[1])
            return results


# --------------------------------------------------------------------------- inputs


def expand_inputs(paths: Iterable[str | os.PathLike]) -> tuple[list[str], list[tuple[str, str]]]:
    """Input arguments -> (absolute file paths in order, without duplicates; [(path, error)]).

    A directory is scanned recursively for ``*_flt.fits``/``*_flc.fits`` (sorted). A file
    named ``*.fits`` (or one that starts like FITS) is an input; another readable text file
    is a list of paths, one per line (blank lines and ``#`` comments skipped; relative
    paths relative to the list's directory).
    """
    files: list[str] = []
    seen: set[str] = set()
    errors: list[tuple[str, str]] = []

    def add(p: str) -> None:
        if p not in seen:
            seen.add(p)
            files.append(p)

    def visit(raw: str, allow_list: bool) -> None:
        path = os.path.abspath(os.path.expanduser(raw))
        if os.path.isdir(path):
            found = []
            for root, dirs, names in os.walk(path):
                dirs.sort()
                found.extend(os.path.join(root, n) for n in names if n.endswith(SCAN_SUFFIXES))
            for p in sorted(found):
                add(p)
        elif os.path.isfile(path):
            if not allow_list or path.lower().endswith(_FITS_NAMES) or _looks_fits(path):
                add(path)
                return
            lines = _read_list(path)
            if lines is None:
                add(path)  # binary, not FITS: reading it reports why
                return
            base = os.path.dirname(path)
            for line in lines:
                visit(line if os.path.isabs(line) else os.path.join(base, line), allow_list=False)
        elif os.path.lexists(path):
            errors.append((path, "not a regular file or directory"))
        else:
            errors.append((path, "no such file or directory"))

    for raw in paths:
        visit(os.fspath(raw), allow_list=True)
    return files, errors


def _looks_fits(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(9) == b"SIMPLE  ="
    except OSError:
        return True  # let the reader report it


def _read_list(path: str) -> list[str] | None:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    if b"\0" in data:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            out.append(line)
    return out


# --------------------------------------------------------------------------- switches


def switches_from_env(environ: dict[str, str] | None = None) -> tuple[bool, bool]:
    """``(include_small, only_cte)`` from ``MVM_INCLUDE_SMALL`` (default on) and ``MVM_ONLY_CTE`` (default off).

    ``ValueError`` with one clear line for values other than on/yes/true/off/no/false.
    """
    env = os.environ if environ is None else environ
    return (rules.switch_from_env(env, "MVM_INCLUDE_SMALL", True), rules.switch_from_env(env, "MVM_ONLY_CTE", False))


def default_jobs() -> int:
    """Worker processes by default: the CPU cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


# --------------------------------------------------------------------------- staging tables

S_EXP = StagingTable("s_ingest_exposure", (
    ("ipppssoot", "text"), ("filetype", "text"), ("filename", "text"), ("path", "text"),
    ("file_size", "int8"), ("file_mtime_ns", "int8"), ("instrument", "text"), ("detector", "text"),
    ("filter", "text"), ("exptime", "float8"), ("expstart", "float8"), ("expend", "float8"),
    ("date_obs", "date"), ("proposid", "int4"), ("program_id", "text"), ("obset_id", "text"),
    ("wcsname", "text"), ("header_hash", "text"), ("wcs_hash", "text"), ("excluded_reason", "text"),
    ("keywords", "jsonb"), ("is_update", "bool"),
))
S_CHIP = StagingTable("s_ingest_chip", (
    ("ipppssoot", "text"), ("filetype", "text"), ("extver", "int2"), ("naxis1", "int4"), ("naxis2", "int4"),
    ("ra", "float8[]"), ("dec", "float8[]"), ("cra", "float8"), ("cdec", "float8"), ("lo", "int8[]"), ("hi", "int8[]"),
))
S_CELL = StagingTable("s_ingest_cell", (
    ("ipppssoot", "text"), ("filetype", "text"), ("sky_cell_id", "int4"), ("name", "text"),
    ("pc", "int2"), ("x", "int2"), ("y", "int2"),
))
S_REASON = StagingTable("s_ingest_reason", (("ipppssoot", "text"), ("filetype", "text"), ("excluded_reason", "text")))
S_RECOMPUTE = StagingTable("s_ingest_recompute", (("ipppssoot", "text"), ("filetype", "text"), ("redraw", "bool")))
S_MEMBER = StagingTable("s_ingest_member", (
    ("ipppssoot", "text"), ("filetype", "text"), ("sky_cell_id", "int4"), ("instrument", "text"),
    ("detector", "text"), ("filter", "text"), ("scale", "text"), ("name", "text"),
))
S_TOUCH = StagingTable("s_ingest_touch", (
    ("ipppssoot", "text"), ("filetype", "text"), ("path", "text"), ("filename", "text"),
    ("file_size", "int8"), ("file_mtime_ns", "int8"),
))
S_DIRTY = StagingTable("s_ingest_dirty", (("layer_id", "int4"),))
S_PATHS = StagingTable("s_ingest_paths", (("path", "text"), ("file_size", "int8"), ("file_mtime_ns", "int8")))
S_IDS = StagingTable("s_ingest_ids", (("id", "int8"),))
STAGING = (S_EXP, S_CHIP, S_CELL, S_REASON, S_RECOMPUTE, S_MEMBER, S_TOUCH, S_DIRTY, S_PATHS, S_IDS)

_KEY = "e.ipppssoot = s.ipppssoot AND e.filetype = s.filetype"
_EXP_COLS = ("ipppssoot, filetype, filename, path, file_size, file_mtime_ns, instrument, detector, filter, exptime, "
             "expstart, expend, date_obs, proposid, program_id, obset_id, wcsname, header_hash, wcs_hash, "
             "excluded_reason, keywords")
_EXP_UPDATE = ", ".join(f"{c} = EXCLUDED.{c}" for c in _EXP_COLS.split(", ") if c not in ("ipppssoot", "filetype"))

SQL_RECORD_ERROR = """
INSERT INTO ingest_error (path, reason) VALUES (%s, %s)
ON CONFLICT (path) DO UPDATE
SET reason = EXCLUDED.reason, at = now(), attempts = ingest_error.attempts + 1
"""
"""One row per failing path: a repeated failure updates it (reason, last time, attempts)."""

SQL_UPSERT_EXPOSURES = f"""
INSERT INTO exposure ({_EXP_COLS})
SELECT {_EXP_COLS} FROM {S_EXP.name} ORDER BY ipppssoot, filetype
ON CONFLICT (ipppssoot, filetype) DO UPDATE SET {_EXP_UPDATE}, updated_at = now()
"""
SQL_OLD_LAYERS_DIRTY = f"""
INSERT INTO {S_DIRTY.name} (layer_id)
SELECT m.layer_id FROM layer_member m
JOIN exposure e ON e.id = m.exposure_id
JOIN {S_RECOMPUTE.name} s ON {_KEY}
WHERE s.redraw
"""
SQL_DELETE_CHIPS = f"""
DELETE FROM chip c USING exposure e, {S_EXP.name} s
WHERE c.exposure_id = e.id AND {_KEY} AND s.is_update
"""
SQL_DELETE_CELLS = f"""
DELETE FROM exposure_sky_cell x USING exposure e, {S_EXP.name} s
WHERE x.exposure_id = e.id AND {_KEY} AND s.is_update
"""
SQL_INSERT_CHIPS = f"""
INSERT INTO chip (exposure_id, extver, naxis1, naxis2, ra_deg, dec_deg, center_ra_deg, center_dec_deg)
SELECT e.id, s.extver, s.naxis1, s.naxis2, s.ra, s.dec, s.cra, s.cdec
FROM {S_CHIP.name} s JOIN exposure e ON {_KEY}
"""
SQL_INSERT_HPX = f"""
INSERT INTO chip_hpx (chip_id, hpx)
SELECT c.id, int8range(u.lo, u.hi)
FROM {S_CHIP.name} s
JOIN exposure e ON {_KEY}
JOIN chip c ON c.exposure_id = e.id AND c.extver = s.extver
CROSS JOIN LATERAL unnest(s.lo, s.hi) AS u (lo, hi)
"""
SQL_INSERT_SKY_CELLS = f"""
INSERT INTO sky_cell (id, name, projection_cell_id, x, y)
SELECT DISTINCT sky_cell_id, name, pc, x, y FROM {S_CELL.name} ORDER BY sky_cell_id
ON CONFLICT DO NOTHING
"""
SQL_INSERT_EXPOSURE_CELLS = f"""
INSERT INTO exposure_sky_cell (exposure_id, sky_cell_id)
SELECT e.id, s.sky_cell_id FROM {S_CELL.name} s JOIN exposure e ON {_KEY}
ON CONFLICT DO NOTHING
"""
SQL_UPDATE_REASONS = f"""
UPDATE exposure e SET excluded_reason = s.excluded_reason, updated_at = now()
FROM {S_REASON.name} s WHERE {_KEY}
"""
SQL_INSERT_LAYERS = f"""
INSERT INTO layer (sky_cell_id, instrument, detector, filter, scale, name)
SELECT DISTINCT sky_cell_id, instrument, detector, filter, scale, name FROM {S_MEMBER.name} ORDER BY name
ON CONFLICT DO NOTHING
"""
SQL_DELETE_GONE_MEMBERS = f"""
WITH want AS (
    SELECT e.id AS exposure_id, l.id AS layer_id
    FROM {S_MEMBER.name} s JOIN exposure e ON {_KEY} JOIN layer l ON l.name = s.name
), gone AS (
    DELETE FROM layer_member m USING exposure e, {S_RECOMPUTE.name} s
    WHERE m.exposure_id = e.id AND {_KEY}
      AND NOT EXISTS (SELECT 1 FROM want w WHERE w.exposure_id = m.exposure_id AND w.layer_id = m.layer_id)
    RETURNING m.layer_id
)
INSERT INTO {S_DIRTY.name} (layer_id) SELECT layer_id FROM gone
"""
SQL_INSERT_MEMBERS = f"""
INSERT INTO layer_member (layer_id, exposure_id)
SELECT l.id, e.id FROM {S_MEMBER.name} s JOIN exposure e ON {_KEY} JOIN layer l ON l.name = s.name
ORDER BY l.id, e.id
ON CONFLICT DO NOTHING
"""
SQL_NEW_LAYERS_DIRTY = f"""
INSERT INTO {S_DIRTY.name} (layer_id)
SELECT l.id FROM {S_MEMBER.name} m
JOIN {S_RECOMPUTE.name} s ON s.ipppssoot = m.ipppssoot AND s.filetype = m.filetype
JOIN layer l ON l.name = m.name
WHERE s.redraw
"""
SQL_REDRAW = f"""
UPDATE layer_member SET status = 'NEW', generation = nextval('member_generation_seq'), changed_at = now()
WHERE layer_id IN (SELECT layer_id FROM {S_DIRTY.name})
"""
SQL_TOUCH = f"""
UPDATE exposure e SET path = s.path, filename = s.filename, file_size = s.file_size, file_mtime_ns = s.file_mtime_ns
FROM {S_TOUCH.name} s WHERE {_KEY}
"""
SQL_EXISTING = """
SELECT id, ipppssoot, filetype, path, header_hash, wcs_hash, excluded_reason, instrument, detector, filter,
       file_size, file_mtime_ns
FROM exposure WHERE ipppssoot = ANY(%s)
"""
SQL_FAST_MATCH = f"""
SELECT e.id, e.ipppssoot, e.filetype, e.path, e.excluded_reason, e.instrument, e.detector, e.filter,
       (e.filetype = 'flt' AND EXISTS (
            SELECT 1 FROM exposure f WHERE f.ipppssoot = e.ipppssoot AND f.filetype = 'flc')) AS has_flc
FROM {S_PATHS.name} p
JOIN exposure e ON e.path = p.path AND e.file_size = p.file_size AND e.file_mtime_ns = p.file_mtime_ns
"""
SQL_DETAILS_CELLS = f"""
SELECT x.exposure_id, sc.name
FROM {S_IDS.name} i JOIN exposure_sky_cell x ON x.exposure_id = i.id JOIN sky_cell sc ON sc.id = x.sky_cell_id
"""
SQL_DETAILS_LAYERS = f"""
SELECT m.exposure_id, l.name
FROM {S_IDS.name} i JOIN layer_member m ON m.exposure_id = i.id JOIN layer l ON l.id = m.layer_id
"""
SQL_CELLS_OF = """
SELECT x.exposure_id, sc.id, sc.name, sc.projection_cell_id, sc.x, sc.y
FROM exposure_sky_cell x JOIN sky_cell sc ON sc.id = x.sky_cell_id
WHERE x.exposure_id = ANY(%s)
"""


# --------------------------------------------------------------------------- planning a batch


@dataclass
class _Existing:
    id: int
    ipppssoot: str
    filetype: str
    path: str
    header_hash: str | None
    wcs_hash: str | None
    reason: str | None
    instrument: str
    detector: str
    filter: str


@dataclass
class _Writes:
    """Everything one batch writes."""

    exposures: list[tuple] = field(default_factory=list)
    chips: list[tuple] = field(default_factory=list)
    cells: list[tuple] = field(default_factory=list)
    reasons: list[tuple] = field(default_factory=list)
    recompute: list[tuple] = field(default_factory=list)
    members: list[tuple] = field(default_factory=list)
    touches: list[tuple] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)
    read_ok: list[str] = field(default_factory=list)  # paths read and catalogued: their old errors go
    superseded: int = 0


def _layers_for(instrument: str, detector: str, filt: str, cells: Iterable[tuple], reason: str | None) -> list[tuple]:
    """(sky_cell_id, instrument, detector, filter, scale, name) of every layer an exposure belongs to."""
    if reason is not None:
        return []
    scales = rules.layer_scales(instrument, detector)
    return [
        (c[0], instrument, detector, filt, scale, rules.layer_name(c[1], instrument, detector, filt, scale))
        for c in cells
        for scale in scales
    ]


def _final_reason(content: str | None, instrument: str, detector: str, filetype: str, ipppssoot: str,
                  has_flc: bool, include_small: bool, only_cte: bool) -> str | None:
    """Content reason, else supersession (FLT with an FLC), else the switch rules."""
    if content is not None:
        return content
    if filetype == "flt" and has_flc:
        return rules.superseded_reason(ipppssoot)
    return rules.switch_exclusion(instrument, detector, filetype, include_small=include_small, only_cte=only_cte)


class _Ingester:
    """Parent-side state of one :func:`ingest` run (one database connection)."""

    def __init__(self, pg: psycopg.Connection, include_small: bool, only_cte: bool, details: bool,
                 emit: Callable[[FileResult], None], summary: IngestSummary):
        self.pg = pg
        self.include_small = include_small
        self.only_cte = only_cte
        self.details = details
        self.emit = emit
        self.summary = summary
        with pg.cursor() as cur:  # when no file is failing, successes need not clear anything
            self.errors_on_record = bool(cur.execute("SELECT EXISTS (SELECT FROM ingest_error)").fetchone()[0])
        pg.commit()

    # -- reading the catalog

    def _existing(self, cur: psycopg.Cursor, ipppssoots: list[str]) -> dict[tuple[str, str], _Existing]:
        if not ipppssoots:
            return {}
        cur.execute(SQL_EXISTING, (ipppssoots,))
        out = {}
        for row in cur.fetchall():
            ex = _Existing(row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], row[8], row[9])
            out[(ex.ipppssoot, ex.filetype)] = ex
        return out

    def _cells_of(self, cur: psycopg.Cursor, ids: list[int]) -> dict[int, list[tuple]]:
        out: dict[int, list[tuple]] = {i: [] for i in ids}
        if ids:
            cur.execute(SQL_CELLS_OF, (ids,))
            for eid, sid, name, pc, x, y in cur.fetchall():
                out[eid].append((sid, name, pc, x, y))
        return out

    def _fill_details(self, cur: psycopg.Cursor, results: list[FileResult]) -> None:
        want = [r for r in results if r.exposure_id is not None and r.status == "unchanged"]
        if not want or not self.details:
            return
        copy_rows(cur, S_IDS, ((r.exposure_id,) for r in want))
        cur.execute("ANALYZE " + S_IDS.name)  # a fresh temp table has no statistics
        cells: dict[int, list[str]] = {}
        layers: dict[int, list[str]] = {}
        for sql, out in ((SQL_DETAILS_CELLS, cells), (SQL_DETAILS_LAYERS, layers)):
            cur.execute(sql)
            for eid, name in cur.fetchall():
                out.setdefault(eid, []).append(name)
        for r in want:
            r.sky_cells = sorted(cells.get(r.exposure_id, []))
            r.layers = sorted(layers.get(r.exposure_id, []))

    # -- writing

    def _write(self, cur: psycopg.Cursor, w: _Writes) -> None:
        if w.exposures:
            copy_rows(cur, S_EXP, w.exposures)
            cur.execute(SQL_UPSERT_EXPOSURES)
            if any(row[-1] for row in w.exposures):
                cur.execute(SQL_DELETE_CHIPS)
                cur.execute(SQL_DELETE_CELLS)
        if w.chips:
            copy_rows(cur, S_CHIP, w.chips)
            cur.execute(SQL_INSERT_CHIPS)
            cur.execute(SQL_INSERT_HPX)
        if w.cells:
            copy_rows(cur, S_CELL, w.cells)
            cur.execute(SQL_INSERT_SKY_CELLS)
            cur.execute(SQL_INSERT_EXPOSURE_CELLS)
        if w.reasons:
            copy_rows(cur, S_REASON, w.reasons)
            cur.execute(SQL_UPDATE_REASONS)
        if w.recompute:
            copy_rows(cur, S_RECOMPUTE, w.recompute)
            if w.members:
                copy_rows(cur, S_MEMBER, w.members)
                cur.execute(SQL_INSERT_LAYERS)
            if any(row[2] for row in w.recompute):
                cur.execute(SQL_OLD_LAYERS_DIRTY)
            cur.execute(SQL_DELETE_GONE_MEMBERS)
            if w.members:
                cur.execute(SQL_INSERT_MEMBERS)
                cur.execute(SQL_NEW_LAYERS_DIRTY)
            cur.execute(SQL_REDRAW)
        if w.touches:
            copy_rows(cur, S_TOUCH, w.touches)
            cur.execute(SQL_TOUCH)
        if w.errors:
            cur.executemany(SQL_RECORD_ERROR, w.errors)
            self.errors_on_record = True
        if w.read_ok and self.errors_on_record:
            cur.execute("DELETE FROM ingest_error WHERE path = ANY(%s)", (w.read_ok,))

    def _recompute(self, w: _Writes, key: tuple[str, str], redraw: bool, layers: list[tuple]) -> None:
        w.recompute.append((key[0], key[1], redraw))
        w.members.extend((key[0], key[1], *layer) for layer in layers)

    # -- batches of files that were read

    def read_batch(self, items: list[ReadResult]) -> None:
        """Classify and write one batch; on a database error, retry its files one by one."""
        try:
            results, writes = self._plan_read(items)
            with self.pg.cursor() as cur:
                self._write(cur, writes)
                self._fill_details(cur, results)
            self.pg.commit()
        except Exception as exc:
            self.pg.rollback()
            if len(items) > 1:
                log.info("batch of %d files failed (%s); retrying file by file", len(items), _one_line(exc))
                for item in items:
                    self.read_batch([item])
                return
            log.debug("ingest of %s failed", items[0].path, exc_info=True)
            item = items[0]
            reason = f"database refused the exposure: {_one_line(exc)}"
            self._record_errors([(item.path, reason)])
            results = [FileResult(item.path, "error", item.header.ipppssoot if item.header else None, reason)]
            writes = _Writes()
        self.summary.superseded += writes.superseded
        for r in results:
            self.emit(r)

    def _record_errors(self, errors: list[tuple[str, str]]) -> None:
        with self.pg.cursor() as cur:
            self._write(cur, _Writes(errors=errors))
        self.pg.commit()

    def _plan_read(self, items: list[ReadResult]) -> tuple[list[FileResult], _Writes]:
        w = _Writes()
        results: list[FileResult] = []
        ok = [r for r in items if r.error is None]
        batch_keys = {r.key for r in ok}
        with self.pg.cursor() as cur:
            existing = self._existing(cur, sorted({r.header.ipppssoot for r in ok}))
        sibling_checked: set[tuple[str, str]] = set()
        for r in items:
            if r.error is not None:
                w.errors.append((r.path, r.error))
                results.append(FileResult(r.path, "error", None, r.error))
                continue
            h = r.header
            key = r.key
            has_flc = r.filetype == "flt" and ((h.ipppssoot, "flc") in existing or (h.ipppssoot, "flc") in batch_keys)
            reason = _final_reason(r.content_reason, h.instrument, h.detector, r.filetype, h.ipppssoot, has_flc,
                                   self.include_small, self.only_cte)
            layers = _layers_for(h.instrument, h.detector, h.filter, r.sky_cells, reason)
            old = existing.get(key)
            res = FileResult(r.path, "", h.ipppssoot, reason, [c[1] for c in r.sky_cells], [x[5] for x in layers],
                             r.filetype, old.id if old else None)
            if old is None or old.header_hash != h.header_hash or old.wcs_hash != r.wcs_hash:
                is_update = old is not None
                self._add_exposure(w, r, reason, is_update)
                self._recompute(w, key, is_update, layers)
                res.status = "updated" if is_update else ("excluded" if reason else "ingested")
            else:  # same content
                if old.path != r.path:
                    if not os.path.exists(old.path):
                        w.touches.append((*key, r.path, os.path.basename(r.path), r.size, r.mtime_ns))
                else:
                    w.touches.append((*key, r.path, os.path.basename(r.path), r.size, r.mtime_ns))
                if reason != old.reason:
                    w.reasons.append((*key, reason))
                    self._recompute(w, key, False, layers)
                    res.status = "updated"
                else:
                    res.status = "unchanged"
            # an FLC supersedes a catalogued FLT that is not part of this batch
            if r.filetype == "flc" and (h.ipppssoot, "flt") not in batch_keys and key not in sibling_checked:
                sibling_checked.add(key)
                flt = existing.get((h.ipppssoot, "flt"))
                if flt is not None and not rules.is_content_reason(flt.reason):
                    new_reason = rules.superseded_reason(h.ipppssoot)
                    if flt.reason != new_reason:
                        w.reasons.append((h.ipppssoot, "flt", new_reason))
                        self._recompute(w, (h.ipppssoot, "flt"), False, [])
                        w.superseded += 1
            w.read_ok.append(r.path)
            results.append(res)
        return results, w

    def _add_exposure(self, w: _Writes, r: ReadResult, reason: str | None, is_update: bool) -> None:
        h = r.header
        w.exposures.append((
            h.ipppssoot, r.filetype, os.path.basename(r.path), r.path, r.size, r.mtime_ns, h.instrument,
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
        w = _Writes()
        results: list[FileResult] = []
        changed: list[tuple[FileResult, tuple, str | None]] = []
        for eid, ip, ft, path, reason, inst, det, filt, has_flc in rows:
            res = FileResult(path, "unchanged", ip, reason, filetype=ft, exposure_id=eid)
            if not rules.is_content_reason(reason):
                new = _final_reason(None, inst, det, ft, ip, bool(has_flc), self.include_small, self.only_cte)
                if new != reason:
                    res.status, res.reason = "updated", new
                    changed.append((res, (eid, ip, ft, inst, det, filt), new))
            results.append(res)
        try:
            with self.pg.cursor() as cur:
                if changed:
                    cells = self._cells_of(cur, [c[1][0] for c in changed])
                    for res, (eid, ip, ft, inst, det, filt), new in changed:
                        layers = _layers_for(inst, det, filt, cells[eid], new)
                        w.reasons.append((ip, ft, new))
                        self._recompute(w, (ip, ft), False, layers)
                        res.sky_cells = [c[1] for c in cells[eid]]
                        res.layers = [x[5] for x in layers]
                    self._write(cur, w)
                self._fill_details(cur, results)
            self.pg.commit()
        except Exception:
            self.pg.rollback()
            raise
        for r in results:
            self.emit(r)

    def fast_lookup(self, stats: dict[str, tuple[int, int]]) -> list[tuple]:
        """Catalog rows whose (path, size, mtime) equal a file's."""
        if not stats:
            return []
        with self.pg.cursor() as cur:
            copy_rows(cur, S_PATHS, ((p, s, m) for p, (s, m) in stats.items()))
            cur.execute(SQL_FAST_MATCH)
            rows = cur.fetchall()
        self.pg.commit()
        return rows


# --------------------------------------------------------------------------- driver


def _chunks(paths: list[str], jobs: int) -> list[list[str]]:
    size = max(1, min(MAX_CHUNK, math.ceil(len(paths) / max(1, jobs * 4))))
    return [paths[i:i + size] for i in range(0, len(paths), size)]


def _read_stream(paths: list[str], jobs: int, pool=None) -> Iterator[ReadResult]:
    chunks = _chunks(paths, jobs)
    if pool is None or len(chunks) <= 1:
        for chunk in chunks:
            yield from read_files(chunk)
        return
    for results in pool.imap(read_files, chunks):
        yield from results


def _start_pool(jobs: int):
    """A pool of ``jobs`` header readers, forked now -- before this process starts any thread
    (progress bar) or opens its catalog connection, which the children never use (they
    leave through ``os._exit``, so nothing of the parent's is closed or flushed by them).
    The reading modules (astropy, healpy, scipy) are imported first, so that the children
    inherit them instead of each importing them again (~1 s of CPU per child)."""
    import healpy  # noqa: F401  (mvmdb.sky.healpix imports it and scipy.spatial when first used)
    import scipy.spatial  # noqa: F401

    import mvmdb.fitsio.exposure  # noqa: F401
    import mvmdb.sky.overlap

    mvmdb.sky.overlap._pc_trig()  # the projection-cell tables, computed once
    return mp.get_context("fork").Pool(jobs)


def _batches(stream: Iterable[ReadResult], size: int) -> Iterator[list[ReadResult]]:
    """Batches of at most ``size`` results in which no exposure identity appears twice.

    A second file with an identity already in the batch waits for the next batch, so files
    with one identity are applied one after the other, in input order.
    """
    batch: list[ReadResult] = []
    keys: set = set()
    carry: list[ReadResult] = []

    def add(r: ReadResult) -> None:
        k = r.key
        if k is not None and k in keys:
            carry.append(r)
            return
        batch.append(r)
        if k is not None:
            keys.add(k)

    for r in stream:
        add(r)
        if len(batch) >= size:
            yield batch
            batch, keys = [], set()
            pending, carry = carry, []
            for c in pending:
                add(c)
    while batch or carry:
        if batch:
            yield batch
        batch, keys = [], set()
        pending, carry = carry, []
        for c in pending:
            add(c)


class _Progress:
    """A rich progress bar on stderr (or nothing)."""

    def __init__(self, enabled: bool, total: int):
        self.bar = None
        if enabled and total:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("ingest"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                                console=Console(stderr=True), transient=True)
            self.task = self.bar.add_task("ingest", total=total)
            self.bar.start()

    def advance(self) -> None:
        if self.bar is not None:
            self.bar.advance(self.task)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


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
) -> IngestSummary:
    """Ingest files, directories and list files into the catalog of ``engine``.

    ``jobs``: header-reading processes (default: the usable cores; 1 reads in-process).
    ``include_small``/``only_cte``: the parsed ``MVM_INCLUDE_SMALL``/``MVM_ONLY_CTE``
    switches (:func:`switches_from_env`). ``progress``: a progress bar on stderr.
    ``details``: fill ``sky_cells``/``layers`` of unchanged files from the catalog.
    ``on_result`` is called with each :class:`FileResult` as soon as it is final (results
    come in batch order, not strictly input order). Never raises for bad files; database
    connection problems do raise.
    """
    t0 = time.monotonic()
    jobs = default_jobs() if jobs is None else max(1, int(jobs))
    summary = IngestSummary()
    files, input_errors = expand_inputs(paths)
    stats: dict[str, tuple[int, int]] = {}
    early: list[tuple[str, str]] = list(input_errors)
    for p in files:
        try:
            st = os.stat(p)
            stats[p] = (st.st_size, st.st_mtime_ns)
        except OSError as exc:
            early.append((p, f"cannot stat ({exc.strerror or exc})"))
    pool = _start_pool(jobs) if jobs > 1 and len(stats) >= 2 * jobs else None
    bar = _Progress(progress, len(files) + len(input_errors))

    def emit(r: FileResult) -> None:
        r.sky_cells.sort()
        r.layers.sort()
        summary.results.append(r)
        bar.advance()
        if on_result is not None:
            on_result(r)

    raw = None
    try:
        raw = engine.raw_connection()
        pg = raw.driver_connection
        with pg.cursor() as cur:
            ensure_staging(cur, STAGING)
        pg.commit()
        run = _Ingester(pg, include_small, only_cte, details, emit, summary)
        if early:
            run._record_errors(early)
            for path, reason in early:
                emit(FileResult(path, "error", None, reason))

        fast = run.fast_lookup(stats)
        fast_paths = {row[3] for row in fast}
        for i in range(0, len(fast), batch_size):
            run.fast_batch(fast[i:i + batch_size])

        to_read = [p for p in files if p in stats and p not in fast_paths]
        for batch in _batches(_read_stream(to_read, jobs, pool), batch_size):
            run.read_batch(batch)
        with pg.cursor() as cur:
            drop_staging(cur, STAGING)
        pg.commit()
    finally:
        bar.close()
        if pool is not None:
            pool.terminate()
            pool.join()
        if raw is not None:
            raw.close()
    summary.seconds = time.monotonic() - t0
    return summary


def print_error_line(result: FileResult, stream=None) -> None:
    """``mvm: <path>: <reason>`` on stderr for a failed file."""
    print(f"mvm: {result.path}: {result.reason}", file=stream or sys.stderr, flush=True)
