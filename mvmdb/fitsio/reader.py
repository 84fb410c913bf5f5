"""Reading exposure files for the catalog: headers, chip outlines, HEALPix ranges, sky cells.

:func:`read_files` is what ingest's reader workers run on a chunk of paths (and what
``mvm process`` of an uncatalogued poller uses): per file one picklable
:class:`ReadResult` -- the typed primary header (:func:`mvmdb.fitsio.exposure.parse_exposure_header`,
the one exposure-header parser), the file type (``flt``/``flc``, from the name or the
``FILENAME`` keyword), the content exclusion reason (:func:`mvmdb.rules.content_exclusion`),
the WCS hash and one :class:`ChipRow` per SCI extension -- and the sky cells of all chips in
one vectorized call per chunk. Never raises for a bad file: its result carries ``error``.

Units: angles in degrees; HEALPix order-29 NESTED ranges ``[lo, hi)``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mvmdb import rules
from mvmdb.errors import one_line
from mvmdb.fitsio.exposure import (
    HeaderError,
    chip_footprints,
    filetype_from_name,
    parse_exposure_header,
    product_suffix,
    read_exposure_file,
    wcs_hash,
)
from mvmdb.sky.grid import SkyCell

__all__ = ["ChipRow", "ReadResult", "MAX_CHIP_RADIUS_DEG", "READ_TIME_LIMIT", "read_files"]

log = logging.getLogger(__name__)


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


READ_TIME_LIMIT = 60.0
"""Seconds one file may take to read (headers of a real FLT/FLC: milliseconds); then it is an error."""


class _TimeLimit(BaseException):
    """Raised by the SIGALRM handler inside a read that ran past its time limit (a BaseException:
    no ``except Exception`` on the way may swallow it)."""


@contextlib.contextmanager
def _time_limit(seconds: float | None):
    """Interrupt the block with :class:`_TimeLimit` after ``seconds`` (main thread only: signals).

    A blocking system call (a stalled network file system) is interrupted too; elsewhere the
    block runs unguarded (the ingest pool's parent has its own guard)."""
    if not seconds or seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum, frame):
        raise _TimeLimit()

    old = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


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


def _read_one(path: str, time_limit: float | None = None, healpix: bool = True) -> tuple[ReadResult, list]:
    """Read one file up to its footprints; sky cells are added by :func:`read_files`."""
    res = ReadResult(path=path)
    try:
        with _time_limit(time_limit):
            return _read_one_unguarded(path, res, healpix)
    except _TimeLimit:
        res.error = f"reading took longer than {time_limit:g} s; given up (a stalled file system?)"
    res.header = None
    res.chips = []
    return res, []


def _read_one_unguarded(path: str, res: ReadResult, healpix: bool) -> tuple[ReadResult, list]:
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
            for keyword, value in (("EXTVER", fp.extver), ("NAXIS1", fp.naxis1), ("NAXIS2", fp.naxis2)):
                if (problem := rules.int_problem(keyword, value)) is not None:
                    raise HeaderError(f"[SCI,{fp.extver}]: {problem}")
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
                raise HeaderError(f"[SCI,{fp.extver}]: chip outline unusable ({one_line(exc)})") from None
            chips.append(ChipRow(fp.extver, fp.naxis1, fp.naxis2, fp.ra, fp.dec, cra, cdec, lo, hi))
        if len({c.extver for c in chips}) != len(chips):
            raise HeaderError("two SCI extensions with the same EXTVER")
        res.header = header
        res.filetype = filetype
        res.content_reason = rules.catalog_exclusion(header.keywords)
        res.wcs_hash = wcs_hash(exp.sci)
        res.wcsname = next((fp.wcsname for fp in footprints if fp.wcsname), None)
        res.chips = chips
        return res, [(fp.ra, fp.dec) for fp in footprints]
    except (ValueError, OSError) as exc:  # HeaderError, FootprintError are ValueErrors
        res.error = one_line(exc).replace(f"{path}[", "[").replace(f"{path}: ", "")
    except MemoryError:
        res.error = "out of memory while reading the header"
    except Exception as exc:  # never let one file stop the run
        log.debug("unexpected error reading %s", path, exc_info=True)
        res.error = f"unexpected error: {type(exc).__name__}: {one_line(exc)}"
    res.header = None
    res.chips = []
    return res, []


def _sky_cells(polygons: list) -> list[list[tuple[int, str, int, int, int]]]:
    """Per polygon, ``(sky_cell_id, name, pc, x, y)`` of every sky cell it overlaps."""
    from mvmdb.sky.overlap import cells_overlapping

    hits = cells_overlapping(polygons)
    out: list[list] = [[] for _ in polygons]
    for i, pc, x, y in zip(hits.index.tolist(), hits.projection_cell.tolist(), hits.x.tolist(), hits.y.tolist()):
        cell = SkyCell(pc, x, y)
        out[i].append((cell.id, cell.name, pc, x, y))
    return out


def read_files(paths: Sequence[str], time_limit: float | None = None, *, healpix: bool = True) -> list[ReadResult]:
    """Read a chunk of files: headers, footprints, HEALPix ranges, sky cells (one vectorized call).

    Never raises for a bad file: its :class:`ReadResult` carries ``error``; so does a file
    whose reading takes longer than ``time_limit`` seconds (None: no limit; ingest gives
    :data:`READ_TIME_LIMIT`). ``healpix=False`` leaves the chips' HEALPix ranges empty
    (drawing a poller directly needs none).
    """
    from astropy import log as astropy_log

    level = astropy_log.level
    astropy_log.setLevel("ERROR")  # astropy.wcs logs INFO notes about inconsistent SIP headers
    try:
        return _read_files(paths, time_limit, healpix)
    finally:
        astropy_log.setLevel(level)


def _read_files(paths: Sequence[str], time_limit: float | None, healpix: bool = True) -> list[ReadResult]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with np.errstate(all="ignore"):
            results, polys = [], []
            for path in paths:
                res, p = _read_one(path, time_limit, healpix)
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
                    results[i].error = f"footprint unusable for sky cells: {one_line(chip_cells)}"
                    continue
                for c in chip_cells:
                    cells.setdefault(i, {})[c[0]] = c
            for i, res in enumerate(results):
                if res.error is not None:
                    res.header, res.chips = None, []
                    continue
                res.sky_cells = sorted(cells.get(i, {}).values(), key=lambda c: c[1])
            return results
