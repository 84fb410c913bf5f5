"""Fast input -> output pixel maps for drizzling (WCS -> WCS).

A *pixel map* (``pixmap``) is what `drizzle` consumes: an array of shape
``(ny, nx, 2)`` (float64) giving, for every input pixel centre, the output
pixel coordinates ``(x, y)`` of the same point on the sky.  All pixel
coordinates in this module are **0-based with pixel centres at integers**, the
convention of numpy indexing, `drizzle` and astropy's ``origin=0`` calls;
``x`` is the column (fast axis), ``y`` the row.

`drizzle.utils.calc_pixmap` evaluates astropy's full transform
(``all_pix2world`` then ``all_world2pix``) at every pixel; for a 4096 x 2048
ACS/WFC chip that costs several seconds, more than the drizzle kernel itself.
`PixmapModel` evaluates the same map in three parts:

* the smooth part S (SIP polynomial, CD matrix, the input TAN projection,
  the output projection) is computed exactly with astropy on a sparse node
  grid and interpolated with a tensor-product not-a-knot cubic spline.  A
  tensor-product interpolant is two small matrix products, so a whole chip
  costs one BLAS call.  The node spacing is chosen adaptively: the exact
  transform is compared with the interpolant at every cell midpoint and edge
  midpoint, and the grid is refined until the error is below a tenth of the
  tolerance;
* the table-lookup distortions of Paper IV (``D2IMARR`` detector-to-image and
  ``WCSDVARR`` NPOL corrections), which are bilinear interpolations of small
  tables, are handled exactly on the nodes of those tables (the full minus the
  smooth transform) and interpolated bilinearly, again as a tensor product;
  tables too fine for that fall back to astropy's ``pix2foc`` (exact, slower);
* the final model is checked against astropy's full transform at random
  points, corners and edges; if it misses the tolerance the model falls back to
  the exact astropy transform, so a `PixmapModel` is never wrong, at worst
  slow.

`fast_pixmap` is the one-call form; `pixmap_error` compares any pixmap
evaluation with astropy (the self-check used by tests and benchmarks).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from astropy.wcs import WCS
from scipy.interpolate import CubicSpline

__all__ = [
    "ArrayPixmap",
    "PixmapError",
    "PixmapModel",
    "exact_pixmap_points",
    "fast_pixmap",
    "mapped_scale_ratio",
    "pixel_scale_arcsec",
    "pixmap_error",
]

log = logging.getLogger(__name__)

#: Default tolerance (output pixels) of a `PixmapModel` against astropy's full transform.
DEFAULT_TOL_PX = 0.01

#: Initial node spacing (input pixels) of the spline grid before adaptive refinement.
_INITIAL_SPACING_PX = 512

#: Finest spline node spacing (input pixels) tried before falling back to the exact transform.
_MIN_SPACING_PX = 16

#: Lookup tables with more nodes than this along an axis are applied through astropy's pix2foc.
_MAX_TABLE_NODES = 257

#: Spacing (input pixels) of the coarse sample grid used for footprints and sub-box searches.
_COARSE_STEP_PX = 32


def pixel_scale_arcsec(wcs: WCS) -> float:
    """Linear pixel scale of a celestial WCS in arcsec per pixel.

    Computed as sqrt(|det CD|) of the linear part (``pixel_scale_matrix``), i.e.
    ignoring SIP and lookup tables; for HST chip WCSs this is close to, but not
    exactly, the IDCTAB scale (IDCSCALE), which callers should prefer when known.
    """
    return float(np.sqrt(abs(np.linalg.det(wcs.pixel_scale_matrix))) * 3600.0)


def mapped_scale_ratio(mapper) -> float:
    """Output/input linear pixel-size ratio of a pixel map: 1 / sqrt(median |det J|).

    ``J`` is the Jacobian (output px per input px) on the mapper's coarse grid;
    for a 0.05"/px chip on a 0.04"/px grid this is about 0.8.
    """
    xs, ys, pm = mapper.coarse
    jx = (pm[:, 1:] - pm[:, :-1])[:-1] / np.diff(xs)[None, :, None]
    jy = (pm[1:, :] - pm[:-1, :])[:, :-1] / np.diff(ys)[:, None, None]
    det = np.abs(jx[..., 0] * jy[..., 1] - jx[..., 1] * jy[..., 0])
    return float(1.0 / np.sqrt(np.nanmedian(det)))


def exact_pixmap_points(in_wcs: WCS, out_wcs: WCS, x, y, out_origin=(0.0, 0.0)):
    """Astropy's full transform of input pixels ``(x, y)`` to output pixels.

    The same arithmetic as `drizzle.utils.calc_pixmap`: ``all_pix2world`` on the
    input WCS (SIP and lookup tables included), then ``all_world2pix`` on the
    output WCS, both with ``origin=0``; ``out_origin`` (output pixels) is
    subtracted, so a full-cell WCS can map onto a trimmed or tiled sub-array.
    Returns two float64 arrays of the shape of ``x``.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    ra, dec = in_wcs.all_pix2world(x, y, 0)
    ox, oy = out_wcs.all_world2pix(ra, dec, 0)
    return np.asarray(ox) - out_origin[0], np.asarray(oy) - out_origin[1]


