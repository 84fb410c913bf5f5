"""Coverage pictures and MOCs: all-sky Mollweide PNG maps and IVOA MOC (FITS) files.

The writers take plain arrays (:func:`write_map_png`, :func:`write_moc`); the
``coverage_*`` functions fetch what they need from the catalog first
(:mod:`mvmdb.db.coverage`) and are what ``mvm coverage map`` / ``mvm coverage moc`` run.

Maps are drawn with healpy's Mollweide projector on a matplotlib ``Figure`` with an Agg
canvas: no pyplot, no display, and the caller's matplotlib backend is left alone.
(``healpy.mollview`` itself calls colormap setters that matplotlib 3.11 deprecates, so
it would warn on every call.) Sky convention: equatorial, RA increasing to the left.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Literal

import healpy as hp
import numpy as np
import sqlalchemy as sa
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import ListedColormap, LogNorm, Normalize
from matplotlib.figure import Figure
from mocpy import MOC
from numpy.typing import ArrayLike, NDArray

from mvmdb.db import coverage
from mvmdb.sky.coverage_maps import coverage_map
from mvmdb.sky.healpix import MAX_ORDER, as_ranges

Metric = Literal["exptime", "count"]
METRICS: dict[str, tuple[str, str]] = {  # metric -> (what the title says, colour bar label with unit)
    "exptime": ("total exposure time", "exposure time per pixel (s)"),
    "count": ("number of exposures", "exposures per pixel"),
}

FIGSIZE_IN = (10.0, 6.2)
DPI = 150
NO_DATA_COLOR = "#e6e6e6"
"""Colour of sky pixels no exposure touches."""


def write_map_png(
    values: ArrayLike, path: str | Path, *, title: str, label: str, log: bool = False, cmap: str = "viridis"
) -> Path:
    """Draw a NESTED HEALPix map as an all-sky Mollweide PNG (1500 x 930 px).

    ``values`` has ``12 * nside**2`` entries; pixels <= 0 are drawn as "no data" (light
    grey). ``log`` uses a logarithmic colour scale. The colour bar is labelled ``label`` (say the unit).
    """
    values = np.asarray(values, dtype=np.float64)
    nside = hp.npix2nside(len(values))
    positive = values[values > 0]
    xsize = int(FIGSIZE_IN[0] * DPI)  # about one map sample per output pixel
    proj = hp.projector.MollweideProj(xsize=xsize)
    image = proj.projmap(values, partial(hp.vec2pix, nside, nest=True))
    outside = np.isneginf(image)
    image = np.ma.masked_where(outside | (image <= 0), image)

    if len(positive) == 0:
        norm: Normalize = Normalize(vmin=0.0, vmax=1.0)
    elif log:
        vmin, vmax = float(positive.min()), float(positive.max())
        norm = LogNorm(vmin=vmin, vmax=vmax if vmax > vmin else vmin * 10)
    else:
        norm = Normalize(vmin=0.0, vmax=float(positive.max()))

    fig = Figure(figsize=FIGSIZE_IN, dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.02, 0.16, 0.96, 0.74))
    ax.set_axis_off()
    ax.set_title(title)
    # The sky's ellipse in the no-data colour, then the data over it; outside stays white.
    ax.imshow(
        np.where(outside, np.nan, 0.0), extent=proj.get_extent(), origin="lower",
        cmap=_flat(NO_DATA_COLOR), interpolation="nearest",
    )
    shown = ax.imshow(
        image, extent=proj.get_extent(), origin="lower", cmap=colormaps[cmap].with_extremes(bad="none"),
        norm=norm, interpolation="nearest", zorder=3,
    )  # above the graticule and the outline, so data at the map's edge stays visible
    _graticule(ax, proj)
    bar_ax = fig.add_axes((0.25, 0.08, 0.5, 0.03))
    bar = fig.colorbar(shown, cax=bar_ax, orientation="horizontal")
    bar.set_label(label)
    path = Path(path)
    fig.savefig(path, format="png")
    return path


def _flat(color: str) -> ListedColormap:
    """A one-colour colormap whose NaNs are transparent."""
    return ListedColormap([color]).with_extremes(bad="none")


def _graticule(ax, proj, *, step_ra_deg: float = 60.0, step_dec_deg: float = 30.0) -> None:
    """Meridians and parallels, with RA labels along the equator (degrees)."""
    style = dict(color="0.55", linewidth=0.5, linestyle=":")
    lat = np.linspace(-90.0, 90.0, 181)
    for lon in np.arange(-180.0 + step_ra_deg, 180.0, step_ra_deg):
        ax.plot(*proj.ang2xy(np.full_like(lat, lon), lat, lonlat=True), **style)
    lon = np.linspace(-179.99, 179.99, 361)
    for dec in np.arange(-90.0 + step_dec_deg, 90.0, step_dec_deg):
        ax.plot(*proj.ang2xy(lon, np.full_like(lon, dec), lonlat=True), **style)
    ax.plot(*proj.ang2xy(np.full_like(lat, 179.99), lat, lonlat=True), color="0.3", linewidth=0.8)
    ax.plot(*proj.ang2xy(np.full_like(lat, -179.99), lat, lonlat=True), color="0.3", linewidth=0.8)
    for ra in np.arange(0.0, 360.0, step_ra_deg):
        x, y = proj.ang2xy(ra, 0.0, lonlat=True)
        ax.annotate(f"{ra:.0f}°", (x, y), fontsize=7, color="0.3", ha="center", va="bottom")


def write_moc(ranges: ArrayLike, path: str | Path, *, max_depth: int = MAX_ORDER) -> MOC:
    """Write order-29 NESTED ranges as an IVOA MOC FITS file (NUNIQ, readable by MOC 1.x and 2.0 tools).

    ``max_depth`` < 29 coarsens the MOC (cells partly covered are kept: a superset).
    """
    moc = MOC.from_depth29_ranges(max_depth, as_ranges(ranges).astype(np.uint64))
    moc.save(Path(path), format="fits", overwrite=True, v1_compatible=True)
    return moc


@dataclass(frozen=True)
class MapSummary:
    """What :func:`coverage_map_png` drew."""

    path: Path
    nside: int
    n_exposures: int
    n_pixels: int
    max_value: float


def coverage_map_png(
    engine: sa.Engine, path: str | Path, *, metric: Metric = "exptime", nside: int = 64, filter: str | None = None
) -> MapSummary:
    """All-sky map of the catalog's usable exposures: total exposure time (s, log scale) or count.

    A pixel's value sums the exposures that touch it at all (so fields smaller than a
    pixel stay visible at low ``nside``).
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {sorted(METRICS)}, got {metric!r}")
    ranges, exposure_ids, exptimes = coverage.exposure_ranges(engine, nside, filter=filter)
    weights = exptimes if metric == "exptime" else np.ones_like(exptimes)
    values = coverage_map(ranges, exposure_ids, weights, nside)
    what, label = METRICS[metric]
    n_exposures = len(np.unique(exposure_ids))
    title = f"MVM coverage: {what}{f' in {filter.lower()}' if filter else ''} ({n_exposures} exposures, nside {nside})"
    write_map_png(values, path, title=title, label=label, log=metric == "exptime")
    return MapSummary(Path(path), nside, n_exposures, int(np.count_nonzero(values)), float(values.max(initial=0)))


def coverage_moc(
    engine: sa.Engine, path: str | Path, *, filter: str | None = None, max_depth: int = MAX_ORDER
) -> MOC:
    """Write the union of the usable exposures' chips (optionally of one filter) as a MOC FITS file."""
    return write_moc(coverage.coverage_ranges(engine, filter=filter), path, max_depth=max_depth)

