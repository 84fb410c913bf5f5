"""The sky truth: a table of point sources and galaxies with fluxes per filter.

A truth table (``astropy.table.Table``, written as ``truth.ecsv``) has one row per source:

=============  ======  ===============================================================
column         unit    meaning
=============  ======  ===============================================================
id             --      integer, unique in the scene
kind           --      ``star``, ``qso`` (point sources) or ``galaxy``
ra, dec        deg     ICRS position (exact; at ``pm_epoch`` when the table has proper motions)
mag            mag     AB magnitude at 6000 A
color          mag     SED slope: ``m(lambda) = mag - color * log2(lambda / 6000 A)``
r_eff          arcsec  galaxies: half-light radius along the major axis (0 for points)
sersic_n       --      galaxies: Sersic index
axis_ratio     --      galaxies: b/a
pa             deg     galaxies: major-axis position angle, east of north
flux_<key>     e-/s    count rate in one filter, ``key = <instr>_<det>_<filter>``
                       (``flux_acs_wfc_f775w``; counts/s for ACS/SBC), whole source
=============  ======  ===============================================================

Optional proper motions (only in scenes written with one, see
:func:`mvmdb.simulate.simulate_scene`; the columns are then present on every row, 0 for
sources that do not move):

=============  ======  ===============================================================
pm_ra          mas/yr  proper motion in RA times cos(Dec) (``pmra`` in Gaia's sense)
pm_dec         mas/yr  proper motion in Dec
pm_epoch       d       MJD at which ``ra``/``dec`` hold (the reference epoch)
=============  ======  ===============================================================

Motion is rectilinear in the tangent plane at (``ra``, ``dec``), Julian years of
365.25 d, no parallax (:func:`positions_at`). Such a table's meta ``pm_positions`` lists
each moving source's position per exposure: dicts with ``id``, ``ipppssoot``, ``mjd``
(mid-exposure, EXPSTART + EXPTIME/2), ``ra``, ``dec`` (deg); :func:`moving_positions`
reads it as a table.

Only ``ra`` and ``dec`` are required by the renderer: it takes the rate from the
``flux_<key>`` column when present, else from a generic ``flux`` column (e-/s in every
filter), else from ``mag``/``color`` and the filter's AB zero point.
"""

from __future__ import annotations

import math

import numpy as np
from astropy.table import Table

from mvmdb.simulate.instruments import DetectorModel, FilterInfo, tan_deproject

REF_WAVELENGTH = 6000.0  # Angstrom
JULIAN_YEAR_DAYS = 365.25
PM_COLUMNS = ("pm_ra", "pm_dec", "pm_epoch")


def flux_column(det: DetectorModel, filt: FilterInfo | str) -> str:
    """Column name of the rate in ``filt`` on ``det``: ``flux_acs_wfc_f775w``."""
    name = filt.name if isinstance(filt, FilterInfo) else str(filt)
    return f"flux_{det.key}_{name.lower()}"


def sed_rate(mag, color, det: DetectorModel, filt: FilterInfo) -> np.ndarray:
    """Count rate (e-/s) of sources with AB ``mag`` at 6000 A and SED slope ``color``."""
    m = np.asarray(mag, float) - np.asarray(color, float) * math.log2(filt.plam / REF_WAVELENGTH)
    return 10.0 ** (-0.4 * (m - filt.zp_ab))


def source_rates(truth: Table, det: DetectorModel, filt: FilterInfo) -> np.ndarray:
    """Count rate of every truth row in ``filt`` on ``det`` (e-/s; counts/s on SBC)."""
    col = flux_column(det, filt)
    if col in truth.colnames:
        return np.asarray(truth[col], float)
    if "flux" in truth.colnames:
        return np.asarray(truth["flux"], float)
    if "mag" in truth.colnames:
        color = truth["color"] if "color" in truth.colnames else np.zeros(len(truth))
        return sed_rate(truth["mag"], color, det, filt)
    raise ValueError("truth table needs a flux_<key>, flux or mag column")


def is_galaxy(truth: Table) -> np.ndarray:
    """Boolean mask of extended sources (``kind == 'galaxy'`` with ``r_eff > 0``)."""
    if "kind" not in truth.colnames or "r_eff" not in truth.colnames:
        return np.zeros(len(truth), bool)
    return (np.asarray(truth["kind"]).astype(str) == "galaxy") & (np.asarray(truth["r_eff"], float) > 0)


def add_flux_columns(truth: Table, pairs) -> list[str]:
    """Add ``flux_<key>`` columns (e-/s) for (detector, filter) pairs lacking one."""
    added = []
    for det, filt in pairs:
        col = flux_column(det, filt)
        if col in truth.colnames or "mag" not in truth.colnames:
            continue
        truth[col] = sed_rate(truth["mag"], truth["color"], det, filt)
        truth[col].unit = "electron / s" if det.bunit != "COUNTS" else "ct / s"
        truth[col].description = f"count rate in {det.instrument}/{det.detector} {filt.name}"
        added.append(col)
    return added


def has_proper_motion(truth: Table) -> bool:
    """True when the table carries the proper-motion columns (``pm_ra``, ``pm_dec``, ``pm_epoch``)."""
    return all(c in truth.colnames for c in PM_COLUMNS)


def positions_at(truth: Table, mjd: float) -> tuple[np.ndarray, np.ndarray]:
    """RA and Dec (deg) of every truth row at time ``mjd`` (MJD).

    Without proper-motion columns (or for rows with zero motion) the ``ra``/``dec``
    columns unchanged. A moving row is displaced by ``pm * (mjd - pm_epoch) / 365.25``
    (mas) east and north in the tangent plane at its reference position.
    """
    ra = np.asarray(truth["ra"], float)
    dec = np.asarray(truth["dec"], float)
    if not has_proper_motion(truth):
        return ra, dec
    pm_ra = np.asarray(truth["pm_ra"], float)
    pm_dec = np.asarray(truth["pm_dec"], float)
    moving = np.flatnonzero((pm_ra != 0) | (pm_dec != 0))
    if not moving.size:
        return ra, dec
    ra, dec = ra.copy(), dec.copy()
    years = (float(mjd) - np.asarray(truth["pm_epoch"], float)) / JULIAN_YEAR_DAYS
    for i in moving:  # a few rows: one tangent plane each
        r, d = tan_deproject(pm_ra[i] * years[i] / 1000.0, pm_dec[i] * years[i] / 1000.0, ra[i], dec[i])
        ra[i], dec[i] = float(r), float(d)
    return ra, dec


def moving_positions(truth: Table) -> Table:
    """The per-exposure positions of moving sources (meta ``pm_positions``) as a table:
    ``id``, ``ipppssoot``, ``mjd`` (mid-exposure), ``ra``, ``dec`` (deg); empty without any."""
    rows = list(truth.meta.get("pm_positions", []) or [])
    out = Table(rows=[(int(r["id"]), str(r["ipppssoot"]), float(r["mjd"]), float(r["ra"]), float(r["dec"]))
                      for r in rows] or None, names=("id", "ipppssoot", "mjd", "ra", "dec"),
                dtype=(np.int64, str, float, float, float))
    out["ra"].unit = out["dec"].unit = "deg"
    out["mjd"].unit = "d"
    return out
