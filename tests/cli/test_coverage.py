"""``mvm coverage`` (table / JSON), ``mvm coverage map`` and ``mvm coverage moc``."""

from __future__ import annotations

import json

import coverage_data
import pytest
from click.testing import CliRunner
from matplotlib.image import imread
from mocpy import MOC

from mvmdb.cli.main import cli
from mvmdb.db.coverage import EXPOSURE_KEYS, FILTER_AREA_KEYS, LAYER_KEYS, TIMED_EXPOSURE_KEYS
from mvmdb.quality import QUALITY_KEYS
from mvmdb.sky.coverage_maps import SKY_AREA_DEG2


@pytest.fixture
def mvm(db_url, engine):
    """Run ``mvm --db URL coverage ...`` on the small catalog."""
    catalog = coverage_data.build(engine)
    url = db_url.render_as_string(hide_password=False)

    def run(*args: str, code: int = 0):
        result = CliRunner().invoke(cli, ["--db", url, "coverage", *args], catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result

    run.catalog = catalog
    return run


def _json(result) -> list[dict]:
    return json.loads(result.stdout)


def test_help_lists_the_json_keys_and_subcommands():
    result = CliRunner().invoke(cli, ["coverage", "--help"])
    assert result.exit_code == 0
    for keys in (FILTER_AREA_KEYS, LAYER_KEYS, EXPOSURE_KEYS):
        assert ", ".join(keys) in result.output
    assert "  map " in result.output and "  moc " in result.output


def test_filter_table_and_json(mvm):
    table = mvm().output
    assert "area covered per filter: 3 rows" in table
    assert all(name in table for name in ("f606w", "f814w", "f160w", "area_deg2"))
    rows = _json(mvm("--json"))
    assert [tuple(r) for r in rows] == [FILTER_AREA_KEYS] * 3
    uvis = next(r for r in rows if r["filter"] == "f606w")
    assert (uvis["n_exposures"], uvis["n_excluded"], uvis["total_exptime_s"]) == (3, 1, 600.0)
    assert uvis["area_deg2"] < uvis["footprint_sum_deg2"]
    assert [r["filter"] for r in _json(mvm("--filter", "F814W", "--json"))] == ["f814w"]


def test_skycell_layers(mvm):
    rows = _json(mvm("--skycell", "skycell-p1889x11y11", "--json"))
    assert [tuple(r) for r in rows] == [LAYER_KEYS + QUALITY_KEYS] * 2
    assert {k: rows[1][k] for k in LAYER_KEYS} == {
        "layer_name": "hst_skycell-p1889x11y11_wfc3_uvis_f606w_all", "sky_cell_name": "skycell-p1889x11y11",
        "instrument": "WFC3", "detector": "UVIS", "filter": "f606w", "scale": "fine", "n_exposures": 3,
        "n_new": 1, "total_exptime_s": 600.0, "median_exptime_s": 200.0, "first_date": "2019-03-03",
        "last_date": "2021-06-01", "proposals": [15000, 16000], "product_status": "stale",
    }
    assert rows[1]["flagged"] == [] and rows[1]["excluded"] == [] and len(rows[1]["wcs_families"]) >= 1
    assert rows[0]["product_status"] == "current"
    table = mvm("--skycell", "skycell-p1889x11y11", "--filter", "f814w").output
    assert "skycell-p1889x11y11: 1 row" in table and "current" in table and "f606w" not in table


def test_unknown_skycell_is_a_one_line_error(mvm):
    result = mvm("--skycell", "skycell-p0001x01y01", code=1)
    assert result.output.strip().splitlines() == [
        "mvm: error: no sky cell 'skycell-p0001x01y01' in the catalog (sky cells appear when an exposure touches them)"
    ]


def test_position_and_cone(mvm):
    ra, dec = mvm.catalog.centres["A"]
    east = coverage_data.SIDE_DEG / 4 / 0.8988  # a quarter side east of the centre (cos 26 deg)
    rows = _json(mvm("--ra", str(ra + east), "--dec", str(dec + 0.005), "--json"))
    assert [tuple(r) for r in rows] == [EXPOSURE_KEYS] * 4
    assert [r["ipppssoot"] for r in rows] == ["jbbb01b1q", "iaaa01a3q", "iaaa01a1q", "iaaa01a2q"]
    assert rows[1]["date_obs"] is None and rows[2]["date_obs"] == "2020-01-01"
    cone = mvm("--ra", str(ra), "--dec", str(dec + 0.03), "--radius", "0.015", "--filter", "f606w").output
    assert "exposures within 0.015 deg" in cone and "3 rows" in cone and "iaaa01a4q" not in cone
    assert _json(mvm("--ra", "10", "--dec", "-80", "--radius", "1", "--json")) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--radius", "1"], "--radius needs --ra and --dec"),
        (["--ra", "10"], "--ra and --dec go together"),
        (["--skycell", "skycell-p1889x11y11", "--ra", "1", "--dec", "2"], "either --skycell or --ra/--dec"),
        (["--dec", "91", "--ra", "0"], "91"),
        (["--filter", "f606w", "map", "--out", "x.png"], "put them after it"),
        (["--ra", "1", "--dec", "2", "--from", "2011", "moc", "--time", "--out", "x.fits"], "put them after it"),
        (["--from", "2011"], "--from/--to need --ra and --dec"),
        (["--skycell", "skycell-p1889x11y11", "--to", "2011"], "--from/--to need --ra and --dec"),
        (["--ra", "1", "--dec", "2", "--from", "2013", "--to", "2012"], "is after the end"),
        (["--ra", "1", "--dec", "2", "--from", "60001", "--to", "60000.5"], "is after the end"),
        (["--ra", "1", "--dec", "2", "--from", "last week"], "'last week' is not a time"),
        (["--ra", "1", "--dec", "2", "--to", "2011-02-30"], "no calendar date"),
        (["moc", "--time", "--max-depth", "10", "--out", "x.fits"], "with --time use --space-order"),
        (["moc", "--space-order", "10", "--out", "x.fits"], "go with --time"),
        (["moc", "--time", "--time-order", "62", "--out", "x.fits"], "62 is not in the range"),
    ],
)
def test_usage_errors(mvm, args, message):
    result = mvm(*args, code=1)
    assert message in result.output and len(result.output.strip().splitlines()) == 1


