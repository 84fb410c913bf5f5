"""Benchmark: layer drizzling end to end against bare ``Drizzle.add_image``, and memory of a full-size layer.

``ratio``  (default): a layer of ACS/WFC chips (4096 x 2048, TAN-SIP order 5,
    dithered and rotated) onto the bounding box of their footprints.  Baseline:
    one ``Drizzle`` over the whole box and ``add_image`` of every whole chip
    with precomputed pixel maps, weights and sky-subtracted data (preparation
    not timed; output allocation and the add_image calls timed).  End to end:
    `drizzle_layer` from the WCSs (pixel-map models, DQ/sky handling, 2048^2
    tiles with halo and guard band, nexp), in-memory output.  Runs alternate
    and the minimum of each is reported (the machine may be shared).

``memory``: a full-size fine layer (21954 x 21954 output) of ``--inputs`` chips
    spread over the sky cell, drizzled tile by tile into on-disk spools
    (`LayerSpool`) and written as a product FITS (`write_product`); prints
    wall time, peak RSS (ru_maxrss) and the product size.  Inputs are lazy
    (pixels generated for the requested box), so their memory is not counted,
    as for inputs read from disk box by box.

    .venv/bin/python benchmarks/bench_drizzle.py ratio [--exposures 4] [--repeat 2]
    .venv/bin/python benchmarks/bench_drizzle.py memory [--inputs 10] [--size 21954] [--dir /tmp]

BLAS runs single-threaded (OPENBLAS_NUM_THREADS=1 unless set), as in a
one-process-per-core worker.
"""

from __future__ import annotations

from _common import acs_wfc_chip_wcs, machine, skycell_like_wcs  # isort: skip  (first: one BLAS thread)

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from drizzle.resample import Drizzle

from mvmdb.fitsio.product import LayerSpool, write_product
from mvmdb.process.drizzling import DrizzleInput, drizzle_layer, good_pixels
from mvmdb.process.keywords import mask_statistics, mvm_keywords
from mvmdb.process.pixmap import PixmapModel, pixel_scale_arcsec

CHIP = (2048, 4096)
BITS = 80


class LazyChip:
    """A chip's science or DQ array generated on demand for the requested box (no memory held)."""

    def __init__(self, shape, dtype, value, seed):
        self.shape = shape
        self.dtype = np.dtype(dtype)
        self.ndim = 2
        self.value = value
        self.seed = seed

    def __getitem__(self, key):
        ys, xs = key
        h = len(range(*ys.indices(self.shape[0])))
        w = len(range(*xs.indices(self.shape[1])))
        if self.dtype.kind == "f":
            rng = np.random.default_rng(self.seed + ys.start * 7919 + xs.start)
            return (self.value + rng.standard_normal((h, w), dtype=np.float32)).astype(self.dtype)
        return np.zeros((h, w), dtype=self.dtype)


def _layer_inputs(n_exposures, rng):
    inputs = []
    for e in range(n_exposures):
        dra, ddec = rng.uniform(-0.0008, 0.0008, 2)
        rot = 30.0 + rng.uniform(-3, 3)
        for c, dy in enumerate((-0.01425, 0.01425)):  # chip centres 102.6" apart, like WFC1/WFC2
            t = np.deg2rad(rot)
            ra = 150.0 + dra - dy * np.sin(t)
            dec = 2.2 + ddec + dy * np.cos(t)
            w = acs_wfc_chip_wcs(ra=ra, dec=dec, shape=CHIP, rotation_deg=rot)
            sci = rng.normal(100.0, 3.0, CHIP).astype(np.float32)
            dq = np.where(rng.random(CHIP) < 0.01, 4096, 0).astype(np.int16)
            inputs.append(DrizzleInput(sci=sci, exptime=400.0, dq=dq, in_wcs=w, units="electrons", sky=50.0,
                                       name=f"exp{e}_chip{c + 1}", exposure=f"exp{e}"))
    return inputs


def _box(inputs, out_wcs):
    polys = [PixmapModel(i.in_wcs, out_wcs, CHIP).footprint() for i in inputs]
    pts = np.concatenate(polys)
    x0, y0 = np.floor(pts.min(axis=0)).astype(int)
    x1, y1 = np.ceil(pts.max(axis=0)).astype(int)
    return x0, y0, (y1 - y0 + 1, x1 - x0 + 1)


