"""The ``mvm`` command: a click group whose subcommands live in their own modules.

Subcommands are imported only when used (``LazyGroup``) so ``mvm --help`` and quick
commands start fast. Every command resolves the database the same way
(``--db`` > ``MVMDB_URL`` > embedded server, see :mod:`mvmdb.db.engine`).
Errors the user can fix (:class:`mvmdb.errors.MvmdbError`) print as one line
``mvm: error: ...`` with exit status 1; ``-v`` shows the traceback too.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys

import click

from mvmdb import __version__
from mvmdb.errors import MvmdbError

# name -> "module:attribute" of a click command; each module owns its command.
COMMANDS: dict[str, str] = {
    "init": "mvmdb.cli.database:init",
    "status": "mvmdb.cli.database:status",
    "db": "mvmdb.cli.database:db",
    "skycell": "mvmdb.cli.skycell:skycell",
    "simulate": "mvmdb.cli.simulate:simulate",
    "ingest": "mvmdb.cli.ingest:ingest",
    "plan": "mvmdb.cli.plan:plan",
    "process": "mvmdb.cli.process:process",
    "worker": "mvmdb.cli.process:worker",
    "coverage": "mvmdb.cli.coverage:coverage",
    "preview": "mvmdb.cli.preview:preview",
    "demo": "mvmdb.cli.demo:demo",
    "exclude": "mvmdb.cli.exclusion:exclude",
    "include": "mvmdb.cli.exclusion:include",
    "qa": "mvmdb.cli.qa:qa",
    "layers": "mvmdb.cli.layers:layers",
}


class LazyGroup(click.Group):
    """A group that imports each subcommand's module on first use.

    ``mvm --help`` lists the commands with the help their modules' sources give
    (:func:`listed_help`), so it imports none of them (1.9 s -> 0.09 s).
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name in COMMANDS if _module_exists(COMMANDS[name]))

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """click's command list, each line from :func:`listed_help` (the command is imported only
        where its source does not say its help plainly)."""
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(n) for n in names)  # as click's own list
        rows = []
        for name in names:
            text = listed_help(COMMANDS[name])
            cmd = click.Command(name, help=text) if text is not None else self.get_command(ctx, name)
            if cmd is not None and not cmd.hidden:
                rows.append((name, cmd.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None or not _module_exists(target):
            return None
        module, attr = target.split(":")
        return getattr(importlib.import_module(module), attr)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:  # a bad top-level option (``mvm --db`` without a URL): one line, exit 1
            _fail(ctx, exc.format_message(), 1)
            raise  # not reached: _fail exits

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.Abort):
            raise
        except click.ClickException as exc:  # usage errors too: one line, exit 1 (2 means a partial batch)
            _fail(ctx, exc.format_message(), 1)
        except Exception as exc:  # noqa: BLE001 - what a user can cause becomes one line; the rest is re-raised
            message = user_error(exc)
            if message is None:
                raise
            _fail(ctx, message, 1)


def user_error(exc: BaseException) -> str | None:
    """The one line for an error the user can cause or fix, else None (a bug: let it raise).

    :class:`MvmdbError` (bad input, configuration); a lost or unreachable database
    (SQLAlchemy/psycopg ``OperationalError``/``InterfaceError``); a file or directory the
    command cannot create, read or write (``OSError``).
    """
    import sqlalchemy as sa

    from mvmdb.errors import one_line

    if isinstance(exc, MvmdbError):
        return str(exc)
    if isinstance(exc, (sa.exc.OperationalError, sa.exc.InterfaceError)) or type(exc).__name__ in (
            "OperationalError", "InterfaceError"):
        orig = getattr(exc, "orig", None) or exc
        return f"lost the connection to the database: {one_line(orig, 300)}"
    if isinstance(exc, OSError):
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror or one_line(exc)}{where}"
    return None


def _fail(ctx: click.Context, message: str, status: int) -> None:
    if ctx.obj and ctx.obj.get("verbose"):
        logging.getLogger("mvmdb").exception("error")
    click.echo(f"mvm: error: {' '.join(str(message).split())}", err=True)
    ctx.exit(status)


def listed_help(target: str) -> str | None:
    """The help text of command ``target`` ("module:function") as its module's source gives it, read
    without importing the module: the ``help=`` of its click decorator (a string, or a module-level
    string constant; of an f-string, the literal text before the first substitution when it holds
    the whole first paragraph), else the function's docstring. None when the source does not say
    it plainly. Enough for the command list, which shows the first sentence."""
    import ast
    import importlib.util
    import itertools

    module, attr = target.split(":")
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    with open(spec.origin, encoding="utf-8") as fh:
        tree = ast.parse(fh.read())

    def plain(node: ast.expr | None) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.JoinedStr):
            head = "".join(v.value for v in itertools.takewhile(lambda v: isinstance(v, ast.Constant), node.values))
            return head if "\n\n" in head else None
        if isinstance(node, ast.Name):
            return plain(constants.get(node.id))
        return None

    constants = {t.id: n.value for n in tree.body if isinstance(n, ast.Assign)
                 for t in n.targets if isinstance(t, ast.Name)}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == attr:
            for dec in node.decorator_list:  # the click.command / click.group call, not its options
                func = dec.func if isinstance(dec, ast.Call) else None
                if getattr(func, "attr", getattr(func, "id", None)) not in ("command", "group"):
                    continue
                for kw in dec.keywords:
                    if kw.arg in ("help", "short_help"):
                        return None if kw.arg == "short_help" else plain(kw.value)
            return ast.get_docstring(node, clean=False)
    return None


def _module_exists(target: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(target.split(":")[0]) is not None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--db",
    "db_url",
    metavar="URL",
    help="PostgreSQL URL (postgresql+psycopg://user@host:port/db). Default: $MVMDB_URL, else an embedded "
    "PostgreSQL in $MVMDB_HOME (started on demand).",
)
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.version_option(__version__, prog_name="mvm")
@click.pass_context
def cli(ctx: click.Context, db_url: str | None, verbose: int) -> None:
    """mvm: catalog, plan and process Hubble multi-visit mosaics (MVM).

    \b
    The nightly flow:
      mvm ingest /data/hst            files -> catalog (exposures, chips, sky cells, layers)
      mvm plan --out pollers/         layers with NEW members -> poller files + jobs
      mvm process --queue             drizzle planned layers -> products; members -> OLD
      mvm coverage                    what the catalog covers, as tables, maps and MOCs
      mvm preview --changed           quick-look PNGs of the products that changed
    """
    ctx.ensure_object(dict)
    ctx.obj["db_url"] = db_url
    ctx.obj["verbose"] = verbose
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)


_fast_exit = False


def exit_fast_when_done() -> None:
    """Let :func:`main` end the process with ``os._exit`` once the command has returned.

    For commands that have closed everything they opened (executors, engines, files):
    tearing the interpreter down after drawing (astropy, scipy, numpy, SQLAlchemy modules)
    takes ~0.3-0.5 s and has nothing left to do. Output streams and log handlers are
    flushed first. Only the console entry point does this; ``cli`` called in-process
    (tests, ``CliRunner``) returns as usual.
    """
    global _fast_exit
    _fast_exit = True


def _exit_now(code) -> None:
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:
        print(code, file=sys.stderr)
        status = 1
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            status = status or 1
    os._exit(status)


def main() -> None:
    global _fast_exit
    _fast_exit = False
    try:
        cli(prog_name="mvm")
    except SystemExit as exc:
        if _fast_exit:
            _exit_now(exc.code)
        raise


if __name__ == "__main__":
    main()
