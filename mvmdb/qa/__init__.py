"""Pixel quality checks of exposures (issue 16): pure numpy/scipy, no FITS, no database.

Public API::

    check_exposure(chips, pixel_scale) -> ExposureChecks     both, one pass (mvmdb.qa.exposure)
    detect_trail(chips, pixel_scale) -> TrailResult          mvmdb.qa.trail
    exposure_sources(chips, pixel_scale) -> [(x, y), ...]    mvmdb.qa.alignment
    measure_alignment({visit: (ra, dec)}) -> {visit: VisitOffset}

``chips`` are (SCI, DQ) array pairs of one exposure, as :func:`mvmdb.fitsio.pixels.read_exposure_pixels`
returns them; ``pixel_scale`` is arcsec per pixel.  Both result types have
``row(ipppssoot)`` -> ``{ipppssoot, check ('trail' | 'alignment'), flagged, value, reason}``
(value: the trail score 0-1, or the alignment offset in milliarcseconds), one row per
exposure and check.  The WCS solution family of an exposure is
:func:`mvmdb.rules.wcs_family` (pure, from WCSNAME).  See ``docs/qa.md``.
"""

from mvmdb.qa.alignment import THRESHOLD_MAS, VisitOffset, exposure_sources, measure_alignment
from mvmdb.qa.exposure import ExposureChecks, check_exposure
from mvmdb.qa.trail import TrailResult, detect_trail

__all__ = [
    "THRESHOLD_MAS",
    "ExposureChecks",
    "TrailResult",
    "VisitOffset",
    "check_exposure",
    "detect_trail",
    "exposure_sources",
    "measure_alignment",
]
