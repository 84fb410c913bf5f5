"""``mvm preview``: quick-look PNGs of products (grey per layer, colour per sky cell).

Forms::

    mvm preview                          every current product in the catalog
    mvm preview skycell-p1889x07y19 ...  the current products of these sky cells
    mvm preview PRODUCT_drc.fits ...     these product files (no database needed)
    mvm preview --changed                only sky cells whose products are newer than their PNGs

Without sky cells or files, PNGs of products that left the catalog are removed
(:func:`mvmdb.preview.prune_previews`).

Work is in :mod:`mvmdb.preview` (pictures) and :mod:`mvmdb.db.products` (the catalog
query); this module parses, selects and reports. ``--json`` prints one object per PNG
with the keys ``png``, ``skycell`` and ``kind`` (``layer`` or ``color``) -- a contract.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from mvmdb.cli.context import echo_json, engine
from mvmdb.cli.options import json_option, out_dir_option

DEFAULT_OUT = Path("previews")


def _split_targets(targets: tuple[str, ...]) -> tuple[list[str], list[Path]]:
    """Sky cell names and product files among the arguments (a one-line error otherwise)."""
    from mvmdb.sky.grid import normalize_skycell_names

    names, files = [], []
    for t in targets:
        if os.path.exists(t):
            files.append(Path(t))
            continue
        try:
            names.extend(normalize_skycell_names([t]))
        except ValueError:
            raise click.UsageError(f"{t!r} is neither a product file nor a sky cell name (skycell-p1889x07y19)") from None
    return names, files


@click.command()
@click.argument("targets", nargs=-1, metavar="[SKYCELL | PRODUCT.fits]...")
@out_dir_option("Directory for the PNGs.", DEFAULT_OUT)
@click.option("--changed", is_flag=True,
              help="Only sky cells with a product newer than its PNG (what a nightly run needs).")
@json_option("One JSON object per PNG written on stdout.")
@click.pass_context
def preview(ctx: click.Context, targets: tuple[str, ...], out_dir: Path, changed: bool, as_json: bool) -> None:
    """Draw quick-look PNGs of MVM products: an asinh-stretched grey image per layer
    (<layer>.png) and, for a sky cell with three or more fine filters, a colour composite
    of the reddest, a middle and the bluest (<skycell>_color.png). Large layers are
    block-averaged to at most 2048 px on a side.

    With no argument, every current product in the catalog; with sky cell names, theirs;
    with product files, those files (the database is not used). Without arguments the PNGs
    of products no longer in the catalog (a layer emptied by mvm exclude) are removed too.
    """
    from mvmdb.preview import choose_products, prune_previews, write_previews

    names, files = _split_targets(targets)
    try:
        refs = choose_products(lambda: engine(ctx), names, files, changed=changed, out_dir=out_dir)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    if not names and not files:
        removed = prune_previews(lambda: engine(ctx), out_dir)
        if removed:
            click.echo(f"removed {len(removed)} PNG(s) of products no longer in the catalog from {out_dir}", err=True)
    if not refs:
        click.echo("nothing to draw: no products" + (" newer than their previews" if changed else ""), err=True)
        return

    cells = {r.skycell for r in refs}

    def report(png: Path, skycell: str, kind: str) -> None:
        if as_json:
            echo_json({"png": str(png), "skycell": skycell, "kind": kind})
        else:
            click.echo(str(png))

    written = write_previews(refs, out_dir, on_written=report)
    if not as_json:
        click.echo(f"{len(written)} PNG(s) for {len(refs)} product(s) in {len(cells)} sky cell(s) in {out_dir}",
                   err=True)
