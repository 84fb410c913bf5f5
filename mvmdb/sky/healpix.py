"""HEALPix NESTED coverage of spherical polygons as order-29 index ranges (pure, vectorized).

The catalog stores each chip's coverage as rows of ``chip_hpx.hpx int8range`` under an
SP-GiST index, in the layout of healpix-alchemy: a NESTED pixel ``p`` at order ``k`` is the
half-open range ``[p * 4**(29-k), (p+1) * 4**(29-k))`` of order-29 indices, and adjacent
ranges are merged. SQL then answers

* point: ``hpx @> <order-29 index of the point>`` (:func:`point_index`),
* cone: ``hpx && <range>`` for each range of :func:`cone_ranges`,
* polygon overlap: ``hpx && <range>`` for each range of :func:`polygon_ranges`,

as a superset (HEALPix pixels overlap the shapes' edges); exact answers come from refining
with the stored polygon (:func:`spherical_polygons_overlap`, :func:`point_in_polygon`).

Order. :data:`ORDER` = 13: pixels of 25.8" (0.43'). HST chips are 26" (ACS/HRC) to 200"
(ACS/WFC, WFC3/UVIS) on a side, so a chip is covered by a few to ~50 pixels that merge into
a handful of rows (measured at order 13: ACS/WFC chip 12-16 ranges, WFC3/IR 11-12, HRC 1-3;
the simulated 10,000-exposure benchmark averages 11 per chip), while the pixels' area exceeds
the chip's by ~1.6-2x for the large chips and 3-6x for HRC/SBC. Order 12 (52") would halve
the rows but make the cover 2.5-3x (large chips) and 10-14x (HRC) the chip's area -- more
false candidates to refine; order 14 (13") needs ~1.5-2x the rows (and index size) for a cover
20-50% tighter. ``query_polygon`` costs the same at all three orders (~15 us). Queries at any
order work against the stored ranges (ranges nest).

Angles are degrees; RA any real (wrapped), Dec in [-90, 90].
"""

from __future__ import annotations

import math

import healpy as hp
import numpy as np
from scipy.spatial import ConvexHull, QhullError

__all__ = [
    "ORDER",
    "MAX_ORDER",
    "pixels_to_ranges",
    "merge_ranges",
    "polygon_ranges",
    "convex_hull_vertices",
    "point_index",
    "cone_ranges",
    "point_in_polygon",
    "spherical_polygons_overlap",
]

ORDER = 13  # 25.8" pixels: ~11 ranges per chip, cover ~2x the chip (module docstring)
"""HEALPix order at which chip footprints are rasterised (see the module docstring)."""
MAX_ORDER = 29
"""Order of the stored indices (int8 ranges), as in healpix-alchemy."""

_D2R = math.pi / 180.0
_FLAT_EPS = 1e-9  # healpix_cxx refuses corners with |n_i . v_{i+2}| <= 1e-10 ("degenerate corner")


def pixels_to_ranges(pixels, order: int) -> tuple[np.ndarray, np.ndarray]:
    """NESTED pixels at ``order`` -> merged half-open order-29 ranges ``(lo, hi)`` (int64 arrays).

    ``pixels`` need not be sorted or unique. Pixel ``p`` becomes ``[p << 2*(29-order), (p+1) << ...)``;
    runs of consecutive pixels become one range.
    """
    if not 0 <= order <= MAX_ORDER:
        raise ValueError(f"HEALPix order must be in 0..{MAX_ORDER}, not {order}")
    p = np.unique(np.asarray(pixels, dtype=np.int64).ravel())
    if p.size == 0:
        e = np.zeros(0, dtype=np.int64)
        return e, e
    if p[0] < 0 or p[-1] >= 12 * 4**order:
        raise ValueError(f"pixel index out of range for order {order}")
    brk = np.nonzero(np.diff(p) != 1)[0]
    starts = np.concatenate(([p[0]], p[brk + 1]))
    ends = np.concatenate((p[brk], [p[-1]])) + 1
    shift = 2 * (MAX_ORDER - order)
    return starts << shift, ends << shift


def merge_ranges(lo, hi) -> tuple[np.ndarray, np.ndarray]:
    """Union of half-open ranges ``[lo, hi)``: sorted, disjoint, adjacent ones merged."""
    lo = np.asarray(lo, dtype=np.int64).ravel()
    hi = np.asarray(hi, dtype=np.int64).ravel()
    if lo.size == 0:
        return lo.copy(), hi.copy()
    order = np.argsort(lo, kind="stable")
    lo, hi = lo[order], hi[order]
    reach = np.maximum.accumulate(hi)
    new = np.ones(lo.size, dtype=bool)
    new[1:] = lo[1:] > reach[:-1]
    idx = np.nonzero(new)[0]
    out_hi = np.maximum.reduceat(hi, idx)
    return lo[idx], out_hi


