"""A layer's member files as drizzle inputs: chips, units, input order, HDRTAB rows.

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
* ``pixel_scale``: ``IDCSCALE`` (arcsec/px) when present.

Any problem with a file -- missing, not FITS, no SCI extension, unusable WCS or units --
raises :class:`InputError` naming the file; the layer then fails with that reason.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from astropy.io import fits
from astropy.wcs import WCS

from mvmdb import rules
from mvmdb.fitsio.exposure_arrays import InputError, open_exposure
from mvmdb.process.drizzling import DrizzleInput, units_kind

__all__ = ["InputError", "ExposureInput", "LayerInputs", "open_inputs", "HDRTAB_COLUMNS", "input_order"]


# HDRTAB: one row per input chip (spec §5.6); (column, FITS format, source) where source is
# 'P' primary header, 'S' SCI header, or a computed value.
HDRTAB_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("ROOTNAME", "9A", "P"),
    ("HAPEXPNAME", "64A", "computed"),
    ("EXTNAME", "8A", "computed"),
    ("EXTVER", "J", "computed"),
    ("INSTRUME", "8A", "P"),
    ("DETECTOR", "8A", "P"),
    ("FILTER", "40A", "computed"),
    ("PROPOSID", "J", "P"),
    ("LINENUM", "16A", "P"),
    ("TARGNAME", "32A", "P"),
    ("DATE-OBS", "10A", "P"),
    ("TIME-OBS", "8A", "P"),
    ("EXPSTART", "D", "P"),
    ("EXPEND", "D", "P"),
    ("EXPTIME", "D", "P"),
    ("PHOTMODE", "64A", "S"),
    ("PHOTFLAM", "D", "S"),
    ("PHOTPLAM", "D", "S"),
    ("PHOTBW", "D", "S"),
    ("PHOTZPT", "D", "S"),
    ("BUNIT", "16A", "S"),
    ("WCSNAME", "64A", "S"),
    ("CRPIX1", "D", "S"),
    ("CRPIX2", "D", "S"),
    ("CRVAL1", "D", "S"),
    ("CRVAL2", "D", "S"),
    ("CD1_1", "D", "S"),
    ("CD1_2", "D", "S"),
    ("CD2_1", "D", "S"),
    ("CD2_2", "D", "S"),
    ("NAXIS1", "J", "S"),
    ("NAXIS2", "J", "S"),
    ("MDRIZSKY", "D", "computed"),
)


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
            )
        )
        exp.sci_headers.append(chip.header)
    return exp


def _pixel_scale(header: fits.Header, w: WCS) -> float | None:
    """Nominal input pixel scale (arcsec/px) for drizzle's ``pixel_scale_ratio`` and ``iscale``.

    ``IDCSCALE`` (the distortion model's nominal scale) when it matches the WCS; files whose
    pixels are binned -- or shrunk by the simulator's ``downscale`` -- keep the unbinned
    IDCSCALE, so it is multiplied by the integer factor the WCS shows. Without IDCSCALE the
    WCS's linear scale is used (drizzling's default).
    """
    from mvmdb.process.pixmap import pixel_scale_arcsec

    idc = rules.finite_float(header.get("IDCSCALE"))
    if idc is None or idc <= 0:
        return None
    factor = pixel_scale_arcsec(w) / idc
    return idc * max(1, round(factor)) if factor > 1.5 else idc


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

    def hdrtab_rows(self, skies: Sequence[float] | None = None) -> list[dict[str, Any]]:
        """HDRTAB rows (one per chip, :data:`HDRTAB_COLUMNS`); ``skies``: sky per chip (units of its data)."""
        rows = []
        k = 0
        for e in self.exposures:
            for chip, hdr in zip(e.chips, e.sci_headers):
                row: dict[str, Any] = {}
                for name, _fmt, src in HDRTAB_COLUMNS:
                    if src == "P":
                        row[name] = e.primary.get(name)
                    elif src == "S":
                        row[name] = hdr.get(name, e.primary.get(name))
                row["HAPEXPNAME"] = os.path.basename(e.path)
                row["EXTNAME"] = "SCI"
                row["EXTVER"] = int(hdr.get("EXTVER", 1))
                row["FILTER"] = e.filter
                row["MDRIZSKY"] = float(skies[k]) if skies is not None else float(chip.sky)
                rows.append(row)
                k += 1
        return rows

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
