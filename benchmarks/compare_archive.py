"""mvmdb against the HST archive's own pipeline (drizzlepac ``runmultihap``) on the same pollers.

Runs both on the same MVM poller files, side by side in one run, and prints the table of
issue 13: product names, data pixels in sky-cell coordinates, boxes, SCI agreement,
photometry keywords, primary/HDRTAB keyword coverage, stwcs ``HSTWCS`` on every product,
time and peak memory.

drizzlepac is never a dependency of mvmdb: it lives in its own virtual environment
(``python3 -m venv ~/dpac && ~/dpac/bin/pip install drizzlepac==3.11.0``), given with
``--dpac``; ``runmultihap`` runs offline with the CRDS reference variables (``iref``,
``jref``, ``uref``) pointing to an empty folder.  Inputs whose arrays are uint8 must be cast
to float32 first (drizzlepac crashes on them); ``--cast-to DIR`` does that and rewrites the
pollers' paths.

    .venv/bin/python benchmarks/compare_archive.py POLLER... --db URL [--dpac ~/dpac] [--workdir DIR]
    .venv/bin/python benchmarks/compare_archive.py --compare-only ARCHIVE_DIR MVM_DIR

mvmdb is run as ``mvm process --executor inline POLLER...``, then runmultihap on each
poller, then ``mvm process`` again with ``--executor`` (default ``local``: a process per core).
Before each mvm run (untimed) a fresh catalog is made on the server of ``--db``: database
``<name>_cmp<k>``, ``mvm init``, ``mvm ingest`` of the pollers' files, ``mvm plan``; so both mvm
runs draw every layer as the sky cells' catalogued jobs, products and NEW -> OLD flip included
(a second run on the same catalog would find every layer up to date and draw nothing).
Times are wall-clock seconds of each whole command; memory is the peak RSS of the largest
process of the command (``getrusage`` of the children, measured in a fresh helper process
each). The machine load (``os.getloadavg``) is printed with them.

Recipe (issue 13; the three real WFC3/IR FLTs of ``tests/data/hst``, four sky cells, 16 layers)::

    mkdir -p /work/oracle13/in && for f in ib6o21qnq ib6o21qqq ib6o23rtq; do
        gzip -dc tests/data/hst/${f}_flt.fits.gz > /work/oracle13/in/${f}_flt.fits; done
    createdb -h 127.0.0.1 -U postgres mvm_oracle13
    U=postgresql+psycopg://postgres@127.0.0.1:5432/mvm_oracle13
    .venv/bin/mvm --db $U init && .venv/bin/mvm --db $U ingest /work/oracle13/in
    .venv/bin/mvm --db $U plan --out /work/oracle13/pollers
    .venv/bin/python benchmarks/compare_archive.py /work/oracle13/pollers/*.txt --db $U --dpac ~/dpac \
        --workdir /work/oracle13/run --cast-to /work/oracle13/f32 --json /work/oracle13/run.json

With ``MVMDB_BENCH_RESULTS`` set (``benchmarks/run_all.py``), the headline figures are recorded
with the archive as the same-run baseline (:func:`record_figures`).

Conventions: pixel positions are 0-based sky-cell indices (``x = i + CRPIX_cell - CRPIX``
for product column ``i``); a pixel "has data" where WHT > 0.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from astropy.io import fits

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mvmdb.sky.grid import SkyCell  # noqa: E402

PHOT = ("PHOTMODE", "PHOTFLAM", "PHOTFNU", "PHOTPLAM", "PHOTBW", "PHOTZPT")
_HSTWCS_SNIPPET = """
import json, sys, warnings
warnings.simplefilter('ignore')
from astropy.io import fits
from stwcs.wcsutil import HSTWCS
out = {}
for p in sys.argv[1:]:
    with fits.open(p) as h:
        w = HSTWCS(h, ext=('SCI', 1))
        out[p] = [w.pscale, getattr(w, 'orientat', None)]
