"""Positions and spherical polygons -> sky cells (exact, vectorized), and trimmed boxes.

All angles are degrees; pixel positions are 0-based (astropy ``*_values`` convention) and
CRPIX is 1-based. The gnomonic (TAN) projection is computed here with numpy, on unit-vector
trigonometry shared between all candidate cells, instead of calling astropy per position
or polygon; it agrees with astropy's WCS to far better than 1e-6 px (see the tests).

Membership (spec §2.6):

* :func:`cells_at` -- a position belongs to sky cell (P, x, y) when its Dec is inside the
  ring's [DEC_MIN, DEC_MAX] (both rings near a boundary), P is the ring's band
  ``rint(RA*NBAND/360) mod NBAND`` or a neighbour (wrapping), ``0 <= x_P, y_P <= 450287``
  in P's pixels and ``0 <= x_s, y_s <= 21954`` in the sky cell's fine pixels (inclusive).
* :func:`cells_overlapping` -- a spherical polygon (great-circle edges) belongs to every
  (P, x, y) whose padded box, intersected with P's box, it intersects (closed sets). The
  test is exact 2-D polygon/rectangle intersection in P's tangent plane, where great
  circles are straight lines. No band restriction applies: every PC whose box truly meets
  the polygon counts, a superset of the archive's edge-point test (spec §1.2, §2.6).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from astropy.wcs import WCS

from mvmdb.sky.grid import (
    FINE_SCALE,
    N_PROJECTION_CELLS,
    PC_CRPIX,
    PC_NAXIS,
    SC_NAXIS_FINE,
    SC_NXY,
    SC_SPACING,
    ScaleLike,
    SkyCell,
    skycell_id,
    _pc_arrays,
    ring_table,
)

__all__ = [
    "CellHits",
    "cells_at",
    "cells_overlapping",
    "trimmed_box",
    "trimmed_wcs",
    "box_wcs",
    "fine_box_to_coarse",
    "coarse_box_to_fine",
    "project_to_pc_pixels",
    "MAX_POLYGON_RADIUS_DEG",
]

_D2R = math.pi / 180.0
_R2D = 180.0 / math.pi
_CD_FINE = FINE_SCALE / 3600.0  # deg/px, |CD1_1| = CD2_2 of every PC
_PX_PER_RAD = _R2D / _CD_FINE  # fine PC pixels per radian of gnomonic coordinate
_C0 = PC_CRPIX - 1.0  # 0-based pixel of the PC tangent point (225143.0)
_BOX_MAX = float(PC_NAXIS)  # PC membership box: 0 <= x_P <= 450287
_XI_MAX = (_BOX_MAX - _C0) / _PX_PER_RAD * (1 + 1e-9)  # largest |gnomonic coordinate| in a PC box
_SC_MAX = float(SC_NAXIS_FINE)  # sky-cell membership box: 0 <= x_s <= 21954

_BLOCK = 1 << 16  # positions (or polygon vertices) handled per block

MAX_POLYGON_RADIUS_DEG = 40.0
"""Largest accepted polygon (angular distance from its centre to any vertex), degrees.

Keeps every vertex on the near hemisphere of every candidate PC's tangent point, where the
gnomonic projection (and with it the straight-edge test) is valid. Chips are ~0.05 deg.
"""

# Largest angle between a PC's tangent point and any point of its 0..450287 px box:
# the box reaches 225144 px from the 0-based tangent pixel 225143 along each axis.
_PC_RADIUS = math.atan(math.sqrt(2.0) * (PC_NAXIS - _C0) / _PX_PER_RAD) + 1e-7  # radians


@functools.lru_cache(maxsize=1)
def _pc_trig():
    """sin/cos of every PC's CRVAL (radians) and its unit vector, arrays over ids 0..2643."""
    a = _pc_arrays()
    ra0 = a["crval1"] * _D2R
    dec0 = a["crval2"] * _D2R
    out = dict(
        sa=np.sin(ra0), ca=np.cos(ra0), sd=np.sin(dec0), cd=np.cos(dec0),
    )
    out["ux"] = out["cd"] * out["ca"]
    out["uy"] = out["cd"] * out["sa"]
    out["uz"] = out["sd"]
    for v in out.values():
        v.flags.writeable = False
    return out


def _gnomonic(sa, ca, sd, cd, sa0, ca0, sd0, cd0):
    """Gnomonic coordinates (xi, eta) and cos(distance) of points about tangent points.

    Inputs are sin/cos of the points' RA, Dec and of the tangent points' RA, Dec (any
    broadcastable shapes). ``xi`` grows East (towards larger RA), ``eta`` North; both are
    tangents (radians in the plane). Valid where ``cosc > 0``.
    """
    sdra = sa * ca0 - ca * sa0  # sin(ra - ra0)
    cdra = ca * ca0 + sa * sa0  # cos(ra - ra0)
    cd_cdra = cd * cdra
    cosc = sd * sd0 + cd_cdra * cd0
    inv = 1.0 / cosc
    xi = cd * sdra * inv
    eta = (sd * cd0 - cd_cdra * sd0) * inv
    return xi, eta, cosc


