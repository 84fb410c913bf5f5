"""Draw the layers of one sky cell: the common box, each layer's product, re-embedding.

Two entry points share one drawing path (:func:`draw_layer`):

* :func:`process_job` -- a job claimed from the queue (:mod:`mvmdb.process.queue`). It
  reads a snapshot of the sky cell from the catalog, draws every layer that has a NEW
  member covered by the job's generation (from *all* its members, NEW and OLD: spec §1.2
  item 4), re-embeds the other layers' products if the common box grew, and publishes
  everything with :func:`mvmdb.process.queue.finish` in one transaction. A heartbeat
  thread keeps the claim alive meanwhile. :func:`process_sky_cell` claims (creating if
  needed) the job of a sky cell and runs it.
* :func:`mvmdb.process.run.process_poller` -- ``mvm process POLLER``. If the catalog knows the poller's sky
  cell and every file the poller lists, the sky cell's job is claimed (created if needed)
  and processed as above. Otherwise (an archive poller naming files never ingested) the
  poller's files are drawn *directly*: headers and footprints are read through the ingest
  reader (:func:`mvmdb.ingest.read_files`), layers are formed from the poller rows as the
  archive does (detector + filter, fine twin of coarse layers; layers without a NEW row are
  skipped), products are written atomically and nothing is recorded in the catalog; every
  result says so in its ``reason``.

The common box (see :mod:`mvmdb.process.embed`): union of the chip footprints of every
member of every layer of the sky cell, clipped to the cell, aligned to the coarse grid,
never shrinking (union with the stored ``sky_cell.box_*``). Fine layers use it as is,
coarse layers its coarse image, so all layers of a sky cell overlay pixel for pixel.

Per drawn layer (spec §4.2, §5.3-§5.6): members of the layer's one file type (FLC if any
member is an FLC, else FLT); SCI/DQ read memory-mapped (:mod:`mvmdb.process.inputs`);
the footprint-mask statistics of the members' chips over the box (from their outlines,
without rasterizing, :meth:`mvmdb.process.keywords.FootprintRaster.statistics`) give the MVM
keywords and ``n_exp = round(MEANNEXP)``, hence the drizzle parameters
(:func:`mvmdb.process.drizzling.drizzle_pars`: ``final_bits``, pixfrac, sky matching for n_exp > 1);
exposures whose SCI arrays are all zero are left out (the archive's rule); drizzle (square
kernel, EXP weights, output in e-/s); product
``<products_dir>/<skycell-name>/<layer>_dr[cz].fits`` written by
:func:`mvmdb.fitsio.product.write_product`. In job mode the product is first written to a
hidden staging name in the target directory (``.<name>.tmp-<token>``, complete and fsynced)
and renamed onto its final name inside the finishing transaction.

Failures: a layer whose inputs are missing or unreadable fails with a reason naming the
file; the other layers of the job are still published, the failed layer's memberships stay
NEW and the job is closed ``failed`` with the reasons. Any other error fails the whole job
(nothing published). A worker killed at any point leaves only hidden temporary files
(removed by the next job of that sky cell) and the job ``running`` until reaped.

Units: SCI e-/s, WHT s (EXP weights), times in seconds, pixel boxes 0-based inclusive.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

from mvmdb import rules
from mvmdb.db.models import Chip, Exposure, Layer, LayerMember, Product, SkyCell as SkyCellRow
from mvmdb.process import embed, failpoints, queue
from mvmdb.process.queue import ClaimedJob, StagedProduct
from mvmdb.sky.grid import SkyCell

log = logging.getLogger(__name__)

STATUSES = ("done", "skipped", "failed")
JSON_KEYS = ("layer", "product", "status", "reason", "members", "keywords")
"""Keys of the per-layer ``--json`` object (a contract)."""

MVM_KEYS = ("NPIXFRAC", "MEANEXPT", "MEDEXPT", "MEANNEXP", "MEDNEXP", "MEANWHT", "MEDWHT", "SCELLID")
"""The MVM primary keywords reported per layer (spec §5.5)."""

TMP_RE = re.compile(r"^\..*\.tmp(-|$|\.)|^\.spool-.*\.raw$")
"""Hidden temporary files a worker may leave in a sky cell's product directory."""

