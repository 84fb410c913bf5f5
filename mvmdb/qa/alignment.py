"""Alignment of the visits of one layer against each other, from source positions (pure numpy/scipy).

Input: per visit, the sky positions (RA, Dec in degrees) of compact sources measured on
its exposures through their *header* WCS (:func:`exposure_sources` finds them on the
chips); output: per visit, its offset from the rest of the layer in milliarcseconds and
whether it exceeds the threshold (default :data:`THRESHOLD_MAS` = 20 mas).

Method (chosen over cross-correlating drizzled visit images: no drizzling needed, the
exposures' own pixels give sharper centroids, cost grows with the number of sources not
pixels; measured in ``benchmarks/bench_qa.py``):

1. All positions go to one tangent plane (east, north arcsec) about their mean.
2. For every pair of visits, the offsets of all source pairs closer than
   ``search_arcsec`` vote in a 2-D histogram (:data:`VOTE_BIN_ARCSEC` bins, 3 x 3
   summed); the peak is the pair's coarse offset; pairs within :data:`MATCH_ARCSEC` of it
   give the offset as a 3-sigma-clipped mean (and its error).  A pair needs
   :data:`MIN_MATCHES` matches.
3. The visits' offsets ``o`` solve ``o_j - o_i = d_ij`` in the least-squares sense
   (weights ``1/err^2``), per connected group of visits; the gauge is the median over the
   group's visits, so a minority of misaligned visits is measured against the aligned
   majority (with only two visits each gets half the relative offset).

Signs: a visit's offset is (its source positions) - (the layer's), east and north in mas.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from mvmdb.qa.sources import BAD_DQ, WorkImage, find_peaks, weighted_first_moments, work_image

THRESHOLD_MAS = 20.0
SEARCH_ARCSEC = 2.0  # largest offset between two visits that is searched for
VOTE_BIN_ARCSEC = 0.04
MATCH_ARCSEC = 0.1
MIN_MATCHES = 5
SOURCE_SNR = 20.0
CENTROID_SIGMA_ARCSEC = 0.06  # weight of the positional centroid (about an HST PSF core)


@dataclass(frozen=True)
class VisitOffset:
    """One visit's alignment against the rest of its layer.

    ``east_mas``, ``north_mas``, ``offset_mas``: the offset (NaN when not measured);
    ``error_mas``: its 1-sigma uncertainty; ``n_matches``: matched source pairs with the
    other visits; ``flagged``: offset above the threshold; ``reason``: one line.
    """

    visit: str
    east_mas: float
    north_mas: float
    offset_mas: float
    error_mas: float
    n_matches: int
    flagged: bool
    reason: str

    def row(self, ipppssoot: str) -> dict:
        """One storable row per exposure of the visit: check='alignment', value = offset (mas)."""
        return {"ipppssoot": ipppssoot, "check": "alignment", "flagged": bool(self.flagged),
                "value": float(self.offset_mas), "reason": self.reason}


def exposure_sources(chips: Sequence[tuple[np.ndarray, np.ndarray | None]], pixel_scale: float,
                     snr: float = SOURCE_SNR, max_sources: int = 2000,
                     works: Sequence[WorkImage] | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Centroids of compact sources per chip: [(x, y), ...] 0-based native pixels.

    Peaks of S/N >= ``snr`` on the working image (:mod:`mvmdb.qa.sources`; none near
    saturation or flagged pixels), centred on the native pixels with a Gaussian weight of
    :data:`CENTROID_SIGMA_ARCSEC` (at least 1 px).  Convert with the chip's header WCS
    (``origin=0``) to sky positions for :func:`measure_alignment`.  ``works``: the
    chips' working images when already made (shared with the trail check).
    """
    out = []
    if works is None:
        works = [work_image(sci, dq, pixel_scale) for sci, dq in chips]
    for (sci, dq), work in zip(chips, works):
        xb, yb, _ = find_peaks(work, snr, max_sources)
        x0, y0 = work.to_native(xb, yb)
        img = np.asarray(sci, dtype=np.float32)
        sigma = max(1.0, CENTROID_SIGMA_ARCSEC / pixel_scale)
        x, y = _centroid_native(img, dq, x0, y0, sigma)
        ok = np.isfinite(x) & np.isfinite(y)
        out.append((x[ok], y[ok]))
    return out


