"""Chip footprints from the WCS of HST exposure headers (FLT, FLC, header-only files).

Only headers are read: the file is opened with ``memmap=True`` and no SCI pixel array is
touched. The distortion lookup tables (D2IMARR, WCSDVARR) are small extensions that
astropy's ``WCS(header, hdulist)`` reads itself, so SIP, ``CPDIS`` and ``D2IM`` distortions
are all applied.

Chip outline: the four outer edges of the chip, 0-based pixel coordinates ``-0.5 .. n-0.5``
(the outer boundary of the first and last pixels), sampled with ``points_per_edge``
points per edge, counter-clockwise in pixel space starting at (-0.5, -0.5), mapped through
the full WCS (``pixel_to_world_values``) to RA, Dec in degrees. Consecutive samples are
joined by great-circle arcs when the outline is used as a spherical polygon.

Chip size (``naxis1``, ``naxis2``), in order of preference:

1. ``NAXIS1``/``NAXIS2`` of the SCI header when both are positive: the real array. This is
   right for full files, subarrays, binned data and WFC3/IR (1014 px, while ``SIZAXIS`` says
   1024 because it counts the reference pixels).
2. ``SIZAXIS1``/``SIZAXIS2`` (divided by ``BINAXIS1``/``BINAXIS2`` when present) in header-only
   files, whose data are empty (``NAXIS = 0`` or ``NAXIS1 = 0``).
3. Otherwise :class:`FootprintError`.

The drizzlepac test samples ``sample_ipppssoot_fl[ct].fits`` carry real headers whose
arrays were shrunk to 10 x 10 px (CRPIX still refers to the full 4096 x 2051 chip): rule 1
gives the outline of those 10 x 10 pixels, a corner of the real chip. Both that and the
full chip lie in sky cell p0121x12y16, which the archive's own test expects.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import numpy as np
from astropy.io import fits
from astropy.utils.exceptions import AstropyWarning
from astropy.wcs import WCS, FITSFixedWarning

from mvmdb.errors import MvmdbError, one_line

__all__ = ["ChipFootprint", "FootprintError", "read_chip_footprints", "chip_outline_pixels", "DEFAULT_POINTS_PER_EDGE"]

DEFAULT_POINTS_PER_EDGE = 16
"""Outline samples per chip edge (64 vertices per chip); ample for HST distortion curvature."""


class FootprintError(MvmdbError, ValueError):
    """A file whose chip footprints cannot be computed (no SCI extension, no usable celestial WCS,
    NaN or singular WCS, unknown chip size, unreadable file).

    A ``ValueError``, and an :class:`mvmdb.errors.MvmdbError` so the ``mvm`` CLI reports it as one line.
    """


@dataclass(frozen=True, eq=False)
class ChipFootprint:
    """One SCI extension's footprint.

    ``extver``: EXTVER of the SCI HDU; ``naxis1``, ``naxis2``: chip size in px (see module
    docstring); ``ra``, ``dec``: outline vertices in degrees, ``4 * points_per_edge`` each, not
    closed (the closing edge is implied); ``wcsname``: WCSNAME of the chip ('' if absent).
    """

    extver: int
    naxis1: int
    naxis2: int
    ra: np.ndarray
    dec: np.ndarray
    wcsname: str = ""

    @property
    def polygon(self) -> tuple[np.ndarray, np.ndarray]:
        """``(ra_deg, dec_deg)``: the form :func:`mvmdb.sky.cells_overlapping` takes."""
        return self.ra, self.dec


def chip_outline_pixels(naxis1: int, naxis2: int, points_per_edge: int = DEFAULT_POINTS_PER_EDGE):
    """0-based pixel coordinates (x, y) of the chip outline: edges at -0.5 and n-0.5, counter-clockwise.

    Each edge contributes ``points_per_edge`` points, its start corner included and its end
    corner excluded (it starts the next edge).
    """
    if points_per_edge < 1:
        raise ValueError("points_per_edge must be >= 1")
    f = np.arange(points_per_edge) / points_per_edge
    x0, x1 = -0.5, naxis1 - 0.5
    y0, y1 = -0.5, naxis2 - 0.5
    xs = np.concatenate([x0 + f * (x1 - x0), np.full(points_per_edge, x1), x1 - f * (x1 - x0), np.full(points_per_edge, x0)])
    ys = np.concatenate([np.full(points_per_edge, y0), y0 + f * (y1 - y0), np.full(points_per_edge, y1), y1 - f * (y1 - y0)])
    return xs, ys


def _chip_size(header: fits.Header, where: str) -> tuple[int, int]:
    n1 = header.get("NAXIS1", 0) if header.get("NAXIS", 0) >= 2 else 0
    n2 = header.get("NAXIS2", 0) if header.get("NAXIS", 0) >= 2 else 0
    if isinstance(n1, int) and isinstance(n2, int) and n1 > 0 and n2 > 0:
        return n1, n2
    s1, s2 = header.get("SIZAXIS1"), header.get("SIZAXIS2")
    if isinstance(s1, int) and isinstance(s2, int) and s1 > 0 and s2 > 0:
        b1 = header.get("BINAXIS1", 1)
        b2 = header.get("BINAXIS2", 1)
        b1 = b1 if isinstance(b1, int) and b1 > 0 else 1
        b2 = b2 if isinstance(b2, int) and b2 > 0 else 1
        return s1 // b1, s2 // b2
    raise FootprintError(f"{where}: chip size unknown (empty data array and no SIZAXIS1/SIZAXIS2)")


def _singular(w: WCS, header: fits.Header) -> bool:
    """True for a NaN or (numerically) singular linear transformation.

    Checked on the header's own CDi_j when present, because wcslib's ``cdfix`` silently
    replaces an all-zero CD matrix by the unit matrix.
    """
    if any(k in header for k in ("CD1_1", "CD1_2", "CD2_1", "CD2_2")):
        try:
            m = np.array([[float(header.get("CD1_1", 0.0)), float(header.get("CD1_2", 0.0))],
                          [float(header.get("CD2_1", 0.0)), float(header.get("CD2_2", 0.0))]])
        except (TypeError, ValueError):
            return True
    else:
        try:
            m = np.asarray(w.celestial.pixel_scale_matrix, dtype=float)
        except Exception:
            return True
    if not np.all(np.isfinite(m)) or not np.all(np.isfinite(w.wcs.crval)) or not np.all(np.isfinite(w.wcs.crpix)):
        return True
    scale = float(np.abs(m).max())
    return scale == 0.0 or abs(float(np.linalg.det(m))) <= 1e-10 * scale * scale


def _chip_footprint(hdul: fits.HDUList, hdu, points_per_edge: int, where: str) -> ChipFootprint:
    header = hdu.header
    naxis1, naxis2 = _chip_size(header, where)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            w = WCS(header, hdul)
    except Exception as exc:  # astropy raises several types for broken WCS keywords
        raise FootprintError(f"{where}: unusable WCS ({one_line(exc)})") from exc
    if not w.has_celestial or w.naxis != 2 or w.wcs.lng < 0 or w.wcs.lat < 0:
        raise FootprintError(f"{where}: no celestial WCS (CTYPE {list(w.wcs.ctype)})")
    if _singular(w, header):
        raise FootprintError(f"{where}: NaN or singular WCS (CD/PC matrix not invertible)")
    xs, ys = chip_outline_pixels(naxis1, naxis2, points_per_edge)
    try:
        world = w.pixel_to_world_values(xs, ys)
    except Exception as exc:
        raise FootprintError(f"{where}: WCS transformation failed ({one_line(exc)})") from exc
    ra = np.mod(np.asarray(world[w.wcs.lng], dtype=float), 360.0)
    dec = np.asarray(world[w.wcs.lat], dtype=float)
    if not (np.all(np.isfinite(ra)) and np.all(np.isfinite(dec))):
        raise FootprintError(f"{where}: WCS gives NaN sky positions on the chip outline")
    if np.any(np.abs(dec) > 90.0):
        raise FootprintError(f"{where}: WCS gives Dec outside [-90, 90]")
    return ChipFootprint(
        extver=_extver(header),
        naxis1=naxis1,
        naxis2=naxis2,
        ra=ra,
        dec=dec,
        wcsname=str(header.get("WCSNAME", "")),
    )


def _extver(header: fits.Header) -> int:
    value = header.get("EXTVER", 1)
    return value if isinstance(value, int) and not isinstance(value, bool) else 1


def read_chip_footprints(path: str | os.PathLike, points_per_edge: int = DEFAULT_POINTS_PER_EDGE) -> list[ChipFootprint]:
    """Footprint of every SCI extension of a FITS file, in EXTVER order.

    Reads headers only (and the small distortion-table extensions the WCS refers to).
    Raises :class:`FootprintError` for unreadable files, files with no SCI extension, and
    any SCI extension without a usable celestial WCS (missing, NaN or singular) or size.
    """
    where = os.fspath(path)
    with warnings.catch_warnings():  # a damaged header is reported by the error below, not by warnings
        warnings.simplefilter("ignore", AstropyWarning)
        try:
            hdul = fits.open(path, memmap=True, lazy_load_hdus=False)
        except FileNotFoundError:
            raise FootprintError(f"{where}: no such file") from None
        except (OSError, ValueError, TypeError, IndexError, KeyError) as exc:
            raise FootprintError(f"{where}: not a readable FITS file ({one_line(exc)})") from exc
        with hdul:
            sci = [hdu for hdu in hdul[1:] if str(hdu.header.get("EXTNAME", "")).strip().upper() == "SCI"]
            if not sci:
                raise FootprintError(f"{where}: no SCI extension")
            chips = [_chip_footprint(hdul, hdu, points_per_edge, f"{where}[SCI,{_extver(hdu.header)}]")
                     for hdu in sci]
    return sorted(chips, key=lambda c: c.extver)
