"""Where things fall on the sky grid: sky cells of a position, of positions in a CSV file, of exposures.

Plain functions behind ``mvm skycell`` (which parses and prints): :func:`parse_angle`,
:func:`describe_position`, :func:`describe_skycell`, :func:`cells_for_positions`,
:func:`read_positions_csv` and :func:`footprint_cells`. Angles in degrees; pixel
positions 0-based, CRPIX 1-based; sky-cell names ``skycell-pPPPPxXXyYY`` (x, y 1-based).
The geometry is :mod:`mvmdb.sky`; exposure footprints are read by :mod:`mvmdb.fitsio.chips`.
"""

from __future__ import annotations

import math
import os
import warnings
from typing import Sequence

import numpy as np

from mvmdb.sky.grid import SkyCell, scale_arcsec
from mvmdb.sky.overlap import cells_at, cells_overlapping

__all__ = [
    "describe_position",
    "describe_skycell",
    "cells_for_positions",
    "read_positions_csv",
    "footprint_cells",
    "parse_angle",
]


def parse_angle(text: str, *, is_ra: bool) -> float:
    """Degrees from ``'181.1754'`` or sexagesimal (``'12:04:42.1'`` hours for RA, ``'+27:54:11'`` degrees for Dec).

    ``ValueError`` with a readable message otherwise; Dec must lie in [-90, 90].
    """
    what = "RA" if is_ra else "Dec"
    s = text.strip()
    try:
        value = float(s)
    except ValueError:
        from astropy import units as u
        from astropy.coordinates import Angle

        sexagesimal = any(c in s for c in ":hms ")
        unit = u.hourangle if (is_ra and sexagesimal and "d" not in s) else u.deg
        try:
            value = float(Angle(s, unit=unit).deg)
        except Exception:
            raise ValueError(f"{what} {text!r} is not an angle (degrees, or sexagesimal like 12:04:42.1)") from None
    if not math.isfinite(value):
        raise ValueError(f"{what} {text!r} is not finite")
    if not is_ra and not -90.0 <= value <= 90.0:
        raise ValueError(f"Dec {text!r} is outside [-90, 90] degrees")
    return value % 360.0 if is_ra else value


def describe_skycell(cell: SkyCell | str, scale: str | float = "fine") -> dict:
    """A sky cell's WCS at ``scale`` as plain values: CRVAL (deg), CRPIX (1-based), CD (deg/px), NAXIS, corners.

    ``corners`` are the closed footprint (5 points, RA/Dec degrees) at the centres of the
    corner pixels, as the archive's ``SkyCell.corners``.
    """
    sc = SkyCell.from_name(cell) if isinstance(cell, str) else cell
    w = sc.wcs(scale)
    pc = sc.pc
    return {
        "name": sc.name,
        "scellid": sc.scellid,
        "projection_cell": sc.projection_cell,
        "x": sc.x,
        "y": sc.y,
        "ring": pc.ring,
        "band": pc.band,
        "scale": scale if isinstance(scale, str) else float(scale),
        "pscale_arcsec": scale_arcsec(scale),
        "ctype": list(w.wcs.ctype),
        "crval": [float(v) for v in w.wcs.crval],
        "crpix": [float(v) for v in w.wcs.crpix],
        "cd": [[float(v) for v in row] for row in w.wcs.cd],
        "naxis": [int(v) for v in w.pixel_shape],
        "corners": [[float(a), float(b)] for a, b in sc.corners(scale)],
    }


def describe_position(ra_deg: float, dec_deg: float, scale: str | float = "fine") -> dict:
    """Sky cells containing (RA, Dec) in degrees, with the position's 0-based pixel in each at ``scale``."""
    hits = cells_at(ra_deg, dec_deg)
    details = []
    for sc in hits.skycells():
        w = sc.wcs(scale)
        px, py = w.world_to_pixel_values(ra_deg, dec_deg)
        details.append({
            "name": sc.name,
            "projection_cell": sc.projection_cell,
            "x": sc.x,
            "y": sc.y,
            "pixel": [float(px), float(py)],
            "crpix": [float(v) for v in w.wcs.crpix],
            "naxis": int(w.pixel_shape[0]),
        })
    return {
        "ra": float(ra_deg),
        "dec": float(dec_deg),
        "scale": scale if isinstance(scale, str) else float(scale),
        "cells": [d["name"] for d in details],
        "skycells": details,
    }


