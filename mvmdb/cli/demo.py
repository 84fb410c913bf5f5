"""``mvm demo``: the whole pipeline on the embedded default database."""

from __future__ import annotations

import click

from mvmdb.cli.context import engine, location
from mvmdb.db import migrate
from mvmdb.db.status import row_counts


@click.command()
@click.pass_context
def demo(ctx: click.Context) -> None:
    """Run the pipeline end to end on a simulated archive (embedded database by default)."""
    eng = engine(ctx, check_schema=False)
    migrate.upgrade(eng)
    click.echo(f"catalog: {location(ctx).describe()}")
    for table, n in row_counts(eng).items():
        click.echo(f"  {table:18s} {n:>10,}")
