"""The coverage views (migration 0002, schema/views.sql) and mvmdb.db.coverage on a small catalog."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from mvmdb.db import coverage, migrate
from mvmdb.db.engine import make_engine
from mvmdb.sky.coverage_maps import SKY_AREA_DEG2, ranges_area_deg2
from mvmdb.sky.healpix import merge_ranges, point_index
import coverage_data
from coverage_data import SIDE_DEG

SCHEMA = Path(__file__).resolve().parents[2] / "schema"
VIEWS = {"v_layer_coverage", "v_projection_cell_coverage", "v_filter_area", "v_exclusion_kind", "v_layer_set_coverage"}
FUNCTIONS = {"mvm_area_deg2", "mvm_pixels_area_deg2"}


def _definitions(engine: sa.Engine) -> dict[str, tuple[str, str | None]]:
    """Views and functions of the public schema: name -> (normalized definition, comment)."""
    sql = """
        SELECT c.relname AS name, pg_get_viewdef(c.oid, true) AS definition,
               obj_description(c.oid, 'pg_class') AS comment
        FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind = 'v'
        UNION ALL
        SELECT p.proname, pg_get_functiondef(p.oid), obj_description(p.oid, 'pg_proc')
        FROM pg_proc AS p JOIN pg_namespace AS n ON n.oid = p.pronamespace
        WHERE n.nspname = 'public'
    """
    with engine.connect() as conn:
        return {r.name: (r.definition, r.comment) for r in conn.execute(sa.text(sql))}


@pytest.fixture
def catalog(engine) -> coverage_data.SmallCatalog:
    return coverage_data.build(engine)


def _query(engine: sa.Engine, sql: str, **params) -> list[sa.RowMapping]:
    with engine.connect() as conn:
        return list(conn.execute(sa.text(sql), params).mappings())


# --- the schema objects ---------------------------------------------------------------


def test_views_sql_defines_what_the_migrations_make(engine, empty_db_url):
    migrated = _definitions(engine)
    assert set(migrated) == VIEWS | FUNCTIONS
    plain = make_engine(empty_db_url, poolclass=sa.pool.NullPool)
    with plain.begin() as conn:
        conn.exec_driver_sql((SCHEMA / "ddl.sql").read_text())
        conn.exec_driver_sql((SCHEMA / "views.sql").read_text())
    assert _definitions(plain) == migrated
    plain.dispose()


def test_downgrade_to_0001_drops_views_and_functions(engine):
    migrate.downgrade(engine, "0001")
    assert _definitions(engine) == {}
    migrate.upgrade(engine)
    assert set(_definitions(engine)) == VIEWS | FUNCTIONS


def test_area_function_full_sky_and_one_pixel(engine):
    row = _query(
        engine,
        """SELECT mvm_area_deg2(int8multirange(int8range(0, 12 * (1::bigint << 58)))) AS sky,
                  mvm_area_deg2(int8multirange(int8range(0, 1), int8range(5, 7))) AS three,
                  mvm_area_deg2('{}'::int8multirange) AS nothing""",
    )[0]
    assert row["sky"] == pytest.approx(SKY_AREA_DEG2, rel=1e-12)
    assert row["three"] == pytest.approx(3 * SKY_AREA_DEG2 / (12 * 4**29), rel=1e-12)
    assert row["nothing"] == 0


def test_views_are_empty_on_an_empty_catalog(engine):
    for view in VIEWS:
        assert _query(engine, f"SELECT * FROM {view}") == []


# --- v_layer_coverage -----------------------------------------------------------------


def test_layer_coverage_counts_times_dates_and_status(engine, catalog):
    rows = {r["layer_id"]: r for r in _query(engine, "SELECT * FROM v_layer_coverage")}
    assert set(rows) == set(catalog.layer_ids.values())
    l1 = rows[catalog.layer_ids["L1"]]
    assert l1["layer_name"] == "hst_skycell-p1889x11y11_wfc3_uvis_f606w_all"
    assert (l1["sky_cell_name"], l1["projection_cell_id"]) == ("skycell-p1889x11y11", 1889)
    assert (l1["n_exposures"], l1["n_new"]) == (3, 1)
    assert l1["total_exptime_s"] == 600.0 and l1["median_exptime_s"] == 200.0
    # u3 has no DATE-OBS: its date is the day of its EXPSTART (MJD).
    assert (l1["first_date"], l1["last_date"]) == (dt.date(2019, 3, 3), dt.date(2021, 6, 1))
    assert l1["proposals"] == [15000, 16000]
    assert l1["product_status"] == "stale" and l1["product_path"].endswith("_f606w_all_drc.fits")

    l2 = rows[catalog.layer_ids["L2"]]
    assert (l2["n_exposures"], l2["n_new"], l2["median_exptime_s"], l2["product_status"]) == (1, 0, 500.0, "current")
    assert l2["first_date"] == l2["last_date"] == dt.date(2018, 5, 5) and l2["proposals"] == [17000]

    for key in ("L3", "L4"):
        row = rows[catalog.layer_ids[key]]
        assert (row["n_exposures"], row["n_new"], row["product_status"], row["product_path"]) == (1, 1, "none", None)
    assert rows[catalog.layer_ids["L3"]]["scale"] == "coarse"


def test_layer_median_of_an_even_count_interpolates(engine, catalog):
    with engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO layer_member (layer_id, exposure_id, status) VALUES (:l, :e, 'OLD')"),
            {"l": catalog.layer_ids["L2"], "e": catalog.exposure_ids["u1"]},
        )
    row = _query(engine, "SELECT * FROM v_layer_coverage WHERE layer_id = :id", id=catalog.layer_ids["L2"])[0]
    assert row["median_exptime_s"] == 300.0  # (100 + 500) / 2
    assert row["proposals"] == [15000, 17000] and row["product_status"] == "current"


def test_layer_without_members_has_zeros_and_no_dates(engine, catalog):
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM layer_member WHERE layer_id = :l"), {"l": catalog.layer_ids["L4"]})
    row = _query(engine, "SELECT * FROM v_layer_coverage WHERE layer_id = :id", id=catalog.layer_ids["L4"])[0]
    assert (row["n_exposures"], row["n_new"], row["total_exptime_s"], row["proposals"]) == (0, 0, 0, [])
    assert row["median_exptime_s"] is None and row["first_date"] is None


# --- v_projection_cell_coverage -------------------------------------------------------


def test_projection_cell_coverage(engine, catalog):
    rows = coverage.projection_cell_coverage(engine)
    assert rows == [
        {
            "projection_cell_id": 640, "ra_deg": catalog.centres["C"][0], "dec_deg": -30.0,
            "n_sky_cells": 1, "n_exposures": 1, "n_excluded": 0, "n_layers": 2, "n_products": 0,
        },
        {
            "projection_cell_id": 1889, "ra_deg": 180.0, "dec_deg": 26.0,
            "n_sky_cells": 1, "n_exposures": 4, "n_excluded": 1, "n_layers": 2, "n_products": 2,
        },
    ]


# --- v_filter_area --------------------------------------------------------------------


def test_filter_area_is_the_union_of_usable_chips(engine, catalog):
    rows = {(r["instrument"], r["detector"], r["filter"]): r for r in coverage.filter_areas(engine)}
    assert set(rows) == {("ACS", "WFC", "f814w"), ("WFC3", "IR", "f160w"), ("WFC3", "UVIS", "f606w")}
    uvis = rows[("WFC3", "UVIS", "f606w")]
    assert (uvis["n_exposures"], uvis["n_excluded"], uvis["total_exptime_s"]) == (3, 1, 600.0)
    usable = catalog.ranges("u1", "u2", "u3")
    assert uvis["area_deg2"] == pytest.approx(ranges_area_deg2(usable), rel=1e-12)
    chip_sum = sum(ranges_area_deg2(r) for r in catalog.chip_ranges["u1"] + catalog.chip_ranges["u2"] + catalog.chip_ranges["u3"])
    assert uvis["footprint_sum_deg2"] == pytest.approx(chip_sum, rel=1e-12)
    # u1 and u3 coincide and u2 covers half of them: union ~1.5 squares, sum ~3 squares.
    square = SIDE_DEG**2
    assert uvis["area_deg2"] < uvis["footprint_sum_deg2"]
    assert uvis["area_deg2"] == pytest.approx(1.5 * square, rel=0.1)
    assert uvis["footprint_sum_deg2"] == pytest.approx(3 * square, rel=0.1)

    acs = rows[("ACS", "WFC", "f814w")]
    assert (acs["n_exposures"], acs["n_excluded"], acs["total_exptime_s"]) == (1, 0, 500.0)
    # Two abutting chips: the union only loses the one-pixel seam the inclusive covers share.
    assert acs["area_deg2"] == pytest.approx(square, rel=0.1)
    assert acs["area_deg2"] <= acs["footprint_sum_deg2"]


def test_filter_area_of_only_excluded_exposures_is_zero(engine, catalog):
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE exposure SET excluded_reason = 'test' WHERE filter = 'f160w'"))
    row = coverage.filter_areas(engine, filter="F160W")[0]
    assert (row["n_exposures"], row["n_excluded"], row["total_exptime_s"], row["area_deg2"]) == (0, 1, 0, 0)


# --- mvmdb.db.coverage: ranges, positions, cones ---------------------------------------


def test_coverage_ranges_are_the_merged_union(engine, catalog):
    everything = coverage.coverage_ranges(engine)
    np.testing.assert_array_equal(everything, merge_ranges(catalog.ranges("u1", "u2", "u3", "j1", "i1")))
    f606w = coverage.coverage_ranges(engine, filter="f606w")
    np.testing.assert_array_equal(f606w, merge_ranges(catalog.ranges("u1", "u2", "u3")))
    assert coverage.coverage_ranges(engine, filter="f999w").shape == (0, 2)


def _names(catalog, rows) -> list[str]:
    by_id = {v: k for k, v in catalog.exposure_ids.items()}
    return [by_id[r["exposure_id"]] for r in rows]


def test_exposures_at_a_position(engine, catalog):
    ra, dec = catalog.centres["A"]
    east = SIDE_DEG / 2 / math.cos(math.radians(dec))  # half a side, in RA degrees
    inside_both = coverage.exposures_at(engine, ra + east / 2, dec + 0.005)
    assert _names(catalog, inside_both) == ["j1", "u3", "u1", "u2"]  # by start time; u4 excluded
    assert set(inside_both[0]) == set(coverage.EXPOSURE_KEYS)
    assert inside_both[0]["ipppssoot"] == "jbbb01b1q" and inside_both[0]["exptime_s"] == 500.0
    assert _names(catalog, coverage.exposures_at(engine, ra - east / 2, dec + 0.005)) == ["j1", "u3", "u1"]
    assert _names(catalog, coverage.exposures_at(engine, ra + 1.5 * east, dec - 0.005)) == ["u2"]
    assert _names(catalog, coverage.exposures_at(engine, ra + east / 2, dec + 0.005, filter="F814W")) == ["j1"]
    assert _names(catalog, coverage.exposures_at(engine, *catalog.centres["C"])) == ["i1"]
    assert coverage.exposures_at(engine, 0.0, 0.0) == []


def test_exposures_at_refines_the_healpix_cover_exactly(engine, catalog):
    ra, dec = catalog.centres["A"]
    east = SIDE_DEG / 2 / math.cos(math.radians(dec))
    # 0.5" north of S's north edge: inside the chips' inclusive HEALPix cover, outside the polygons.
    ra0, dec0 = ra - east / 2, dec + SIDE_DEG / 2 + 0.5 / 3600
    pixel = point_index(ra0, dec0)
    u1 = catalog.chip_ranges["u1"][0]
    assert np.any((u1[:, 0] <= pixel) & (pixel < u1[:, 1]))
    assert coverage.exposures_at(engine, ra0, dec0) == []


def test_exposures_in_a_cone(engine, catalog):
    ra, dec = catalog.centres["A"]
    east = SIDE_DEG / 2 / math.cos(math.radians(dec))
    # 0.005 deg north of S, 0.01 deg (on the sky) west of u2's west edge.
    ra0, dec0 = ra - east / 2, dec + SIDE_DEG / 2 + 0.005
    assert coverage.exposures_in_cone(engine, ra0, dec0, 0.004) == []
    assert _names(catalog, coverage.exposures_in_cone(engine, ra0, dec0, 0.006)) == ["j1", "u3", "u1"]
    # u2's nearest corner is sqrt(0.01^2 + 0.005^2) = 0.01118 deg away.
    assert _names(catalog, coverage.exposures_in_cone(engine, ra0, dec0, 0.0110)) == ["j1", "u3", "u1"]
    assert _names(catalog, coverage.exposures_in_cone(engine, ra0, dec0, 0.0114)) == ["j1", "u3", "u1", "u2"]
    assert _names(catalog, coverage.exposures_in_cone(engine, ra0, dec0, 0.0114, filter="f606w")) == ["u3", "u1", "u2"]
    assert _names(catalog, coverage.exposures_in_cone(engine, 0.0, 0.0, 180.0)) == ["j1", "u3", "u1", "u2", "i1"]