def _centroid_native(img: np.ndarray, dq, x0: np.ndarray, y0: np.ndarray, sigma: float):
    """Weighted centroids on native pixels around (x0, y0), each stamp minus the median
    of its outer ring (local background); DQ-flagged pixels count 0."""
    if x0.size == 0:
        return x0.astype(float), y0.astype(float)
    ny, nx = img.shape
    r = max(3, int(math.ceil(4.0 * sigma)))
    offs = np.arange(-r, r + 1)
    ix, iy = np.rint(x0).astype(np.int64), np.rint(y0).astype(np.int64)
    inside = (ix - r >= 0) & (ix + r < nx) & (iy - r >= 0) & (iy + r < ny)
    ix, iy = ix[inside], iy[inside]
    stamps = img[(iy[:, None] + offs)[:, :, None], (ix[:, None] + offs)[:, None, :]].astype(float)
    ring = np.maximum(np.abs(offs)[:, None], np.abs(offs)[None, :]) == r
    bkg = np.median(stamps[:, ring], axis=1)
    stamps -= bkg[:, None, None]
    if dq is not None:
        flags = np.asarray(dq)[(iy[:, None] + offs)[:, :, None], (ix[:, None] + offs)[:, None, :]]
        stamps[(flags & BAD_DQ) != 0] = 0.0
    cx, cy = _stack_centroids(stamps, r, sigma)
    x = np.full(x0.size, np.nan)
    y = np.full(x0.size, np.nan)
    x[inside] = ix + cx - r
    y[inside] = iy + cy - r
    return x, y


def _stack_centroids(stamps: np.ndarray, r: int, sigma: float, iterations: int = 5):
    """Iterated Gaussian-weighted centroids of a stack of (2r+1)^2 stamps (stamp pixels)."""
    n = stamps.shape[0]
    g = np.arange(2 * r + 1, dtype=float)
    cx = np.full(n, float(r))
    cy = np.full(n, float(r))
    for _ in range(iterations):
        sx, sy, tot, _ = weighted_first_moments(stamps, g[None, :] - cx[:, None], g[None, :] - cy[:, None], sigma)
        ok = tot > 0
        cx = np.clip(cx + np.where(ok, np.clip(2.0 * sx, -1, 1), np.nan), 0, 2 * r)
        cy = np.clip(cy + np.where(ok, np.clip(2.0 * sy, -1, 1), np.nan), 0, 2 * r)
    return cx, cy


def _tangent(ra: np.ndarray, dec: np.ndarray, ra0: float, dec0: float):
    """Gnomonic projection about (ra0, dec0) deg -> (east, north) arcsec."""
    r, d = np.radians(ra), np.radians(dec)
    a0, d0 = math.radians(ra0), math.radians(dec0)
    cosc = math.sin(d0) * np.sin(d) + math.cos(d0) * np.cos(d) * np.cos(r - a0)
    xi = np.cos(d) * np.sin(r - a0) / cosc
    eta = (math.cos(d0) * np.sin(d) - math.sin(d0) * np.cos(d) * np.cos(r - a0)) / cosc
    return np.degrees(xi) * 3600.0, np.degrees(eta) * 3600.0


def pair_offset(a: np.ndarray, b: np.ndarray, search_arcsec: float = SEARCH_ARCSEC):
    """Offset of source set ``b`` relative to ``a`` ((n, 2) arcsec arrays).

    Returns (dx, dy, error, n_matches) in arcsec, or None when fewer than MIN_MATCHES
    pairs agree.
    """
    if len(a) < MIN_MATCHES or len(b) < MIN_MATCHES:
        return None
    sdm = cKDTree(a).sparse_distance_matrix(cKDTree(b), search_arcsec, output_type="ndarray")
    if sdm.size < MIN_MATCHES:
        return None
    d = b[sdm["j"]] - a[sdm["i"]]
    nbin = int(math.ceil(search_arcsec / VOTE_BIN_ARCSEC))
    edges = np.linspace(-nbin * VOTE_BIN_ARCSEC, nbin * VOTE_BIN_ARCSEC, 2 * nbin + 1)
    hist, _, _ = np.histogram2d(d[:, 0], d[:, 1], bins=[edges, edges])
    pad = np.pad(hist, 1)
    votes = sum(pad[1 + i : 1 + i + hist.shape[0], 1 + j : 1 + j + hist.shape[1]]
                for i in (-1, 0, 1) for j in (-1, 0, 1))
    ix, iy = np.unravel_index(int(np.argmax(votes)), votes.shape)
    guess = np.array([0.5 * (edges[ix] + edges[ix + 1]), 0.5 * (edges[iy] + edges[iy + 1])])
    sel = d[np.hypot(*(d - guess).T) < MATCH_ARCSEC]
    for _ in range(5):
        if len(sel) < MIN_MATCHES:
            return None
        centre = sel.mean(axis=0)
        spread = max(float(np.sqrt(((sel - centre) ** 2).sum(axis=1).mean() / 2.0)), 1e-4)
        keep = np.hypot(*(sel - centre).T) < max(3.0 * spread, 0.01)
        if keep.all():
            break
        sel = sel[keep]
    if len(sel) < MIN_MATCHES:
        return None
    centre = sel.mean(axis=0)
    spread = float(np.sqrt(((sel - centre) ** 2).sum(axis=1).mean() / 2.0))
    return float(centre[0]), float(centre[1]), spread / math.sqrt(len(sel)), int(len(sel))