def project_to_pc_pixels(ra_deg, dec_deg, pc_id):
    """0-based fine (0.04"/px) pixel coordinates of positions in projection cell(s) ``pc_id``.

    Numpy implementation of the PC's TAN WCS (``world_to_pixel_values``); ``ra_deg``,
    ``dec_deg``, ``pc_id`` broadcast together. Returns ``(x, y)``; NaN for positions 90 deg
    or more from the tangent point.
    """
    ra = np.asarray(ra_deg, dtype=float) * _D2R
    dec = np.asarray(dec_deg, dtype=float) * _D2R
    t = _pc_trig()
    pc = np.asarray(pc_id)
    xi, eta, cosc = _gnomonic(np.sin(ra), np.cos(ra), np.sin(dec), np.cos(dec),
                              t["sa"][pc], t["ca"][pc], t["sd"][pc], t["cd"][pc])
    bad = ~(cosc > 0)
    x = _C0 - xi * _PX_PER_RAD
    y = _C0 + eta * _PX_PER_RAD
    if np.any(bad):
        x = np.where(bad, np.nan, x)
        y = np.where(bad, np.nan, y)
    return x, y


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, eq=False)
class CellHits:
    """Sky-cell hits for a batch of inputs, as parallel int64 arrays sorted by
    (``index``, ``projection_cell``, ``x``, ``y``).

    ``index`` is the 0-based position of the input (position or polygon) in the batch;
    ``x``, ``y`` are the 1-based sky-cell indices. An input with no hit has no row.
    """

    index: np.ndarray
    projection_cell: np.ndarray
    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return int(self.index.size)

    def names(self) -> list[str]:
        """``skycell-pPPPPxXXyYY`` per row."""
        return [f"skycell-p{p:04d}x{x:02d}y{y:02d}" for p, x, y in
                zip(self.projection_cell.tolist(), self.x.tolist(), self.y.tolist())]

    def ids(self) -> np.ndarray:
        """Integer sky-cell keys ``projection_cell*10000 + x*100 + y`` per row (the catalog's ``sky_cell.id``)."""
        return skycell_id(self.projection_cell, self.x, self.y)

    def skycells(self) -> list[SkyCell]:
        """:class:`SkyCell` per row."""
        return [SkyCell(p, x, y) for p, x, y in
                zip(self.projection_cell.tolist(), self.x.tolist(), self.y.tolist())]

    def counts(self, n: int) -> np.ndarray:
        """Number of sky cells for each of ``n`` inputs."""
        return np.bincount(self.index, minlength=n)[:n]

    def per_input(self, n: int) -> list[list[str]]:
        """Sorted sky-cell names for each of ``n`` inputs (empty lists for inputs without a hit)."""
        names = self.names()
        bounds = np.searchsorted(self.index, np.arange(n + 1), side="left").tolist()
        return [names[bounds[i]:bounds[i + 1]] for i in range(n)]

    @classmethod
    def _build(cls, index, pc, x, y) -> "CellHits":
        index = np.asarray(index, dtype=np.int64)
        pc = np.asarray(pc, dtype=np.int64)
        x = np.asarray(x, dtype=np.int64)
        y = np.asarray(y, dtype=np.int64)
        key = ((index * N_PROJECTION_CELLS + pc) * SC_NXY + (x - 1)) * SC_NXY + (y - 1)
        order = np.argsort(key, kind="stable")
        key = key[order]
        if key.size > 1:
            keep = np.empty(key.size, dtype=bool)
            keep[0] = True
            np.not_equal(key[1:], key[:-1], out=keep[1:])
            order = order[keep]
        return cls(index[order], pc[order], x[order], y[order])

    @classmethod
    def empty(cls) -> "CellHits":
        e = np.zeros(0, dtype=np.int64)
        return cls(e, e, e, e)


# --------------------------------------------------------------------------- positions


def _as_positions(ra_deg, dec_deg):
    ra = np.asarray(ra_deg, dtype=float)
    dec = np.asarray(dec_deg, dtype=float)
    ra, dec = np.broadcast_arrays(ra, dec)
    ra = ra.ravel()
    dec = dec.ravel()
    if not (np.all(np.isfinite(ra)) and np.all(np.isfinite(dec))):
        raise ValueError("positions must be finite (RA, Dec in degrees)")
    if dec.size and (dec.min() < -90.0 or dec.max() > 90.0):
        raise ValueError("Dec must lie in [-90, 90] degrees")
    return np.mod(ra, 360.0), dec


