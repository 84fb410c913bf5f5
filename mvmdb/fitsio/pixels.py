"""SCI and DQ pixels of an HST exposure (FLT/FLC) for the pixel quality checks (:mod:`mvmdb.qa`).

The only reader of exposure pixels: the ``mvmdb.qa`` modules take plain arrays.  Arrays
are indexed ``[y, x]`` with 0-based pixel centres; ``wcs`` is the chip's header WCS
(SIP and lookup-table distortions included; call it with ``origin=0``).
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning

from mvmdb.errors import MvmdbError


class PixelsError(MvmdbError, ValueError):
    """An exposure whose pixels cannot be read (no SCI data, unreadable file)."""


@dataclass(eq=False)
class ChipPixels:
    """One chip: ``sci`` (float32, file units), ``dq`` (int16 bits or None), ``wcs``,
    ``pixel_scale`` (arcsec per pixel, from the CD matrix at the reference pixel) and
    ``wcsname`` ('' when absent)."""

    extver: int
    sci: np.ndarray
    dq: np.ndarray | None
    wcs: WCS
    pixel_scale: float
    wcsname: str = ""


def read_exposure_pixels(path: str | os.PathLike) -> list[ChipPixels]:
    """Every chip (SCI with its DQ of the same EXTVER) of an exposure, in EXTVER order.

    Data are converted to native-endian float32 / int16 while the file is open.  Raises
    :class:`PixelsError` for unreadable files and files without SCI pixels.
    """
    where = os.fspath(path)
    try:
        hdul = fits.open(path, memmap=True)
    except (OSError, ValueError) as exc:
        raise PixelsError(f"{where}: not a readable FITS file ({exc})") from exc
    out = []
    with hdul:
        dqs = {int(h.header.get("EXTVER", 1)): h for h in hdul[1:] if str(h.header.get("EXTNAME", "")).strip() == "DQ"}
        for h in hdul[1:]:
            if str(h.header.get("EXTNAME", "")).strip() != "SCI":
                continue
            extver = int(h.header.get("EXTVER", 1))
            if h.data is None or h.data.ndim != 2 or h.data.size == 0:
                raise PixelsError(f"{where}[SCI,{extver}]: no pixels (header-only file?)")
            sci = np.array(h.data, dtype=np.float32)
            dq_hdu = dqs.get(extver)
            dq = None
            if dq_hdu is not None and dq_hdu.data is not None and dq_hdu.data.shape == sci.shape:
                dq = np.array(dq_hdu.data, dtype=np.int16)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FITSFixedWarning)
                w = WCS(h.header, hdul)
            scale = math.sqrt(abs(np.linalg.det(w.celestial.pixel_scale_matrix))) * 3600.0
            out.append(ChipPixels(extver, sci, dq, w, scale, str(h.header.get("WCSNAME", "")).strip()))
    if not out:
        raise PixelsError(f"{where}: no SCI extension")
    return sorted(out, key=lambda c: c.extver)
