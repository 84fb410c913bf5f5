"""Trailed-exposure detection from pixels (loss of guide-star lock, scans, drifts): pure numpy/scipy.

Input: the chips of one exposure as (SCI, DQ) arrays with their pixel scale (arcsec per
native pixel); output: a :class:`TrailResult` (flagged, score, reason, ...).  No FITS,
no database: :func:`mvmdb.fitsio.pixels.read_exposure_pixels` reads the arrays.

Algorithm (see ``docs/qa.md`` for the measured performance):

1. Each chip is reduced to a working image of ~0.15"/bin (:mod:`mvmdb.qa.sources`):
   DQ-flagged pixels (cosmic rays, bad, hot, saturated) are left out, bins within 1" of
   saturation are not measured (bleed columns, saturated cores).
2. Compact peaks of S/N >= :data:`SHAPE_SNR` are found and moved to their light-weighted
   centre (Gaussian weight of :data:`CENTRE_SIGMA_ARCSEC`): the middle of a trail.
3. Linearity probe: the lightly smoothed image is sampled at the centre ``I0`` and at
   +-:data:`PROBE_ARCSEC` along 12 directions (15 deg apart); per direction
   ``t = min(I+, I-) / I0``.  A trail of >= 1" keeps both sides on its plateau
   (``t ~ 0.8``); a PSF drops to a few per cent; a CTE tail is one-sided (one side ~ 0);
   diffraction spikes carry a few per cent of the light.  A source is *elongated* when
   its best direction has ``t >= LINEARITY_MIN`` and the perpendicular one at most
   half of that (round extended galaxies are not elongated).  Peaks much sharper than
   the PSF (cosmic rays left unflagged, hot pixels) are dropped.
4. Consensus: elongated peaks are chained into distinct *lines* (neighbours within 3"
   whose orientations, from weighted second moments, agree and whose separation runs
   along them: a satellite streak or a long trail gives many peaks on one line, one
   vote).  The dominant direction (+-15 deg) collects ``n_aligned`` lines; ``score = n_aligned /
   n_objects`` where objects are the round sources plus all lines.  Flagged when
   ``score >= FLAG_SCORE``, ``n_aligned >= MIN_LINES`` and the perpendicular direction
   has fewer than half as many lines (the two perpendicular families of diffraction
   spikes).  Galaxies are elongated in random directions, so they dilute the score.

Angles are in degrees counter-clockwise from the detector +x axis (0-180), the same
frame for every chip of ACS/WFC and WFC3/UVIS.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from mvmdb.qa.sources import WorkImage, find_peaks, weighted_centroids, work_image

SHAPE_SNR = 15.0  # detection S/N of a peak whose shape is measured
PROBE_ARCSEC = 0.35  # distance of the linearity probes from the centre
CENTRE_SIGMA_ARCSEC = 0.3  # weight of the centring on the middle of a trail
N_DIRECTIONS = 12
LINEARITY_MIN = 0.4
PERPENDICULAR_MAX = 0.5  # perpendicular probe / best probe, at most
SHARP_MAX = 0.12  # mean of the 8 neighbours / centre below this: a cosmic ray or hot pixel
LINK_ARCSEC = 3.0  # elongated peaks closer than this ...
LINK_ANGLE_DEG = 8.0  # ... and collinear to this tolerance belong to one line
ALIGN_WINDOW_DEG = 15.0  # lines within this of the dominant direction are aligned
MIN_LINES = 5
FLAG_SCORE = 0.5
MIN_OBJECTS = 5


@dataclass(frozen=True)
class TrailResult:
    """The trail check of one exposure.

    ``flagged``: the exposure's sources are trailed; ``score``: share of the measured
    objects elongated along the dominant direction (0-1); ``reason``: one line for an
    operator (starts with ``trailed`` when flagged); ``n_objects``: objects measured
    (round sources + distinct lines); ``n_aligned``: distinct lines along the dominant
    direction; ``angle_deg``: that direction (deg from detector +x, 0-180; NaN if none).
    """

    flagged: bool
    score: float
    reason: str
    n_objects: int = 0
    n_aligned: int = 0
    angle_deg: float = float("nan")

    def row(self, ipppssoot: str) -> dict:
        """One storable row: ipppssoot, check='trail', flagged, value (= score), reason."""
        return {"ipppssoot": ipppssoot, "check": "trail", "flagged": bool(self.flagged),
                "value": float(self.score), "reason": self.reason}


@dataclass
class _Objects:
    chip: np.ndarray  # chip index
    x: np.ndarray  # arcsec on the chip (working-bin centre x scale)
    y: np.ndarray
    elongated: np.ndarray  # bool
    theta: np.ndarray  # orientation, radians in [0, pi), from +x


_FIELDS = ("chip", "x", "y", "elongated", "theta")


def _measure_chip(work: WorkImage, chip: int) -> _Objects:
    xb, yb, _ = find_peaks(work, SHAPE_SNR)
    empty = _Objects(*(np.zeros(0, t) for t in (int, float, float, bool, float)))
    if xb.size == 0:
        return empty
    res = work.resid
    ny, nx = res.shape
    # sharpness on the unsmoothed bins: cosmic rays and hot pixels are single bins
    centre = res[yb, xb]
    nb = sum(res[np.clip(yb + dy, 0, ny - 1), np.clip(xb + dx, 0, nx - 1)]
             for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx) / 8.0
    keep = nb > SHARP_MAX * centre
    xb, yb = xb[keep], yb[keep]
    if xb.size == 0:
        return empty
    sigma = max(1.0, CENTRE_SIGMA_ARCSEC / work.scale)
    xc, yc, _, (mxx, myy, mxy) = weighted_centroids(work.smooth, xb, yb, sigma, moments=True)
    d = PROBE_ARCSEC / work.scale
    ang = np.arange(N_DIRECTIONS) * (math.pi / N_DIRECTIONS)
    ux, uy = np.cos(ang), np.sin(ang)
    px = np.concatenate([xc[:, None] + d * ux[None, :], xc[:, None] - d * ux[None, :]], axis=1)
    py = np.concatenate([yc[:, None] + d * uy[None, :], yc[:, None] - d * uy[None, :]], axis=1)
    sm = work.smooth
    i0 = ndimage.map_coordinates(sm, [yc, xc], order=1, mode="nearest")
    probes = ndimage.map_coordinates(sm, [py.ravel(), px.ravel()], order=1, mode="nearest").reshape(px.shape)
    with np.errstate(all="ignore"):
        t = np.minimum(probes[:, :N_DIRECTIONS], probes[:, N_DIRECTIONS:]) / i0[:, None]
    ok = i0 > 0
    t = np.where(ok[:, None], t, 0.0)
    best = np.argmax(t, axis=1)
    tb = t[np.arange(best.size), best]
    tp = t[np.arange(best.size), (best + N_DIRECTIONS // 2) % N_DIRECTIONS]
    elongated = ok & (tb >= LINEARITY_MIN) & (tp <= PERPENDICULAR_MAX * tb)
    # orientation from the weighted second moments (finer than the 15-deg probes)
    theta = (0.5 * np.arctan2(2.0 * mxy, mxx - myy)) % math.pi
    return _Objects(np.full(xc.size, chip), xc * work.scale, yc * work.scale, elongated, theta)


def _axial_diff(a, b):
    """Smallest difference of two orientations (radians, modulo pi), in [0, pi/2]."""
    d = np.abs(np.asarray(a) - np.asarray(b)) % math.pi
    return np.minimum(d, math.pi - d)


def _lines(obj: _Objects) -> tuple[int, np.ndarray]:
    """Group elongated peaks into lines: two peaks on one chip within LINK_ARCSEC whose
    orientations agree and whose separation runs along them (LINK_ANGLE) are linked;
    connected groups are one line (a trail, a streak, a galaxy).  Returns the number of
    lines and each line's orientation (radians)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    n = obj.x.size
    if n == 0:
        return 0, np.zeros(0)
    pts = np.stack([obj.x, obj.y + obj.chip * 1.0e6], axis=1)
    pairs = cKDTree(pts).query_pairs(LINK_ARCSEC, output_type="ndarray")
    if pairs.size:
        i, j = pairs[:, 0], pairs[:, 1]
        sep = np.arctan2(pts[j, 1] - pts[i, 1], pts[j, 0] - pts[i, 0]) % math.pi
        tol = math.radians(LINK_ANGLE_DEG)
        link = (_axial_diff(obj.theta[i], obj.theta[j]) <= tol) & (_axial_diff(sep, obj.theta[i]) <= tol)
        i, j = i[link], j[link]
    else:
        i = j = np.zeros(0, int)
    graph = coo_matrix((np.ones(i.size), (i, j)), shape=(n, n))
    count, label = connected_components(graph, directed=False)
    c2 = np.bincount(label, weights=np.cos(2 * obj.theta), minlength=count)
    s2 = np.bincount(label, weights=np.sin(2 * obj.theta), minlength=count)
    return count, (0.5 * np.arctan2(s2, c2)) % math.pi


