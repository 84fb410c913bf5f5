"""Benchmark: fast pixel maps (mvmdb.process.pixmap) against drizzle's calc_pixmap (astropy).

For a 4096 x 2048 ACS/WFC chip onto a 0.04"/px sky-cell-like TAN grid whose
tangent point is ~0.8 deg away, reports the time of `calc_pixmap` (astropy's
all_pix2world + all_world2pix at every pixel), of `fast_pixmap` (model build
plus evaluation) and its maximum deviation from calc_pixmap over *every*
pixel of the chip.

Chips: the real jbt122x8q FLC header (SIP order 5 + D2IM + NPOL lookup
tables) when ``tests/data/hst/sample_flc_header.fits.gz`` (or ``--flc``) exists,
and a synthetic TAN-SIP chip with the same SIP coefficients.

    .venv/bin/python benchmarks/bench_pixmap.py [--repeat 3] [--flc PATH]

BLAS runs single-threaded (OPENBLAS_NUM_THREADS=1 unless set), as in a
one-process-per-core worker.
"""

from __future__ import annotations

from _common import acs_wfc_chip_wcs, machine, skycell_like_wcs  # isort: skip  (first: one BLAS thread)

import argparse
import os
import time
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS
from drizzle.utils import calc_pixmap

from mvmdb.process.pixmap import PixmapModel, fast_pixmap

SHAPE = (2048, 4096)


def _best(fn, repeat):
    times, cpu = [], []
    out = None
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return out, min(times), min(cpu)


def bench(label, in_wcs, out_wcs, repeat):
    ref, t_ref, c_ref = _best(lambda: calc_pixmap(in_wcs, out_wcs, shape=SHAPE), max(1, repeat - 1))
    fast, t_fast, c_fast = _best(lambda: fast_pixmap(in_wcs, out_wcs, SHAPE), repeat)
    model, t_build, _ = _best(lambda: PixmapModel(in_wcs, out_wcs, SHAPE), repeat)
    _, t_eval, _ = _best(lambda: model.evaluate(), repeat)
    err = np.hypot(fast[..., 0] - ref[..., 0], fast[..., 1] - ref[..., 1])
    print(f"{label}: mode={model.mode} nodes={len(model._nx_nodes)}x{len(model._ny_nodes)} "
          f"spacing={model.spacing_px:.0f}px")
    print(f"  calc_pixmap      {t_ref:7.3f} s wall  {c_ref:7.3f} s cpu")
    print(f"  fast_pixmap      {t_fast:7.3f} s wall  {c_fast:7.3f} s cpu   (build {t_build:.3f} s + evaluate {t_eval:.3f} s)")
    print(f"  speed-up         {t_ref / t_fast:7.1f}x wall  {c_ref / c_fast:7.1f}x cpu")
    print(f"  max |fast - calc_pixmap| over all {err.size} pixels: {err.max():.2e} px "
          f"(edges {max(err[0].max(), err[-1].max(), err[:, 0].max(), err[:, -1].max()):.2e} px), "
          f"rms {np.sqrt(np.mean(err**2)):.2e} px")
    from _report import record

    record("pixmap", f"fast_pixmap 4096x2048, {label.split(' (')[0]}", t_fast, "s", baseline=t_ref,
           baseline_what="astropy calc_pixmap", target=">= 10x faster", met=t_ref / t_fast >= 10)
    record("pixmap", f"max error vs astropy, {label.split(' (')[0]}", float(err.max()), "px",
           target="<= 0.01 px", met=float(err.max()) <= 0.01)
    return t_ref / t_fast, float(err.max())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--flc", default=str(Path(__file__).resolve().parents[1] / "tests/data/hst/sample_flc_header.fits.gz"))
    args = ap.parse_args(argv)
    print(f"machine: {machine()}; "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}")
    out_wcs = skycell_like_wcs(ra=150.0, dec=2.2)
    bench("synthetic ACS/WFC TAN-SIP (order 5), rotated 37 deg", acs_wfc_chip_wcs(rotation_deg=37.0), out_wcs,
          args.repeat)
    if Path(args.flc).exists():
        with fits.open(args.flc) as hdul:
            w = WCS(hdul["SCI", 1].header, hdul)
        ra, dec = w.wcs.crval
        bench("real jbt122x8q FLC SCI,1 (SIP 5 + D2IM + NPOL tables)", w, skycell_like_wcs(ra=ra, dec=dec),
              args.repeat)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
