"""``mvm skycell``: which sky cells hold a position, a list of positions or exposures; a cell's WCS.

Forms::

    mvm skycell RA DEC [--scale fine|coarse] [--json]     cells containing a position (degrees or sexagesimal)
    mvm skycell NAME [--scale fine|coarse] [--json]       WCS and corners of a sky cell
    mvm skycell --positions FILE.csv [--json]              cells per position (CSV columns ra,dec)
    mvm skycell --footprint EXPOSURE.fits... [--json]      cells any chip of each exposure overlaps

The click command only parses and prints; the work is done by the plain functions
:func:`describe_position`, :func:`describe_skycell`, :func:`cells_for_positions`,
:func:`read_positions_csv` and :func:`footprint_cells`, which tests call directly.
JSON keys (``ra``, ``dec``, ``cells``; ``path``, ``cells``) are a contract.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from typing import Sequence

import click
import numpy as np

from mvmdb.sky.grid import SkyCell, scale_arcsec
from mvmdb.sky.overlap import cells_at, cells_overlapping

__all__ = [
    "skycell",
    "describe_position",
    "describe_skycell",
    "cells_for_positions",
    "read_positions_csv",
    "footprint_cells",
    "parse_angle",
]


# --------------------------------------------------------------------------- plain functions


def parse_angle(text: str, *, is_ra: bool) -> float:
    """Degrees from ``'181.1754'`` or sexagesimal (``'12:04:42.1'`` hours for RA, ``'+27:54:11'`` degrees for Dec).

    ``ValueError`` with a readable message otherwise; Dec must lie in [-90, 90].
    """
    what = "RA" if is_ra else "Dec"
    s = text.strip()
    try:
        value = float(s)
    except ValueError:
        from astropy import units as u
        from astropy.coordinates import Angle

        sexagesimal = any(c in s for c in ":hms ")
        unit = u.hourangle if (is_ra and sexagesimal and "d" not in s) else u.deg
        try:
            value = float(Angle(s, unit=unit).deg)
        except Exception:
            raise ValueError(f"{what} {text!r} is not an angle (degrees, or sexagesimal like 12:04:42.1)") from None
    if not math.isfinite(value):
        raise ValueError(f"{what} {text!r} is not finite")
    if not is_ra and not -90.0 <= value <= 90.0:
        raise ValueError(f"Dec {text!r} is outside [-90, 90] degrees")
    return value % 360.0 if is_ra else value


def describe_skycell(cell: SkyCell | str, scale: str | float = "fine") -> dict:
    """A sky cell's WCS at ``scale`` as plain values: CRVAL (deg), CRPIX (1-based), CD (deg/px), NAXIS, corners.

    ``corners`` are the closed footprint (5 points, RA/Dec degrees) at the centres of the
    corner pixels, as the archive's ``SkyCell.corners``.
    """
    sc = SkyCell.from_name(cell) if isinstance(cell, str) else cell
    w = sc.wcs(scale)
    pc = sc.pc
    return {
        "name": sc.name,
        "scellid": sc.scellid,
        "projection_cell": sc.projection_cell,
        "x": sc.x,
        "y": sc.y,
        "ring": pc.ring,
        "band": pc.band,
        "scale": scale if isinstance(scale, str) else float(scale),
        "pscale_arcsec": scale_arcsec(scale),
        "ctype": list(w.wcs.ctype),
        "crval": [float(v) for v in w.wcs.crval],
        "crpix": [float(v) for v in w.wcs.crpix],
        "cd": [[float(v) for v in row] for row in w.wcs.cd],
        "naxis": [int(v) for v in w.pixel_shape],
        "corners": [[float(a), float(b)] for a, b in sc.corners(scale)],
    }


def describe_position(ra_deg: float, dec_deg: float, scale: str | float = "fine") -> dict:
    """Sky cells containing (RA, Dec) in degrees, with the position's 0-based pixel in each at ``scale``."""
    hits = cells_at(ra_deg, dec_deg)
    details = []
    for sc in hits.skycells():
        w = sc.wcs(scale)
        px, py = w.world_to_pixel_values(ra_deg, dec_deg)
        details.append({
            "name": sc.name,
            "projection_cell": sc.projection_cell,
            "x": sc.x,
            "y": sc.y,
            "pixel": [float(px), float(py)],
            "crpix": [float(v) for v in w.wcs.crpix],
            "naxis": int(w.pixel_shape[0]),
        })
    return {
        "ra": float(ra_deg),
        "dec": float(dec_deg),
        "scale": scale if isinstance(scale, str) else float(scale),
        "cells": [d["name"] for d in details],
        "skycells": details,
    }