def measure_alignment(catalogs: Mapping[str, tuple[np.ndarray, np.ndarray]], threshold_mas: float = THRESHOLD_MAS,
                      search_arcsec: float = SEARCH_ARCSEC) -> dict[str, VisitOffset]:
    """Each visit's offset from the rest of the layer.

    ``catalogs``: visit -> (ra, dec) in degrees of the sources of all its exposures
    (positions through the header WCS); ``threshold_mas``: flag above this;
    ``search_arcsec``: the largest offset between two visits looked for.
    """
    names = list(catalogs)
    out: dict[str, VisitOffset] = {}
    allra = np.concatenate([np.asarray(catalogs[v][0], float) for v in names]) if names else np.zeros(0)
    alldec = np.concatenate([np.asarray(catalogs[v][1], float) for v in names]) if names else np.zeros(0)
    if allra.size == 0:
        return {v: _unmeasured(v, "no sources") for v in names}
    # mean position on the unit sphere (safe across RA = 0)
    vec = np.stack([np.cos(np.radians(alldec)) * np.cos(np.radians(allra)),
                    np.cos(np.radians(alldec)) * np.sin(np.radians(allra)), np.sin(np.radians(alldec))]).mean(axis=1)
    ra0 = math.degrees(math.atan2(vec[1], vec[0])) % 360.0
    dec0 = math.degrees(math.atan2(vec[2], math.hypot(vec[0], vec[1])))
    pts = {v: np.stack(_tangent(np.asarray(catalogs[v][0], float), np.asarray(catalogs[v][1], float), ra0, dec0),
                       axis=1) for v in names}
    n = len(names)
    rows, rhs, wts = [], [], []
    matches = np.zeros(n, int)
    for i in range(n):
        for j in range(i + 1, n):
            res = pair_offset(pts[names[i]], pts[names[j]], search_arcsec)
            if res is None:
                continue
            dx, dy, err, m = res
            rows.append((i, j))
            rhs.append((dx, dy))
            wts.append(1.0 / max(err, 1e-4) ** 2)
            matches[i] += m
            matches[j] += m
    group = _groups(n, rows)
    for g in set(group):
        members = [k for k in range(n) if group[k] == g]
        if len(members) < 2:
            out[names[members[0]]] = _unmeasured(names[members[0]], "no overlap with another visit (too few matches)")
            continue
        edges = [(e, r) for e, r in enumerate(rows) if group[r[0]] == g]
        idx = {k: p for p, k in enumerate(members)}
        a = np.zeros((len(edges) + 1, len(members)))
        b = np.zeros((len(edges) + 1, 2))
        w = np.zeros(len(edges) + 1)
        for row, (e, (i, j)) in enumerate(edges):
            a[row, idx[j]] = 1.0
            a[row, idx[i]] = -1.0
            b[row] = rhs[e]
            w[row] = math.sqrt(wts[e])
        a[-1, :] = 1.0  # gauge for the solve; replaced by the median below
        w[-1] = math.sqrt(max(wts[e] for e, _ in edges))
        sol, *_ = np.linalg.lstsq(a * w[:, None], b * w[:, None], rcond=None)
        sol -= np.median(sol, axis=0)
        cov = np.linalg.pinv((a * w[:, None]).T @ (a * w[:, None]))
        for k in members:
            east, north = sol[idx[k]] * 1000.0
            off = math.hypot(east, north)
            err = math.sqrt(max(cov[idx[k], idx[k]], 0.0)) * 1000.0
            flagged = off > threshold_mas
            word = "misaligned" if flagged else "aligned"
            reason = (f"{word}: {off:.1f} mas (east {east:+.1f}, north {north:+.1f}) from the rest of the layer, "
                      f"threshold {threshold_mas:g} mas, {matches[k]} matches")
            out[names[k]] = VisitOffset(names[k], float(east), float(north), float(off), float(err), int(matches[k]),
                                        flagged, reason)
    return {v: out[v] for v in names}


def _unmeasured(visit: str, why: str) -> VisitOffset:
    nan = float("nan")
    return VisitOffset(visit, nan, nan, nan, nan, 0, False, f"unmeasured: {why}")


def _groups(n: int, edges: list[tuple[int, int]]) -> list[int]:
    """Connected components of visits linked by measured pair offsets (labels)."""
    label = list(range(n))

    def find(k: int) -> int:
        while label[k] != k:
            label[k] = label[label[k]]
            k = label[k]
        return k

    for i, j in edges:
        label[find(i)] = find(j)
    return [find(k) for k in range(n)]