def cells_at(ra_deg, dec_deg) -> CellHits:
    """Every sky cell containing each position (RA, Dec in degrees; arrays or scalars).

    Applies the archive-compatible membership rule of spec §2.6 (see the module docstring),
    boundaries inclusive. Positions near cell, PC or ring edges get 2, 4 or more cells.
    Returns a :class:`CellHits` whose ``index`` refers to the flattened input arrays.
    """
    ra, dec = _as_positions(ra_deg, dec_deg)
    out_i, out_pc, out_x, out_y = [], [], [], []
    # Blocks keep the temporaries small enough to stay in cache and be reused by the allocator.
    for start in range(0, ra.size, _BLOCK):
        _cells_at_block(ra[start:start + _BLOCK], dec[start:start + _BLOCK], start, out_i, out_pc, out_x, out_y)
    if not out_i:
        return CellHits.empty()
    return CellHits._build(np.concatenate(out_i), np.concatenate(out_pc),
                           np.concatenate(out_x), np.concatenate(out_y))


def _cells_at_block(ra, dec, base, out_i, out_pc, out_x, out_y) -> None:
    """:func:`cells_at` for one block of positions (RA in [0, 360)); appends hits with index ``base + i``."""
    rt = ring_table()
    t = _pc_trig()

    # rings whose [DEC_MIN, DEC_MAX] holds dec (contiguous since both columns increase)
    lo = np.searchsorted(rt.dec_max, dec, side="left")
    hi = np.searchsorted(rt.dec_min, dec, side="right") - 1
    nring = hi - lo + 1

    rar = ra * _D2R
    decr = dec * _D2R
    p_sa, p_ca, p_sd, p_cd = np.sin(rar), np.cos(rar), np.sin(decr), np.cos(decr)

    for k in range(int(nring.max())):
        pos = np.arange(ra.size) if k == 0 and nring.min() >= 1 else np.nonzero(nring > k)[0]
        if pos.size == 0:
            continue
        ring = lo[pos] + k
        nb = rt.nband[ring]
        first = rt.projcell[ring]
        u = ra[pos] * nb / 360.0
        r0 = np.rint(u)
        b0 = r0.astype(np.int64) % nb
        frac = u - r0  # in [-0.5, 0.5]: offset from the band centre, in bands
        for d in (0, -1, 1):
            if d == 0:
                pc = first + b0
                ppos = pos
            else:
                # Cheap necessary condition before projecting: |xi| <= XI_MAX needs
                # cos(dec) * sin|dRA| <= XI_MAX (as cos c <= 1), and sin t >= t - t^3/6.
                dra = np.abs(d - frac) * (2.0 * math.pi) / nb  # radians, <= 60 deg for nb >= 9
                sel = (nb >= 3) & (p_cd[pos] * (dra - dra ** 3 / 6.0) <= _XI_MAX)
                sel = np.nonzero(sel)[0]
                if sel.size == 0:
                    continue
                pc = first[sel] + (b0[sel] + d) % nb[sel]
                ppos = pos[sel]
            xi, eta, cosc = _gnomonic(p_sa[ppos], p_ca[ppos], p_sd[ppos], p_cd[ppos],
                                      t["sa"][pc], t["ca"][pc], t["sd"][pc], t["cd"][pc])
            xp = _C0 - xi * _PX_PER_RAD
            yp = _C0 + eta * _PX_PER_RAD
            inside = (cosc > 0) & (xp >= 0) & (xp <= _BOX_MAX) & (yp >= 0) & (yp <= _BOX_MAX)
            idx = np.nonzero(inside)[0]
            xp, yp, pc, ppos = xp[idx], yp[idx], pc[idx], ppos[idx]
            fx = np.floor(xp / SC_SPACING).astype(np.int64)
            fy = np.floor(yp / SC_SPACING).astype(np.int64)
            # x_s = x_P - ix*S in [0, 21954]: only ix = fx or fx - 1 can hold (21954 < 2S)
            okx0 = fx <= SC_NXY - 1
            okx1 = (fx >= 1) & (fx - 1 <= SC_NXY - 1) & (xp - (fx - 1) * SC_SPACING <= _SC_MAX)
            oky0 = fy <= SC_NXY - 1
            oky1 = (fy >= 1) & (fy - 1 <= SC_NXY - 1) & (yp - (fy - 1) * SC_SPACING <= _SC_MAX)
            for okx, dx in ((okx0, 0), (okx1, 1)):
                for oky, dy in ((oky0, 0), (oky1, 1)):
                    m = np.nonzero(okx & oky)[0]
                    if m.size:
                        out_i.append(ppos[m] + base)
                        out_pc.append(pc[m])
                        out_x.append(fx[m] - dx + 1)
                        out_y.append(fy[m] - dy + 1)


