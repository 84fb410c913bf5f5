#!/usr/bin/env python
"""Benchmark of the sky tessellation: positions and chip footprints -> sky cells.

    .venv/bin/python benchmarks/bench_sky.py [--positions 1000000] [--polygons 100000] [--baseline 300] [--json]

Measures, on one core (BLAS/OpenMP threads pinned to 1):

* ``cells_at`` on random positions uniform on the sphere (target >= 1,000,000 positions/s);
* ``cells_overlapping`` on random chip-sized footprints, 200" x 100" quadrilaterals with random
  centre and roll (target < 5 s for 100,000), and on the same rectangles sampled with 64
  vertices (the default outline of :func:`mvmdb.fitsio.chips.read_chip_footprints`);
* a baseline that calls astropy per position / per polygon (one cached ``astropy.wcs.WCS`` per
  candidate projection cell, same candidate rings and bands, exact cell test in Python) on a
  small sample, whose results are checked against the vectorized ones, and the speed ratio.

Not a test: it prints figures (and with ``--json`` one JSON object) and exits 0.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import functools  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from mvmdb.sky.grid import ProjectionCell, ring_table  # noqa: E402
from mvmdb.sky.overlap import cells_at, cells_overlapping  # noqa: E402

S, NSC, PCN = 21442, 21954, 450287


def random_positions(n: int, rng) -> tuple[np.ndarray, np.ndarray]:
    ra = rng.uniform(0.0, 360.0, n)
    dec = np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, n)))
    return ra, dec


def random_chips(n: int, rng, width_arcsec=200.0, height_arcsec=100.0, points_per_edge=1) -> np.ndarray:
    """(n, 2, 4*points_per_edge) RA/Dec rectangles: width x height in the tangent plane, random roll."""
    ra0, dec0 = random_positions(n, rng)
    roll = rng.uniform(0.0, 2 * math.pi, n)[:, None]
    hx = math.radians(width_arcsec / 3600) / 2
    hy = math.radians(height_arcsec / 3600) / 2
    f = np.arange(points_per_edge) / points_per_edge
    lx = np.concatenate([-hx + 2 * hx * f, np.full(points_per_edge, hx), hx - 2 * hx * f, np.full(points_per_edge, -hx)])
    ly = np.concatenate([np.full(points_per_edge, -hy), -hy + 2 * hy * f, np.full(points_per_edge, hy), hy - 2 * hy * f])
    xi = np.cos(roll) * lx - np.sin(roll) * ly
    eta = np.sin(roll) * lx + np.cos(roll) * ly
    a0 = np.radians(ra0)[:, None]
    d0 = np.radians(dec0)[:, None]
    den = np.cos(d0) - eta * np.sin(d0)
    dec = np.arctan2(np.sin(d0) + eta * np.cos(d0), np.hypot(xi, den))
    ra = a0 + np.arctan2(xi, den)
    return np.stack([np.mod(np.degrees(ra), 360.0), np.degrees(dec)], axis=1)


def timed(fn, repeat: int):
    """(result, best wall s, median wall s, best CPU s of this process) over ``repeat`` runs after a warm-up.

    The CPU time is the figure to trust on a shared machine (wall time includes waiting for a core).
    """
    fn()  # warm-up (page faults, caches)
    times, cpu = [], []
    result = None
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        result = fn()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return result, min(times), statistics.median(times), min(cpu)


# --------------------------------------------------------------------------- astropy baseline


@functools.lru_cache(maxsize=None)
def _pc_wcs(pc: int):
    return ProjectionCell.from_id(pc).wcs()


def _candidate_pcs(ra: np.ndarray, dec: np.ndarray) -> set[int]:
    """Rings holding any of the points' Dec, bands rint(RA*n/360) of the points and their neighbours."""
    rt = ring_table()
    pcs = set()
    for ring in range(len(rt)):
        if dec.max() < rt.dec_min[ring] - 0.1 or dec.min() > rt.dec_max[ring] + 0.1:
            continue
        n = int(rt.nband[ring])
        for b in set((np.rint(ra * n / 360.0).astype(int) % n).tolist()):
            for d in (-1, 0, 1):
                pcs.add(int(rt.projcell[ring]) + (b + d) % n)
    return pcs


