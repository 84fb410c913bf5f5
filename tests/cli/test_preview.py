"""``mvm preview``: PNGs of catalogued products or of product files; the JSON contract."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from matplotlib import image as mimage

from mvmdb.cli.main import cli

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "process"))
from test_run import tiny_cells  # noqa: E402
from test_job import ingest_and_plan  # noqa: E402

CELL = "skycell-p1359x11y05"


def mvm(url: str, *args: str):
    return CliRunner().invoke(cli, ["--db", url, *args], catch_exceptions=False)


@pytest.fixture
def drawn(db_url, engine, tmp_path):
    """Three WFC3/IR filters in one sky cell, processed: 3 fine + 3 coarse products."""
    paths = [p for filt, tag in (("F160W", "a"), ("F125W", "b"), ("F105W", "c"))
             for _, p in tiny_cells(tmp_path / "in", 1, filt=filt, tag=tag)]
    ingest_and_plan(engine, paths, tmp_path / "pollers")
    url = db_url.render_as_string(hide_password=False)
    result = mvm(url, "process", "--queue", "--executor", "inline", "--products", str(tmp_path / "products"))
    assert result.exit_code == 0, result.output
    return url, sorted((tmp_path / "products").rglob("*.fits"))


def test_preview_of_a_sky_cell_json_contract_and_changed(drawn, tmp_path):
    url, products = drawn
    assert len(products) == 6
    out = tmp_path / "png"
    result = mvm(url, "preview", CELL[len("skycell-"):], "--out", str(out), "--json")
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert all(list(r) == ["png", "skycell", "kind"] and r["skycell"] == CELL for r in records)
    assert sorted(r["kind"] for r in records) == ["color"] + ["layer"] * 6
    assert {Path(r["png"]).name for r in records if r["kind"] == "layer"} == {
        p.name.replace("_drz.fits", ".png") for p in products}
    colour = mimage.imread(out / f"{CELL}_color.png")
    assert colour.ndim == 3 and colour.shape[2] >= 3 and colour[..., :3].max() > 0.5
    # nothing changed since: nothing to draw; a redrawn product brings its sky cell back
    again = mvm(url, "preview", "--changed", "--out", str(out))
    assert again.exit_code == 0 and again.stdout == "" and "nothing to draw" in again.stderr
    products[0].touch()
    redrawn = mvm(url, "preview", "--changed", "--out", str(out))
    assert redrawn.exit_code == 0 and len(redrawn.stdout.splitlines()) == 7
    assert "7 PNG(s) for 6 product(s) in 1 sky cell(s)" in redrawn.stderr


def test_preview_of_files_needs_no_database(drawn, tmp_path):
    _, products = drawn
    fine = [p for p in products if "coarse" not in p.name]
    nowhere = "postgresql+psycopg://nobody@127.0.0.1:1/none"
    result = mvm(nowhere, "preview", *map(str, fine), "--out", str(tmp_path / "files"))
    assert result.exit_code == 0, result.output
    names = sorted(Path(line).name for line in result.stdout.splitlines())
    assert names == sorted([p.name.replace("_drz.fits", ".png") for p in fine] + [f"{CELL}_color.png"])


def test_preview_errors_are_one_line(drawn, tmp_path):
    url, products = drawn
    unknown = mvm(url, "preview", "skycell-p0001x01y01", "--out", str(tmp_path / "x"))
    assert unknown.exit_code == 1 and "no products in the catalog for skycell-p0001x01y01" in unknown.output
    garbage = mvm(url, "preview", "not-a-cell", "--out", str(tmp_path / "x"))
    assert garbage.exit_code == 1 and "neither a product file nor a sky cell name" in garbage.output
    other = tmp_path / "notes_drz.fits"
    other.write_bytes(b"not FITS at all" * 100)
    bad = mvm(url, "preview", str(other), "--out", str(tmp_path / "x"))
    assert bad.exit_code == 1 and "not a readable MVM product" in bad.output
    assert len(bad.output.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_reduced_read_equals_reducing_the_full_array(drawn):
    from mvmdb.fitsio.stored_product import read_sci
    from mvmdb.preview import block_reduce, read_sci_reduced

    _, products = drawn
    full = read_sci(products[0])
    for side in (7, 16, max(full.shape)):
        np.testing.assert_array_equal(read_sci_reduced(products[0], max_side=side, strip_rows=10),
                                      block_reduce(full, side))


def test_previews_of_retired_products_are_removed(drawn, tmp_path):
    """A layer emptied by ``mvm exclude`` loses its product; the next catalog-wide ``mvm preview``
    removes its PNG and the colour PNG it was part of, and nothing else."""
    url, products = drawn
    out = tmp_path / "png"
    assert mvm(url, "preview", "--out", str(out)).exit_code == 0
    (out / "notes.png").write_bytes(b"not ours")
    before = {p.name for p in out.glob("*.png")}
    assert len(before) == 8  # 6 layers, 1 colour, notes
    excluded = mvm(url, "exclude", "ibc000a1q", "--reason", "guiding failure")  # the F105W exposure
    assert excluded.exit_code == 0, excluded.output
    result = mvm(url, "preview", "--changed", "--out", str(out))
    assert result.exit_code == 0, result.output
    gone = before - {p.name for p in out.glob("*.png")}
    assert gone == {f"hst_{CELL}_wfc3_ir_f105w_all.png", f"hst_{CELL}_wfc3_ir_f105w_coarse-all.png", f"{CELL}_color.png"}
    assert "removed 3 PNG(s) of products no longer in the catalog" in result.stderr
