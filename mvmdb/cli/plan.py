"""``mvm plan``: layers with NEW members -> poller files + queued jobs (see :mod:`mvmdb.plan`)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import click
from rich.table import Table

from mvmdb.cli.context import echo_json, engine, console as piped_console
from mvmdb.cli.options import json_option, out_dir_option
from mvmdb.plan import DEFAULT_OUT, PollerFile
from mvmdb.plan import plan as run_plan

MAX_TABLE_ROWS = 50
"""Sky cells shown in the summary table; the totals line counts them all."""


@click.command()
@out_dir_option("Directory for the <skycell-name>_mvm_poller.txt files.", DEFAULT_OUT)
@click.option(
    "--skycell",
    "skycells",
    multiple=True,
    metavar="NAME",
    help="Plan only this sky cell (skycell-p1889x07y19 or p1889x07y19); repeatable.",
)
@click.option("--dry-run", is_flag=True, help="Show what would be planned; write no file, queue no job.")
@json_option("One JSON object per poller file on stdout.")
@click.pass_context
def plan(ctx: click.Context, out_dir: Path, skycells: tuple[str, ...], dry_run: bool, as_json: bool) -> None:
    """Write a poller file and queue one job per sky cell with a layer that has NEW members.

    Each poller lists every member of the sky cell's affected layers (NEW and OLD), in the
    archive's 10-column format. Planning again extends the queued job instead of adding one.
    A sky cell whose catalog rows a poller cannot hold is reported (`mvm: SKYCELL: ...` on
    stderr, "error" in --json) and skipped; the others are planned; exit status 2 then.
    """
    pollers = run_plan(engine(ctx), out_dir, skycells=list(skycells) or None, dry_run=dry_run)
    failed = [p for p in pollers if p.error is not None]
    for p in failed:
        click.echo(f"mvm: {p.skycell}: {p.error}", err=True)
    if as_json:
        for poller in pollers:
            echo_json(poller.to_json())
    else:
        _summary(pollers, dry_run)
    if failed:
        ctx.exit(2)


def _summary(pollers: list[PollerFile], dry_run: bool) -> None:
    console = piped_console()
    if not pollers:
        console.print("nothing to plan: no layer has NEW members")
        return
    table = Table("sky cell", "layers", "NEW", "OLD", "job", box=None)
    for p in pollers[:MAX_TABLE_ROWS]:
        job = p.job_action if p.job_id is None else f"{p.job_id} ({p.job_action})"
        table.add_row(p.skycell, str(len(p.layers)), str(p.new), str(p.old), job)
    console.print(table)
    if len(pollers) > MAX_TABLE_ROWS:
        console.print(f"... and {len(pollers) - MAX_TABLE_ROWS} more sky cells (--json lists all)", highlight=False)
    planned = [p for p in pollers if p.error is None]
    new = sum(p.new for p in planned)
    old = sum(p.old for p in planned)
    verb = "would write" if dry_run else "wrote"
    line = f"{verb} {len(planned)} poller file(s) to {pollers[0].path.parent}: {new} NEW and {old} OLD rows"
    if not dry_run:
        actions = Counter(p.job_action for p in planned)
        line += "; jobs " + ", ".join(f"{n} {action}" for action, n in sorted(actions.items()))
    if len(planned) < len(pollers):
        line += f"; {len(pollers) - len(planned)} sky cell(s) not planned (errors above)"
    console.print(line, soft_wrap=True, markup=False, highlight=False)
