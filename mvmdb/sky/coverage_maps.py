"""Coverage arithmetic on HEALPix NESTED ranges: areas and all-sky maps.

Pure numpy; no database, no files. The ranges themselves -- pixels to ranges, merging,
points, cones, polygons and the exact refinement -- are :mod:`mvmdb.sky.healpix`'s; the
ones this module used to define are re-exported from there (e.g. ``cone_ranges``, which
the README's SQL cookbook names).

The catalog stores each chip's coverage as half-open ranges ``[lo, hi)`` of NESTED
pixel indices at order :data:`~mvmdb.sky.healpix.MAX_ORDER` (29), the layout of
healpix-alchemy: pixel ``p`` at order ``k`` is the range ``[p * 4**(29-k), (p+1) * 4**(29-k))``.
Arrays of ranges are ``int64`` of shape ``(n, 2)``. Angles are degrees, areas deg².
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

from mvmdb.sky.healpix import (  # noqa: F401  (re-exported)
    MAX_ORDER,
    as_ranges,
    cone_order,
    cone_ranges,
    merge_ranges,
    order_shift,
    pixels_to_ranges,
    polygon_contains,
    polygon_distance_deg,
)

SKY_AREA_DEG2 = 129600.0 / math.pi
"""Area of the whole sky, deg² (4π sr; 41252.96...)."""


def pixel_area_deg2(order: int = MAX_ORDER) -> float:
    """Area of one HEALPix pixel at ``order``, deg² (4π sr / (12 · 4**order))."""
    return SKY_AREA_DEG2 / (12 * 4**order)


def order_of_nside(nside: int) -> int:
    """The order ``k`` with ``nside == 2**k``; ValueError unless nside is a power of two <= 2**29."""
    order = int(nside).bit_length() - 1
    if nside < 1 or 2**order != nside or order > MAX_ORDER:
        raise ValueError(f"nside must be a power of two between 1 and 2**{MAX_ORDER}, got {nside}")
    return order


def ranges_area_deg2(ranges: ArrayLike) -> float:
    """Area of the union of order-29 ranges, deg² (overlaps counted once)."""
    r = merge_ranges(ranges)
    return float((r[:, 1] - r[:, 0]).sum()) * pixel_area_deg2()


def degrade_ranges(ranges: ArrayLike, order: int) -> NDArray[np.int64]:
    """Order-29 ranges -> half-open pixel ranges at ``order`` touching them (merged).

    A coarse pixel is included when any part of it is covered, so the result covers
    the input (a superset, exact when the input is aligned to ``order``).
    """
    return merge_ranges(_widen(merge_ranges(ranges), order_shift(order)))


def _widen(ranges: NDArray[np.int64], shift: int) -> NDArray[np.int64]:
    """Order-29 ranges -> the half-open ranges of the coarser pixels (``shift`` bits) touching each."""
    return np.stack([ranges[:, 0] >> shift, ((ranges[:, 1] - 1) >> shift) + 1], axis=1)


def _expand(ranges: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Half-open pixel ranges -> (row of each pixel, pixel index)."""
    lengths = ranges[:, 1] - ranges[:, 0]
    rows = np.repeat(np.arange(len(ranges)), lengths)
    starts = np.cumsum(lengths) - lengths
    pixels = ranges[rows, 0] + np.arange(int(lengths.sum())) - starts[rows]
    return rows, pixels


def coverage_map(ranges: ArrayLike, owners: ArrayLike, weights: ArrayLike, nside: int) -> NDArray[np.float64]:
    """An all-sky NESTED map at ``nside``: per pixel, the sum of the weights of the owners touching it.

    ``ranges`` are order-29 ranges; row ``i`` belongs to owner ``owners[i]`` (e.g. an
    exposure id) whose weight is ``weights[i]`` (the same on all of an owner's rows,
    e.g. its exposure time in seconds, or 1 to count). An owner touching a pixel
    with several ranges counts once. Pixels touched by nobody are 0.
    """
    order = order_of_nside(nside)
    r = as_ranges(ranges)
    owners = np.asarray(owners).reshape(-1)
    weights = np.asarray(weights, dtype=np.float64).reshape(-1)
    if not len(r) == len(owners) == len(weights):
        raise ValueError("ranges, owners and weights must have one row each")
    npix = 12 * 4**order
    if len(r) == 0:
        return np.zeros(npix)
    rows, pixels = _expand(_widen(r, order_shift(order)))
    _, owner_rank = np.unique(owners, return_inverse=True)
    _, first = np.unique(owner_rank[rows].astype(np.int64) * npix + pixels, return_index=True)
    return np.bincount(pixels[first], weights=weights[rows[first]], minlength=npix)