IN_MEMORY_MAX_PIXELS = 64_000_000
"""Layers up to this many output pixels are drizzled in memory, in one tile (~14 bytes/px at the
peak, ~0.9 GB); larger ones tile by tile into spool files in the product directory."""

LARGE_TILE = (4096, 4096)
"""Drizzle tile of layers too large for memory (the full 21954^2 cell is 30 tiles)."""

DIRECT_NOTE = "not in the catalog: drawn directly from the poller's files, no catalog bookkeeping"


# --------------------------------------------------------------------------- results, options


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


@dataclass
class LayerResult:
    """The outcome for one layer; :meth:`to_json` is the ``--json`` object (keys :data:`JSON_KEYS`)."""

    layer: str
    product: str | None
    status: str
    reason: str | None = None
    members: int = 0
    keywords: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "layer": self.layer,
            "product": self.product,
            "status": self.status,
            "reason": self.reason,
            "members": self.members,
            "keywords": self.keywords,
        }


# --------------------------------------------------------------------------- snapshot of a sky cell


@dataclass
class MemberInfo:
    """One exposure of a layer. ``polygons``: its chips' outlines ``(ra_deg, dec_deg)``."""

    path: str
    filetype: str
    exptime: float
    polygons: list[tuple[np.ndarray, np.ndarray]]
    exposure_id: int | None = None
    status: str = "NEW"
    generation: int | None = None


@dataclass
class LayerInfo:
    """A layer and its members; ``product_*`` describe its current product (if any)."""

    name: str
    instrument: str
    detector: str
    filter: str
    scale: str
    members: list[MemberInfo]
    id: int | None = None
    product_path: str | None = None
    product_box: embed.Box | None = None
    product_members: int = 0
    product_keywords: dict[str, Any] = field(default_factory=dict)


@dataclass
class CellSnapshot:
    id: int
    name: str
    cell: SkyCell
    stored_box: embed.Box | None
    layers: list[LayerInfo]


def load_snapshot(conn: sa.Connection, sky_cell_id: int) -> CellSnapshot:
    """Read a sky cell, its layers, members (with chip outlines) and products from the catalog."""
    cell = conn.execute(sa.select(SkyCellRow.__table__).where(SkyCellRow.id == sky_cell_id)).one()
    rows = conn.execute(
        sa.select(
            Layer.id, Layer.name, Layer.instrument, Layer.detector, Layer.filter, Layer.scale,
            LayerMember.exposure_id, LayerMember.status, LayerMember.generation,
            Exposure.path, Exposure.filetype, Exposure.exptime,
        )
        .join(LayerMember, LayerMember.layer_id == Layer.id)
        .join(Exposure, Exposure.id == LayerMember.exposure_id)
        .where(Layer.sky_cell_id == sky_cell_id)
        .order_by(Layer.name, Exposure.filename)
    ).all()
    exp_ids = sorted({r.exposure_id for r in rows})
    polys: dict[int, list] = {}
    if exp_ids:
        for c in conn.execute(
            sa.select(Chip.exposure_id, Chip.ra_deg, Chip.dec_deg)
            .where(Chip.exposure_id.in_(exp_ids))
            .order_by(Chip.exposure_id, Chip.extver)
        ):
            polys.setdefault(c.exposure_id, []).append((np.asarray(c.ra_deg, float), np.asarray(c.dec_deg, float)))
    products = {
        p.layer_id: p
        for p in conn.execute(
            sa.select(Product.layer_id, Product.path, Product.box_xmin, Product.box_xmax, Product.box_ymin,
                      Product.box_ymax, Product.n_members, Product.keywords)
            .join(Layer, Layer.id == Product.layer_id)
            .where(Layer.sky_cell_id == sky_cell_id)
        )
    }
    layers: dict[int, LayerInfo] = {}
    for r in rows:
        lay = layers.get(r.id)
        if lay is None:
            p = products.get(r.id)
            lay = layers[r.id] = LayerInfo(
                name=r.name, instrument=r.instrument, detector=r.detector, filter=r.filter, scale=r.scale,
                members=[], id=r.id, product_path=p.path if p else None,
                product_box=(p.box_xmin, p.box_xmax, p.box_ymin, p.box_ymax) if p else None,
                product_members=p.n_members if p else 0, product_keywords=dict(p.keywords) if p else {},
            )
        lay.members.append(
            MemberInfo(path=r.path, filetype=r.filetype, exptime=float(r.exptime), polygons=polys.get(r.exposure_id, []),
                       exposure_id=r.exposure_id, status=r.status, generation=r.generation)
        )
    stored = None
    if cell.box_xmin is not None:
        stored = (cell.box_xmin, cell.box_xmax, cell.box_ymin, cell.box_ymax)
    return CellSnapshot(cell.id, cell.name, SkyCell.from_name(cell.name), stored, list(layers.values()))


