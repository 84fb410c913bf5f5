"""Benchmark layer processing (not a test; run by hand).

    .venv/bin/python benchmarks/bench_process.py                 # both parts
    .venv/bin/python benchmarks/bench_process.py --part layer --downscale 1 --exposures 4
    .venv/bin/python benchmarks/bench_process.py --part throughput --jobs 8

Part ``layer``: one ACS/WFC F814W layer of ``--exposures`` simulated exposures (dithered,
rotated, 2 chips each, ``--downscale``) in sky cell p1359x11y11, ingested and planned into a
throw-away database. Timed:

* end to end: :func:`mvmdb.process.job.process_sky_cell` -- claim, catalog snapshot,
  footprint masks and MVM keywords, sky matching, tiled drizzle, HDRTAB, product written
  and fsynced, the finishing transaction;
* bare: ``drizzle.resample.Drizzle.add_image`` of the same chips (same sky-subtracted data,
  weights, ``iscale`` and pixel scale ratio) onto one output array of the layer's shape,
  pixel maps precomputed and not timed. Target: end to end <= 1.25 x bare.

Part ``throughput``: ``--jobs`` sky cells, each with two full-size WFC3/IR F160W exposures
(a coarse and a fine layer per job), drawn by :func:`mvmdb.process.run.run_queue` with
``local:1`` and then ``local:2`` (fresh database and products each time; the pool is
started and warmed before the clock starts: steady-state throughput). Target: 2 processes >= 1.8 x the jobs/s of 1 on a 2-core machine.

The database server is the test server (:func:`mvmdb.testing.admin_url`). BLAS is left
single-threaded (``OPENBLAS_NUM_THREADS=1`` unless set; inherited by the pool processes), as
in a one-process-per-core worker. Figures are also recorded for ``benchmarks/run_all.py``.
"""

from __future__ import annotations

from _common import machine  # isort: skip  (first: one BLAS thread)

import argparse  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from mvmdb.db.engine import make_engine  # noqa: E402
from mvmdb.testing import DatabaseFactory, admin_url  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import record  # noqa: E402


CENTER = (148.0, 2.0)  # centre of sky cell p1359x11y11 (no neighbour reached by an ACS/WFC footprint)


def _offset(center, east, north):
    from mvmdb.simulate.instruments import tan_deproject

    ra, dec = tan_deproject(east, north, *center)
    return float(ra) % 360, float(dec)


def _write(out: Path, instrument, detector, filt, root, center, *, orientat, exptime, downscale, seed, expstart):
    from mvmdb.simulate import ExposureSpec, write_exposure, make_truth

    truth = make_truth(center, 150.0, 300, 10, seed)
    spec = ExposureSpec(instrument, detector, filt, ra=center[0], dec=center[1], orientat=orientat, exptime=exptime,
                        expstart=expstart, ipppssoot=root, seed=seed, downscale=downscale)
    return write_exposure(spec, truth, out).path


def _ingest_plan(engine, paths, pollers):
    from mvmdb.ingest import ingest
    from mvmdb.plan import plan

    s = ingest(engine, [str(p) for p in paths], jobs=1)
    bad = [r for r in s.results if r.status not in ("ingested", "updated")]
    if bad:
        sys.exit(f"ingest failed: {bad}")
    return plan(engine, pollers)


