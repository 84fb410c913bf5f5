"""A star with a proper motion in a scene's truth, and its position in every exposure.

Used by :func:`mvmdb.simulate.simulate_scene` (``proper_motion=``) and
:func:`mvmdb.simulate.add_visit`. The star is appended to the truth table (the other rows
and their order are untouched), with the proper-motion columns of :mod:`.truth` (``pm_ra``,
``pm_dec`` in mas/yr, ``pm_epoch`` MJD) on every row. Its reference epoch is the scene's
first exposure start (EXPSTART, MJD): ``ra``/``dec`` hold then, and it moves linearly in the
tangent plane from there (:func:`mvmdb.simulate.truth.positions_at`). Exposures render it
where it is at mid-exposure; truth meta ``pm_positions`` records that position per exposure.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from astropy.table import Table

from mvmdb.simulate.instruments import chip_geometry, tan_deproject, tan_project
from mvmdb.simulate.truth import has_proper_motion, positions_at
from mvmdb.simulate.writer import ExposureSpec

__all__ = ["MOVING_STAR_MAG", "MOVING_STAR_COLOR", "isolated_position", "add_moving_star", "record_positions",
           "mid_exposure"]

MOVING_STAR_MAG = 20.0
"""AB magnitude (6000 A) of the moving star: S/N of hundreds in every scene exposure, below
saturation on every detector at full resolution (peak ~15 000 e- in a 500 s ACS/WFC F775W frame)."""

MOVING_STAR_COLOR = 0.5
"""SED slope of the moving star (mag per octave, :mod:`.truth`)."""


def mid_exposure(spec: ExposureSpec) -> float:
    """MJD of the middle of an exposure: EXPSTART + EXPTIME/2."""
    return float(spec.expstart) + float(spec.exptime) / 2.0 / 86400.0


def _coverage(specs: Sequence[ExposureSpec], ra: np.ndarray, dec: np.ndarray, margin: float) -> np.ndarray:
    """How many of ``specs`` have a chip holding each position at least ``margin`` arcsec from
    its edges (linear TAN part of the chip WCS; the margin absorbs the distortion)."""
    count = np.zeros(ra.size, np.int64)
    for spec in specs:
        det = spec.model
        inside = np.zeros(ra.size, bool)
        for chip in det.chips:
            g = chip_geometry(det, chip, spec.ra, spec.dec, spec.orientat, 16)  # footprint does not depend on K
            e, n = tan_project(ra, dec, *g.crval)
            px, py = np.linalg.inv(g.cd) @ np.vstack([e, n]) / 3600.0
            m = margin / g.pixel_scale
            inside |= (np.abs(px) < g.nx / 2 - m) & (np.abs(py) < g.ny / 2 - m)  # CRPIX ~ chip centre
        count += inside
    return count


def isolated_position(truth: Table, specs: Sequence[ExposureSpec], center: tuple[float, float],
                      search: float = 30.0, step: float = 1.0, margin: float = 8.0) -> tuple[float, float, float]:
    """A point seen by as many of ``specs`` as possible, and then farthest from every truth source.

    Candidates lie on a grid (``step`` arcsec) within ``search`` arcsec (east and north) of
    the mean aperture position (tangent plane at ``center``, degrees). First rank: the
    number of exposures with a chip holding the point ``margin`` arcsec inside its edges
    (chip gaps avoided); second: the clearance, the distance to the nearest source edge (a
    galaxy counts as 5 ``r_eff`` wide). Returns ``(ra, dec, clearance)``: degrees, arcsec.
    """
    ax, ay = tan_project(np.array([s.ra for s in specs]), np.array([s.dec for s in specs]), *center)
    gx, gy = np.meshgrid(np.arange(-search, search + step / 2, step), np.arange(-search, search + step / 2, step))
    cx = (float(np.mean(ax)) + gx).ravel()
    cy = (float(np.mean(ay)) + gy).ravel()
    cra, cdec = tan_deproject(cx, cy, *center)
    seen = _coverage(specs, cra, cdec, margin)
    if len(truth):
        sx, sy = tan_project(np.asarray(truth["ra"], float), np.asarray(truth["dec"], float), *center)
        size = 5.0 * np.asarray(truth["r_eff"], float) if "r_eff" in truth.colnames else np.zeros(len(truth))
        dist = np.hypot(cx[:, None] - sx[None, :], cy[:, None] - sy[None, :]) - size[None, :]
        clearance = dist.min(axis=1)
    else:
        clearance = np.full(cx.size, math.inf)
    best = int(np.lexsort((-clearance, -seen))[0])  # most exposures, then most isolated; ties: first
    return float(cra[best]), float(cdec[best]), float(clearance[best])


def add_moving_star(truth: Table, specs: Sequence[ExposureSpec], center: tuple[float, float],
                    proper_motion: float, position_angle: float = 45.0) -> int:
    """Append a bright isolated star moving ``proper_motion`` mas/yr towards ``position_angle``
    (deg east of north) to ``truth`` (in place); returns its id.

    Reference epoch: the earliest EXPSTART of ``specs`` (MJD). Every row gets the
    proper-motion columns (0 mas/yr for the others). Meta: ``pm_star_id``,
    ``pm_isolation_arcsec`` (clearance of the reference position, :func:`isolated_position`).
    """
    if has_proper_motion(truth):
        raise ValueError("the truth table already has proper motions")
    if not specs:
        raise ValueError("a moving star needs at least one exposure")
    ra, dec, clearance = isolated_position(truth, specs, center)
    epoch = min(float(s.expstart) for s in specs)
    star_id = int(np.max(truth["id"])) + 1 if len(truth) else 0
    pa = math.radians(position_angle)
    pm_ra, pm_dec = proper_motion * math.sin(pa), proper_motion * math.cos(pa)
    n = len(truth)
    truth["pm_ra"] = np.zeros(n)
    truth["pm_dec"] = np.zeros(n)
    truth["pm_epoch"] = np.full(n, epoch)
    row = {c: truth[c].dtype.type(0) for c in truth.colnames}
    row.update(id=star_id, kind="star", ra=ra, dec=dec, mag=MOVING_STAR_MAG, color=MOVING_STAR_COLOR,
               axis_ratio=1.0, pm_ra=pm_ra, pm_dec=pm_dec, pm_epoch=epoch)
    truth.add_row([row[c] for c in truth.colnames])
    for col, unit, desc in [("pm_ra", "mas / yr", "proper motion in RA * cos(Dec)"),
                            ("pm_dec", "mas / yr", "proper motion in Dec"),
                            ("pm_epoch", "d", "MJD at which ra/dec hold")]:
        truth[col].unit = unit
        truth[col].description = desc
    truth.meta["pm_star_id"] = star_id
    truth.meta["pm_isolation_arcsec"] = round(clearance, 3)
    return star_id


def record_positions(truth: Table, specs: Sequence[ExposureSpec]) -> None:
    """Append each moving source's mid-exposure position in every exposure of ``specs`` to the
    truth meta ``pm_positions`` (see :mod:`.truth`). No-op without proper motions."""
    if not has_proper_motion(truth):
        return
    moving = np.flatnonzero((np.asarray(truth["pm_ra"]) != 0) | (np.asarray(truth["pm_dec"]) != 0))
    out = list(truth.meta.get("pm_positions", []) or [])
    for spec in specs:
        if spec.keywords.get("_no_truth"):
            continue
        t = mid_exposure(spec)
        ra, dec = positions_at(truth, t)
        for i in moving:
            out.append({"id": int(truth["id"][i]), "ipppssoot": spec.rootname, "mjd": round(t, 8),
                        "ra": float(ra[i]), "dec": float(dec[i])})
    truth.meta["pm_positions"] = out
