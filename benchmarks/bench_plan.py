"""Benchmark the planner on a synthetic archive-sized catalog (not a test; run by hand).

    .venv/bin/python benchmarks/bench_plan.py                      # 1 M exposures, 200 k layers
    .venv/bin/python benchmarks/bench_plan.py --exposures 200000 --layers 40000
    .venv/bin/python benchmarks/bench_plan.py --layer-sets year     # issue 17: year layers too

Builds a throw-away database on the test server (:func:`mvmdb.testing.admin_url`:
``MVMDB_TEST_ADMIN_URL``, else PostgreSQL at 127.0.0.1:5432 as ``postgres``), loads the
catalog with COPY, runs ``VACUUM ANALYZE`` and times, per scenario:

* the plan query (``schema/plan.sql`` ``plan_rows``, all rows fetched into Python),
  target < 2 s; and the bare question "which layers have NEW members?";
* building and writing every poller file (target < 30 s), and the full :func:`mvmdb.plan.plan`
  (query + files + job upsert);
* baselines in the same run: the same two queries with the partial index
  ``ix_layer_member_new`` dropped (inside a transaction that is rolled back), and a naive
  ``GROUP BY layer_id HAVING bool_or(status = 'NEW')``; printed as ratios.

Synthetic catalog: sky cells drawn at random from the grid, 4 layers each (ACS/WFC F814W,
WFC3/UVIS F606W, WFC3/IR F160W fine and coarse); visits of 4 exposures land on a sky cell
with a skewed density (cell index ~ n*u^2: a few deep cells with ~1000 members per layer,
a long tail of shallow ones); 30 % of visits also overlap a second sky cell (another
projection cell). Scenarios for the NEW memberships:

* ``ingest``: the newest ``--new-fraction`` of exposures are NEW in all their layers
  (what a nightly ingest leaves behind);
* ``scattered``: ``--new-fraction`` of all memberships, drawn uniformly (worst case: the
  NEW rows touch as many layers as possible, deep ones included).

Exposure starts (EXPSTART, DATE-OBS) grow with the exposure id from 2002 to 2026, so the
``ingest`` scenario's NEW exposures are the latest ones. ``--layer-sets year`` (issue 17)
enables the year set once the catalog is loaded (:func:`mvmdb.db.layersets.sync`, timed:
every exposure gets its year memberships, ~doubling ``layer_member``) before the scenarios.

To iterate on the query without rebuilding 1 M exposures: ``--keep`` keeps the database
(its name is printed), ``--database NAME`` runs the scenarios on such a kept database
(sets already enabled there are not enabled again; the scenarios reset the NEW rows
themselves). ``--database`` implies ``--keep``.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import sqlalchemy as sa

from mvmdb.db.engine import make_engine
from mvmdb.db.members import plan_rows
from mvmdb.plan import build_pollers, plan
from mvmdb.resources import sql_statements
from mvmdb.poller import write_poller
from mvmdb.testing import DatabaseFactory, admin_url

KINDS = (  # (instrument, detector, filter, layer slots)
    ("ACS", "WFC", "f814w", (0,)),
    ("WFC3", "UVIS", "f606w", (1,)),
    ("WFC3", "IR", "f160w", (2, 3)),
)
SLOTS = (  # layer slot -> (instrument, detector, filter, scale)
    ("ACS", "WFC", "f814w", "fine"),
    ("WFC3", "UVIS", "f606w", "fine"),
    ("WFC3", "IR", "f160w", "fine"),
    ("WFC3", "IR", "f160w", "coarse"),
)
LAYERS_PER_CELL = len(SLOTS)
EXPOSURES_PER_VISIT = 4
OVERLAP_FRACTION = 0.3

NAIVE_DIRTY_LAYERS = """
SELECT layer_id FROM layer_member GROUP BY layer_id HAVING bool_or(status = 'NEW')
"""
DIRTY_LAYERS = "SELECT DISTINCT layer_id FROM layer_member WHERE status = 'NEW'"


# -- catalog --------------------------------------------------------------------------


def b36(values: np.ndarray, width: int) -> list[str]:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = []
    for v in values.tolist():
        s = []
        for _ in range(width):
            v, r = divmod(v, 36)
            s.append(digits[r])
        out.append("".join(reversed(s)))
    return out


def exposure_lines(roots, kinds, exptimes, proposals, starts, dates) -> Iterator[str]:
    """COPY lines of the exposure table (ids 1..n, FLC files under /data/hst)."""
    for e, (root, (inst, det, filt), t_exp, prop, start, day) in enumerate(
            zip(roots, kinds, exptimes, proposals, starts, dates)):
        fname = f"{root}_flc.fits"
        yield (
            f"{e + 1}\t{root}\tflc\t{fname}\t/data/hst/{root[:4]}/{root}/{fname}\t{inst}\t{det}\t{filt}\t"
            f"{t_exp!r}\t{prop}\t{root[1:4].upper()}\t{root[4:6].upper()}\t{'0' * 64}\t{'1' * 64}\t"
            f"{start!r}\t{day}\n"
        )


def copy_rows(conn: sa.Connection, table: str, columns: str, lines: Iterator[str], chunk: int = 200_000) -> None:
    """COPY tab-separated ``lines`` into ``table`` through psycopg's COPY protocol."""
    raw = conn.connection.driver_connection
    with raw.cursor() as cur, cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        buf = io.StringIO()
        for n, line in enumerate(lines, start=1):
            buf.write(line)
            if n % chunk == 0:
                copy.write(buf.getvalue())
                buf = io.StringIO()
        copy.write(buf.getvalue())


