"""The end-to-end demo: simulate a small archive, ingest, plan, process, report.

Everything lives under one output directory (default ``./demo-output``)::

    archive/    simulated FLT/FLC files (scenes ``pg1202`` and ``ra0``) + truth.ecsv
    pollers/    poller files written by the planner
    products/   <skycell-name>/hst_skycell-..._dr[cz].fits
    previews/   asinh quick-looks per layer, colour composites, coverage map
    home/       the embedded PostgreSQL (used when no --db / MVMDB_URL is given)

Running it again does nothing new (ingest finds every file unchanged, the planner finds
no NEW member, previews are only redrawn for products that changed). ``add_visit`` plus
``scripts/nightly_ingest`` then redraw only the layers the new visit touches.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from mvmdb.db import migrate

#: The scenes the demo simulates: pg1202 sits where rings 29 and 30 overlap, so two
#: projection cells (p1889, p1970) get products; ra0 crosses RA = 0.
DEMO_SCENES = ("pg1202", "ra0")


@dataclass
class DemoResult:
    """What the demo did and where it put things (paths absolute)."""

    out_dir: Path
    simulated: int = 0
    ingest_counts: dict[str, int] = field(default_factory=dict)
    pollers: list[Path] = field(default_factory=list)
    layers_done: int = 0
    layers_failed: int = 0
    previews: list[Path] = field(default_factory=list)
    coverage_map: Path | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def archive(self) -> Path:
        return self.out_dir / "archive"

    @property
    def products(self) -> Path:
        return self.out_dir / "products"

    @property
    def pollers_dir(self) -> Path:
        return self.out_dir / "pollers"

    @property
    def previews_dir(self) -> Path:
        return self.out_dir / "previews"


def demo_home(out_dir: Path) -> Path:
    """``MVMDB_HOME`` of the demo's own embedded server."""
    return Path(out_dir).resolve() / "home"


def simulate_archive(
    archive: Path, *, downscale: int, scenes=DEMO_SCENES, seed: int = 0, progress: bool = False
) -> int:
    """Simulate ``scenes`` into ``archive/<scene>/`` unless already there; files written."""
    from mvmdb.simulate import MANIFEST_FILE, simulate_scene

    written = 0
    for k, scene in enumerate(scenes):
        where = archive / scene
        if (where / MANIFEST_FILE).exists():
            continue
        result = simulate_scene(scene, where, seed=seed + k, downscale=downscale, progress=progress)
        written += len(result.paths)
    return written


def run_demo(
    engine: sa.Engine,
    out_dir: str | os.PathLike[str],
    *,
    downscale: int = 1,
    scenes=DEMO_SCENES,
    executor: str = "local",
    progress: bool = False,
    say: Callable[[str], None] = print,
) -> DemoResult:
    """Run the whole pipeline on ``engine``'s catalog; see the module docstring.

    ``scenes``: simulator scenes to add to ``out_dir/archive`` (files already there, from
    earlier runs or put there by the caller, are ingested too).
    """
    from mvmdb.ingest import ingest
    from mvmdb.plan import plan
    from mvmdb.process.run import run_queue
    from mvmdb.report import coverage_map_png

    res = DemoResult(Path(out_dir).resolve())
    res.out_dir.mkdir(parents=True, exist_ok=True)
    clock = time.monotonic()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.monotonic()
        res.timings[name] = round(now - clock, 2)
        clock = now

    migrate.upgrade(engine)
    lap("init")

    res.simulated = simulate_archive(res.archive, downscale=downscale, scenes=scenes, progress=progress)
    say(f"simulate: {res.simulated} new exposure files in {res.archive}" if res.simulated
        else f"simulate: archive already in {res.archive}")
    lap("simulate")

    summary = ingest(engine, [res.archive], progress=progress)
    res.ingest_counts = {status: n for status, n in summary.counts.items() if n}
    say("ingest:   " + ", ".join(f"{n} {status}" for status, n in sorted(res.ingest_counts.items())))
    for path, reason in summary.errors:
        say(f"          error: {path}: {reason}")
    lap("ingest")

    pollers = plan(engine, res.pollers_dir)
    res.pollers = [p.path for p in pollers]
    say(f"plan:     {len(pollers)} poller file(s) for sky cells with NEW members"
        + (": " + ", ".join(p.skycell for p in pollers) if pollers else " (nothing to do)"))
    lap("plan")

    outcomes = run_queue(engine, res.products, executor=executor) if pollers else []
    results = [r for o in outcomes for r in o.results]
    res.layers_done = sum(r.status == "done" for r in results)
    res.layers_failed = sum(r.status == "failed" for r in results)
    say(f"process:  {res.layers_done} layer(s) drawn, {res.layers_failed} failed")
    for r in results:
        if r.status == "failed":
            say(f"          failed: {r.layer}: {r.reason}")
    lap("process")

    res.previews = write_changed_previews(engine, res.previews_dir)
    res.coverage_map = res.previews_dir / "coverage_exptime.png"
    if res.previews or not res.coverage_map.exists():
        coverage_map_png(engine, res.coverage_map, metric="exptime")
    say(f"previews: {len(res.previews)} PNG(s) written in {res.previews_dir}")
    lap("previews")
    return res


def write_changed_previews(engine: sa.Engine, out_dir: Path) -> list[Path]:
    """Previews of sky cells whose products are newer than their PNGs (all on the first run)."""
    from mvmdb.db.products import current_products
    from mvmdb.preview import stale_previews, write_previews

    return write_previews(stale_previews(current_products(engine), out_dir), out_dir)
