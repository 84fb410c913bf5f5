"""Compact-source finding on one chip, shared by the trail and alignment checks (pure numpy/scipy).

Pixel conventions: arrays are indexed ``image[y, x]``; positions are 0-based pixel
centres (the centre of ``image[0, 0]`` is (0, 0)), as ``astropy.wcs`` with ``origin=0``.

The chip is first reduced to a *working image* of about :data:`WORK_SCALE` arcsec per
bin (``b x b`` native pixels averaged, ``b = round(WORK_SCALE / pixel_scale)``, at least
1): a 4096 x 2048 ACS/WFC chip becomes 1365 x 682 bins, so every later step is cheap
(the full-size passes are the dtype conversion, the DQ mask and the binning), and a
trail of 1 arcsec spans about 7 bins whatever the detector.  Pixels with a DQ bit in
:data:`BAD_DQ` (bad, hot, bad column, saturated, cosmic rays) do not enter the bins;
bins with less than half their pixels good are *bad bins* (value 0 = sky).  Bins
within :data:`SATURATION_GUARD_ARCSEC` of a saturated pixel are *excluded*: no source
is measured there (bleed columns, saturated cores and the brightest spike roots).

Background: the median of 32 x 32-bin meshes, bilinearly smoothed back; noise: the
MAD of the smoothed residual.  Peaks: local maxima (5 x 5 bins) of the residual
smoothed with a Gaussian of :data:`SMOOTH_SIGMA_BINS`, at least ``nsigma`` noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

WORK_SCALE = 0.15  # arcsec per working bin
SMOOTH_SIGMA_BINS = 0.5  # light smoothing for shapes: keeps the PSF compact (see trail.py)
DETECT_SIGMA_BINS = 1.0  # detection smoothing: no noise peaks on smooth extended light
PEAK_SEPARATION_ARCSEC = 0.5  # local maxima closer than this to a brighter one are dropped
MESH_BINS = 32  # background mesh, working bins
SATURATION_GUARD_ARCSEC = 1.0
EDGE_BINS = 6

# DQ bits whose pixels are ignored: bad detector pixel 4, hot 16, bad column 128,
# saturated 256, A-to-D saturation 2048, cosmic rays 4096 (AstroDrizzle) and 8192 (pipeline).
BAD_DQ = 4 | 16 | 128 | 256 | 2048 | 4096 | 8192
SATURATED_DQ = 256 | 2048


@dataclass
class WorkImage:
    """One chip at working scale.

    ``resid``: background-subtracted bins (file units per native pixel, float32);
    ``smooth``: ``resid`` smoothed (SMOOTH_SIGMA_BINS); ``noise``: robust sigma of
    ``smooth``; ``detect``/``detect_noise``: smoothed with DETECT_SIGMA_BINS and its
    noise; ``bin``: native pixels per bin side; ``scale``: arcsec per bin;
    ``excluded``: bins where no source is measured (bad, near saturation, edges).
    Bin (i, j) covers native pixels ``b*i .. b*i + b - 1``; its centre is native
    ``b*i + (b - 1)/2``.
    """

    resid: np.ndarray
    smooth: np.ndarray
    noise: float
    detect: np.ndarray
    detect_noise: float
    bin: int
    scale: float
    excluded: np.ndarray

    def to_native(self, xb, yb):
        """Working-bin coordinates -> 0-based native pixel coordinates."""
        off = 0.5 * (self.bin - 1)
        return np.asarray(xb) * self.bin + off, np.asarray(yb) * self.bin + off


def bin_factor(pixel_scale: float) -> int:
    """Native pixels per working bin for a chip of ``pixel_scale`` arcsec/px."""
    return max(1, int(round(WORK_SCALE / float(pixel_scale))))


def _block_sum(a: np.ndarray, b: int, dtype=np.float32) -> np.ndarray:
    """Sum of ``b x b`` blocks of a 2-D array whose sides are multiples of ``b``.

    Strided slice additions (b + b passes) are several times faster than a reshaped
    ``sum`` over a short axis.
    """
    cols = a[:, 0::b].astype(dtype)
    for k in range(1, b):
        cols += a[:, k::b]
    out = cols[0::b].copy()
    for k in range(1, b):
        out += cols[k::b]
    return out


def _interp_matrix(n: int, m: int) -> np.ndarray:
    """(n, m) linear-interpolation weights from m mesh centres to n bins spanning them."""
    pos = np.clip((np.arange(n) + 0.5) * m / n - 0.5, 0.0, m - 1.0)
    lo = np.minimum(pos.astype(np.int64), max(m - 2, 0))
    frac = pos - lo
    w = np.zeros((n, m), np.float32)
    w[np.arange(n), lo] = 1.0 - frac
    if m > 1:
        w[np.arange(n), lo + 1] += frac
    return w


def _background(img: np.ndarray, bad: np.ndarray) -> np.ndarray:
    """Mesh-median background (MESH_BINS bins), bilinearly interpolated back."""
    ny, nx = img.shape
    m = MESH_BINS
    level = float(np.median(img[~bad][::7])) if (~bad).any() else 0.0
    if ny < m or nx < m:
        return np.full(img.shape, np.float32(level))
    my, mx = ny // m, nx // m
    core = np.where(bad, np.float32(level), img)[: my * m, : mx * m]
    blocks = core.reshape(my, m, mx, m).transpose(0, 2, 1, 3).reshape(my, mx, m * m)
    med = np.median(blocks, axis=2)
    med = ndimage.median_filter(med, size=3, mode="nearest").astype(np.float32)
    return _interp_matrix(ny, my) @ med @ _interp_matrix(nx, mx).T


def robust_sigma(a: np.ndarray, step: int = 7) -> float:
    """1.4826 x MAD of every ``step``-th element (finite ones)."""
    s = a.ravel()[::step]
    s = s[np.isfinite(s)]
    if s.size == 0:
        return 0.0
    med = np.median(s)
    return float(1.4826 * np.median(np.abs(s - med)))


def work_image(sci: np.ndarray, dq: np.ndarray | None, pixel_scale: float) -> WorkImage:
    """The working image of one chip (see the module docstring).

    ``sci``: 2-D pixels in any units (a FITS memmap is fine: read once); ``dq``: HST DQ
    bits of the same shape, or None; ``pixel_scale``: arcsec per native pixel.
    """
    b = bin_factor(pixel_scale)
    ny, nx = sci.shape
    ny, nx = (ny // b) * b, (nx // b) * b
    img = np.array(sci[:ny, :nx], dtype=np.float32)
    if dq is not None:
        d = np.asarray(dq[:ny, :nx])
        bad = (d & BAD_DQ) != 0
        sat = (d & SATURATED_DQ) != 0
        np.putmask(img, bad, 0.0)
    else:
        bad = sat = None
    if b > 1:
        sums = _block_sum(img, b)
        nbad = _block_sum(bad.view(np.uint8), b, np.uint8) if bad is not None else np.zeros(sums.shape, np.uint8)
        binned = sums / np.maximum(b * b - nbad, 1).astype(np.float32)
        badb = nbad > 0.5 * b * b
        satb = _block_sum(sat.view(np.uint8), b, np.uint8) > 0 if sat is not None else np.zeros(binned.shape, bool)
    else:
        binned = img
        badb = bad if bad is not None else np.zeros(img.shape, bool)
        satb = sat if sat is not None else np.zeros(img.shape, bool)
    bkg = _background(binned, badb)
    resid = binned - bkg
    resid[badb] = 0.0
    smooth = ndimage.gaussian_filter(resid, SMOOTH_SIGMA_BINS, mode="nearest")
    noise = robust_sigma(np.where(badb, np.nan, smooth))
    detect = ndimage.gaussian_filter(resid, DETECT_SIGMA_BINS, mode="nearest")
    detect_noise = robust_sigma(np.where(badb, np.nan, detect))
    scale = float(pixel_scale) * b
    excluded = badb.copy()
    if satb.any():
        guard = max(1, int(math.ceil(SATURATION_GUARD_ARCSEC / scale)))
        excluded |= ndimage.maximum_filter(satb, size=2 * guard + 1)
    excluded[:EDGE_BINS] = excluded[-EDGE_BINS:] = True
    excluded[:, :EDGE_BINS] = excluded[:, -EDGE_BINS:] = True
    return WorkImage(resid, smooth, noise, detect, detect_noise, b, scale, excluded)


def find_peaks(work: WorkImage, nsigma: float = 10.0,
               max_peaks: int = 2000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Local maxima of ``work.detect`` above ``nsigma`` noise outside the excluded bins,
    each the brightest within PEAK_SEPARATION_ARCSEC.

    Returns (xb, yb, snr): integer bin coordinates and peak S/N, brightest first, at
    most ``max_peaks``.
    """
    if work.detect_noise <= 0:
        return np.zeros(0, int), np.zeros(0, int), np.zeros(0)
    sm = work.detect
    thresh = nsigma * work.detect_noise
    r = max(2, int(round(PEAK_SEPARATION_ARCSEC / work.scale)))
    yb, xb = np.nonzero((sm > thresh) & ~work.excluded)
    # local maximum test at the (few) bins above threshold only
    ny, nx = sm.shape
    offs = np.arange(-r, r + 1)
    val = sm[yb, xb]
    is_max = np.ones(yb.size, bool)
    for dy in offs:  # 2r + 1 rows of the window, each vectorised over the candidates
        row = np.clip(yb + dy, 0, ny - 1)
        cols = np.clip(xb[:, None] + offs[None, :], 0, nx - 1)
        is_max &= (sm[row[:, None], cols] <= val[:, None]).all(axis=1)
    yb, xb = yb[is_max], xb[is_max]
    snr = sm[yb, xb] / work.detect_noise
    order = np.argsort(-snr)[:max_peaks]
    return xb[order], yb[order], snr[order]


