"""Independent brute-force references for the sky-tessellation tests.

Nothing here uses :mod:`mvmdb.sky`: the ring table is read from the CSV with the csv module,
every WCS is built from the spec's formulas and every projection is astropy's. Comparisons
report cells as *definite* (inside by more than ``eps``) or *ambiguous* (within ``eps`` of a
boundary, where floating-point rounding may decide either way); the code under test must
return every definite cell and nothing outside definite | ambiguous.
"""

from __future__ import annotations

import csv
import functools
import math
from importlib import resources

import numpy as np
import pytest
from astropy.wcs import WCS

S = 21442  # sky-cell spacing, fine px
NSC = 21954  # sky-cell size, fine px
PCN = 450287  # PC size, px
PC_CRPIX = 225144.0
CD = 0.04 / 3600.0


def inverse_gnomonic(ra0_deg, dec0_deg, xi, eta):
    """RA, Dec (deg) of gnomonic-plane points (xi East, eta North; radians as tangents) about (ra0, dec0)."""
    a0 = math.radians(ra0_deg)
    d0 = math.radians(dec0_deg)
    xi = np.asarray(xi, dtype=float)
    eta = np.asarray(eta, dtype=float)
    den = math.cos(d0) - eta * math.sin(d0)
    dec = np.arctan2(math.sin(d0) + eta * math.cos(d0), np.hypot(xi, den))
    ra = a0 + np.arctan2(xi, den)
    return np.mod(np.degrees(ra), 360.0), np.degrees(dec)


def rect_polygon(ra0, dec0, width_deg, height_deg, theta_deg, points_per_edge=1):
    """Rectangle (width x height in the tangent plane, rotated by theta) about (ra0, dec0): RA, Dec vertex arrays."""
    hx = math.radians(width_deg) / 2
    hy = math.radians(height_deg) / 2
    f = np.arange(points_per_edge) / points_per_edge
    lx = np.concatenate([-hx + 2 * hx * f, np.full(points_per_edge, hx), hx - 2 * hx * f, np.full(points_per_edge, -hx)])
    ly = np.concatenate([np.full(points_per_edge, -hy), -hy + 2 * hy * f, np.full(points_per_edge, hy), hy - 2 * hy * f])
    c, s = math.cos(math.radians(theta_deg)), math.sin(math.radians(theta_deg))
    return inverse_gnomonic(ra0, dec0, c * lx - s * ly, s * lx + c * ly)


def clip_area(xs, ys, x0, x1, y0, y1):
    """Area of polygon (xs, ys) clipped to [x0, x1] x [y0, y1] (Sutherland-Hodgman + shoelace)."""
    pts = list(zip(map(float, xs), map(float, ys)))
    for axis, bound, ge in ((0, x0, True), (0, x1, False), (1, y0, True), (1, y1, False)):
        if not pts:
            return 0.0

        def inside(p):
            return p[axis] >= bound if ge else p[axis] <= bound

        def cut(p, q):
            t = (bound - p[axis]) / (q[axis] - p[axis])
            return (p[0] + t * (q[0] - p[0]), p[1] + t * (q[1] - p[1]))

        out = []
        for i in range(len(pts)):
            s, e = pts[i - 1], pts[i]
            if inside(e):
                if not inside(s):
                    out.append(cut(s, e))
                out.append(e)
            elif inside(s):
                out.append(cut(s, e))
        pts = out
    if len(pts) < 3:
        return 0.0
    a = 0.0
    for i in range(len(pts)):
        (xa, ya), (xb, yb) = pts[i - 1], pts[i]
        a += xa * yb - xb * ya
    return abs(a) / 2