print(json.dumps(out))
"""


# --------------------------------------------------------------------------- running both
def _timed(cmd, cwd=None, env=None) -> tuple[float, float, subprocess.CompletedProcess]:
    """(wall seconds, peak RSS MiB, result) of ``cmd`` run in a helper process of its own."""
    wrapper = [sys.executable, "-c",
               "import resource, subprocess, sys, json\n"
               "r = subprocess.run(sys.argv[1:], stdout=open('/dev/null','w') if False else None)\n"
               "print('@@RSS', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)\n"
               "sys.exit(r.returncode)\n", *map(str, cmd)]
    t0 = time.perf_counter()
    res = subprocess.run(wrapper, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    m = re.search(r"@@RSS (\d+)", res.stderr)
    rss = int(m.group(1)) / 1024 if m else float("nan")
    return wall, rss, res


def cast_inputs(pollers: list[Path], dest: Path) -> list[Path]:
    """Copy the pollers' files to ``dest`` with uint8 arrays cast (SCI/ERR float32, DQ int16)."""
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for p in pollers:
        lines = []
        for line in p.read_text().splitlines():
            cols = line.split(",")
            src = Path(cols[9])
            target = dest / src.name
            if not target.exists():
                with fits.open(src) as h:
                    for hdu in h:
                        if hdu.data is not None and hdu.data.dtype == np.uint8:
                            hdu.data = hdu.data.astype(np.int16 if hdu.name == "DQ" else np.float32)
                    h.writeto(target)
            cols[9] = str(target)
            lines.append(",".join(cols))
        q = dest / p.name
        q.write_text("\n".join(lines))
        out.append(q)
    return out


def run_archive(pollers, dpac: Path, workdir: Path) -> dict:
    """runmultihap on each poller in ``workdir/archive/<cell>``; per-poller and total times."""
    crds = workdir / "crds-empty"
    crds.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, iref=f"{crds}/", jref=f"{crds}/", uref=f"{crds}/", oref=f"{crds}/")
    env.pop("MVMDB_URL", None)
    total, peak, per = 0.0, 0.0, {}
    for p in pollers:
        cell = Path(p).name.split("_")[0]
        d = workdir / "archive" / cell
        d.mkdir(parents=True, exist_ok=True)
        wall, rss, res = _timed([dpac / "bin" / "runmultihap", Path(p).resolve()], cwd=d, env=env)
        if res.returncode:
            raise SystemExit(f"runmultihap failed on {p}:\n{res.stderr[-2000:]}")
        total += wall
        peak = max(peak, rss)
        per[cell] = wall
    return {"seconds": total, "rss_mib": peak, "per_poller": per, "dir": workdir / "archive"}


def fresh_catalog(db: str, k: int, pollers, workdir: Path) -> str:
    """A new catalog ``<db name>_cmp<k>`` on ``db``'s server (dropped first if left over), with the
    pollers' files ingested and planned (untimed); returns its URL."""
    import sqlalchemy as sa

    from mvmdb.db.admin import create_database, drop_database
    from mvmdb.db.engine import normalize_url

    url = normalize_url(db)
    name = f"{url.database}_cmp{k}"
    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        drop_database(admin, name)
        create_database(admin, name)
    finally:
        admin.dispose()
    fresh = url.set(database=name).render_as_string(hide_password=False)
    files = sorted({line.split(",")[9] for p in pollers for line in Path(p).read_text().splitlines() if line})
    mvm = Path(sys.executable).parent / "mvm"
    env = dict(os.environ, MVMDB_URL=fresh)
    for cmd in (["init"], ["ingest", *files], ["plan", "--out", workdir / f"plan-cmp{k}"]):
        subprocess.run([mvm, *cmd], env=env, check=True, capture_output=True)
    return fresh


def run_mvmdb(pollers, db: str, workdir: Path, executor: str = "inline", k: int = 1) -> dict:
    """``mvm -v process --executor EXECUTOR`` on all pollers in one command, on a fresh catalog
    (:func:`fresh_catalog`, untimed) so that every layer is drawn."""
    mvm = Path(sys.executable).parent / "mvm"
    env = dict(os.environ, MVMDB_URL=fresh_catalog(db, k, pollers, workdir), OPENBLAS_NUM_THREADS="1")
    out = workdir / f"mvmdb-{executor.replace(':', '')}"
    shutil.rmtree(out, ignore_errors=True)
    wall, rss, res = _timed([mvm, "-v", "process", "--executor", executor, "--products", out,
                             *[Path(p).resolve() for p in pollers]], env=env)
    if res.returncode:
        raise SystemExit(f"mvm process failed:\n{res.stderr[-3000:]}")
    return {"seconds": wall, "rss_mib": rss, "dir": out, "log": res.stderr, "executor": executor,
            "load": os.getloadavg()[0]}