def _unit_vectors(ra_deg, dec_deg) -> np.ndarray:
    ra = np.asarray(ra_deg, dtype=float) * _D2R
    dec = np.asarray(dec_deg, dtype=float) * _D2R
    cd = np.cos(dec)
    return np.stack([cd * np.cos(ra), cd * np.sin(ra), np.sin(dec)], axis=-1)


def _tangent_basis(center: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two orthonormal vectors spanning the tangent plane at unit vector ``center`` (pole-safe)."""
    cx, cy, cz = float(center[0]), float(center[1]), float(center[2])
    if abs(cz) < 0.9:  # e = z x c, normalised
        ex, ey, ez = -cy, cx, 0.0
    else:  # e = x x c
        ex, ey, ez = 0.0, -cz, cy
    s = math.sqrt(ex * ex + ey * ey + ez * ez)
    ex, ey, ez = ex / s, ey / s, ez / s
    return np.array([ex, ey, ez]), np.array([cy * ez - cz * ey, cz * ex - cx * ez, cx * ey - cy * ex])


def convex_hull_vertices(ra_deg, dec_deg) -> np.ndarray:
    """Unit vectors (N, 3) of the convex hull of a small spherical polygon, counter-clockwise.

    The polygon's vertices are projected gnomonically about their mean direction (great
    circles become straight lines, so the planar hull is the spherical hull) and hulled.
    Vertices lying within 1e-9 (tangent-plane units, ~0.2 mas) of the line through their
    neighbours are dropped -- healpy refuses such "degenerate corners" -- which moves the
    outline by at most that much. ``ValueError`` for fewer than 3 finite vertices, no area,
    or a polygon reaching more than ~84 degrees from its centre.
    """
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


def polygon_ranges(ra_deg, dec_deg, order: int = ORDER) -> tuple[np.ndarray, np.ndarray]:
    """Order-29 ranges ``(lo, hi)`` of the NESTED pixels at ``order`` touching a polygon.

    Vertices in degrees (closing edge implied; great-circle edges; a concave outline is
    replaced by its convex hull, a superset). healpy ``query_polygon(..., nest=True,
    inclusive=True)``: every pixel overlapping the hull, plus possibly a few near it.
    """
    hull = convex_hull_vertices(ra_deg, dec_deg)
    pix = hp.query_polygon(2**order, hull, inclusive=True, nest=True)
    return pixels_to_ranges(pix, order)


def point_index(ra_deg, dec_deg) -> np.ndarray | int:
    """Order-29 NESTED index of position(s): the value to test with ``hpx @> index``."""
    idx = hp.ang2pix(2**MAX_ORDER, np.asarray(ra_deg, dtype=float), np.asarray(dec_deg, dtype=float),
                     nest=True, lonlat=True)
    return int(idx) if np.ndim(idx) == 0 else np.asarray(idx, dtype=np.int64)


def cone_ranges(ra_deg: float, dec_deg: float, radius_deg: float, order: int = ORDER) -> tuple[np.ndarray, np.ndarray]:
    """Order-29 ranges of the pixels at ``order`` touching a cone (centre and radius in degrees)."""
    if not (radius_deg > 0 and math.isfinite(radius_deg)):
        raise ValueError("cone radius must be a positive number of degrees")
    vec = _unit_vectors(ra_deg, dec_deg)
    pix = hp.query_disc(2**order, vec, radius_deg * _D2R, inclusive=True, nest=True)
    return pixels_to_ranges(pix, order)


# --------------------------------------------------------------------------- exact refinement




def point_in_polygon(ra_deg: float, dec_deg: float, poly_ra, poly_dec) -> bool:
    """Exact test: is a position inside a (small, simple) spherical polygon? Degrees.

    Gnomonic projection about the polygon's mean direction (edges become straight) and an
    even-odd crossing test; a point more than 90 degrees away is outside.
    """
    v = _unit_vectors(poly_ra, poly_dec).reshape(-1, 3)
    p = _unit_vectors(ra_deg, dec_deg).reshape(3)
    c = v.sum(axis=0)
    c /= np.linalg.norm(c)
    if p @ c <= 0:
        return False
    e, n = _tangent_basis(c)
    cosd = v @ c
    x, y = (v @ e) / cosd, (v @ n) / cosd
    px, py = (p @ e) / (p @ c), (p @ n) / (p @ c)
    xb, yb = np.roll(x, -1), np.roll(y, -1)
    crosses = (y > py) != (yb > py)
    with np.errstate(divide="ignore", invalid="ignore"):
        xint = x + (py - y) * (xb - x) / (yb - y)
    return bool(np.count_nonzero(crosses & (xint > px)) % 2 == 1)


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
