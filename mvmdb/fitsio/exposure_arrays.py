"""Opening a member exposure's pixels for drizzling: SCI/DQ arrays, chip WCS, the typed header.

Arrays are opened memory-mapped (``fits.open(memmap=True)``): the drizzle reads only the
sub-boxes of each chip that map into the output tile at hand, so a layer of many members
does not need their pixels in memory at once. Each opened file is appended to the
caller's ``handles`` list and stays open until the caller closes it.

The primary header is typed by :func:`mvmdb.fitsio.exposure.parse_exposure_header`, the
one exposure-header parser (ingest uses it too); the file type comes from the name, else
the ``FILENAME`` keyword (:func:`mvmdb.fitsio.exposure.filetype_from_name`).

Per chip (SCI extension, in EXTVER order): ``sci`` in the units of its ``BUNIT``, 0-based
numpy ``[y, x]``; ``dq`` the DQ extension of the same EXTVER (``None`` if absent or of
another shape); ``wcs`` the full chip WCS, ``WCS(header, hdulist)``: TAN + SIP plus the
lookup-table distortions (``CPDIS``/``D2IM``) the FLT/FLC files carry.

Any problem -- missing, not FITS, unusable header, no SCI extension, unusable WCS -- raises
:class:`InputError` naming the file.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning

from mvmdb import rules
from mvmdb.fitsio.exposure import ExposureHeader, HeaderError, filetype_from_name, parse_exposure_header

__all__ = ["InputError", "ChipArrays", "ExposureArrays", "open_exposure"]


class InputError(RuntimeError):
    """A member file that cannot be drizzled; ``str()`` names the file and the problem."""

    def __init__(self, path: str, why: str):
        self.path = path
        self.why = why
        super().__init__(f"input {path}: {why}")


@dataclass
class ChipArrays:
    """One SCI extension: its header, memory-mapped SCI (and DQ) array, WCS and ``BUNIT``."""

    extver: int
    header: fits.Header
    sci: np.ndarray
    dq: np.ndarray | None
    wcs: WCS
    bunit: str


@dataclass
class ExposureArrays:
    """An opened exposure: typed header, file type (flt | flc), PRIMARY header, chips, ``PHOTFLAM``."""

    path: str
    header: ExposureHeader
    filetype: str
    primary: fits.Header
    chips: list[ChipArrays] = field(default_factory=list)
    photflam: float | None = None


def open_exposure(path: str, handles: list) -> ExposureArrays:
    """Open ``path`` memory-mapped (appended to ``handles``); see the module docstring."""
    if not os.path.isfile(path):
        raise InputError(path, "file is missing")
    try:
        hdul = fits.open(path, memmap=True, lazy_load_hdus=False)
    except Exception as exc:  # astropy raises OSError, ValueError, ... for broken files
        raise InputError(path, f"unreadable FITS file ({exc})") from None
    handles.append(hdul)
    try:
        try:
            return _exposure(path, hdul)
        except (ValueError, fits.VerifyError):
            if not _mend_headers(hdul):
                raise
            return _exposure(path, hdul)
    except InputError:
        raise
    except Exception as exc:
        raise InputError(path, f"unreadable ({type(exc).__name__}: {exc})") from None


def _mend_headers(hdul: fits.HDUList) -> int:
    """Replace bytes outside ASCII 32-126 in the cards of every header by ``?``; the number of cards mended.

    astropy refuses such a card's value (a NUL in TARGNAME, say) wherever it is read; the
    catalog reads the same bytes as U+FFFD (:func:`mvmdb.fitsio.exposure.parse_card_value`),
    which a FITS header cannot hold, hence ``?`` in what is drizzled and blended.
    """
    mended = 0
    for hdu in hdul:
        header = hdu.header
        for i, card in enumerate(header.cards):
            image = card._image or ""  # the card as read; the public .image re-verifies and raises
            if image.isascii() and image.isprintable():
                continue
            fixed = fits.Card.fromstring("".join(c if " " <= c <= "~" else "?" for c in image))
            header[i] = (fixed.value, fixed.comment)
            mended += 1
    return mended


def _exposure(path: str, hdul: fits.HDUList) -> ExposureArrays:
    primary = hdul[0].header
    exptime = rules.finite_float(primary.get("EXPTIME"))
    if exptime is None or exptime <= 0:
        raise InputError(path, f"EXPTIME {primary.get('EXPTIME')!r} is not a positive number of seconds")
    try:
        header = parse_exposure_header(primary)
    except HeaderError as exc:
        raise InputError(path, f"unusable primary header ({exc})") from None
    filename = primary.get("FILENAME")
    filetype = filetype_from_name(path) or (filetype_from_name(filename) if isinstance(filename, str) else None)
    scis = sorted((h for h in hdul if h.name == "SCI"), key=lambda h: h.ver)
    if not scis:
        raise InputError(path, "no SCI extension")
    dqs = {h.ver: h for h in hdul if h.name == "DQ"}
    exp = ExposureArrays(path, header, filetype or "flt", primary)
    for h in scis:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FITSFixedWarning)
                w = WCS(h.header, hdul)
        except Exception as exc:
            raise InputError(path, f"[SCI,{h.ver}] has an unusable WCS ({exc})") from None
        if not w.has_celestial:
            raise InputError(path, f"[SCI,{h.ver}] has no celestial WCS")
        data = h.data
        if data is None or data.ndim != 2:
            raise InputError(path, f"[SCI,{h.ver}] has no 2-D data array")
        dq = dqs.get(h.ver)
        dq_data = dq.data if dq is not None and dq.data is not None and dq.data.shape == data.shape else None
        if exp.photflam is None:
            exp.photflam = rules.finite_float(h.header.get("PHOTFLAM", primary.get("PHOTFLAM")))
        exp.chips.append(ChipArrays(h.ver, h.header, data, dq_data, w, str(h.header.get("BUNIT", "ELECTRONS"))))
    return exp