# --------------------------------------------------------------------------- comparing products
def products(root: Path) -> dict[str, Path]:
    return {p.name: p for p in sorted(Path(root).rglob("hst_skycell-*_dr[cz].fits"))}


def _cell_and_scale(name: str) -> tuple[SkyCell, str]:
    cell = SkyCell.from_name(re.search(r"skycell-p\d{4}x\d{2}y\d{2}", name).group(0))
    return cell, ("coarse" if "_coarse-" in name else "fine")


def data_pixels(path: Path):
    """(set-ready flat indices in sky-cell pixels, box (x0, x1, y0, y1) 0-based, SCI, WHT, origin)."""
    with fits.open(path, memmap=False) as h:
        hdr = h["SCI"].header
        sci = np.asarray(h["SCI"].data, dtype=np.float64)
        wht = np.asarray(h["WHT"].data, dtype=np.float64)
    cell, scale = _cell_and_scale(path.name)
    c1, c2 = cell.crpix(scale)
    ox = int(round(c1 - hdr["CRPIX1"]))
    oy = int(round(c2 - hdr["CRPIX2"]))
    ny, nx = sci.shape
    return (ox, oy), (ox, ox + nx - 1, oy, oy + ny - 1), sci, wht, cell.naxis(scale)


def compare_pair(arch: Path, mine: Path) -> dict:
    (ax, ay), abox, asci, awht, n = data_pixels(arch)
    (mx, my), mbox, msci, mwht, _ = data_pixels(mine)
    a_has = awht > 0
    m_has = mwht > 0
    # both on the full cell grid, as boolean maps over the union of the two boxes
    x0, y0 = min(ax, mx), min(ay, my)
    x1, y1 = max(abox[1], mbox[1]), max(abox[3], mbox[3])
    A = np.zeros((y1 - y0 + 1, x1 - x0 + 1), bool)
    M = np.zeros_like(A)
    A[ay - y0: ay - y0 + a_has.shape[0], ax - x0: ax - x0 + a_has.shape[1]] = a_has
    M[my - y0: my - y0 + m_has.shape[0], mx - x0: mx - x0 + m_has.shape[1]] = m_has
    ys, xs = np.nonzero(M)
    gx, gy = xs + x0, ys + y0
    outside = int(np.count_nonzero((gx < 0) | (gx > n - 1) | (gy < 0) | (gy > n - 1)))
    edge = (np.arange(A.shape[1]) + x0 >= n - 2)[None, :] | (np.arange(A.shape[0]) + y0 >= n - 2)[:, None]
    only_a = int(np.count_nonzero(A & ~M & ~edge))
    only_m = int(np.count_nonzero(M & ~A & ~edge))
    common = A & M
    SA = np.full(A.shape, np.nan)
    SM = np.full(A.shape, np.nan)
    SA[ay - y0: ay - y0 + asci.shape[0], ax - x0: ax - x0 + asci.shape[1]] = asci
    SM[my - y0: my - y0 + msci.shape[0], mx - x0: mx - x0 + msci.shape[1]] = msci
    a, m = SA[common], SM[common]
    nz = np.abs(a) > 0
    rel = np.abs(m[nz] - a[nz]) / np.abs(a[nz]) if nz.any() else np.array([np.nan])
    flux = float(np.nansum(m) / np.nansum(a)) if np.nansum(a) else float("nan")
    # the data's own bounding box in each product
    def dbox(has, ox, oy):
        yy, xx = np.nonzero(has)
        return (int(xx.min()) + ox, int(xx.max()) + ox, int(yy.min()) + oy, int(yy.max()) + oy) if xx.size else None
    return {
        "n_archive": int(A.sum()), "n_mvmdb": int(M.sum()), "only_archive": only_a, "only_mvmdb": only_m,
        "outside_cell": outside, "median_rel": float(np.median(rel)), "flux_ratio": flux,
        "box_archive": abox, "box_mvmdb": mbox, "data_archive": dbox(a_has, ax, ay), "data_mvmdb": dbox(m_has, mx, my),
        "first_row_col_archive": int(np.count_nonzero(A[(np.arange(A.shape[0]) + y0) == 0]) +
                                     np.count_nonzero(A[:, (np.arange(A.shape[1]) + x0) == 0])),
        "first_row_col_mvmdb": int(np.count_nonzero(M[(np.arange(M.shape[0]) + y0) == 0]) +
                                   np.count_nonzero(M[:, (np.arange(M.shape[1]) + x0) == 0])),
    }


