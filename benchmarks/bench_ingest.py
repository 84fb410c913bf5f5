"""Benchmark ingest on synthetic header-only exposures (not a test; run by hand).

    .venv/bin/python benchmarks/bench_ingest.py                    # 10,000 exposures, 2 jobs
    .venv/bin/python benchmarks/bench_ingest.py --n 2000 --jobs 4

Data: ``simulate_scene('bulk', header_only=True, n_exposures=N)`` -- visits of 2-4 exposures
spread over the whole sky (ACS/WFC, WFC3/UVIS, WFC3/IR, ACS/HRC, ACS/SBC; TAN-SIP WCS, one
or two chips), generated once into ``--data`` (default ``$TMPDIR/mvmdb-bench-<N>``) and
reused. Database: a throw-away database on the test server (:func:`mvmdb.testing.admin_url`:
``MVMDB_TEST_ADMIN_URL``, else PostgreSQL at 127.0.0.1:5432 as ``postgres``), dropped at the end.

Measured (wall clock, including process start-up of the worker pool, the COPYs and commits):

1. first ingest of the directory with ``--jobs`` worker processes (target >= 500/s on 2 cores);
2. re-ingest of the same directory: every file unchanged (target >= 5,000/s);
3. baseline, on a ``--baseline`` sample in a fresh database: the straightforward way, a
   per-exposure Python loop -- ``fits.open`` + astropy ``WCS`` footprints
   (:func:`mvmdb.fitsio.chips.read_chip_footprints`), HEALPix ranges, sky cells per file,
   ORM inserts (exposure, chips, ranges, sky cells, layers, memberships) and one commit per
   exposure -- printed with the ratio.

``--cpus N`` pins this process and its workers to N CPUs (os.sched_setaffinity) when the
machine has more; the PostgreSQL server is not pinned (it runs where it runs).

CPU accounting (because wall-clock rates on a shared machine depend on what else runs):
CPU seconds of this process (parsing results, COPY), of the worker processes
(``RUSAGE_CHILDREN``) and of the PostgreSQL backend serving the ingest (``/proc/<pid>/stat``,
sampled while it runs; same host only). Their sum per exposure gives the rate 2 dedicated
cores would sustain: ``2 / cpu_per_exposure``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session

from mvmdb import rules
from mvmdb.db.engine import make_engine
from mvmdb.db.models import Chip, ChipHpx, Exposure, ExposureSkyCell, Layer, LayerMember, SkyCellRow
from mvmdb.ingest import ingest
from mvmdb.testing import DatabaseFactory, admin_url


def ensure_data(n: int, data: Path) -> list[Path]:
    files = sorted(data.glob("*_fl?.fits"))
    if len(files) >= n:
        return files
    from mvmdb.simulate import simulate_scene

    print(f"generating {n} header-only exposures in {data} (once) ...", flush=True)
    t = time.perf_counter()
    simulate_scene("bulk", data, seed=0, header_only=True, n_exposures=n)
    print(f"  done in {time.perf_counter() - t:.0f} s", flush=True)
    return sorted(data.glob("*_fl?.fits"))


def baseline(engine: sa.Engine, files: list[Path]) -> float:
    """Per-exposure loop with astropy reading and ORM inserts; returns exposures per second."""
    from astropy.io import fits

    from mvmdb.fitsio.chips import read_chip_footprints
    from mvmdb.sky.healpix import polygon_ranges
    from mvmdb.sky.overlap import cells_overlapping

    t = time.perf_counter()
    for path in files:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            hdr = fits.getheader(path, 0)
            chips = read_chip_footprints(path)
        inst, det = hdr["INSTRUME"], hdr["DETECTOR"]
        filt = rules.normalize_filter(rules.raw_filter_string(hdr))
        ft = "flc" if path.name.endswith("_flc.fits") else "flt"
        reason = rules.exclusion_reason(hdr, filetype=ft)
        hits = cells_overlapping([c.polygon for c in chips])
        with Session(engine) as s:
            exp = Exposure(ipppssoot=hdr["ROOTNAME"].lower(), filetype=ft, filename=path.name, path=str(path),
                           instrument=inst, detector=det, filter=filt, exptime=hdr["EXPTIME"],
                           program_id=rules.program_id(path.name), obset_id=hdr["ROOTNAME"][4:6].upper(),
                           header_hash="x", wcs_hash="y", excluded_reason=reason)
            s.add(exp)
            s.flush()
            for c in chips:
                chip = Chip(exposure_id=exp.id, extver=c.extver, naxis1=c.naxis1, naxis2=c.naxis2,
                            ra_deg=c.ra.tolist(), dec_deg=c.dec.tolist(), center_ra_deg=float(c.ra.mean()),
                            center_dec_deg=float(c.dec.mean()))
                s.add(chip)
                s.flush()
                ranges = polygon_ranges(c.ra, c.dec)
                s.add_all(ChipHpx(chip_id=chip.id, hpx=sa.func.int8range(int(a), int(b))) for a, b in ranges)
            for sc in {x for x in hits.skycells()}:
                if s.get(SkyCellRow, sc.id) is None:
                    s.add(SkyCellRow(id=sc.id, name=sc.name, projection_cell_id=sc.projection_cell, x=sc.x, y=sc.y))
                    s.flush()
                s.add(ExposureSkyCell(exposure_id=exp.id, sky_cell_id=sc.id))
                if reason is None:
                    for scale in rules.layer_scales(inst, det):
                        name = rules.layer_name(sc.name, inst, det, filt, scale)
                        layer = s.scalars(sa.select(Layer).where(Layer.name == name)).first()
                        if layer is None:
                            layer = Layer(sky_cell_id=sc.id, instrument=inst, detector=det, filter=filt,
                                          scale=scale, name=name)
                            s.add(layer)
                            s.flush()
                        s.add(LayerMember(layer_id=layer.id, exposure_id=exp.id))
            s.commit()
    return len(files) / (time.perf_counter() - t)


class BackendCpu:
    """Samples the CPU time of the PostgreSQL backends connected to one database (same host)."""

    def __init__(self, admin_url, dbname: str):
        self.engine = sa.create_engine(admin_url, poolclass=sa.pool.NullPool)
        self.dbname = dbname
        self.seen: dict[int, float] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.tick = os.sysconf("SC_CLK_TCK")

    def _loop(self) -> None:
        with self.engine.connect() as conn:
            while not self.stop.is_set():
                pids = conn.execute(sa.text(
                    "SELECT pid FROM pg_stat_activity WHERE datname = :d AND application_name = 'mvmdb'"),
                    {"d": self.dbname}).scalars().all()
                conn.commit()
                for pid in pids:
                    try:
                        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                        self.seen[pid] = (int(fields[11]) + int(fields[12])) / self.tick
                    except (OSError, IndexError, ValueError):
                        pass
                self.stop.wait(0.05)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()
        self.engine.dispose()

    @property
    def seconds(self) -> float | None:
        return sum(self.seen.values()) if self.seen else None


def cpu_times() -> tuple[float, float]:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=10000, help="exposures (default 10000)")
    p.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    p.add_argument("--cpus", type=int, default=None, help="pin to this many CPUs (default: --jobs if fewer CPUs exist)")
    p.add_argument("--baseline", type=int, default=200, help="files in the baseline sample (default 200)")
    p.add_argument("--data", type=Path, default=None, help="directory of the synthetic files")
    args = p.parse_args()

    data = args.data or Path(tempfile.gettempdir()) / f"mvmdb-bench-{args.n}"
    files = ensure_data(args.n, data)[: args.n]
    cpus = sorted(os.sched_getaffinity(0))
    want = args.cpus or args.jobs
    if len(cpus) > want:
        os.sched_setaffinity(0, cpus[:want])
    ncpu = len(os.sched_getaffinity(0))
    print(f"{len(files)} exposures ({sum(f.stat().st_size for f in files) / 1e6:.0f} MB, header-only), "
          f"jobs={args.jobs}, {ncpu} CPUs for ingest (machine: {os.cpu_count()})", flush=True)

    factory = DatabaseFactory(admin_url(), prefix="mvmdb_bench_ingest")
    factory.create_template()
    urls = []
    try:
        url = factory.create()
        urls.append(url)
        engine = make_engine(url, poolclass=sa.pool.NullPool)
        cpu = {}
        for label in ("first", "again"):
            c0 = cpu_times()
            with BackendCpu(factory.admin, url.database) as backend:
                t = time.perf_counter()
                result = ingest(engine, [data], jobs=args.jobs)
                wall = time.perf_counter() - t
            c1 = cpu_times()
            cpu[label] = {"wall": wall, "parent": c1[0] - c0[0], "workers": c1[1] - c0[1], "postgres": backend.seconds}
            if label == "first":
                first, t_first = result, wall
            else:
                again, t_again = result, wall
        with engine.connect() as conn:
            counts = {tname: conn.execute(sa.text(f"SELECT count(*) FROM {tname}")).scalar_one()
                      for tname in ("exposure", "chip", "chip_hpx", "sky_cell", "layer", "layer_member")}
        engine.dispose()
        assert again.counts["unchanged"] == len(files), again.counts

        url_b = factory.create()
        urls.append(url_b)
        engine_b = make_engine(url_b, poolclass=sa.pool.NullPool)
        base_rate = baseline(engine_b, files[: args.baseline])
        engine_b.dispose()
    finally:
        for u in urls:
            factory.drop(u)
        factory.close()

    n = len(files)
    rate1, rate2 = n / t_first, n / t_again
    print()
    print(f"{'case':44s} {'seconds':>8s} {'exp/s':>9s} {'target':>8s}")
    print(f"{'first ingest (jobs=%d)' % args.jobs:44s} {t_first:8.2f} {rate1:9.0f} {'>= 500':>8s}")
    print(f"{'re-ingest, all unchanged':44s} {t_again:8.2f} {rate2:9.0f} {'>= 5000':>8s}")
    print(f"{'baseline: per-file astropy + ORM (%d files)' % min(n, args.baseline):44s} "
          f"{min(n, args.baseline) / base_rate:8.2f} {base_rate:9.0f}")
    print(f"speed-up over the baseline: first ingest x{rate1 / base_rate:.1f}, re-ingest x{rate2 / base_rate:.0f}")
    print()
    print(f"{'CPU ms per exposure':26s} {'parent':>7s} {'workers':>8s} {'postgres':>9s} {'total':>7s} "
          f"{'-> exp/s on 2 dedicated cores':>30s}")
    for label, c in cpu.items():
        pg = c["postgres"] or 0.0
        total = c["parent"] + c["workers"] + pg
        print(f"{'first ingest' if label == 'first' else 're-ingest':26s} {c['parent'] / n * 1e3:7.3f} "
              f"{c['workers'] / n * 1e3:8.3f} {pg / n * 1e3:9.3f} {total / n * 1e3:7.3f} {2 * n / total:30.0f}")
    from _report import record

    record("ingest", f"first ingest, {n:,} header-only exposures", rate1, "exposures/s", baseline=base_rate,
           baseline_what="astropy + ORM per file", target=">= 500/s", met=rate1 >= 500)
    record("ingest", f"re-ingest, {n:,} unchanged", rate2, "exposures/s", baseline=base_rate,
           baseline_what="astropy + ORM per file", target=">= 5,000/s", met=rate2 >= 5000)
    print(f"load average during the run: {os.getloadavg()}")
    print(f"statuses: {dict(first.counts)}; excluded by reason: {dict(first.excluded_by_reason)}")
    print(f"rows: {counts}")
    print(json.dumps({"n": n, "jobs": args.jobs, "cpus": ncpu, "first_s": round(t_first, 3), "first_rate": round(rate1),
                      "reingest_s": round(t_again, 3), "reingest_rate": round(rate2),
                      "baseline_rate": round(base_rate, 1), "rows": counts,
                      "cpu_s": {k: {kk: (round(vv, 3) if vv is not None else None) for kk, vv in v.items()}
                                for k, v in cpu.items()}}))
    sys.exit(0 if rate1 >= 500 and rate2 >= 5000 else 1)


if __name__ == "__main__":
    main()
