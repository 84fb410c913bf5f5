"""Both pixel checks of one exposure from a single pass over its pixels (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mvmdb.qa.alignment import exposure_sources
from mvmdb.qa.sources import work_image
from mvmdb.qa.trail import TrailResult, detect_trail


@dataclass
class ExposureChecks:
    """``trail``: the trail check; ``sources``: per chip (x, y) 0-based native pixel
    centroids for the alignment check (convert with the chip's WCS, ``origin=0``)."""

    trail: TrailResult
    sources: list[tuple[np.ndarray, np.ndarray]]


def check_exposure(chips: Sequence[tuple[np.ndarray, np.ndarray | None]], pixel_scale: float) -> ExposureChecks:
    """Trail check and alignment sources of one exposure; each chip's working image
    (the only full-size passes) is made once and shared.

    ``chips``: (SCI, DQ) per chip ([y, x] arrays, DQ may be None); ``pixel_scale``:
    arcsec per pixel.
    """
    works = [work_image(sci, dq, pixel_scale) for sci, dq in chips]
    return ExposureChecks(detect_trail(chips, pixel_scale, works), exposure_sources(chips, pixel_scale, works=works))
