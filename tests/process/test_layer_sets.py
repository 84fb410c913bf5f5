"""Year layers end to end (issue 17 "must show") and the proper-motion science check.

One simulated ``years`` scene (downscale 4, a star moving 200 mas/yr) is ingested, planned
and processed (``all``), then ``mvm layers enable year`` -> plan -> process draws one
product per (sky cell, detector, filter, year). Checked here: the products and their
members (HDRTAB DATE-OBS), the ``all`` products untouched, a later visit planning only
``all`` and its own year; in each fine year layer the moving star sits where the truth
says, in ``all`` it is smeared, and the difference of two years shows it and nothing else.
"""

from __future__ import annotations

import hashlib
import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS
from click.testing import CliRunner
from scipy.ndimage import gaussian_filter

from mvmdb import rules
from mvmdb.cli.main import cli
from mvmdb.db.engine import make_engine
from mvmdb.db.products import checksums_by_path, current_products
from mvmdb.ingest import ingest
from mvmdb.plan import plan
from mvmdb.process.run import run_queue
from mvmdb.simulate import add_visit, moving_positions, simulate_scene

pytestmark = pytest.mark.slow

PM = 200.0  # mas/yr: 1" (25 fine px) between 2011 and 2016
FINE = 0.04  # arcsec per fine pixel


def sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def products(engine) -> dict[str, tuple[str, str]]:
    """Catalogued products: layer name -> (path, checksum recorded in the catalog)."""
    rows = current_products(engine)
    sums = checksums_by_path(engine, [str(p.path) for p in rows])
    return {p.layer: (str(p.path), sums[str(p.path)]) for p in rows}


@pytest.fixture(scope="module")
def years(tmp_path_factory, db_factory):
    """The scene processed twice: ``all`` only, then with the year set enabled."""
    root = tmp_path_factory.mktemp("layer_sets")
    scene = simulate_scene("years", root / "scene", seed=0, downscale=4, proper_motion=PM)
    url = db_factory.create()
    engine = make_engine(url, poolclass=sa.pool.NullPool)
    ingest(engine, [scene.out_dir])
    plan(engine, root / "pollers")
    run_queue(engine, root / "products", executor="inline")
    before = products(engine)
    files_before = {layer: sha256(path) for layer, (path, _) in before.items()}
    res = CliRunner().invoke(cli, ["--db", url, "layers", "enable", "year"])
    assert res.exit_code == 0, res.output
    pollers = plan(engine, root / "pollers")
    run_queue(engine, root / "products", executor="inline")
    yield {"scene": scene, "engine": engine, "root": root, "before": before, "files_before": files_before,
           "after": products(engine), "planned": {lay for p in pollers for lay in p.layers}, "enable": res.output}
    engine.dispose()
    db_factory.drop(url)


def _all_layer_years(engine) -> dict[str, set[int]]:
    """Per 'all' layer name, the calendar years of its members' DATE-OBS."""
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT l.name, e.date_obs FROM layer l JOIN layer_member m ON m.layer_id = l.id "
            "JOIN exposure e ON e.id = m.exposure_id WHERE l.layer_set = 'all'")).all()
    out = defaultdict(set)
    for name, date_obs in rows:
        out[name].add(date_obs.year)
    return out


