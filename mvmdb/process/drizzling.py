"""Drizzle the members of one layer onto the sky-cell grid, tile by tile.

Array level only: inputs are numpy arrays (science, DQ) with a WCS or a
precomputed pixel map, outputs are numpy arrays or tiles handed to a sink.
Conventions: pixel coordinates are 0-based with pixel centres at integers
(numpy, astropy ``origin=0`` and drizzle); arrays are numpy ``(ny, nx)``.

The archive's final drizzle for MVM layers (spec §5.3): square kernel,
pixfrac 1.0, EXP weighting (weight = exposure time, ``final_wht_type EXP``),
output in counts per second (e-/s for HST e- calibrated data), bad pixels
rejected through ``final_bits`` (the DQ flags *accepted* as good), no cosmic-ray
rejection, sky subtraction from sky matching.

Tiling
------
The output is processed in tiles of ``tile_shape`` so memory is bounded by a
tile plus the inputs touching it.  For each tile only the inputs whose
footprint overlaps it are drizzled, and for each of those only the input
sub-box that maps into the tile is read and only its pixel map computed (see
`mvmdb.process.pixmap.PixmapModel`).

drizzle's C code limits the input pixels it resamples with a polygon built
from the four mapped corners of the input array, clipped to the output array
and mapped back; with HST distortion those straight chords deviate from the
true (curved) edges by several pixels over a chip, which drops pixels near an
output edge that cuts through an input (bare drizzle loses them at the edges
of its output too).  Two guards make tiles seamless, and the layer's own edges
exact:

* each tile is drizzled into a window grown by a *halo* of output pixels on
  every side (also past the layer's edges), and only the tile is kept;
* each input sub-box is grown by a *guard* band of input pixels; beyond the
  chip the band is virtual (zero weight, pixel map extrapolated), so the chord
  errors fall on pixels that carry no weight.

Both widths are derived from the curvature of each input's pixel map.

Neither guard is needed, and none is paid, for an input drizzled whole into a
window that holds its four mapped corners: drizzle's polygon is then the chip
itself (nothing is clipped), so it resamples every pixel exactly as a bare
``add_image`` of the chip would.  Such an input asks only for the few pixels of
halo (often none) that bring its corners inside.  This is the common case of a
layer that fits in one tile, whose box is the union of its chips' footprints.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

import numpy as np
from astropy.wcs import WCS
from drizzle import cdrizzle

from mvmdb.process.arena import SCRATCH, Arena
from mvmdb.process.pixmap import DEFAULT_TOL_PX, ArrayPixmap, PixmapModel, mapped_scale_ratio, pixel_scale_arcsec

__all__ = [
    "DrizzleInput",
    "InputReport",
    "LayerArrays",
    "LayerTile",
    "DrizzlePars",
    "drizzle_layer",
    "drizzle_pars",
    "final_bits",
    "good_pixels",
    "input_mapper",
    "units_kind",
]


#: Input units treated as integrated counts (drizzle ``in_units='counts'``: divided by exptime).
COUNT_UNITS = frozenset({"electrons", "electron", "e-", "e", "counts", "count", "dn"})
#: Input units treated as count rates (drizzle ``in_units='cps'``).
RATE_UNITS = frozenset({"electrons/s", "electron/s", "e-/s", "e/s", "electrons/sec", "counts/s", "count/s", "cps", "dn/s"})

#: Bits of context per plane (drizzle's int32 context images).
CTX_PLANE_BITS = 32


def units_kind(units: str) -> str:
    """``'counts'`` or ``'cps'`` for a BUNIT-like string ('ELECTRONS', 'ELECTRONS/S', ...)."""
    u = units.strip().lower().replace(" ", "")
    if u in COUNT_UNITS:
        return "counts"
    if u in RATE_UNITS:
        return "cps"
    raise ValueError(f"unsupported input units {units!r}; expected one of {sorted(COUNT_UNITS | RATE_UNITS)}")


def final_bits(instrument: str, detector: str, n_exposures: int, filter_name: str | None = None) -> int:
    """DQ flags accepted as good in the final drizzle of an MVM layer (spec §5.3).

    ``n_exposures`` is the archive's ``n_exp = int(round(MEANNEXP))``.  Single
    exposure layers (n = 1, the ``any_n1`` configurations) accept every flag
    (65535).  For n > 1: ACS/WFC, ACS/HRC and WFC3/UVIS 80; WFC3/IR 528;
    WFPC2 "2,8,1024" (1034); ACS/SBC 0 in the blue filters F115LP/F122M and,
    through the archive quirk of falling back to the base configuration, 528 in
    the others (``filter_name`` required for SBC).
    """
    if n_exposures < 1:
        raise ValueError("n_exposures must be >= 1")
    inst = instrument.strip().upper()
    det = detector.strip().upper()
    if n_exposures == 1:
        return 65535
    if inst == "ACS" and det in ("WFC", "HRC"):
        return 80
    if inst == "WFC3" and det == "UVIS":
        return 80
    if inst == "WFC3" and det == "IR":
        return 528
    if inst == "WFPC2":
        return 2 | 8 | 1024
    if inst == "ACS" and det == "SBC":
        if filter_name is None:
            raise ValueError("ACS/SBC final_bits depend on the filter: pass filter_name")
        return 0 if filter_name.strip().lower() in ("f115lp", "f122m") else 528
    raise ValueError(f"no MVM drizzle parameters for {instrument}/{detector}")


@dataclass(frozen=True)
class DrizzlePars:
    """Final-drizzle parameters of an MVM layer (spec §5.3): DQ flags accepted (``bits``),
    ``pixfrac``, and whether the inputs are sky matched (``skysub``)."""

    bits: int
    pixfrac: float
    skysub: bool


#: ACS/SBC filters with the archive's "blue" configurations (``acs_sbc_blue_n2`` / ``_n6``).
SBC_BLUE_FILTERS = ("f115lp", "f122m")


def drizzle_pars(instrument: str, detector: str, n_exposures: int, filter_name: str | None = None) -> DrizzlePars:
    """The archive's final drizzle parameters of a layer from its configuration files (spec §5.3).

    ``n_exposures`` is ``n_exp = int(round(MEANNEXP))``. ``bits`` as :func:`final_bits`;
    ``pixfrac`` 0.8 for ACS/SBC in a blue filter (F115LP, F122M) with ``n_exp >= 6``
    (``acs_sbc_blue_n6``), else 1.0; ``skysub`` (sky matching) for ``n_exp > 1`` (every
    ``any_n1`` configuration turns it off, every n >= 2 one on).
    """
    bits = final_bits(instrument, detector, n_exposures, filter_name)
    sbc_blue = (instrument.strip().upper(), detector.strip().upper()) == ("ACS", "SBC") and \
        (filter_name or "").strip().lower() in SBC_BLUE_FILTERS
    pixfrac = 0.8 if sbc_blue and n_exposures >= 6 else 1.0
    return DrizzlePars(bits=bits, pixfrac=pixfrac, skysub=n_exposures > 1)


def good_pixels(sci: np.ndarray, dq: np.ndarray | None, bits: int) -> np.ndarray:
    """Boolean mask of usable pixels: finite science value and ``(dq & ~bits) == 0``.

    ``bits`` is the set of DQ flags *accepted* as good (AstroDrizzle ``final_bits``).
    """
    good = np.isfinite(sci)
    if dq is not None:
        dq = np.asarray(dq)
        if dq.dtype.kind not in "iu":
            raise TypeError(f"DQ array must be of integer type, not {dq.dtype}")
        udq = dq.view(dq.dtype.str.replace("i", "u"))
        reject = udq.dtype.type(~int(bits) & ((1 << (8 * udq.dtype.itemsize)) - 1))
        good &= (udq & reject) == 0
    return good


@dataclass
class DrizzleInput:
    """One input chip of a layer.

    Attributes
    ----------
    sci : ndarray (ny, nx)
        Science array in ``units`` (np.memmap is fine: only sub-boxes are read).
    exptime : float
        Exposure time in seconds (> 0); also the EXP weight of good pixels.
    dq : ndarray (ny, nx) of int, optional
        Data-quality flags; pixels with a flag outside ``bits`` get zero weight.
    in_wcs : astropy.wcs.WCS, optional
        Chip WCS; used to compute the pixel map unless ``pixmap`` is given.
    pixmap : ndarray (ny, nx, 2), optional
        Precomputed map onto the layer's output grid (0-based output pixels).
    units : str
        'electrons' / 'counts' (integrated) or 'electrons/s' / 'cps' (rates).
    sky : float
        Sky level to subtract, in ``units`` per input pixel.
    name : str
        Identifier (e.g. ``'jbt122x8q_flc.fits[SCI,1]'``).
    exposure : str, optional
        Exposure identifier shared by the chips of one exposure (defaults to ``name``).
    pixel_scale : float, optional
        Nominal input pixel scale in arcsec (IDCSCALE); default sqrt|det CD| of
        ``in_wcs``, or the mean local scale of ``pixmap``.
    gain : float
        Multiplies the sky-subtracted data (e-/DN): WFPC2 counts are converted to electrons
        with ATODGAIN, as the archive does; 1 for data already in electrons.
    """

    sci: np.ndarray
    exptime: float
    dq: np.ndarray | None = None
    in_wcs: WCS | None = None
    pixmap: np.ndarray | None = None
    units: str = "electrons"
    sky: float = 0.0
    name: str = ""
    exposure: str | None = None
    pixel_scale: float | None = None
    gain: float = 1.0

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.sci.shape)

    @property
    def exposure_id(self) -> str:
        return self.exposure if self.exposure is not None else self.name


def input_mapper(inp, out_wcs: WCS | None, tol: float = DEFAULT_TOL_PX):
    """`PixmapModel` (from ``inp.in_wcs``) or `ArrayPixmap` (from ``inp.pixmap``) of an input."""
    if getattr(inp, "pixmap", None) is not None:
        return ArrayPixmap(inp.pixmap)
    if inp.in_wcs is None or out_wcs is None:
        raise ValueError(f"input {inp.name!r}: need a pixmap, or in_wcs and out_wcs")
    return PixmapModel(inp.in_wcs, out_wcs, inp.sci.shape, tol=tol)


@dataclass
class LayerTile:
    """One finished output tile: rows ``y0:y0+h``, columns ``x0:x0+w`` of the layer."""

    y0: int
    x0: int
    sci: np.ndarray  # float32, e-/s (counts/s), NaN where no data
    wht: np.ndarray  # float32, sum of exptime x overlap
    nexp: np.ndarray  # int16, number of inputs contributing
    ctx: np.ndarray | None = None  # int32 (nplanes, h, w), bit k of plane p = input 32p + k

    @property
    def slices(self) -> tuple[slice, slice]:
        h, w = self.sci.shape
        return slice(self.y0, self.y0 + h), slice(self.x0, self.x0 + w)


@dataclass
class InputReport:
    name: str
    pixmap_mode: str
    pixmap_error_px: float
    pixel_scale_ratio: float
    tiles: int = 0
    nmiss: int = 0
    nskip: int = 0


@dataclass
class LayerArrays:
    """Result of `drizzle_layer`; arrays are None when tiles went to a sink."""

    sci: np.ndarray | None
    wht: np.ndarray | None
    nexp: np.ndarray | None
    ctx: np.ndarray | None
    total_exptime: float
    inputs: list[InputReport] = field(default_factory=list)
    tiles: int = 0
    halo_px: int = 0  # largest halo (output px) any tile was drizzled with; 0 when no input needed one
    seconds: dict = field(default_factory=dict)


@dataclass
class _InputMap:
    inp: object
    mapper: object
    kind: str
    ratio: float
    bbox: tuple[float, float, float, float]  # output x0, x1, y0, y1 (inclusive extent incl. pixel size)
    curvature: float  # max |second derivative| of the map, output px per input px^2
    halo: int
    report: InputReport
    corners: np.ndarray  # (4, 2) output (x, y) of the chip's outer corners (pixel edges)

    def whole_chip_halo(self, box, tile) -> int | None:
        """Halo (output px) that holds this input whole when drizzled into output ``tile``.

        ``tile = (x0, x1, y0, y1)`` are half-open output pixel indices.  When input ``box``
        is the whole chip and its four mapped corners lie inside the tile grown by the
        returned halo (by at least `_CORNER_MARGIN_PX`), drizzle clips nothing: every chip
        pixel is resampled, as by a bare ``add_image``, with no guard band.  None when
        ``box`` is only part of the chip or a corner is undefined.
        """
        ny, nx = self.inp.sci.shape
        if tuple(box) != (0, nx - 1, 0, ny - 1) or not np.all(np.isfinite(self.corners)):
            return None
        x0, x1, y0, y1 = tile
        cx, cy = self.corners[:, 0], self.corners[:, 1]
        m = _CORNER_MARGIN_PX
        out = max(0.0, float(np.max(np.concatenate([(x0 - 0.5 + m) - cx, cx - (x1 - 0.5 - m),
                                                    (y0 - 0.5 + m) - cy, cy - (y1 - 0.5 - m)]))))
        return int(np.ceil(out))


#: Safety factor on the chord-error estimates that size halos and guard bands.
_SAFETY = 1.25

#: Least distance (output px) of an input's mapped corner from the edge of drizzle's output
#: array for the input to count as inside it (our corners agree with drizzle's ~1e-4 px).
_CORNER_MARGIN_PX = 0.05


def _guard_px(plan: _InputMap, box) -> int:
    """Guard band (input px) for an input box: the images of its straight edges deviate
    from their chords by up to f2 * L^2 / 8 output px, i.e. that times ``ratio`` input px."""
    length = max(box[1] - box[0], box[3] - box[2]) + 1
    return int(np.ceil(_SAFETY * plan.curvature * length**2 / 8.0 * plan.ratio)) + 2


def _max_curvature(mapper, shape) -> float:
    """Max |second derivative| of a pixel map (output px per input px^2), on a uniform grid."""
    ny, nx = shape
    s = max(1, min(nx, ny) // 8)
    xs = np.arange(0, nx, s, dtype=np.float64)
    ys = np.arange(0, ny, s, dtype=np.float64)
    if len(xs) < 3 or len(ys) < 3:
        return 0.0
    pm = mapper.evaluate_grid(xs, ys)
    with np.errstate(invalid="ignore"):
        dxx = np.abs(pm[:, 2:] - 2 * pm[:, 1:-1] + pm[:, :-2]).max(initial=0.0)
        dyy = np.abs(pm[2:] - 2 * pm[1:-1] + pm[:-2]).max(initial=0.0)
        dxy = np.abs(pm[1:, 1:] - pm[1:, :-1] - pm[:-1, 1:] + pm[:-1, :-1]).max(initial=0.0)
    return float(np.nanmax([dxx, dyy, dxy])) / (s * s)


def _plan_input(inp, out_wcs, tile_shape, tol) -> _InputMap:
    if not inp.exptime > 0:
        raise ValueError(f"input {inp.name!r}: exptime must be > 0")
    kind = units_kind(inp.units)
    mapper = input_mapper(inp, out_wcs, tol)
    _, _, pm = mapper.coarse
    # pixel scale ratio (output / input pixel size)
    in_ps = inp.pixel_scale
    if in_ps is None and inp.in_wcs is not None:
        in_ps = pixel_scale_arcsec(inp.in_wcs)
    if in_ps is not None and out_wcs is not None:
        ratio = pixel_scale_arcsec(out_wcs) / in_ps
    else:
        ratio = mapped_scale_ratio(mapper)
    # halo (output px) from the curvature of the map: the preimage of a window edge of
    # about a tile's length deviates from its chord by f2 * L_in^2 / 8 (see module docstring)
    ny, nx = inp.sci.shape
    f2 = _max_curvature(mapper, (ny, nx))
    halo = 16
    for _ in range(3):  # the window edge is the tile plus two halos long
        chord_in = ratio * (max(tile_shape) + 2 * halo)
        halo = int(np.ceil(_SAFETY * f2 * chord_in**2 / 8.0 + 2.0 / ratio)) + 2
    with np.errstate(invalid="ignore"):
        reach = 2.0 / ratio + 2.0
        bbox = (float(np.nanmin(pm[..., 0])) - reach, float(np.nanmax(pm[..., 0])) + reach,
                float(np.nanmin(pm[..., 1])) - reach, float(np.nanmax(pm[..., 1])) + reach)
    err = getattr(mapper, "max_error_px", 0.0)
    report = InputReport(name=inp.name, pixmap_mode=getattr(mapper, "mode", "array"),
                         pixmap_error_px=float(err), pixel_scale_ratio=float(ratio))
    corners = mapper.footprint(step=max(nx, ny))  # the four outer corners, as drizzle maps them
    return _InputMap(inp, mapper, kind, float(ratio), bbox, f2, halo, report, corners)


def _read_box(plan: _InputMap, box, bits, arena: Arena):
    """Sky-subtracted science and EXP weights on an input box that may extend past the chip.

    Pixels outside the chip, non-finite or DQ-rejected get weight 0 and value 0.
    The arrays are views of ``arena`` (roles ``in_data``, ``in_wht``), valid until the next call.
    """
    inp = plan.inp
    xmin, xmax, ymin, ymax = box
    ny, nx = inp.sci.shape
    h, w = ymax - ymin + 1, xmax - xmin + 1
    data = arena.take("in_data", (h, w), np.float32)
    wht = arena.take("in_wht", (h, w), np.float32)
    cx0, cx1 = max(xmin, 0), min(xmax, nx - 1)
    cy0, cy1 = max(ymin, 0), min(ymax, ny - 1)
    if (cx0, cx1, cy0, cy1) != (xmin, xmax, ymin, ymax):  # part of the box is outside the chip
        data.fill(0.0)
        wht.fill(0.0)
    if cx0 > cx1 or cy0 > cy1:
        return data, wht
    rows, cols = slice(cy0, cy1 + 1), slice(cx0, cx1 + 1)
    good = good_pixels(inp.sci[rows, cols], None if inp.dq is None else inp.dq[rows, cols], bits)
    inner = (slice(cy0 - ymin, cy1 - ymin + 1), slice(cx0 - xmin, cx1 - xmin + 1))
    d = data[inner]
    np.subtract(inp.sci[rows, cols], np.float32(inp.sky), out=d, casting="unsafe")
    if getattr(inp, "gain", 1.0) != 1.0:
        np.multiply(d, np.float32(inp.gain), out=d)
    np.copyto(d, np.float32(0.0), where=~good)
    np.multiply(good, np.float32(inp.exptime), out=wht[inner])
    return data, wht


def _box_pixmap(plan: _InputMap, box, origin, arena: Arena) -> np.ndarray:
    """Pixel map of input box ``(xmin, xmax, ymin, ymax)`` relative to output ``origin`` (x0, y0)."""
    bx0, bx1, by0, by1 = box
    out = arena.take("pixmap", (by1 - by0 + 1, bx1 - bx0 + 1, 2), np.float64)
    return plan.mapper.evaluate_grid(np.arange(bx0, bx1 + 1, dtype=np.float64),
                                     np.arange(by0, by1 + 1, dtype=np.float64), out=out, shift=origin)


def _tiles(out_shape, tile_shape) -> Iterator[tuple[int, int, int, int]]:
    ny, nx = out_shape
    ty, tx = tile_shape
    for y0 in range(0, ny, ty):
        for x0 in range(0, nx, tx):
            yield x0, min(x0 + tx, nx), y0, min(y0 + ty, ny)


def _popcount_planes(ctx: np.ndarray) -> np.ndarray:
    """Number of set bits over all context planes, per pixel (int16)."""
    counts = np.empty(ctx.shape[1:], dtype=np.int16)
    np.bitwise_count(ctx[0].view(np.uint32), out=counts, casting="unsafe")  # no uint8 temporary
    for plane in ctx[1:]:
        counts += np.bitwise_count(plane.view(np.uint32))
    return counts


def _remap_context(local: np.ndarray, global_ids: Sequence[int], n_planes: int) -> np.ndarray:
    """Move context bits from local ids (order of drizzling in a tile) to global input indices."""
    out = np.zeros((n_planes,) + local.shape[1:], dtype=np.int32)
    lu = local.view(np.uint32)
    ou = out.view(np.uint32)
    for lid, gid in enumerate(global_ids):
        bit = (lu[lid // CTX_PLANE_BITS] >> np.uint32(lid % CTX_PLANE_BITS)) & np.uint32(1)
        ou[gid // CTX_PLANE_BITS] |= bit << np.uint32(gid % CTX_PLANE_BITS)
    return out


def drizzle_layer(
    inputs: Sequence[DrizzleInput],
    out_wcs: WCS | None,
    out_shape,
    *,
    bits: int,
    tile_shape=(2048, 2048),
    context: bool = False,
    pixfrac: float = 1.0,
    kernel: str = "square",
    sink: Callable[[LayerTile], None] | None = None,
    out: LayerArrays | None = None,
    pixmap_tol: float = DEFAULT_TOL_PX,
    arena: Arena | None = None,
) -> LayerArrays:
    """Drizzle the inputs of one layer onto the output grid, tile by tile.

    Parameters
    ----------
    inputs : sequence of DrizzleInput
        The layer's chips.  Their order is the context-bit order.
    out_wcs : astropy.wcs.WCS or None
        Output (trimmed sky-cell) WCS; pixel (0, 0) of ``out_shape`` is pixel
        (0, 0) of this WCS.  May be None if every input carries a pixmap.
    out_shape : (ny, nx)
        Output array shape.
    bits : int
        DQ flags accepted as good (see `final_bits`).
    tile_shape : (ty, tx)
        Output tile size; memory use is bounded by one tile (plus halo) and
        the input sub-boxes that map into it.
    context : bool
        Also build the context image: int32 planes ``(ceil(n/32), ny, nx)``,
        bit k of plane p set where input 32p + k contributed.
    pixfrac, kernel : drizzle parameters (archive MVM: 1.0, 'square').
    sink : callable(LayerTile), optional
        Receives every finished tile (row-major order) instead of full arrays
        being kept; the returned arrays are then None.
    out : LayerArrays, optional
        Pre-allocated output arrays (e.g. np.memmap) to write tiles into:
        ``sci`` float32, ``wht`` float32, ``nexp`` int16, ``ctx`` int32 3-D
        (if ``context``).
    pixmap_tol : float
        Tolerance of the pixel maps against astropy (output pixels).
    arena : Arena, optional
        Memory for the output tiles (:mod:`mvmdb.process.arena`): a tile handed to ``sink`` is
        valid until the next tile. Default: a fresh arena. The per-input work arrays (pixel
        maps, sky-subtracted data) live in an arena of each tile, freed before NEXP is counted,
        so they add nothing to the layer's peak memory.

    Returns
    -------
    LayerArrays
        ``sci`` in e-/s (counts/s: inputs in counts are divided by their
        exposure time), NaN where no input contributes; ``wht`` the EXP weight
        (sum of exptime x fractional overlap); ``nexp`` the number of inputs
        with a non-zero weight in the pixel (chips of one exposure never
        overlap, so this is the number of exposures); optional ``ctx``.
    """
    t_start = time.perf_counter()
    ny, nx = int(out_shape[0]), int(out_shape[1])
    tile_shape = (int(tile_shape[0]), int(tile_shape[1]))
    plans = [_plan_input(inp, out_wcs, tile_shape, pixmap_tol) for inp in inputs]
    n_planes = max(1, (len(plans) + CTX_PLANE_BITS - 1) // CTX_PLANE_BITS)
    seconds = {"plan": time.perf_counter() - t_start, "prepare": 0.0, "drizzle": 0.0}

    arena = Arena() if arena is None else arena
    prefilled = sink is None and out is None  # our own arrays start empty: empty tiles need no writing
    if prefilled:
        out = _empty_layer_arrays((ny, nx), n_planes, context)
    n_tiles, max_halo = _drizzle_tiles(plans, (ny, nx), tile_shape, out=out, sink=sink, skip_empty=prefilled,
                                       bits=bits, kernel=kernel, pixfrac=pixfrac, n_planes=n_planes,
                                       context=context, seconds=seconds, arena=arena)

    total = float(sum(p.inp.exptime for p in plans))
    seconds["total"] = time.perf_counter() - t_start
    reports = [p.report for p in plans]
    if out is not None:
        return LayerArrays(out.sci, out.wht, out.nexp, out.ctx if context else None, total, reports,
                           n_tiles, max_halo, seconds)
    return LayerArrays(None, None, None, None, total, reports, n_tiles, max_halo, seconds)


def _drizzle_tiles(plans: Sequence[_InputMap], shape: tuple[int, int], tile_shape: tuple[int, int], *,
                   out: LayerArrays | None, sink, skip_empty: bool, bits: int, kernel: str, pixfrac: float,
                   n_planes: int, context: bool, seconds: dict[str, float], arena: Arena) -> tuple[int, int]:
    """Drizzle the output tile by tile (row-major), handing each finished tile to ``sink`` and/or
    storing it in ``out``; tiles no input reaches are skipped when ``skip_empty`` (``out`` already
    holds empty values). Returns (number of tiles, largest halo in output px)."""
    n_tiles = max_halo = 0
    for bounds in _tiles(shape, tile_shape):
        n_tiles += 1
        jobs, halo = _tile_jobs(plans, bounds)
        max_halo = max(max_halo, halo)
        if not jobs and skip_empty:
            continue
        tile = _empty_tile(bounds, n_planes, context) if not jobs else _drizzle_tile(
            plans, jobs, bounds, halo, bits=bits, kernel=kernel, pixfrac=pixfrac, n_planes=n_planes,
            context=context, arena=arena, seconds=seconds)
        if sink is not None:
            sink(tile)
        if out is not None:
            _store_tile(out, tile, context)
    return n_tiles, max_halo


def _empty_layer_arrays(shape: tuple[int, int], n_planes: int, context: bool) -> LayerArrays:
    """Output arrays of a layer before drizzling: SCI NaN, WHT/NEXP/CTX zero."""
    return LayerArrays(
        sci=np.full(shape, np.nan, dtype=np.float32),
        wht=np.zeros(shape, dtype=np.float32),
        nexp=np.zeros(shape, dtype=np.int16),
        ctx=np.zeros((n_planes, *shape), dtype=np.int32) if context else None,
        total_exptime=0.0,
    )


def _tile_jobs(plans: Sequence[_InputMap], bounds: tuple[int, int, int, int]) -> tuple[list, int]:
    """The inputs of one output tile ``(x0, x1, y0, y1)`` (0-based, end exclusive): ``[(k, input box)]``
    and the halo (output px) the tile's drizzle window needs around it.

    A chip whose four mapped corners fall inside the window is drizzled whole, as it is
    (drizzle clips nothing); a chip cut by the window gets the guard band and the full halo.
    """
    x0, x1, y0, y1 = bounds
    jobs = []
    halo = 0
    for k, p in enumerate(plans):
        if not (p.bbox[0] < x1 and p.bbox[1] > x0 and p.bbox[2] < y1 and p.bbox[3] > y0):
            continue
        box = p.mapper.input_box(bounds)
        if box is None:
            continue
        hold = p.whole_chip_halo(box, bounds)
        if hold is not None and hold <= p.halo:  # nothing clipped: the whole chip, as it is
            jobs.append((k, box))
            halo = max(halo, hold)
        else:
            g = _guard_px(p, box)
            jobs.append((k, (box[0] - g, box[1] + g, box[2] - g, box[3] + g)))
            halo = max(halo, p.halo)
    return jobs, halo


def _empty_tile(bounds: tuple[int, int, int, int], n_planes: int, context: bool) -> LayerTile:
    """A tile no input reaches: SCI NaN, WHT/NEXP/CTX zero."""
    x0, x1, y0, y1 = bounds
    return LayerTile(
        y0, x0,
        sci=np.full((y1 - y0, x1 - x0), np.nan, dtype=np.float32),
        wht=np.zeros((y1 - y0, x1 - x0), dtype=np.float32),
        nexp=np.zeros((y1 - y0, x1 - x0), dtype=np.int16),
        ctx=np.zeros((n_planes, y1 - y0, x1 - x0), dtype=np.int32) if context else None,
    )


def _drizzle_tile(plans: Sequence[_InputMap], jobs: list, bounds: tuple[int, int, int, int], halo: int, *,
                  bits: int, kernel: str, pixfrac: float, n_planes: int, context: bool, arena: Arena,
                  seconds: dict[str, float]) -> LayerTile:
    """Drizzle ``jobs`` (from :func:`_tile_jobs`) into a window of the tile grown by ``halo`` and
    return the tile's own pixels (views of ``arena``). Adds the time spent to
    ``seconds['prepare'/'drizzle']``."""
    x0, x1, y0, y1 = bounds
    # the window extends past the output's own edges too, so inputs crossing them
    # are drizzled as completely as anywhere else
    wx0, wx1 = x0 - halo, x1 + halo
    wy0, wy1 = y0 - halo, y1 + halo
    inner = (slice(y0 - wy0, y1 - wy0), slice(x0 - wx0, x1 - wx0))
    window = (wy1 - wy0, wx1 - wx0)
    # drizzle never writes a pixel without weight: those keep the NaN they start with
    sci = arena.full("sci", window, np.float32, np.nan)
    wht = arena.full("wht", window, np.float32, 0.0)
    # one input needs no context to count inputs: it has weight exactly where its bit would be set
    with_ctx = context or len(jobs) > 1
    local_ctx = arena.full(SCRATCH, ((len(jobs) - 1) // CTX_PLANE_BITS + 1,) + window, np.int32, 0) \
        if with_ctx else None
    work = Arena()  # pixel maps and input data: gone before NEXP is counted
    for idx, (k, box) in enumerate(jobs):
        p = plans[k]
        t0 = time.perf_counter()
        pm = _box_pixmap(p, box, (wx0, wy0), work)
        data, wmap = _read_box(p, box, bits, work)
        t1 = time.perf_counter()
        nmiss, nskip = _add_image(sci, wht, None if local_ctx is None else local_ctx[idx // CTX_PLANE_BITS],
                                  idx % CTX_PLANE_BITS + 1, data, wmap, pm, exptime=float(p.inp.exptime),
                                  ratio=p.ratio, pixfrac=pixfrac, in_units=p.kind, kernel=kernel)
        seconds["drizzle"] += time.perf_counter() - t1
        seconds["prepare"] += t1 - t0
        p.report.tiles += 1
        p.report.nmiss += int(nmiss)
        p.report.nskip += int(nskip)
    del pm, data, wmap, work
    # NEXP is not in the arena: held while the next layer drizzles, it would add to the peak
    if local_ctx is None:
        nexp = np.empty((y1 - y0, x1 - x0), dtype=np.int16)
        np.greater(wht[inner], 0, out=nexp, casting="unsafe")  # no full-size boolean in between
        return LayerTile(y0, x0, sci=sci[inner], wht=wht[inner], nexp=nexp)
    tile_ctx = local_ctx[(slice(None),) + inner]
    return LayerTile(
        y0, x0, sci=sci[inner], wht=wht[inner], nexp=_popcount_planes(tile_ctx),
        ctx=_remap_context(tile_ctx, [k for k, _ in jobs], n_planes) if context else None,
    )


def _add_image(out_sci: np.ndarray, out_wht: np.ndarray, out_ctx: np.ndarray | None, uniqid: int, data: np.ndarray,
               weights: np.ndarray, pixmap: np.ndarray, *, exptime: float, ratio: float, pixfrac: float,
               in_units: str, kernel: str) -> tuple[int, int]:
    """One input through drizzle's C kernel onto the output arrays, as ``Drizzle.add_image`` of
    drizzle 3 passes it (intensity scale ``ratio**2``, kernel scale ``ratio``; counts divided by
    ``exptime``), but onto arrays we own: no fill pass over the output after each input (pixels
    without weight keep their NaN), no check of arrays we just cleared.

    ``out_ctx`` is one int32 context plane (or None: no context); ``uniqid`` the input's bit in it
    plus one. ``data`` is divided in place by ``exptime`` when ``in_units`` is ``'counts'``.
    Returns (nmiss, nskip).
    """
    ny, nx = data.shape
    return cdrizzle.tdriz(
        input=data, weights=weights, pixmap=pixmap, output=out_sci, counts=out_wht, context=out_ctx,
        uniqid=int(uniqid), xmin=0, xmax=nx - 1, ymin=0, ymax=ny - 1, iscale=ratio**2, pscale_ratio=ratio,
        pixfrac=pixfrac, kernel=kernel, in_units=in_units, expscale=exptime if in_units == "counts" else 1.0,
        wtscale=1.0, fillstr="INDEF",
    )


def _store_tile(out: LayerArrays, tile: LayerTile, context: bool) -> None:
    """Copy a finished tile into the layer's output arrays."""
    sl = tile.slices
    out.sci[sl] = tile.sci
    out.wht[sl] = tile.wht
    out.nexp[sl] = tile.nexp
    if context and out.ctx is not None:
        out.ctx[(slice(None),) + sl] = tile.ctx
