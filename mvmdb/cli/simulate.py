"""``mvm simulate``: write a named synthetic scene, or add one new visit to a scene."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import click

from mvmdb.cli.options import out_dir_option
from mvmdb.simulate import DEFECTS, SCENES, SimulationError, add_visit, simulate_scene


def _summary(result, verb: str) -> None:
    m = result.manifest
    click.echo(
        f"{verb} {len(result.paths)} file(s) to {result.out_dir} in {result.elapsed_s:.1f} s "
        f"(truth: {result.truth_path.name}, manifest: {result.manifest_path.name})"
    )
    if m is None or not len(result.paths):
        return
    names = {p.name for p in result.paths}
    rows = [r for r in m if str(r["path"]) in names]
    counts = Counter((str(r["instrument"]), str(r["detector"]), str(r["filter"])) for r in rows)
    for (inst, det, filt), n in sorted(counts.items()):
        click.echo(f"  {inst:4s} {det:4s} {filt:7s} {n:5d}")
    flagged = [r for r in rows if str(r["defects"]).strip()]
    for r in flagged:
        click.echo(f"  defect {r['defects']}: {r['path']}")


@click.command()
@click.option("--scene", "scene", type=click.Choice(SCENES, case_sensitive=False), help="Scene to write.")
@out_dir_option("Directory for the files, truth.ecsv and exposures.ecsv.")
@click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=None,
              help="Random seed (default 0; with --new-visit: derived from the scene's seed).")
@click.option("--downscale", type=click.IntRange(1, 256), default=1, show_default=True,
              help="Shrink every chip by K keeping its footprint (tests: 8-16).")
@click.option("--defect", "defects", multiple=True, metavar="NAME[:VALUE]",
              help=f"Add an exposure with a defect (repeatable): {', '.join(DEFECTS)}; "
              "e.g. wcs_error:8 (pixels), grism:G800L.")
@click.option("--header-only", is_flag=True,
              help="Empty data arrays (SIZAXIS1/2 keep the size), for ingest benchmarks.")
@click.option("--count", "n_exposures", type=click.IntRange(1), default=None,
              help="Number of exposures of the 'bulk' scene (default 1000).")
@click.option("--new-visit", is_flag=True,
              help="Add one new visit inside the footprint of the existing scene in --out.")
@click.option("--detector", "detector", default=None, metavar="INSTR/DET",
              help="With --new-visit: instrument/detector of the visit, e.g. WFC3/IR (default: the scene's).")
@click.option("--filter", "filter_", default=None, help="With --new-visit: filter of the visit.")
@click.option("--proper-motion", "proper_motion", type=float, default=None, metavar="MAS_PER_YR",
              help="Add a bright isolated star with this proper motion (mas/yr, towards PA 45 deg) from the "
              "scene's first exposure; its position per exposure goes to truth.ecsv.")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: when stderr is a terminal).")
@click.option("--list", "list_only", is_flag=True, help="List the scenes and defects and exit.")
def simulate(scene, out_dir, seed, downscale, defects, header_only, n_exposures, new_visit, detector, filter_,
             proper_motion, progress, list_only) -> None:
    """Write synthetic HST exposures (archive-like _flt/_flc files) with a known truth.

    \b
    Examples:
      mvm simulate --scene pg1202 --out sim/pg1202 --downscale 8
      mvm simulate --scene deep --out sim/deep --defect trail --defect wcs_error:6
      mvm simulate --scene bulk --count 10000 --header-only --out sim/bulk
      mvm simulate --out sim/pg1202 --new-visit          # nightly: one more visit
      mvm simulate --scene years --out sim/years --proper-motion 50   # 2011-2016, a moving star

    Next to the files: truth.ecsv (sources, fluxes per filter in e-/s) and
    exposures.ecsv (one row per file: sky per chip, CRs, defects, ...).
    """
    if list_only:
        click.echo("scenes:  " + ", ".join(SCENES))
        click.echo("defects: " + ", ".join(DEFECTS))
        return
    if out_dir is None:
        raise click.UsageError("--out is required")
    show = sys.stderr.isatty() if progress is None else progress
    try:
        if new_visit:
            inst = det = None
            if detector:
                inst, _, det = detector.partition("/")
                if not det:
                    raise click.BadParameter("use INSTR/DET, e.g. WFC3/IR", param_hint="--detector")
            if scene:
                from astropy.table import Table

                manifest = out_dir / "exposures.ecsv"
                if manifest.is_file():
                    have = str(Table.read(manifest, format="ascii.ecsv").meta.get("scene", ""))
                    if have and have != scene.lower():
                        raise click.UsageError(f"{out_dir} holds scene {have!r}, not {scene!r}")
            if proper_motion is not None:
                raise click.UsageError("--proper-motion applies to a new scene; a new visit keeps the scene's motion")
            result = add_visit(out_dir, seed=seed, instrument=inst, detector=det, filter=filter_, progress=show)
            _summary(result, "added")
            return
        if not scene:
            raise click.UsageError("--scene is required (or --new-visit to extend an existing scene)")
        result = simulate_scene(
            scene, out_dir, seed=0 if seed is None else seed, downscale=downscale, defects=defects,
            header_only=header_only, progress=show, n_exposures=n_exposures, proper_motion=proper_motion,
        )
        _summary(result, "wrote")
    except (SimulationError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
