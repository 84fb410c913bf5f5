"""A layer's member files as drizzle inputs: chips, units, input order, headers.

The files are opened memory-mapped by :func:`mvmdb.fitsio.exposure_arrays.open_exposure`
(headers typed by the one exposure-header parser); they stay open until the
:class:`LayerInputs` context exits.

Per chip (SCI extension, in EXTVER order):

* ``sci``: the SCI array, in the units of its ``BUNIT`` (``ELECTRONS`` for ACS, WFC3/UVIS,
  WFPC2; ``ELECTRONS/S`` for WFC3/IR), 0-based numpy ``[y, x]``;
* ``dq``: the DQ extension of the same EXTVER (``None`` if the file has none);
* ``in_wcs``: the full chip WCS, ``WCS(header, hdulist)``: TAN + SIP plus the lookup-table
  distortions (``CPDIS``/``D2IM``) the FLT/FLC files carry;
* ``exptime``: primary ``EXPTIME`` (s), which is also the EXP drizzle weight;
* ``pixel_scale``: the archive's input pixel scale (arcsec/px), see :func:`_pixel_scale`.

Any problem with a file -- missing, not FITS, no SCI extension, unusable WCS or units --
raises :class:`InputError` naming the file; the layer then fails with that reason.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

from mvmdb import rules
from mvmdb.fitsio.exposure_arrays import InputError, open_exposure
from mvmdb.process.drizzling import DrizzleInput, units_kind

log = logging.getLogger(__name__)

__all__ = ["InputError", "ExposureInput", "LayerInputs", "open_inputs", "input_order"]




@dataclass
class ExposureInput:
    """One member file and its chips; ``chips`` are :class:`DrizzleInput` (sky 0 until matched)."""

    path: str
    rootname: str
    filetype: str
    instrument: str
    detector: str
    filter: str
    exptime: float
    expstart: float | None
    expend: float | None
    proposid: int | None
    photflam: float | None
    primary: fits.Header
    chips: list[DrizzleInput] = field(default_factory=list)
    sci_headers: list[fits.Header] = field(default_factory=list)
    exposure_id: int | None = None


def _open_one(path: str, exposure_id: int | None, handles: list) -> ExposureInput:
    """Open one member (:func:`mvmdb.fitsio.exposure_arrays.open_exposure`) as drizzle inputs."""
    opened = open_exposure(path, handles)
    h = opened.header
    exp = ExposureInput(
        path=path,
        rootname=h.ipppssoot,
        filetype=opened.filetype,
        instrument=h.instrument,
        detector=h.detector,
        filter=h.filter,
        exptime=h.exptime,
        expstart=h.expstart,
        expend=h.expend,
        proposid=h.proposid,
        photflam=opened.photflam,
        primary=opened.primary,
        exposure_id=exposure_id,
    )
    for chip in opened.chips:
        try:
            units_kind(chip.bunit)
        except ValueError as exc:
            raise InputError(path, f"[SCI,{chip.extver}]: {exc}") from None
        exp.chips.append(
            DrizzleInput(
                sci=chip.sci,
                exptime=h.exptime,
                dq=chip.dq,
                in_wcs=chip.wcs,
                units=chip.bunit,
                name=f"{os.path.basename(path)}[SCI,{chip.extver}]",
                exposure=exp.rootname,
                pixel_scale=_pixel_scale(chip.header, chip.wcs),
                gain=_gain(h.instrument, chip.bunit, chip.header, opened.primary, path),
            )
        )
        exp.sci_headers.append(chip.header)
    return exp


def _pixel_scale(header: fits.Header, w: WCS) -> float:
    """Input pixel scale (arcsec/px) for drizzle's ``pixel_scale_ratio`` and ``iscale``, as the archive
    computes it (drizzlepac ``imageObject.compute_wcslin`` -> stwcs ``HSTWCS.pscale``).

    * Chips with a SIP distortion: the undistorted WCS has an orthogonal CD of scale
      ``IDCSCALE``, or sqrt|det CD| when IDCSCALE is missing. Files whose pixels are binned
      -- or shrunk by the simulator's ``downscale`` -- keep the unbinned IDCSCALE, so it is
      multiplied by the integer factor the WCS shows.
    * Chips without SIP: the chip WCS itself, whose ``pscale`` is the length of the first CD
      column, ``sqrt(CD1_1**2 + CD2_1**2)`` (not sqrt|det CD|: for a skewed CD the two differ;
      the archive's WFC3/IR FLTs without IDCSCALE give 0.13560 against 0.12825"/px).
    """
    from mvmdb.process.pixmap import pixel_scale_arcsec

    if w.sip is None:
        cd = w.celestial.pixel_scale_matrix
        return float(np.hypot(cd[0, 0], cd[1, 0]) * 3600.0)
    idc = rules.finite_float(header.get("IDCSCALE"))
    if idc is None or idc <= 0:
        return pixel_scale_arcsec(w)
    factor = pixel_scale_arcsec(w) / idc
    return idc * max(1, round(factor)) if factor > 1.5 else idc


def _gain(instrument: str, bunit: str, sci: fits.Header, primary: fits.Header, path: str) -> float:
    """e-/DN applied to the data: ATODGAIN for WFPC2 data in counts (the archive converts WFPC2
    to electrons, its products say ELECTRONS/S), else 1."""
    if instrument != "WFPC2" or units_kind(bunit) != "counts" or bunit.strip().lower().startswith("electron"):
        return 1.0
    gain = rules.finite_float(sci.get("ATODGAIN", primary.get("ATODGAIN")))
    if gain is None or gain <= 0:
        raise InputError(path, "WFPC2 data in counts without a usable ATODGAIN")
    return gain


def input_order(exposures: Sequence[ExposureInput]) -> list[ExposureInput]:
    """The archive's AstroDrizzle input order (spec §4.2): exposure time up, then PHOTFLAM down."""
    return sorted(exposures, key=lambda e: (e.exptime, -(e.photflam or 0.0), os.path.basename(e.path)))


class LayerInputs:
    """Open member files of one layer (context manager; closes the files on exit).

    ``exposures`` in input order; ``chips`` all their chips in that order.
    """

    def __init__(self, exposures: list[ExposureInput], handles: list):
        self.exposures = exposures
        self._handles = handles

    @property
    def chips(self) -> list[DrizzleInput]:
        return [c for e in self.exposures for c in e.chips]

    def drop_all_zero(self) -> list["ExposureInput"]:
        """Leave out exposures whose SCI arrays are all zero (the archive's "SCI data all zeros"
        exclusion, drizzlepac ``analyze``); returns the exposures kept."""
        kept = [e for e in self.exposures if any(np.any(c.sci) for c in e.chips)]
        for e in self.exposures:
            if e not in kept:
                log.warning("%s: SCI data all zeros, left out of the layer", e.path)
        self.exposures = kept
        return kept

    def close(self) -> None:
        for h in self._handles:
            try:
                h.close()
            except Exception:  # noqa: BLE001 - closing must not mask the real error
                pass
        self._handles = []

    def __enter__(self) -> "LayerInputs":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_inputs(members: Sequence[tuple[str, int | None]]) -> LayerInputs:
    """Open ``(path, exposure_id)`` members; :class:`InputError` names the first bad file."""
    handles: list = []
    try:
        exposures = [_open_one(str(p), eid, handles) for p, eid in members]
    except BaseException:
        for h in handles:
            h.close()
        raise
    return LayerInputs(input_order(exposures), handles)
