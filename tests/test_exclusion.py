"""Operator exclusion round trip on a small simulated archive (issue 16).

exclude -> ``plan`` lists exactly the affected sky cells -> process -> the products no
longer use the exposure (HDRTAB) -> include -> back again; other layers are not redrawn
(their product checksums do not change). Also: re-ingest keeps the exclusion, a layer
losing its last member loses its product, the audit trail, the CLI.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
import sqlalchemy as sa
from astropy.io import fits
from click.testing import CliRunner

from mvmdb.cli.main import cli
from mvmdb.db import exclusions
from mvmdb.db.products import current_products
from mvmdb.errors import MvmdbError
from mvmdb.exclusion import exclude, include
from mvmdb.ingest import ingest
from mvmdb.plan import plan
from mvmdb.process.run import run_queue
from mvmdb.simulate import ExposureSpec, write_exposure

# ACS/HRC exposures at the ring overlap of two projection cells (as tests/test_demo.py):
# every exposure is in one layer of each of two sky cells.
RA, DEC = 181.1754, 27.9031
SKYCELLS = ["skycell-p1889x07y19", "skycell-p1970x15y02"]


def hrc(filter_: str, ipppssoot: str, expstart: float, dra_arcsec: float = 0.0) -> ExposureSpec:
    return ExposureSpec(instrument="ACS", detector="HRC", filter=filter_, ra=RA + dra_arcsec / 3600, dec=DEC,
                        exptime=300.0, expstart=expstart, ipppssoot=ipppssoot, proposid=10000, downscale=8)


def sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def products(engine) -> dict[str, str]:
    return {p.layer: str(p.path) for p in current_products(engine)}


def hdrtab_roots(path) -> list[str]:
    with fits.open(path) as h:
        return sorted(h["HDRTAB"].data["ROOTNAME"])


def cycle(engine, tmp_path) -> list[str]:
    """plan + process; returns the planned sky cells."""
    pollers = plan(engine, tmp_path / "pollers")
    run_queue(engine, tmp_path / "products", executor="inline")
    return sorted(p.skycell for p in pollers)


@pytest.fixture
def archive(tmp_path, engine):
    arch = tmp_path / "archive"
    arch.mkdir()
    for spec in (hrc("F606W", "j9ab01a1q", 53000.1), hrc("F606W", "j9ab01a2q", 53000.2, 2.0),
                 hrc("F814W", "j9ab01a3q", 53000.3)):
        write_exposure(spec, None, arch)
    ingest(engine, [arch])
    assert cycle(engine, tmp_path) == SKYCELLS
    return arch


def test_exclusion_round_trip(tmp_path, engine, archive):
    before = products(engine)
    assert len(before) == 4
    f606 = sorted(k for k in before if "f606w" in k)
    f814 = sorted(k for k in before if "f814w" in k)
    sums = {k: sha256(p) for k, p in before.items()}
    for k in f606:
        assert hdrtab_roots(before[k]) == ["j9ab01a1q", "j9ab01a2q"]
        assert fits.getval(before[k], "NEXCLUDE") == 0

    res = exclude(engine, ["j9ab01a2q"], "guide star lost", by="tester")
    assert res.changed == ["j9ab01a2q"] and res.skycells == SKYCELLS and res.layers == f606 and not res.retired
    assert cycle(engine, tmp_path) == SKYCELLS  # exactly the sky cells of the excluded exposure
    after = products(engine)
    for k in f606:
        assert hdrtab_roots(after[k]) == ["j9ab01a1q"]
        assert fits.getval(after[k], "NEXCLUDE") == 1 and fits.getval(after[k], "NUMEXP") == 1
    for k in f814:  # nothing else redrawn
        assert sha256(after[k]) == sums[k]

    # excluding again changes nothing; re-ingest (file touched) does not bring it back
    assert exclude(engine, ["j9ab01a2q"], "guide star lost", by="tester").changed == []
    for f in archive.iterdir():
        os.utime(f, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns + 10**9))
    ingest(engine, [archive])
    with engine.connect() as conn:
        n = conn.execute(sa.text("SELECT count(*) FROM layer_member m JOIN exposure e ON e.id = m.exposure_id "
                                 "WHERE e.ipppssoot = 'j9ab01a2q'")).scalar_one()
    assert n == 0
    assert plan(engine, tmp_path / "pollers", dry_run=True) == []

    res = include(engine, ["j9ab01a2q"], by="tester")
    assert res.changed == ["j9ab01a2q"] and res.skycells == SKYCELLS and res.layers == f606
    assert cycle(engine, tmp_path) == SKYCELLS
    back = products(engine)
    for k in f606:
        assert hdrtab_roots(back[k]) == ["j9ab01a1q", "j9ab01a2q"]
        assert fits.getval(back[k], "NEXCLUDE") == 0
    for k in f814:
        assert sha256(back[k]) == sums[k]
    with engine.connect() as conn:
        trail = exclusions.events(conn, "j9ab01a2q")
        assert [(e.action, e.reason, e.by) for e in trail] == [
            ("exclude", "guide star lost", "tester"), ("include", None, "tester")]
        assert exclusions.active(conn) == []


def test_layer_losing_its_last_member_loses_its_product(tmp_path, engine, archive):
    before = products(engine)
    f814 = sorted(k for k in before if "f814w" in k)
    res = exclude(engine, ["j9ab01a3q"], "bad", by="tester")
    assert sorted(res.retired) == sorted(before[k] for k in f814)
    assert not any(Path(before[k]).exists() for k in f814)
    assert set(products(engine)) == set(before) - set(f814)
    assert plan(engine, tmp_path / "pollers", dry_run=True) == []  # nothing left to draw there
    include(engine, ["j9ab01a3q"], by="tester")
    assert cycle(engine, tmp_path) == SKYCELLS
    assert set(products(engine)) == set(before)
    for k in f814:
        assert hdrtab_roots(before[k]) == ["j9ab01a3q"]


def test_bad_input():
    with pytest.raises(MvmdbError, match="not an ipppssoot"):
        exclude(None, ["nope"], "x")


def test_cli_exclude_include_json(db_url, engine, archive):
    runner = CliRunner()
    r = runner.invoke(cli, ["--db", db_url, "exclude", "j9ab01a1q", "--reason", "cosmic ray storm", "--json"])
    assert r.exit_code == 0, r.output
    obj = json.loads(r.output)
    assert obj["action"] == "exclude" and obj["changed"] == ["j9ab01a1q"] and obj["skycells"] == SKYCELLS
    with engine.connect() as conn:
        (row,) = exclusions.active(conn)
    assert row.kind == "operator" and row.reason == "cosmic ray storm" and row.excluded_by
    r = runner.invoke(cli, ["--db", db_url, "coverage", "--skycell", SKYCELLS[0], "--json"])
    assert r.exit_code == 0, r.output
    layers = {row["layer_name"]: row for row in json.loads(r.output)}
    f606 = next(v for k, v in layers.items() if "f606w" in k)
    assert f606["excluded"] == ["j9ab01a1q:operator"] and f606["n_exposures"] == 1 and f606["flagged"] == []
    assert f606["wcs_families"] and all(v["excluded"] == [] for k, v in layers.items() if "f606w" not in k)
    r = runner.invoke(cli, ["--db", db_url, "coverage", "exclusions", "--json"])
    assert r.exit_code == 0 and {"kind": "operator", "n_exposures": 1} in json.loads(r.output)
    r = runner.invoke(cli, ["--db", db_url, "include", "j9ab01a1q"])
    assert r.exit_code == 0 and "included 1 exposure(s)" in r.output
    r = runner.invoke(cli, ["--db", db_url, "exclude", "j9ab01a1q"])
    assert r.exit_code != 0
    # mvm qa never rewrites an exclusion in force (replace=False)
    exclude(engine, ["j9ab01a1q"], "operator says so", by="op")
    assert exclude(engine, ["j9ab01a1q"], "trailed: qa", kind="trailed", replace=False).changed == []
    with engine.connect() as conn:
        assert [(x.kind, x.reason) for x in exclusions.active(conn)] == [("operator", "operator says so")]
    r = runner.invoke(cli, ["--db", db_url, "exclude", "zzz", "--reason", "x"])
    assert r.exit_code == 1 and "mvm: error: not an ipppssoot" in r.output