def build_catalog(engine: sa.Engine, n_exposures: int, n_layers: int, seed: int) -> dict[str, int]:
    """Load sky cells, layers, exposures and memberships (all OLD); return row counts."""
    rng = np.random.default_rng(seed)
    n_cells = n_layers // LAYERS_PER_CELL
    n_cells -= n_cells % 2  # cells 2j and 2j+1 are overlap partners
    grid = rng.choice(2644 * 441, size=n_cells, replace=False)
    pc, rest = np.divmod(grid, 441)
    x, y = rest // 21 + 1, rest % 21 + 1
    cell_ids = pc * 10000 + x * 100 + y
    names = [f"skycell-p{p:04d}x{a:02d}y{b:02d}" for p, a, b in zip(pc.tolist(), x.tolist(), y.tolist())]

    n_visits = n_exposures // EXPOSURES_PER_VISIT
    visit_cell = (n_cells * rng.random(n_visits) ** 2).astype(np.int64)
    visit_kind = rng.integers(0, len(KINDS), n_visits)
    visit_overlap = rng.random(n_visits) < OVERLAP_FRACTION
    exp_visit = np.arange(n_visits * EXPOSURES_PER_VISIT) // EXPOSURES_PER_VISIT
    n_exposures = exp_visit.size

    with engine.begin() as conn:
        conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
        t = time.perf_counter()
        copy_rows(
            conn,
            "sky_cell",
            "id, name, projection_cell_id, x, y",
            (f"{i}\t{n}\t{p}\t{a}\t{b}\n" for i, n, p, a, b in zip(cell_ids.tolist(), names, pc.tolist(), x.tolist(), y.tolist())),
        )
        copy_rows(
            conn,
            "layer",
            "id, sky_cell_id, instrument, detector, filter, scale, name",
            (
                f"{c * LAYERS_PER_CELL + s + 1}\t{cell_ids[c]}\t{i}\t{d}\t{f}\t{sc}\t"
                f"hst_{names[c]}_{i.lower()}_{d.lower()}_{f}_{'coarse-all' if sc == 'coarse' else 'all'}\n"
                for c in range(n_cells)
                for s, (i, d, f, sc) in enumerate(SLOTS)
            ),
        )
        # ids were given explicitly: move the identity on, or later inserts (layer sets) would collide
        conn.exec_driver_sql("SELECT setval(pg_get_serial_sequence('layer', 'id'), max(id)) FROM layer")
        log(f"  sky cells {n_cells:,}, layers {n_cells * LAYERS_PER_CELL:,}: {time.perf_counter() - t:.1f} s")

        t = time.perf_counter()
        letters = np.where(visit_kind[exp_visit] == 0, "j", "i")
        roots = [f"{letter}{code}q" for letter, code in zip(letters.tolist(), b36(np.arange(n_exposures), 7))]
        exptimes = np.round(rng.uniform(30, 1500, n_exposures), 3)
        proposals = 10000 + exp_visit // 50
        # starts grow with the visit from 2002-01-01 (MJD 52275) to 2026-01-01 (MJD 61041)
        starts = np.round(52275.0 + (61041.0 - 52275.0) * exp_visit / max(1, n_visits) +
                          0.01 * (np.arange(n_exposures) % EXPOSURES_PER_VISIT), 6)
        dates = np.datetime_as_string(np.datetime64("1858-11-17") + np.floor(starts).astype("timedelta64[D]"))

        copy_rows(
            conn,
            "exposure",
            "id, ipppssoot, filetype, filename, path, instrument, detector, filter, exptime, proposid, "
            "program_id, obset_id, header_hash, wcs_hash, expstart, date_obs",
            exposure_lines(roots, [KINDS[k][:3] for k in visit_kind[exp_visit].tolist()], exptimes.tolist(),
                           proposals.tolist(), starts.tolist(), dates.tolist()),
        )
        conn.exec_driver_sql("SELECT setval(pg_get_serial_sequence('exposure', 'id'), max(id)) FROM exposure")
        log(f"  exposures {n_exposures:,}: {time.perf_counter() - t:.1f} s")

        t = time.perf_counter()
        counter = [0]

        def member_lines() -> Iterator[str]:
            for e, v in enumerate(exp_visit.tolist()):
                cells = (visit_cell[v], visit_cell[v] ^ 1) if visit_overlap[v] else (visit_cell[v],)
                for c in cells:
                    for s in KINDS[visit_kind[v]][3]:
                        counter[0] += 1
                        yield f"{c * LAYERS_PER_CELL + s + 1}\t{e + 1}\tOLD\t{counter[0]}\n"

        copy_rows(conn, "layer_member", "layer_id, exposure_id, status, generation", member_lines())
        conn.exec_driver_sql(f"SELECT setval('member_generation_seq', {counter[0]})")
        log(f"  memberships {counter[0]:,}: {time.perf_counter() - t:.1f} s")
    return {"sky_cells": n_cells, "layers": n_cells * LAYERS_PER_CELL, "exposures": n_exposures, "members": counter[0]}