def _subset(obj: _Objects, keep: np.ndarray) -> _Objects:
    return _Objects(*(getattr(obj, f)[keep] for f in _FIELDS))


def detect_trail(chips: Sequence[tuple[np.ndarray, np.ndarray | None]], pixel_scale: float,
                 works: Sequence[WorkImage] | None = None) -> TrailResult:
    """Decide whether the point sources of one exposure are trailed.

    ``chips``: (SCI, DQ) per chip, 2-D arrays indexed [y, x] (DQ may be None);
    ``pixel_scale``: arcsec per native pixel (e.g. 0.05 for ACS/WFC, 0.04 WFC3/UVIS,
    0.128 WFC3/IR, times the downscale of simulated exposures); ``works``: the chips'
    working images when already made (:func:`mvmdb.qa.exposure.check_exposure` shares
    them with the alignment sources).
    """
    if works is None:
        works = [work_image(sci, dq, pixel_scale) for sci, dq in chips]
    parts = [_measure_chip(work, i) for i, work in enumerate(works)]
    obj = _Objects(*(np.concatenate([getattr(p, f) for p in parts]) for f in _FIELDS))
    n_round = int(np.count_nonzero(~obj.elongated))
    n_lines, line_theta = _lines(_subset(obj, obj.elongated))
    n_objects = n_round + n_lines
    if n_objects < MIN_OBJECTS:
        return TrailResult(False, 0.0, f"unchecked: too few sources ({n_objects} measured, need {MIN_OBJECTS})",
                           n_objects)
    trial = np.radians(np.arange(0.0, 180.0, 5.0))
    window = math.radians(ALIGN_WINDOW_DEG)
    counts = (_axial_diff(line_theta[None, :], trial[:, None]) <= window).sum(axis=1)
    k = int(np.argmax(counts))
    n_aligned = int(counts[k])
    n_perp = int(counts[(k + trial.size // 2) % trial.size])
    score = n_aligned / n_objects
    angle = math.degrees(trial[k])
    what = f"{n_aligned} of {n_objects} sources elongated along {angle:.0f} deg (detector frame)"
    if score >= FLAG_SCORE and n_aligned >= MIN_LINES and n_perp < 0.5 * n_aligned:
        return TrailResult(True, score, f"trailed: {what}", n_objects, n_aligned, angle)
    if score >= FLAG_SCORE and n_aligned >= MIN_LINES:
        why = f"ok: {what}, but as many across ({n_perp}): diffraction-spike pattern"
    else:
        why = f"ok: {what}"
    return TrailResult(False, score, why, n_objects, n_aligned, angle if n_aligned else float("nan"))