def bench_layer(factory: DatabaseFactory, tmp: Path, n_exp: int, downscale: int, tile: int, repeat: int) -> None:
    from drizzle.resample import Drizzle

    from mvmdb.process.drizzling import final_bits, good_pixels, units_kind
    from mvmdb.process.inputs import open_inputs
    from mvmdb.process.pixmap import fast_pixmap, pixel_scale_arcsec
    from mvmdb.process.draw import DrawOptions
    from mvmdb.process.job import process_sky_cell
    from mvmdb.sky.grid import SkyCell
    from mvmdb.sky.overlap import box_wcs
    from mvmdb.process import embed

    data = tmp / "layer_in"
    data.mkdir()
    t0 = time.perf_counter()
    paths = []
    for k in range(n_exp):
        c = _offset(CENTER, 0.6 * k - 1.0, 0.45 * k - 0.7)
        paths.append(_write(data, "ACS", "WFC", "F814W", f"jbb{k:02d}0a1q", c, orientat=30.0 + 4 * k, exptime=400.0,
                            downscale=downscale, seed=k, expstart=56000.0 + k))
    print(f"simulated {n_exp} ACS/WFC exposures (downscale {downscale}) in {time.perf_counter() - t0:.1f} s")
    cell = SkyCell(1359, 11, 11)
    e2e, bare, e2e_cpu, bare_cpu, stages = [], [], [], [], []
    import mvmdb.process.job as job_module

    real_draw = job_module.draw_layer

    def recording_draw(*a, **k):
        d = real_draw(*a, **k)
        stages.append(d.seconds)
        return d

    job_module.draw_layer = recording_draw
    for rep in range(repeat):
        url = factory.create()
        engine = make_engine(url, poolclass=sa.pool.NullPool)
        try:
            _ingest_plan(engine, paths, tmp / f"pollers{rep}")
            products = tmp / f"products{rep}"
            t0, c0 = time.perf_counter(), time.process_time()
            results = process_sky_cell(engine, cell.id, products,
                                       options=DrawOptions(tile_shape=(tile, tile) if tile else None))
            e2e.append(time.perf_counter() - t0)
            e2e_cpu.append(time.process_time() - c0)
            (res,) = results
            assert res.status == "done", res
            with engine.connect() as conn:
                box = tuple(conn.execute(sa.text("SELECT box_xmin, box_xmax, box_ymin, box_ymax FROM sky_cell WHERE id = :i"), {"i": cell.id}).one())
            size = Path(res.product).stat().st_size
        finally:
            engine.dispose()
            factory.drop(url)
        # bare add_image of the same chips onto one output of the layer's shape
        out_wcs = box_wcs(cell, box, "fine")
        shape = embed.shape(box)
        from astropy.io import fits

        with fits.open(res.product) as h:
            sky = dict(zip((f"{n}[SCI,{v}]" for n, v in zip(h["HDRTAB"].data["HAPEXPNAME"], h["HDRTAB"].data["EXTVER"])),
                           h["HDRTAB"].data["MDRIZSKY"]))
            bits = int(h[0].header["D001BITS"])
        with open_inputs([(str(p), None) for p in paths]) as li:
            prepared = []
            for chip in li.chips:
                pm = fast_pixmap(chip.in_wcs, out_wcs, chip.shape)
                sci = np.asarray(chip.sci, dtype=np.float32)
                good = good_pixels(sci, np.asarray(chip.dq), bits)
                s = sky[f"{chip.name.split('[')[0]}[SCI,{chip.name.split(',')[1]}"]
                data_ = np.where(good, sci - np.float32(s), 0).astype(np.float32)
                wht = np.where(good, np.float32(chip.exptime), 0).astype(np.float32)
                ratio = pixel_scale_arcsec(out_wcs) / chip.pixel_scale
                prepared.append((data_, chip.exptime, pm, wht, ratio, units_kind(chip.units)))
        driz = Drizzle(kernel="square", fillval=None, out_shape=shape)
        t0, c0 = time.perf_counter(), time.process_time()
        for data_, exptime, pm, wht, ratio, kind in prepared:
            driz.add_image(data_, exptime=exptime, pixmap=pm, weight_map=wht, iscale=ratio**2,
                           pixel_scale_ratio=ratio, pixfrac=1.0, in_units=kind)
        bare.append(time.perf_counter() - t0)
        bare_cpu.append(time.process_time() - c0)
        del driz, prepared
    n_chips = 2 * n_exp
    print(f"layer: {n_chips} chips -> {shape[1]} x {shape[0]} px ({shape[0] * shape[1] / 1e6:.1f} Mpx), "
          f"product {size / 1e6:.0f} MB, tile {tile or 'auto'}")
    job_module.draw_layer = real_draw

    def runs(ts):
        return ", ".join(f"{t:.2f}" for t in ts)

    print(f"  end to end     wall {min(e2e):6.2f} s  cpu {min(e2e_cpu):6.2f} s  (wall runs: {runs(e2e)})")
    print(f"  bare add_image wall {min(bare):6.2f} s  cpu {min(bare_cpu):6.2f} s  (wall runs: {runs(bare)})")
    best = stages[int(np.argmin(e2e))]
    print("  stages of the best run (wall s): " + ", ".join(f"{k} {v:.2f}" for k, v in best.items()))
    ratio = min(e2e) / min(bare)
    print(f"  ratio  wall {ratio:.2f} x   cpu {min(e2e_cpu) / min(bare_cpu):.2f} x  (target <= 1.25; {machine()})")
    record("process", f"layer end to end ({n_chips} chips, {shape[0] * shape[1] / 1e6:.0f} Mpx)", min(e2e), "s",
           baseline=min(bare), baseline_what="bare Drizzle.add_image", target="<= 1.25x bare", met=ratio <= 1.25)


