"""MVM primary-header keywords and chip footprint masks (spec §5.5).

The archive builds two masks over the full, untrimmed sky cell at the layer's
scale from the layer's own exposures: ``total_mask`` (int16, number of chips
covering each pixel) and ``scaled_mask`` (float32, sum of the exposure times
of those chips); then

=========  ==================================================  ==============================================
keyword    definition                                          comment
=========  ==================================================  ==============================================
NPIXFRAC   count(total_mask > 0) / full sky-cell pixel count   Fraction of pixels with data
MEANEXPT   mean of scaled_mask where total_mask > 0            Mean exposure time per pixel with data
MEDEXPT    median of the same                                  Median exposure time per pixel with data
MEANNEXP   mean of total_mask where total_mask > 0             Mean number of exposures per pixel with data
MEDNEXP    median of the same                                  Median number of exposures per pixel with data
MEANWHT    mean of the output WHT where WHT > 0                Mean weight (typically exposure time) over pixels with data
MEDWHT     median of the same                                  Median weight (typically exposure time) over pixels with data
=========  ==================================================  ==============================================

Here the masks are only computed inside the trimmed box (outside it they are
zero, so the statistics over "good" pixels are the same) and NPIXFRAC is
divided by the full cell size (21954**2 fine, 7318**2 coarse).  Statistics
are computed block by block (means in float64, medians exactly by a
histogram-then-select pass), so arrays may be np.memmap or any object with
``shape``, ``dtype`` and ``iter_row_blocks(nrows)`` yielding ``(y0, block)``.

Pixel convention: 0-based pixel centres at integers; a pixel belongs to a
polygon when its centre does (edges are half-open: left/bottom in, right/top
out, so abutting polygons never both claim a pixel).
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np

__all__ = ["MVM_KEYWORD_COMMENTS", "footprint_masks", "mvm_keywords", "exact_mean_median"]

#: Archive comments of the MVM mask and weight keywords (drizzlepac ``haputils/product.py``).
MVM_KEYWORD_COMMENTS = {
    "NPIXFRAC": "Fraction of pixels with data",
    "MEANEXPT": "Mean exposure time per pixel with data",
    "MEDEXPT": "Median exposure time per pixel with data",
    "MEANNEXP": "Mean number of exposures per pixel with data",
    "MEDNEXP": "Median number of exposures per pixel with data",
    "MEANWHT": "Mean weight (typically exposure time) over pixels with data",
    "MEDWHT": "Median weight (typically exposure time) over pixels with data",
}

#: Rows per block when streaming statistics over large arrays.
_BLOCK_ROWS = 1024


def _row_blocks(a, nrows: int = _BLOCK_ROWS) -> Iterator[np.ndarray]:
    if hasattr(a, "iter_row_blocks"):
        for _, block in a.iter_row_blocks(nrows):
            yield np.asarray(block)
        return
    a = np.asarray(a) if not isinstance(a, np.ndarray) else a
    if a.ndim != 2:
        raise ValueError("expected a 2-D array")
    for y0 in range(0, a.shape[0], nrows):
        yield np.asarray(a[y0:y0 + nrows])


def _kth_values(values_of, ks: Sequence[int], lo: float, hi: float, nbins: int = 65536):
    """k-th smallest values (0-based ``ks``) of a streamed set, exactly, in two passes.

    ``values_of()`` returns a fresh iterator of 1-D arrays.  Pass 1 histograms the
    values into ``nbins`` bins over [lo, hi]; pass 2 keeps only the values of the
    bins holding the wanted ranks and selects among them.
    """
    if hi <= lo:
        return [lo for _ in ks]
    scale = nbins / (hi - lo)

    def bins(v):
        return np.minimum(((v.astype(np.float64) - lo) * scale).astype(np.int64), nbins - 1)

    counts = np.zeros(nbins, dtype=np.int64)
    for v in values_of():
        counts += np.bincount(bins(v), minlength=nbins)
    cum = np.cumsum(counts)
    wanted = sorted({int(np.searchsorted(cum, k, side="right")) for k in ks})
    kept = {b: [] for b in wanted}
    for v in values_of():
        b = bins(v)
        for w in wanted:
            kept[w].append(v[b == w])
    out = []
    for k in ks:
        b = int(np.searchsorted(cum, k, side="right"))
        before = int(cum[b - 1]) if b > 0 else 0
        vals = np.sort(np.concatenate(kept[b]).astype(np.float64))
        out.append(float(vals[k - before]))
    return out


def exact_mean_median(blocks_factory) -> tuple[float, float, int]:
    """Mean (float64 accumulation), exact median (numpy's value) and count of a streamed set.

    ``blocks_factory()`` returns a fresh iterator of 1-D arrays of the selected values;
    it is called three times.  Returns (nan, nan, 0) for an empty set.
    """
    n = 0
    total = 0.0
    lo, hi = np.inf, -np.inf
    dtype = np.dtype(np.float64)
    for v in blocks_factory():
        if v.size:
            n += v.size
            total += float(np.sum(v, dtype=np.float64))
            lo = min(lo, float(v.min()))
            hi = max(hi, float(v.max()))
            dtype = v.dtype
    if n == 0:
        return float("nan"), float("nan"), 0
    k1, k2 = (n - 1) // 2, n // 2
    a, b = _kth_values(blocks_factory, [k1, k2], lo, hi)
    # numpy averages the two middle values in the array's own float type (float64 for integers)
    mid_dtype = dtype if dtype.kind == "f" else np.dtype(np.float64)
    median = float(np.mean(np.array([a, b], dtype=mid_dtype)))
    return total / n, median, n


def mvm_keywords(total_mask, scaled_mask, wht, full_cell_shape) -> dict[str, tuple[float, str]]:
    """MVM mask and weight keywords as ``{name: (value, comment)}`` (spec §5.5).

    Parameters
    ----------
    total_mask : 2-D int array (trimmed box)
        Number of the layer's chips covering each pixel (archive ``total_mask``).
    scaled_mask : 2-D float array (same shape)
        Sum of those chips' exposure times in seconds (archive ``scaled_mask``).
    wht : 2-D float array
        Output weight image of the layer (EXP weights, seconds).
    full_cell_shape : (ny, nx) or int
        Shape (or pixel count) of the full sky cell at the layer's scale:
        (21954, 21954) fine, (7318, 7318) coarse.
    """
    if np.ndim(full_cell_shape) == 0:
        full_size = int(full_cell_shape)
    else:
        full_size = int(np.prod(full_cell_shape))
    if tuple(np.shape(total_mask)) != tuple(np.shape(scaled_mask)):
        raise ValueError("total_mask and scaled_mask must have the same shape")

    def nexp_values():
        for t in _row_blocks(total_mask):
            yield t[t > 0]

    def expt_values():
        for t, s in zip(_row_blocks(total_mask), _row_blocks(scaled_mask)):
            yield s[t > 0]

    def wht_values():
        for w in _row_blocks(wht):
            yield w[w > 0]  # NaN compares False

    mean_nexp, med_nexp, n_good = exact_mean_median(nexp_values)
    mean_expt, med_expt, _ = exact_mean_median(expt_values)
    mean_wht, med_wht, _ = exact_mean_median(wht_values)
    values = {
        "NPIXFRAC": n_good / full_size,
        "MEANEXPT": mean_expt,
        "MEDEXPT": med_expt,
        "MEANNEXP": mean_nexp,
        "MEDNEXP": med_nexp,
        "MEANWHT": mean_wht,
        "MEDWHT": med_wht,
    }
    return {k: (float(v), MVM_KEYWORD_COMMENTS[k]) for k, v in values.items()}


def footprint_masks(polygons, exptimes, box_shape, *, block_rows: int = 512, out=None):
    """Rasterize chip footprints into ``total_mask`` (int16) and ``scaled_mask`` (float32).

    Parameters
    ----------
    polygons : sequence of (N_i, 2) arrays
        Chip outlines as (x, y) vertices in 0-based output pixel coordinates of
        the box (pixel centres at integers), in either orientation; simple
        (non-self-intersecting) polygons.
    exptimes : sequence of float
        Exposure time (s) of each chip, summed into ``scaled_mask``.
    box_shape : (ny, nx)
        Shape of the (trimmed) box.
    block_rows : int
        Rows rasterized at a time (memory: about 12 bytes x block_rows x nx).
    out : (total_mask, scaled_mask), optional
        Arrays to fill (e.g. np.memmap).

    Returns
    -------
    total_mask, scaled_mask
        Number of polygons containing each pixel centre, and the sum of their
        exposure times.

    Scanline fill with signed crossings: along every row the edges crossing the
    row at x_c add +1 (upward) or -1 (downward), times the polygon's
    orientation, at column ceil(x_c); a cumulative sum along the row then counts
    the polygons containing each pixel centre, all polygons at once.
    """
    ny, nx = int(box_shape[0]), int(box_shape[1])
    if len(polygons) != len(exptimes):
        raise ValueError("need one exposure time per polygon")
    if out is None:
        total = np.zeros((ny, nx), dtype=np.int16)
        scaled = np.zeros((ny, nx), dtype=np.float32)
    else:
        total, scaled = out
    # all edges of all polygons: (x0, y0, x1, y1, weight sign, exptime)
    ex0, ey0, ex1, ey1, esign, etime = [], [], [], [], [], []
    for poly, t in zip(polygons, exptimes):
        p = np.asarray(poly, dtype=np.float64)
        if p.ndim != 2 or p.shape[1] != 2 or len(p) < 3:
            raise ValueError("each polygon must be an (N >= 3, 2) array of (x, y)")
        q = np.roll(p, -1, axis=0)
        area2 = np.sum(p[:, 0] * q[:, 1] - q[:, 0] * p[:, 1])
        if area2 == 0:
            continue
        orient = -1.0 if area2 > 0 else 1.0  # counter-clockwise: left crossings go down
        keep = p[:, 1] != q[:, 1]  # horizontal edges never cross a row
        ex0.append(p[keep, 0]); ey0.append(p[keep, 1])
        ex1.append(q[keep, 0]); ey1.append(q[keep, 1])
        up = np.where(q[keep, 1] > p[keep, 1], 1.0, -1.0)
        esign.append(up * orient)
        etime.append(np.full(keep.sum(), float(t)))
    if not ex0:
        if out is not None:
            total[...] = 0
            scaled[...] = 0
        return total, scaled
    x0, y0, x1, y1 = (np.concatenate(a) for a in (ex0, ey0, ex1, ey1))
    sign = np.concatenate(esign)
    etime = np.concatenate(etime)
    ylo = np.minimum(y0, y1)
    yhi = np.maximum(y0, y1)
    # rows crossed: integer r with ylo <= r < yhi
    rfirst = np.ceil(ylo).astype(np.int64)
    rlast = np.ceil(yhi).astype(np.int64) - 1
    slope = (x1 - x0) / (y1 - y0)
    width = nx + 1
    for b0 in range(0, ny, block_rows):
        b1 = min(ny, b0 + block_rows)
        lo = np.maximum(rfirst, b0)
        hi = np.minimum(rlast, b1 - 1)
        sel = np.flatnonzero(hi >= lo)
        if sel.size == 0:
            total[b0:b1] = 0
            scaled[b0:b1] = 0
            continue
        counts = hi[sel] - lo[sel] + 1
        edge = np.repeat(sel, counts)
        starts = np.repeat(lo[sel] - np.cumsum(counts) + counts, counts)
        rows = np.arange(edge.size) + starts  # row of each (edge, row) crossing
        xc = x0[edge] + (rows - y0[edge]) * slope[edge]
        col = np.clip(np.ceil(xc), 0, nx).astype(np.int64)
        flat = (rows - b0) * width + col
        size = (b1 - b0) * width
        d_count = np.bincount(flat, weights=sign[edge], minlength=size).reshape(b1 - b0, width)
        d_time = np.bincount(flat, weights=sign[edge] * etime[edge], minlength=size).reshape(b1 - b0, width)
        cnt = np.rint(np.cumsum(d_count[:, :nx], axis=1))
        tim = np.cumsum(d_time[:, :nx], axis=1)
        tim[cnt <= 0] = 0.0
        total[b0:b1] = cnt.astype(np.int16)
        scaled[b0:b1] = tim.astype(np.float32)
    return total, scaled
