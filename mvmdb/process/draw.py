"""Draw one layer: footprint statistics, sky matching, drizzle, product file (spec §4.2, §5.3-§5.6).

Members of the layer's one file type (FLC if any member is an FLC, else FLT); SCI/DQ read
memory-mapped (:mod:`mvmdb.process.inputs`); the footprint-mask statistics of the members'
chips over the box give the MVM keywords and ``n_exp = round(MEANNEXP)``, hence the drizzle
parameters (:func:`mvmdb.process.drizzling.drizzle_pars`: ``final_bits``, pixfrac, sky matching
for n_exp > 1); exposures whose SCI arrays are all zero are left out (the archive's rule);
drizzle (square kernel, EXP weights, output in e-/s); headers as the archive writes them
(:mod:`mvmdb.process.product_headers`); product ``<layer>_dr[cz].fits`` written by
:func:`mvmdb.fitsio.product.write_product`, atomically.

Units: SCI e-/s, WHT s (EXP weights), pixel boxes 0-based inclusive.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mvmdb import rules
from mvmdb.db.snapshot import LayerInfo, MemberInfo
from mvmdb.process import embed, failpoints
from mvmdb.process.headers import json_keywords, jsonable, primary_keywords
from mvmdb.process.keywords import mvm_keywords
from mvmdb.process.product_headers import layer_headers
from mvmdb.sky.grid import SkyCell

__all__ = ["DrawOptions", "DrawnLayer", "draw_layer", "footprint_box", "select_members", "sky_subsample"]

log = logging.getLogger(__name__)

IN_MEMORY_MAX_PIXELS = 64_000_000
"""Layers up to this many output pixels are drizzled in memory, in one tile (~14 bytes/px at the
peak, ~0.9 GB); larger ones tile by tile into spool files in the product directory."""

LARGE_TILE = (4096, 4096)
"""Drizzle tile of layers too large for memory (the full 21954^2 cell is 30 tiles)."""


@dataclass(frozen=True)
class DrawOptions:
    """Drawing knobs (picklable).

    ``tile_shape``: output tile (ny, nx) px of the drizzle; ``None`` (default) draws a layer
    of up to :data:`IN_MEMORY_MAX_PIXELS` in one tile (fastest: chips inside the box are
    drizzled whole, no halo, as a bare ``Drizzle.add_image`` would) and bigger layers in
    :data:`LARGE_TILE` tiles spooled to disk (bounded memory).
    ``context``: keep a CTX image. ``sky_method``: the sky matching method.
    """

    tile_shape: tuple[int, int] | None = None
    context: bool = False
    sky_method: str = "match"


def footprint_box(cell: SkyCell, members: Iterable[MemberInfo]) -> embed.Box | None:
    """Fine box (0-based inclusive) covering the members' chips within the cell, or None."""
    from mvmdb.sky.overlap import trimmed_box

    polygons = [p for m in members for p in m.polygons]
    return trimmed_box(cell, polygons, "fine") if polygons else None


def _chip_pixel_polygons(out_wcs, polygons) -> list[np.ndarray]:
    out = []
    for ra, dec in polygons:
        x, y = out_wcs.world_to_pixel_values(ra, dec)
        out.append(np.column_stack([x, y]))
    return out


class _Clock:
    """Wall-clock laps of the stages of :func:`draw_layer` (seconds), for logs and benchmarks."""

    def __init__(self) -> None:
        self.t0 = self.last = time.perf_counter()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = self.laps.get(name, 0.0) + now - self.last
        self.last = now

    def __str__(self) -> str:
        parts = ", ".join(f"{k} {v:.2f}s" for k, v in self.laps.items())
        return f"{parts}; total {time.perf_counter() - self.t0:.2f}s"


SKY_SAMPLES_PER_CHIP = 100_000
"""Sky matching samples about this many pixels per chip (every k-th pixel along each axis)."""


def sky_subsample(chips) -> int:
    """Sampling step of sky matching: every k-th input pixel along each axis, k >= 4, so that a
    chip gives about :data:`SKY_SAMPLES_PER_CHIP` samples (ACS/WFC: k = 9; WFC3/IR: k = 4)."""
    largest = max((c.shape[0] * c.shape[1] for c in chips), default=0)
    return max(4, int(round((largest / SKY_SAMPLES_PER_CHIP) ** 0.5)))


