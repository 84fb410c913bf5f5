"""``mvm coverage``: what the catalog covers, as tables/JSON, an all-sky map, or a MOC.

Thin wrappers: the numbers come from :mod:`mvmdb.db.coverage`, the files from
:mod:`mvmdb.report`.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Any

import click

from mvmdb.cli.context import echo_json, engine
from mvmdb.cli.options import json_option, out_file_option
from mvmdb.db import coverage as cov
from mvmdb.db.coverage import EXPOSURE_KEYS, FILTER_AREA_KEYS, LAYER_KEYS, TIMED_EXPOSURE_KEYS
from mvmdb.db.spacetime import exposures_seen_between
from mvmdb.errors import MvmdbError
from mvmdb.quality import QUALITY_KEYS, layer_quality

MAX_NSIDE = 1024


def _keys(keys: tuple[str, ...]) -> str:
    return ", ".join(keys)


HELP = f"""What the catalog covers: areas per filter, layers of a sky cell, exposures at a position.

Position searches list usable exposures only: none excluded by ingest, the operator
or mvm qa. Areas leave out those excluded by ingest.

\b
With no selection: one row per instrument/detector/filter (view v_filter_area);
area_deg2 is the union of the chips' HEALPix cover, footprint_sum_deg2 the sum of
chip areas, n_excluded the exposures left out. Keys:
  {_keys(FILTER_AREA_KEYS)}
With --skycell NAME: one row per layer of that sky cell (view v_layer_coverage);
product_status is none, current or stale (stale: the layer has NEW members). Keys:
  {_keys(LAYER_KEYS)}, then wcs_families (of the members), flagged (exposures with a
  flagged mvm qa check) and excluded (ipppssoot:kind of excluded exposures)
With --ra/--dec: exposures whose chip footprint contains the position; with --radius
too, exposures with a chip within RADIUS degrees. By start time. Keys:
  {_keys(EXPOSURE_KEYS)}
With --ra/--dec and --from/--to: what HST saw there between two times: the exposures
whose [EXPSTART, EXPEND] meets [FROM, TO]. Keys: the same plus expstart_mjd,
expend_mjd (MJD UTC).
FROM/TO (UTC): an MJD (55630.25), a year (2011), a date (2011-03-14) or a date and
time (2011-03-14T06:30:00); a year or date as TO takes in all of it. Without --from:
from the start; without --to: until now.