def weighted_first_moments(stamps: np.ndarray, dx: np.ndarray, dy: np.ndarray, sigma: float):
    """Gaussian-weighted first moments of a stack of stamps.

    ``stamps``: (n, m, m) indexed [source, y, x]; ``dx``/``dy``: (n, m) pixel offsets of
    the stamp columns/rows from each weight centre; ``sigma``: weight width (px).
    Returns (sx, sy, total, weighted stamps): the mean offsets (0 where the weighted
    total is not positive), the weighted totals and ``stamps * weight``.
    """
    w = np.exp(-0.5 * (dy[:, :, None] ** 2 + dx[:, None, :] ** 2) / sigma**2)
    sw = stamps * w
    tot = sw.sum(axis=(1, 2))
    safe = np.where(tot > 0, tot, 1.0)
    sx = (sw * dx[:, None, :]).sum(axis=(1, 2)) / safe
    sy = (sw * dy[:, :, None]).sum(axis=(1, 2)) / safe
    return sx, sy, tot, sw


def weighted_centroids(image: np.ndarray, x: np.ndarray, y: np.ndarray, sigma: float, iterations: int = 3,
                       moments: bool = False):
    """Gaussian-weighted centroids (weight sigma ``sigma`` px) around (x, y), vectorised.

    ``image`` background-subtracted; (x, y) 0-based starting points.  Stamps are
    ``2 ceil(3 sigma) + 1`` px wide, clipped at the edges (pixels outside count 0).
    Each iteration moves by twice the weighted first moment (exact in one step for a
    Gaussian source as wide as the weight; the fixed point is the centre of any
    symmetric source), at most 1 px.  Returns (xc, yc, flux) with flux = the
    Gaussian-weighted sum of the last stamp (a brightness for ranking, not photometry);
    with ``moments=True`` also the weighted second moments (mxx, myy, mxy) in px^2
    about the final centre (for orientations).
    """
    x = np.asarray(x, float).copy()
    y = np.asarray(y, float).copy()
    if x.size == 0:
        z = np.zeros(0)
        return (x, y, z, (z, z, z)) if moments else (x, y, z)
    ny, nx = image.shape
    r = max(2, int(math.ceil(3.0 * sigma)))
    offs = np.arange(-r, r + 1)
    flux = np.zeros(x.size)
    mom = (np.zeros(x.size), np.zeros(x.size), np.zeros(x.size))
    for _ in range(iterations):
        ix = np.rint(x).astype(np.int64)
        iy = np.rint(y).astype(np.int64)
        gx = ix[:, None] + offs[None, :]
        gy = iy[:, None] + offs[None, :]
        inside = ((gx >= 0) & (gx < nx))[:, None, :] & ((gy >= 0) & (gy < ny))[:, :, None]
        stamp = image[np.clip(gy, 0, ny - 1)[:, :, None], np.clip(gx, 0, nx - 1)[:, None, :]].astype(float)
        stamp = np.where(inside, stamp, 0.0)
        dx = gx - x[:, None]
        dy = gy - y[:, None]
        sx, sy, tot, sw = weighted_first_moments(stamp, dx, dy, sigma)
        ok = tot > 0
        safe = np.where(ok, tot, 1.0)
        step_x = np.clip(np.where(ok, 2.0 * sx, 0.0), -1.0, 1.0)
        step_y = np.clip(np.where(ok, 2.0 * sy, 0.0), -1.0, 1.0)
        x += step_x
        y += step_y
        flux = tot
        if moments:
            ddx = (dx - sx[:, None])[:, None, :]
            ddy = (dy - sy[:, None])[:, :, None]
            mom = ((sw * ddx**2).sum(axis=(1, 2)) / safe, (sw * ddy**2).sum(axis=(1, 2)) / safe,
                   (sw * ddx * ddy).sum(axis=(1, 2)) / safe)
    if moments:
        return x, y, flux, mom
    return x, y, flux
