"""Evaluate the pixel quality checks (issue 16) on simulated exposures (not a test; run by hand).

    .venv/bin/python benchmarks/bench_qa.py                # counts + full-size timing
    .venv/bin/python benchmarks/bench_qa.py --quick        # fewer exposures
    .venv/bin/python benchmarks/bench_qa.py --only-mvmqa   # only the mvm qa throughput (needs PostgreSQL)

Seeds and fields are the benchmark's own (base seed ``--seed``, default 2026; the tests
use seeds below 100 and other fields).  Exposures are rendered in memory
(``mvmdb.simulate.writer.render_exposure``, the same pixels the simulator writes) at
``--downscale`` (default 4: ACS/WFC and WFC3/UVIS chips of 1024 x 512 px at 4x the native
pixel size; WFC3/IR at native size), which keeps 300 renders within minutes on a shared
machine.  The throughput figure is measured on one *full-size* ACS/WFC exposure (2 chips
of 4096 x 2048) written to a FITS file and read back with ``mvmdb.fitsio.pixels``.

Cases:

* trailed: lengths 1-10 arcsec at random position angles, ACS/WFC, WFC3/UVIS, WFC3/IR,
  ordinary and dense star fields -> recall (must be 100%);
* clean (>= 200): ordinary fields, diffraction spikes + saturation bleeds of bright stars,
  CTE tails, satellite streaks, 4x cosmic rays left unflagged, extended galaxies, dense
  star fields -> false positives (must be 0);
* alignment: layers of 5 visits x 2 dithered exposures, one or two visits with a header
  WCS error of 1-10 native pixels in a random direction -> misaligned flagged with the
  offset within 10% (or 5 mas) of the truth, aligned visits not flagged.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mvmdb.qa.alignment import THRESHOLD_MAS, exposure_sources, measure_alignment  # noqa: E402
from mvmdb.qa.exposure import check_exposure  # noqa: E402
from mvmdb.qa.trail import detect_trail  # noqa: E402
from mvmdb.simulate import ExposureSpec, make_truth, write_exposure  # noqa: E402
from mvmdb.simulate.instruments import offset_position  # noqa: E402
from mvmdb.simulate.truth import add_flux_columns  # noqa: E402
from mvmdb.simulate.writer import render_exposure, wcs_error_offset_mas  # noqa: E402

DETECTORS = [("ACS", "WFC", "F814W"), ("WFC3", "UVIS", "F606W"), ("WFC3", "IR", "F160W")]
HARD = {
    "ordinary": dict(),
    "spikes+bleed": dict(artifacts=("spikes", "bleed")),
    "cte tails": dict(artifacts=("cte",)),
    "satellite": dict(artifacts=("satellite",)),
    "cosmic rays x4 unflagged": dict(cr_factor=4.0, cr_flag=0),
    "extended galaxies": dict(),
    "dense star field": dict(),
}


def machine() -> str:
    return f"{os.cpu_count()} cpus, load average {os.getloadavg()[0]:.2f}"


def field(rng) -> tuple[float, float]:
    """A random field centre away from the poles (deg)."""
    return float(rng.uniform(0, 360)), float(np.degrees(np.arcsin(rng.uniform(-0.9, 0.9))))


def truth_for(kind: str, centre, seed: int, bright: bool):
    """Truth table of a case: ordinary, dense (20000 stars) or extended galaxies (r_eff 0.5-4")."""
    if kind == "dense star field":
        t = make_truth(centre, 210.0, 20000, 40, seed)
    elif kind == "extended galaxies":
        t = make_truth(centre, 210.0, 150, 120, seed, r_eff_range=(0.5, 4.0))
    else:
        special = []
        if bright:  # stars that saturate even at 4x4 binning: spikes and bleed columns
            rng = np.random.default_rng(seed + 1)
            for k in range(10):
                ra, dec = offset_position(centre[0], centre[1], *rng.uniform(-80, 80, 2))
                special.append(dict(id=k, ra=ra, dec=dec, mag=float(rng.uniform(10.0, 13.0)), kind="star"))
        t = make_truth(centre, 210.0, 700, 20, seed, special)
        if special:
            t["id"] = np.arange(len(t))
    return t


def spec_for(det, centre, seed: int, root: str, downscale: int, **kw) -> ExposureSpec:
    inst, name, filt = det
    k = 1 if name == "IR" else downscale
    rng = np.random.default_rng(seed)
    return ExposureSpec(inst, name, filt, centre[0], centre[1], orientat=float(rng.uniform(0, 360)),
                        exptime=float(rng.uniform(300, 900)), downscale=k, seed=seed, ipppssoot=root, **kw)


def run_trail(spec: ExposureSpec, truth):
    add_flux_columns(truth, [(spec.model, spec.filter_info)])
    chips = render_exposure(spec, truth)
    return detect_trail([(c.sci, c.dq) for c in chips], chips[0].pixel_scale)


def _root(det, n: int) -> str:
    letter = "j" if det[0] == "ACS" else "i"
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    return f"{letter}qa{digits[(n // 1296) % 36]}{digits[(n // 36) % 36]}{digits[n % 36]}01q"


def trail_cases(args, rng):
    """(recall rows, false-positive rows): (label, TrailResult)."""
    lengths = [1.0, 1.5, 2.0, 3.0, 5.0, 10.0]
    pos, neg = [], []
    n = 0
    reps = 1 if args.quick else 2
    for rep in range(reps):
        for det in DETECTORS:
            for length in lengths:
                kind = "dense star field" if (rep == 1 and length <= 2.0) else "ordinary"
                centre = field(rng)
                seed = args.seed + n
                pa = float(rng.uniform(0, 360))
                t = truth_for(kind, centre, seed, bright=False)
                spec = spec_for(det, centre, seed, _root(det, n), args.downscale, trail=(length, pa))
                res = run_trail(spec, t)
                pos.append((f"{det[0]}/{det[1]} {kind} trail {length:g}\" PA {pa:.0f}", res))
                n += 1
    per_kind = max(1, args.clean // len(HARD))
    for kind, kw in HARD.items():
        for i in range(per_kind):
            det = DETECTORS[i % 2] if kind in ("spikes+bleed", "cte tails") else DETECTORS[i % 3]
            if det[1] == "IR" and kind in ("cte tails",):
                det = DETECTORS[0]
            centre = field(rng)
            seed = args.seed + n
            t = truth_for(kind, centre, seed, bright=(kind == "spikes+bleed"))
            spec = spec_for(det, centre, seed, _root(det, n), args.downscale, **kw)
            neg.append((f"{det[0]}/{det[1]} {kind}", run_trail(spec, t)))
            n += 1
    return pos, neg


def alignment_cases(args, rng):
    """Rows (layer, visit, truth_mas (east, north), VisitOffset)."""
    rows = []
    n_layers = 3 if args.quick else args.layers
    for layer in range(n_layers):
        det = DETECTORS[layer % 2]
        centre = field(rng)
        seed = args.seed + 5000 + 100 * layer
        truth = make_truth(centre, 210.0, 700, 20, seed)
        n_bad = 1 + layer % 2
        bad = set(rng.choice(5, n_bad, replace=False).tolist())
        cats, truths = {}, {}
        for v in range(5):
            npx = float(rng.uniform(1.0, 10.0)) if v in bad else 0.0
            ang = float(rng.uniform(0, 2 * math.pi))
            k = args.downscale
            err = (npx / k * math.cos(ang), npx / k * math.sin(ang))  # file pixels
            point = offset_position(centre[0], centre[1], *rng.uniform(-15, 15, 2))
            orient = float(rng.uniform(0, 360))
            ras, decs = [], []
            for e in range(2):
                ra, dec = offset_position(point[0], point[1], 0.25 * e, 0.12 * e)
                spec = ExposureSpec(det[0], det[1], det[2], ra, dec, orientat=orient, exptime=500.0, downscale=k,
                                    seed=seed + 10 * v + e, ipppssoot=_root(det, 10000 + 100 * layer + 10 * v + e),
                                    wcs_error=err)
                add_flux_columns(truth, [(spec.model, spec.filter_info)])
                chips = render_exposure(spec, truth)
                for c, (x, y) in zip(chips, exposure_sources([(c.sci, c.dq) for c in chips], chips[0].pixel_scale)):
                    r, d = c.header_wcs.all_pix2world(x, y, 0)
                    ras.append(r)
                    decs.append(d)
                truths[f"v{v}"] = (wcs_error_offset_mas(spec), npx)
            cats[f"v{v}"] = (np.concatenate(ras), np.concatenate(decs))
        res = measure_alignment(cats)
        for v, r in res.items():
            rows.append((layer, v, truths[v], r))
    return rows


def throughput(args):
    """Seconds per full-size ACS/WFC exposure: read (fitsio.pixels) + check_exposure (trail check
    and alignment sources sharing one working image); and the trail check alone."""
    from mvmdb.fitsio.pixels import read_exposure_pixels

    centre = (150.1, 2.2)
    truth = make_truth(centre, 210.0, 700, 40, args.seed + 9999)
    spec = ExposureSpec("ACS", "WFC", "F814W", centre[0], centre[1], orientat=30.0, exptime=500.0, downscale=1,
                        seed=args.seed, ipppssoot="jqathr01q")
    add_flux_columns(truth, [(spec.model, spec.filter_info)])
    with tempfile.TemporaryDirectory() as tmp:
        path = write_exposure(spec, truth, Path(tmp)).path
        walls, cpus, trail_walls, trail_cpus, read_walls = [], [], [], [], []
        for _ in range(args.repeat):
            w0, c0 = time.perf_counter(), time.process_time()
            chips = read_exposure_pixels(path)
            read_walls.append(time.perf_counter() - w0)
            check_exposure([(c.sci, c.dq) for c in chips], chips[0].pixel_scale)
            walls.append(time.perf_counter() - w0)
            cpus.append(time.process_time() - c0)
        for _ in range(args.repeat):
            wt, ct = time.perf_counter(), time.process_time()
            detect_trail([(c.sci, c.dq) for c in chips], chips[0].pixel_scale)
            trail_walls.append(time.perf_counter() - wt)
            trail_cpus.append(time.process_time() - ct)
        shape = chips[0].sci.shape
    return dict(shape=shape, n=len(chips), wall=walls, cpu=cpus, trail_wall=trail_walls, trail_cpu=trail_cpus,
                read=read_walls)


def mvm_qa_throughput(args):
    """``mvm qa`` end to end (:func:`mvmdb.quality.run_qa`): ``args.mvmqa`` full-size ACS/WFC exposures
    (visits of 2 dithered exposures) written, ingested into a throw-away database on the test
    server, then checked: read, trail + alignment sources, rows stored, per-layer alignment.
    Returns wall and CPU seconds of the ``run_qa`` call and the exposures checked."""
    import sqlalchemy as sa

    from mvmdb.db.engine import make_engine
    from mvmdb.ingest import ingest
    from mvmdb.quality import run_qa
    from mvmdb.testing import DatabaseFactory, admin_url

    centre = (150.1, 2.2)
    truth = make_truth(centre, 240.0, 900, 40, args.seed + 7777)
    factory = DatabaseFactory(admin_url(), prefix="mvmdb_bench")
    factory.create_template()
    url = factory.create()
    engine = make_engine(url, poolclass=sa.pool.NullPool)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for k in range(args.mvmqa):
                visit, dither = divmod(k, 2)
                ra, dec = offset_position(centre[0], centre[1], 3.0 * visit + 0.5 * dither, -2.0 * visit)
                spec = ExposureSpec("ACS", "WFC", "F814W", ra, dec, orientat=30.0 + 5 * visit, exptime=500.0,
                                    downscale=1, seed=args.seed + 100 + k, ipppssoot=f"jqm{visit:03d}{dither:02d}q",
                                    expstart=56000.0 + visit + 0.01 * dither)
                add_flux_columns(truth, [(spec.model, spec.filter_info)])
                write_exposure(spec, truth, Path(tmp))
            ingest(engine, [tmp])
            w0, c0 = time.perf_counter(), time.process_time()
            report = run_qa(engine, report_only=True)
            wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    finally:
        engine.dispose()
        factory.drop(url)
        factory.close()
    n = len({r["ipppssoot"] for r in report.rows if r["check"] == "trail"})
    return dict(n=n, wall=wall, cpu=cpu, flagged=sum(r["flagged"] for r in report.rows))


def _report_mvm_qa(args) -> int:
    """Measure and print the ``mvm qa`` throughput row (nothing when ``--mvmqa 0``)."""
    if args.mvmqa <= 0:
        return 0
    m = mvm_qa_throughput(args)
    print(f"| mvm qa throughput, full-size ACS/WFC, catalog to stored rows (read + checks + store + "
          f"alignment per layer) | {m['n']} exposures | {m['n'] / m['wall']:.2f} exposures/s wall "
          f"({m['wall'] / m['n']:.2f} s each), CPU {m['cpu'] / m['n']:.2f} s each | |")
    print(f"load after mvm qa: {machine()}")
    try:
        from _report import record

        record("qa", "mvm qa s per full-size ACS/WFC exposure (end to end, wall)", m["wall"] / m["n"], "s")
    except ImportError:
        pass
    return 0 if m["flagged"] == 0 else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--downscale", type=int, default=4)
    ap.add_argument("--clean", type=int, default=210, help="clean exposures (split over the hard cases)")
    ap.add_argument("--layers", type=int, default=8, help="alignment layers of 5 visits")
    ap.add_argument("--repeat", type=int, default=5, help="throughput repetitions")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--skip-timing", action="store_true")
    ap.add_argument("--mvmqa", type=int, default=8, help="full-size exposures for the mvm qa throughput (0: skip)")
    ap.add_argument("--only-mvmqa", action="store_true", help="only the mvm qa throughput")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.clean = min(args.clean, 35)
        args.mvmqa = min(args.mvmqa, 4)
    rng = np.random.default_rng(args.seed)
    if args.only_mvmqa:
        return _report_mvm_qa(args)
    print(f"bench_qa: seed {args.seed}, downscale {args.downscale} (WFC3/IR native), {machine()}", flush=True)

    t0 = time.perf_counter()
    pos, neg = trail_cases(args, rng)
    t_trail = time.perf_counter() - t0
    if args.verbose:
        for label, r in pos + neg:
            print(f"  {label:55s} {r.flagged!s:5} {r.score:.2f} {r.reason}")
    t0 = time.perf_counter()
    al = alignment_cases(args, rng)
    t_align = time.perf_counter() - t0
    if args.verbose:
        for layer, v, ((te, tn), npx), r in al:
            print(f"  layer {layer} {v} truth {npx:4.1f} px ({te:+7.1f},{tn:+7.1f}) mas  measured "
                  f"({r.east_mas:+7.1f},{r.north_mas:+7.1f}) {r.flagged!s:5} {r.reason}")

    recall = sum(r.flagged for _, r in pos)
    missed = [label for label, r in pos if not r.flagged]
    fp = [(label, r) for label, r in neg if r.flagged]
    by_kind = {}
    for label, r in neg:
        kind = label.split(" ", 1)[1]
        n, f = by_kind.get(kind, (0, 0))
        by_kind[kind] = (n + 1, f + int(r.flagged))
    mis = [(t, r) for _, _, t, r in al if t[1] > 0]
    ok_vis = [(t, r) for _, _, t, r in al if t[1] == 0]
    mis_flagged = sum(r.flagged for _, r in mis)
    within = 0
    worst = 0.0
    for ((te, tn), _), r in mis:
        err = math.hypot(r.east_mas - te, r.north_mas - tn)
        tol = max(0.10 * math.hypot(te, tn), 5.0)
        within += err <= tol
        worst = max(worst, err / math.hypot(te, tn))
    ok_flagged = sum(r.flagged for _, r in ok_vis)
    ok_max = max((r.offset_mas for _, r in ok_vis), default=float("nan"))

    print()
    print("| check | cases | result | target |")
    print("|---|---|---|---|")
    print(f"| trail recall (1-10\", any PA; ACS/WFC, WFC3/UVIS, WFC3/IR) | {len(pos)} trailed | "
          f"{recall}/{len(pos)} = {100.0 * recall / len(pos):.0f}% | 100% |")
    print(f"| trail false positives (clean, all hard cases) | {len(neg)} clean | {len(fp)} | 0 |")
    for kind, (n, f) in by_kind.items():
        print(f"|   of which {kind} | {n} | {f} | 0 |")
    print(f"| misaligned visits flagged (1-10 native px) | {len(mis)} | {mis_flagged}/{len(mis)} | all |")
    print(f"| misaligned offset within 10% (or 5 mas) of truth | {len(mis)} | {within}/{len(mis)} "
          f"(worst {100 * worst:.1f}%) | all |")
    print(f"| aligned visits flagged (> {THRESHOLD_MAS:g} mas) | {len(ok_vis)} | {ok_flagged} "
          f"(largest {ok_max:.1f} mas) | 0 |")
    print(f"| evaluation time (renders + checks) | | trail {t_trail:.0f} s, alignment {t_align:.0f} s | |")
    if missed:
        print("missed:", "; ".join(missed))
    for label, r in fp:
        print("false positive:", label, r.reason)

    if not args.skip_timing:
        tp = throughput(args)
        print(f"| qa throughput, full-size ACS/WFC ({tp['n']} chips of {tp['shape'][1]} x {tp['shape'][0]}): "
              f"read + check_exposure (trail + alignment sources) | {args.repeat} runs | "
              f"wall min {min(tp['wall']):.2f} s, "
              f"median {np.median(tp['wall']):.2f} s; CPU min {min(tp['cpu']):.2f} s | <= 0.5 s |")
        print(f"|   of which trail check only | | wall min {min(tp['trail_wall']):.2f} s, CPU min "
              f"{min(tp['trail_cpu']):.2f} s | |")
        print(f"|   of which reading the file | | wall min {min(tp['read']):.2f} s | |")
        print(f"load after timing: {machine()}")
        try:
            from _report import record

            record("qa", "s per full-size ACS/WFC exposure (read + trail + sources), CPU", min(tp["cpu"]), "s",
                   target="<= 0.5 s", met=min(tp["cpu"]) <= 0.5)
        except ImportError:
            pass
        _report_mvm_qa(args)
    return 0 if (recall == len(pos) and not fp and mis_flagged == len(mis) and within == len(mis)
                 and ok_flagged == 0) else 1


if __name__ == "__main__":
    sys.exit(main())