def compare_headers(arch: Path, mine: Path) -> dict:
    with fits.open(arch) as ha, fits.open(mine) as hm:
        pa = {k for k in ha[0].header if k not in ("", "COMMENT", "HISTORY")}
        pm = {k for k in hm[0].header if k not in ("", "COMMENT", "HISTORY")}
        ca = set(ha["HDRTAB"].columns.names)
        cm = set(hm["HDRTAB"].columns.names)
        sa, sm = ha["SCI"].header, hm["SCI"].header
        phot = {k: (sa.get(k), sm.get(k)) for k in PHOT}
    phot_ok = all(
        (isinstance(a, str) and str(b).strip() == a.strip())
        or (isinstance(a, (int, float)) and isinstance(b, (int, float)) and abs(a - b) <= 1e-6 * max(abs(a), 1e-30))
        for a, b in phot.values()
    )
    return {"primary": len(pa & pm) / len(pa), "primary_missing": sorted(pa - pm),
            "hdrtab": len(ca & cm) / len(ca), "hdrtab_missing": sorted(ca - cm), "phot_ok": phot_ok, "phot": phot,
            "cd_form": "CD1_1" in sm and "PC1_1" not in sm}


def hstwcs(dpac: Path, paths) -> dict:
    res = subprocess.run([dpac / "bin" / "python", "-c", _HSTWCS_SNIPPET, *map(str, paths)],
                         capture_output=True, text=True)
    if res.returncode:
        return {str(p): [None, None] for p in paths}
    return json.loads(res.stdout.strip().splitlines()[-1])


def archive_drizzle_seconds(archive_dir: Path) -> dict[str, float]:
    """AstroDrizzle's own 'Total' per product, from the archive's trailer files."""
    out = {}
    for trl in Path(archive_dir).rglob("hst_skycell-*_trl.txt"):
        m = re.findall(r"Total\s+([0-9.]+) sec", trl.read_text(errors="replace"))
        if m:
            out[trl.name.replace("_trl.txt", "")] = float(m[0])
    return out


def mvmdb_layer_seconds(log: str) -> dict[str, float]:
    """Per product total seconds from ``mvm -v process`` log lines of draw_layer."""
    out = {}
    for m in re.finditer(r"(hst_skycell-\S+?)_dr[cz]\.fits: .*total ([0-9.]+)s", log):
        out[m.group(1)] = float(m.group(2))
    return out


def report(archive_dir: Path, mvm_dir: Path, dpac: Path | None, timing: dict | None = None) -> dict:
    pa, pm = products(archive_dir), products(mvm_dir)
    names = sorted(set(pa) | set(pm))
    rows = []
    for name in names:
        if name not in pa or name not in pm:
            rows.append({"product": name, "missing_in": "archive" if name not in pa else "mvmdb"})
            continue
        r = {"product": name}
        r.update(compare_pair(pa[name], pm[name]))
        r.update(compare_headers(pa[name], pm[name]))
        rows.append(r)
    wcs = hstwcs(dpac, [pm[n] for n in names if n in pm]) if dpac and (dpac / "bin" / "python").exists() else {}
    for r in rows:
        if r["product"] in pm:
            r["hstwcs"] = wcs.get(str(pm[r["product"]]), [None, None])
    a_sec = archive_drizzle_seconds(archive_dir)
    m_sec = mvmdb_layer_seconds(timing["mvmdb"]["log"]) if timing else {}
    for r in rows:
        key = r["product"].rsplit("_", 1)[0]
        r["astrodrizzle_s"] = a_sec.get(key)
        r["mvmdb_s"] = m_sec.get(key)
    return {"rows": rows, "timing": timing}