def _spline_matrix(nodes: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """Matrix W with ``W @ f(nodes) == not-a-knot cubic spline of f at coords``."""
    spline = CubicSpline(nodes, np.eye(len(nodes)), bc_type="not-a-knot", extrapolate=True)
    return spline(coords)


def _hat_matrix(nodes: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """Matrix W with ``W @ f(nodes) == piecewise-linear interpolation of f at coords``.

    Coordinates outside the node range are clamped (constant extrapolation), as
    Paper IV lookup tables are.
    """
    c = np.clip(coords, nodes[0], nodes[-1])
    idx = np.clip(np.searchsorted(nodes, c, side="right") - 1, 0, len(nodes) - 2)
    w = (c - nodes[idx]) / (nodes[idx + 1] - nodes[idx])
    mat = np.zeros((len(c), len(nodes)))
    rows = np.arange(len(c))
    mat[rows, idx] = 1.0 - w
    mat[rows, idx + 1] += w
    return mat


def _uniform_nodes(n_pix: int, spacing: float) -> np.ndarray:
    n_nodes = max(4, int(np.ceil((n_pix - 1) / spacing)) + 1)
    return np.linspace(0.0, n_pix - 1.0, n_nodes)


def _table_nodes(tables, axis: int, n_pix: int) -> np.ndarray:
    """0-based pixel positions of the nodes of Paper IV lookup tables along one axis.

    A table value at 0-based index k along axis ``axis`` (0 = x = table columns)
    sits at 1-based image coordinate ``(k + 1 - CRPIX) * CDELT + CRVAL`` (the
    convention of astropy's ``distortion.c``).  The chip edges are added so the
    clamped, constant parts of a table are represented as well.
    """
    pos = [np.array([0.0, n_pix - 1.0])]
    for t in tables:
        n_k = t.data.shape[1 - axis]
        k = np.arange(n_k, dtype=np.float64)
        p = (k + 1.0 - t.crpix[axis]) * t.cdelt[axis] + t.crval[axis] - 1.0
        pos.append(p[(p > 0.0) & (p < n_pix - 1.0)])
    return np.unique(np.concatenate(pos))


@dataclass(frozen=True)
class PixmapError:
    """Agreement of a pixel map with astropy's full transform (output pixels)."""

    max_px: float
    rms_px: float
    n_points: int
    worst_xy: tuple[float, float]


class PixmapModel:
    """Pixel map of one input chip onto an output grid, evaluated fast on any sub-box.

    Parameters
    ----------
    in_wcs : astropy.wcs.WCS
        Input chip WCS (TAN or TAN-SIP, optionally with Paper IV lookup tables).
    out_wcs : astropy.wcs.WCS
        Output (sky-cell) WCS.
    shape : (ny, nx)
        Input chip shape (numpy order).
    tol : float
        Maximum allowed deviation from astropy's full transform (output pixels).
    out_origin : (x0, y0)
        Output pixel (0-based) that becomes (0, 0): maps onto a trimmed or tiled
        sub-array of the grid of ``out_wcs``.

    Attributes
    ----------
    mode : str
        ``'spline'`` (fast path), ``'spline+pix2foc'`` (lookup tables through
        astropy) or ``'exact'`` (fallback: astropy at every pixel).
    max_error_px : float
        Largest deviation from astropy found by the validation sample.
    """

    def __init__(
        self,
        in_wcs: WCS,
        out_wcs: WCS,
        shape,
        *,
        tol: float = DEFAULT_TOL_PX,
        out_origin=(0.0, 0.0),
        n_validate: int = 2000,
        seed: int = 0,
    ):
        self.in_wcs = in_wcs
        self.out_wcs = out_wcs
        self.shape = (int(shape[0]), int(shape[1]))
        self.tol = float(tol)
        self.out_origin = (float(out_origin[0]), float(out_origin[1]))
        ny, nx = self.shape

        tables = [t for t in (in_wcs.det2im1, in_wcs.det2im2, in_wcs.cpdis1, in_wcs.cpdis2) if t is not None]
        self._smooth_wcs = in_wcs
        if tables:
            self._smooth_wcs = in_wcs.deepcopy()
            self._smooth_wcs.det2im1 = self._smooth_wcs.det2im2 = None
            self._smooth_wcs.cpdis1 = self._smooth_wcs.cpdis2 = None

        # smooth part: adaptive spline grid
        spacing = float(min(_INITIAL_SPACING_PX, max(nx, ny)))
        while True:
            self._fit_smooth(spacing)
            err = self._smooth_midpoint_error()
            if err <= 0.1 * self.tol or spacing <= _MIN_SPACING_PX:
                break
            spacing /= 2.0
        self.spacing_px = spacing
        self.smooth_error_px = err

        # lookup tables: exact on their nodes, bilinear in between
        self._corr = None
        self._jac = None
        self.mode = "spline"
        if tables:
            tx = _table_nodes(tables, 0, nx)
            ty = _table_nodes(tables, 1, ny)
            if len(tx) <= _MAX_TABLE_NODES and len(ty) <= _MAX_TABLE_NODES:
                gx, gy = np.meshgrid(tx, ty)
                fx, fy = exact_pixmap_points(in_wcs, out_wcs, gx, gy, self.out_origin)
                sx, sy = exact_pixmap_points(self._smooth_wcs, out_wcs, gx, gy, self.out_origin)
                self._corr = (tx, ty, np.stack([fx - sx, fy - sy]))
            else:
                self._jac = self._focal_jacobian()
                self.mode = "spline+pix2foc"

        self.max_error_px = self._validate(n_validate, seed)
        if not self.max_error_px <= self.tol:
            log.warning(
                "pixmap model misses tolerance (%.4g > %.4g px); using astropy's exact transform",
                self.max_error_px,
                self.tol,
            )
            self.mode = "exact"
            self.max_error_px = 0.0
        self._coarse = None

    # -- construction helpers -------------------------------------------------
    def _fit_smooth(self, spacing: float) -> None:
        ny, nx = self.shape
        self._nx_nodes = _uniform_nodes(nx, spacing)
        self._ny_nodes = _uniform_nodes(ny, spacing)
        gx, gy = np.meshgrid(self._nx_nodes, self._ny_nodes)
        vx, vy = exact_pixmap_points(self._smooth_wcs, self.out_wcs, gx, gy, self.out_origin)
        if not (np.all(np.isfinite(vx)) and np.all(np.isfinite(vy))):
            raise ValueError("input chip does not map onto the output projection (non-finite pixel map)")
        self._values = np.stack([vx, vy])  # (2, m, n)

    def _smooth_midpoint_error(self) -> float:
        """Max |spline - exact| at all cell midpoints and edge midpoints (output px)."""
        xs, ys = self._nx_nodes, self._ny_nodes
        xh = np.sort(np.concatenate([xs, 0.5 * (xs[1:] + xs[:-1])]))
        yh = np.sort(np.concatenate([ys, 0.5 * (ys[1:] + ys[:-1])]))
        gx, gy = np.meshgrid(xh, yh)
        ex, ey = exact_pixmap_points(self._smooth_wcs, self.out_wcs, gx, gy, self.out_origin)
        m = self._smooth_grid(xh, yh)
        return float(np.max(np.hypot(m[..., 0] - ex, m[..., 1] - ey)))

    def _smooth_grid(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        wy = _spline_matrix(self._ny_nodes, ys)
        wx = _spline_matrix(self._nx_nodes, xs)
        return _tensor_eval(wy, wx, self._values)

    def _focal_jacobian(self) -> np.ndarray:
        """d(output pixel)/d(focal-plane pixel) at the chip centre (2x2)."""
        ny, nx = self.shape
        cx, cy = (nx - 1) / 2.0, (ny - 1) / 2.0
        fx, fy = self._smooth_wcs.pix2foc(np.array([cx]), np.array([cy]), 0)
        h = 1.0
        px = np.array([fx[0] + h, fx[0] - h, fx[0], fx[0]])
        py = np.array([fy[0], fy[0], fy[0] + h, fy[0] - h])
        ra, dec = self._smooth_wcs.wcs_pix2world(px, py, 0)
        ox, oy = self.out_wcs.all_world2pix(ra, dec, 0)
        return np.array([[ox[0] - ox[1], ox[2] - ox[3]], [oy[0] - oy[1], oy[2] - oy[3]]]) / (2 * h)

    def _validate(self, n: int, seed: int) -> float:
        ny, nx = self.shape
        rng = np.random.default_rng(seed)
        xs = np.concatenate([rng.integers(0, nx, n), [0, nx - 1, 0, nx - 1]])
        ys = np.concatenate([rng.integers(0, ny, n), [0, 0, ny - 1, ny - 1]])
        # edges
        ex = np.linspace(0, nx - 1, 64).round()
        ey = np.linspace(0, ny - 1, 64).round()
        xs = np.concatenate([xs, ex, ex, np.zeros(64), np.full(64, nx - 1)])
        ys = np.concatenate([ys, np.zeros(64), np.full(64, ny - 1), ey, ey])
        mx, my = self.evaluate_points(xs, ys)
        tx, ty = exact_pixmap_points(self.in_wcs, self.out_wcs, xs, ys, self.out_origin)
        return float(np.max(np.hypot(mx - tx, my - ty)))

    # -- evaluation -----------------------------------------------------------
    def evaluate_grid(self, xs, ys, out: np.ndarray | None = None, shift=(0.0, 0.0)) -> np.ndarray:
        """Pixel map on the tensor grid ``ys x xs`` of input pixel coordinates.

        Returns an array of shape ``(len(ys), len(xs), 2)`` (float64) holding
        output ``(x, y)`` for every ``(xs[i], ys[j])``, minus ``shift`` (output
        pixels; applied to the spline nodes, so it costs nothing).  Coordinates
        may lie a little outside the chip (smooth extrapolation).
        """
        xs = np.asarray(xs, dtype=np.float64)
        ys = np.asarray(ys, dtype=np.float64)
        if self.mode == "exact":
            gx, gy = np.meshgrid(xs, ys)
            ox, oy = exact_pixmap_points(self.in_wcs, self.out_wcs, gx, gy, self.out_origin)
            if out is None:
                out = np.empty(gx.shape + (2,), dtype=np.float64)
            out[..., 0], out[..., 1] = ox - shift[0], oy - shift[1]
            return out
        blocks_y = [_spline_matrix(self._ny_nodes, ys)]
        blocks_x = [_spline_matrix(self._nx_nodes, xs)]
        values = [self._values - np.asarray(shift, dtype=np.float64)[:, None, None]]
        if self._corr is not None:
            tx, ty, cvals = self._corr
            blocks_y.append(_hat_matrix(ty, ys))
            blocks_x.append(_hat_matrix(tx, xs))
            values.append(cvals)
        res = _tensor_eval_sum(blocks_y, blocks_x, values, out=out)
        if self._jac is not None:
            gx, gy = np.meshgrid(xs, ys)
            fx, fy = self.in_wcs.pix2foc(gx, gy, 0)
            sx, sy = self._smooth_wcs.pix2foc(gx, gy, 0)
            dfx, dfy = fx - sx, fy - sy
            res[..., 0] += self._jac[0, 0] * dfx + self._jac[0, 1] * dfy
            res[..., 1] += self._jac[1, 0] * dfx + self._jac[1, 1] * dfy
        return res

    def evaluate(self, xmin: int = 0, xmax: int | None = None, ymin: int = 0, ymax: int | None = None,
                 out: np.ndarray | None = None) -> np.ndarray:
        """Pixel map of the input sub-box ``[ymin..ymax] x [xmin..xmax]`` (inclusive, as drizzle).

        Returns ``(ymax - ymin + 1, xmax - xmin + 1, 2)`` float64: element
        ``[j, i]`` maps input pixel ``(xmin + i, ymin + j)``.
        """
        ny, nx = self.shape
        xmax = nx - 1 if xmax is None else xmax
        ymax = ny - 1 if ymax is None else ymax
        if not (0 <= xmin <= xmax < nx and 0 <= ymin <= ymax < ny):
            raise ValueError(f"input box x[{xmin}..{xmax}] y[{ymin}..{ymax}] outside chip of shape {self.shape}")
        return self.evaluate_grid(np.arange(xmin, xmax + 1), np.arange(ymin, ymax + 1), out=out)

    def evaluate_points(self, x, y):
        """Output pixel coordinates of scattered input points (no grid structure)."""
        x = np.asarray(x, dtype=np.float64).ravel()
        y = np.asarray(y, dtype=np.float64).ravel()
        if self.mode == "exact":
            return exact_pixmap_points(self.in_wcs, self.out_wcs, x, y, self.out_origin)
        wy = _spline_matrix(self._ny_nodes, y)
        wx = _spline_matrix(self._nx_nodes, x)
        ox = np.einsum("pa,ab,pb->p", wy, self._values[0], wx)
        oy = np.einsum("pa,ab,pb->p", wy, self._values[1], wx)
        if self._corr is not None:
            tx, ty, cvals = self._corr
            hy, hx = _hat_matrix(ty, y), _hat_matrix(tx, x)
            ox += np.einsum("pa,ab,pb->p", hy, cvals[0], hx)
            oy += np.einsum("pa,ab,pb->p", hy, cvals[1], hx)
        if self._jac is not None:
            fx, fy = self.in_wcs.pix2foc(x, y, 0)
            sx, sy = self._smooth_wcs.pix2foc(x, y, 0)
            dfx, dfy = fx - sx, fy - sy
            ox = ox + self._jac[0, 0] * dfx + self._jac[0, 1] * dfy
            oy = oy + self._jac[1, 0] * dfx + self._jac[1, 1] * dfy
        return ox, oy

    # -- footprints and sub-boxes --------------------------------------------
    @property
    def coarse(self):
        """``(xs, ys, pixmap)``: the map on a coarse grid (every 32 input px, edges included)."""
        if self._coarse is None:
            ny, nx = self.shape
            xs = np.unique(np.append(np.arange(0, nx, _COARSE_STEP_PX), nx - 1)).astype(np.float64)
            ys = np.unique(np.append(np.arange(0, ny, _COARSE_STEP_PX), ny - 1)).astype(np.float64)
            self._coarse = (xs, ys, self.evaluate_grid(xs, ys))
        return self._coarse

    def footprint(self, step: int = 64) -> np.ndarray:
        """Chip outline in output pixels: ``(N, 2)`` (x, y) of the outer pixel edges.

        The boundary of the chip (pixel edges at -0.5 and n - 0.5) is sampled every
        ``step`` input pixels, counter-clockwise in input coordinates.
        """
        x, y = _outline_points(self.shape, step)
        ox, oy = self.evaluate_points(x, y)
        return np.column_stack([ox, oy])

    def input_box(self, out_box, margin: int = 0):
        """Inclusive input box ``(xmin, xmax, ymin, ymax)`` of the pixels that map into ``out_box``.

        ``out_box = (x0, x1, y0, y1)`` is a half-open range of output pixel
        indices.  The box is conservative: every input pixel whose footprint
        touches the output box is inside; ``margin`` input pixels are added on
        each side (clipped to the chip).  Returns None when nothing maps there.
        """
        xs, ys, pm = self.coarse
        return _input_box_from_coarse(xs, ys, pm, out_box, margin, self.shape)


class ArrayPixmap:
    """Adapter giving a precomputed pixel map the interface of `PixmapModel`.

    ``pixmap`` is the ``(ny, nx, 2)`` array (output pixels, 0-based) of the whole
    chip; NaN entries (input pixels mapping nowhere) are allowed.
    """

    def __init__(self, pixmap: np.ndarray, out_origin=(0.0, 0.0)):
        pixmap = np.asarray(pixmap)
        if pixmap.ndim != 3 or pixmap.shape[2] != 2:
            raise ValueError("pixmap must have shape (ny, nx, 2)")
        self.pixmap = pixmap
        self.shape = pixmap.shape[:2]
        self.out_origin = (float(out_origin[0]), float(out_origin[1]))
        self._coarse = None

    def evaluate(self, xmin=0, xmax=None, ymin=0, ymax=None, out=None):
        ny, nx = self.shape
        xmax = nx - 1 if xmax is None else xmax
        ymax = ny - 1 if ymax is None else ymax
        sub = self.pixmap[ymin:ymax + 1, xmin:xmax + 1]
        if out is None:
            out = np.empty(sub.shape, dtype=np.float64)
        out[...] = sub
        if self.out_origin != (0.0, 0.0):
            out[..., 0] -= self.out_origin[0]
            out[..., 1] -= self.out_origin[1]
        return out

    def evaluate_grid(self, xs, ys, out=None, shift=(0.0, 0.0)):
        """Map at integer input coordinates, minus ``shift``; beyond the chip edges
        the map is extrapolated linearly from the outermost pixels (as drizzle does)."""
        xs = np.asarray(xs, dtype=np.float64)
        ys = np.asarray(ys, dtype=np.float64)
        ny, nx = self.shape
        p = self.pixmap
        xi = np.clip(np.rint(xs).astype(int), 0, nx - 1)
        yi = np.clip(np.rint(ys).astype(int), 0, ny - 1)
        res = p[np.ix_(yi, xi)].astype(np.float64)
        dx = xs - xi
        dy = ys - yi
        if np.any(dx) and nx > 1:
            rows = p[yi]
            slope = np.where((dx < 0)[None, :, None], rows[:, [1]] - rows[:, [0]], rows[:, [nx - 1]] - rows[:, [nx - 2]])
            res += dx[None, :, None] * slope
        if np.any(dy) and ny > 1:
            cols = p[:, xi]
            slope = np.where((dy < 0)[:, None, None], cols[[1]] - cols[[0]], cols[[ny - 1]] - cols[[ny - 2]])
            res += dy[:, None, None] * slope
        res -= np.array(self.out_origin) + np.asarray(shift, dtype=np.float64)
        if out is not None:
            out[...] = res
            return out
        return res

    @property
    def coarse(self):
        if self._coarse is None:
            ny, nx = self.shape
            xs = np.unique(np.append(np.arange(0, nx, _COARSE_STEP_PX), nx - 1))
            ys = np.unique(np.append(np.arange(0, ny, _COARSE_STEP_PX), ny - 1))
            self._coarse = (xs.astype(float), ys.astype(float), self.evaluate_grid(xs, ys))
        return self._coarse

    def footprint(self, step: int = 64) -> np.ndarray:
        """Chip outline in output pixels (see `PixmapModel.footprint`), the pixel-edge
        positions obtained from the array by drizzle's bilinear interpolation and
        extrapolation."""
        x, y = _outline_points(self.shape, step)
        return _bilinear_points(self.pixmap, x, y) - np.array(self.out_origin)

    def input_box(self, out_box, margin: int = 0):
        xs, ys, pm = self.coarse
        return _input_box_from_coarse(xs, ys, pm, out_box, margin, self.shape)


def _outline_points(shape, step: int):
    """Input points along the outer pixel edges of a chip, counter-clockwise."""
    ny, nx = shape
    bx = np.unique(np.append(np.arange(0, nx, step), nx)).astype(float) - 0.5
    by = np.unique(np.append(np.arange(0, ny, step), ny)).astype(float) - 0.5
    x = np.concatenate([bx[:-1], np.full(len(by) - 1, bx[-1]), bx[::-1][:-1], np.full(len(by) - 1, bx[0])])
    y = np.concatenate([np.full(len(bx) - 1, by[0]), by[:-1], np.full(len(bx) - 1, by[-1]), by[::-1][:-1]])
    return x, y


def _bilinear_points(pixmap: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bilinear interpolation of a pixmap at fractional input points, extrapolating
    linearly from the outermost cell beyond the array (drizzle's ``interpolate_point``)."""
    ny, nx = pixmap.shape[:2]
    i0 = np.clip(np.floor(x).astype(int), 0, nx - 2)
    j0 = np.clip(np.floor(y).astype(int), 0, ny - 2)
    fx = (x - i0)[:, None]
    fy = (y - j0)[:, None]
    return (pixmap[j0, i0] * (1 - fx) * (1 - fy) + pixmap[j0, i0 + 1] * fx * (1 - fy)
            + pixmap[j0 + 1, i0] * (1 - fx) * fy + pixmap[j0 + 1, i0 + 1] * fx * fy)


def _input_box_from_coarse(xs, ys, pm, out_box, margin, shape):
    """Input box covering all pixels mapping into ``out_box``, from a coarse sample grid.

    Any input pixel lies within half a coarse step (in each axis) of a sample
    point, so its output position is within ``reach`` of that sample's; samples
    whose output lies in the box grown by ``reach`` bound the pixels, one coarse
    step plus ``margin`` further out.
    """
    x0, x1, y0, y1 = out_box
    with np.errstate(invalid="ignore"):
        dxs = np.nanmax(np.abs(np.diff(pm, axis=1)), axis=(0, 1)) if pm.shape[1] > 1 else np.zeros(2)
        dys = np.nanmax(np.abs(np.diff(pm, axis=0)), axis=(0, 1)) if pm.shape[0] > 1 else np.zeros(2)
    reach = float(np.nanmax(dxs) + np.nanmax(dys)) + 2.0  # covers half a step in both axes + pixel size
    px, py = pm[..., 0], pm[..., 1]
    with np.errstate(invalid="ignore"):
        inside = (px >= x0 - 0.5 - reach) & (px < x1 - 0.5 + reach) & (py >= y0 - 0.5 - reach) & (py < y1 - 0.5 + reach)
    if not inside.any():
        return None
    rows = np.flatnonzero(inside.any(axis=1))
    cols = np.flatnonzero(inside.any(axis=0))
    step_x = float(np.max(np.diff(xs))) if len(xs) > 1 else 1.0
    step_y = float(np.max(np.diff(ys))) if len(ys) > 1 else 1.0
    ny, nx = shape
    xmin = max(0, int(np.floor(xs[cols[0]] - step_x)) - margin)
    xmax = min(nx - 1, int(np.ceil(xs[cols[-1]] + step_x)) + margin)
    ymin = max(0, int(np.floor(ys[rows[0]] - step_y)) - margin)
    ymax = min(ny - 1, int(np.ceil(ys[rows[-1]] + step_y)) + margin)
    return xmin, xmax, ymin, ymax


def _tensor_eval(wy: np.ndarray, wx: np.ndarray, values: np.ndarray) -> np.ndarray:
    return _tensor_eval_sum([wy], [wx], [values])


def _tensor_eval_sum(blocks_y, blocks_x, values, out=None) -> np.ndarray:
    """``sum_k  Wy_k @ V_k[c] @ Wx_k.T`` for c = x, y, written interleaved as (ny, nx, 2).

    One matrix product: ``[Wy_1 V_1[0] | Wy_1 V_1[1] | Wy_2 V_2[0] ...]``
    (ny x 2K) times a block matrix that scatters each coordinate into its
    interleaved column, so BLAS writes the ``(ny, nx, 2)`` result directly (this
    beats two products plus strided copies even though half the right-hand
    matrix is zeros).
    """
    ny = blocks_y[0].shape[0]
    nx = blocks_x[0].shape[0]
    left = []
    right = []
    for wy, wx, v in zip(blocks_y, blocks_x, values):
        k = wx.shape[1]
        for c in range(2):
            left.append(wy @ v[c])
            r = np.zeros((k, nx, 2))
            r[:, :, c] = wx.T
            right.append(r.reshape(k, 2 * nx))
    if out is None:
        out = np.empty((ny, nx, 2), dtype=np.float64)
    elif out.shape != (ny, nx, 2) or out.dtype != np.float64 or not out.flags.c_contiguous:
        raise ValueError(f"out must be a C-contiguous float64 array of shape {(ny, nx, 2)}")
    np.matmul(np.concatenate(left, axis=1), np.concatenate(right, axis=0), out=out.reshape(ny, 2 * nx))
    return out


def fast_pixmap(
    in_wcs: WCS,
    out_wcs: WCS,
    shape,
    *,
    xmin: int = 0,
    xmax: int | None = None,
    ymin: int = 0,
    ymax: int | None = None,
    out_origin=(0.0, 0.0),
    tol: float = DEFAULT_TOL_PX,
) -> np.ndarray:
    """Pixel map of input chip pixels onto the output grid, within ``tol`` of astropy.

    Parameters
    ----------
    in_wcs, out_wcs : astropy.wcs.WCS
        Input chip and output WCS.
    shape : (ny, nx)
        Input chip shape.
    xmin, xmax, ymin, ymax : int
        Inclusive input sub-box (default: whole chip), 0-based.
    out_origin : (x0, y0)
        Output pixel that becomes (0, 0), to map onto a trimmed or tiled output.
    tol : float
        Maximum deviation (output pixels) from astropy's full transform.

    Returns
    -------
    ndarray, shape ``(ymax - ymin + 1, xmax - xmin + 1, 2)``, float64
        Output ``(x, y)`` (0-based) of every input pixel centre of the box;
        finite everywhere.
    """
    model = PixmapModel(in_wcs, out_wcs, shape, tol=tol, out_origin=out_origin)
    return model.evaluate(xmin, xmax, ymin, ymax)


def pixmap_error(in_wcs: WCS, out_wcs: WCS, shape, sample: int = 20000, *, pixmap=None,
                 out_origin=(0.0, 0.0), seed: int = 1, tol: float = DEFAULT_TOL_PX) -> PixmapError:
    """Compare a fast pixel map with astropy's full transform.

    ``pixmap`` is the map to check, for the whole chip; by default it is
    `fast_pixmap` of the same arguments.  It is compared at ``sample`` random
    pixels plus every 8th pixel along all four chip edges and the four corners.
    """
    ny, nx = int(shape[0]), int(shape[1])
    if pixmap is None:
        pixmap = fast_pixmap(in_wcs, out_wcs, (ny, nx), out_origin=out_origin, tol=tol)
    rng = np.random.default_rng(seed)
    ex = np.arange(0, nx, 8)
    ey = np.arange(0, ny, 8)
    xs = np.concatenate([rng.integers(0, nx, sample), ex, ex, np.zeros_like(ey), np.full_like(ey, nx - 1),
                         [0, nx - 1, 0, nx - 1]])
    ys = np.concatenate([rng.integers(0, ny, sample), np.zeros_like(ex), np.full_like(ex, ny - 1), ey, ey,
                         [0, 0, ny - 1, ny - 1]])
    tx, ty = exact_pixmap_points(in_wcs, out_wcs, xs, ys, out_origin)
    got = pixmap[ys, xs]
    d = np.hypot(got[:, 0] - tx, got[:, 1] - ty)
    k = int(np.nanargmax(d)) if np.all(np.isfinite(d)) else int(np.argmax(~np.isfinite(d)))
    return PixmapError(
        max_px=float(np.max(d)) if np.all(np.isfinite(d)) else float("inf"),
        rms_px=float(np.sqrt(np.mean(d**2))),
        n_points=int(d.size),
        worst_xy=(float(xs[k]), float(ys[k])),
    )
