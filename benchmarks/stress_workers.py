"""Stress: live ``mvm worker`` processes on a CPU-starved machine must not lose their jobs (issue 15).

    .venv/bin/python benchmarks/stress_workers.py                         # 4 workers, 6 busy loops, 24 jobs
    .venv/bin/python benchmarks/stress_workers.py --stale-after 1.5       # extreme setting

Simulates one WFC3/IR exposure at the centre of each of ``--jobs`` sky cells, ingests and
plans them into a throw-away database on the test server (:func:`mvmdb.testing.admin_url`,
a local address), starts ``--busy`` busy loops and ``--workers`` ``mvm worker`` processes
(``--heartbeat``, ``--stale-after``) that exit when the queue stays empty, then checks:
every job done and none failed, the reaps (``attempts``), each layer drawn exactly once,
every membership OLD, every product file on disk with the catalog's sha256, and no
temporary file left. Bounded: the workers are killed after ``--timeout`` seconds. Exit
status 0 when every check holds.
"""

from __future__ import annotations

from _common import machine  # isort: skip  (first: one BLAS thread)

import argparse  # noqa: E402
import collections  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import sqlalchemy as sa  # noqa: E402

from mvmdb.db.engine import make_engine  # noqa: E402
from mvmdb.testing import DatabaseFactory, admin_url  # noqa: E402

BUSY = "while True: pass"


def simulate(out: Path, n: int, downscale: int) -> list[Path]:
    from mvmdb.simulate import ExposureSpec, make_truth, write_exposure
    from mvmdb.sky.grid import SkyCell

    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(n):
        cell = SkyCell(1359, 9 + k // 8, 8 + k % 8)
        ra, dec = (float(v) for v in cell.wcs().pixel_to_world_values(10977.0, 10977.0))
        spec = ExposureSpec("WFC3", "IR", "F160W", ra=ra, dec=dec, orientat=40.0, exptime=300.0, expstart=56000.0,
                            ipppssoot=f"ibs{k:02d}0a1q", seed=k, downscale=downscale)
        paths.append(write_exposure(spec, make_truth((ra, dec), 150.0, 100, 10, k), out).path)
    return paths


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=24)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--busy", type=int, default=6, help="busy-loop processes competing for the CPUs")
    ap.add_argument("--heartbeat", type=float, default=0.5)
    ap.add_argument("--stale-after", type=float, default=3.0)
    ap.add_argument("--downscale", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=900.0, help="kill everything after this many seconds")
    a = ap.parse_args()

    print(f"machine: {machine()}; {a.workers} workers, {a.busy} busy loops, heartbeat {a.heartbeat} s, "
          f"stale after {a.stale_after} s, {a.jobs} jobs")
    factory = DatabaseFactory(admin_url(), prefix="mvmdb_stress")
    factory.create_template()
    url = factory.create()
    engine = make_engine(url, poolclass=sa.pool.NullPool)
    busy: list[subprocess.Popen] = []
    workers: list[subprocess.Popen] = []
    try:
        with tempfile.TemporaryDirectory(prefix="mvm-stress-") as tmp:
            tmp = Path(tmp)
            from mvmdb.ingest import ingest
            from mvmdb.plan import plan

            paths = simulate(tmp / "in", a.jobs, a.downscale)
            ingest(engine, [str(p) for p in paths], jobs=1)
            plan(engine, tmp / "pollers")
            products = tmp / "products"
            busy = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(a.busy)]
            cmd = [sys.executable, "-m", "mvmdb.cli.main", "--db", url.render_as_string(hide_password=False),
                   "worker", "--products", str(products), "--heartbeat", str(a.heartbeat),
                   "--stale-after", str(a.stale_after), "--poll", "0.2", "--idle-exit", str(2 * a.stale_after + 10),
                   "--json"]
            t0 = time.monotonic()
            workers = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                       for _ in range(a.workers)]
            outs = []
            for w in workers:
                try:
                    out, err = w.communicate(timeout=max(1.0, a.timeout - (time.monotonic() - t0)))
                except subprocess.TimeoutExpired:
                    w.kill()
                    out, err = w.communicate()
                outs.append((w.returncode, out, err))
            wall = time.monotonic() - t0
            for b in busy:
                b.kill()
                b.wait()
            return report(engine, products, outs, wall)
    finally:
        for p in busy + workers:
            if p.poll() is None:
                p.kill()
                p.wait()
        engine.dispose()
        factory.drop(url)
        factory.close()


def report(engine, products: Path, outs, wall: float) -> int:
    drawn = collections.Counter()
    statuses = collections.Counter()
    for rc, out, err in outs:
        for line in out.splitlines():
            r = json.loads(line)
            statuses[r["status"]] += 1
            if r["status"] == "done":
                drawn[r["layer"]] += 1
    with engine.connect() as conn:
        jobs = conn.execute(sa.text("SELECT state, attempts, reason FROM job")).all()
        layers = conn.execute(sa.text("SELECT count(*) FROM layer")).scalar_one()
        new = conn.execute(sa.text("SELECT count(*) FROM layer_member WHERE status = 'NEW'")).scalar_one()
        rows = conn.execute(sa.text("SELECT path, checksum FROM product")).all()
    states = collections.Counter(j.state for j in jobs)
    reaps = sum(j.attempts for j in jobs)
    bad_files = [r.path for r in rows
                 if not Path(r.path).is_file() or hashlib.sha256(Path(r.path).read_bytes()).hexdigest() != r.checksum]
    hidden = [p for p in products.rglob("*") if p.name.startswith(".")]
    twice = {k: v for k, v in drawn.items() if v > 1}
    print(f"wall {wall:.1f} s; worker exit codes {[rc for rc, _, _ in outs]}")
    print(f"jobs: {dict(states)}; reaps (attempts): {reaps}; failed reasons: "
          f"{[j.reason for j in jobs if j.state == 'failed'][:3]}")
    print(f"layers: {layers} in the catalog, {len(drawn)} drawn, {sum(twice.values())} drawn more than once, "
          f"{layers - len(drawn)} lost; results {dict(statuses)}; memberships still NEW: {new}")
    print(f"products: {len(rows)} rows, {len(bad_files)} missing or with a wrong sha256; hidden files left: {len(hidden)}")
    for rc, _, err in outs:
        tail = [ln for ln in err.splitlines() if "Traceback" in ln or ln.startswith("mvm: error")]
        if tail:
            print("worker stderr:", tail[:3])
    ok = (states.get("done", 0) == len(jobs) and not twice and len(drawn) == layers and new == 0 and not bad_files
          and not hidden and all(rc == 0 for rc, _, _ in outs))
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
