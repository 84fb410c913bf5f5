"""Benchmark the simulator (not a test; run by hand).

    .venv/bin/python benchmarks/bench_simulate.py                 # default cases
    .venv/bin/python benchmarks/bench_simulate.py --full          # + pg1202 at full size (~3 GB)
    .venv/bin/python benchmarks/bench_simulate.py --bulk 10000    # header-only ingest set

Cases, each in a fresh temporary directory (deleted afterwards unless --keep):

* ``pg1202`` at downscale 8 (the test size; target < 20 s) and 4;
* ``deep`` (63 exposures) at downscale 8;
* one full-size exposure per detector (rendering + writing, with the pg1202 truth);
* ``bulk`` header-only with ``--bulk`` exposures (files/s for ingest benchmarks);
* with ``--full``: ``pg1202`` at native size (the demo), reporting the bytes written.

Prints wall time, CPU time and files per second per case.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from mvmdb.simulate import ExposureSpec, make_truth, simulate_scene, write_exposure
from mvmdb.simulate.scene import PG1202


def _timed(label: str, fn, rows: list) -> object:
    w0, c0 = time.perf_counter(), time.process_time()
    result, nfiles, nbytes = fn()
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    rows.append((label, wall, cpu, nfiles, nbytes))
    print(f"{label:34s} {wall:8.2f} s wall {cpu:8.2f} s cpu {nfiles:6d} files {nfiles / wall:8.1f} files/s "
          f"{nbytes / 1e6:9.1f} MB", flush=True)
    return result


def _scene(name: str, root: Path, **kw):
    def run():
        out = root / f"{name}-{kw.get('downscale', 1)}{'-h' if kw.get('header_only') else ''}"
        res = simulate_scene(name, out, **kw)
        return res, len(res.paths), sum(p.stat().st_size for p in res.paths)

    return run


def _single(det: tuple[str, str, str], root: Path):
    truth = make_truth(PG1202, 210.0, 700, 40, 1)

    def run():
        spec = ExposureSpec(*det, ra=PG1202[0] - 0.01, dec=PG1202[1], orientat=112.5, exptime=500.0)
        res = write_exposure(spec, truth, root / f"single_{det[1].lower()}.fits")
        return res, 1, res.path.stat().st_size

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bulk", type=int, default=2000, help="header-only bulk exposures (default 2000)")
    ap.add_argument("--full", action="store_true", help="also pg1202 at native size")
    ap.add_argument("--keep", action="store_true", help="keep the output directory")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="mvmdb-bench-sim-"))
    rows: list = []
    try:
        _timed("pg1202 downscale 8", _scene("pg1202", root, downscale=8), rows)
        from _report import record

        record("simulate", "pg1202 scene at --downscale 8", rows[-1][1], "s", target="< 20 s", met=rows[-1][1] < 20)
        _timed("pg1202 downscale 4", _scene("pg1202", root, downscale=4), rows)
        _timed("deep downscale 8", _scene("deep", root, downscale=8), rows)
        for det in (("ACS", "WFC", "F775W"), ("WFC3", "UVIS", "F475W"), ("WFC3", "IR", "F160W"),
                    ("ACS", "HRC", "F435W"), ("ACS", "SBC", "F140LP")):
            _timed(f"one {det[0]}/{det[1]} full size", _single(det, root), rows)
        _timed(f"bulk {args.bulk} header-only", _scene("bulk", root, header_only=True, n_exposures=args.bulk), rows)
        if args.full:
            _timed("pg1202 full size", _scene("pg1202", root, downscale=1), rows)
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
