"""``mvm layers``: enable, disable and list time-domain layer sets (see :mod:`mvmdb.layers`)."""

from __future__ import annotations

import click

from mvmdb.cli.context import console as piped_console
from mvmdb.cli.context import echo_json, engine
from mvmdb.cli.options import json_option, layer_set_argument, layer_skycell_option
from mvmdb.layers import EnableResult, disable as run_disable, enable as run_enable, list_sets, summary_json


@click.group()
def layers() -> None:
    """Time-domain layer sets beside the archive's layers (all): year, exptime, epochs.

    \b
    year     one layer per calendar year of DATE-OBS
             ..._f160w_2011_drz.fits
    exptime  the archive's classes: SHORT (< 15 s), MED (15-120 s), LONG (>= 120 s)
             ..._f160w_short_drz.fits (med, long)
    epochs   user date ranges (inclusive), or automatic (gaps of more than N days)
             ..._f160w_20110101-20111231_drz.fits

    Every layer of a sky cell is drawn on the same box, so all layers overlay pixel for
    pixel. The archive's own layers (all) are always on and keep their names.
    """


@layers.command()
@layer_set_argument()
@click.option("--range", "ranges", multiple=True, metavar="A..B",
              help="epochs: a date range, YYYY-MM-DD..YYYY-MM-DD or YYYYMMDD-YYYYMMDD, inclusive (repeatable; "
              "ranges may overlap).")
@click.option("--gap-days", "gap_days", type=click.FloatRange(min=0, min_open=True), default=None, metavar="N",
              help="epochs, automatic: visits grouped, a new epoch after a gap of more than N days between "
              "exposure starts; a later exposure can extend (rename) the last epoch.")
@layer_skycell_option("Enable for this sky cell only (default: the whole catalog).")
@json_option("One JSON object describing the change.")
@click.pass_context
def enable(ctx: click.Context, name: str, ranges: tuple[str, ...], gap_days: float | None, skycell: str | None,
           as_json: bool) -> None:
    """Enable a layer set: memberships of every catalogued exposure are created now (NEW), in one
    transaction, so the next mvm plan / mvm process draws the new layers; ingest adds new exposures.

    \b
    Examples:
      mvm layers enable year
      mvm layers enable exptime --skycell p1359x02y12
      mvm layers enable epochs --range 2011-01-01..2011-06-30 --range 2016-01-01..2016-12-31
      mvm layers enable epochs --gap-days 100 --skycell p1359x02y12
    """
    _show(run_enable(engine(ctx), name, gap_days=gap_days, ranges=ranges, skycell=skycell), as_json)


@layers.command()
@layer_set_argument()
@layer_skycell_option("Disable the entry of this sky cell (default: the catalog-wide entry).")
@json_option("One JSON object describing the change.")
@click.pass_context
def disable(ctx: click.Context, name: str, skycell: str | None, as_json: bool) -> None:
    """Disable a layer set: its layers are no longer planned or drawn.

    Its layers, memberships and products STAY (nothing is deleted); mvm layers enable resumes
    them and brings their memberships up to date. A sky-cell entry and the catalog-wide entry
    are separate: a set is on for a sky cell while either is enabled.
    """
    _show(run_disable(engine(ctx), name, skycell=skycell), as_json)


@layers.command(name="list")
@json_option("A JSON array, one object per layer set entry.")
@click.pass_context
def list_(ctx: click.Context, as_json: bool) -> None:
    """Layer sets with their scope, state, layers, products, memberships and NEW memberships."""
    rows = list_sets(engine(ctx))
    if as_json:
        echo_json([summary_json(r) for r in rows])
        return
    from rich.table import Table

    table = Table(box=None)
    for col in ("set", "scope", "enabled", "options", "layers", "products", "members", "NEW"):
        table.add_column(col, justify="right" if col in ("layers", "products", "members", "NEW") else "left")
    for r in rows:
        opts = " ".join(r.ranges or []) or (f"gap {r.gap_days:g} d" if r.gap_days else "")
        table.add_row(r.name, r.scope, "yes" if r.enabled else "no", opts, str(r.n_layers), str(r.n_products),
                      str(r.n_members), str(r.n_new))
    piped_console().print(table)


def _show(res: EnableResult, as_json: bool) -> None:
    if as_json:
        echo_json(res.to_json())
        return
    c = res.config
    line = f"layer set {c.name} {'enabled' if c.enabled else 'disabled'} for {c.scope}"
    if res.sync is not None:
        s = res.sync
        line += (f": {s.layers_created} layer(s) created, {s.added} membership(s) added (NEW), {s.removed} removed; "
                 f"{res.seconds:.1f} s (run mvm plan)")
    else:
        line += ": its layers, memberships and products stay; they are no longer planned"
    piped_console().print(line, soft_wrap=True, markup=False, highlight=False)