def set_new(engine: sa.Engine, scenario: str, fraction: float, counts: dict[str, int], seed: int) -> int:
    """Make ``fraction`` of the catalog NEW per ``scenario``; VACUUM ANALYZE; return NEW memberships."""
    with engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM job")
        conn.exec_driver_sql("UPDATE layer_member SET status = 'OLD' WHERE status = 'NEW'")
        if scenario == "ingest":
            first = int(counts["exposures"] * (1 - fraction)) + 1
            conn.exec_driver_sql(f"UPDATE layer_member SET status = 'NEW' WHERE exposure_id >= {first}")
        else:
            conn.exec_driver_sql(f"SELECT setseed({(seed % 1000) / 1000})")
            conn.exec_driver_sql(
                "UPDATE layer_member SET status = 'NEW', generation = nextval('member_generation_seq') "
                f"WHERE random() < {fraction}"
            )
        n_new = conn.exec_driver_sql("SELECT count(*) FROM layer_member WHERE status = 'NEW'").scalar_one()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE")
    return n_new


# -- timing ---------------------------------------------------------------------------


def best_of(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    """Median wall time of ``repeat`` runs (after one warm-up run) and the last result."""
    result = fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), result


def timed_without_partial_index(engine: sa.Engine, sql: str, params: dict, repeat: int) -> float:
    """Time ``sql`` with ix_layer_member_new dropped in a transaction that is rolled back."""
    with engine.connect() as conn:
        trans = conn.begin()
        conn.exec_driver_sql("DROP INDEX ix_layer_member_new")
        seconds, _ = best_of(lambda: conn.execute(sa.text(sql), params).all(), repeat)
        trans.rollback()
    return seconds