def baseline_position(ra: float, dec: float) -> set[tuple[int, int, int]]:
    rt = ring_table()
    out = set()
    for ring in range(len(rt)):
        if not rt.dec_min[ring] <= dec <= rt.dec_max[ring]:
            continue
        n = int(rt.nband[ring])
        b0 = int(np.rint(ra * n / 360.0)) % n
        for b in {b0, (b0 - 1) % n, (b0 + 1) % n}:
            pc = int(rt.projcell[ring]) + b
            x, y = (float(v) for v in _pc_wcs(pc).world_to_pixel_values(ra, dec))
            if not (0 <= x <= PCN and 0 <= y <= PCN):
                continue
            for ix in range(1, 22):
                if 0 <= x - (ix - 1) * S <= NSC:
                    for iy in range(1, 22):
                        if 0 <= y - (iy - 1) * S <= NSC:
                            out.add((pc, ix, iy))
    return out


def _segment_hits_box(ax, ay, bx, by, x0, x1, y0, y1) -> bool:
    if max(ax, bx) < x0 or min(ax, bx) > x1 or max(ay, by) < y0 or min(ay, by) > y1:
        return False
    dx, dy = bx - ax, by - ay
    s = [dx * (cy - ay) - dy * (cx - ax) for cx, cy in ((x0, y0), (x1, y0), (x1, y1), (x0, y1))]
    return not (min(s) > 0 or max(s) < 0)


def _point_in_polygon(px, py, xs, ys) -> bool:
    inside = False
    for i in range(len(xs)):
        ax, ay, bx, by = xs[i - 1], ys[i - 1], xs[i], ys[i]
        if (ay > py) != (by > py) and px < ax + (py - ay) * (bx - ax) / (by - ay):
            inside = not inside
    return inside


def baseline_polygon(ra: np.ndarray, dec: np.ndarray) -> set[tuple[int, int, int]]:
    out = set()
    for pc in _candidate_pcs(ra, dec):
        xs, ys = (v.tolist() for v in _pc_wcs(pc).world_to_pixel_values(ra, dec))
        if max(xs) < 0 or min(xs) > PCN or max(ys) < 0 or min(ys) > PCN:
            continue
        for ix in range(1, 22):
            x0, x1 = (ix - 1) * S, min((ix - 1) * S + NSC, PCN)
            if max(xs) < x0 or min(xs) > x1:
                continue
            for iy in range(1, 22):
                y0, y1 = (iy - 1) * S, min((iy - 1) * S + NSC, PCN)
                if max(ys) < y0 or min(ys) > y1:
                    continue
                hit = any(_segment_hits_box(xs[i - 1], ys[i - 1], xs[i], ys[i], x0, x1, y0, y1) for i in range(len(xs)))
                if hit or _point_in_polygon(x0, y0, xs, ys):
                    out.add((pc, ix, iy))
    return out


def _as_sets(hits, n):
    sets = [set() for _ in range(n)]
    for i, p, x, y in zip(hits.index.tolist(), hits.projection_cell.tolist(), hits.x.tolist(), hits.y.tolist()):
        sets[i].add((p, x, y))
    return sets


# --------------------------------------------------------------------------- main


