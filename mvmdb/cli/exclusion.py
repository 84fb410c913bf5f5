"""``mvm exclude`` / ``mvm include``: take exposures out of their layers and back (see :mod:`mvmdb.exclusion`)."""

from __future__ import annotations

import click

from mvmdb.cli.context import console as piped_console
from mvmdb.cli.context import echo_json, engine
from mvmdb.cli.options import json_option
from mvmdb.exclusion import ExclusionResult
from mvmdb.exclusion import exclude as run_exclude
from mvmdb.exclusion import include as run_include

_by_option = click.option("--by", metavar="NAME", default=None,
                          help="Who decides (recorded in the audit trail); default: the OS user.")


@click.command()
@click.argument("ipppssoots", nargs=-1, required=True, metavar="IPPPSSOOT...")
@click.option("--reason", required=True, metavar="TEXT", help="Why (recorded with who and when).")
@_by_option
@json_option("One JSON object describing the change.")
@click.pass_context
def exclude(ctx: click.Context, ipppssoots: tuple[str, ...], reason: str, by: str | None, as_json: bool) -> None:
    """Exclude exposures from every layer: their layers are drawn again without them (after mvm plan).

    The exclusion is kept by ipppssoot and survives re-ingest of the file; mvm include lifts it.
    """
    _show(run_exclude(engine(ctx), ipppssoots, reason, by=by), as_json)


@click.command()
@click.argument("ipppssoots", nargs=-1, required=True, metavar="IPPPSSOOT...")
@_by_option
@json_option("One JSON object describing the change.")
@click.pass_context
def include(ctx: click.Context, ipppssoots: tuple[str, ...], by: str | None, as_json: bool) -> None:
    """Lift exclusions: the exposures join their layers again, which are drawn again (after mvm plan)."""
    _show(run_include(engine(ctx), ipppssoots, by=by), as_json)


def _show(res: ExclusionResult, as_json: bool) -> None:
    if as_json:
        echo_json(res.to_json())
        return
    console = piped_console()
    verb = "excluded" if res.action == "exclude" else "included"
    line = f"{verb} {len(res.changed)} exposure(s)"
    if res.unchanged:
        line += f" ({len(res.unchanged)} already {verb}: {' '.join(res.unchanged)})"
    line += f"; {len(res.layers)} layer(s) in {len(res.skycells)} sky cell(s) to redraw (run mvm plan)"
    if res.retired:
        line += f"; {len(res.retired)} product(s) of emptied layers removed"
    console.print(line, soft_wrap=True, markup=False, highlight=False)
    for name in res.skycells:
        console.print(f"  {name}", markup=False, highlight=False)
