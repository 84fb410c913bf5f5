"""Layer sets (year, exposure-time class, epochs) as pure rules, and their product names."""

from __future__ import annotations

import datetime as dt
import doctest

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mvmdb import layersets, rules
from mvmdb.layersets import DateRange, auto_epochs, exptime_classes, memberships, years

MJD0 = dt.date(1858, 11, 17)


def mjd_of(date: dt.date, hour: float = 0.0) -> float:
    return (date - MJD0).days + hour / 24.0


def test_docstring_examples():
    assert doctest.testmod(layersets).failed == 0


def test_exptime_classes_follow_the_archive_limits():
    # drizzlepac define_exp_layers: np.digitize(exptime, [0, 15, 120]) - 1, a limit goes up
    t = [0.0, 1e-3, 14.999, 15.0, 15.001, 119.999, 120.0, 120.001, 3000.0]
    assert exptime_classes(t).tolist() == ["short"] * 3 + ["med"] * 3 + ["long"] * 3
    assert layersets.EXPTIME_LIMITS == (0.0, 15.0, 120.0)
    for bad in ([-1.0], [float("nan")], [float("inf")]):
        with pytest.raises(ValueError):
            exptime_classes(bad)


@given(st.floats(0.0, 1e5))
def test_exptime_class_by_comparison(t):
    expected = "short" if t < 15.0 else "med" if t < 120.0 else "long"
    assert exptime_classes(t).tolist() == [expected]


@given(st.dates(dt.date(1990, 1, 1), dt.date(2100, 12, 31)), st.floats(0.0, 23.999))
def test_year_is_the_utc_year_of_the_start(date, hour):
    mjd = mjd_of(date, hour)
    assert years(mjd=mjd).tolist() == [date.year]
    assert years(date.isoformat()).tolist() == [int(date.isoformat().split("-")[0])]  # the archive's rule
    assert layersets.days_from_mjd(mjd) == np.datetime64(date, "D")


def test_year_boundaries_use_the_start_time():
    new_year = mjd_of(dt.date(2012, 1, 1))
    assert years(mjd=[new_year - 1e-6, new_year, new_year + 0.5]).tolist() == [2011, 2012, 2012]
    assert years(["2011-12-31", dt.date(2012, 1, 1), np.datetime64("2013-06-01")]).tolist() == [2011, 2012, 2013]
    assert years(["2011-12-31T23:59:59"]).tolist() == [2011]
    with pytest.raises(TypeError):
        years()
    with pytest.raises(ValueError):
        years(mjd=[float("nan")])


def test_auto_epochs_group_by_gaps():
    d = [mjd_of(dt.date(2011, 3, 14), 3), mjd_of(dt.date(2011, 3, 14), 5), mjd_of(dt.date(2011, 3, 20), 7),
         mjd_of(dt.date(2013, 1, 9), 11), mjd_of(dt.date(2016, 5, 2), 1)]
    e = auto_epochs(d[::-1], 30.0)  # any input order
    assert e.index.tolist() == [2, 1, 0, 0, 0]
    assert e.keys.tolist() == ["20110314-20110320", "20130109-20130109", "20160502-20160502"]
    assert len(auto_epochs([], 10)) == 0
    with pytest.raises(ValueError):
        auto_epochs(d, 0)


def test_auto_epoch_gap_is_strict():
    e = auto_epochs([100.0, 110.0, 120.5], 10.0)
    assert e.index.tolist() == [0, 0, 1]  # a gap of exactly 10 days does not split


mjd_lists = st.lists(st.floats(50000.0, 62000.0), min_size=1, max_size=40)


@given(mjd_lists, st.floats(0.5, 400.0))
def test_auto_epochs_properties(mjds, gap):
    e = auto_epochs(mjds, gap)
    m = np.asarray(mjds)
    days = layersets.days_from_mjd(m)
    assert e.index.min() == 0 and e.index.max() == len(e) - 1
    for k in range(len(e)):  # members lie inside their epoch's inclusive dates
        members = e.index == k
        assert days[members].min() == e.first[k] and days[members].max() == e.last[k]
    for k in range(len(e) - 1):  # consecutive epochs are separated by more than the gap
        assert m[e.index == k + 1].min() - m[e.index == k].max() > gap
    perm = np.random.default_rng(0).permutation(len(m))
    assert (auto_epochs(m[perm], gap).index == e.index[perm]).all()