def test_one_product_per_skycell_detector_filter_year_with_members_of_that_year(years):
    assert "layer set year enabled for catalog" in years["enable"]
    expected = {name[: -len("all")] + str(y) for name, ys in _all_layer_years(years["engine"]).items() for y in ys}
    year_products = {k: v for k, v in years["after"].items() if rules.parse_layer_name(k).layer_set == "year"}
    assert set(year_products) == expected
    assert years["planned"] == expected  # the plan after enabling: the year layers, no 'all' layer
    cells = {rules.parse_layer_name(k).skycell for k in expected}
    assert len(cells) == 2 and {rules.parse_layer_name(k).key for k in expected} == {"2011", "2013", "2016"}
    for layer, (path, checksum) in year_products.items():
        key = rules.parse_layer_name(Path(path).name).key
        assert sha256(path) == checksum
        with fits.open(path) as h:
            dates = list(h["HDRTAB"].data["DATE-OBS"])  # one row per input chip
            roots = set(h["HDRTAB"].data["ROOTNAME"])
            hdr = h[0].header
            assert (hdr["LAYERSET"], hdr["LAYERKEY"]) == ("year", key)
            assert (hdr["LAYDBEG"], hdr["LAYDEND"]) == (f"{key}-01-01", f"{key}-12-31")
            assert hdr["NUMEXP"] == len(roots) > 0
            assert hdr["DATE-BEG"][:4] == hdr["DATE-END"][:4] == key
        assert {d[:4] for d in dates} == {key}, layer


def test_all_products_unchanged_by_enabling_year(years):
    all_after = {k: v for k, v in years["after"].items() if rules.parse_layer_name(k).layer_set == "all"}
    assert all_after == years["before"]
    assert {layer: sha256(path) for layer, (path, _) in all_after.items()} == years["files_before"]
    for path, _ in all_after.values():
        assert "LAYERSET" not in fits.getheader(path)  # the archive's headers


def test_a_new_visit_plans_only_all_and_its_own_year(years, tmp_path):
    scene = shutil.copytree(years["scene"].out_dir, tmp_path / "scene")
    visit = add_visit(scene, instrument="WFC3", detector="IR", filter="F160W")
    engine = years["engine"]
    ingest(engine, visit.paths)
    with fits.open(visit.paths[0]) as h:
        year = h[0].header["DATE-OBS"][:4]
    planned = {lay for p in plan(engine, tmp_path / "pollers", dry_run=True) for lay in p.layers}
    parts = [rules.parse_layer_name(n) for n in planned]
    assert {p.key for p in parts} == {"all", year}
    assert {(p.instrument, p.detector, p.filter) for p in parts} == {("wfc3", "ir", "f160w")}
    with engine.begin() as conn:  # leave the module's catalog as it was for the other tests
        conn.execute(sa.text("DELETE FROM exposure WHERE ipppssoot = ANY(:i)"),
                     {"i": [p.name[:9] for p in visit.paths]})


# --------------------------------------------------------------------------- science check


def windowed_centroid(img: np.ndarray, x: float, y: float, sigma: float, iters: int = 50) -> tuple[float, float]:
    """0-based centroid of a source near (x, y): iterated Gaussian-windowed first moments
    (window sigma ``sigma`` px; background the median of an annulus 4-8 sigma out)."""
    r = int(np.ceil(4 * sigma))
    for _ in range(iters):
        xi, yi = int(round(x)), int(round(y))
        yy, xx = np.mgrid[yi - 2 * r:yi + 2 * r + 1, xi - 2 * r:xi + 2 * r + 1]
        cut = img[yi - 2 * r:yi + 2 * r + 1, xi - 2 * r:xi + 2 * r + 1].astype(float)
        d2 = (xx - x) ** 2 + (yy - y) ** 2
        bg = np.nanmedian(cut[d2 > r * r])
        f = np.nan_to_num(cut - bg) * np.exp(-d2 / (2 * sigma**2)) * (d2 <= r * r)
        dx, dy = 2 * np.sum(f * (xx - x)) / np.sum(f), 2 * np.sum(f * (yy - y)) / np.sum(f)
        x, y = x + dx, y + dy
        if abs(dx) < 1e-4 and abs(dy) < 1e-4:
            break
    return x, y


