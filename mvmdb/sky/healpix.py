"""HEALPix NESTED coverage as order-29 index ranges: the one implementation (pure, vectorized numpy).

The catalog stores each chip's coverage as rows of ``chip_hpx.hpx int8range`` under an
SP-GiST index, in the layout of healpix-alchemy: a NESTED pixel ``p`` at order ``k`` is the
half-open range ``[p * 4**(29-k), (p+1) * 4**(29-k))`` of order-29 indices, and adjacent
ranges are merged. Arrays of ranges are ``int64`` of shape ``(n, 2)``, one ``[lo, hi)`` per
row (:func:`as_ranges`). SQL then answers

* point: ``hpx @> <order-29 index of the point>`` (:func:`point_index`),
* cone: ``hpx && <range>`` for each range of :func:`cone_ranges`,
* polygon overlap: ``hpx && <range>`` for each range of :func:`polygon_ranges`,

as a superset (HEALPix pixels overlap the shapes' edges); exact answers come from refining
with the stored polygon (:func:`polygon_contains`, :func:`polygon_distance_deg`,
:func:`spherical_polygons_overlap`). Areas and all-sky maps of ranges are in
:mod:`mvmdb.sky.coverage_maps`.

Order. :data:`ORDER` = 13: pixels of 25.8" (0.43'). HST chips are 26" (ACS/HRC) to 200"
(ACS/WFC, WFC3/UVIS) on a side, so a chip is covered by a few to ~50 pixels that merge into
a handful of rows (measured at order 13: ACS/WFC chip 12-16 ranges, WFC3/IR 11-12, HRC 1-3;
the simulated 10,000-exposure benchmark averages 11 per chip), while the pixels' area exceeds
the chip's by ~1.6-2x for the large chips and 3-6x for HRC/SBC. Order 12 (52") would halve
the rows but make the cover 2.5-3x (large chips) and 10-14x (HRC) the chip's area -- more
false candidates to refine; order 14 (13") needs ~1.5-2x the rows (and index size) for a cover
20-50% tighter. ``query_polygon`` costs the same at all three orders (~15 us). Queries at any
order work against the stored ranges (ranges nest). Cones pick their order from their radius
(:func:`cone_order`).

healpy and scipy are imported by the functions that need them, so that importing this
module (e.g. for a command's ``--help``) stays cheap.

Angles are degrees; RA any real (wrapped), Dec in [-90, 90].
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "ORDER",
    "MAX_ORDER",
    "order_shift",
    "as_ranges",
    "merge_ranges",
    "pixels_to_ranges",
    "convex_hull_vertices",
    "polygon_ranges",
    "point_index",
    "cone_order",
    "cone_ranges",
    "polygon_contains",
    "polygon_distance_deg",
    "spherical_polygons_overlap",
]

ORDER = 13  # 25.8" pixels: ~11 ranges per chip, cover ~2x the chip (module docstring)
"""HEALPix order at which chip footprints are rasterised (see the module docstring)."""
MAX_ORDER = 29
"""Order of the stored indices (``chip_hpx.hpx`` int8 ranges), as in healpix-alchemy."""

_D2R = math.pi / 180.0
_FLAT_EPS = 1e-9  # healpix_cxx refuses corners with |n_i . v_{i+2}| <= 1e-10 ("degenerate corner")


# --------------------------------------------------------------------------- ranges


def order_shift(order: int) -> int:
    """``2 * (29 - order)``: the bit shift between a pixel at ``order`` and order-29 indices.

    ``ValueError`` unless ``0 <= order <= 29``.
    """
    if not 0 <= order <= MAX_ORDER:
        raise ValueError(f"HEALPix order must be between 0 and {MAX_ORDER}, got {order}")
    return 2 * (MAX_ORDER - order)


def as_ranges(ranges: ArrayLike) -> NDArray[np.int64]:
    """``ranges`` as an ``(n, 2)`` int64 array (an empty input gives shape ``(0, 2)``)."""
    return np.asarray(ranges, dtype=np.int64).reshape(-1, 2)


def merge_ranges(ranges: ArrayLike) -> NDArray[np.int64]:
    """The union of half-open ranges as sorted, disjoint, non-adjacent ranges (empty ones dropped)."""
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
    """NESTED pixels at ``order`` -> merged order-29 ranges, shape ``(n, 2)``.

    ``pixels`` need not be sorted or unique. Pixel ``p`` becomes ``[p << 2*(29-order), (p+1) << ...)``;
    runs of consecutive pixels become one range. ``ValueError`` for an order outside 0..29 or
    a pixel outside ``0 .. 12 * 4**order - 1``.
    """
    shift = order_shift(order)
    p = np.unique(np.asarray(pixels, dtype=np.int64).ravel())
    if p.size == 0:
        return np.zeros((0, 2), dtype=np.int64)
    if p[0] < 0 or p[-1] >= 12 * 4**order:
        raise ValueError(f"pixel index out of range for order {order}")
    brk = np.flatnonzero(np.diff(p) != 1)
    starts = np.concatenate(([p[0]], p[brk + 1]))
    ends = np.concatenate((p[brk], [p[-1]])) + 1
    return np.stack([starts << shift, ends << shift], axis=1)


# --------------------------------------------------------------------------- vectors


def _unit_vectors(ra_deg: ArrayLike, dec_deg: ArrayLike) -> NDArray[np.float64]:
    ra = np.asarray(ra_deg, dtype=float) * _D2R
    dec = np.asarray(dec_deg, dtype=float) * _D2R
    cd = np.cos(dec)
    return np.stack([cd * np.cos(ra), cd * np.sin(ra), np.sin(dec)], axis=-1)


def _tangent_basis(center: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two orthonormal vectors spanning the tangent plane at unit vector ``center`` (pole-safe).

    Away from the poles (``|z| < 0.9``) they point east and north.
    """
    cx, cy, cz = float(center[0]), float(center[1]), float(center[2])
    if abs(cz) < 0.9:  # e = z x c, normalised
        ex, ey, ez = -cy, cx, 0.0
    else:  # e = x x c
        ex, ey, ez = 0.0, -cz, cy
    s = math.sqrt(ex * ex + ey * ey + ez * ez)
    ex, ey, ez = ex / s, ey / s, ez / s
    return np.array([ex, ey, ez]), np.array([cy * ez - cz * ey, cz * ex - cx * ez, cx * ey - cy * ex])


