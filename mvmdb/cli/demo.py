"""``mvm demo``: the whole pipeline on a simulated archive, by default on its own embedded database."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import click

from mvmdb.cli.context import engine, location
from mvmdb.cli.options import out_dir_option


@click.command()
@out_dir_option("Where the archive, pollers, products, previews (and the embedded database) go.", Path("demo-output"))
@click.option("--downscale", type=click.IntRange(1, 32), default=1, show_default=True,
              help="Shrink detectors by K (same sky footprint, K times coarser pixels): faster, smaller.")
@click.option("--executor", default="local", show_default=True, metavar="local[:N]|dask[:N]|inline",
              help="Where layers are drawn (default: one process per core).")
@click.pass_context
def demo(ctx: click.Context, out_dir: Path, downscale: int, executor: str) -> None:
    """Simulate a small HST archive, then ingest, plan, process and report on it.

    \b
    Scenes: pg1202 (ACS/WFC, WFC3/IR, WFC3/UVIS over two epochs at RA 181.1754,
    Dec +27.9031, where two rings of projection cells overlap) and ra0 (footprints
    across RA = 0). Without --db or MVMDB_URL the demo keeps its own embedded
    PostgreSQL in OUT/home, so your default catalog is untouched. Run it twice: the
    second run finds nothing to do.
    """
    from mvmdb.demo import demo_home, run_demo

    root = ctx.find_root().obj
    if not root.get("db_url") and not os.environ.get("MVMDB_URL"):
        os.environ["MVMDB_HOME"] = str(demo_home(out_dir))
    t0 = time.monotonic()
    eng = engine(ctx, check_schema=False)
    click.echo(f"catalog:  {location(ctx).describe()}")
    result = run_demo(eng, out_dir, downscale=downscale, executor=executor, progress=sys.stderr.isatty())
    _coverage_table(eng)
    wall = time.monotonic() - t0
    data_dir = location(ctx).data_dir  # the embedded server's PGDATA, inside MVMDB_HOME
    home = data_dir.parent if data_dir else None
    click.echo("")
    stages = ", ".join(f"{k} {v:.1f} s" for k, v in result.timings.items())
    click.echo(f"done in {wall:.1f} s ({stages}). Where things are:")
    click.echo(f"  exposures  {result.archive}")
    click.echo(f"  pollers    {result.pollers_dir}")
    click.echo(f"  products   {result.products}")
    click.echo(f"  previews   {result.previews_dir}  (coverage map: {result.coverage_map.name})")
    click.echo(f"  database   {location(ctx).describe()}")
    prefix = f"MVMDB_HOME={home} " if home else ""
    click.echo("next:")
    click.echo(f"  {prefix}mvm coverage --skycell skycell-p1889x07y19")
    click.echo(f"  {prefix}mvm simulate --out {result.archive / 'pg1202'} --new-visit")
    click.echo(f"  {prefix}scripts/nightly_ingest {result.archive} --plan {result.pollers_dir} --process "
               f"--products {result.products}")
    if result.layers_failed:
        ctx.exit(1)


def _coverage_table(eng) -> None:
    from rich.table import Table

    from mvmdb.cli.context import console

    from mvmdb.db.coverage import layer_coverage

    rows = layer_coverage(eng)
    table = Table("sky cell", "layer", "exposures", "exptime (s)", "dates", "product", title="coverage", box=None)
    for r in rows:
        layer = f"{r['instrument']}/{r['detector']} {r['filter']} {r['scale']}".lower()
        dates = f"{r['first_date']} .. {r['last_date']}"
        table.add_row(r["sky_cell_name"], layer, str(r["n_exposures"]), f"{r['total_exptime_s']:.0f}", dates,
                      r["product_status"])
    console().print(table)
