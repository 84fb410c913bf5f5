"""Coverage arithmetic on HEALPix NESTED ranges: areas, all-sky maps, cones, exact refinement.

Pure numpy; healpy only for pixel lookups (imported there, so that importing this
module, e.g. for a command's ``--help``, stays cheap). No database, no files.

The catalog stores each chip's coverage as half-open ranges ``[lo, hi)`` of NESTED
pixel indices at order :data:`HPX_ORDER` (29), the layout of healpix-alchemy: pixel
``p`` at order ``k`` is the range ``[p * 4**(29-k), (p+1) * 4**(29-k))``.
Arrays of ranges are ``int64`` of shape ``(n, 2)``. Angles are degrees, areas deg².
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

HPX_ORDER = 29
"""HEALPix order of the catalog's ranges (``chip_hpx.hpx``)."""

SKY_AREA_DEG2 = 129600.0 / math.pi
"""Area of the whole sky, deg² (4π sr; 41252.96...)."""


def pixel_area_deg2(order: int = HPX_ORDER) -> float:
    """Area of one HEALPix pixel at ``order``, deg² (4π sr / (12 · 4**order))."""
    return SKY_AREA_DEG2 / (12 * 4**order)


def order_of_nside(nside: int) -> int:
    """The order ``k`` with ``nside == 2**k``; ValueError unless nside is a power of two <= 2**29."""
    order = int(nside).bit_length() - 1
    if nside < 1 or 2**order != nside or order > HPX_ORDER:
        raise ValueError(f"nside must be a power of two between 1 and 2**{HPX_ORDER}, got {nside}")
    return order


def _shift(order: int) -> int:
    if not 0 <= order <= HPX_ORDER:
        raise ValueError(f"HEALPix order must be between 0 and {HPX_ORDER}, got {order}")
    return 2 * (HPX_ORDER - order)


def as_ranges(ranges: ArrayLike) -> NDArray[np.int64]:
    """``ranges`` as an ``(n, 2)`` int64 array (an empty input gives shape ``(0, 2)``)."""
    return np.asarray(ranges, dtype=np.int64).reshape(-1, 2)


def merge_ranges(ranges: ArrayLike) -> NDArray[np.int64]:
    """The union of half-open ranges as sorted, disjoint, non-adjacent ranges."""
    r = as_ranges(ranges)
    r = r[r[:, 1] > r[:, 0]]
    if len(r) == 0:
        return r
    r = r[np.argsort(r[:, 0], kind="stable")]
    reach = np.maximum.accumulate(r[:, 1])
    # A range starts a new run when it begins after everything before it has ended.
    starts = np.concatenate([[True], r[1:, 0] > reach[:-1]])
    first = np.flatnonzero(starts)
    last = np.concatenate([first[1:], [len(r)]]) - 1
    return np.stack([r[first, 0], reach[last]], axis=1)


def pixels_to_ranges(pixels: ArrayLike, order: int) -> NDArray[np.int64]:
    """NESTED pixels at ``order`` -> merged order-29 ranges."""
    shift = _shift(order)
    p = np.unique(np.asarray(pixels, dtype=np.int64))
    return merge_ranges(np.stack([p << shift, (p + 1) << shift], axis=1))


def ranges_area_deg2(ranges: ArrayLike) -> float:
    """Area of the union of order-29 ranges, deg² (overlaps counted once)."""
    r = merge_ranges(ranges)
    return float((r[:, 1] - r[:, 0]).sum()) * pixel_area_deg2()


def degrade_ranges(ranges: ArrayLike, order: int) -> NDArray[np.int64]:
    """Order-29 ranges -> half-open pixel ranges at ``order`` touching them (merged).

    A coarse pixel is included when any part of it is covered, so the result covers
    the input (a superset, exact when the input is aligned to ``order``).
    """
    shift = _shift(order)
    r = merge_ranges(ranges)
    return merge_ranges(np.stack([r[:, 0] >> shift, ((r[:, 1] - 1) >> shift) + 1], axis=1))


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
    shift = _shift(order)
    coarse = np.stack([r[:, 0] >> shift, ((r[:, 1] - 1) >> shift) + 1], axis=1)
    rows, pixels = _expand(coarse)
    _, owner_rank = np.unique(owners, return_inverse=True)
    _, first = np.unique(owner_rank[rows].astype(np.int64) * npix + pixels, return_index=True)
    return np.bincount(pixels[first], weights=weights[rows[first]], minlength=npix)


