#!/usr/bin/env python
"""The README's demo end to end: wall time and peak resident memory of the whole process tree.

    .venv/bin/python benchmarks/bench_demo.py [--downscale K] [--out DIR]

Runs ``mvm demo`` in a fresh output directory (its own embedded PostgreSQL), samples
the summed RSS of the command and all its children (worker processes, the database
server it started) every 0.2 s, then runs the demo a second time, which must find
nothing to do. Targets (issue 8): < 5 minutes and < 4 GB peak on 2 cores; re-run < 10 s.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from _report import record


def run_sampled(cmd: list[str]) -> tuple[float, float, int]:
    """(wall s, peak summed RSS MiB, exit code) of ``cmd`` and its descendants."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    root = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        total = 0
        try:
            for p in [root, *root.children(recursive=True)]:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
        except psutil.Error:
            pass
        peak = max(peak, total)
        time.sleep(0.2)
    return time.perf_counter() - t0, peak / 2**20, proc.returncode


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--downscale", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None, help="output directory (default: a temporary one, removed)")
    args = ap.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="mvmdb-bench-demo-")) / "demo"
    mvm = [sys.executable, "-m", "mvmdb.cli.main"]
    try:
        wall, rss, rc = run_sampled([*mvm, "demo", "--out", str(out), "--downscale", str(args.downscale)])
        wall2, rss2, rc2 = run_sampled([*mvm, "demo", "--out", str(out), "--downscale", str(args.downscale)])
        products = sum(f.stat().st_size for f in (out / "products").rglob("*.fits"))
    finally:
        subprocess.run([*mvm, "db", "stop"], env={**__import__("os").environ, "MVMDB_HOME": str(out / "home")},
                       capture_output=True)
        if args.out is None:
            shutil.rmtree(out.parent, ignore_errors=True)
    print(f"demo (--downscale {args.downscale}): {wall:.1f} s, peak RSS of the process tree {rss:.0f} MiB, "
          f"exit {rc}; products {products / 2**30:.2f} GiB")
    print(f"second run: {wall2:.1f} s (nothing to do), peak {rss2:.0f} MiB, exit {rc2}")
    label = f"downscale {args.downscale}"
    record("demo", f"mvm demo, first run ({label})", wall, "s", target="< 300 s", met=wall < 300)
    record("demo", f"mvm demo, peak RSS of process tree ({label})", rss, "MiB", target="< 4 GB", met=rss < 4096)
    record("demo", f"mvm demo, second run ({label})", wall2, "s", target="< 10 s", met=wall2 < 10)
    return 0 if rc == 0 and rc2 == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
