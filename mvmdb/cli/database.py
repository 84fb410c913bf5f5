"""``mvm init``, ``mvm status`` and ``mvm db ...``: the catalog database itself."""

from __future__ import annotations

import click
from rich.table import Table

from mvmdb.cli.context import console, echo_json, engine, location
from mvmdb.cli.options import json_option
from mvmdb.db import migrate
from mvmdb.db.status import row_counts


@click.command()
@click.pass_context
def init(ctx: click.Context) -> None:
    """Create or upgrade the catalog schema (runs the alembic migrations)."""
    eng = engine(ctx, check_schema=False)
    before = migrate.current_revision(eng)
    migrate.upgrade(eng)
    after = migrate.current_revision(eng)
    where = location(ctx).describe()
    if before == after:
        click.echo(f"catalog ready at schema {after}: {where}")
    else:
        click.echo(f"catalog schema {before or 'empty'} -> {after}: {where}")


@click.command()
@json_option("Print one JSON object.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Where the catalog lives, its schema revision and row counts per table."""
    loc = location(ctx)
    eng = engine(ctx, check_schema=False)
    current = migrate.require_current(eng)  # one line and exit 1 unless at head
    head = migrate.head_revision()
    counts = row_counts(eng)
    if as_json:
        echo_json(
            {
                "database": loc.url.render_as_string(hide_password=True),
                "source": loc.source,
                "data_dir": str(loc.data_dir) if loc.data_dir else None,
                "schema_revision": current,
                "head_revision": head,
                "tables": counts,
            }
        )
        return
    con = console()
    con.print(f"database: {loc.describe()}")
    con.print(f"schema:   {current} (head {head})")
    table = Table("table", "rows", title=None, box=None)
    for name, n in counts.items():
        table.add_row(name, f"{n:,}")
    con.print(table)


@click.group()
def db() -> None:
    """Database maintenance: migrations and the embedded server."""


@db.command()
@click.option("--revision", default="head", show_default=True, help="Target alembic revision.")
@click.pass_context
def upgrade(ctx: click.Context, revision: str) -> None:
    """Apply migrations up to REVISION."""
    eng = engine(ctx, check_schema=False)
    migrate.upgrade(eng, revision)
    click.echo(f"schema at {migrate.current_revision(eng)}")


@db.command()
@click.argument("revision")
@click.pass_context
def downgrade(ctx: click.Context, revision: str) -> None:
    """Revert migrations down to REVISION ('base' drops everything)."""
    eng = engine(ctx, check_schema=False)
    migrate.downgrade(eng, revision)
    click.echo(f"schema at {migrate.current_revision(eng) or 'base'}")


@db.command("stop")
def stop_cmd() -> None:
    """Stop the embedded PostgreSQL server (if it runs)."""
    from mvmdb.db.engine import mvmdb_home, stop_embedded_server

    data_dir = mvmdb_home() / "pgdata"
    click.echo("embedded server stopped" if stop_embedded_server(data_dir) else "embedded server was not running")
