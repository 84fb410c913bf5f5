"""The sky truth: a table of point sources and galaxies with fluxes per filter.

A truth table (``astropy.table.Table``, written as ``truth.ecsv``) has one row per source:

=============  ======  ===============================================================
column         unit    meaning
=============  ======  ===============================================================
id             --      integer, unique in the scene
kind           --      ``star``, ``qso`` (point sources) or ``galaxy``
ra, dec        deg     ICRS position (exact; no proper motion)
mag            mag     AB magnitude at 6000 A
color          mag     SED slope: ``m(lambda) = mag - color * log2(lambda / 6000 A)``
r_eff          arcsec  galaxies: half-light radius along the major axis (0 for points)
sersic_n       --      galaxies: Sersic index
axis_ratio     --      galaxies: b/a
pa             deg     galaxies: major-axis position angle, east of north
flux_<key>     e-/s    count rate in one filter, ``key = <instr>_<det>_<filter>``
                       (``flux_acs_wfc_f775w``; counts/s for ACS/SBC), whole source
=============  ======  ===============================================================

Only ``ra`` and ``dec`` are required by the renderer: it takes the rate from the
``flux_<key>`` column when present, else from a generic ``flux`` column (e-/s in every
filter), else from ``mag``/``color`` and the filter's AB zero point.
"""

from __future__ import annotations

import math

import numpy as np
from astropy.table import Table

from mvmdb.simulate.instruments import DetectorModel, FilterInfo

REF_WAVELENGTH = 6000.0  # Angstrom


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