def second_moments(img: np.ndarray, x: float, y: float, r: float, direction: np.ndarray) -> tuple[float, float]:
    """Flux-weighted variances (px^2) along and across ``direction`` within radius r of (x, y)."""
    R = int(np.ceil(r))
    xi, yi = int(round(x)), int(round(y))
    yy, xx = np.mgrid[yi - 2 * R:yi + 2 * R + 1, xi - 2 * R:xi + 2 * R + 1]
    cut = img[yi - 2 * R:yi + 2 * R + 1, xi - 2 * R:xi + 2 * R + 1].astype(float)
    d2 = (xx - x) ** 2 + (yy - y) ** 2
    f = np.nan_to_num(cut - np.nanmedian(cut[d2 > r * r])) * (d2 <= r * r)
    u = (xx - x) * direction[0] + (yy - y) * direction[1]
    v = -(xx - x) * direction[1] + (yy - y) * direction[0]
    mu, mv = np.sum(f * u) / f.sum(), np.sum(f * v) / f.sum()
    return float(np.sum(f * (u - mu) ** 2) / f.sum()), float(np.sum(f * (v - mv) ** 2) / f.sum())


def _truth(years):
    scene = years["scene"]
    pos = {r["ipppssoot"]: r for r in moving_positions(Table.read(scene.truth_path, format="ascii.ecsv"))}
    manifest = {r["ipppssoot"]: r for r in scene.manifest}
    return pos, manifest


def _fwhm_fine_px(years, ipppssoot: str) -> float:
    """The effective PSF FWHM of an input in fine pixels: the core FWHM (file px) widened by the
    file pixel (drizzle's square kernel), times the file pixel scale over 0.04"."""
    row = _truth(years)[1][ipppssoot]
    hdr = fits.getheader(years["scene"].out_dir / row["path"], ("SCI", 1))
    scale = float(np.mean([s.to_value("arcsec") for s in WCS(hdr).proj_plane_pixel_scales()]))
    return float(np.hypot(row["psf_fwhm_px"], 1.0)) * scale / FINE


def _star_layers(years, cell: str | None = None):
    """Fine product layers (name -> (sci, wht, wcs, roots)) of the sky cell holding the moving star."""
    pos, manifest = _truth(years)
    out = {}
    for layer, (path, _) in sorted(years["after"].items()):
        parts = rules.parse_layer_name(layer)
        if parts.scale != "fine" or (cell is not None and parts.skycell != cell):
            continue
        with fits.open(path) as h:
            w = WCS(h["SCI"].header)
            roots = list(h["HDRTAB"].data["ROOTNAME"])
            x, y = w.all_world2pix([pos[r]["ra"] for r in roots], [pos[r]["dec"] for r in roots], 0)
            ny, nx = h["SCI"].shape
            if not (100 < x.min() and x.max() < nx - 100 and 100 < y.min() and y.max() < ny - 100):
                continue
            t = np.array([manifest[r]["exptime"] for r in roots], float)
            out[layer] = {"sci": h["SCI"].data.astype(np.float32), "wht": h["WHT"].data.astype(np.float32),
                          "x": x, "y": y, "t": t, "roots": roots, "parts": parts}
    return out


@pytest.fixture(scope="module")
def star_layers(years):
    layers = _star_layers(years)
    cell = sorted({v["parts"].skycell for v in layers.values()})[0]
    return {k: v for k, v in layers.items() if v["parts"].skycell == cell}


