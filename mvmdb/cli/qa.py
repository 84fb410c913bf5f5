"""``mvm qa``: pixel quality checks (trailed exposures, misaligned visits) of catalogued exposures.

The work is :func:`mvmdb.quality.run_qa`; this module parses options and prints.
"""

from __future__ import annotations

import click
from rich.table import Table

from mvmdb.cli.context import console as piped_console
from mvmdb.cli.context import echo_json, engine
from mvmdb.cli.options import json_option
from mvmdb.quality import QaReport, configure, run_qa


@click.command()
@click.option("--skycell", "skycells", multiple=True, metavar="NAME",
              help="Check only exposures of this sky cell (skycell-p1889x07y19 or p1889x07y19); repeatable.")
@click.option("--report-only", is_flag=True, help="Store and report the checks; exclude nothing.")
@click.option("--alignment-policy", type=click.Choice(["report", "exclude"]), default=None,
              help="Store the catalog's policy for misaligned visits (kept for later runs; default report).")
@click.option("--alignment-threshold", "threshold", type=float, default=None, metavar="MAS",
              help="Store the catalog's alignment threshold in milliarcseconds (kept; default 20).")
@click.option("--by", metavar="NAME", default=None, help="Who excludes (audit trail); default 'mvm qa'.")
@json_option("One JSON object per exposure and check.")
@click.pass_context
def qa(ctx: click.Context, skycells: tuple[str, ...], report_only: bool, alignment_policy: str | None,
       threshold: float | None, by: str | None, as_json: bool) -> None:
    """Check the pixels of exposures not checked yet (or whose file changed): trails and alignment.

    Trailed exposures are excluded (reason 'trailed ...') and their layers re-planned, unless
    --report-only; visits offset by more than the threshold are flagged, and excluded when the
    catalog's alignment policy is 'exclude'.
    """
    eng = engine(ctx)
    if alignment_policy is not None or threshold is not None:
        configure(eng, policy=alignment_policy, threshold_mas=threshold)
    report = run_qa(eng, list(skycells) or None, report_only=report_only, by=by)
    if as_json:
        for row in report.rows:
            echo_json(row)
        return
    _summary(report)


def _summary(report: QaReport) -> None:
    console = piped_console()
    flagged = [r for r in report.rows if r["flagged"]]
    n_exp = len({r["ipppssoot"] for r in report.rows})
    if flagged:
        table = Table("exposure", "check", "value", "excluded", "reason", box=None)
        for r in flagged:
            value = "" if r["value"] is None else f"{r['value']:.3g}"
            table.add_row(r["ipppssoot"], r["check"], value, "yes" if r["excluded"] else "no", r["reason"])
        console.print(table)
    mixed = {k: v for k, v in report.layer_families.items() if len(v) > 1}
    for layer, fams in sorted(mixed.items()):
        console.print(f"layer {layer} mixes WCS families: {', '.join(fams)}", markup=False, highlight=False)
    line = (f"checked {n_exp} exposure(s): {len(flagged)} flagged, {len(report.excluded)} excluded "
            f"(alignment policy {report.policy}, threshold {report.threshold_mas:g} mas)")
    if report.skycells:
        line += f"; {len(report.skycells)} sky cell(s) to redraw (run mvm plan)"
    console.print(line, soft_wrap=True, markup=False, highlight=False)