def read_positions_csv(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """RA, Dec arrays (degrees) from a CSV file with columns ``ra,dec`` (header optional).

    With a header, the columns named ``ra`` and ``dec`` (any case, any order) are used;
    without one, the first two columns. ``ValueError`` for unreadable or malformed files.
    """
    try:
        with open(path, encoding="utf-8") as fh:
            first = ""
            skip = 0
            for line in fh:
                skip += 1
                if line.strip():
                    first = line
                    break
    except OSError as exc:
        raise ValueError(f"cannot read {os.fspath(path)}: {exc.strerror or exc}") from None
    if not first:
        return np.zeros(0), np.zeros(0)
    fields = [f.strip().strip('"').lower() for f in first.split(",")]
    try:
        [float(f) for f in fields[:2]]
        header = False
        cols = (0, 1)
        skip -= 1
    except ValueError:
        header = True
        if "ra" not in fields or "dec" not in fields:
            raise ValueError(f"{os.fspath(path)}: header must name columns 'ra' and 'dec' (got {first.strip()!r})") from None
        cols = (fields.index("ra"), fields.index("dec"))
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="loadtxt: input contained no data", category=UserWarning)
            data = np.loadtxt(path, delimiter=",", skiprows=skip, usecols=cols, ndmin=2, dtype=float,
                              comments="#", encoding="utf-8")
    except ValueError as exc:
        raise ValueError(f"{os.fspath(path)}: malformed positions ({exc})") from None
    ra, dec = data[:, 0], data[:, 1]
    bad = ~np.isfinite(ra) | ~np.isfinite(dec) | (np.abs(dec) > 90)
    if bad.any():
        row = int(np.nonzero(bad)[0][0])
        raise ValueError(f"{os.fspath(path)}: data row {row + 1}{' after the header' if header else ''} "
                         f"has an invalid position ({ra[row]}, {dec[row]})")
    return ra, dec


def cells_for_positions(ra_deg, dec_deg) -> list[list[str]]:
    """Sorted sky-cell names for each position (degrees)."""
    ra = np.asarray(ra_deg, dtype=float).ravel()
    return cells_at(ra, dec_deg).per_input(ra.size)


def footprint_cells(paths: Sequence[str | os.PathLike]) -> list[dict]:
    """For each FITS file: ``{"path", "cells", "chips"}``, ``cells`` being every sky cell any chip overlaps (sorted).

    Raises :class:`mvmdb.fitsio.chips.FootprintError` for a file whose footprints cannot be read.
    """
    from mvmdb.fitsio.chips import read_chip_footprints

    polygons, owner, nchips = [], [], []
    for i, path in enumerate(paths):
        chips = read_chip_footprints(path)
        nchips.append(len(chips))
        for chip in chips:
            polygons.append(chip.polygon)
            owner.append(i)
    hits = cells_overlapping(polygons)
    per_file: list[set[str]] = [set() for _ in paths]
    owner_arr = np.asarray(owner, dtype=np.int64)
    for poly, name in zip(owner_arr[hits.index].tolist(), hits.names()):
        per_file[poly].add(name)
    return [{"path": os.fspath(p), "cells": sorted(c), "chips": n} for p, c, n in zip(paths, per_file, nchips)]


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
@click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON (one object per line for lists).")
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
    from mvmdb.fitsio.chips import FootprintError

    try:
        results = footprint_cells(list(paths))
    except FootprintError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        for r in results:
            click.echo(json.dumps({"path": r["path"], "cells": r["cells"]}))
    else:
        _print_lists([(f"{r['path']} ({r['chips']} chip{'s' if r['chips'] != 1 else ''})", r["cells"]) for r in results],
                     "exposure")