def explain(engine: sa.Engine, sql: str, params: dict) -> list[str]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("EXPLAIN (ANALYZE, BUFFERS) " + sql), params).scalars().all()
    return rows


def run_scenario(engine: sa.Engine, scenario: str, args: argparse.Namespace, counts: dict[str, int]) -> dict:
    n_new = set_new(engine, scenario, args.new_fraction, counts, args.seed)
    params = {"skycells": None}
    plan_sql = sql_statements("plan.sql")["plan_rows"]

    def query() -> list:
        with engine.connect() as conn:
            return plan_rows(conn)

    def dirty() -> list:
        with engine.connect() as conn:
            return conn.exec_driver_sql(DIRTY_LAYERS).all()

    t_query, rows = best_of(query, args.repeat)
    t_dirty, dirty_layers = best_of(dirty, args.repeat)
    with tempfile.TemporaryDirectory(prefix="bench_plan_") as tmp:
        t = time.perf_counter()
        pollers = build_pollers(rows, Path(tmp) / "write")
        t_build = time.perf_counter() - t
        t = time.perf_counter()
        for p in pollers:
            write_poller(p.path, p.rows)
        t_write = time.perf_counter() - t
        t = time.perf_counter()
        planned = plan(engine, Path(tmp) / "plan")
        t_plan = time.perf_counter() - t
        t = time.perf_counter()
        plan(engine, Path(tmp) / "plan")
        t_replan = time.perf_counter() - t
    t_query_noidx = timed_without_partial_index(engine, plan_sql, params, max(1, args.repeat // 2))
    t_dirty_noidx = timed_without_partial_index(engine, DIRTY_LAYERS, {}, max(1, args.repeat // 2))
    def naive() -> list:
        with engine.connect() as conn:
            return conn.exec_driver_sql(NAIVE_DIRTY_LAYERS).all()

    t_naive, _ = best_of(naive, max(1, args.repeat // 2))
    plan_lines = explain(engine, plan_sql, params)

    new_rows = sum(p.new for p in pollers)
    print(f"\n== scenario {scenario}: {n_new:,} NEW memberships ({n_new / counts['members']:.2%})")
    print(f"   dirty layers {len(dirty_layers):,}, poller files {len(pollers):,}, rows {len(rows):,} "
          f"({new_rows:,} NEW, {len(rows) - new_rows:,} OLD), jobs {len(planned):,}")
    print(f"   plan query (all rows fetched)        {t_query:8.3f} s   target < 2 s   {'OK' if t_query < 2 else 'OVER'}")
    print(f"   build + write all pollers            {t_build + t_write:8.3f} s   target < 30 s  "
          f"{'OK' if t_build + t_write < 30 else 'OVER'}  (build {t_build:.3f}, write {t_write:.3f})")
    print(f"   full plan() incl. jobs               {t_plan:8.3f} s   (re-plan, jobs unchanged: {t_replan:.3f} s)")
    print(f"   dirty layers, partial index          {t_dirty:8.4f} s")
    print(f"   baseline: dirty layers, no index     {t_dirty_noidx:8.4f} s   x{t_dirty_noidx / t_dirty:,.1f}")
    print(f"   baseline: naive GROUP BY/HAVING      {t_naive:8.4f} s   x{t_naive / t_dirty:,.1f}")
    print(f"   baseline: plan query, no index       {t_query_noidx:8.3f} s   x{t_query_noidx / t_query:,.2f}")
    uses_index = any("ix_layer_member_new" in line for line in plan_lines)
    print(f"   EXPLAIN uses ix_layer_member_new: {uses_index}")
    if args.explain:
        print("\n".join("     " + line for line in plan_lines))
    else:
        print("\n".join("     " + line.strip() for line in plan_lines if "ix_layer_member_new" in line or "Execution" in line))
    from _report import record

    label = f"{scenario}, {counts['exposures']:,} exp" if "exposures" in counts else scenario
    if args.layer_sets:
        label += ", " + "+".join(args.layer_sets) + " on"
    record("plan", f"plan query ({label})", t_query, "s", baseline=t_query_noidx,
           baseline_what="no partial index", target="< 2 s", met=t_query < 2)
    record("plan", f"find NEW layers ({label})", t_dirty, "s", baseline=t_naive,
           baseline_what="naive GROUP BY", target="index used", met=uses_index)
    record("plan", f"write all pollers ({label})", t_build + t_write, "s", target="< 30 s",
           met=t_build + t_write < 30)
    return {"query_s": t_query, "write_s": t_build + t_write, "uses_index": uses_index}


def enable_layer_set(engine: sa.Engine, name: str, counts: dict[str, int]) -> dict[str, int]:
    """Enable a layer set for the whole catalog (one transaction, as ``mvm layers enable``); time it."""
    from _report import record

    from mvmdb.db import layersets

    t = time.perf_counter()
    with engine.begin() as conn:
        layersets.upsert(conn, name, "catalog", None)
        result = layersets.sync(conn, name)
    seconds = time.perf_counter() - t
    log(f"  enable {name}: {result.layers_created:,} layers, {result.added:,} memberships in {seconds:.1f} s")
    record("plan", f"enable {name} ({counts['exposures']:,} exp, {result.added:,} memberships)", seconds, "s")
    return {f"{name}_layers": result.layers_created, f"{name}_members": result.added}


def existing_counts(engine: sa.Engine) -> dict[str, int]:
    """Row counts of a kept benchmark database (``--database``), as :func:`build_catalog` returns them."""
    with engine.connect() as conn:
        row = conn.exec_driver_sql(
            "SELECT (SELECT count(*) FROM sky_cell), (SELECT count(*) FROM layer WHERE layer_set = 'all'), "
            "(SELECT max(id) FROM exposure), (SELECT count(*) FROM layer_member)"
        ).one()
    return {"sky_cells": row[0], "layers": row[1], "exposures": row[2], "members": row[3]}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--exposures", type=int, default=1_000_000)
    parser.add_argument("--layers", type=int, default=200_000)
    parser.add_argument("--new-fraction", type=float, default=0.01, help="fraction NEW (default 0.01)")
    parser.add_argument("--scenario", choices=("ingest", "scattered", "both"), default="both")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per measurement (median)")
    parser.add_argument("--seed", type=int, default=20261124)
    parser.add_argument("--explain", action="store_true", help="print the full EXPLAIN ANALYZE of the plan query")
    parser.add_argument("--keep", action="store_true", help="keep the database (its URL is printed)")
    parser.add_argument("--database", metavar="NAME",
                        help="reuse this kept database instead of building one (implies --keep)")
    parser.add_argument("--layer-sets", nargs="*", choices=("year", "exptime"), default=[], metavar="SET",
                        help="enable these layer sets (year, exptime) before the scenarios (issue 17)")
    args = parser.parse_args(argv)

    factory = DatabaseFactory(admin_url(), prefix="mvmdb_bench")
    if args.database:
        args.keep = True
        url = admin_url().set(database=args.database)
    else:
        factory.create_template()
        url = factory.create()
    engine = make_engine(url, poolclass=sa.pool.NullPool)
    try:
        if args.database:
            counts = existing_counts(engine)
        else:
            log(f"building the catalog in {url.database} ...")
            t = time.perf_counter()
            counts = build_catalog(engine, args.exposures, args.layers, args.seed)
            log(f"  built in {time.perf_counter() - t:.1f} s")
        with engine.connect() as conn:
            version = conn.exec_driver_sql("SHOW server_version").scalar_one()
            enabled = set(conn.exec_driver_sql("SELECT name FROM layer_set WHERE enabled").scalars())
        for name in args.layer_sets:
            if name not in enabled:
                counts.update(enable_layer_set(engine, name, counts))
        print(f"PostgreSQL {version}; catalog: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
        scenarios = ("ingest", "scattered") if args.scenario == "both" else (args.scenario,)
        results = [run_scenario(engine, s, args, counts) for s in scenarios]
    finally:
        engine.dispose()
        if args.keep:
            print(f"kept database {url.render_as_string(hide_password=True)}")
        else:
            factory.drop(url)
        factory.close()
    ok = all(r["query_s"] < 2 and r["write_s"] < 30 and r["uses_index"] for r in results)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