class Brute:
    """Slow, obvious reference implementations (astropy WCS per projection cell)."""

    def __init__(self):
        text = resources.files("mvmdb").joinpath("data", "allsky_cells.csv").read_text()
        self.rings = [
            dict(projcell=int(r["PROJCELL"]), nband=int(r["NBAND"]), dec=float(r["DEC"]),
                 dec_min=float(r["DEC_MIN"]), dec_max=float(r["DEC_MAX"]))
            for r in csv.DictReader(text.splitlines())
        ]
        crval = []
        for r in self.rings:
            for band in range(r["nband"]):
                crval.append((band * 360 / r["nband"], r["dec"]))
        self.crval = np.array(crval)
        a, d = np.radians(self.crval[:, 0]), np.radians(self.crval[:, 1])
        self.unit = np.column_stack([np.cos(d) * np.cos(a), np.cos(d) * np.sin(a), np.sin(d)])

    @functools.lru_cache(maxsize=None)
    def pc_wcs(self, pc: int) -> WCS:
        w = WCS(naxis=2)
        w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
        w.wcs.crval = list(self.crval[pc])
        w.wcs.crpix = [PC_CRPIX, PC_CRPIX]
        w.wcs.cd = [[-CD, 0.0], [0.0, CD]]
        w.pixel_shape = (PCN, PCN)
        return w

    def skycell_wcs(self, pc: int, x: int, y: int, scale: float = 0.04) -> WCS:
        ratio = 0.04 / scale
        w = WCS(naxis=2)
        w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
        w.wcs.crval = list(self.crval[pc])
        w.wcs.crpix = [(PC_CRPIX - (x - 1) * S) * ratio, (PC_CRPIX - (y - 1) * S) * ratio]
        w.wcs.cd = np.array([[-CD, 0.0], [0.0, CD]]) / ratio
        n = int(NSC * ratio)
        w.pixel_shape = (n, n)
        return w

    inverse_gnomonic = staticmethod(inverse_gnomonic)
    rect_polygon = staticmethod(rect_polygon)
    clip_area = staticmethod(clip_area)

    def pcs_near(self, ra, dec, max_deg):
        a, d = math.radians(ra), math.radians(dec)
        u = np.array([math.cos(d) * math.cos(a), math.cos(d) * math.sin(a), math.sin(d)])
        return np.nonzero(self.unit @ u >= math.cos(math.radians(max_deg)))[0].tolist()

    @staticmethod
    def _state(v, lo, hi, eps):
        """+1 inside [lo, hi] by more than eps, 0 within eps of a bound, -1 outside."""
        if lo + eps <= v <= hi - eps:
            return 1
        if lo - eps <= v <= hi + eps:
            return 0
        return -1

    def cells_at(self, ra, dec, eps=1e-6):
        """(definite, ambiguous) sets of names: cells of every PC of the candidate rings (geometry only)."""
        definite, ambiguous = set(), set()
        near = set(self.pcs_near(ra, dec, 10.0))
        for r in self.rings:
            rs = self._state(dec, r["dec_min"], r["dec_max"], 1e-12)
            if rs < 0:
                continue
            for pc in range(r["projcell"], r["projcell"] + r["nband"]):
                if pc not in near:
                    continue
                x, y = (float(v) for v in self.pc_wcs(pc).world_to_pixel_values(ra, dec))
                sp = min(self._state(x, 0, PCN, eps), self._state(y, 0, PCN, eps))
                if sp < 0:
                    continue
                for ix in range(1, 22):
                    sx = self._state(x - (ix - 1) * S, 0, NSC, eps)
                    if sx < 0:
                        continue
                    for iy in range(1, 22):
                        sy = self._state(y - (iy - 1) * S, 0, NSC, eps)
                        if sy < 0:
                            continue
                        name = f"skycell-p{pc:04d}x{ix:02d}y{iy:02d}"
                        (definite if min(rs, sp, sx, sy) > 0 else ambiguous).add(name)
        return definite, ambiguous

    def cells_overlapping(self, ra, dec, eps=1e-3):
        """(definite, ambiguous) names of sky cells whose (cell box & PC box) meets the polygon."""
        ra = np.asarray(ra, dtype=float)
        dec = np.asarray(dec, dtype=float)
        a, d = np.radians(ra), np.radians(dec)
        u = np.column_stack([np.cos(d) * np.cos(a), np.cos(d) * np.sin(a), np.sin(d)]).sum(axis=0)
        u /= np.linalg.norm(u)
        cra = math.degrees(math.atan2(u[1], u[0]))
        cdec = math.degrees(math.asin(max(-1.0, min(1.0, u[2]))))
        radius = max(math.degrees(math.acos(max(-1.0, min(1.0, float(v))))) for v in
                     (np.column_stack([np.cos(d) * np.cos(a), np.cos(d) * np.sin(a), np.sin(d)]) @ u))
        definite, ambiguous = set(), set()
        for pc in self.pcs_near(cra, cdec, radius + 4.0):
            x, y = self.pc_wcs(pc).world_to_pixel_values(ra, dec)
            assert np.all(np.isfinite(x)) and np.all(np.isfinite(y))
            if x.max() < -eps or x.min() > PCN + eps or y.max() < -eps or y.min() > PCN + eps:
                continue
            for ix in range(1, 22):
                x0 = (ix - 1) * S
                x1 = min(x0 + NSC, PCN)
                if x.max() < x0 - eps or x.min() > x1 + eps:
                    continue
                for iy in range(1, 22):
                    y0 = (iy - 1) * S
                    y1 = min(y0 + NSC, PCN)
                    if y.max() < y0 - eps or y.min() > y1 + eps:
                        continue
                    name = f"skycell-p{pc:04d}x{ix:02d}y{iy:02d}"
                    if clip_area(x, y, x0 + eps, x1 - eps, y0 + eps, y1 - eps) > 1e-12:
                        definite.add(name)
                    elif clip_area(x, y, x0 - eps, x1 + eps, y0 - eps, y1 + eps) > 1e-12:
                        ambiguous.add(name)
        return definite, ambiguous


@pytest.fixture(scope="session")
def brute() -> Brute:
    return Brute()
