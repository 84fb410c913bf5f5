#!/usr/bin/env python
"""Run every benchmark and print one table (``python3 tasks.py bench`` / ``make bench``).

Each script prints its own detailed report (kept in ``bench-output/<name>.log``) and
records its headline figures through :mod:`benchmarks._report`; this collects them.
``--quick`` runs smaller sizes (minutes instead of tens of minutes); the figures the
issues name need the full sizes. Never part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "bench-output"

# script, full-size arguments, quick arguments
SUITE = [
    ("bench_sky.py", [], ["--positions", "200000", "--polygons", "20000", "--repeat", "1"]),
    ("bench_pixmap.py", [], ["--repeat", "1"]),
    ("bench_ingest.py", [], ["--n", "2000", "--baseline", "50"]),
    ("bench_plan.py", [], ["--exposures", "100000", "--layers", "20000", "--repeat", "1"]),
    ("bench_plan.py", ["--layer-sets", "year"],
     ["--exposures", "100000", "--layers", "20000", "--repeat", "1", "--layer-sets", "year"]),
    ("bench_drizzle.py", ["ratio"], ["ratio", "--exposures", "2", "--repeat", "1"]),
    ("bench_drizzle.py", ["memory"], ["memory", "--inputs", "2", "--size", "8000"]),
    ("bench_process.py", [], ["--jobs", "4", "--repeat", "1"]),
    ("bench_simulate.py", [], ["--bulk", "500"]),
    ("bench_demo.py", [], ["--downscale", "4"]),
    ("bench_qa.py", [], ["--quick"]),
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes")
    ap.add_argument("--only", nargs="*", help="script names to run (default: all)")
    args = ap.parse_args()
    OUT.mkdir(exist_ok=True)
    results = OUT / "results.jsonl"
    results.unlink(missing_ok=True)
    env = {**os.environ, "MVMDB_BENCH_RESULTS": str(results), "PYTHONPATH": str(HERE.parent)}
    failed = []
    for script, full, quick in SUITE:
        if args.only and script not in args.only:
            continue
        cmd = [sys.executable, str(HERE / script), *(quick if args.quick else full)]
        log = OUT / f"{script[:-3]}{'-' + '-'.join(a.strip('-') for a in full) if full else ''}.log"
        print(f"running {' '.join(cmd[1:])} -> {log.relative_to(HERE.parent)}", flush=True)
        t0 = time.monotonic()
        with open(log, "w") as fh:
            rc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env).returncode
        print(f"  {'ok' if rc == 0 else f'FAILED (exit {rc})'} in {time.monotonic() - t0:.0f} s", flush=True)
        if rc:
            failed.append(script)
    rows = [json.loads(line) for line in results.read_text().splitlines()] if results.exists() else []
    print_table(rows)
    return 1 if failed else 0


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.3g}" if abs(v) < 1000 else f"{v:,.0f}"
    return str(v)


def _fmt_ratio(r: float | None) -> str:
    """Speed-up over the baseline: 0.94x means 6 % slower (1.07x the baseline's time)."""
    if not r:
        return "-"
    return f"{r:.2f}x" if r < 10 else f"{r:.1f}x"


def print_table(rows: list[dict]) -> None:
    from rich.table import Table

    from mvmdb.cli.context import console

    table = Table("benchmark", "measure", "value", "baseline (same run)", "speed-up", "target", "met",
                  title="mvmdb benchmarks", box=None)
    for r in rows:
        base = f"{_fmt(r['baseline'])} {r['unit']} ({r['baseline_what']})" if r["baseline"] is not None else "-"
        met = {True: "yes", False: "NO", None: "-"}[r["met"]]
        table.add_row(r["benchmark"], r["measure"], f"{_fmt(r['value'])} {r['unit']}", base,
                      _fmt_ratio(r["ratio"]), r["target"] or "-", met)
    console().print(table)


if __name__ == "__main__":
    sys.exit(main())