def _angle(u: NDArray[np.float64], v: NDArray[np.float64]) -> NDArray[np.float64]:
    """Angle between unit vectors, radians (atan2 form: accurate at all separations)."""
    return np.arctan2(np.linalg.norm(np.cross(u, v), axis=-1), np.sum(u * v, axis=-1))


# --------------------------------------------------------------------------- covers (supersets)


def convex_hull_vertices(ra_deg: ArrayLike, dec_deg: ArrayLike) -> NDArray[np.float64]:
    """Unit vectors (N, 3) of the convex hull of a small spherical polygon, counter-clockwise.

    The polygon's vertices are projected gnomonically about their mean direction (great
    circles become straight lines, so the planar hull is the spherical hull) and hulled.
    Vertices lying within 1e-9 (tangent-plane units, ~0.2 mas) of the line through their
    neighbours are dropped -- healpy refuses such "degenerate corners" -- which moves the
    outline by at most that much. ``ValueError`` for fewer than 3 finite vertices, no area,
    or a polygon reaching more than ~84 degrees from its centre.
    """
    from scipy.spatial import ConvexHull, QhullError

    v = _unit_vectors(ra_deg, dec_deg).reshape(-1, 3)
    if v.shape[0] < 3 or not np.all(np.isfinite(v)):
        raise ValueError("a polygon needs at least 3 finite vertices")
    c = v.sum(axis=0)
    norm = math.sqrt(float(c @ c))
    if norm < 1e-9:
        raise ValueError("polygon too large (its vertices span the sphere)")
    c = c / norm
    cosd = v @ c
    if cosd.min() < 0.1:
        raise ValueError("polygon too large for a gnomonic hull")
    e, n = _tangent_basis(c)
    xy = np.empty((v.shape[0], 2))
    xy[:, 0] = (v @ e) / cosd
    xy[:, 1] = (v @ n) / cosd
    try:
        idx = ConvexHull(xy).vertices  # counter-clockwise
    except (QhullError, ValueError) as exc:
        raise ValueError(f"degenerate polygon (no area): {str(exc).splitlines()[0] if str(exc) else exc}") from None
    for _ in range(idx.size):
        if idx.size < 3:
            raise ValueError("degenerate polygon (no area)")
        p = xy[idx]
        d = np.roll(p, -1, axis=0) - p  # edge i: vertex i -> i+1
        dp = np.roll(d, 1, axis=0)  # edge into vertex i
        # distance of vertex i+1 from the line of the edge into vertex i
        dist = (dp[:, 0] * d[:, 1] - dp[:, 1] * d[:, 0]) / np.hypot(dp[:, 0], dp[:, 1])
        flat = dist <= _FLAT_EPS
        if not flat.any():
            return v[idx]
        if flat.all():
            raise ValueError("degenerate polygon (no area)")
        idx = idx[~flat]
    raise ValueError("degenerate polygon (no area)")


