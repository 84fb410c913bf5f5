"""``mvm process`` and ``mvm worker``: draw planned layers into products (see :mod:`mvmdb.process`).

``mvm process --queue`` drains the job queue once; ``mvm process POLLER...`` processes poller
files (ours or the archive's); ``mvm worker`` is the long-running loop. With ``--json`` each
layer gives one JSON object on stdout with the keys ``layer``, ``product`` (path or null),
``status`` (``done``, ``skipped`` or ``failed``), ``reason``, ``members`` and ``keywords``
(the MVM primary keywords); these keys are a contract. The exit status is 1 when a layer
failed.
"""

from __future__ import annotations

import logging
from pathlib import Path

import click

from mvmdb.cli.context import echo_json, engine
from mvmdb.cli.options import json_option
from mvmdb.db import jobs
from mvmdb.process import queue

DEFAULT_PRODUCTS = Path("products")

_products_option = click.option(
    "--products",
    "products_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_PRODUCTS,
    show_default=True,
    envvar="MVMDB_PRODUCTS",
    help="Root of the products: <DIR>/<skycell-name>/<product>.fits. Env: MVMDB_PRODUCTS.",
)


def _common(f):
    for opt in reversed([
        _products_option,
        json_option("One JSON object per layer on stdout."),
        click.option("--heartbeat", type=click.FloatRange(min=0.05), default=queue.DEFAULT_HEARTBEAT,
                     show_default=True, help="Seconds between heartbeats of a running job."),
        click.option("--stale-after", type=click.FloatRange(min=0.1), default=jobs.DEFAULT_STALE_AFTER,
                     show_default=True, help="Seconds without heartbeat after which a running job is re-queued."),
        click.option("--max-attempts", type=click.IntRange(min=1), default=jobs.DEFAULT_MAX_ATTEMPTS,
                     show_default=True, help="Abandoned runs after which a job is marked failed."),
        click.option("--tile", type=click.IntRange(min=64), default=None,
                     help="Output tile size (px) of the drizzle; default: one tile for layers up to 64 Mpx, "
                          "else 4096 (bounded memory)."),
        click.option("--context", is_flag=True, help="Keep the context image (CTX) in the products."),
    ]):
        f = opt(f)
    return f


class _Printer:
    """Prints per-layer results as they arrive; counts failures."""

    def __init__(self, as_json: bool):
        self.as_json = as_json
        self.failed = 0
        self.layers = 0
        self.jobs = 0

    def __call__(self, outcome) -> None:
        self.jobs += bool(outcome.claimed and outcome.job_id is not None)
        if not outcome.results and outcome.note and not self.as_json:
            click.echo(f"{'':8s}{outcome.skycell or outcome.task.poller or outcome.job_id}: {outcome.note}", err=True)
        for r in outcome.results:
            self.layers += 1
            self.failed += r.status == "failed"
            if self.as_json:
                echo_json(r.to_json())
            else:
                where = r.product or ""
                extra = f" ({r.reason})" if r.reason else ""
                click.echo(f"{r.status:8s}{r.layer}  {r.members} members  {where}{extra}")


def _settings(heartbeat, stale_after, max_attempts, tile, context) -> dict:
    from mvmdb.process.draw import DrawOptions

    return dict(heartbeat=heartbeat, stale_after=stale_after, max_attempts=max_attempts,
                draw=DrawOptions(tile_shape=(tile, tile) if tile else None, context=context))


@click.command()
@click.argument("pollers", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--queue", "from_queue", is_flag=True, help="Process the queued jobs (mvm plan queues them).")
@click.option("--executor", default="local", show_default=True, metavar="local[:N]|dask[:N]|inline",
              help="Where tasks run: N processes here (this one and N-1 more), Dask distributed, or this process.")
@click.option("--scheduler", metavar="ADDR", help="Dask scheduler address (tcp://host:8786); default a LocalCluster.")
@_common
@click.pass_context
def process(ctx: click.Context, pollers: tuple[Path, ...], from_queue: bool, executor: str, scheduler: str | None,
            products_dir: Path, as_json: bool, heartbeat: float, stale_after: float, max_attempts: int, tile: int,
            context: bool) -> None:
    """Drizzle layers into products: the queued jobs (--queue) or the given POLLER files.

    \b
    A job covers one sky cell: every layer with NEW members is drawn from all its members
    onto the sky cell's common box, other layers are re-embedded if that box grew, and one
    transaction records the products and turns the drawn memberships OLD.
    A POLLER whose sky cell and files are in the catalog is processed as that sky cell's
    job (claimed, created if needed); otherwise its files are drawn directly, with no
    catalog bookkeeping, and each result says so.
    """
    from mvmdb.process.run import make_executor, run_pollers, run_queue

    if bool(pollers) == from_queue:
        raise click.UsageError("give POLLER files or --queue (one of the two)")
    try:
        ex = make_executor(executor, scheduler)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--executor") from None
    printer = _Printer(as_json)
    with ex:
        ex.start()  # the other processes import the drawing code while this one reads the catalog
        eng = engine(ctx)
        settings = _settings(heartbeat, stale_after, max_attempts, tile, context)
        if from_queue:
            run_queue(eng, products_dir, executor=ex, on_outcome=printer, **settings)
        else:
            run_pollers(eng, pollers, products_dir, executor=ex, on_outcome=printer, **settings)
    from mvmdb.cli.main import exit_fast_when_done

    exit_fast_when_done()  # everything is closed: no interpreter teardown after drawing
    _finish(printer)


@click.command()
@click.option("--once", is_flag=True, help="Process at most one job, then exit.")
@click.option("--idle-exit", type=click.FloatRange(min=0), metavar="SECONDS",
              help="Exit after this many seconds without a claimable job (default: run until stopped).")
@click.option("--poll", type=click.FloatRange(min=0.01), default=5.0, show_default=True,
              help="Seconds between queue polls when idle.")
@_common
@click.pass_context
def worker(ctx: click.Context, once: bool, idle_exit: float | None, poll: float, products_dir: Path, as_json: bool,
           heartbeat: float, stale_after: float, max_attempts: int, tile: int, context: bool) -> None:
    """Loop: reap stale jobs, claim the next queued job, draw it, repeat.

    Run as many workers as you like, on any machines sharing the catalog and the products
    directory: jobs are claimed in PostgreSQL (FOR UPDATE SKIP LOCKED), so each is drawn
    once. A worker holds a lease (a PostgreSQL advisory lock) on its job: a job is re-queued
    only when its heartbeat is older than --stale-after AND its worker's lease is gone (the
    worker died); a slow or starved worker keeps its job. SIGTERM gives the job in hand back.
    A products directory that cannot be written stops the worker before it claims anything.
    """
    from mvmdb.process.run import run_worker

    printer = _Printer(as_json)
    done = run_worker(engine(ctx), products_dir, once=once, idle_exit=idle_exit, poll_interval=poll,
                      on_outcome=printer, **_settings(heartbeat, stale_after, max_attempts, tile, context))
    logging.getLogger(__name__).info("worker processed %d jobs", done)
    _finish(printer)


def _finish(printer: _Printer) -> None:
    if not printer.as_json:
        click.echo(f"{printer.layers} layers, {printer.failed} failed", err=True)
    if printer.failed:
        raise SystemExit(1)
