"""The SQL cookbook (schema/cookbook.sql and README.md's "SQL cookbook") runs and answers right."""

from __future__ import annotations

import datetime as dt
import math
import re
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

import coverage_data
from coverage_data import SIDE_DEG
from mvmdb.sky.coverage_maps import degrade_ranges, pixel_area_deg2
from mvmdb.sky.healpix import cone_ranges, merge_ranges, point_index

ROOT = Path(__file__).resolve().parents[2]
COOKBOOK = ROOT / "schema" / "cookbook.sql"
README = ROOT / "README.md"

Query = tuple[str, str]  # (one-line description, SQL)


def parse_queries(text: str) -> dict[str, Query]:
    """``-- name: <slug>`` / ``-- <description>`` / SQL, as {slug: (description, sql without ';')}."""
    queries: dict[str, Query] = {}
    for chunk in re.split(r"^-- name: ", text, flags=re.MULTILINE)[1:]:
        slug, _, rest = chunk.partition("\n")
        description, _, sql = rest.strip().partition("\n")
        assert re.fullmatch(r"[a-z0-9-]+", slug), slug
        assert description.startswith("-- ") and "\n" not in description, slug
        assert slug not in queries, f"duplicate query name {slug}"
        queries[slug] = (description.removeprefix("-- "), sql.strip().removesuffix(";").strip())
    return queries


def readme_section(text: str) -> str:
    """The README's ``## SQL cookbook`` section, up to the next ``## `` heading."""
    match = re.search(r"^## SQL cookbook\n(.*?)(?=^## |\Z)", text, flags=re.MULTILINE | re.DOTALL)
    assert match, "README.md has no '## SQL cookbook' section"
    return match.group(1)


def readme_queries() -> dict[str, Query]:
    blocks = re.findall(r"^```sql\n(.*?)^```", readme_section(README.read_text()), flags=re.MULTILINE | re.DOTALL)
    assert blocks and all(b.startswith("-- name: ") for b in blocks), "each ```sql block starts with -- name:"
    return parse_queries("".join(blocks))


@pytest.fixture
def catalog(engine) -> coverage_data.SmallCatalog:
    return coverage_data.build(engine)


def _position(catalog, east_halves: float, dec_offset_deg: float) -> tuple[float, float]:
    """A position relative to the centre of sky cell A (RA in half-sides of S, Dec in degrees)."""
    ra, dec = catalog.centres["A"]
    return ra + east_halves * SIDE_DEG / 2 / math.cos(math.radians(dec)), dec + dec_offset_deg


def _pixels(ranges: np.ndarray, order: int = coverage_data.ORDER) -> np.ndarray:
    """The pixels at ``order`` of ranges aligned to it."""
    coarse = degrade_ranges(ranges, order)
    return np.concatenate([np.arange(lo, hi) for lo, hi in coarse])


SEEDED_EXCLUSION = "iaaa01a1q"
"""The exposure :func:`_seed_qa` excludes as trailed (``exposure_exclusion``)."""


def _times(catalog, name: str) -> tuple[float, float]:
    """EXPSTART, EXPEND (MJD UTC) as :mod:`coverage_data` stores them."""
    exp = catalog.exposures[name]
    start = (exp.date - coverage_data.MJD0).days + 0.25
    return start, start + exp.exptime / 86400


def _interval(catalog) -> tuple[float, float]:
    """From the end of u3 to the start of u2: both boundaries are met (closed interval)."""
    return _times(catalog, "u3")[1], _times(catalog, "u2")[0]


def _params(catalog) -> dict:
    north = _position(catalog, -0.5, SIDE_DEG / 2 + 0.005)
    cone = cone_ranges(*north, 0.006)
    mjd_from, mjd_to = _interval(catalog)
    return {
        "mjd_from": mjd_from,
        "mjd_to": mjd_to,
        "sky_cell": catalog.sky_cells["A"],
        "limit": 5,
        "pixel": point_index(*_position(catalog, 0.5, 0.005)),
        "lo": cone[:, 0].tolist(),
        "hi": cone[:, 1].tolist(),
        "filter_a": "f606w",
        "filter_b": "f814w",
    }