@given(mjd_lists, st.floats(0.5, 400.0), st.floats(0.0, 2000.0))
def test_appending_a_later_visit_keeps_earlier_epochs(mjds, gap, after):
    before = auto_epochs(mjds, gap)
    later = max(mjds) + after
    now = auto_epochs([*mjds, later], gap)
    assert (now.index[:-1] == before.index).all()
    if later - max(mjds) > gap:  # the gap as the float sum makes it  # a new epoch; every old one is unchanged
        assert now.keys[:-1].tolist() == before.keys.tolist() and len(now) == len(before) + 1
    else:  # joins the last epoch; only that one may be renamed
        assert now.keys[:-1].tolist() == before.keys[:-1].tolist() and len(now) == len(before)


def test_user_date_ranges():
    r = layersets.parse_date_range("2011-01-01..2011-12-31")
    assert r == DateRange(dt.date(2011, 1, 1), dt.date(2011, 12, 31)) and r.key == "20110101-20111231"
    assert layersets.parse_date_range("20110101-20111231") == r
    assert layersets.parse_date_range("2013-01-09").key == "20130109-20130109"
    for bad in ("2011-13-01..2011-12-31", "2012-01-01..2011-01-01", "2011", "20111301-20111231"):
        with pytest.raises(ValueError):
            layersets.parse_date_range(bad)
    dates = ["2010-12-31", "2011-01-01", "2011-06-30", "2011-12-31", "2012-01-01"]
    rows, keys = memberships("epochs", days=dates, ranges=["2011-01-01..2011-12-31", "2011-06-01..2012-01-01"])
    assert list(zip(rows.tolist(), keys.tolist())) == [
        (1, "20110101-20111231"), (2, "20110101-20111231"), (3, "20110101-20111231"),
        (2, "20110601-20120101"), (3, "20110601-20120101"), (4, "20110601-20120101"),
    ]  # inclusive at both ends; overlapping ranges give two layers; 2010-12-31 has none
    mjd = [mjd_of(dt.date.fromisoformat(d), 23.9) for d in dates]
    r2, k2 = memberships("epochs", mjd=mjd, ranges=[r, layersets.parse_date_range("2011-06-01..2012-01-01")])
    assert (r2 == rows).all() and (k2 == keys).all()


def test_memberships_per_set():
    mjd = [mjd_of(dt.date(2011, 3, 14), 3), mjd_of(dt.date(2013, 1, 9), 11), mjd_of(dt.date(2013, 1, 9), 12)]
    exptime = [10.0, 15.0, 500.0]
    assert memberships("all", mjd=mjd)[1].tolist() == ["all"] * 3
    assert memberships("year", mjd=mjd)[1].tolist() == ["2011", "2013", "2013"]
    assert memberships("year", days=["2011-03-14", "2013-01-09", "2013-01-09"])[1].tolist() == ["2011", "2013", "2013"]
    assert memberships("exptime", exptime=exptime)[1].tolist() == ["short", "med", "long"]
    rows, keys = memberships("epochs", mjd=mjd, gap_days=60)
    assert rows.tolist() == [0, 1, 2]
    assert keys.tolist() == ["20110314-20110314", "20130109-20130109", "20130109-20130109"]
    with pytest.raises(ValueError):
        memberships("month", mjd=mjd)
    with pytest.raises(TypeError):
        memberships("epochs", mjd=mjd)
    with pytest.raises(TypeError):
        memberships("exptime", mjd=mjd)


def test_layer_set_of_key():
    assert [layersets.layer_set_of_key(k) for k in ("all", "2011", "short", "med", "long", "20110101-20111231")] == \
        ["all", "year", "exptime", "exptime", "exptime", "epochs"]
    for bad in ("ALL", "11", "medium", "20110101", "20111301-20111231", "coarse-all", ""):
        assert not layersets.is_layer_key(bad)


# --------------------------------------------------------------------------- names


