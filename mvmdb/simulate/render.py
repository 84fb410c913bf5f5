"""Pixel rendering: PSF stamps, galaxies, sky, noise, cosmic rays, detector defects, DQ.

Every function works on one chip in *file* pixels, 0-based: the centre of ``image[0, 0]``
is (x, y) = (0, 0), and ``image[j, i]`` covers x in [i - 0.5, i + 0.5].  Source
positions come from ``astropy.wcs.WCS.all_world2pix(..., 0)`` of the chip's true WCS.
Signal is accumulated in electrons (counts for SBC) for the whole exposure; the writer
converts to the file's units.  Nothing loops over pixels in Python: stars are drawn as
separable, pixel-integrated Gaussian stamps in vectorised chunks; the few galaxies are
drawn one stamp each.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage
from scipy.special import erf

from mvmdb.simulate.instruments import DQ

SQRT2 = math.sqrt(2.0)
FWHM_TO_SIGMA = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))

# PSF: a core Gaussian plus a faint, wide halo (HST-like wings), both centred on the
# source so the profile is symmetric and its centroid is the source position.
HALO_FRACTION = 0.12
HALO_WIDTH = 3.0  # halo FWHM / core FWHM


@dataclass
class PSF:
    """Double-Gaussian PSF in file pixels: ``fwhm`` of the core, normalised to 1."""

    fwhm: float
    halo_fraction: float = HALO_FRACTION
    halo_width: float = HALO_WIDTH

    @property
    def components(self) -> list[tuple[float, float]]:
        s = self.fwhm * FWHM_TO_SIGMA
        return [(1.0 - self.halo_fraction, s), (self.halo_fraction, s * self.halo_width)]

    @property
    def radius(self) -> int:
        """Stamp half-size in pixels (4 sigma of the widest component, at least 3)."""
        return max(3, int(math.ceil(4.0 * max(s for _, s in self.components))))


def _integrated_1d(x0: np.ndarray, grid: np.ndarray, sigma: float) -> np.ndarray:
    """Fraction of a unit 1-D Gaussian at x0 falling in pixels centred on ``grid``.

    ``x0``: (n,) centres; ``grid``: (n, m) pixel centres -> (n, m) fractions.
    """
    d = grid - x0[:, None]
    s = sigma * SQRT2
    return 0.5 * (erf((d + 0.5) / s) - erf((d - 0.5) / s))


def add_point_sources(
    image: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    counts: np.ndarray,
    psf: PSF,
    chunk: int = 20000,
) -> None:
    """Add point sources (``counts`` e- each, 0-based positions) into ``image`` in place.

    Each source is a pixel-integrated double Gaussian on a (2R+1)^2 stamp (R =
    ``psf.radius``) cut at the image edges; sources are processed in vectorised chunks
    and accumulated with ``np.bincount``.
    """
    ny, nx = image.shape
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    counts = np.asarray(counts, float)
    r = psf.radius
    keep = (x > -r - 1) & (x < nx + r) & (y > -r - 1) & (y < ny + r) & (counts != 0)
    x, y, counts = x[keep], y[keep], counts[keep]
    if x.size == 0:
        return
    offs = np.arange(-r, r + 1)
    flat = image.reshape(-1)
    for start in range(0, x.size, chunk):
        xs, ys, cs = x[start : start + chunk], y[start : start + chunk], counts[start : start + chunk]
        ix = np.rint(xs).astype(np.int64)[:, None] + offs[None, :]
        iy = np.rint(ys).astype(np.int64)[:, None] + offs[None, :]
        stamp = np.zeros((xs.size, offs.size, offs.size))
        for frac, sigma in psf.components:
            fx = _integrated_1d(xs, ix.astype(float), sigma)
            fy = _integrated_1d(ys, iy.astype(float), sigma)
            stamp += frac * fy[:, :, None] * fx[:, None, :]
        stamp *= cs[:, None, None]
        IX = np.broadcast_to(ix[:, None, :], stamp.shape)
        IY = np.broadcast_to(iy[:, :, None], stamp.shape)
        ok = (IX >= 0) & (IX < nx) & (IY >= 0) & (IY < ny)
        idx = IY[ok] * nx + IX[ok]
        flat += np.bincount(idx, weights=stamp[ok], minlength=flat.size)


def sersic_bn(n: float) -> float:
    """b_n of the Sersic profile (Ciotti & Bertin 1999 expansion)."""
    return 2.0 * n - 1.0 / 3.0 + 4.0 / (405.0 * n) + 46.0 / (25515.0 * n * n)


def add_galaxy(
    image: np.ndarray,
    x: float,
    y: float,
    counts: float,
    jac: np.ndarray,
    r_eff: float,
    n: float,
    axis_ratio: float,
    pa: float,
    psf: PSF,
    supersample: int = 4,
) -> None:
    """Add one Sersic galaxy, convolved with the PSF core, into ``image`` in place.

    (x, y): 0-based centre; ``counts``: e- within the stamp; ``jac``: 2x2 matrix taking
    pixel offsets to sky (east, north) arcsec at the galaxy; ``r_eff`` (arcsec, along the
    major axis), Sersic ``n``, ``axis_ratio`` b/a and ``pa`` (deg E of N of the major axis).
    """
    ny, nx = image.shape
    scale = math.sqrt(abs(np.linalg.det(jac)))  # arcsec per pixel
    half = int(min(max(math.ceil(5.0 * r_eff / scale) + 2 + psf.radius, 4), 200))
    ix0, iy0 = int(round(x)), int(round(y))
    if ix0 + half < 0 or ix0 - half >= nx or iy0 + half < 0 or iy0 - half >= ny:
        return
    ss = supersample
    sub = (np.arange(ss) + 0.5) / ss - 0.5
    px = (np.arange(-half, half + 1)[:, None] + sub[None, :]).ravel() + ix0 - x
    py = (np.arange(-half, half + 1)[:, None] + sub[None, :]).ravel() + iy0 - y
    PX, PY = np.meshgrid(px, py)
    east = jac[0, 0] * PX + jac[0, 1] * PY
    north = jac[1, 0] * PX + jac[1, 1] * PY
    t = math.radians(pa)
    major = east * math.sin(t) + north * math.cos(t)
    minor = east * math.cos(t) - north * math.sin(t)
    r = np.sqrt(major**2 + (minor / max(axis_ratio, 0.05)) ** 2)
    prof = np.exp(-sersic_bn(n) * ((r / r_eff) ** (1.0 / n) - 1.0))
    size = 2 * half + 1
    stamp = prof.reshape(size, ss, size, ss).sum(axis=(1, 3))
    core_sigma = psf.components[0][1]
    stamp = ndimage.gaussian_filter(stamp, core_sigma, mode="constant")
    total = stamp.sum()
    if total <= 0:
        return
    stamp *= counts / total
    x0, y0 = ix0 - half, iy0 - half
    sx0, sy0 = max(0, -x0), max(0, -y0)
    sx1, sy1 = min(size, nx - x0), min(size, ny - y0)
    image[y0 + sy0 : y0 + sy1, x0 + sx0 : x0 + sx1] += stamp[sy0:sy1, sx0:sx1]


@dataclass
class CosmicRays:
    """Cosmic-ray events drawn for one chip: per-pixel charge and the hit mask."""

    charge: np.ndarray  # e- added per pixel (float64)
    mask: np.ndarray  # bool, pixels hit
    n_events: int


def cosmic_rays(
    shape: tuple[int, int],
    n_events: int,
    mean_length: float,
    rng: np.random.Generator,
) -> CosmicRays:
    """Draw ``n_events`` straight CR tracks (vectorised).

    Lengths are exponential with mean ``mean_length`` file pixels, directions uniform,
    total charge log-normal (median 1500 e-, spread x2.5), spread evenly along the track.
    """
    ny, nx = shape
    charge = np.zeros(ny * nx)
    if n_events <= 0:
        return CosmicRays(charge.reshape(shape), np.zeros(shape, bool), 0)
    x0 = rng.uniform(-0.5, nx - 0.5, n_events)
    y0 = rng.uniform(-0.5, ny - 0.5, n_events)
    length = rng.exponential(mean_length, n_events) if mean_length > 0 else np.zeros(n_events)
    ang = rng.uniform(0.0, math.pi, n_events)
    total = 1500.0 * np.exp(rng.normal(0.0, math.log(2.5), n_events))
    nsteps = np.maximum(1, np.ceil(length * 2).astype(np.int64) + 1)
    ev = np.repeat(np.arange(n_events), nsteps)
    first = np.repeat(np.cumsum(nsteps) - nsteps, nsteps)
    k = np.arange(ev.size) - first
    frac = np.where(nsteps[ev] > 1, k / np.maximum(nsteps[ev] - 1, 1), 0.0)
    px = np.rint(x0[ev] + frac * length[ev] * np.cos(ang[ev])).astype(np.int64)
    py = np.rint(y0[ev] + frac * length[ev] * np.sin(ang[ev])).astype(np.int64)
    w = total[ev] / nsteps[ev]
    ok = (px >= 0) & (px < nx) & (py >= 0) & (py < ny)
    charge += np.bincount(py[ok] * nx + px[ok], weights=w[ok], minlength=charge.size)
    charge = charge.reshape(shape)
    return CosmicRays(charge, charge > 0, n_events)


@dataclass
class DefectMap:
    """Static detector defects of one chip: DQ bits and the extra dark current (e-/s)."""

    dq: np.ndarray
    hot_rate: np.ndarray = field(repr=False)
    bad: np.ndarray = field(repr=False)


def detector_defects(shape: tuple[int, int], rng: np.random.Generator, ccd: bool = True) -> DefectMap:
    """Hot (DQ 16), warm (64) and bad (4) pixels and one bad column (128) for a chip.

    Fractions: 0.2% hot (0.1-2 e-/s), 0.3% warm (0.02-0.1 e-/s), 0.02% bad detector
    pixels and, on CCDs, one bad column.  The caller seeds ``rng`` per detector, chip and
    year so defects stay put between the exposures of a visit (as on a real detector)
    while the dithered sky moves across them.
    """
    ny, nx = shape
    npix = nx * ny
    dq = np.zeros(npix, np.int16)
    hot_rate = np.zeros(npix)
    bad = np.zeros(npix, bool)
    n_hot = max(1, int(round(0.002 * npix)))
    n_warm = max(1, int(round(0.003 * npix)))
    n_bad = max(1, int(round(0.0002 * npix)))
    idx = rng.choice(npix, size=min(npix, n_hot + n_warm + n_bad), replace=False)
    hot, warm, badpix = idx[:n_hot], idx[n_hot : n_hot + n_warm], idx[n_hot + n_warm :]
    dq[hot] |= int(DQ.HOT)
    hot_rate[hot] = np.exp(rng.uniform(math.log(0.1), math.log(2.0), hot.size))
    dq[warm] |= int(DQ.WARM)
    hot_rate[warm] = rng.uniform(0.02, 0.1, warm.size)
    dq[badpix] |= int(DQ.BAD_DETECTOR)
    bad[badpix] = True
    dq = dq.reshape(shape)
    bad = bad.reshape(shape)
    if ccd and nx > 8 and ny > 8:
        col = int(rng.integers(2, nx - 2))
        y0 = int(rng.integers(0, ny // 2))
        dq[y0:, col] |= int(DQ.BAD_COLUMN)
        bad[y0:, col] = True
    return DefectMap(dq, hot_rate.reshape(shape), bad)


def noisy(mean_e: np.ndarray, read_noise: float, rng: np.random.Generator) -> np.ndarray:
    """Poisson(mean) plus Gaussian read noise, in e- (float64).

    Negative means count as 0; ``mean_e`` is clipped in place (callers pass a scratch array).
    """
    np.maximum(mean_e, 0.0, out=mean_e)
    out = rng.poisson(mean_e).astype(np.float64)
    if read_noise > 0:
        out += rng.normal(0.0, read_noise, mean_e.shape)
    return out


# ---------------------------------------------------------------------------------------
# artifacts that fool trail detectors (off by default; see ExposureSpec.artifacts)

SPIKE_FRACTION = 0.04  # share of a bright star's light in its four diffraction spikes


def add_spikes(
    image: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    counts: np.ndarray,
    psf: PSF,
    angle_deg: float,
    min_counts: float,
    max_length: float,
) -> int:
    """Diffraction spikes: four arms at ``angle_deg`` + k 90 deg (detector frame, deg
    counter-clockwise from +x) on every star with more than ``min_counts`` e-.

    Each arm runs from the PSF core out to ``L = min(max_length, 15 psf.fwhm
    sqrt(counts / min_counts))`` file pixels, brightness falling as 1/r, and carries
    ``SPIKE_FRACTION / 4`` of the star's counts (added on top: the star keeps its own
    light).  The arms are drawn as chains of narrow PSF-core stamps 0.5 px apart.
    Returns the number of stars that got spikes.
    """
    bright = np.flatnonzero(np.asarray(counts) > min_counts)
    if bright.size == 0:
        return 0
    core = PSF(psf.fwhm, halo_fraction=0.0)
    xs, ys, ws = [], [], []
    for i in bright:  # a handful of bright stars
        length = min(max_length, 15.0 * psf.fwhm * math.sqrt(counts[i] / min_counts))
        r = np.arange(max(1.0, psf.fwhm), length, 0.5)
        if r.size == 0:
            continue
        w = 1.0 / r
        w *= counts[i] * SPIKE_FRACTION / 4.0 / w.sum()
        for k in range(4):
            t = math.radians(angle_deg + 90.0 * k)
            xs.append(x[i] + r * math.cos(t))
            ys.append(y[i] + r * math.sin(t))
            ws.append(w)
    if xs:
        add_point_sources(image, np.concatenate(xs), np.concatenate(ys), np.concatenate(ws), core)
    return int(bright.size)


def bleed_mask(level: np.ndarray, full_well: float) -> np.ndarray:
    """Pixels saturated by ``level`` (noiseless e-) including bleed along the columns.

    Charge above the full well of a saturated region flows up and down its columns
    (CCD bleeding): per column, ``ceil(excess / full_well)`` more pixels fill, split
    evenly above and below the region.  Loops over saturated regions (a handful of
    bright stars); each region is vectorised over its columns.
    """
    sat = level > full_well
    lab, n = ndimage.label(sat)
    if n == 0:
        return sat
    mask = sat.copy()
    ny = level.shape[0]
    rows = np.arange(ny)[:, None]
    for i, sl in enumerate(ndimage.find_objects(lab), start=1):
        cols = sl[1]
        region = lab[:, cols] == i
        excess = np.where(region, level[:, cols] - full_well, 0.0).sum(axis=0)
        extra = np.ceil(excess / full_well).astype(np.int64)
        has = region.any(axis=0)
        top = np.where(has, ny - 1 - np.argmax(region[::-1], axis=0), -1)
        bot = np.where(has, np.argmax(region, axis=0), ny)
        up = (extra + 1) // 2
        down = extra // 2
        grow = ((rows > top) & (rows <= top + up)) | ((rows < bot) & (rows >= bot - down))
        mask[:, cols] |= grow & has
    return mask


def cte_tails(signal: np.ndarray, toward_plus_y: bool, strength: float, scale_px: float) -> np.ndarray:
    """Charge-transfer-inefficiency tails: a fraction of each pixel's charge trails behind it.

    The fraction grows linearly with the number of transfers, from 0 next to the serial
    register to ``strength`` at the far edge; the deferred charge is released into the
    following pixels (away from the register, +y when ``toward_plus_y``) with an
    exponential profile of scale ``scale_px`` file pixels.  Flux is conserved.
    Vectorised with a first-order recursive filter along the columns.
    """
    from scipy.signal import lfilter

    ny = signal.shape[0]
    dist = (np.arange(ny) + 0.5) / ny
    if not toward_plus_y:
        dist = dist[::-1]
    deferred = signal * (strength * dist)[:, None]
    r = math.exp(-1.0 / max(scale_px, 0.3))
    src = deferred if toward_plus_y else deferred[::-1]
    tail = lfilter([0.0, 1.0 - r], [1.0, -r], src, axis=0)
    if not toward_plus_y:
        tail = tail[::-1]
    return signal - deferred + tail


def add_satellite(image: np.ndarray, rng: np.random.Generator, psf: PSF, e_per_px: float) -> tuple[float, float, float]:
    """A satellite (or asteroid) streak: a straight line crossing the whole chip.

    The line passes through a random point of the chip at a random angle; ``e_per_px``
    e- per file pixel of length, drawn with the PSF core.  Returns (x0, y0, angle deg)
    of the line (0-based point on it, angle counter-clockwise from +x).
    """
    ny, nx = image.shape
    x0, y0 = rng.uniform(0, nx - 1), rng.uniform(0, ny - 1)
    ang = rng.uniform(0.0, 180.0)
    half = math.hypot(nx, ny)
    s = np.arange(-half, half, 0.5)
    xs = x0 + s * math.cos(math.radians(ang))
    ys = y0 + s * math.sin(math.radians(ang))
    ok = (xs > -5) & (xs < nx + 5) & (ys > -5) & (ys < ny + 5)
    add_point_sources(image, xs[ok], ys[ok], np.full(int(ok.sum()), 0.5 * e_per_px), PSF(psf.fwhm, halo_fraction=0.0))
    return float(x0), float(y0), float(ang)