class _MemoryStore:
    """In-memory SCI/WHT/NEXP(/CTX) arrays filled tile by tile (the small-layer twin of ``LayerSpool``)."""

    def __init__(self, shape: tuple[int, int], n_ctx_planes: int = 0):
        self.shape = tuple(shape)
        self.n_ctx = n_ctx_planes
        self.sci = self.wht = self.nexp = self.ctx = None

    def _allocate(self) -> None:
        self.sci = np.full(self.shape, np.nan, dtype=np.float32)
        self.wht = np.zeros(self.shape, dtype=np.float32)
        self.nexp = np.zeros(self.shape, dtype=np.int16)
        self.ctx = np.zeros((self.n_ctx,) + self.shape, dtype=np.int32) if self.n_ctx else None

    def sink(self, tile) -> None:
        if self.sci is None and (tile.y0, tile.x0) == (0, 0) and tile.sci.shape == self.shape:
            # one tile covering the layer: keep its arrays, no copy
            self.sci, self.wht, self.nexp = tile.sci, tile.wht, tile.nexp
            self.ctx = tile.ctx if self.n_ctx else None
            return
        if self.sci is None:
            self._allocate()
        sl = tile.slices
        self.sci[sl] = tile.sci
        self.wht[sl] = tile.wht
        self.nexp[sl] = tile.nexp
        if self.ctx is not None and tile.ctx is not None:
            self.ctx[(slice(None),) + sl] = tile.ctx

    def close(self) -> None:
        self.sci = self.wht = self.nexp = self.ctx = None


@dataclass
class DrawnLayer:
    """A product written by :func:`draw_layer` (at ``path``: staging or final)."""

    path: Path
    checksum: str
    size_bytes: int
    n_members: int
    keywords: dict[str, Any]
    primary: dict[str, Any]
    box: embed.Box
    product_name: str
    member_ids: list[int]
    seconds: dict[str, float] = field(default_factory=dict)


def select_members(layer: LayerInfo) -> tuple[str, list[MemberInfo]]:
    """The layer's file type (spec §4.2: FLC if any member is an FLC) and its members of that type."""
    ft = rules.layer_filetype(m.filetype for m in layer.members)
    return ft, [m for m in layer.members if m.filetype == ft]


def draw_layer(
    layer: LayerInfo,
    cell: SkyCell,
    box: embed.Box,
    target_dir: Path,
    *,
    staging: bool,
    options: DrawOptions = DrawOptions(),
    extra_keywords: dict[str, Any] | None = None,
) -> DrawnLayer | None:
    """Drizzle ``layer`` onto the sky cell's common (fine, aligned) ``box``; write its product.

    With ``staging`` the product goes to a hidden temporary name in ``target_dir`` (the
    caller renames it); otherwise straight to its final name (atomically). Returns ``None``
    when no member chip falls on the box (nothing to draw). Raises
    :class:`mvmdb.process.inputs.InputError` for a missing or unreadable member file.
    """
    from mvmdb.process.drizzling import drizzle_pars
    from mvmdb.process.inputs import open_inputs
    from mvmdb.sky.overlap import box_wcs

    filetype, members = select_members(layer)
    product_name = rules.product_filename(layer.name, filetype)
    out_box = embed.at_scale(box, layer.scale)
    out_wcs = box_wcs(cell, out_box, layer.scale)
    shape = embed.shape(out_box)

    clock = _Clock()
    footprints, polys = _footprint_statistics(members, out_wcs, shape)
    if footprints.n_good == 0:
        return None
    pars = drizzle_pars(layer.instrument, layer.detector, max(1, int(round(footprints.mean_nexp))), layer.filter)
    clock.lap("masks")

    target_dir.mkdir(parents=True, exist_ok=True)
    path = target_dir / (f".{product_name}.tmp-{uuid.uuid4().hex[:12]}" if staging else product_name)
    with open_inputs([(m.path, m.exposure_id) for m in members]) as li:
        if not li.drop_all_zero():  # the archive's "SCI data all zeros" exclusion
            return None
        clock.lap("open")
        if pars.skysub and len(li.exposures) > 1:
            _match_sky(li.chips, pars.bits, out_wcs, options)
        clock.lap("sky")
        arrays = _drizzle(li.chips, out_wcs, shape, pars, options, target_dir)
        try:
            clock.lap("drizzle")
            mvm = mvm_keywords(footprints, arrays.wht, (cell.naxis(layer.scale),) * 2, scratch=_scratch_for(arrays.wht))
            mvm["SCELLID"] = (cell.scellid, "sky cell ID")
            primary = primary_keywords(layer, cell, li, product_name, mvm, pars, [c.sky for c in li.chips],
                                       dict(extra_keywords or {}))
            heads = layer_headers(li, layer.instrument, product_name, primary, out_wcs, shape, polys,
                                  pixfrac=pars.pixfrac, context=options.context)
            clock.lap("keywords")
            written = _write(path, heads, arrays)
            clock.lap("write")
        finally:
            arrays.close()
        n_chips = len(li.chips)
    log.info("%s: %d inputs, %dx%d px, %s", product_name, n_chips, shape[1], shape[0], clock)
    failpoints.hit("after_product_write")
    return DrawnLayer(
        path=written.path, checksum=written.sha256, size_bytes=written.size, n_members=len(members),
        keywords=json_keywords(primary), primary={k: jsonable(v[0]) for k, v in primary.items()}, box=out_box,
        product_name=product_name, member_ids=[m.exposure_id for m in layer.members if m.exposure_id is not None],
        seconds=dict(clock.laps),
    )