\b
--json prints a JSON array, one object per row, with exactly those keys
(exptime in s, areas in deg², dates as YYYY-MM-DD, null when unknown).
Subcommands draw an all-sky map (map) or write a MOC (moc; moc --time: a space-time MOC).
"""


def _no_selection(skycell: str | None, ra: float | None, dec: float | None, radius: float | None,
                  timed: bool = False) -> None:
    if skycell and (ra is not None or dec is not None):
        raise click.UsageError("give either --skycell or --ra/--dec, not both")
    if (ra is None) != (dec is None):
        raise click.UsageError("--ra and --dec go together")
    if radius is not None and ra is None:
        raise click.UsageError("--radius needs --ra and --dec")
    if timed and ra is None:
        raise click.UsageError("--from/--to need --ra and --dec (what HST saw at a position between two times)")


def _interval(start: str | None, end: str | None) -> tuple[float, float]:
    """``(mjd_from, mjd_to)`` of ``--from``/``--to`` (:func:`mvmdb.timespan.mjd_interval`); a usage error if unreadable."""
    from mvmdb.timespan import mjd_interval

    try:
        return mjd_interval(start, end)
    except ValueError as exc:
        raise click.UsageError(f"--from/--to: {exc}") from None


def _finite(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    """Reject NaN and infinities, which every FloatRange lets through."""
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"{value} is not a finite number of degrees")
    return value


@click.group(invoke_without_command=True, help=HELP)
@click.option("--skycell", metavar="NAME", help="A sky cell, e.g. skycell-p1889x07y19.")
@click.option("--ra", type=click.FloatRange(-360, 360), callback=_finite, metavar="DEG",
              help="Right ascension, degrees (ICRS), -360 to 360.")
@click.option("--dec", type=click.FloatRange(-90, 90), callback=_finite, metavar="DEG",
              help="Declination, degrees (ICRS).")
@click.option("--radius", type=click.FloatRange(0, 180, min_open=True), callback=_finite, metavar="DEG",
              help="Cone radius, degrees.")
@click.option("--filter", "filter_", metavar="F", help="Only this filter (e.g. f814w; case-insensitive).")
@click.option("--from", "start", metavar="TIME", help="With --ra/--dec: exposures ending at or after TIME (UTC).")
@click.option("--to", "end", metavar="TIME", help="With --ra/--dec: exposures starting at or before TIME (UTC).")
@json_option("JSON array of objects instead of a table.")
@click.pass_context
def coverage(
    ctx: click.Context,
    skycell: str | None,
    ra: float | None,
    dec: float | None,
    radius: float | None,
    filter_: str | None,
    start: str | None,
    end: str | None,
    as_json: bool,
) -> None:
    timed = start is not None or end is not None
    _no_selection(skycell, ra, dec, radius, timed)
    if ctx.invoked_subcommand is not None:
        if skycell or ra is not None or filter_ or as_json or timed:
            raise click.UsageError(f"options before '{ctx.invoked_subcommand}' belong to the table; put them after it")
        return
    between = _interval(start, end) if timed else None
    eng = engine(ctx)
    if skycell:
        if not cov.sky_cell_exists(eng, skycell):
            raise MvmdbError(f"no sky cell {skycell!r} in the catalog (sky cells appear when an exposure touches them)")
        rows, keys, title = cov.layer_coverage(eng, sky_cell=skycell, filter=filter_), LAYER_KEYS, skycell
        rows, keys = _with_quality(eng, skycell, rows), keys + QUALITY_KEYS
    elif ra is not None and dec is not None and between is not None:
        rows = exposures_seen_between(eng, ra, dec, *between, radius_deg=radius, filter=filter_)
        keys = TIMED_EXPOSURE_KEYS
        where = f"at RA {ra} Dec {dec}" if radius is None else f"within {radius} deg of RA {ra} Dec {dec}"
        title = (f"exposures {where} from {start or 'the start'} to {end or 'now'} "
                 f"(MJD {between[0]:.5f} to {between[1]:.5f})")
    elif ra is not None and dec is not None:
        if radius is None:
            rows, title = cov.exposures_at(eng, ra, dec, filter=filter_), f"exposures at RA {ra} Dec {dec}"
        else:
            rows = cov.exposures_in_cone(eng, ra, dec, radius, filter=filter_)
            title = f"exposures within {radius} deg of RA {ra} Dec {dec}"
        keys = EXPOSURE_KEYS
    else:
        rows, keys, title = cov.filter_areas(eng, filter=filter_), FILTER_AREA_KEYS, "area covered per filter"
    if as_json:
        echo_json([{key: _json_value(row[key]) for key in keys} for row in rows])
    else:
        _print_table(title, keys, rows)


def _with_quality(eng, skycell: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each layer row plus its WCS families, flagged and excluded exposures (:func:`mvmdb.quality.layer_quality`)."""
    quality = layer_quality(eng, skycell)
    empty = {"wcs_families": [], "flagged": [], "excluded": []}
    return [{**row, **quality.get(row["layer_name"], empty)} for row in rows]


def _json_value(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.date) else value


def _cell(value: Any, key: str = "") -> str:
    if value is None:
        return ""
    if isinstance(value, float) and key.endswith("_mjd"):
        return f"{value:.5f}"  # ~1 s
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


def _print_table(title: str, keys: tuple[str, ...], rows: list[dict[str, Any]]) -> None:
    from rich.table import Table

    from mvmdb.cli.context import console

    table = Table(*keys, title=f"{title}: {len(rows)} row{'' if len(rows) == 1 else 's'}", box=None)
    for row in rows:
        table.add_row(*(_cell(row[key], key) for key in keys))
    console().print(table)


def _nside(ctx: click.Context, param: click.Parameter, value: int) -> int:
    if value < 1 or value > MAX_NSIDE or value & (value - 1):
        raise click.BadParameter(f"must be a power of two from 1 to {MAX_NSIDE}")
    return value


@coverage.command("map")
@click.option("--filter", "filter_", metavar="F", help="Only this filter (case-insensitive).")
@click.option("--metric", type=click.Choice(["exptime", "count"]), default="exptime", show_default=True,
              help="Total exposure time (s, log colour scale) or number of exposures.")
@click.option("--nside", type=int, default=64, show_default=True, callback=_nside,
              help=f"HEALPix resolution of the map (power of two <= {MAX_NSIDE}; 64 is ~0.9 deg pixels).")
