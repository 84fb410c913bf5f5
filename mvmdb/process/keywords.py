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

Here the masks are only considered inside the trimmed box (outside it they
are zero, so the statistics over "good" pixels are the same) and NPIXFRAC is
divided by the full cell size (21954**2 fine, 7318**2 coarse).

The masks need not exist as arrays: along each row they are constant between
the crossings of the chip outlines, so `FootprintRaster.statistics` takes the
mask statistics from those runs (values weighted by run length; exact medians),
in milliseconds for any box size.  `footprint_masks` rasterizes the same masks
(tests, pictures), and `mask_statistics` takes the statistics of mask arrays.
The WHT statistics are computed block by block (means in float64, medians
exactly by radix selection, see `exact_mean_median`), so arrays may be
np.memmap or any object with ``shape``, ``dtype`` and ``iter_row_blocks(nrows)``
yielding ``(y0, block)``.

Pixel convention: 0-based pixel centres at integers; a pixel belongs to a
polygon when its centre does (edges are half-open: left/bottom in, right/top
out, so abutting polygons never both claim a pixel).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

__all__ = [
    "MVM_KEYWORD_COMMENTS",
    "FootprintRaster",
    "FootprintStats",
    "exact_mean_median",
    "footprint_masks",
    "mask_statistics",
    "mvm_keywords",
    "positive_mean_median",
]

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
_BLOCK_ROWS = 256


def row_blocks(a, nrows: int = _BLOCK_ROWS) -> Iterator[np.ndarray]:
    """Consecutive blocks of rows of a 2-D array or of a lazy source with ``iter_row_blocks``."""
    if hasattr(a, "iter_row_blocks"):
        for _, block in a.iter_row_blocks(nrows):
            yield np.asarray(block)
        return
    a = np.asarray(a) if not isinstance(a, np.ndarray) else a
    if a.ndim != 2:
        raise ValueError("expected a 2-D array")
    for y0 in range(0, a.shape[0], nrows):
        yield np.asarray(a[y0:y0 + nrows])


def _ordered_keys(v: np.ndarray) -> tuple[np.ndarray, int]:
    """Unsigned integer keys with the same order as the values, and their bit width.

    floats: the IEEE bit pattern with the sign bit flipped (positives) or all bits
    flipped (negatives); integers: offset to unsigned.  NaN must be excluded.
    """
    dt = v.dtype
    if dt.kind == "f":
        if dt.itemsize <= 4:
            u = np.ascontiguousarray(v, dtype=np.float32).view(np.uint32)
            top = np.uint32(1 << 31)
        else:
            u = np.ascontiguousarray(v, dtype=np.float64).view(np.uint64)
            top = np.uint64(1 << 63)
        neg = (u & top) != 0
        return np.where(neg, ~u, u | top), 8 * u.dtype.itemsize
    if dt.kind in "iu":
        if dt.itemsize <= 2:
            return (v.astype(np.int64) + (1 << 15 if dt.kind == "i" else 0)).astype(np.uint32), 16
        if dt.itemsize <= 4:
            return (v.astype(np.int64) + (1 << 31 if dt.kind == "i" else 0)).astype(np.uint64), 32
        return (v.astype(np.int64).view(np.uint64) ^ np.uint64(1 << 63)) if dt.kind == "i" else v.astype(np.uint64), 64
    raise TypeError(f"unsupported dtype {dt}")


def _key_to_value(key: int, dtype: np.dtype):
    dt = np.dtype(dtype)
    if dt.kind == "f":
        if dt.itemsize <= 4:
            u = np.uint32(key)
            u = u ^ np.uint32(1 << 31) if u & np.uint32(1 << 31) else ~u
            return float(np.array([u], dtype=np.uint32).view(np.float32)[0])
        u = np.uint64(key)
        u = u ^ np.uint64(1 << 63) if u & np.uint64(1 << 63) else ~u
        return float(np.array([u], dtype=np.uint64).view(np.float64)[0])
    if dt.itemsize <= 2:
        return float(int(key) - (1 << 15 if dt.kind == "i" else 0))
    if dt.itemsize <= 4:
        return float(int(key) - (1 << 31 if dt.kind == "i" else 0))
    return float(np.array([np.uint64(key) ^ np.uint64(1 << 63)]).view(np.int64)[0]) if dt.kind == "i" else float(key)


