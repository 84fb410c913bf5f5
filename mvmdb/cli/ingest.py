"""``mvm ingest PATH...``: a thin wrapper around :func:`mvmdb.ingest.ingest`.

Output: with ``--json`` one JSON object per input file on stdout (keys ``path``,
``ipppssoot``, ``status``, ``reason``, ``sky_cells``, ``layers``); without it, nothing on
stdout. Always on stderr: ``mvm: <path>: <reason>`` for each failed file, and the summary
at the end. A progress bar is drawn on stderr when it is a terminal and ``--json`` is off.
Exit status 0, or 2 when any file failed (1 for configuration errors, e.g. a bad switch).
"""

from __future__ import annotations

import sys

import click

from mvmdb.cli.context import echo_json, engine
from mvmdb.cli.options import json_option
from mvmdb.errors import ConfigError


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=None, metavar="N",
              help="Header-reading processes (default: the usable CPU cores).")
@json_option("One JSON object per input file on stdout.")
@click.option("--include-small/--no-include-small", default=None,
              help="Let ACS/HRC and ACS/SBC join layers (default: $MVM_INCLUDE_SMALL, else on).")
@click.option("--only-cte/--no-only-cte", default=None,
              help="Keep UVIS/WFC FLT files out of layers (default: $MVM_ONLY_CTE, else off).")
@click.pass_context
def ingest(ctx: click.Context, paths: tuple[str, ...], jobs: int | None, as_json: bool,
           include_small: bool | None, only_cte: bool | None) -> None:
    """Catalog FLT/FLC exposures: files, directories (*_flt.fits, *_flc.fits, recursive) or list files.

    \b
    Each file gives one exposure row (one chip row per SCI extension) with its footprint,
    HEALPix ranges, sky cells and layer memberships (NEW). Excluded exposures are stored
    with their reason; re-ingesting unchanged files writes nothing; a re-aligned WCS
    recomputes memberships and marks the affected layers for redraw.
    """
    from mvmdb import rules
    from mvmdb.ingest import ingest as run_ingest
    from mvmdb.ingest import print_error_line

    try:
        if include_small is None:
            include_small = rules.switch_from_env(_environ(), "MVM_INCLUDE_SMALL", True)
        if only_cte is None:
            only_cte = rules.switch_from_env(_environ(), "MVM_ONLY_CTE", False)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None

    eng = engine(ctx)

    def on_result(result) -> None:
        if as_json:
            echo_json(result.to_json())
        if result.status == "error":
            print_error_line(result)

    summary = run_ingest(
        eng,
        paths,
        jobs=jobs,
        include_small=include_small,
        only_cte=only_cte,
        progress=not as_json and sys.stderr.isatty(),
        details=as_json,
        on_result=on_result,
    )
    for line in summary.lines():
        click.echo(line, err=True)
    ctx.exit(summary.exit_code)


def _environ():
    import os

    return os.environ
