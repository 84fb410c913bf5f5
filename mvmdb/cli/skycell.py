"""``mvm skycell``: which sky cells hold a position, a list of positions or exposures; a cell's WCS.

Forms::

    mvm skycell RA DEC [--scale fine|coarse] [--json]     cells containing a position (degrees or sexagesimal)
    mvm skycell NAME [--scale fine|coarse] [--json]       WCS and corners of a sky cell
    mvm skycell --positions FILE.csv [--json]              cells per position (CSV columns ra,dec)
    mvm skycell --footprint EXPOSURE.fits... [--json]      cells any chip of each exposure overlaps

The click command only parses and prints; the work is done by the plain functions of
:mod:`mvmdb.locate`, which tests call directly. JSON keys (``ra``, ``dec``, ``cells``;
``path``, ``cells``) are a contract.
"""

from __future__ import annotations

import json
from typing import Sequence

import click

from mvmdb.cli.options import json_option
from mvmdb.locate import (
    cells_for_positions,
    describe_position,
    describe_skycell,
    footprint_cells,
    parse_angle,
    read_positions_csv,
)

__all__ = ["skycell"]


# --------------------------------------------------------------------------- output


def _console():
    from mvmdb.cli.context import console

    return console(highlight=False, soft_wrap=False)


def _print_position(info: dict) -> None:
    from rich.table import Table

    c = _console()
    if not info["cells"]:
        c.print(f"RA {info['ra']:.7f}  Dec {info['dec']:+.7f}: no sky cell")
        return
    t = Table(title=f"RA {info['ra']:.7f}  Dec {info['dec']:+.7f}  ({info['scale']} pixels, 0-based)")
    t.add_column("sky cell", no_wrap=True, min_width=19)
    for col in ("PC", "x", "y", "pixel x", "pixel y", "NAXIS"):
        t.add_column(col, justify="right", no_wrap=True)
    for d in info["skycells"]:
        t.add_row(d["name"], str(d["projection_cell"]), str(d["x"]), str(d["y"]),
                  f"{d['pixel'][0]:.2f}", f"{d['pixel'][1]:.2f}", str(d["naxis"]))
    c.print(t)


def _print_skycell(info: dict) -> None:
    c = _console()
    lines = [
        f"{info['name']}  (SCELLID {info['scellid']}; projection cell {info['projection_cell']}, ring {info['ring']}, "
        f"band {info['band']}; x {info['x']}, y {info['y']})",
        f"  scale   {info['scale']} ({info['pscale_arcsec']:g}\"/px)",
        f"  CTYPE   {info['ctype'][0]}, {info['ctype'][1]}",
        f"  CRVAL   {info['crval'][0]!r}, {info['crval'][1]!r}",
        f"  CRPIX   {info['crpix'][0]!r}, {info['crpix'][1]!r}   (1-based)",
        f"  CD      {info['cd'][0][0]!r}, {info['cd'][0][1]!r}; {info['cd'][1][0]!r}, {info['cd'][1][1]!r}",
        f"  NAXIS   {info['naxis'][0]} x {info['naxis'][1]}",
        "  corners (RA, Dec of the corner-pixel centres)",
    ]
    for ra, dec in info["corners"][:4]:
        lines.append(f"          {ra:12.7f} {dec:+12.7f}")
    c.print("\n".join(lines), markup=False)


def _print_lists(rows: list[tuple[str, list[str]]], first_header: str) -> None:
    from rich.table import Table

    t = Table()
    t.add_column(first_header, overflow="fold")
    t.add_column("sky cells", min_width=19)
    for key, cells in rows:
        t.add_row(key, ", ".join(cells) if cells else "-")
    _console().print(t)


# --------------------------------------------------------------------------- command


@click.command(
    "skycell",
    context_settings={"ignore_unknown_options": True, "help_option_names": ["-h", "--help"]},
)
@click.argument("args", nargs=-1, metavar="[RA DEC | NAME | EXPOSURE.fits...]")
@click.option("--scale", type=click.Choice(["fine", "coarse"]), default="fine", show_default=True,
              help="Pixel grid for WCS and pixel positions (fine 0.04\"/px, coarse 0.12\"/px).")