def exact_mean_median(blocks_factory) -> tuple[float, float, int]:
    """Mean (float64 accumulation), exact median (numpy's value) and count of a streamed set.

    ``blocks_factory()`` returns a fresh iterator of 1-D arrays of the selected
    values (one dtype, no NaN).  The median is found by radix selection on
    order-preserving integer keys, 16 bits per pass: the first pass (which also
    sums) histograms the top 16 bits, each further pass the next 16 bits of the
    keys sharing the wanted prefix; nothing but 65536 counters is kept.  Passes:
    1 for 16-bit integers, 2 for float32, 4 for float64.  Returns (nan, nan, 0)
    for an empty set.
    """
    n = 0
    total = 0.0
    dtype = None
    nbits = 16
    hist = np.zeros(1 << 16, dtype=np.int64)
    for v in blocks_factory():
        if v.size == 0:
            continue
        dtype = v.dtype if dtype is None else dtype
        n += v.size
        total += float(np.sum(v, dtype=np.float64))
        keys, nbits = _ordered_keys(v)
        hist += np.bincount((keys >> (nbits - 16)).astype(np.int64), minlength=1 << 16)
    if n == 0:
        return float("nan"), float("nan"), 0
    targets = {}
    for k in sorted({(n - 1) // 2, n // 2}):
        cum = np.cumsum(hist)
        b = int(np.searchsorted(cum, k, side="right"))
        targets[k] = (b, k - (int(cum[b - 1]) if b > 0 else 0))  # (prefix, rank within prefix)
    done = 16
    while done < nbits:
        shift = nbits - done - 16
        prefixes = {t[0] for t in targets.values()}
        hists = {p: np.zeros(1 << 16, dtype=np.int64) for p in prefixes}
        for v in blocks_factory():
            if v.size == 0:
                continue
            keys, _ = _ordered_keys(v)
            head = keys >> (shift + 16)
            for p in prefixes:
                sel = keys[head == p]
                hists[p] += np.bincount(((sel >> shift) & 0xFFFF).astype(np.int64), minlength=1 << 16)
        for k, (p, r) in targets.items():
            cum = np.cumsum(hists[p])
            b = int(np.searchsorted(cum, r, side="right"))
            targets[k] = ((p << 16) | b, r - (int(cum[b - 1]) if b > 0 else 0))
        done += 16
    a, b = (_key_to_value(targets[k][0], dtype) for k in ((n - 1) // 2, n // 2))
    return total / n, _middle_value(a, b, dtype), n


def positive_mean_median(a: np.ndarray, nrows: int = _BLOCK_ROWS, out: np.ndarray | None = None
                         ) -> tuple[float, float, int]:
    """:func:`exact_mean_median` of the values > 0 of an in-memory 2-D array, the same three numbers
    bit for bit, faster: the values are selected block by block of ``nrows`` rows, the mean summed
    over the same blocks in the same order (float64 sums of the same runs of values), the median by
    selection (``np.partition``) instead of radix passes. Needs a copy of the selected values: in
    ``out`` (1-D, at least ``a.size`` elements of ``a.dtype``; overwritten) when given."""
    values = np.empty(a.size, dtype=a.dtype) if out is None else out[:a.size]
    n, total = 0, 0.0
    for y0 in range(0, a.shape[0], nrows):
        block = a[y0:y0 + nrows]
        sel = block[block > 0]  # NaN compares False
        if sel.size:
            values[n:n + sel.size] = sel
            total += float(np.sum(sel, dtype=np.float64))
            n += sel.size
    if n == 0:
        return float("nan"), float("nan"), 0
    values = values[:n]
    lo, hi = (n - 1) // 2, n // 2
    values.partition([lo, hi] if lo != hi else lo)
    return total / n, _middle_value(values[lo], values[hi], values.dtype), n


def _middle_value(a: float, b: float, dtype: np.dtype) -> float:
    """numpy's median of the two middle values: their mean in the array's own float type
    (float64 for integers)."""
    mid_dtype = dtype if dtype.kind == "f" else np.dtype(np.float64)
    return float(np.mean(np.array([a, b], dtype=mid_dtype)))


def _weighted_median(values: np.ndarray, weights: np.ndarray, dtype: np.dtype) -> float:
    """Median of the multiset holding each ``values[i]`` ``weights[i]`` times (numpy's value for
    an array of ``dtype``)."""
    order = np.argsort(values, kind="stable")
    v = values[order]
    cum = np.cumsum(weights[order])
    n = int(cum[-1])
    lo = v[int(np.searchsorted(cum, (n - 1) // 2, side="right"))]
    hi = v[int(np.searchsorted(cum, n // 2, side="right"))]
    return _middle_value(lo, hi, dtype)


@dataclass(frozen=True)
class FootprintStats:
    """Statistics of the footprint masks over the pixels with data (``total_mask > 0``).

    ``n_good`` pixels; mean and median of ``total_mask`` (chips per pixel) and of
    ``scaled_mask`` (summed exposure time, s) over them.  NaN when ``n_good`` is 0.
    """

    n_good: int
    mean_nexp: float
    med_nexp: float
    mean_expt: float
    med_expt: float


def mask_statistics(total_mask, scaled_mask) -> FootprintStats:
    """`FootprintStats` of full masks (arrays, np.memmap or lazy row-block sources), streamed."""
    if tuple(np.shape(total_mask)) != tuple(np.shape(scaled_mask)):
        raise ValueError("total_mask and scaled_mask must have the same shape")

    def nexp_values():
        for t in row_blocks(total_mask):
            yield t[t > 0]

    def expt_values():
        for t, s in zip(row_blocks(total_mask), row_blocks(scaled_mask)):
            yield s[t > 0]

    mean_nexp, med_nexp, n_good = exact_mean_median(nexp_values)
    mean_expt, med_expt, _ = exact_mean_median(expt_values)
    return FootprintStats(n_good, mean_nexp, med_nexp, mean_expt, med_expt)


def mvm_keywords(footprints: FootprintStats, wht, full_cell_shape, scratch: np.ndarray | None = None
                 ) -> dict[str, tuple[float, str]]:
    """MVM mask and weight keywords as ``{name: (value, comment)}`` (spec §5.5).

    Parameters
    ----------
    footprints : FootprintStats
        Statistics of the layer's ``total_mask`` and ``scaled_mask`` (archive names): from
        `FootprintRaster.statistics` (chip outlines) or `mask_statistics` (mask arrays).
    wht : 2-D float array, np.memmap or lazy row-block source
        Output weight image of the layer (EXP weights, seconds).
    full_cell_shape : (ny, nx) or int
        Shape (or pixel count) of the full sky cell at the layer's scale:
        (21954, 21954) fine, (7318, 7318) coarse.
    scratch : 1-D array of ``wht.dtype``, optional
        Work memory for the weights > 0 of an in-memory ``wht`` (``wht.size`` elements;
        overwritten), see `positive_mean_median`.
    """
    if np.ndim(full_cell_shape) == 0:
        full_size = int(full_cell_shape)
    else:
        full_size = int(np.prod(full_cell_shape))

    def wht_values():
        for w in row_blocks(wht):
            yield w[w > 0]  # NaN compares False

    if isinstance(wht, np.ndarray) and wht.ndim == 2 and not isinstance(wht, np.memmap):
        mean_wht, med_wht, _ = positive_mean_median(wht, out=scratch)
    else:
        mean_wht, med_wht, _ = exact_mean_median(wht_values)
    values = {
        "NPIXFRAC": footprints.n_good / full_size,
        "MEANEXPT": footprints.mean_expt,
        "MEDEXPT": footprints.med_expt,
        "MEANNEXP": footprints.mean_nexp,
        "MEDNEXP": footprints.med_nexp,
        "MEANWHT": mean_wht,
        "MEDWHT": med_wht,
    }
    return {k: (float(v), MVM_KEYWORD_COMMENTS[k]) for k, v in values.items()}


class FootprintRaster:
    """Chip footprints rasterized on demand, one block of rows at a time.

    ``raster.total`` and ``raster.scaled`` are lazy 2-D sources (``shape``,
    ``dtype``, ``iter_row_blocks``) that `mvm_keywords` consumes block by
    block, so the keywords of a full 21954**2 layer need no full-size masks.
    Polygons, exposure times and the pixel rule are as in `footprint_masks`.

    Scanline fill with signed crossings: along every row the edges crossing the
    row at x_c add +1 (upward) or -1 (downward), times the polygon's
    orientation, at column ceil(x_c); a cumulative sum along the row then counts
    the polygons containing each pixel centre, all polygons at once.
    """

    def __init__(self, polygons, exptimes, box_shape):
        self.shape = (int(box_shape[0]), int(box_shape[1]))
        if len(polygons) != len(exptimes):
            raise ValueError("need one exposure time per polygon")
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
            ex0.append(p[keep, 0])
            ey0.append(p[keep, 1])
            ex1.append(q[keep, 0])
            ey1.append(q[keep, 1])
            esign.append(np.where(q[keep, 1] > p[keep, 1], 1.0, -1.0) * orient)
            etime.append(np.full(int(keep.sum()), float(t)))
        cat = (lambda a: np.concatenate(a)) if ex0 else (lambda a: np.zeros(0))
        self._x0, y0, x1, y1 = cat(ex0), cat(ey0), cat(ex1), cat(ey1)
        self._y0 = y0
        self._sign = cat(esign)
        self._time = cat(etime)
        # rows crossed by each edge: integers r with min(y0, y1) <= r < max(y0, y1)
        self._rfirst = np.ceil(np.minimum(y0, y1)).astype(np.int64)
        self._rlast = np.ceil(np.maximum(y0, y1)).astype(np.int64) - 1
        with np.errstate(divide="ignore", invalid="ignore"):
            self._slope = (x1 - self._x0) / (y1 - y0)

    def _crossings(self, b0: int, b1: int):
        """Edge crossings of rows ``b0:b1``: (row - b0, column, signed count step, signed time step).

        The column is ``ceil(x_c)`` clipped to ``[0, nx]``: the first pixel whose centre is
        right of the crossing (half-open rule), ``nx`` past the last pixel.
        """
        nx = self.shape[1]
        lo = np.maximum(self._rfirst, b0)
        hi = np.minimum(self._rlast, b1 - 1)
        sel = np.flatnonzero(hi >= lo)
        counts = hi[sel] - lo[sel] + 1
        edge = np.repeat(sel, counts)
        rows = np.arange(edge.size) + np.repeat(lo[sel] - (np.cumsum(counts) - counts), counts)
        xc = self._x0[edge] + (rows - self._y0[edge]) * self._slope[edge]
        col = np.clip(np.ceil(xc), 0, nx).astype(np.int64)
        sign = self._sign[edge]
        return rows - b0, col, sign, sign * self._time[edge]

    def rows(self, b0: int, b1: int):
        """``(total, scaled)`` for rows ``b0:b1``: int16 chip counts and float32 summed exptimes."""
        nx = self.shape[1]
        rows, col, sign, dtime = self._crossings(b0, b1)
        if rows.size == 0:
            return np.zeros((b1 - b0, nx), np.int16), np.zeros((b1 - b0, nx), np.float32)
        flat = rows * (nx + 1) + col
        size = (b1 - b0) * (nx + 1)
        d_count = np.bincount(flat, weights=sign, minlength=size).reshape(b1 - b0, nx + 1)
        d_time = np.bincount(flat, weights=dtime, minlength=size).reshape(b1 - b0, nx + 1)
        cnt = np.rint(np.cumsum(d_count[:, :nx], axis=1))
        tim = np.cumsum(d_time[:, :nx], axis=1)
        tim[cnt <= 0] = 0.0
        return cnt.astype(np.int16), tim.astype(np.float32)

    def runs(self, b0: int, b1: int):
        """Runs of constant coverage with data in rows ``b0:b1``, without rasterizing.

        Returns ``(count, time, length)``: int64 chip counts (> 0), float32 summed exposure
        times and run lengths in pixels; together they hold exactly the pixels with
        ``total_mask > 0`` of those rows and their mask values (as `rows` gives them).
        """
        rows, col, sign, dtime = self._crossings(b0, b1)
        if rows.size == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros(0, np.int64)
        order = np.lexsort((col, rows))
        rows, col, sign, dtime = rows[order], col[order], sign[order], dtime[order]
        # running sums along each row: global cumulative sums minus their value before the row
        c_cnt = np.cumsum(sign)
        c_tim = np.cumsum(dtime)
        first = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
        seg = np.repeat(np.arange(first.size), np.diff(np.r_[first, rows.size]))
        base = first[seg] - 1
        before_cnt = np.where(base >= 0, c_cnt[np.maximum(base, 0)], 0.0)
        before_tim = np.where(base >= 0, c_tim[np.maximum(base, 0)], 0.0)
        count = np.rint(c_cnt - before_cnt).astype(np.int64)
        time = c_tim - before_tim
        # run i spans columns col[i] .. col[i + 1] - 1 of its row
        same_row = np.r_[rows[1:] == rows[:-1], False]
        length = np.where(same_row, np.r_[col[1:], 0] - col, 0)
        keep = (count > 0) & (length > 0)
        return count[keep], time[keep].astype(np.float32), length[keep]

    def statistics(self, block_rows: int = 8192) -> FootprintStats:
        """The mask statistics of the MVM keywords, from coverage runs (no raster: about 1 ms
        per 1000 rows of a box, whatever its width); equal to `mask_statistics` of the masks."""
        counts, times, lengths = [], [], []
        for b0 in range(0, self.shape[0], block_rows):
            c, t, n = self.runs(b0, min(self.shape[0], b0 + block_rows))
            counts.append(c)
            times.append(t)
            lengths.append(n)
        c, t, n = np.concatenate(counts), np.concatenate(times), np.concatenate(lengths)
        n_good = int(n.sum())
        if n_good == 0:
            return FootprintStats(0, float("nan"), float("nan"), float("nan"), float("nan"))
        return FootprintStats(
            n_good=n_good,
            mean_nexp=float(np.dot(c, n)) / n_good,
            med_nexp=_weighted_median(c, n, np.dtype(np.int16)),
            mean_expt=float(np.dot(t.astype(np.float64), n)) / n_good,
            med_expt=_weighted_median(t, n, np.dtype(np.float32)),
        )

    def iter_row_blocks(self, nrows: int = 512):
        """``(y0, total, scaled)`` for consecutive blocks of ``nrows`` rows."""
        for b0 in range(0, self.shape[0], nrows):
            yield (b0,) + self.rows(b0, min(self.shape[0], b0 + nrows))

    @property
    def total(self):
        return _RasterPart(self, 0, np.int16)

    @property
    def scaled(self):
        return _RasterPart(self, 1, np.float32)


class _RasterPart:
    """One of the two masks of a `FootprintRaster`, as a lazy row-block source."""

    def __init__(self, raster: FootprintRaster, which: int, dtype):
        self.raster = raster
        self.which = which
        self.shape = raster.shape
        self.dtype = np.dtype(dtype)

    def iter_row_blocks(self, nrows: int):
        for b0, total, scaled in self.raster.iter_row_blocks(nrows):
            yield b0, (total, scaled)[self.which]


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
        Rows rasterized at a time (memory: about 40 bytes x block_rows x nx).
    out : (total_mask, scaled_mask), optional
        Arrays to fill (e.g. np.memmap).

    Returns
    -------
    total_mask, scaled_mask
        Number of polygons containing each pixel centre, and the sum of their
        exposure times.  See `FootprintRaster` for the method, and for computing
        keywords without these full-size arrays.
    """
    raster = FootprintRaster(polygons, exptimes, box_shape)
    ny, nx = raster.shape
    if out is None:
        total = np.empty((ny, nx), dtype=np.int16)
        scaled = np.empty((ny, nx), dtype=np.float32)
    else:
        total, scaled = out
    for b0, t, sc in raster.iter_row_blocks(block_rows):
        total[b0:b0 + t.shape[0]] = t
        scaled[b0:b0 + t.shape[0]] = sc
    return total, scaled
