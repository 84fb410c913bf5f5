"""Quick-look PNGs of products: asinh-stretched layers and colour composites.

Pure array work (numpy) plus PNG writing through matplotlib's Agg image writer; the
caller hands in arrays or product paths. Pixels with no data (NaN in SCI) are shown
black in single layers and transparent-black in composites.

The stretch: ``asinh((v - lo) / soft) / asinh((hi - lo) / soft)`` clipped to [0, 1], with
``lo``/``hi`` robust percentiles of the finite pixels and ``soft`` a fraction of the
range, which keeps faint sky visible while bright stars do not saturate at once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mvmdb import rules
from mvmdb.fitsio.stored_product import product_primary, sci_array

#: Largest side (pixels) of a written preview; bigger layers are block-averaged down.
MAX_PREVIEW_SIDE = 2048


@dataclass(frozen=True)
class Stretch:
    """Percentile-based asinh stretch parameters (percentiles in 0..100)."""

    low_pct: float = 1.0
    high_pct: float = 99.8
    softening: float = 0.05  # fraction of (hi - lo) where asinh turns from linear to log


def asinh_stretch(image: np.ndarray, stretch: Stretch = Stretch()) -> np.ndarray:
    """Map ``image`` to [0, 1] float32 with an asinh stretch; NaN stays NaN."""
    data = np.asarray(image, dtype=np.float64)
    finite = np.isfinite(data)
    if not finite.any():
        return np.full(data.shape, np.nan, dtype=np.float32)
    lo, hi = np.percentile(data[finite], [stretch.low_pct, stretch.high_pct])
    if not hi > lo:
        hi = lo + 1.0
    soft = stretch.softening * (hi - lo)
    scaled = np.arcsinh((data - lo) / soft) / np.arcsinh((hi - lo) / soft)
    return np.clip(scaled, 0.0, 1.0).astype(np.float32)


def block_reduce(image: np.ndarray, max_side: int = MAX_PREVIEW_SIDE, *, factor: int | None = None) -> np.ndarray:
    """Average ``image`` over square blocks so neither side exceeds ``max_side`` (NaN-aware).

    ``factor`` gives the block side directly instead. Rows and columns that do not fill a
    whole block at the far edges are dropped.
    """
    if factor is None:
        factor = int(np.ceil(max(image.shape) / max_side))
    if factor <= 1:
        return image
    ny, nx = (image.shape[0] // factor) * factor, (image.shape[1] // factor) * factor
    blocks = image[:ny, :nx].reshape(ny // factor, factor, nx // factor, factor)
    with np.errstate(invalid="ignore"):
        counts = np.isfinite(blocks).sum(axis=(1, 3))
        sums = np.nansum(blocks, axis=(1, 3))
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def layer_rgb(image: np.ndarray, stretch: Stretch = Stretch()) -> np.ndarray:
    """Grey RGB (uint8, H x W x 3) of one layer, origin at the bottom (north up)."""
    grey = asinh_stretch(block_reduce(image), stretch)
    grey = np.nan_to_num(grey, nan=0.0)
    rgb = np.repeat((grey * 255).round().astype(np.uint8)[..., None], 3, axis=2)
    return rgb[::-1]


def composite_rgb(red: np.ndarray, green: np.ndarray, blue: np.ndarray, stretch: Stretch = Stretch()) -> np.ndarray:
    """Colour composite (uint8, H x W x 3) of three pixel-aligned layers (reddest filter first)."""
    shapes = {red.shape, green.shape, blue.shape}
    if len(shapes) != 1:
        raise ValueError(f"composite needs pixel-aligned layers of one shape, got {sorted(shapes)}")
    channels = [np.nan_to_num(asinh_stretch(block_reduce(c), stretch), nan=0.0) for c in (red, green, blue)]
    rgb = np.stack([(c * 255).round().astype(np.uint8) for c in channels], axis=2)
    return rgb[::-1]


def write_png(rgb: np.ndarray, path: str | Path) -> Path:
    """Write an H x W x 3 uint8 array as PNG (no display needed)."""
    from matplotlib import image as mimage

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mimage.imsave(path, rgb)
    return path


def read_sci_reduced(path: str | Path, max_side: int = MAX_PREVIEW_SIDE, strip_rows: int = 1024) -> np.ndarray:
    """``block_reduce(read_sci(path), max_side)`` read in strips of rows: a full-size sky cell
    layer (21954**2, 1.9 GB of SCI) needs a few tens of MB, not a full copy."""
    with sci_array(path) as sci:
        ny, nx = sci.shape
        factor = int(np.ceil(max(ny, nx) / max_side))
        if factor <= 1:
            return np.array(sci, dtype=np.float32)
        step = max(1, strip_rows // factor) * factor
        parts = [block_reduce(np.asarray(sci[y0:min(y0 + step, ny // factor * factor)], dtype=np.float32),
                              factor=factor) for y0 in range(0, ny // factor * factor, step)]
        return np.concatenate(parts, axis=0)


def filter_wavelength_nm(filter_name: str, detector: str) -> float:
    """A sortable wavelength (nm) for a filter like ``f775w`` on ``detector`` (NaN if unknown).

    HST names optical/UV filters in nm (F475W, F140LP) and WFC3/IR filters in tens of nm
    (F160W is 1.6 micron), so the detector decides the unit.
    """
    digits = "".join(ch for ch in filter_name.split("-")[0] if ch.isdigit())
    if not digits:
        return float("nan")
    return float(digits) * (10.0 if detector.upper() == "IR" else 1.0)


@dataclass(frozen=True)
class ProductRef:
    """What the previews need to know about one product file."""

    layer: str  # product basename, e.g. hst_skycell-p1889x07y19_acs_wfc_f775w_all
    skycell: str
    detector: str
    filter: str
    scale: str  # fine | coarse
    path: Path


def _is_all_layer(layer: str) -> bool:
    """True for an archive layer name (``..._all`` / ``..._coarse-all``), False for time-domain layers."""
    try:
        return rules.parse_layer_name(layer).layer_set == "all"
    except ValueError:
        return True  # a name this project did not make: treat as the archive's


def choose_composite(products: Sequence[ProductRef]) -> tuple[ProductRef, ProductRef, ProductRef] | None:
    """Pick (red, green, blue) among >= 3 fine archive layers (set ``all``; never a year,
    class or epoch layer) of distinct filters: reddest, middle, bluest."""
    by_wave: dict[float, ProductRef] = {}
    for p in products:
        wave = filter_wavelength_nm(p.filter, p.detector)
        if p.scale == "fine" and _is_all_layer(p.layer) and np.isfinite(wave):
            by_wave.setdefault(wave, p)
    if len(by_wave) < 3:
        return None
    ordered = [by_wave[w] for w in sorted(by_wave)]
    return ordered[-1], ordered[len(ordered) // 2], ordered[0]


def product_ref(path: str | Path) -> ProductRef:
    """A :class:`ProductRef` from a product file's name and primary header (no catalog needed).

    Raises ``ValueError`` (one line) for a file that is not an MVM layer product.
    """
    path = Path(path)
    name = path.name
    for suffix in ("_drc.fits", "_drz.fits"):
        if name.endswith(suffix):
            layer = name[: -len(suffix)]
            break
    else:
        raise ValueError(f"{path}: not an MVM product (expected a name ending in _drc.fits or _drz.fits)")
    try:
        hdr = product_primary(path)
        return ProductRef(layer, f"skycell-{hdr['SCELLID']}", str(hdr["DETECTOR"]), str(hdr["FILTER"]).lower(),
                          rules.parse_layer_name(name).scale, path)
    except (OSError, KeyError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable MVM product ({exc})") from None


def choose_products(catalog: Callable[[], Any], names: Sequence[str], files: Sequence[str | Path], *,
                    changed: bool, out_dir: str | Path) -> list[ProductRef]:
    """The products ``mvm preview`` draws: ``files`` (no database), the catalogued products of the
    sky cells ``names``, or -- with neither -- every catalogued product; with ``changed`` only
    those of sky cells with a product newer than its PNG (:func:`stale_previews`).

    ``catalog`` gives the engine, called only when the catalog is needed. ``ValueError``
    (one line) for a file that is not a product or a named sky cell without products.
    """
    from mvmdb.db.products import current_products

    refs = [product_ref(f) for f in files]
    if names or not files:
        rows = current_products(catalog(), list(names) or None)
        missing = sorted(set(names) - {r.skycell for r in rows})
        if missing:
            raise ValueError(f"no products in the catalog for {', '.join(missing)}")
        refs.extend(rows)
    return stale_previews(refs, out_dir) if changed else refs


def orphan_previews(out_dir: str | Path, products: Sequence[ProductRef]) -> list[Path]:
    """PNGs in ``out_dir`` drawn by :func:`write_previews` for products that are gone.

    ``products``: every current product of the catalog. A ``<layer>.png`` whose name is an MVM
    layer (:func:`mvmdb.rules.parse_layer_name`) without a current product (its layer emptied by
    ``mvm exclude``, an automatic epoch renamed), and a ``<skycell>_color.png`` of a sky cell
    without a composite any more, are orphans. Other files are never touched.
    """
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        return []
    layers = {r.layer for r in products}
    by_cell: dict[str, list[ProductRef]] = {}
    for r in products:
        by_cell.setdefault(r.skycell, []).append(r)
    colour = {cell for cell, refs in by_cell.items() if choose_composite(refs) is not None}
    orphans = []
    for png in sorted(out_dir.glob("*.png")):
        stem = png.stem
        if stem.endswith("_color") and stem.startswith("skycell-"):
            if stem[: -len("_color")] not in colour:
                orphans.append(png)
            continue
        try:
            rules.parse_layer_name(stem)
        except ValueError:
            continue  # not one of ours
        if stem not in layers:
            orphans.append(png)
    return orphans


def prune_previews(catalog: Callable[[], Any], out_dir: str | Path) -> list[Path]:
    """Remove the :func:`orphan_previews` of ``out_dir`` against the whole catalog; return them."""
    from mvmdb.db.products import current_products

    orphans = orphan_previews(out_dir, current_products(catalog()))
    for png in orphans:
        png.unlink(missing_ok=True)
    return orphans


def stale_previews(products: Sequence[ProductRef], out_dir: str | Path) -> list[ProductRef]:
    """The products of every sky cell with a product newer than its PNG (or without one)."""
    out_dir = Path(out_dir)

    def stale(r: ProductRef) -> bool:
        png = out_dir / f"{r.layer}.png"
        return not png.exists() or png.stat().st_mtime < r.path.stat().st_mtime

    cells = {r.skycell for r in products if stale(r)}
    return [r for r in products if r.skycell in cells]


def write_previews(products: Sequence[ProductRef], out_dir: str | Path,
                   on_written: Callable[[Path, str, str], None] | None = None) -> list[Path]:
    """One grey PNG per product and one colour PNG per sky cell with >= 3 fine filters.

    Files: ``<out_dir>/<layer>.png`` and ``<out_dir>/<skycell>_color.png``. All fine layers
    of a sky cell share one pixel grid (the common trimmed box), so they stack directly.
    Each product's SCI is read once, reduced to preview size on the way
    (:func:`read_sci_reduced`). ``on_written(png, skycell, kind)`` is called with each PNG
    written, ``kind`` being ``'layer'`` or ``'color'``.
    """
    out_dir = Path(out_dir)
    written: list[Path] = []

    def put(rgb: np.ndarray, path: Path, skycell: str, kind: str) -> None:
        written.append(write_png(rgb, path))
        if on_written is not None:
            on_written(path, skycell, kind)

    by_cell: dict[str, list[ProductRef]] = {}
    for p in products:
        by_cell.setdefault(p.skycell, []).append(p)
    for skycell, refs in sorted(by_cell.items()):
        chosen = choose_composite(refs)
        wanted = {p.layer for p in chosen} if chosen else set()
        small: dict[str, np.ndarray] = {}  # reduced SCI of the composite's layers
        for p in refs:
            image = read_sci_reduced(p.path)
            put(layer_rgb(image), out_dir / f"{p.layer}.png", skycell, "layer")
            if p.layer in wanted:
                small[p.layer] = image
        if chosen is not None:
            red, green, blue = (small[p.layer] for p in chosen)
            put(composite_rgb(red, green, blue), out_dir / f"{skycell}_color.png", skycell, "color")
    return written