def _expected(catalog) -> dict:
    """slug -> a function checking the result rows (list of dicts)."""
    ids = catalog.exposure_ids
    both = np.intersect1d(_pixels(catalog.ranges("u1", "u2", "u3")), _pixels(catalog.ranges("j1")))
    f606w_depth = sum(len(_pixels(r)) for n in ("u1", "u2", "u3") for r in catalog.chip_ranges[n]) / len(
        _pixels(merge_ranges(catalog.ranges("u1", "u2", "u3")))
    )

    def filter_area(rows):
        assert [r["filter"] for r in rows] == ["f606w", "f814w", "f160w"]
        assert [(r["n_exposures"], r["n_excluded"], r["total_exptime_s"]) for r in rows] == [
            (3, 1, 600.0), (1, 0, 500.0), (1, 0, 250.0)
        ]
        assert rows[0]["mean_depth"] == pytest.approx(f606w_depth) and 1.9 < f606w_depth < 2.1
        assert rows[2]["mean_depth"] == pytest.approx(1.0)

    def layers_of_sky_cell(rows):
        assert rows == [
            {
                "layer_name": "hst_skycell-p1889x11y11_acs_wfc_f814w_all", "n_exposures": 1, "n_new": 0,
                "total_exptime_s": 500.0, "median_exptime_s": 500.0, "first_date": dt.date(2018, 5, 5),
                "last_date": dt.date(2018, 5, 5), "proposals": [17000], "product_status": "current",
            },
            {
                "layer_name": "hst_skycell-p1889x11y11_wfc3_uvis_f606w_all", "n_exposures": 3, "n_new": 1,
                "total_exptime_s": 600.0, "median_exptime_s": 200.0, "first_date": dt.date(2019, 3, 3),
                "last_date": dt.date(2021, 6, 1), "proposals": [15000, 16000], "product_status": "stale",
            },
        ]

    def layers_needing_products(rows):
        assert [(r["layer_name"], r["product_status"], r["n_new"]) for r in rows] == [
            ("hst_skycell-p0640x11y11_wfc3_ir_f160w_all", "none", 1),
            ("hst_skycell-p0640x11y11_wfc3_ir_f160w_coarse-all", "none", 1),
            ("hst_skycell-p1889x11y11_wfc3_uvis_f606w_all", "stale", 1),
        ]

    def busiest_projection_cells(rows):
        assert [(r["projection_cell_id"], r["n_sky_cells"], r["n_exposures"], r["n_layers"], r["n_products"])
                for r in rows] == [(1889, 1, 4, 2, 2), (640, 1, 1, 2, 0)]

    def exposures_at_pixel(rows):
        # not u4 (ingest rule) nor u1 (trailed, excluded by mvm qa)
        assert [r["id"] for r in rows] == sorted(ids[n] for n in ("u2", "u3", "j1"))

    def exposures_at_pixel_between(rows):
        t1, t2 = _interval(catalog)
        seen = [n for n in ("u1", "u2", "u3", "u4", "j1")  # the exposures at the pixel, excluded or not
                if _times(catalog, n)[0] <= t2 and _times(catalog, n)[1] >= t1
                and catalog.exposures[n].excluded_reason is None and catalog.exposures[n].ipppssoot != SEEDED_EXCLUSION]
        assert sorted(seen) == ["u2", "u3"]  # u1 (trailed), u4 (ingest rule) in time but excluded; j1 too early
        assert [r["id"] for r in rows] == sorted(ids[n] for n in seen)
        assert [(r["expstart"], r["expend"]) for r in rows] == [_times(catalog, n) for n in sorted(seen, key=ids.get)]

    def exposures_in_ranges(rows):
        assert [r["id"] for r in rows] == sorted(ids[n] for n in ("u3", "j1"))  # not u1: trailed

    def area_in_both_filters(rows):
        assert len(rows) == 1
        assert rows[0]["area_deg2"] == pytest.approx(len(both) * pixel_area_deg2(coverage_data.ORDER), rel=1e-12)
        assert rows[0]["area_deg2"] == pytest.approx(SIDE_DEG**2, rel=0.1)  # j1 covers S, inside the f606w union

    def proposals_in_sky_cell(rows):
        assert rows == [
            {"proposid": 15000, "n_exposures": 2, "filters": ["f606w"], "total_exptime_s": 300.0},
            {"proposid": 16000, "n_exposures": 1, "filters": ["f606w"], "total_exptime_s": 300.0},
            {"proposid": 17000, "n_exposures": 1, "filters": ["f814w"], "total_exptime_s": 500.0},
        ]

    def exposures_per_year(rows):
        got = [(r["filter"], r["year"], r["n_exposures"], pytest.approx(r["hours"] * 3600)) for r in rows]
        assert got == [
            ("f160w", 2022, 1, 250.0), ("f606w", 2019, 1, 200.0), ("f606w", 2020, 1, 100.0),
            ("f606w", 2021, 1, 300.0), ("f814w", 2018, 1, 500.0),
        ]

    def excluded_exposures(rows):
        assert rows == [
            {
                "ipppssoot": "iaaa01a4q", "filetype": "flc", "instrument": "WFC3", "detector": "UVIS",
                "filter": "f606w", "excluded_reason": "guide star acquisition failed",
            }
        ]

    def exposures_flagged_this_week(rows):
        assert [(r["ipppssoot"], r["check"], r["excluded_as"]) for r in rows] == [("iaaa01a1q", "trail", "trailed")]

    def layers_mixing_wcs_families(rows):
        assert rows == [{"layer_name": "hst_skycell-p1889x11y11_wfc3_uvis_f606w_all",
                         "wcs_families": ["a-priori", "gaia-fit"], "n_checked": 3}]

    return {
        "exposures-flagged-this-week": exposures_flagged_this_week,
        "layers-mixing-wcs-families": layers_mixing_wcs_families,
        "filter-area": filter_area,
        "layers-of-sky-cell": layers_of_sky_cell,
        "layers-needing-products": layers_needing_products,
        "busiest-projection-cells": busiest_projection_cells,
        "exposures-at-pixel": exposures_at_pixel,
        "exposures-at-pixel-between": exposures_at_pixel_between,
        "exposures-in-ranges": exposures_in_ranges,
        "area-in-both-filters": area_in_both_filters,
        "proposals-in-sky-cell": proposals_in_sky_cell,
        "exposures-per-year": exposures_per_year,
        "excluded-exposures": excluded_exposures,
    }


