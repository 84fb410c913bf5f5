"""Sky geometry: the HST archive's MVM tessellation (pure, vectorized numpy; no I/O but the packaged ring table).

* :mod:`mvmdb.sky.grid` -- rings, projection cells, sky cells, names, WCS at 0.04"/0.12" per pixel.
* :mod:`mvmdb.sky.overlap` -- positions and spherical polygons -> sky cells (exact), trimmed boxes.

Angles are degrees, pixel scales arcsec/px; pixel positions 0-based, CRPIX 1-based.
"""

from mvmdb.sky.grid import (
    COARSE_SCALE,
    FINE_SCALE,
    N_PROJECTION_CELLS,
    PC_CRPIX,
    PC_NAXIS,
    SC_NXY,
    SC_OLAP,
    SC_SPACING,
    SUPPORTED_SCALES,
    ProjectionCell,
    RingTable,
    SkyCell,
    parse_skycell_name,
    ring_table,
    scale_arcsec,
    skycell_name,
)
from mvmdb.sky.overlap import (
    CellHits,
    box_wcs,
    cells_at,
    cells_overlapping,
    coarse_box_to_fine,
    fine_box_to_coarse,
    trimmed_box,
    trimmed_wcs,
)

__all__ = [
    "COARSE_SCALE",
    "FINE_SCALE",
    "N_PROJECTION_CELLS",
    "PC_CRPIX",
    "PC_NAXIS",
    "SC_NXY",
    "SC_OLAP",
    "SC_SPACING",
    "SUPPORTED_SCALES",
    "CellHits",
    "ProjectionCell",
    "RingTable",
    "SkyCell",
    "box_wcs",
    "cells_at",
    "cells_overlapping",
    "coarse_box_to_fine",
    "fine_box_to_coarse",
    "parse_skycell_name",
    "ring_table",
    "scale_arcsec",
    "skycell_name",
    "trimmed_box",
    "trimmed_wcs",
]