def bench_throughput(factory: DatabaseFactory, tmp: Path, n_jobs: int) -> None:
    from mvmdb.process import run
    from mvmdb.sky.grid import SkyCell

    data = tmp / "tp_in"
    data.mkdir()
    t0 = time.perf_counter()
    paths = []
    for k in range(n_jobs):
        cell = SkyCell(1359, 11, 8 + k % 8) if k < 8 else SkyCell(1359, 10, 8 + k % 8)  # one ring, one PC
        ra, dec = cell.wcs().pixel_to_world_values(10977.0, 10977.0)
        for j in range(2):
            c = _offset((float(ra), float(dec)), 0.5 * j, 0.3 * j)
            paths.append(_write(data, "WFC3", "IR", "F160W", f"ibc{k:02d}{j}a1q", c, orientat=40.0 + 3 * j,
                                exptime=300.0, downscale=1, seed=100 + 2 * k + j, expstart=56000.0 + j))
    print(f"simulated {len(paths)} WFC3/IR exposures for {n_jobs} sky cells in {time.perf_counter() - t0:.1f} s")
    rates = {}
    for n in (1, 2):
        url = factory.create()
        engine = make_engine(url, poolclass=sa.pool.NullPool)
        try:
            _ingest_plan(engine, paths, tmp / f"tp_pollers{n}")
            import resource

            rb = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu_before = rb.ru_utime + rb.ru_stime

            with run.make_executor(f"local:{n}") as ex:
                t_start = time.perf_counter()
                ex.warm()  # spawn the pool and import the processing code: steady-state throughput
                warm_s = time.perf_counter() - t_start
                t0 = time.perf_counter()
                outcomes = run.run_queue(engine, tmp / f"tp_products{n}", executor=ex)
                dt = time.perf_counter() - t0
            r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = r1.ru_utime + r1.ru_stime - cpu_before
            assert sum(o.claimed for o in outcomes) == n_jobs, [o.skycell for o in outcomes]
            assert all(r.status == "done" for o in outcomes for r in o.results)
        finally:
            engine.dispose()
            factory.drop(url)
        rates[n] = n_jobs / dt
        print(f"  local:{n}  {dt:6.2f} s  {rates[n]:.2f} jobs/s  (pool start-up {warm_s:.1f} s not counted; pool "
              f"processes used {cpu:.1f} CPU s = {cpu / dt:.2f} cores on average; load average "
              f"{os.getloadavg()[0]:.2f})")
    speedup = rates[2] / rates[1]
    print(f"  speed-up 2 vs 1: {speedup:.2f} x  (target >= 1.8 on 2 cores; {machine()})")
    record("process", f"throughput, 2 processes ({n_jobs} jobs)", rates[2], "jobs/s", baseline=rates[1],
           baseline_what="1 process", target=">= 1.8x", met=speedup >= 1.8)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=("layer", "throughput", "both"), default="both")
    ap.add_argument("--exposures", type=int, default=4, help="ACS/WFC exposures in the layer (part layer)")
    ap.add_argument("--downscale", type=int, default=1, help="simulator downscale of the layer's exposures (1: real size)")
    ap.add_argument("--tile", type=int, default=0, help="output tile size of the drizzle (px); 0: automatic")
    ap.add_argument("--repeat", type=int, default=3, help="runs of part layer (best is reported)")
    ap.add_argument("--jobs", type=int, default=8, help="sky cells (jobs) for part throughput")
    args = ap.parse_args()
    factory = DatabaseFactory(admin_url(), prefix="mvmdb_bench")
    factory.create_template()
    try:
        with tempfile.TemporaryDirectory(prefix="mvmdb-bench-process-") as d:
            tmp = Path(d)
            if args.part in ("layer", "both"):
                bench_layer(factory, tmp, args.exposures, args.downscale, args.tile, args.repeat)
            if args.part in ("throughput", "both"):
                bench_throughput(factory, tmp, args.jobs)
    finally:
        factory.close()


if __name__ == "__main__":
    main()