def _footprint_statistics(members: Sequence[MemberInfo], out_wcs, shape: tuple[int, int]):
    """Footprint-mask statistics of the members' chips over the box (spec §5.5), from their outlines in
    box pixels: no mask arrays (:meth:`mvmdb.process.keywords.FootprintRaster.statistics`).
    Returns ``(statistics, outlines)``, the outlines in 0-based box pixels (for S_REGION)."""
    from mvmdb.process.keywords import FootprintRaster

    polys, times = [], []
    for m in members:
        for p in _chip_pixel_polygons(out_wcs, m.polygons):
            polys.append(p)
            times.append(m.exptime)
    return FootprintRaster(polys, times, shape).statistics(), polys


def _match_sky(chips, bits: int, out_wcs, options: DrawOptions) -> None:
    """Sky matching: set each chip's ``sky`` (input units)."""
    from mvmdb.process.skymatch import skymatch

    sky = skymatch(chips, bits=bits, out_wcs=out_wcs, method=options.sky_method, subsample=sky_subsample(chips))
    for chip, s in zip(chips, sky.sky):
        chip.sky = s


def _drizzle(chips, out_wcs, shape: tuple[int, int], pars, options: DrawOptions, spool_dir: Path):
    """Drizzle the chips onto the box: in memory up to :data:`IN_MEMORY_MAX_PIXELS`, else tile by tile
    into spool files in ``spool_dir``. Returns the store (``sci``, ``wht``, ``nexp``, ``ctx``; ``close()``).

    The work arrays live in this process's arena (:func:`mvmdb.process.arena.process_arena`): a
    layer drawn in one tile keeps them as its arrays, valid until the next layer is drawn."""
    from mvmdb.fitsio.product import LayerSpool
    from mvmdb.process.arena import process_arena
    from mvmdb.process.drizzling import drizzle_layer

    in_memory = shape[0] * shape[1] <= IN_MEMORY_MAX_PIXELS
    n_ctx = max(1, (len(chips) + 31) // 32) if options.context else 0
    tile_shape = options.tile_shape or (shape if in_memory else LARGE_TILE)
    spool = _MemoryStore(shape, n_ctx) if in_memory else LayerSpool(shape, directory=spool_dir, n_ctx_planes=n_ctx)
    first_tile = [True]

    def sink(tile) -> None:
        spool.sink(tile)
        if first_tile[0]:
            first_tile[0] = False
            failpoints.hit("mid_drizzle")

    try:
        drizzle_layer(chips, out_wcs, shape, bits=pars.bits, tile_shape=tile_shape, context=options.context,
                      sink=sink, pixfrac=pars.pixfrac, arena=process_arena())
    except BaseException:
        spool.close()
        raise
    return spool


def _scratch_for(wht) -> np.ndarray | None:
    """Work memory for the weight keywords of an in-memory layer: the arena's scratch, free again
    once the layer is drizzled (:data:`mvmdb.process.arena.SCRATCH`)."""
    from mvmdb.process.arena import SCRATCH, process_arena

    return process_arena().take(SCRATCH, wht.size, wht.dtype) if isinstance(wht, np.ndarray) else None


def _write(path: Path, heads, arrays):
    """Write the product file (:func:`mvmdb.fitsio.product.write_product`) with the layer's headers
    (:class:`mvmdb.process.product_headers.LayerHeaders`)."""
    from mvmdb.fitsio.product import write_product

    return write_product(
        path, primary=heads.primary, sci=arrays.sci, wht=arrays.wht, nexp=arrays.nexp, ctx=arrays.ctx,
        wcs_header=heads.wcs, hdrtab=heads.hdrtab,
        extra_headers={"SCI": heads.sci, "WHT": {"BUNIT": ("SECONDS", "")}},
    )