def polygon_ranges(ra_deg: ArrayLike, dec_deg: ArrayLike, order: int = ORDER) -> NDArray[np.int64]:
    """Order-29 ranges ``(n, 2)`` of the NESTED pixels at ``order`` touching a polygon.

    Vertices in degrees (closing edge implied; great-circle edges; a concave outline is
    replaced by its convex hull, a superset). healpy ``query_polygon(..., nest=True,
    inclusive=True)``: every pixel overlapping the hull, plus possibly a few near it.
    """
    import healpy as hp

    hull = convex_hull_vertices(ra_deg, dec_deg)
    pix = hp.query_polygon(2**order, hull, inclusive=True, nest=True)
    return pixels_to_ranges(pix, order)


def point_index(ra_deg: ArrayLike, dec_deg: ArrayLike) -> NDArray[np.int64] | int:
    """Order-29 NESTED index of position(s): the value to test with ``hpx @> index``.

    An ``int`` for a scalar position, an int64 array for arrays.
    """
    import healpy as hp

    idx = hp.ang2pix(2**MAX_ORDER, np.asarray(ra_deg, dtype=float), np.asarray(dec_deg, dtype=float),
                     nest=True, lonlat=True)
    return int(idx) if np.ndim(idx) == 0 else np.asarray(idx, dtype=np.int64)


MIN_CONE_RADIUS_DEG = 1e-5
"""Smallest cone radius given to healpy's ``query_disc`` (degrees; 36 mas)."""


def cone_order(radius_deg: float) -> int:
    """An order whose pixels are about a quarter of the radius across (so a cone is ~200 pixels)."""
    if radius_deg <= 0:
        return MAX_ORDER
    order = math.floor(math.log2(4 * math.sqrt(math.pi / 3) / math.radians(radius_deg)))
    return min(max(order, 0), MAX_ORDER)


def cone_ranges(ra_deg: float, dec_deg: float, radius_deg: float, order: int | None = None) -> NDArray[np.int64]:
    """Order-29 ranges ``(n, 2)`` of the pixels at ``order`` touching a cone (a superset).

    Centre and radius in degrees; ``order`` defaults to :func:`cone_order` of the radius.
    ``ValueError`` unless the radius is a positive finite number and the centre finite.
    Cones narrower than :data:`MIN_CONE_RADIUS_DEG` are covered as cones of that radius
    (still a superset): healpy aborts the interpreter (an uncaught C++ ``PlanckError``)
    for smaller ones at order 29.
    """
    import healpy as hp

    if not (radius_deg > 0 and math.isfinite(radius_deg)):
        raise ValueError("cone radius must be a positive number of degrees")
    if not (math.isfinite(ra_deg) and math.isfinite(dec_deg) and -90 <= dec_deg <= 90):
        raise ValueError("cone centre must be a finite RA and a Dec in [-90, 90] degrees")
    radius_deg = max(radius_deg, MIN_CONE_RADIUS_DEG)
    if order is None:
        order = cone_order(radius_deg)
    vec = _unit_vectors(ra_deg, dec_deg)
    pix = hp.query_disc(2**order, vec, radius_deg * _D2R, inclusive=True, nest=True)
    return pixels_to_ranges(pix, order)