# --------------------------------------------------------------------------- polygons


@dataclass
class _PolygonGroup:
    """Polygons of one padded length V: input indices (m,) and vertex trig arrays (m, V)."""

    index: np.ndarray
    sa: np.ndarray
    ca: np.ndarray
    sd: np.ndarray
    cd: np.ndarray
    center: np.ndarray  # (m, 3) unit vectors
    radius: np.ndarray  # (m,) radians, centre to farthest vertex


def _pad_length(n: int) -> int:
    return max(4, 1 << (n - 1).bit_length())


def _polygon_buckets(polygons) -> tuple[int, list[tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    """Normalise ``polygons`` into buckets ``(index (m,), ra (m, V), dec (m, V))`` of equal padded length V.

    Accepts a sequence of ``(ra_deg, dec_deg)`` vertex rings, or an array shaped
    ``(M, 2, V)`` (RA row, Dec row). A ring may or may not repeat its first vertex; padding
    repeats the first vertex, which only adds zero-length edges. Validates finiteness and Dec.
    """
    if isinstance(polygons, np.ndarray):
        arr = np.asarray(polygons, dtype=float)
        if arr.ndim != 3 or arr.shape[1] != 2:
            raise ValueError("a polygon array must be shaped (M, 2, V): RA and Dec rows of V vertices")
        if arr.shape[0] and arr.shape[2] < 3:
            raise ValueError("a polygon needs at least 3 vertices")
        n_inputs = arr.shape[0]
        buckets = [(np.arange(n_inputs), arr[:, 0, :], arr[:, 1, :])] if n_inputs else []
    else:
        rings = []
        for i, poly in enumerate(polygons):
            try:
                ra, dec = poly
            except (TypeError, ValueError):
                raise ValueError(f"polygon {i} must be a pair (ra_deg array, dec_deg array)") from None
            ra = np.asarray(ra, dtype=float).ravel()
            dec = np.asarray(dec, dtype=float).ravel()
            if ra.size != dec.size:
                raise ValueError(f"polygon {i}: RA and Dec have different lengths ({ra.size}, {dec.size})")
            if ra.size < 3:
                raise ValueError(f"polygon {i} needs at least 3 vertices, got {ra.size}")
            rings.append((ra, dec))
        n_inputs = len(rings)
        by_len: dict[int, list[int]] = {}
        for i, (ra, _) in enumerate(rings):
            by_len.setdefault(ra.size, []).append(i)
        padded: dict[int, list] = {}
        for n, members in by_len.items():
            v = _pad_length(n)
            ra_a = np.stack([rings[i][0] for i in members])
            dec_a = np.stack([rings[i][1] for i in members])
            if v > n:
                ra_a = np.concatenate([ra_a, np.repeat(ra_a[:, :1], v - n, axis=1)], axis=1)
                dec_a = np.concatenate([dec_a, np.repeat(dec_a[:, :1], v - n, axis=1)], axis=1)
            padded.setdefault(v, []).append((np.asarray(members, dtype=np.int64), ra_a, dec_a))
        buckets = []
        for v in sorted(padded):
            parts = padded[v]
            buckets.append(tuple(np.concatenate([p[k] for p in parts]) for k in range(3)))
    for index, ra, dec in buckets:
        if not (np.all(np.isfinite(ra)) and np.all(np.isfinite(dec))):
            bad = index[~(np.isfinite(ra).all(axis=1) & np.isfinite(dec).all(axis=1))][0]
            raise ValueError(f"polygon {bad} has non-finite vertices")
        if dec.min() < -90.0 or dec.max() > 90.0:
            bad = index[((dec < -90) | (dec > 90)).any(axis=1)][0]
            raise ValueError(f"polygon {bad} has a vertex with Dec outside [-90, 90] degrees")
    return n_inputs, buckets


def _prepare_group(index: np.ndarray, ra: np.ndarray, dec: np.ndarray) -> _PolygonGroup:
    """Vertex trigonometry, centre and radius of polygons (m, V); ``ValueError`` if too large."""
    v = ra.shape[1]
    rar = ra * _D2R
    decr = dec * _D2R
    sa, ca, sd, cd = np.sin(rar), np.cos(rar), np.sin(decr), np.cos(decr)
    ux, uy = cd * ca, cd * sa
    c = np.stack([ux.sum(axis=1), uy.sum(axis=1), sd.sum(axis=1)], axis=1)
    norm = np.sqrt((c * c).sum(axis=1))
    if np.any(norm < 1e-9 * v):
        bad = index[norm < 1e-9 * v][0]
        raise ValueError(f"polygon {bad} is too large (its vertices span the sphere)")
    c /= norm[:, None]
    cosr = (ux * c[:, 0:1] + uy * c[:, 1:2] + sd * c[:, 2:3]).min(axis=1)
    radius = np.arccos(np.clip(cosr, -1.0, 1.0)) + 1e-7
    if np.any(radius > MAX_POLYGON_RADIUS_DEG * _D2R):
        bad = index[radius > MAX_POLYGON_RADIUS_DEG * _D2R][0]
        raise ValueError(f"polygon {bad} is larger than {MAX_POLYGON_RADIUS_DEG} degrees in radius")
    return _PolygonGroup(index, sa, ca, sd, cd, c, radius)


def _polygon_groups(polygons) -> tuple[int, list[_PolygonGroup]]:
    """:func:`_polygon_buckets` with every bucket prepared whole (for small inputs)."""
    n_inputs, buckets = _polygon_buckets(polygons)
    return n_inputs, [_prepare_group(*b) for b in buckets]


def _candidate_pcs(center: np.ndarray, radius: np.ndarray):
    """(polygon row, PC id) pairs whose PC box may meet the polygon cap (centre, radius rad).

    Conservative: every PC whose tangent point lies within ``radius + PC radius`` of the
    centre (ring by Dec distance, then bands by the exact RA half-width at the ring's Dec).
    """
    rt = ring_table()
    t = _pc_trig()
    rho = radius + _PC_RADIUS + 1e-9
    cos_rho = np.cos(rho)
    dec_c = np.arcsin(np.clip(center[:, 2], -1.0, 1.0))
    ra_c = np.arctan2(center[:, 1], center[:, 0]) * _R2D
    sdc, cdc = np.sin(dec_c), np.cos(dec_c)
    rows_l, pcs_l = [], []
    for ring in range(len(rt)):
        d0 = rt.dec[ring] * _D2R
        sel = np.nonzero(np.abs(dec_c - d0) <= rho)[0]
        if sel.size == 0:
            continue
        n = int(rt.nband[ring])
        first = int(rt.projcell[ring])
        if n == 1:
            rows_l.append(sel)
            pcs_l.append(np.full(sel.size, first, dtype=np.int64))
            continue
        denom = cdc[sel] * math.cos(d0)
        num = cos_rho[sel] - sdc[sel] * math.sin(d0)
        with np.errstate(divide="ignore", invalid="ignore"):
            tt = np.where(denom > 1e-12, num / np.where(denom > 1e-12, denom, 1.0), -2.0)
        allb = tt <= -1.0
        dalpha = np.arccos(np.clip(tt, -1.0, 1.0)) * _R2D + 1e-9
        klo = np.ceil((ra_c[sel] - dalpha) * n / 360.0).astype(np.int64)
        khi = np.floor((ra_c[sel] + dalpha) * n / 360.0).astype(np.int64)
        cnt = khi - klo + 1
        allb |= cnt >= n
        cnt = np.where(allb, n, np.maximum(cnt, 0))
        klo = np.where(allb, 0, klo)
        total = int(cnt.sum())
        if total == 0:
            continue
        rows = np.repeat(sel, cnt)
        offs = np.arange(total) - np.repeat(np.cumsum(cnt) - cnt, cnt)
        bands = (np.repeat(klo, cnt) + offs) % n
        rows_l.append(rows)
        pcs_l.append(first + bands)
    if not rows_l:
        e = np.zeros(0, dtype=np.int64)
        return e, e
    rows = np.concatenate(rows_l)
    pcs = np.concatenate(pcs_l)
    # exact cap test on the tangent points
    dot = center[rows, 0] * t["ux"][pcs] + center[rows, 1] * t["uy"][pcs] + center[rows, 2] * t["uz"][pcs]
    keep = dot >= cos_rho[rows] - 1e-12
    return rows[keep], pcs[keep]


def _expand_ranges(lo: np.ndarray, cnt: np.ndarray):
    """For ranges ``lo .. lo+cnt-1``: (owner row, value) for every element, vectorized."""
    total = int(cnt.sum())
    owner = np.repeat(np.arange(lo.size), cnt)
    offs = np.arange(total) - np.repeat(np.cumsum(cnt) - cnt, cnt)
    return owner, lo[owner] + offs


def _poly_rect_intersects(px: np.ndarray, py: np.ndarray, w: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Exact test: closed polygon (rows of ``px``, ``py``; (T, V)) meets closed rectangle [0, w] x [0, h].

    True when some edge meets the rectangle (separating-axis test of segment against box)
    or the rectangle's corner (0, 0) lies inside the polygon (rectangle wholly inside).
    """
    xa, ya = px, py
    xb = np.roll(px, -1, axis=1)
    yb = np.roll(py, -1, axis=1)
    W = w[:, None]
    H = h[:, None]
    hit = (np.minimum(xa, xb) <= W) & (np.maximum(xa, xb) >= 0) & (np.minimum(ya, yb) <= H) & (np.maximum(ya, yb) >= 0)
    dx = xb - xa
    dy = yb - ya
    s00 = dy * xa - dx * ya  # cross((b-a), (corner-a)) for corner (0, 0)
    s10 = s00 - dy * W
    s01 = s00 + dx * H
    s11 = s10 + dx * H
    smin = np.minimum(np.minimum(s00, s10), np.minimum(s01, s11))
    smax = np.maximum(np.maximum(s00, s10), np.maximum(s01, s11))
    hit &= ~((smin > 0) | (smax < 0))
    edge_hit = hit.any(axis=1)
    # crossing number of the ray from (0, 0) towards +x
    crosses = (ya > 0) != (yb > 0)
    xint = xa - np.divide(ya * dx, dy, out=np.zeros_like(dx), where=crosses)
    inside = (np.count_nonzero(crosses & (xint > 0), axis=1) % 2) == 1
    return edge_hit | inside


def _overlap_block(g: _PolygonGroup, out_i, out_pc, out_x, out_y) -> None:
    """:func:`cells_overlapping` for one prepared block of polygons; appends the hits."""
    t = _pc_trig()
    r, pc = _candidate_pcs(g.center, g.radius)
    if r.size == 0:
        return
    # every candidate (polygon, PC) pair projected into the PC's tangent plane, 0-based fine px
    xi, eta, cosc = _gnomonic(g.sa[r], g.ca[r], g.sd[r], g.cd[r],
                              t["sa"][pc][:, None], t["ca"][pc][:, None],
                              t["sd"][pc][:, None], t["cd"][pc][:, None])
    if not np.all(cosc > 0):  # cannot happen for polygons within MAX_POLYGON_RADIUS_DEG
        raise ValueError("polygon too large for the tangent-plane test")
    px = _C0 - xi * _PX_PER_RAD
    py = _C0 + eta * _PX_PER_RAD
    bx0, bx1 = px.min(axis=1), px.max(axis=1)
    by0, by1 = py.min(axis=1), py.max(axis=1)
    ok = np.nonzero((bx1 >= 0) & (bx0 <= _BOX_MAX) & (by1 >= 0) & (by0 <= _BOX_MAX))[0]
    if ok.size == 0:
        return
    px, py, r, pc = px[ok], py[ok], r[ok], pc[ok]
    bx0, bx1, by0, by1 = bx0[ok], bx1[ok], by0[ok], by1[ok]
    # candidate cells: padded box [i*S, i*S + 21954] meets [max(b0, 0), min(b1, 450287)]
    ixlo = np.clip(np.ceil((np.maximum(bx0, 0.0) - _SC_MAX) / SC_SPACING), 0, SC_NXY - 1).astype(np.int64)
    ixhi = np.clip(np.floor(np.minimum(bx1, _BOX_MAX) / SC_SPACING), 0, SC_NXY - 1).astype(np.int64)
    iylo = np.clip(np.ceil((np.maximum(by0, 0.0) - _SC_MAX) / SC_SPACING), 0, SC_NXY - 1).astype(np.int64)
    iyhi = np.clip(np.floor(np.minimum(by1, _BOX_MAX) / SC_SPACING), 0, SC_NXY - 1).astype(np.int64)
    ny = iyhi - iylo + 1
    owner, k = _expand_ranges(np.zeros(ny.size, dtype=np.int64), (ixhi - ixlo + 1) * ny)
    ix = ixlo[owner] + k // ny[owner]
    iy = iylo[owner] + k % ny[owner]
    x0 = (ix * SC_SPACING).astype(float)
    y0 = (iy * SC_SPACING).astype(float)
    w = np.minimum(x0 + _SC_MAX, _BOX_MAX) - x0
    h = np.minimum(y0 + _SC_MAX, _BOX_MAX) - y0
    # quick accept: polygon bounding box inside the rectangle; else the exact test
    hit = (bx0[owner] >= x0) & (bx1[owner] <= x0 + w) & (by0[owner] >= y0) & (by1[owner] <= y0 + h)
    todo = np.nonzero(~hit)[0]
    if todo.size:
        o = owner[todo]
        hit[todo] = _poly_rect_intersects(px[o] - x0[todo, None], py[o] - y0[todo, None], w[todo], h[todo])
    m = np.nonzero(hit)[0]
    out_i.append(g.index[r[owner[m]]])
    out_pc.append(pc[owner[m]])
    out_x.append(ix[m] + 1)
    out_y.append(iy[m] + 1)


def cells_overlapping(polygons) -> CellHits:
    """Every sky cell whose area meets each spherical polygon (e.g. a chip footprint).

    ``polygons``: a sequence of ``(ra_deg, dec_deg)`` vertex rings (great-circle edges, any
    orientation, closing edge implied), or an array ``(M, 2, V)``. Exact: each polygon is
    projected into each candidate PC's tangent plane and intersected with the sky cell's
    padded box clipped to the PC's box ``[0, 450287]^2`` (closed sets, 0-based fine px).
    Handles cells wholly inside a polygon, RA = 0/360 and the poles. Polygons must be smaller
    than :data:`MAX_POLYGON_RADIUS_DEG`; ``ValueError`` for malformed input.
    """
    _, buckets = _polygon_buckets(polygons)
    out_i, out_pc, out_x, out_y = [], [], [], []
    for index, ra, dec in buckets:
        rows_per_block = max(1, _BLOCK // ra.shape[1])
        for s in range(0, index.size, rows_per_block):
            g = _prepare_group(index[s:s + rows_per_block], ra[s:s + rows_per_block], dec[s:s + rows_per_block])
            _overlap_block(g, out_i, out_pc, out_x, out_y)
    if not out_i:
        return CellHits.empty()
    return CellHits._build(np.concatenate(out_i), np.concatenate(out_pc),
                           np.concatenate(out_x), np.concatenate(out_y))


# --------------------------------------------------------------------------- trimmed boxes

Box = tuple[int, int, int, int]


def _skycell_pixels(skycell: SkyCell, sa, ca, sd, cd, scale: ScaleLike):
    """0-based pixels at ``scale`` of vertices (trig arrays) in ``skycell``'s WCS, and cos(distance)."""
    t = _pc_trig()
    p = skycell.projection_cell
    xi, eta, cosc = _gnomonic(sa, ca, sd, cd, t["sa"][p], t["ca"][p], t["sd"][p], t["cd"][p])
    c1, c2 = skycell.crpix(scale)
    cd11, cd22 = skycell.cd(scale)
    x = (c1 - 1.0) + (xi * _R2D) / cd11
    y = (c2 - 1.0) + (eta * _R2D) / cd22
    return x, y, cosc


def trimmed_box(skycell: SkyCell, polygons, scale: ScaleLike = "fine") -> Box | None:
    """0-based inclusive pixel box ``(xmin, xmax, ymin, ymax)`` covering a set of footprints.

    The box of every pixel of ``skycell``'s full array at ``scale`` ('fine', 'coarse' or
    arcsec/px) that the union of ``polygons`` (sequence of ``(ra_deg, dec_deg)`` rings, or
    ``(M, 2, V)``) overlaps with positive area; pixel ``i`` spans ``[i-0.5, i+0.5]``. Exact:
    bounding box of (polygons intersected with the array), from clipped edges and the
    array's corners inside a polygon. ``None`` when no polygon overlaps the cell's array.
    """
    _, groups = _polygon_groups(polygons)
    n = skycell.naxis(scale)
    lo_edge, hi_edge = -0.5, n - 0.5
    t = _pc_trig()
    p = skycell.projection_cell
    pc_vec = np.array([t["ux"][p], t["uy"][p], t["uz"][p]])
    fx0 = fy0 = math.inf
    fx1 = fy1 = -math.inf
    for g in groups:
        near = np.nonzero(g.center @ pc_vec >= np.cos(g.radius + _PC_RADIUS + 1e-3))[0]
        if near.size == 0:
            continue
        px, py, cosc = _skycell_pixels(skycell, g.sa[near], g.ca[near], g.sd[near], g.cd[near], scale)
        if not np.all(cosc > 0):
            raise ValueError("polygon too large for the tangent-plane test")
        xa, ya = px, py
        dx = np.roll(px, -1, axis=1) - xa
        dy = np.roll(py, -1, axis=1) - ya
        # Liang-Barsky: parameter interval [t0, t1] of each edge inside the array
        t0 = np.zeros_like(xa)
        t1 = np.ones_like(xa)
        reject = np.zeros(xa.shape, dtype=bool)
        for pk, qk in ((-dx, xa - lo_edge), (dx, hi_edge - xa), (-dy, ya - lo_edge), (dy, hi_edge - ya)):
            reject |= (pk == 0) & (qk < 0)
            ratio = np.divide(qk, pk, out=np.zeros_like(qk), where=pk != 0)
            t0 = np.where(pk < 0, np.maximum(t0, ratio), t0)
            t1 = np.where(pk > 0, np.minimum(t1, ratio), t1)
        valid = ~reject & (t0 <= t1)
        if valid.any():
            for tt in (t0, t1):
                ex = np.clip(xa + tt * dx, lo_edge, hi_edge)[valid]
                ey = np.clip(ya + tt * dy, lo_edge, hi_edge)[valid]
                fx0, fx1 = min(fx0, ex.min()), max(fx1, ex.max())
                fy0, fy1 = min(fy0, ey.min()), max(fy1, ey.max())
        # corners of the array inside a polygon
        for cx, cy in ((lo_edge, lo_edge), (hi_edge, lo_edge), (hi_edge, hi_edge), (lo_edge, hi_edge)):
            yb = ya + dy
            crosses = (ya > cy) != (yb > cy)
            xint = xa + np.divide((cy - ya) * dx, dy, out=np.zeros_like(dx), where=crosses)
            inside = (np.count_nonzero(crosses & (xint > cx), axis=1) % 2) == 1
            if inside.any():
                fx0, fx1 = min(fx0, cx), max(fx1, cx)
                fy0, fy1 = min(fy0, cy), max(fy1, cy)
    if not math.isfinite(fx0):
        return None
    xmin = max(int(math.floor(fx0 + 0.5)), 0)
    xmax = min(int(math.ceil(fx1 + 0.5)) - 1, n - 1)
    ymin = max(int(math.floor(fy0 + 0.5)), 0)
    ymax = min(int(math.ceil(fy1 + 0.5)) - 1, n - 1)
    if xmax < xmin or ymax < ymin:
        return None  # touches the array only along a pixel boundary: no area
    return xmin, xmax, ymin, ymax


def check_box(box) -> Box:
    """``box`` as a tuple of 4 ints ``(xmin, xmax, ymin, ymax)``; ``ValueError`` if empty or malformed."""
    try:
        xmin, xmax, ymin, ymax = (int(v) for v in box)
    except (TypeError, ValueError):
        raise ValueError(f"a box is (xmin, xmax, ymin, ymax) integers, not {box!r}") from None
    if xmax < xmin or ymax < ymin:
        raise ValueError(f"empty box {box!r}: need xmin <= xmax and ymin <= ymax")
    return xmin, xmax, ymin, ymax


def box_wcs(skycell: SkyCell, box: Box, scale: ScaleLike = "fine") -> WCS:
    """WCS of the sub-array ``box`` = (xmin, xmax, ymin, ymax), 0-based inclusive, at ``scale``.

    Spec §5.4: ``CRPIX -= (xmin, ymin)``; ``NAXIS = (xmax - xmin + 1, ymax - ymin + 1)``;
    CRVAL, CD unchanged. p1889x07y19, box (2132, 12971, 10281, 21952) -> CRPIX
    (94360, -171093), NAXIS 10840 x 11672.
    """
    xmin, xmax, ymin, ymax = check_box(box)
    w = skycell.wcs(scale)
    w.wcs.crpix = w.wcs.crpix - np.array([xmin, ymin], dtype=float)
    w.pixel_shape = (xmax - xmin + 1, ymax - ymin + 1)
    return w


def trimmed_wcs(skycell: SkyCell, polygons, scale: ScaleLike = "fine") -> WCS | None:
    """:func:`box_wcs` of :func:`trimmed_box` (``None`` when nothing overlaps)."""
    box = trimmed_box(skycell, polygons, scale)
    return None if box is None else box_wcs(skycell, box, scale)


COARSE_NAXIS = 7318  # int((21442 + 2*256) * 0.04/0.12)
FINE_NAXIS = 21954


def fine_box_to_coarse(box: Box) -> Box:
    """Fine (0.04") box -> the smallest coarse (0.12") box covering it, 0-based inclusive.

    The archive's coarse WCS scales CRPIX by 1/3, which centres coarse pixel q on fine pixel
    3q+2: coarse q spans fine pixels 3q+1 .. 3q+3 (0-based). Hence
    ``floor((min-1)/3) .. floor((max-1)/3)``, clipped to the coarse cell (0..7317); fine
    pixel 0 of a sky cell lies in no coarse pixel of that cell.
    """
    xmin, xmax, ymin, ymax = check_box(box)
    last = COARSE_NAXIS - 1
    return (
        max(0, (xmin - 1) // 3),
        min(last, max(0, (xmax - 1) // 3)),
        max(0, (ymin - 1) // 3),
        min(last, max(0, (ymax - 1) // 3)),
    )


def coarse_box_to_fine(box: Box) -> Box:
    """Coarse box -> the fine pixels it spans, 0-based inclusive: ``3*min+1 .. 3*max+3``
    (see :func:`fine_box_to_coarse`), clipped to the fine cell (0..21953)."""
    xmin, xmax, ymin, ymax = check_box(box)
    last = FINE_NAXIS - 1
    return 3 * xmin + 1, min(last, 3 * xmax + 3), 3 * ymin + 1, min(last, 3 * ymax + 3)
