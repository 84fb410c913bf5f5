"""Shared CLI plumbing: getting an engine for the command's database."""

from __future__ import annotations

import click
import sqlalchemy as sa

from mvmdb.db.engine import DatabaseLocation, make_engine, resolve_location
from mvmdb.db.migrate import require_current


def location(ctx: click.Context) -> DatabaseLocation:
    obj = ctx.find_root().obj or {}
    if "location" not in obj:
        obj["location"] = resolve_location(obj.get("db_url"))
    return obj["location"]


def engine(ctx: click.Context, *, check_schema: bool = True) -> sa.Engine:
    """An engine for the command's database; by default refuse a schema that is not at head."""
    obj = ctx.find_root().obj
    if "engine" not in obj:
        obj["engine"] = make_engine(location(ctx).url)
        ctx.find_root().call_on_close(obj["engine"].dispose)
    eng = obj["engine"]
    if check_schema and not obj.get("schema_ok"):
        require_current(eng)
        obj["schema_ok"] = True
    return eng


#: Width of rich output that goes to a pipe or a capture instead of a terminal.
PIPED_WIDTH = 240


def console(**kwargs):
    """A rich console; piped or captured output is not squeezed into 80 columns (paths stay whole)."""
    from rich.console import Console

    con = Console(**kwargs)
    if not con.is_terminal:
        con.width = PIPED_WIDTH
    return con


def echo_json(obj) -> None:
    import json

    click.echo(json.dumps(obj, sort_keys=False, default=str))