def print_table(rep: dict) -> None:
    rows = rep["rows"]
    print(f"{'product':58s} {'arch px':>9s} {'mvm px':>9s} {'only A':>7s} {'only M':>7s} {'outside':>7s} "
          f"{'med|rel|':>9s} {'flux':>8s} {'prim%':>6s} {'tab%':>5s} {'phot':>4s} {'CD':>3s} "
          f"{'pscale':>7s} {'orient':>7s} {'AD s':>6s} {'mvm s':>6s}")
    for r in rows:
        if "missing_in" in r:
            print(f"{r['product']:58s} missing in {r['missing_in']}")
            continue
        ps, orient = r.get("hstwcs", [None, None])
        fmt = lambda v, f: "-" if v is None else format(v, f)  # noqa: E731
        print(f"{r['product'][:58]:58s} {r['n_archive']:9d} {r['n_mvmdb']:9d} {r['only_archive']:7d} "
              f"{r['only_mvmdb']:7d} {r['outside_cell']:7d} {r['median_rel']:9.2e} {r['flux_ratio']:8.5f} "
              f"{100 * r['primary']:6.1f} {100 * r['hdrtab']:5.1f} {'ok' if r['phot_ok'] else 'NO':>4s} "
              f"{'yes' if r['cd_form'] else 'no':>3s} {fmt(ps, '7.4f'):>7s} {fmt(orient, '7.2f'):>7s} "
              f"{fmt(r['astrodrizzle_s'], '6.2f'):>6s} {fmt(r['mvmdb_s'], '6.2f'):>6s}")
    print()
    print(f"{'product':58s} {'archive box (x0,x1,y0,y1)':>28s} {'mvmdb box':>28s} {'archive data':>28s} {'mvmdb data':>28s} first row/col A/M")
    for r in rows:
        if "missing_in" not in r:
            print(f"{r['product'][:58]:58s} {str(r['box_archive']):>28s} {str(r['box_mvmdb']):>28s} "
                  f"{str(r['data_archive']):>28s} {str(r['data_mvmdb']):>28s} "
                  f"{r['first_row_col_archive']}/{r['first_row_col_mvmdb']}")
    ok = [r for r in rows if "missing_in" not in r]
    if ok:
        miss = sorted({k for r in ok for k in r["primary_missing"]})
        print(f"\nprimary keywords of the archive missing in mvmdb (any product, {len(miss)}): {' '.join(miss)}")
        tmiss = sorted({k for r in ok for k in r["hdrtab_missing"]})
        print(f"HDRTAB columns of the archive missing in mvmdb (any product, {len(tmiss)}): {' '.join(tmiss)}")
    t = rep.get("timing")
    if t:
        a, m = t["archive"], t["mvmdb"]
        print(f"\nwhole run ({t['machine']}):")
        print(f"  runmultihap, one poller after another: {a['seconds']:.1f} s, peak RSS {a['rss_mib']:.0f} MiB "
              f"({', '.join(f'{k} {v:.1f} s' for k, v in a['per_poller'].items())})")
        for run in (m, t.get("mvmdb_parallel")):
            if run:
                print(f"  mvm process --executor {run['executor']}: {run['seconds']:.1f} s, peak RSS {run['rss_mib']:.0f} MiB"
                      f" (largest process); speed-up {a['seconds'] / run['seconds']:.1f}x"
                      f" (load average {run.get('load', float('nan')):.2f} after it)")
        ad = [r["astrodrizzle_s"] for r in rows if r.get("astrodrizzle_s") is not None and r.get("mvmdb_s") is not None]
        mv = [r["mvmdb_s"] for r in rows if r.get("astrodrizzle_s") is not None and r.get("mvmdb_s") is not None]
        if ad:
            slower = sum(1 for x, y in zip(ad, mv) if y > x)
            print(f"  per layer: mvmdb end-to-end {sum(mv):.1f} s in all against AstroDrizzle's step {sum(ad):.1f} s; "
                  f"{slower} of {len(ad)} layers slower than the archive's step")


