"""The layer-set rules in SQL (mvmdb.db.layersets.KEYS_SQL) agree with mvmdb.layersets on the boundaries."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
import sqlalchemy as sa

from mvmdb import layersets, rules
from mvmdb.db.layersets import derived_name_sql, sql_keys

# EXPSTART (MJD) around New Year's Eve 2011/2012 and a leap day: 55926 = 2011-12-31, 55927 = 2012-01-01
MJD = [55926.0, 55926.99999, 55927.0, 55927.00001, 56352.5, 51544.0, 62502.3]
EXPTIME = [0.0, 0.5, 14.999, 15.0, 15.001, 119.999, 120.0, 120.001, 3000.0]


def _dates(mjd):
    return [dt.date.fromisoformat(str(d)) for d in layersets.days_from_mjd(mjd)]


def test_year_sql_matches_python_from_date_obs_and_from_expstart(engine):
    want = [str(y) for y in layersets.years(mjd=MJD)]
    with engine.connect() as conn:
        from_date = sql_keys(conn, "year", _dates(MJD), [None] * len(MJD), [100.0] * len(MJD))
        from_mjd = sql_keys(conn, "year", [None] * len(MJD), MJD, [100.0] * len(MJD))
    assert [k for (k,) in from_date] == want
    assert [k for (k,) in from_mjd] == want
    assert want[:4] == ["2011", "2011", "2012", "2012"]


def test_exptime_sql_matches_python_on_the_limits(engine):
    want = layersets.exptime_classes(EXPTIME).tolist()
    with engine.connect() as conn:
        got = sql_keys(conn, "exptime", [None] * len(EXPTIME), [55000.0] * len(EXPTIME), EXPTIME)
    assert [k for (k,) in got] == want
    assert want[2:5] == ["short", "med", "med"] and want[5:7] == ["med", "long"]


@pytest.mark.parametrize("ranges", [["2011-12-31..2012-01-01"], ["20111201-20111231", "20111231-20120105"],
                                    ["2012-02-29"]])
def test_epoch_ranges_sql_match_python(engine, ranges):
    mjd = MJD + [55986.5, 55987.0]  # 2012-02-29 and 2012-03-01
    rows, keys = layersets.memberships("epochs", mjd=mjd, ranges=ranges)
    want = [sorted(keys[rows == i].tolist()) for i in range(len(mjd))]
    keyed = [layersets.parse_date_range(r).key for r in ranges]
    with engine.connect() as conn:
        got = sql_keys(conn, "epochs", _dates(mjd), mjd, [100.0] * len(mjd), keyed)
    assert got == want
    assert any(want) and not all(want)  # some in, some out


@pytest.mark.parametrize("key", ["2011", "short", "long", "20110101-20111231"])
@pytest.mark.parametrize("scale", ["fine", "coarse"])
def test_derived_names_in_sql_are_rules_layer_name(engine, key, scale):
    all_name = rules.layer_name("skycell-p1359x02y12", "WFC3", "IR", "f160w", scale)
    with engine.connect() as conn:
        got = conn.execute(sa.text(f"SELECT {derived_name_sql(':n', ':k')}"), {"n": all_name, "k": key}).scalar_one()
    assert got == rules.layer_name("skycell-p1359x02y12", "WFC3", "IR", "f160w", scale, key)
    assert rules.parse_layer_name(got).key == key


def test_exptime_classes_sample_agree(engine):
    """A dense sample of exposure times, the SQL CASE against np.digitize."""
    t = np.round(np.linspace(0, 200, 2001), 3).tolist()
    with engine.connect() as conn:
        got = [k for (k,) in sql_keys(conn, "exptime", [None] * len(t), [55000.0] * len(t), t)]
    assert got == layersets.exptime_classes(t).tolist()
