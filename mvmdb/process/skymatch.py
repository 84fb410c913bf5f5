"""Sky matching across the members of one layer (the archive's ``skymethod='match'``).

Backgrounds of overlapping exposures are equalised from their common sky
area, with DQ-flagged pixels and sources masked:

1. Each exposure (all its chips together) is sampled on a regular grid of
   input pixels (every ``subsample``-th pixel in x and y); samples that are
   non-finite or carry a DQ flag outside ``bits`` are dropped, values are
   converted to count rates (e-/s per input pixel), and an iterative
   sigma-clip (median and MAD, ``nsigma``) gives the exposure's robust sky
   level and masks sources and cosmic rays.
2. Every sample is mapped onto the layer's output grid (the same pixel maps
   the drizzle uses, evaluated only at the samples) and binned into coarse
   cells of ``cell_px`` output pixels; each cell gets the median of the
   unmasked samples of each exposure.
3. For every pair of exposures sharing at least ``min_common_cells`` cells,
   the median of the per-cell differences is a robust estimate of their sky
   difference (sources and extended emission cancel: both see the same sky).
4. Offsets o_e minimising sum_pairs n_common * (o_a - o_b - delta_ab)^2 are
   found by least squares (one round of outlier-pair rejection), separately
   for each connected group of overlapping exposures.

With ``method='match'`` (the archive's MVM setting) the sky subtracted from
each exposure is its offset minus the smallest offset of its group, so the
lowest background stays and the others are brought down to it;
``'globalmin+match'`` subtracts in addition the smallest remaining local sky of
the group; ``'local'`` subtracts each exposure's own robust sky level.

Sky values are returned per input chip in the chip's own units per pixel
(electrons for e- inputs, e-/s for rate inputs), ready to be used as
``DrizzleInput.sky``.  Pixel coordinates: 0-based, centres at integers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from mvmdb.process.drizzling import good_pixels, input_mapper, units_kind
from mvmdb.process.pixmap import mapped_scale_ratio

__all__ = ["ExposureSky", "PairDelta", "SkyMatchResult", "clipped_median", "skymatch"]

#: Samples per cell side (in input pixels: ``cell_samples * subsample``) when ``cell_px`` is automatic.
_CELL_SAMPLES = 8


@dataclass
class ExposureSky:
    """Sky bookkeeping of one exposure; rates in e-/s per input pixel."""

    exposure: str
    chips: list[str]
    local_rate: float  # robust (sigma-clipped median) sky of the exposure alone
    clip_sigma_rate: float  # robust scatter of its sky samples
    offset_rate: float  # least-squares offset (relative within its group)
    sky_rate: float  # what is subtracted
    n_samples: int
    n_cells: int
    group: int


@dataclass
class PairDelta:
    """Sky difference ``a - b`` (e-/s per input pixel) measured on common cells."""

    a: str
    b: str
    delta_rate: float
    n_cells: int
    scatter_rate: float  # robust scatter of the per-cell differences
    residual_rate: float = float("nan")  # offset_a - offset_b - delta after the fit
    used: bool = True


@dataclass
class SkyMatchResult:
    """Per-chip sky values to subtract (input units per pixel) and the report."""

    sky: list[float]
    method: str
    exposures: list[ExposureSky] = field(default_factory=list)
    pairs: list[PairDelta] = field(default_factory=list)
    cell_px: float = 0.0

    def summary(self) -> str:
        lines = [f"skymatch method={self.method} cell={self.cell_px:.0f}px"]
        for e in self.exposures:
            lines.append(f"  {e.exposure}: local {e.local_rate:.5g} offset {e.offset_rate:+.5g} "
                         f"sky {e.sky_rate:.5g} e-/s/px ({e.n_cells} cells, group {e.group})")
        for p in self.pairs:
            lines.append(f"  {p.a} - {p.b}: {p.delta_rate:+.5g} over {p.n_cells} cells, "
                         f"residual {p.residual_rate:+.3g}{'' if p.used else ' (rejected)'}")
        return "\n".join(lines)


def clipped_median(values: np.ndarray, nsigma: float = 3.0, max_iter: int = 10):
    """Iteratively sigma-clipped median and robust sigma (1.4826 MAD) of 1-D values.

    Returns (median, sigma, mask of kept values).
    """
    v = np.asarray(values, dtype=np.float64)
    keep = np.isfinite(v)
    med, sig = float("nan"), float("nan")
    for _ in range(max_iter):
        if not keep.any():
            break
        kv = v[keep]
        med = float(np.median(kv))
        sig = float(1.4826 * np.median(np.abs(kv - med)))
        if sig == 0.0:
            new = keep & (v == med)
        else:
            new = np.isfinite(v) & (np.abs(v - med) <= nsigma * sig)
        if np.array_equal(new, keep):
            break
        keep = new
    return med, sig, keep


def _cell_medians(keys: np.ndarray, vals: np.ndarray, min_count: int):
    """Median of ``vals`` per distinct key; returns (sorted keys, medians) for keys with >= min_count."""
    order = np.lexsort((vals, keys))
    k = keys[order]
    v = vals[order]
    uniq, start, count = np.unique(k, return_index=True, return_counts=True)
    ok = count >= min_count
    uniq, start, count = uniq[ok], start[ok], count[ok]
    med = 0.5 * (v[start + (count - 1) // 2] + v[start + count // 2])
    return uniq, med


def skymatch(
    inputs: Sequence,
    *,
    bits: int,
    out_wcs=None,
    method: str = "match",
    subsample: int = 4,
    cell_px: float | None = None,
    nsigma: float = 3.0,
    min_cell_samples: int = 8,
    min_common_cells: int = 3,
    pixmap_tol: float = 0.05,
) -> SkyMatchResult:
    """Equalise the backgrounds of a layer's exposures; return per-chip sky values.

    Parameters
    ----------
    inputs : sequence of `mvmdb.process.drizzling.DrizzleInput` (or alike)
        Chips with ``sci``, ``dq``, ``exptime``, ``units``, ``name``,
        ``exposure_id`` and either ``pixmap`` (onto the layer grid) or ``in_wcs``.
    bits : int
        DQ flags accepted as good.
    out_wcs : astropy.wcs.WCS, optional
        Layer (output) WCS, needed for inputs without a pixmap.
    method : {'match', 'globalmin+match', 'local'}
    subsample : int
        Use every ``subsample``-th input pixel along each axis.
    cell_px : float, optional
        Side of the comparison cells in output pixels; default so that a cell
        holds about 8 x 8 samples.
    nsigma : float
        Clipping threshold for sources, cosmic rays and bad pixels.
    min_cell_samples, min_common_cells : int
        Minimum samples per cell, and cells per pair, to be used.
    pixmap_tol : float
        Pixel-map tolerance (output px); cells are coarse, so 0.05 is plenty.

    Returns
    -------
    SkyMatchResult
        ``sky[i]`` is the value to subtract from input i, in its units per pixel.
    """
    if method not in ("match", "globalmin+match", "local"):
        raise ValueError(f"unknown sky method {method!r}")
    chips = [_sample_chip(inp, bits, out_wcs, int(subsample), pixmap_tol) for inp in inputs]
    if cell_px is None:
        cell_px = max(4.0, _CELL_SAMPLES * int(subsample) / min(c["ratio"] for c in chips)) if chips else 32.0
    cell_px = float(cell_px)
    stats = _exposure_cells(chips, cell_px, nsigma, min_cell_samples)
    index, pairs = _pair_deltas(stats, min_common_cells)

    # -- least squares per connected group ---------------------------------------
    n = len(stats)
    offsets = _solve_offsets(n, index, pairs)
    groups = _components(n, [ij for ij, p in zip(index, pairs) if p.used])
    for (i, j), p in zip(index, pairs):
        p.residual_rate = float(offsets[i] - offsets[j] - p.delta_rate)
    sky_rate = _sky_rates(method, offsets, np.array([st["local"] for st in stats]), groups)
    group_of = {i: g for g, members in enumerate(groups) for i in members}

    exposures = [
        ExposureSky(st["exposure"], st["chips"], float(st["local"]), float(st["sigma"]), float(offsets[i]),
                    float(sky_rate[i]), st["n"], int(st["keys"].size), group_of[i])
        for i, st in enumerate(stats)
    ]
    rate_of = {st["exposure"]: sky_rate[i] for i, st in enumerate(stats)}
    sky = []
    for c in chips:
        r = rate_of[c["inp"].exposure_id]
        sky.append(float(r * c["inp"].exptime if c["kind"] == "counts" else r))
    return SkyMatchResult(sky=sky, method=method, exposures=exposures, pairs=pairs, cell_px=cell_px)


def _sample_chip(inp, bits: int, out_wcs, s: int, pixmap_tol: float) -> dict:
    """Every ``s``-th good pixel of a chip: its rate (units/s) and position on the layer grid (output px)."""
    kind = units_kind(inp.units)
    if not inp.exptime > 0:
        raise ValueError(f"input {inp.name!r}: exptime must be > 0")
    mapper = input_mapper(inp, out_wcs, pixmap_tol)
    ny, nx = inp.sci.shape
    xs = np.arange(s // 2, nx, s)
    ys = np.arange(s // 2, ny, s)
    vals = np.asarray(inp.sci[s // 2::s, s // 2::s], dtype=np.float64)
    dq = None if inp.dq is None else np.asarray(inp.dq[s // 2::s, s // 2::s])
    good = good_pixels(vals, dq, bits)
    rate = vals / inp.exptime if kind == "counts" else vals
    pm = mapper.evaluate_grid(xs.astype(np.float64), ys.astype(np.float64))
    return dict(inp=inp, kind=kind, rate=rate[good], x=pm[..., 0][good], y=pm[..., 1][good],
                ratio=mapped_scale_ratio(mapper))


def _exposure_cells(chips: list[dict], cell_px: float, nsigma: float, min_cell_samples: int) -> list[dict]:
    """Per exposure (in first-seen order): robust level, sigma and the median rate per comparison cell."""
    exp_ids: list[str] = []
    for c in chips:
        e = c["inp"].exposure_id
        if e not in exp_ids:
            exp_ids.append(e)
    offset = 1 << 20
    stats = []
    for e in exp_ids:
        members = [c for c in chips if c["inp"].exposure_id == e]
        rate = np.concatenate([c["rate"] for c in members])
        x = np.concatenate([c["x"] for c in members])
        y = np.concatenate([c["y"] for c in members])
        med, sig, keep = clipped_median(rate, nsigma)
        cx = np.floor((x[keep] + 0.5) / cell_px).astype(np.int64) + offset
        cy = np.floor((y[keep] + 0.5) / cell_px).astype(np.int64) + offset
        keys, cmed = _cell_medians(cy * (2 * offset) + cx, rate[keep], min_cell_samples)
        stats.append(dict(exposure=e, chips=[c["inp"].name for c in members], local=med, sigma=sig,
                          n=int(keep.sum()), keys=keys, med=cmed))
    return stats


def _pair_deltas(stats: list[dict], min_common_cells: int) -> tuple[list[tuple[int, int]], list[PairDelta]]:
    """Median rate difference of every pair of exposures over their common cells."""
    pairs: list[PairDelta] = []
    index: list[tuple[int, int]] = []
    for i in range(len(stats)):
        for j in range(i + 1, len(stats)):
            common, ia, ja = np.intersect1d(stats[i]["keys"], stats[j]["keys"], assume_unique=True,
                                            return_indices=True)
            if common.size < min_common_cells:
                continue
            d = stats[i]["med"][ia] - stats[j]["med"][ja]
            delta = float(np.median(d))
            scatter = float(1.4826 * np.median(np.abs(d - delta)))
            pairs.append(PairDelta(stats[i]["exposure"], stats[j]["exposure"], delta, int(common.size), scatter))
            index.append((i, j))
    return index, pairs


def _sky_rates(method: str, offsets: np.ndarray, local: np.ndarray, groups: list[list[int]]) -> np.ndarray:
    """Sky rate per exposure from the solved offsets, per connected group, as ``method`` says."""
    sky_rate = np.zeros(len(offsets))
    for members in groups:
        m = np.array(members)
        if method == "local":
            sky_rate[m] = local[m]
        elif len(m) == 1:
            sky_rate[m] = 0.0 if method == "match" else local[m]
        elif method == "match":
            sky_rate[m] = offsets[m] - offsets[m].min()
        else:  # globalmin+match
            sky_rate[m] = offsets[m] + np.min(local[m] - offsets[m])
    return sky_rate


def _solve_offsets(n: int, index, pairs: list[PairDelta]) -> np.ndarray:
    """Weighted least-squares offsets (zero mean per group), one round of outlier rejection."""
    if not pairs:
        return np.zeros(n)

    def solve():
        used = [k for k, p in enumerate(pairs) if p.used]
        a = np.zeros((len(used), n))
        y = np.zeros(len(used))
        for row, k in enumerate(used):
            i, j = index[k]
            w = np.sqrt(pairs[k].n_cells)
            a[row, i], a[row, j] = w, -w
            y[row] = w * pairs[k].delta_rate
        sol, *_ = np.linalg.lstsq(a, y, rcond=None)
        return sol

    o = solve()
    resid = np.array([o[i] - o[j] - p.delta_rate for (i, j), p in zip(index, pairs)])
    n_groups = len(_components(n, index))
    if len(pairs) > n - n_groups:  # over-determined: some redundancy to reject outliers with
        sig = 1.4826 * np.median(np.abs(resid))
        scale = max(float(np.median([p.scatter_rate for p in pairs])), 1e-12)
        bad = np.abs(resid) > 5.0 * max(sig, scale)
        if bad.any() and not bad.all():
            for p, b in zip(pairs, bad):
                p.used = not b
            # keep the graph connected as before: undo rejections that would split a group
            if len(_components(n, [ij for ij, p in zip(index, pairs) if p.used])) != n_groups:
                for p in pairs:
                    p.used = True
            else:
                o = solve()
    return o


def _components(n: int, edges) -> list[list[int]]:
    parent = list(range(n))

    def find(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for i, j in edges:
        ri, rj = find(i), find(j)
        if ri != rj:
            parent[ri] = rj
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(find(i), []).append(i)
    return list(groups.values())