@click.option("--positions", "positions_file", type=click.Path(dir_okay=False), metavar="FILE.csv",
              help="CSV of positions (columns ra,dec in degrees); one result per line.")
@click.option("--footprint", is_flag=True,
              help="Treat the arguments as exposure FITS files: sky cells any chip overlaps.")
@json_option("Machine-readable JSON (one object per line for lists).")
def skycell(args: tuple[str, ...], scale: str, positions_file: str | None, footprint: bool, as_json: bool) -> None:
    """Sky cells of a position, of positions in a CSV file or of exposures; or a sky cell's WCS.

    \b
      mvm skycell 181.1754 27.9031             cells containing RA, Dec (degrees)
      mvm skycell 12:04:42.1 +27:54:11         sexagesimal (RA in hours)
      mvm skycell skycell-p1889x07y19          WCS and corners (add --scale coarse)
      mvm skycell --positions pos.csv --json   one {"ra", "dec", "cells"} per line
      mvm skycell --footprint a_flc.fits b_flt.fits --json   one {"path", "cells"} per file

    Names are skycell-pPPPPxXXyYY (x, y 1-based); pixel positions are 0-based, CRPIX 1-based.
    """
    bad_options = [a for a in args if a.startswith("--")]
    if bad_options:
        raise _Usage(f"no such option: {bad_options[0]}")
    if positions_file is not None:
        if args or footprint:
            raise _Usage("--positions takes no other arguments")
        _run_positions(positions_file, as_json)
    elif footprint:
        if not args:
            raise _Usage("--footprint needs one or more exposure FITS files")
        _run_footprint(args, as_json)
    elif len(args) == 1:
        try:
            info = describe_skycell(args[0], scale)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
        _emit(info, as_json, _print_skycell)
    elif len(args) == 2:
        try:
            ra = parse_angle(args[0], is_ra=True)
            dec = parse_angle(args[1], is_ra=False)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
        info = describe_position(ra, dec, scale)
        _emit(info, as_json, _print_position)
    else:
        raise _Usage("give RA DEC, a sky cell NAME, --positions FILE.csv or --footprint FILE.fits...")


class _Usage(click.ClickException):
    """Wrong form of the command: one line on stderr (no usage block), exit status 2."""

    exit_code = 2


def _emit(info: dict, as_json: bool, printer) -> None:
    if as_json:
        click.echo(json.dumps(info))
    else:
        printer(info)


def _run_positions(path: str, as_json: bool) -> None:
    try:
        ra, dec = read_positions_csv(path)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    cells = cells_for_positions(ra, dec)
    if as_json:
        rows = list(zip(ra.tolist(), dec.tolist(), cells))
        for start in range(0, len(rows), 100_000):
            chunk = rows[start:start + 100_000]
            click.echo("".join(json.dumps({"ra": r, "dec": d, "cells": c}) + "\n" for r, d, c in chunk), nl=False)
    else:
        _print_lists([(f"{r:.7f} {d:+.7f}", c) for r, d, c in zip(ra.tolist(), dec.tolist(), cells)], "RA Dec")


def _run_footprint(paths: Sequence[str], as_json: bool) -> None:
    errors: list[str] = []
    results = footprint_cells(list(paths), errors=errors)
    for line in errors:  # one line per unreadable file; the others are still reported
        click.echo(f"mvm: error: {' '.join(line.split())}", err=True)
    if errors and not results:
        raise SystemExit(1)
    if as_json:
        for r in results:
            click.echo(json.dumps({"path": r["path"], "cells": r["cells"]}))
    else:
        _print_lists([(f"{r['path']} ({r['chips']} chip{'s' if r['chips'] != 1 else ''})", r["cells"]) for r in results],
                     "exposure")
    if errors:
        raise SystemExit(2)  # some files failed