@out_file_option("FILE.png")
@click.pass_context
def map_(ctx: click.Context, filter_: str | None, metric: str, nside: int, out: Path) -> None:
    """All-sky Mollweide PNG of exposure time or exposure count.

    A pixel adds up every usable exposure that touches it, so small fields stay visible.
    """
    from mvmdb.report import coverage_map_png

    summary = coverage_map_png(engine(ctx), out, metric=metric, nside=nside, filter=filter_)
    click.echo(
        f"wrote {summary.path}: {summary.n_exposures} exposures over {summary.n_pixels} pixels "
        f"(nside {summary.nside}, max {summary.max_value:g} {'s' if metric == 'exptime' else 'exposures'})"
    )


@coverage.command("moc")
@click.option("--filter", "filter_", metavar="F", help="Only this filter (case-insensitive).")
@click.option("--max-depth", type=click.IntRange(0, 29), metavar="N",
              help="MOC order (default 29); below 29 partly covered cells are kept (a superset).")
@click.option("--time", "timed", is_flag=True,
              help="A space-time MOC (STMOC): each usable exposure's chips over its EXPSTART..EXPEND.")
@click.option("--space-order", type=click.IntRange(0, 29), metavar="N",
              help="With --time: HEALPix order of the sky axis (default 13, 25.8\" cells, the catalog's).")
@click.option("--time-order", type=click.IntRange(0, 61), metavar="N",
              help="With --time: order of the time axis (default 41, 1.05 s cells; 61 is 1 µs).")
@out_file_option("FILE.fits")
@click.pass_context
def moc(ctx: click.Context, filter_: str | None, max_depth: int | None, timed: bool, space_order: int | None,
        time_order: int | None, out: Path) -> None:
    """Write the sky covered by usable exposures as an IVOA MOC (FITS; mocpy, Aladin, TOPCAT).

    With --time, an IVOA space-time MOC (MOC 2.0 STMOC) of the exposures that would be drizzled
    (not excluded by ingest, the operator or mvm qa): where and when HST looked.
    """
    from mvmdb.report import coverage_moc
    from mvmdb.sky.coverage_maps import SKY_AREA_DEG2

    if timed:
        if max_depth is not None:
            raise click.UsageError("--max-depth is for the sky MOC; with --time use --space-order")
        _stmoc(ctx, out, filter_, space_order, time_order)
        return
    if space_order is not None or time_order is not None:
        raise click.UsageError("--space-order and --time-order go with --time")
    max_depth = 29 if max_depth is None else max_depth
    written = coverage_moc(engine(ctx), out, filter=filter_, max_depth=max_depth)
    fraction = written.sky_fraction
    click.echo(f"wrote {out}: {fraction * SKY_AREA_DEG2:.6g} deg² (sky fraction {fraction:.3g}), depth {max_depth}")


def _stmoc(ctx: click.Context, out: Path, filter_: str | None, space_order: int | None,
           time_order: int | None) -> None:
    """``moc --time``: write the space-time MOC and say what went in."""
    from mvmdb.sky.stmoc import SPACE_ORDER, TIME_ORDER
    from mvmdb.spacetime import coverage_stmoc

    w = coverage_stmoc(engine(ctx), out, filter=filter_,
                       space_order=SPACE_ORDER if space_order is None else space_order,
                       time_order=TIME_ORDER if time_order is None else time_order)
    span = w.span
    if span.n_exposures:
        first, last = (_mjd_text(t) for t in (span.first_mjd, span.last_mjd))
        what = (f"{span.n_exposures} exposures, {span.n_chips} chips, {first} to {last} "
                f"(MJD {span.first_mjd:.5f} to {span.last_mjd:.5f})")
    else:
        what = "empty (no usable exposure with EXPSTART and EXPEND)"
    click.echo(f"wrote {w.path}: space-time MOC, {what}; space order {w.space_order}, "
               f"time order {w.time_order}, {w.size_bytes} bytes")


def _mjd_text(mjd: float) -> str:
    """An MJD (UTC) as ``YYYY-MM-DDTHH:MM:SS`` UTC."""
    from mvmdb.timespan import MJD_EPOCH

    return (MJD_EPOCH + dt.timedelta(days=mjd)).strftime("%Y-%m-%dT%H:%M:%S")


@coverage.command("exclusions")
@json_option("JSON array of objects instead of a table.")
@click.pass_context
def exclusions(ctx: click.Context, as_json: bool) -> None:
    """Excluded exposures by kind: operator, trailed, alignment and the ingest rules (view v_exclusion_kind)."""
    rows = cov.exclusion_kinds(engine(ctx))
    if as_json:
        echo_json(rows)
    else:
        _print_table("excluded exposures by kind", cov.EXCLUSION_KEYS, rows)