def ratio(args):
    rng = np.random.default_rng(1)
    inputs = _layer_inputs(args.exposures, rng)
    cell = skycell_like_wcs(shape=(21954, 21954))
    x0, y0, shape = _box(inputs, cell)
    out_wcs = cell.deepcopy()
    out_wcs.wcs.crpix = cell.wcs.crpix - [x0, y0]
    out_ps = pixel_scale_arcsec(out_wcs)
    prepared = []
    for inp in inputs:
        good = good_pixels(inp.sci, inp.dq, BITS)
        r = out_ps / pixel_scale_arcsec(inp.in_wcs)
        prepared.append((np.where(good, inp.sci - inp.sky, 0).astype(np.float32),
                         np.where(good, inp.exptime, 0).astype(np.float32),
                         PixmapModel(inp.in_wcs, out_wcs, CHIP).evaluate(), r))
    print(f"layer: {len(inputs)} ACS/WFC chips of {CHIP[1]}x{CHIP[0]}, output box {shape[1]}x{shape[0]} px; "
          f"{machine()}")
    bare, e2e, stages = [], [], []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        d = Drizzle(out_shape=shape)
        for data, wht, pm, r in prepared:
            d.add_image(data, exptime=400.0, pixmap=pm, weight_map=wht, iscale=r * r, pixel_scale_ratio=r,
                        in_units="counts")
        bare.append(time.perf_counter() - t0)
        del d
        t0 = time.perf_counter()
        res = drizzle_layer(inputs, out_wcs, shape, bits=BITS, tile_shape=(args.tile, args.tile))
        e2e.append(time.perf_counter() - t0)
        stages.append(res.seconds)
        del res
        print(f"  bare add_image {bare[-1]:7.2f} s   drizzle_layer {e2e[-1]:7.2f} s   "
              f"(load {os.getloadavg()[0]:.2f})")
    best = stages[int(np.argmin(e2e))]
    print(f"best: bare {min(bare):.2f} s, end-to-end {min(e2e):.2f} s, ratio {min(e2e) / min(bare):.3f} "
          f"(median ratio {np.median(e2e) / np.median(bare):.3f})")
    print("  end-to-end stages (s): " + ", ".join(f"{k} {v:.2f}" for k, v in best.items()))
    from _report import record

    record("drizzle", f"drizzle_layer, {len(inputs)} ACS/WFC chips", min(e2e), "s", baseline=min(bare),
           baseline_what="bare Drizzle.add_image", target="<= 1.25x bare", met=min(e2e) <= 1.25 * min(bare))


def memory(args):
    n = args.size
    cell = skycell_like_wcs(shape=(n, n))
    rng = np.random.default_rng(2)
    inputs = []
    for k in range(args.inputs):
        # spread over the cell (the fine cell is ~0.24 deg on a side)
        px, py = rng.uniform(0.1 * n, 0.9 * n, 2)
        ra, dec = cell.all_pix2world(px, py, 0)
        w = acs_wfc_chip_wcs(ra=float(ra), dec=float(dec), shape=CHIP, rotation_deg=float(rng.uniform(0, 90)))
        inputs.append(DrizzleInput(sci=LazyChip(CHIP, np.float32, 100.0, k * 1000003),
                                   dq=LazyChip(CHIP, np.int16, 0, 0), exptime=400.0, in_wcs=w,
                                   units="electrons", sky=50.0, name=f"chip{k}"))
    directory = Path(args.dir)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=directory) as tmp, LayerSpool((n, n), directory=tmp) as spool:
        res = drizzle_layer(inputs, cell, (n, n), bits=BITS, tile_shape=(args.tile, args.tile), sink=spool.sink)
        t_driz = time.perf_counter() - t0
        kw = mvm_keywords(mask_statistics(spool.nexp, spool.wht), spool.wht, (n, n))  # (nexp stands in for total_mask)
        t_kw = time.perf_counter() - t0 - t_driz
        prod = write_product(Path(tmp) / "layer_drc.fits", primary=kw, sci=spool.sci, wht=spool.wht,
                             nexp=spool.nexp, wcs_header=cell.to_header())
        t_write = time.perf_counter() - t0 - t_driz - t_kw
        size = prod.size
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(f"full-size layer {n}x{n}, {args.inputs} ACS/WFC chips, tiles {args.tile}^2 ({res.tiles} tiles, "
          f"halo {res.halo_px} px); {machine()}")
    print(f"  drizzle {t_driz:.1f} s (stages: " + ", ".join(f"{k} {v:.1f}" for k, v in res.seconds.items())
          + f"), keywords {t_kw:.1f} s, write {t_write:.1f} s; product {size / 2**30:.2f} GiB")
    print(f"  peak RSS {rss:.0f} MiB; NPIXFRAC {kw['NPIXFRAC'][0]:.4f}")
    from _report import record

    record("drizzle", f"peak RSS, {n}x{n} layer, {args.inputs} ACS/WFC chips", rss, "MiB",
           target="< 4 GB", met=rss < 4096)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="mode")
    r = sub.add_parser("ratio")
    r.add_argument("--exposures", type=int, default=4)
    r.add_argument("--repeat", type=int, default=2)
    r.add_argument("--tile", type=int, default=2048)
    m = sub.add_parser("memory")
    m.add_argument("--inputs", type=int, default=10)
    m.add_argument("--size", type=int, default=21954)
    m.add_argument("--tile", type=int, default=2048)
    m.add_argument("--dir", default=tempfile.gettempdir())
    args = ap.parse_args(argv)
    if args.mode == "memory":
        memory(args)
    else:
        if args.mode is None:
            args = ap.parse_args(["ratio"] + list(argv or sys.argv[1:]))
        ratio(args)


if __name__ == "__main__":
    main()