def footprint_box(cell: SkyCell, members: Iterable[MemberInfo]) -> embed.Box | None:
    """Fine box (0-based inclusive) covering the members' chips within the cell, or None."""
    from mvmdb.sky.overlap import trimmed_box

    polygons = [p for m in members for p in m.polygons]
    return trimmed_box(cell, polygons, "fine") if polygons else None


# --------------------------------------------------------------------------- drawing one layer


def _iso(mjd: float | None) -> str | None:
    if mjd is None:
        return None
    t = dt.datetime(1858, 11, 17, tzinfo=dt.timezone.utc) + dt.timedelta(days=float(mjd))
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]


def _chip_pixel_polygons(out_wcs, polygons) -> list[np.ndarray]:
    out = []
    for ra, dec in polygons:
        x, y = out_wcs.world_to_pixel_values(ra, dec)
        out.append(np.column_stack([x, y]))
    return out


def _primary_keywords(layer: LayerInfo, cell: SkyCell, li, product_name: str, mvm: dict, pars,
                      skies: Sequence[float], extra: dict[str, Any]) -> dict[str, Any]:
    exps = li.exposures
    starts = [e.expstart for e in exps if e.expstart is not None]
    ends = [e.expend for e in exps if e.expend is not None]
    props = sorted({e.proposid for e in exps if e.proposid is not None})
    root = product_name[: -len(".fits")]
    kw: dict[str, Any] = {
        "TELESCOP": ("HST", "telescope used to acquire data"),
        "INSTRUME": (layer.instrument, "identifier for instrument used to acquire data"),
        "DETECTOR": (layer.detector, "detector in use"),
        "FILTER": (layer.filter.upper(), "filter(s) of the layer, normalized"),
        "ROOTNAME": (root, "rootname of the product"),
        "FILENAME": (product_name, "name of file"),
        "SKYCELL": (cell.name, "sky cell of this layer"),
        "SCELLID": (cell.scellid, "sky cell ID"),
        "LAYER": (layer.name, "layer: sky cell, instrument, detector, filter, scale"),
        "PSCALE": (0.12 if layer.scale == "coarse" else 0.04, "output pixel scale (arcsec/pixel)"),
        "HAPLEVEL": (4, "classification level of this product"),
        "EQUINOX": (2000.0, "equinox of celestial coord. system"),
        "NUMEXP": (len(exps), "number of input exposures"),
        "TEXPTIME": (float(sum(e.exptime for e in exps)), "total exposure time of the inputs (s)"),
        "EXPSTART": (min(starts) if starts else None, "start of the earliest input (MJD)"),
        "EXPEND": (max(ends) if ends else None, "end of the latest input (MJD)"),
        "DATE-BEG": (_iso(min(starts)) if starts else None, "start of the earliest input (UTC)"),
        "DATE-END": (_iso(max(ends)) if ends else None, "end of the latest input (UTC)"),
        "PROPOSID": ("; ".join(str(p) for p in props), "proposals of the inputs"),
        "D001KERN": ("square", "drizzle kernel"),
        "D001PIXF": (float(pars.pixfrac), "drizzle pixfrac"),
        "D001BITS": (int(pars.bits), "DQ bits accepted as good (final_bits)"),
        "SKYMETH": ("match" if pars.skysub else "none", "sky matching method"),
    }
    kw.update({k: v for k, v in mvm.items()})
    kw.update(extra)
    return {k: (_jsonable(v[0]), fit_comment(k, _jsonable(v[0]), v[1])) for k, v in kw.items() if v[0] is not None}


def fit_comment(key: str, value: Any, comment: str) -> str:
    """``comment`` shortened so that the card fits in 80 characters (as a FITS writer would cut it).

    The archive's comments (spec §5.5) are kept whole whenever they fit; astropy would
    otherwise truncate them itself, with a warning.
    """
    from astropy.io import fits

    if value is None or isinstance(value, float) and not np.isfinite(value):
        return comment
    used = len(fits.Card(key, value).image.rstrip())
    room = 80 - used - 3
    return comment if len(comment) <= room else comment[: max(0, room)]