# --------------------------------------------------------------------------- exact refinement


def polygon_contains(ra_deg: ArrayLike, dec_deg: ArrayLike, ra0_deg: float, dec0_deg: float) -> bool:
    """Whether the spherical polygon (great-circle edges, vertices in degrees) contains the point.

    The polygon is projected gnomonically about the point (great circles become straight
    lines, so the test is exact) and the even-odd rule is applied at the origin. A polygon
    with a vertex 90° or more from the point does not contain it (chips are tiny).
    """
    verts = _unit_vectors(ra_deg, dec_deg).reshape(-1, 3)
    p = _unit_vectors(ra0_deg, dec0_deg).reshape(3)
    depth = verts @ p
    if len(verts) < 3 or np.any(depth <= 0):
        return False
    east, north = _tangent_basis(p)
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
    a = _unit_vectors(ra_deg, dec_deg).reshape(-1, 3)
    b = np.roll(a, -1, axis=0)
    p = _unit_vectors(ra0_deg, dec0_deg).reshape(3)
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


def spherical_polygons_overlap(ra1, dec1, ra2, dec2) -> bool:
    """Exact test: do two small spherical polygons (degrees, great-circle edges) share area or touch?

    Both are projected gnomonically about the mean of their vertices (valid while both lie
    within ~80 degrees of it); then segment intersection of any edge pair, or a vertex of
    one inside the other.
    """
    a = _unit_vectors(ra1, dec1).reshape(-1, 3)
    b = _unit_vectors(ra2, dec2).reshape(-1, 3)
    c = a.sum(axis=0) / a.shape[0] + b.sum(axis=0) / b.shape[0]
    nrm = np.linalg.norm(c)
    if nrm < 1e-9:
        return False
    c /= nrm
    if min((a @ c).min(), (b @ c).min()) <= 0.1:
        # far apart (more than ~84 degrees from the mean direction): chips cannot touch
        return False
    e, n = _tangent_basis(c)

    def proj(v):
        d = v @ c
        return (v @ e) / d, (v @ n) / d

    ax, ay = proj(a)
    bx, by = proj(b)
    # vertex containment (crossing number)
    def inside(px, py, x, y):
        xb, yb = np.roll(x, -1), np.roll(y, -1)
        crosses = (y[None, :] > py[:, None]) != (yb[None, :] > py[:, None])
        with np.errstate(divide="ignore", invalid="ignore"):
            xint = x[None, :] + (py[:, None] - y[None, :]) * (xb - x)[None, :] / (yb - y)[None, :]
        return (np.count_nonzero(crosses & (xint > px[:, None]), axis=1) % 2) == 1

    if inside(ax[:1], ay[:1], bx, by).any() or inside(bx[:1], by[:1], ax, ay).any():
        return True
    # any pair of edges intersecting (closed segments)
    a0x, a0y, a1x, a1y = ax[:, None], ay[:, None], np.roll(ax, -1)[:, None], np.roll(ay, -1)[:, None]
    b0x, b0y, b1x, b1y = bx[None, :], by[None, :], np.roll(bx, -1)[None, :], np.roll(by, -1)[None, :]

    def orient(px, py, qx, qy, rx, ry):
        return (qx - px) * (ry - py) - (qy - py) * (rx - px)

    d1 = orient(a0x, a0y, a1x, a1y, b0x, b0y)
    d2 = orient(a0x, a0y, a1x, a1y, b1x, b1y)
    d3 = orient(b0x, b0y, b1x, b1y, a0x, a0y)
    d4 = orient(b0x, b0y, b1x, b1y, a1x, a1y)
    proper = (d1 * d2 <= 0) & (d3 * d4 <= 0)
    # bounding boxes must overlap too (rules out collinear disjoint segments)
    bbox = (np.minimum(a0x, a1x) <= np.maximum(b0x, b1x)) & (np.minimum(b0x, b1x) <= np.maximum(a0x, a1x)) & \
           (np.minimum(a0y, a1y) <= np.maximum(b0y, b1y)) & (np.minimum(b0y, b1y) <= np.maximum(a0y, a1y))
    return bool((proper & bbox).any())