def record_figures(rep: dict) -> None:
    """The headline figures for ``benchmarks/run_all.py``'s table (archive = same-run baseline)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _report import record

    t, rows = rep["timing"], [r for r in rep["rows"] if "missing_in" not in r]
    a = t["archive"]
    for m in (t["mvmdb"], t.get("mvmdb_parallel")):
        if not m:
            continue
        how = f"--executor {m['executor']}"  # the machine's load is in the printed report
        speedup = a["seconds"] / m["seconds"]
        record("compare_archive", f"whole run, {len(rows)} layers ({how})", m["seconds"], "s",
               baseline=a["seconds"], baseline_what="runmultihap", target=">= 10x", met=speedup >= 10)
        record("compare_archive", f"peak memory ({how})", m["rss_mib"], "MiB", baseline=a["rss_mib"],
               baseline_what="runmultihap")
    timed = [r for r in rows if r.get("astrodrizzle_s") is not None and r.get("mvmdb_s") is not None]
    if timed:
        record("compare_archive", "layers end to end (sum)", sum(r["mvmdb_s"] for r in timed), "s",
               baseline=sum(r["astrodrizzle_s"] for r in timed), baseline_what="AstroDrizzle step",
               target="each layer <= archive step", met=all(r["mvmdb_s"] <= r["astrodrizzle_s"] for r in timed))
    record("compare_archive", "pixels only in the archive (all layers)", sum(r["only_archive"] for r in rows), "px",
           target="0", met=all(r["only_archive"] == 0 for r in rows))
    record("compare_archive", "data pixels outside their sky cell", sum(r["outside_cell"] for r in rows), "px",
           target="0", met=all(r["outside_cell"] == 0 for r in rows))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pollers", nargs="*", type=Path)
    ap.add_argument("--dpac", type=Path, default=Path.home() / "dpac", help="drizzlepac virtual environment")
    ap.add_argument("--db", default=os.environ.get("MVMDB_URL"), help="catalog URL for mvm process")
    ap.add_argument("--workdir", type=Path, default=Path("compare-archive"))
    ap.add_argument("--cast-to", type=Path, help="cast uint8 inputs to float32 copies here first")
    ap.add_argument("--compare-only", nargs=2, type=Path, metavar=("ARCHIVE_DIR", "MVM_DIR"))
    ap.add_argument("--json", type=Path, help="also write the comparison as JSON here")
    ap.add_argument("--executor", default="local", help="mvm process executor of the second, whole-run timing "
                    "(the first run is inline, for per-layer times); 'inline' skips the second run")
    args = ap.parse_args(argv)
    timing = None
    if args.compare_only:
        arch_dir, mvm_dir = args.compare_only
    else:
        if not args.pollers:
            ap.error("give POLLER files or --compare-only")
        if not (args.dpac / "bin" / "runmultihap").exists():
            print(f"drizzlepac not found in {args.dpac}: nothing to compare against", file=sys.stderr)
            return 2
        if not args.db:
            ap.error("--db (or MVMDB_URL) is required")
        pollers = cast_inputs(args.pollers, args.cast_to) if args.cast_to else args.pollers
        args.workdir.mkdir(parents=True, exist_ok=True)
        load0 = os.getloadavg()[0]
        m = run_mvmdb(pollers, args.db, args.workdir, "inline", k=1)
        a = run_archive(pollers, args.dpac, args.workdir)
        m2 = run_mvmdb(pollers, args.db, args.workdir, args.executor, k=2) if args.executor != "inline" else None
        machine = f"{os.cpu_count()} cpus, load average {load0:.2f} before, {os.getloadavg()[0]:.2f} after"
        timing = {"archive": a, "mvmdb": m, "mvmdb_parallel": m2, "machine": machine}
        arch_dir, mvm_dir = a["dir"], m["dir"]
    rep = report(arch_dir, mvm_dir, args.dpac, timing)
    print_table(rep)
    if timing:
        record_figures(rep)
    if args.json:
        args.json.write_text(json.dumps(rep, default=str, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