def run(n_positions: int, n_polygons: int, n_baseline: int, repeat: int, seed: int = 12345) -> dict:
    rng = np.random.default_rng(seed)
    ra, dec = random_positions(n_positions, rng)
    chips = random_chips(n_polygons, rng)

    hits_at, best_at, med_at, cpu_at = timed(lambda: cells_at(ra, dec), repeat)
    hits_poly, best_poly, med_poly, cpu_poly = timed(lambda: cells_overlapping(chips), repeat)
    # the outlines read_chip_footprints returns by default: 16 points per edge, 64 vertices
    outlines = random_chips(n_polygons, rng, points_per_edge=16)
    hits_64, best_64, med_64, cpu_64 = timed(lambda: cells_overlapping(outlines), max(1, repeat // 2))
    del outlines

    k = min(n_baseline, n_positions)
    t0 = time.perf_counter()
    base_at = [baseline_position(float(ra[i]), float(dec[i])) for i in range(k)]
    base_at_s = (time.perf_counter() - t0) / k
    agree_at = base_at == _as_sets(cells_at(ra[:k], dec[:k]), k)

    m = min(n_baseline, n_polygons)
    t0 = time.perf_counter()
    base_poly = [baseline_polygon(chips[i, 0], chips[i, 1]) for i in range(m)]
    base_poly_s = (time.perf_counter() - t0) / m
    agree_poly = base_poly == _as_sets(cells_overlapping(chips[:m]), m)

    per_pos = best_at / n_positions
    per_poly = best_poly / n_polygons
    return {
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "cells_at": {
            "positions": n_positions, "best_s": best_at, "median_s": med_at, "best_cpu_s": cpu_at,
            "positions_per_s": n_positions / best_at, "hits": len(hits_at),
            "mean_cells_per_position": len(hits_at) / n_positions,
            "target_positions_per_s": 1_000_000, "meets_target": n_positions / best_at >= 1_000_000,
        },
        "cells_overlapping": {
            "polygons": n_polygons, "best_s": best_poly, "median_s": med_poly, "best_cpu_s": cpu_poly,
            "polygons_per_s": n_polygons / best_poly, "hits": len(hits_poly),
            "mean_cells_per_polygon": len(hits_poly) / n_polygons,
            "target_s_for_100k": 5.0, "projected_s_for_100k": per_poly * 100_000,
            "meets_target": per_poly * 100_000 < 5.0,
            "outline_64_vertices_best_s": best_64, "outline_64_vertices_median_s": med_64,
            "outline_64_vertices_best_cpu_s": cpu_64,
            "outline_64_vertices_hits": len(hits_64),
        },
        "astropy_baseline": {
            "sample": k, "per_position_s": base_at_s, "position_speedup": base_at_s / per_pos,
            "positions_agree": agree_at,
            "polygon_sample": m, "per_polygon_s": base_poly_s, "polygon_speedup": base_poly_s / per_poly,
            "polygons_agree": agree_poly,
        },
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--positions", type=int, default=1_000_000)
    ap.add_argument("--polygons", type=int, default=100_000)
    ap.add_argument("--baseline", type=int, default=300, help="sample size for the astropy-per-item baseline")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = ap.parse_args(argv)
    r = run(args.positions, args.polygons, args.baseline, args.repeat)
    _record(r)
    if args.json:
        print(json.dumps(r))
        return 0
    a, p, b = r["cells_at"], r["cells_overlapping"], r["astropy_baseline"]
    print(f"sky tessellation benchmark  ({r['machine']}, Python {r['python']}, numpy {r['numpy']}, 1 thread; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    print(f"  cells_at           {a['positions']:>9,} positions  best {a['best_s']:.3f} s  median {a['median_s']:.3f} s"
          f"  cpu {a['best_cpu_s']:.3f} s"
          f"  -> {a['positions_per_s']:,.0f} positions/s  ({a['mean_cells_per_position']:.2f} cells each)"
          f"  target >= 1,000,000/s: {'met' if a['meets_target'] else 'MISSED'}")
    print(f"  cells_overlapping  {p['polygons']:>9,} chips      best {p['best_s']:.3f} s  median {p['median_s']:.3f} s"
          f"  cpu {p['best_cpu_s']:.3f} s"
          f"  -> {p['polygons_per_s']:,.0f} chips/s  ({p['mean_cells_per_polygon']:.2f} cells each)"
          f"  target < 5 s per 100k: {'met' if p['meets_target'] else 'MISSED'}")
    print(f"  cells_overlapping  {p['polygons']:>9,} outlines   best {p['outline_64_vertices_best_s']:.3f} s  "
          f"median {p['outline_64_vertices_median_s']:.3f} s  cpu {p['outline_64_vertices_best_cpu_s']:.3f} s"
          f"  (64 vertices each, as read_chip_footprints returns)")
    print(f"  astropy per item   {b['sample']} positions: {b['per_position_s'] * 1e3:.3f} ms each "
          f"-> vectorized is {b['position_speedup']:,.0f}x faster (results agree: {b['positions_agree']})")
    print(f"                     {b['polygon_sample']} chips:     {b['per_polygon_s'] * 1e3:.3f} ms each "
          f"-> vectorized is {b['polygon_speedup']:,.0f}x faster (results agree: {b['polygons_agree']})")
    return 0


def _record(r: dict) -> None:
    from _report import record

    a, p, b = r["cells_at"], r["cells_overlapping"], r["astropy_baseline"]
    record("sky", f"cells_at, {a['positions']:,} positions", a["positions_per_s"], "positions/s",
           baseline=a["positions_per_s"] / b["position_speedup"], baseline_what="astropy per position",
           target=">= 1,000,000/s", met=a["meets_target"])
    record("sky", f"cells_overlapping, {p['polygons']:,} chips", p["best_s"], "s",
           baseline=p["best_s"] * b["polygon_speedup"], baseline_what="astropy per chip",
           target="< 5 s per 100k", met=p["meets_target"])


if __name__ == "__main__":
    raise SystemExit(main())
