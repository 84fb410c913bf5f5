"""User times -> MJD (UTC): numbers, years, dates, datetimes, open ends, bad input."""

from __future__ import annotations

import datetime as dt

import pytest
from astropy.time import Time

from mvmdb.layersets import days_from_mjd
from mvmdb.timespan import mjd_from_datetime, mjd_interval, parse_instant


@pytest.mark.parametrize("text", ["2011-03-14T06:30:00", "2011-03-14 06:30", "2011-03-14T06:30:00Z",
                                  "2011-03-14T08:30:00+02:00", "1999-12-31T23:59:59.5", "2016-07-01T00:00:00"])
def test_datetimes_agree_with_astropy(text):
    expected = Time(dt.datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(dt.timezone.utc)
                    .replace(tzinfo=None), scale="utc").mjd
    assert parse_instant(text) == pytest.approx(expected, abs=1e-9)  # ~0.1 ms


def test_dates_years_and_numbers():
    start = parse_instant("2011-03-14")
    assert start == Time("2011-03-14", scale="utc").mjd
    assert str(days_from_mjd(start)) == "2011-03-14"  # the inverse of the layer-set date rule
    assert parse_instant("20110314") == start
    assert parse_instant("2011-03-14", end=True) == start + 1  # an end date takes in the whole day
    assert parse_instant("2011") == Time("2011-01-01", scale="utc").mjd
    assert parse_instant("2011", end=True) == Time("2012-01-01", scale="utc").mjd
    assert parse_instant(" 55630.25 ") == 55630.25 and parse_instant("55630", end=True) == 55630.0
    assert mjd_from_datetime(dt.date(1858, 11, 17)) == 0.0


def test_intervals():
    now = dt.datetime(2026, 1, 1, 12, tzinfo=dt.timezone.utc)
    assert mjd_interval("2011", "2011", now=now) == (parse_instant("2011"), parse_instant("2012"))
    assert mjd_interval("2020-01-01", None, now=now) == (parse_instant("2020-01-01"), mjd_from_datetime(now))
    assert mjd_interval(None, "55000", now=now) == (0.0, 55000.0)
    assert mjd_interval("55000.5", "55000.5") == (55000.5, 55000.5)  # an instant
    assert mjd_interval("2011-03-14T12:00", "2011-03-14")[1] == parse_instant("2011-03-15")  # the day's rest
    for start, end in [("2012-01-02", "2011-12-31"), ("2012-01-01", "2011-12-31"), ("2013", "2012"),
                       ("55000.5", "55000.4"), ("2011-03-15", "2011-03-14")]:
        with pytest.raises(ValueError, match="after the end"):
            mjd_interval(start, end)


@pytest.mark.parametrize("text", ["", "yesterday", "2011-02-30", "20111301", "nan", "inf", "-5", "2011-03-14T25:00"])
def test_bad_text_is_a_value_error(text):
    with pytest.raises(ValueError):
        parse_instant(text)