def test_moving_star_sits_at_its_truth_in_each_year_layer_and_is_smeared_in_all(years, star_layers):
    checked = defaultdict(list)
    for layer, s in star_layers.items():
        if s["parts"].layer_set != "year":
            continue
        # drizzle weights inputs by exposure time: the image is the exposure-time weighted sum
        xe, ye = np.average(s["x"], weights=s["t"]), np.average(s["y"], weights=s["t"])
        fw = _fwhm_fine_px(years, s["roots"][0])
        xc, yc = windowed_centroid(s["sci"], xe, ye, 2 * fw / 2.355)
        assert np.hypot(xc - xe, yc - ye) <= 0.2, f"{layer}: off by {xc - xe:.3f}, {yc - ye:.3f} fine px"
        checked[(s["parts"].detector, s["parts"].filter)].append((s["parts"].key, xe, ye, fw, s))
    assert {k: sorted(v[0] for v in vals) for k, vals in checked.items()} == {
        ("wfc", "f814w"): ["2011", "2016"], ("ir", "f160w"): ["2011", "2013", "2016"]}
    for (det, filt), vals in checked.items():
        first, last = min(vals, key=lambda v: v[0]), max(vals, key=lambda v: v[0])
        motion = np.array([last[1] - first[1], last[2] - first[2]])
        sep = float(np.hypot(*motion))
        assert sep == pytest.approx(PM / 1000 * (int(last[0]) - int(first[0])) / FINE, rel=0.25)
        all_layer = next(s for s in star_layers.values() if s["parts"].layer_set == "all"
                         and (s["parts"].detector, s["parts"].filter) == (det, filt))
        xm, ym = np.average(all_layer["x"], weights=all_layer["t"]), np.average(all_layer["y"], weights=all_layer["t"])
        fw = first[3]
        r = 2 * fw + sep
        along_all, across_all = second_moments(all_layer["sci"], xm, ym, r, motion / sep)
        along_year, across_year = second_moments(first[4]["sci"], first[1], first[2], r, motion / sep)
        # two or three images of the star strung along the motion: the spread grows along it only
        assert along_all - along_year > 0.25 * (sep / 2) ** 2, (det, along_all, along_year, sep)
        assert along_all > 1.5 * across_all
        assert across_all == pytest.approx(across_year, rel=0.3)


def test_difference_of_two_years_shows_the_moving_star_and_nothing_else(years, star_layers):
    """2011 - 2016 (ACS/WFC F814W), smoothed by the PSF: |z| > 5 only near the star's two positions.

    Noise per pixel: the sky noise, scaled by each layer's weight (WHT ~ exposure time) and
    measured robustly on the difference itself, plus 10% of the local brightness: static
    sources cancel to within the few per cent by which the years' photometry differs here.
    """
    layer = {s["parts"].key: s for s in star_layers.values() if s["parts"].detector == "wfc"}
    a, b = layer["2011"], layer["2016"]
    fw = _fwhm_fine_px(years, a["roots"][0])
    common = (a["wht"] > 0) & (b["wht"] > 0) & np.isfinite(a["sci"]) & np.isfinite(b["sci"])
    ys, xs = np.nonzero(common)
    box = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
    common = common[box]
    sa_, sb_ = (np.where(common, s["sci"][box], 0).astype(np.float32) for s in (a, b))
    inv = np.where(common, 1 / np.where(common, a["wht"][box], 1) + 1 / np.where(common, b["wht"][box], 1), 0)
    sigma_s = fw  # smoothing (px): the sampling of each year's dithers differs; the mover survives
    diff = gaussian_filter(sa_ - sb_, sigma_s)
    level = 0.5 * (np.abs(gaussian_filter(sa_, sigma_s)) + np.abs(gaussian_filter(sb_, sigma_s)))
    inner = gaussian_filter(common.astype(np.float32), sigma_s) > 0.999
    u = diff[inner] / np.sqrt(inv[inner])
    c_sky = (1.4826 * np.median(np.abs(u - np.median(u)))) ** 2
    z = np.zeros_like(diff)
    z[inner] = (diff[inner] - np.median(diff[inner])) / np.sqrt(c_sky * inv[inner] + (0.1 * level[inner]) ** 2)
    hy, hx = np.nonzero(np.abs(z) > 5)
    hx, hy = hx + box[1].start, hy + box[0].start
    positions = [(np.average(s["x"], weights=s["t"]), np.average(s["y"], weights=s["t"])) for s in (a, b)]
    dist = np.array([np.hypot(hx - x, hy - y) for x, y in positions])
    assert hx.size > 0
    assert (dist.min(axis=0) <= 3 * fw).all(), f"{np.sum(dist.min(axis=0) > 3 * fw)} pixels above 5 sigma elsewhere"
    zz = z[hy - box[0].start, hx - box[1].start]
    assert (zz[dist[0] <= 2 * fw] > 5).any() and (zz[dist[1] <= 2 * fw] < -5).any()  # + at 2011, - at 2016