def test_position_between_dates(mvm):
    """u1..u3 and j1 cover the position; --from/--to keeps those whose [EXPSTART, EXPEND] meets the dates."""
    ra, dec = mvm.catalog.centres["A"]
    east = coverage_data.SIDE_DEG / 4 / 0.8988
    where = ("--ra", str(ra + east), "--dec", str(dec + 0.005))
    every = [r["ipppssoot"] for r in _json(mvm(*where, "--json"))]
    for start, end in [("2019-03-03", "2020-01-01"), ("2018", "2018"), ("2021-06-02", None), (None, "2019-12-31")]:
        args = [*(["--from", start] if start else []), *(["--to", end] if end else [])]
        rows = _json(mvm(*where, *args, "--json"))
        assert [tuple(r) for r in rows] == [TIMED_EXPOSURE_KEYS] * len(rows)
        first = start or "0001-01-01"
        last = end if end is None or len(end) > 4 else f"{end}-12-31"
        expected = [i for i in every if first <= _day(mvm.catalog, i) <= (last or "9999-12-31")]
        assert [r["ipppssoot"] for r in rows] == expected, (start, end)
    assert _json(mvm(*where, "--from", "2021-06-02", "--json")) == []
    assert len(_json(mvm(*where, "--from", "2018", "--to", "2022", "--json"))) == 4
    table = mvm(*where, "--from", "2020", "--to", "2020").output
    assert "from 2020 to 2020 (MJD 58849.00000 to 59215.00000): 1 row" in table and "iaaa01a1q" in table


def _day(catalog, ipppssoot: str) -> str:
    """The ISO day of an exposure of the small catalog (its EXPSTART is that day 06:00 UTC)."""
    return next(e.date for e in catalog.exposures.values() if e.ipppssoot == ipppssoot).isoformat()


def test_map_png(mvm, tmp_path):
    out = tmp_path / "exptime.png"
    result = mvm("map", "--out", str(out))
    assert result.output.startswith(f"wrote {out}: 5 exposures") and "max 1100 s" in result.output
    image = imread(out)
    assert image.shape[:2] == (930, 1500)
    sky = image[93:781, :, :3]
    assert (sky.max(axis=-1) - sky.min(axis=-1) > 0.15).any()  # coloured data pixels on the grey sky
    count = mvm("map", "--metric", "count", "--nside", "16", "--filter", "f160w", "--out", str(tmp_path / "n.png"))
    assert "1 exposures" in count.output and "max 1 exposures" in count.output
    assert "power of two" in mvm("map", "--nside", "100", "--out", str(out), code=1).output


def test_moc_fits(mvm, tmp_path):
    out = tmp_path / "f606w.fits"
    result = mvm("moc", "--filter", "f606w", "--out", str(out))
    assert result.output.startswith(f"wrote {out}: ")
    area = next(r["area_deg2"] for r in _json(mvm("--json")) if r["filter"] == "f606w")
    assert MOC.load(out, format="fits").sky_fraction * SKY_AREA_DEG2 == pytest.approx(area, rel=0.02)
