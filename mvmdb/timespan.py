"""Instants and intervals typed by a user, as MJD (UTC) numbers (pure; no I/O, no database).

``mvm coverage --from/--to`` take these forms; every one is UTC (HST's EXPSTART/EXPEND are MJD UTC):

==========================  ===========================================================
text                        meaning
==========================  ===========================================================
``55630.25``                an MJD (days since 1858-11-17 00:00 UTC)
``2011``                    a calendar year: as a start its first instant, as an end its last
``2011-03-14``/``20110314`` a date: as a start 00:00, as an end 24:00 (the whole day is in)
``2011-03-14T06:30:00``     a date and time (``Z`` or an offset converted to UTC; none means UTC)
==========================  ===========================================================

Intervals are closed. A missing start means MJD 0 (before any telescope); a missing end
means now. Days are 86400 s (MJD UTC as the headers write it; leap seconds are ignored).
Dates follow :data:`mvmdb.layersets.MJD_ZERO` (the same epoch as the layer-set rules).
"""

from __future__ import annotations

import datetime as dt
import math
import re

from mvmdb.layersets import MJD_ZERO

__all__ = ["MJD_EPOCH", "mjd_from_datetime", "parse_instant", "mjd_interval"]

MJD_EPOCH = dt.datetime.fromisoformat(str(MJD_ZERO)).replace(tzinfo=dt.timezone.utc)
"""MJD 0: 1858-11-17 00:00 UTC."""

_NUMBER_RE = re.compile(r"^[+]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_YEAR_RE = re.compile(r"^\d{4}$")
_COMPACT_DATE_RE = re.compile(r"^\d{8}$")
_FORMS = "an MJD (55630.25), a year (2011), a date (2011-03-14) or a UTC date and time (2011-03-14T06:30:00)"


def mjd_from_datetime(t: dt.datetime | dt.date) -> float:
    """MJD (UTC days) of a ``datetime`` (naive: taken as UTC; aware: converted to UTC) or of a date's 00:00."""
    if not isinstance(t, dt.datetime):
        t = dt.datetime(t.year, t.month, t.day)
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    return (t - MJD_EPOCH) / dt.timedelta(days=1)


def _date(text: str) -> dt.date | None:
    """The date of ``YYYY-MM-DD`` or ``YYYYMMDD`` text, or None when it is not a date alone."""
    if _COMPACT_DATE_RE.match(text):
        text = f"{text[:4]}-{text[4:6]}-{text[6:]}"
    if len(text) == 10:
        try:
            return dt.date.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{text!r} is no calendar date") from None
    return None


def parse_instant(text: str, *, end: bool = False) -> float:
    """The MJD (UTC) of ``text`` (forms in the module docstring); ``ValueError`` with the forms if unreadable.

    ``end``: the text closes an interval, so a year or a date alone stands for its last
    instant (the next year's or day's 00:00), not its first.
    """
    s = str(text).strip()
    if _YEAR_RE.match(s):
        year = int(s) + (1 if end else 0)
        return mjd_from_datetime(dt.date(year, 1, 1))
    day = _date(s)
    if day is not None:
        return mjd_from_datetime(day) + (1.0 if end else 0.0)
    if _NUMBER_RE.match(s):
        value = float(s)
        if not math.isfinite(value):
            raise ValueError(f"{text!r} is not a finite MJD")
        return value
    try:
        return mjd_from_datetime(dt.datetime.fromisoformat(s))
    except ValueError:
        raise ValueError(f"{text!r} is not a time: give {_FORMS}") from None


def mjd_interval(start: str | None, end: str | None, *, now: dt.datetime | None = None) -> tuple[float, float]:
    """The closed interval ``(mjd_from, mjd_to)`` of a ``--from``/``--to`` pair of texts.

    A missing start is MJD 0, a missing end is ``now`` (default: the current UTC time).
    ``ValueError`` when a text is unreadable or the start is after the end; a year or date
    as the end must also end after the start (``--from 2013 --to 2012`` is an error, not
    the instant 2013-01-01T00:00).
    """
    t1 = 0.0 if start is None else parse_instant(start)
    if end is None:
        t2 = mjd_from_datetime(now or dt.datetime.now(dt.timezone.utc))
        whole = False
    else:
        t2 = parse_instant(end, end=True)
        whole = t2 != parse_instant(end)  # a year or a date: it ends at the next one's first instant
    if t1 > t2 or (whole and t1 >= t2):
        raise ValueError(f"the start {start or 'MJD 0'} (MJD {t1:.6f}) is after the end {end or 'now'} (MJD {t2:.6f})")
    return t1, t2