def test_readme_cookbook_is_the_cookbook_file():
    assert readme_queries() == parse_queries(COOKBOOK.read_text())


@pytest.mark.parametrize("source", ["schema/cookbook.sql", "README.md"])
def test_every_cookbook_query_answers_right(engine, catalog, source):
    queries = parse_queries(COOKBOOK.read_text()) if source.endswith(".sql") else readme_queries()
    checks = _expected(catalog)
    assert set(queries) == set(checks), "every cookbook query needs a check here"
    params = _params(catalog)
    _seed_qa(engine)
    with engine.connect() as conn:
        for slug, (_, sql) in queries.items():
            statement = sa.text(sql)
            used = {name: params[name] for name in statement.compile().params}
            rows = [dict(r) for r in conn.execute(statement, used).mappings()]
            checks[slug](rows)


def _seed_qa(engine) -> None:
    """What mvm qa would store: the f606w layer's three members checked (one Gaia-fit, two
    a-priori), one trailed and excluded this week, one flagged ten days ago."""
    with engine.begin() as conn:
        conn.execute(sa.text("""
            INSERT INTO qa_check (ipppssoot, "check", flagged, value, reason, wcs_family, checked_at)
            SELECT e.ipppssoot, 'trail', e.ipppssoot IN ('iaaa01a1q', 'iaaa01a2q'), 0.9, 'trailed: test',
                   CASE WHEN e.ipppssoot = 'iaaa01a3q' THEN 'gaia-fit' ELSE 'a-priori' END,
                   CASE WHEN e.ipppssoot = 'iaaa01a2q' THEN now() - interval '10 days' ELSE now() END
            FROM exposure e WHERE e.filter = 'f606w' AND e.excluded_reason IS NULL"""))
        conn.execute(sa.text("INSERT INTO exposure_exclusion (ipppssoot, kind, reason, excluded_by) "
                             "VALUES (:ipp, 'trailed', 'trailed: test', 'mvm qa')"), {"ipp": SEEDED_EXCLUSION})