def test_time_domain_layer_names():
    cell = "skycell-p1889x07y19"
    cases = [
        ("2011", "hst_skycell-p1889x07y19_wfc3_ir_f160w_2011", "hst_skycell-p1889x07y19_wfc3_ir_f160w_coarse-2011"),
        ("short", "hst_skycell-p1889x07y19_wfc3_ir_f160w_short", "hst_skycell-p1889x07y19_wfc3_ir_f160w_coarse-short"),
        ("20110101-20111231", "hst_skycell-p1889x07y19_wfc3_ir_f160w_20110101-20111231",
         "hst_skycell-p1889x07y19_wfc3_ir_f160w_coarse-20110101-20111231"),
        ("all", "hst_skycell-p1889x07y19_wfc3_ir_f160w_all", "hst_skycell-p1889x07y19_wfc3_ir_f160w_coarse-all"),
    ]
    for key, fine, coarse in cases:
        assert rules.layer_name(cell, "WFC3", "IR", "f160w", "fine", key) == fine
        assert rules.layer_name(cell, "WFC3", "IR", "f160w", "coarse", key) == coarse
    assert rules.product_filename(rules.layer_name(cell, "WFC3", "IR", "f160w", "fine", "2011"), "flt") == \
        "hst_skycell-p1889x07y19_wfc3_ir_f160w_2011_drz.fits"
    assert rules.layer_name(cell, "WFC3", "IR", "f160w", "fine") == rules.layer_name(cell, "WFC3", "IR", "f160w",
                                                                                      "fine", "all")
    for bad in ("ALL", "2011-2012", "medium", "coarse-all"):
        with pytest.raises(ValueError):
            rules.layer_name(cell, "WFC3", "IR", "f160w", "fine", bad)


def test_parse_layer_name():
    p = rules.parse_layer_name("hst_skycell-p1889x07y19_wfc3_ir_f160w_coarse-2011_drz.fits")
    assert p == rules.LayerNameParts("skycell-p1889x07y19", "wfc3", "ir", "f160w", "coarse", "year", "2011", "flt")
    p = rules.parse_layer_name("hst_skycell-p1889x07y19_acs_wfc_f330w-pol0uv_all_drc.fits")
    assert (p.filter, p.scale, p.layer_set, p.key, p.filetype) == ("f330w-pol0uv", "fine", "all", "all", "flc")
    assert rules.parse_layer_name("hst_skycell-p1889x07y19_acs_wfc_f775w_med").filetype is None
    for bad in ("hst_skycell-p1889x07y19_acs_wfc_f775w_medium_drc.fits", "ib4606c5q_flc.fits",
                "hst_skycell-p1889x07y19_acs_wfc_f775w_all-jbl70rtv_flc.fits",
                "hst_skycell-p1889x07y19_acs_wfc_f775w_all_drz.fits.gz", "hst_skycell-p1889x07y19_manifest.txt"):
        with pytest.raises(ValueError):
            rules.parse_layer_name(bad)


keys = st.one_of(
    st.just("all"),
    st.integers(1990, 2099).map(str),
    st.sampled_from(["short", "med", "long"]),
    st.tuples(st.dates(dt.date(1990, 1, 1), dt.date(2099, 1, 1)), st.integers(0, 4000)).map(
        lambda t: DateRange(t[0], t[0] + dt.timedelta(days=t[1])).key),
)


@given(
    st.tuples(st.integers(0, 2643), st.integers(1, 21), st.integers(1, 21)).map(
        lambda t: f"skycell-p{t[0]:04d}x{t[1]:02d}y{t[2]:02d}"),
    st.sampled_from([("WFC3", "IR"), ("WFC3", "UVIS"), ("ACS", "WFC"), ("ACS", "SBC"), ("WFPC2", "PC")]),
    st.sampled_from(["f160w", "f775w", "f330w-pol0uv", "f555w-f814w", "clear"]),
    st.sampled_from(["fine", "coarse"]),
    keys,
    st.sampled_from([None, "flt", "flc"]),
)
def test_names_round_trip(cell, instdet, filt, scale, key, filetype):
    base = rules.layer_name(cell, instdet[0], instdet[1], filt, scale, key)
    name = base if filetype is None else rules.product_filename(base, filetype)
    p = rules.parse_layer_name(name)
    assert (p.skycell, p.instrument, p.detector, p.filter, p.scale, p.key, p.filetype) == \
        (cell, instdet[0].lower(), instdet[1].lower(), filt, scale, key, filetype)
    assert p.layer_set == layersets.layer_set_of_key(key)
    assert rules.layer_name(p.skycell, p.instrument, p.detector, p.filter, p.scale, p.key) == base