def read_positions_csv(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """RA, Dec arrays (degrees) from a CSV file with columns ``ra,dec`` (header optional).

    With a header, the columns named ``ra`` and ``dec`` (any case, any order) are used;
    without one, the first two columns. ``ValueError`` for unreadable or malformed files.
    """
    try:
        with open(path, encoding="utf-8") as fh:
            first = ""
            skip = 0
            for line in fh:
                skip += 1
                if line.strip():
                    first = line
                    break
    except OSError as exc:
        raise ValueError(f"cannot read {os.fspath(path)}: {exc.strerror or exc}") from None
    if not first:
        return np.zeros(0), np.zeros(0)
    fields = [f.strip().strip('"').lower() for f in first.split(",")]
    try:
        [float(f) for f in fields[:2]]
        header = False
        cols = (0, 1)
        skip -= 1
    except ValueError:
        header = True
        if "ra" not in fields or "dec" not in fields:
            raise ValueError(f"{os.fspath(path)}: header must name columns 'ra' and 'dec' (got {first.strip()!r})") from None
        cols = (fields.index("ra"), fields.index("dec"))
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="loadtxt: input contained no data", category=UserWarning)
            data = np.loadtxt(path, delimiter=",", skiprows=skip, usecols=cols, ndmin=2, dtype=float,
                              comments="#", encoding="utf-8")
    except ValueError as exc:
        raise ValueError(f"{os.fspath(path)}: malformed positions ({exc})") from None
    ra, dec = data[:, 0], data[:, 1]
    bad = ~np.isfinite(ra) | ~np.isfinite(dec) | (np.abs(dec) > 90)
    if bad.any():
        row = int(np.nonzero(bad)[0][0])
        raise ValueError(f"{os.fspath(path)}: data row {row + 1}{' after the header' if header else ''} "
                         f"has an invalid position ({ra[row]}, {dec[row]})")
    return ra, dec


def cells_for_positions(ra_deg, dec_deg) -> list[list[str]]:
    """Sorted sky-cell names for each position (degrees)."""
    ra = np.asarray(ra_deg, dtype=float).ravel()
    return cells_at(ra, dec_deg).per_input(ra.size)


def footprint_cells(paths: Sequence[str | os.PathLike], errors: list[str] | None = None) -> list[dict]:
    """For each FITS file: ``{"path", "cells", "chips"}``, ``cells`` being every sky cell any chip overlaps (sorted).

    Raises :class:`mvmdb.fitsio.chips.FootprintError` for a file whose footprints cannot be
    read -- unless ``errors`` is a list: then the file's one-line reason is appended to it
    and the file left out of the result.
    """
    from mvmdb.fitsio.chips import FootprintError, read_chip_footprints

    read: list[tuple[str | os.PathLike, list]] = []
    for path in paths:
        try:
            read.append((path, read_chip_footprints(path)))
        except FootprintError as exc:
            if errors is None:
                raise
            errors.append(str(exc))
    paths = [p for p, _ in read]
    polygons, owner, nchips = [], [], []
    for i, (path, chips) in enumerate(read):
        nchips.append(len(chips))
        for chip in chips:
            polygons.append(chip.polygon)
            owner.append(i)
    hits = cells_overlapping(polygons)
    per_file: list[set[str]] = [set() for _ in paths]
    owner_arr = np.asarray(owner, dtype=np.int64)
    for poly, name in zip(owner_arr[hits.index].tolist(), hits.names()):
        per_file[poly].add(name)
    return [{"path": os.fspath(p), "cells": sorted(c), "chips": n} for p, c, n in zip(paths, per_file, nchips)]
