"""The end-to-end demo at a small size: products, pollers, database state, re-run, nightly visit.

The demo's own scenes write ~8 GB of full-resolution (0.04"/px) products, so this test
puts a tiny ACS/HRC archive at the demo's ring-overlap position (PG 1202+281, in sky cells
of two projection cells) and runs the same code path on it.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa
from astropy.io import fits

from mvmdb.demo import run_demo
from mvmdb.poller import read_poller
from mvmdb.simulate import ExposureSpec, write_exposure

RA, DEC = 181.1754, 27.9031
SKYCELLS = {"skycell-p1889x07y19", "skycell-p1970x15y02"}
SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "nightly_ingest"


def hrc(filter_: str, ipppssoot: str, expstart: float, dra_arcsec: float = 0.0) -> ExposureSpec:
    return ExposureSpec(
        instrument="ACS", detector="HRC", filter=filter_, ra=RA + dra_arcsec / 3600, dec=DEC,
        exptime=300.0, expstart=expstart, ipppssoot=ipppssoot, proposid=10000 + int(expstart) % 7,
        downscale=4,
    )


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def table(engine, sql: str) -> list:
    with engine.connect() as conn:
        return conn.execute(sa.text(sql)).all()


def test_demo_end_to_end_rerun_and_nightly_visit(tmp_path, engine, db_url):
    out = tmp_path / "demo"
    archive = out / "archive" / "hrc"
    archive.mkdir(parents=True)
    for spec in (
        hrc("F606W", "j9ab01a1q", 53000.1), hrc("F606W", "j9ab01a2q", 53000.2, 2.0),
        hrc("F814W", "j9ab01a3q", 53000.3), hrc("F435W", "j9ab02b1q", 53400.1),
    ):
        write_exposure(spec, None, archive)

    first = run_demo(engine, out, scenes=(), executor="inline", say=lambda s: None)
    assert first.ingest_counts.get("ingested") == 4 and first.layers_failed == 0
    # two projection cells overlap here: one poller each, three fine HRC layers each
    assert {p.name for p in first.pollers} == {f"{s}_mvm_poller.txt" for s in SKYCELLS}
    assert first.layers_done == 6
    rows = read_poller(first.pollers_dir / "skycell-p1889x07y19_mvm_poller.txt")
    assert len(rows) == 4 and {r.status for r in rows} == {"NEW"} and {r.detector for r in rows} == {"HRC"}
    products = sorted(first.products.glob("skycell-*/*.fits"))
    assert len(products) == 6
    for path in products:
        with fits.open(path) as hdul:
            names = [h.name for h in hdul]
            assert names[:5] == ["PRIMARY", "SCI", "WHT", "CTX", "HDRTAB"] and "NEXP" in names
            assert hdul[0].header["SCELLID"] in {"p1889x07y19", "p1970x15y02"}
            assert path.name.endswith("_all_drz.fits") or path.name.endswith("_all_drc.fits")
    # the catalog agrees: everything drawn, nothing NEW, every job done, one product per layer
    assert table(engine, "SELECT DISTINCT status FROM layer_member") == [("OLD",)]
    assert table(engine, "SELECT DISTINCT state FROM job") == [("done",)]
    assert table(engine, "SELECT count(*) FROM product")[0][0] == 6
    # previews: a grey PNG per layer, a colour composite per sky cell (three filters), the map
    pngs = {p.name for p in first.previews}
    assert {f"{s}_color.png" for s in SKYCELLS} <= pngs and len(pngs) == 8
    assert first.coverage_map.exists()

    checksums = {p: sha256(p) for p in products}
    second = run_demo(engine, out, scenes=(), executor="inline", say=lambda s: None)
    assert second.ingest_counts == {"unchanged": 4}
    assert second.pollers == [] and second.layers_done == 0 and second.previews == []

    # one new F606W visit inside the existing box -> the nightly script redraws only F606W
    write_exposure(hrc("F606W", "j9ab03c1q", 53800.1, 1.0), None, archive)
    env = {**os.environ, "MVMDB_HOME": str(tmp_path / "home")}
    url = db_url.render_as_string(hide_password=False)
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(out / "archive"), "--db", url, "--plan", str(out / "pollers"),
         "--process", "--products", str(out / "products"), "--log", str(tmp_path / "nightly.log")],
        env=env, capture_output=True, text=True, timeout=900,
    )
    assert done.returncode == 0, done.stderr + (tmp_path / "nightly.log").read_text()
    changed = {p.name for p in products if sha256(p) != checksums[p]}
    assert changed == {f"hst_{s}_acs_hrc_f606w_all_drz.fits" for s in SKYCELLS}
    assert table(engine, "SELECT DISTINCT status FROM layer_member") == [("OLD",)]