def point_pixel(ra_deg: float, dec_deg: float) -> int:
    """The order-29 NESTED pixel containing (ra, dec), degrees."""
    import healpy as hp

    return int(hp.ang2pix(2**HPX_ORDER, ra_deg, dec_deg, nest=True, lonlat=True))


def cone_order(radius_deg: float) -> int:
    """An order whose pixels are about a quarter of the radius across (so a cone is ~200 pixels)."""
    if radius_deg <= 0:
        return HPX_ORDER
    order = math.floor(math.log2(4 * math.sqrt(math.pi / 3) / math.radians(radius_deg)))
    return min(max(order, 0), HPX_ORDER)


def cone_ranges(ra_deg: float, dec_deg: float, radius_deg: float) -> NDArray[np.int64]:
    """Order-29 ranges covering the cone of ``radius_deg`` around (ra, dec) (a superset)."""
    import healpy as hp

    order = cone_order(radius_deg)
    vec = hp.ang2vec(ra_deg, dec_deg, lonlat=True)
    pixels = hp.query_disc(2**order, vec, math.radians(radius_deg), inclusive=True, nest=True)
    return pixels_to_ranges(pixels, order)


def _unit_vectors(ra_deg: ArrayLike, dec_deg: ArrayLike) -> NDArray[np.float64]:
    ra, dec = np.radians(np.asarray(ra_deg, dtype=float)), np.radians(np.asarray(dec_deg, dtype=float))
    return np.stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)], axis=-1)


def _angle(u: NDArray[np.float64], v: NDArray[np.float64]) -> NDArray[np.float64]:
    """Angle between unit vectors, radians (atan2 form: accurate at all separations)."""
    return np.arctan2(np.linalg.norm(np.cross(u, v), axis=-1), np.sum(u * v, axis=-1))


def polygon_contains(ra_deg: ArrayLike, dec_deg: ArrayLike, ra0_deg: float, dec0_deg: float) -> bool:
    """Whether the spherical polygon (great-circle edges, vertices in degrees) contains the point.

    The polygon is projected gnomonically about the point (great circles become straight
    lines, so the test is exact) and the even-odd rule is applied at the origin. A polygon
    with a vertex 90° or more from the point does not contain it (chips are tiny).
    """
    verts = _unit_vectors(ra_deg, dec_deg)
    p = _unit_vectors(ra0_deg, dec0_deg)
    depth = verts @ p
    if len(verts) < 3 or np.any(depth <= 0):
        return False
    # Tangent-plane basis at p: east and north.
    east = np.cross([0.0, 0.0, 1.0], p)
    if np.linalg.norm(east) < 1e-15:  # at a pole any horizontal direction serves
        east = np.array([1.0, 0.0, 0.0])
    east /= np.linalg.norm(east)
    north = np.cross(p, east)
    x, y = (verts @ east) / depth, (verts @ north) / depth
    x2, y2 = np.roll(x, -1), np.roll(y, -1)
    crosses = (y > 0) != (y2 > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        x_at_zero = x - y * (x2 - x) / (y2 - y)
    return bool(np.count_nonzero(crosses & (x_at_zero > 0)) % 2)


def polygon_distance_deg(ra_deg: ArrayLike, dec_deg: ArrayLike, ra0_deg: float, dec0_deg: float) -> float:
    """Angular distance from the point to the spherical polygon, degrees (0 when inside)."""
    if polygon_contains(ra_deg, dec_deg, ra0_deg, dec0_deg):
        return 0.0
    a = _unit_vectors(ra_deg, dec_deg)
    b = np.roll(a, -1, axis=0)
    p = _unit_vectors(ra0_deg, dec0_deg)
    to_vertex = _angle(a, p[None, :])
    normal = np.cross(a, b)
    length = np.linalg.norm(normal, axis=-1, keepdims=True)
    normal = np.divide(normal, length, out=np.zeros_like(normal), where=length > 0)
    # The closest point of each edge's great circle, kept when it lies within the edge.
    foot = p[None, :] - (normal @ p)[:, None] * normal
    foot_len = np.linalg.norm(foot, axis=-1)
    inside = (
        (length[:, 0] > 0)
        & (foot_len > 0)
        & (np.sum(np.cross(a, foot) * normal, axis=-1) >= 0)
        & (np.sum(np.cross(foot, b) * normal, axis=-1) >= 0)
    )
    to_edge = np.where(inside, np.arcsin(np.clip(np.abs(normal @ p), 0.0, 1.0)), np.inf)
    return float(np.degrees(min(to_vertex.min(), to_edge.min())))