def _jsonable(v: Any) -> Any:
    if isinstance(v, (np.floating, float)):
        return float(v) if np.isfinite(v) else None
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v


def _json_keywords(primary: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k in MVM_KEYS:
        v = primary.get(k)
        if v is None:
            continue
        v = v[0] if isinstance(v, tuple) else v
        out[k] = _jsonable(v)
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
    from mvmdb.fitsio.product import LayerSpool, write_product
    from mvmdb.process.drizzling import drizzle_layer, drizzle_pars
    from mvmdb.process.inputs import open_inputs
    from mvmdb.process import product_headers
    from mvmdb.process.keywords import FootprintRaster, mvm_keywords
    from mvmdb.process.skymatch import skymatch
    from mvmdb.sky.overlap import box_wcs

    filetype, members = select_members(layer)
    product_name = rules.product_filename(layer.name, filetype)
    out_box = embed.at_scale(box, layer.scale)
    out_wcs = box_wcs(cell, out_box, layer.scale)
    shape = embed.shape(out_box)
    full = (cell.naxis(layer.scale),) * 2

    clock = _Clock()
    # footprint-mask statistics of the layer's own chips (spec §5.5), from their outlines in box pixels
    polys, times = [], []
    for m in members:
        for p in _chip_pixel_polygons(out_wcs, m.polygons):
            polys.append(p)
            times.append(m.exptime)
    footprints = FootprintRaster(polys, times, shape).statistics()  # from outline runs: no mask arrays
    if footprints.n_good == 0:
        return None
    pars = drizzle_pars(layer.instrument, layer.detector, max(1, int(round(footprints.mean_nexp))), layer.filter)
    bits = pars.bits
    in_memory = shape[0] * shape[1] <= IN_MEMORY_MAX_PIXELS
    clock.lap("masks")

    target_dir.mkdir(parents=True, exist_ok=True)
    path = target_dir / (f".{product_name}.tmp-{uuid.uuid4().hex[:12]}" if staging else product_name)
    with open_inputs([(m.path, m.exposure_id) for m in members]) as li:
        if not li.drop_all_zero():  # the archive's "SCI data all zeros" exclusion
            return None
        chips = li.chips
        clock.lap("open")
        if pars.skysub and len(li.exposures) > 1:
            sky = skymatch(chips, bits=bits, out_wcs=out_wcs, method=options.sky_method,
                           subsample=sky_subsample(chips))
            for chip, s in zip(chips, sky.sky):
                chip.sky = s
        clock.lap("sky")
        n_ctx = max(1, (len(chips) + 31) // 32) if options.context else 0
        first_tile = [True]

        def hit_mid(tile) -> None:
            if first_tile[0]:
                first_tile[0] = False
                failpoints.hit("mid_drizzle")

        tile_shape = options.tile_shape or (shape if in_memory else LARGE_TILE)
        if in_memory:
            spool = _MemoryStore(shape, n_ctx)
        else:
            spool = LayerSpool(shape, directory=target_dir, n_ctx_planes=n_ctx)

        def sink(tile) -> None:
            spool.sink(tile)
            hit_mid(tile)

        try:
            drizzle_layer(chips, out_wcs, shape, bits=bits, tile_shape=tile_shape, context=options.context, sink=sink,
                          pixfrac=pars.pixfrac)
            sci, wht, nexp, ctx = spool.sci, spool.wht, spool.nexp, spool.ctx
            clock.lap("drizzle")
            mvm = mvm_keywords(footprints, wht, full)
            mvm["SCELLID"] = (cell.scellid, "sky cell ID")
            primary = _primary_keywords(layer, cell, li, product_name, mvm, pars, [c.sky for c in chips],
                                        dict(extra_keywords or {}))
            heads = product_headers.layer_headers(li, layer.instrument, product_name, primary, out_wcs, shape,
                                                  polys, pixfrac=pars.pixfrac, context=options.context)
            clock.lap("keywords")
            written = write_product(
                path,
                primary=heads.primary,
                sci=sci,
                wht=wht,
                nexp=nexp,
                ctx=ctx,
                wcs_header=heads.wcs,
                hdrtab=heads.hdrtab,
                extra_headers={"SCI": heads.sci, "WHT": {"BUNIT": ("SECONDS", "")}},
            )
            clock.lap("write")
        finally:
            spool.close()
    log.info("%s: %d inputs, %dx%d px, %s", product_name, len(chips), shape[1], shape[0], clock)
    failpoints.hit("after_product_write")
    return DrawnLayer(
        path=written.path, checksum=written.sha256, size_bytes=written.size, n_members=len(members),
        keywords=_json_keywords(primary), primary={k: _jsonable(v[0]) for k, v in primary.items()}, box=out_box,
        product_name=product_name, member_ids=[m.exposure_id for m in layer.members if m.exposure_id is not None],
        seconds=dict(clock.laps),
    )


# --------------------------------------------------------------------------- re-embedding


def reembed_product(src: Path, old_box: embed.Box, new_box: embed.Box, cell: SkyCell, scale: str,
                    dest: Path) -> tuple[str, int]:
    """Copy product ``src`` (on ``old_box``) to ``dest`` on ``new_box`` without resampling.

    SCI is padded with NaN, WHT/NEXP/CTX with 0; the PRIMARY header, HDRTAB and every other
    keyword are kept, only the WCS (CRPIX) and NAXIS change. Returns (sha256, size).
    """
    from astropy.io import fits

    from mvmdb.fitsio.product import write_product
    from mvmdb.process.product_headers import wcs_cards
    from mvmdb.sky.overlap import box_wcs

    new_wcs = box_wcs(cell, new_box, scale)
    with fits.open(src, memmap=True) as hdul:
        primary = hdul[0].header.copy()
        sci_h = hdul["SCI"].header
        sci = embed.embed(np.asarray(hdul["SCI"].data), old_box, new_box, fill=np.nan)
        wht = embed.embed(np.asarray(hdul["WHT"].data), old_box, new_box, fill=0)
        nexp = embed.embed(np.asarray(hdul["NEXP"].data), old_box, new_box, fill=0)
        ctx = None
        if "CTX" in hdul and hdul["CTX"].data is not None:
            c = np.asarray(hdul["CTX"].data)
            ctx = embed.embed(c if c.ndim == 3 else c[None], old_box, new_box, fill=0)
        rows = []
        if "HDRTAB" in hdul and hdul["HDRTAB"].data is not None:
            tab = hdul["HDRTAB"].data
            for rec in tab:
                rows.append({n: _py(rec[n]) for n in tab.names})
        wcs_header = wcs_cards(new_wcs)
        # the SCI header's own cards (photometry, S_REGION: the data do not move on the sky) are kept
        sci_extra = fits.Header([c for c in sci_h.cards if c.keyword not in wcs_header
                                 and not c.keyword.startswith(("PC1_", "PC2_", "CDELT", "CUNIT"))])
        written = write_product(
            dest, primary=primary, sci=sci, wht=wht, nexp=nexp, ctx=ctx, wcs_header=wcs_header, hdrtab=rows,
            extra_headers={"SCI": sci_extra, "WHT": {"BUNIT": ("SECONDS", "")}},
        )
    return written.sha256, written.size


def _py(v):
    if isinstance(v, (bytes, np.bytes_)):
        return v.decode("ascii", "replace").strip()
    if isinstance(v, np.str_):
        return str(v).strip()
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v


# --------------------------------------------------------------------------- job mode


def _clean_temporaries(directory: Path) -> int:
    """Remove hidden temporary files left by killed workers (safe: one job per sky cell runs)."""
    n = 0
    if not directory.is_dir():
        return 0
    for p in directory.iterdir():
        if TMP_RE.match(p.name) and p.is_file():
            try:
                p.unlink()
                n += 1
            except FileNotFoundError:
                pass
    if n:
        log.info("removed %d stale temporary files in %s", n, directory)
    return n


def plan_layers(snap: CellSnapshot, generation: int) -> tuple[list[LayerInfo], list[LayerInfo]]:
    """Layers to draw, and the layer objects restricted to the members the job covers.

    A layer is drawn when it has a NEW member with ``generation <= job generation``, or has
    members but no product (or its product file is missing). Drawn from all members except
    NEW ones newer than the job (they are left for the next job).
    """
    draw = []
    for lay in snap.layers:
        covered = [m for m in lay.members if m.status == "OLD" or (m.generation or 0) <= generation]
        if not covered:
            continue
        has_new = any(m.status == "NEW" and (m.generation or 0) <= generation for m in covered)
        missing = lay.product_path is None or not os.path.exists(lay.product_path)
        if has_new or missing:
            draw.append(LayerInfo(lay.name, lay.instrument, lay.detector, lay.filter, lay.scale, covered, lay.id,
                                  lay.product_path, lay.product_box, lay.product_members, lay.product_keywords))
    return draw, snap.layers


def process_job(
    engine: sa.Engine,
    job: ClaimedJob,
    products_dir: Path,
    *,
    options: DrawOptions = DrawOptions(),
    heartbeat_interval: float = queue.DEFAULT_HEARTBEAT,
) -> list[LayerResult]:
    """Draw a claimed job's sky cell and publish the products (see the module docstring).

    Returns one :class:`LayerResult` per layer of the sky cell: drawn or re-embedded
    (``done``), failed, or ``skipped`` (nothing to draw; an up-to-date layer keeps its product).
    Never raises for layer or job failures (the job is closed ``failed`` with the reason);
    on KeyboardInterrupt, SystemExit or a worker stop request (any non-``Exception``) the job
    is given back to the queue and the exception re-raised.
    """
    from mvmdb.process.inputs import InputError

    products_dir = Path(products_dir)
    target = products_dir / job.sky_cell_name
    staged: list[StagedProduct] = []
    results: list[LayerResult] = []
    with queue.Heartbeat(engine, job, heartbeat_interval) as hb:
        try:
            with engine.connect() as conn:
                snap = load_snapshot(conn, job.sky_cell_id)
            target.mkdir(parents=True, exist_ok=True)
            _clean_temporaries(target)
            draw, all_layers = plan_layers(snap, job.generation)
            box = embed.common_box(snap.stored_box, footprint_box(snap.cell, (m for lay in all_layers for m in lay.members)))
            failures: dict[str, str] = {}
            consumed: list[tuple[int, list[int]]] = []
            drawn_ids = set()
            for lay in draw:
                if hb.lost.is_set():
                    raise queue.JobLost(f"job {job.id} was reaped while drawing")
                try:
                    d = None if box is None else draw_layer(
                        lay, snap.cell, box, target, staging=True, options=options,
                        extra_keywords={"MVMGEN": (job.generation, "catalog generation drawn (job)")},
                    )
                except InputError as exc:
                    failures[lay.name] = str(exc)
                    results.append(LayerResult(lay.name, None, "failed", str(exc), len(lay.members)))
                    log.warning("layer %s failed: %s", lay.name, exc)
                    continue
                drawn_ids.add(lay.id)
                if d is None:
                    results.append(LayerResult(lay.name, None, "skipped", "no member chip falls on the sky cell",
                                               len(lay.members)))
                    consumed.append((lay.id, [m.exposure_id for m in lay.members]))
                    continue
                final = target / d.product_name
                staged.append(StagedProduct(
                    layer_id=lay.id, tmp_path=d.path, final_path=final, checksum=d.checksum,
                    size_bytes=d.size_bytes, n_members=d.n_members, keywords=d.primary, box=d.box,
                    member_ids=d.member_ids,
                    # the previous product under another name in the same directory (drz -> drc)
                    replaces=Path(lay.product_path) if lay.product_path and Path(lay.product_path).parent == target
                    else None,
                ))
                results.append(LayerResult(lay.name, str(final), "done", None, d.n_members, d.keywords))
            # re-embed products of the other layers when the common box grew
            for lay in all_layers:
                if lay.id in drawn_ids or lay.product_path is None or box is None:
                    continue
                want = embed.at_scale(box, lay.scale)
                if lay.product_box == want:
                    continue
                if hb.lost.is_set():
                    raise queue.JobLost(f"job {job.id} was reaped while re-embedding")
                src = Path(lay.product_path)
                if not src.is_file():
                    continue  # product file gone: the layer is redrawn by the next job (plan_layers)
                tmp = target / f".{src.name}.tmp-{uuid.uuid4().hex[:12]}"
                checksum, size = reembed_product(src, lay.product_box, want, snap.cell, lay.scale, tmp)
                staged.append(StagedProduct(
                    layer_id=lay.id, tmp_path=tmp, final_path=src, checksum=checksum, size_bytes=size,
                    n_members=lay.product_members, keywords=lay.product_keywords, box=want, member_ids=None,
                ))
                note = "re-embedded onto the grown common box"
                failed = next((r for r in results if r.layer == lay.name and r.status == "failed"), None)
                if failed is not None:  # one result per layer: the failure, with what happened to its product
                    failed.reason += f"; its previous product {src.name} was {note}"
                    continue
                results.append(LayerResult(lay.name, str(src), "done", note, lay.product_members,
                                           _json_keywords(lay.product_keywords)))
            reported = {r.layer for r in results}
            for lay in all_layers:  # one result per layer of the sky cell
                if lay.name not in reported:
                    results.append(LayerResult(lay.name, lay.product_path, "skipped", "up to date: no NEW member",
                                               lay.product_members, _json_keywords(lay.product_keywords)))
            hb.stop()  # finish() locks the job row and checks ownership itself
            if hb.lost.is_set():
                raise queue.JobLost(f"job {job.id} was reaped before finishing")
            queue.finish(engine, job, staged, box=box, failures=failures, consumed=consumed)
        except queue.JobLost as exc:
            queue.discard(staged)
            log.warning("%s", exc)
            return [LayerResult(r.layer, None, "failed", f"job lost: {exc}", r.members) for r in results] or [
                LayerResult(job.sky_cell_name, None, "failed", f"job lost: {exc}", 0)]
        except BaseException as exc:  # noqa: BLE001 - every exit path must leave the queue consistent
            queue.discard(staged)
            if isinstance(exc, Exception):
                reason = f"{type(exc).__name__}: {exc}"
                log.exception("job %d (%s) failed", job.id, job.sky_cell_name)
                queue.fail(engine, job, reason)
                return [LayerResult(r.layer, None, "failed", reason, r.members) for r in results] or [
                    LayerResult(job.sky_cell_name, None, "failed", reason, 0)]
            queue.release(engine, job, f"released by {job.worker} on {type(exc).__name__}")
            raise
    return results


def process_sky_cell(
    engine: sa.Engine,
    sky_cell: int | ClaimedJob,
    products_dir: Path,
    *,
    worker: str | None = None,
    options: DrawOptions = DrawOptions(),
    heartbeat_interval: float = queue.DEFAULT_HEARTBEAT,
) -> list[LayerResult]:
    """Process one sky cell: a claimed job, or a sky cell id whose job is claimed (created if needed).

    Returns ``[]`` when the sky cell is being processed elsewhere (its job cannot be claimed).
    """
    if isinstance(sky_cell, ClaimedJob):
        job = sky_cell
    else:
        queue.enqueue(engine, int(sky_cell))
        job = queue.claim(engine, worker or queue.worker_identity(), sky_cell_id=int(sky_cell))
        if job is None:
            return []
    return process_job(engine, job, Path(products_dir), options=options, heartbeat_interval=heartbeat_interval)


# --------------------------------------------------------------------------- poller mode


def catalog_match(engine: sa.Engine, rows) -> tuple[int | None, list[str]]:
    """(sky cell id if catalogued, paths of poller rows the catalog does not know)."""
    name = rows[0].skycell
    paths = [os.path.abspath(r.path) for r in rows]
    with engine.connect() as conn:
        sid = conn.execute(sa.select(SkyCellRow.id).where(SkyCellRow.name == name)).scalar()
        known_paths = set(conn.execute(sa.select(Exposure.path).where(Exposure.path.in_(paths))).scalars())
        names = [os.path.basename(p) for p in paths if p not in known_paths]
        known_names = set(conn.execute(sa.select(Exposure.filename).where(Exposure.filename.in_(names))).scalars()) if names else set()
    unknown = [p for p in paths if p not in known_paths and os.path.basename(p) not in known_names]
    return sid, unknown


def busy_results(engine: sa.Engine, sky_cell_id: int) -> list[LayerResult]:
    with engine.connect() as conn:
        running = conn.execute(
            sa.text("SELECT id, worker FROM job WHERE sky_cell_id = :s AND state = 'running' LIMIT 1"), {"s": sky_cell_id}
        ).first()
        layers = conn.execute(
            sa.select(Layer.name, sa.func.count()).join(LayerMember, LayerMember.layer_id == Layer.id)
            .where(Layer.sky_cell_id == sky_cell_id).group_by(Layer.name).order_by(Layer.name)
        ).all()
    who = f"job {running.id} on worker {running.worker}" if running else "another worker"
    return [LayerResult(n, None, "skipped", f"sky cell is being processed by {who}", c) for n, c in layers]


def process_poller_direct(rows, products_dir: Path, *, options: DrawOptions = DrawOptions(),
                          note: str = DIRECT_NOTE) -> list[LayerResult]:
    """Draw a poller's files without the catalog (see the module docstring).

    Exposures are left out of their layers by the same rules as at ingest, including the
    ``MVM_INCLUDE_SMALL`` / ``MVM_ONLY_CTE`` switches read from the environment.
    """
    from mvmdb.ingest import read_files

    skycell = SkyCell.from_name(rows[0].skycell)
    paths = [os.path.abspath(r.path) for r in rows]
    include_small = rules.switch_from_env(os.environ, "MVM_INCLUDE_SMALL", True)
    only_cte = rules.switch_from_env(os.environ, "MVM_ONLY_CTE", False)
    reads = read_files(paths, healpix=False)
    layers: dict[tuple[str, str, str], dict] = {}
    bad: list[tuple[Any, str]] = []
    all_members: list[MemberInfo] = []
    for row, res in zip(rows, reads):
        if res.error is not None or res.header is None:
            bad.append((row, f"input {res.path}: {res.error}"))
            continue
        h = res.header
        m = MemberInfo(path=res.path, filetype=res.filetype, exptime=h.exptime,
                       polygons=[(np.asarray(c.ra, float), np.asarray(c.dec, float)) for c in res.chips],
                       status=row.status)
        all_members.append(m)
        key = (h.instrument, h.detector, h.filter)
        entry = layers.setdefault(key, {"members": [], "new": False, "reason": None})
        entry["members"].append(m)
        entry["new"] |= row.status == "NEW"
        reason = rules.exclusion_reason(h.keywords, include_small=include_small, only_cte=only_cte,
                                        filetype=res.filetype)
        if reason:
            entry["members"].pop()
            entry.setdefault("excluded", []).append(f"{os.path.basename(res.path)}: {reason}")
    box = embed.common_box(None, footprint_box(skycell, all_members))
    results: list[LayerResult] = []
    target = Path(products_dir) / skycell.name
    bad_by_key: dict = {}
    for row, why in bad:
        inst = rules.instrument_from_rootname(os.path.basename(row.path)) or "?"
        bad_by_key.setdefault((inst, row.detector.upper(), row.filters.lower()), []).append(why)
    for key, why in bad_by_key.items():
        if key not in layers:
            name = f"hst_{skycell.name}_{key[0].lower()}_{key[1].lower()}_{key[2]}"
            results.append(LayerResult(name, None, "failed", f"{why[0]}; {note}", len(why)))
    for (inst, det, filt), entry in sorted(layers.items()):
        for scale in rules.layer_scales(inst, det):
            name = rules.layer_name(skycell.name, inst, det, filt, scale)
            lay = LayerInfo(name, inst, det, filt, scale, entry["members"])
            if (inst, det, filt) in bad_by_key:
                results.append(LayerResult(name, None, "failed", f"{bad_by_key[(inst, det, filt)][0]}; {note}",
                                           len(entry["members"])))
                continue
            if not entry["new"]:
                results.append(LayerResult(name, None, "skipped", f"no NEW row in the poller; {note}",
                                           len(entry["members"])))
                continue
            if not entry["members"] or box is None:
                why = "all members excluded: " + "; ".join(entry.get("excluded", [])) if not entry["members"] \
                    else "no member chip falls on the sky cell"
                results.append(LayerResult(name, None, "skipped", f"{why}; {note}", 0))
                continue
            try:
                d = draw_layer(lay, skycell, box, target, staging=False, options=options)
            except Exception as exc:  # InputError and anything file-specific: this layer only
                results.append(LayerResult(name, None, "failed", f"{exc}; {note}", len(entry["members"])))
                continue
            if d is None:
                results.append(LayerResult(name, None, "skipped", f"no member chip falls on the sky cell; {note}",
                                           len(entry["members"])))
            else:
                results.append(LayerResult(name, str(d.path), "done", note, d.n_members, d.keywords))
    return results
