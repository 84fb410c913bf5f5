"""Layer sets: which time-domain layers an exposure belongs to (pure; no I/O, no database).

A *layer set* splits the exposures of one archive layer (sky cell + detector + filter,
spec §4.2) into sub-layers by time or exposure time. Every set gives each exposure a
*layer key*, the ``<layer>`` term of the product name (:func:`mvmdb.rules.layer_name`):

=========  =====================================  ===========================================
set        key                                    rule
=========  =====================================  ===========================================
all        ``all``                                every exposure (the archive's products)
year       ``2011``                               calendar year of DATE-OBS (UTC)
exptime    ``short`` / ``med`` / ``long``         EXPTIME class, :data:`EXPTIME_LIMITS`
epochs     ``20110101-20111231``                  user date ranges, or visits grouped where
                                                  the gap between them exceeds N days
=========  =====================================  ===========================================

Times. ``mjd``: EXPSTART, Modified Julian Date (UTC days, as HST headers give it).
``day``: the UTC calendar date of an exposure's start, numpy ``datetime64[D]``, i.e. the
date of DATE-OBS, which equals ``floor(EXPSTART)`` (:func:`days_from_mjd`). All rules use
the *start* of an exposure: an exposure that starts on 2011-12-31 23:50 UTC is a 2011
exposure, as in the archive (which reads the year from DATE-OBS).

Archive facts (drizzlepac ``drizzlepac/haputils/poller_utils.py``, ``interpret_mvm_input``
and ``define_exp_layers``; spec §4.2; the archive defines these layers but runs only
``layer_method='all'``):

* year layer: ``int(DATE-OBS.split('-')[0])`` of the exposure's primary header;
* exposure-time classes: ``EXP_LIMITS = [0, 15, 120]`` (seconds) and
  ``np.digitize(exptime, EXP_LIMITS) - 1`` -> 0 short, 1 med, 2 long
  (``EXP_LABELS``). ``np.digitize`` puts a value equal to a limit in the upper class:
  SHORT is ``0 <= t < 15`` s, MED ``15 <= t < 120`` s, LONG ``t >= 120`` s.
  A negative EXPTIME has no class there (it raises); here it raises ``ValueError`` too.
  Exposures with EXPTIME ~ 0 never reach layers (§4.4, :func:`mvmdb.rules.content_exclusion`).

Epochs are this project's extension (the archive has none). Automatic epochs are
*stable under appending*: a visit added after the last one, later than ``gap_days``,
opens a new epoch and leaves every earlier epoch (members and name) unchanged; one
added within ``gap_days`` of the last member joins, and renames, the last epoch only.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "LAYER_SETS",
    "ALL_KEY",
    "EXPTIME_LIMITS",
    "EXPTIME_CLASSES",
    "MJD_ZERO",
    "DateRange",
    "Epochs",
    "days_from_mjd",
    "days_from_dates",
    "years",
    "exptime_classes",
    "auto_epochs",
    "epoch_key",
    "parse_epoch_key",
    "parse_date_range",
    "range_memberships",
    "memberships",
    "layer_set_of_key",
    "is_layer_key",
]

LAYER_SETS: tuple[str, ...] = ("all", "year", "exptime", "epochs")
"""The layer sets; ``all`` is always on (the archive's layers, names unchanged)."""

ALL_KEY = "all"
"""Layer key of the ``all`` set (product names ``..._all_drz.fits`` / ``..._coarse-all_drz.fits``)."""

# drizzlepac haputils/poller_utils.py: EXP_LIMITS = [0, 15, 120], EXP_LABELS {0: short, 1: med, 2: long}
EXPTIME_LIMITS: tuple[float, float, float] = (0.0, 15.0, 120.0)
"""Lower limits (seconds, inclusive) of the SHORT, MED and LONG exposure-time classes."""

EXPTIME_CLASSES: tuple[str, str, str] = ("short", "med", "long")
"""Exposure-time class keys, in the order of :data:`EXPTIME_LIMITS` (lower case, as in names)."""

MJD_ZERO = np.datetime64("1858-11-17", "D")
"""The UTC date of MJD 0."""

_YEAR_RE = re.compile(r"^\d{4}$")
_EPOCH_RE = re.compile(r"^(\d{8})-(\d{8})$")


# --------------------------------------------------------------------------- dates


def days_from_mjd(mjd) -> np.ndarray:
    """UTC calendar dates (``datetime64[D]``) of MJDs: ``MJD_ZERO + floor(mjd)``.

    ``mjd``: a number or array of Modified Julian Dates (UTC). Non-finite values raise
    ``ValueError``.
    """
    m = np.asarray(mjd, dtype=float)
    if not np.isfinite(m).all():
        raise ValueError("MJD values must be finite")
    return MJD_ZERO + np.floor(m).astype(np.int64).astype("timedelta64[D]")


def days_from_dates(dates) -> np.ndarray:
    """``datetime64[D]`` dates from ISO strings (``'2011-03-14'``, as DATE-OBS), ``datetime.date``
    objects or ``datetime64`` values (one or an iterable). A time of day is dropped."""
    if isinstance(dates, (str, dt.date, np.datetime64)):
        dates = [dates]
    out = []
    for d in dates:
        if isinstance(d, dt.datetime):
            d = d.date()
        if isinstance(d, str):
            d = d.strip()[:10]
        out.append(np.datetime64(d, "D"))
    return np.array(out, dtype="datetime64[D]")


def _days(days=None, mjd=None) -> np.ndarray:
    if (days is None) == (mjd is None):
        raise TypeError("give exactly one of days= (dates) or mjd= (EXPSTART)")
    if mjd is not None:
        return np.atleast_1d(days_from_mjd(mjd))
    d = np.asarray(days)
    if d.dtype.kind != "M":
        d = days_from_dates(days)
    return np.atleast_1d(d.astype("datetime64[D]"))


def _yyyymmdd(days: np.ndarray) -> np.ndarray:
    return np.char.replace(np.datetime_as_string(days, unit="D"), "-", "")


# --------------------------------------------------------------------------- year and exposure time


def years(days=None, *, mjd=None) -> np.ndarray:
    """Calendar years (int array) of exposure start dates (``days``) or of EXPSTART MJDs (``mjd``).

    The archive's year layer: the year of DATE-OBS (UTC).

    >>> years(mjd=[55634.13, 55926.99]).tolist()
    [2011, 2011]
    """
    d = _days(days, mjd)
    return d.astype("datetime64[Y]").astype(np.int64) + 1970


def exptime_classes(exptime) -> np.ndarray:
    """The archive's exposure-time class of each EXPTIME (seconds): ``short``, ``med`` or ``long``.

    SHORT ``0 <= t < 15``, MED ``15 <= t < 120``, LONG ``t >= 120`` (limits
    :data:`EXPTIME_LIMITS`; a time equal to a limit goes up, as ``np.digitize`` does in
    drizzlepac's ``define_exp_layers``). Negative or non-finite times raise ``ValueError``.

    >>> exptime_classes([0.5, 15.0, 119.9, 120.0]).tolist()
    ['short', 'med', 'med', 'long']
    """
    t = np.atleast_1d(np.asarray(exptime, dtype=float))
    if not np.isfinite(t).all() or (t < EXPTIME_LIMITS[0]).any():
        raise ValueError("exposure times must be finite and >= 0 s")
    index = np.digitize(t, EXPTIME_LIMITS) - 1
    return np.asarray(EXPTIME_CLASSES)[index]


# --------------------------------------------------------------------------- epochs


@dataclass(frozen=True)
class DateRange:
    """An inclusive range of UTC dates, ``first`` .. ``last`` (``datetime.date``)."""

    first: dt.date
    last: dt.date

    def __post_init__(self) -> None:
        if self.last < self.first:
            raise ValueError(f"date range ends ({self.last}) before it starts ({self.first})")

    @property
    def key(self) -> str:
        """The layer key ``YYYYMMDD-YYYYMMDD``."""
        return f"{self.first:%Y%m%d}-{self.last:%Y%m%d}"


@dataclass(frozen=True)
class Epochs:
    """Automatic epochs of a set of exposures (:func:`auto_epochs`).

    ``index``: the epoch (0-based, in time order) of each input exposure, in input order;
    ``first``/``last``: ``datetime64[D]`` start dates of each epoch's first and last member;
    ``keys``: each epoch's layer key ``YYYYMMDD-YYYYMMDD``.
    """

    index: np.ndarray
    first: np.ndarray
    last: np.ndarray

    @property
    def keys(self) -> np.ndarray:
        return epoch_key(self.first, self.last)

    def __len__(self) -> int:
        return len(self.first)


def auto_epochs(mjd, gap_days: float) -> Epochs:
    """Group exposures into epochs where the time between consecutive starts exceeds ``gap_days``.

    ``mjd``: EXPSTART of each exposure (MJD, any order); ``gap_days`` > 0: a new epoch
    starts after a gap *strictly* longer than this many days (start to start). Visits, whose
    exposures follow each other within hours, therefore never split for gaps of a day or
    more. Epoch names use the UTC start dates of the first and last member, inclusive.
    Vectorized: one sort and one cumulative sum. Appending a later exposure never changes
    an earlier epoch except the last (see the module docstring).

    >>> e = auto_epochs([55634.1, 55640.5, 56301.4], 30)
    >>> e.index.tolist(), e.keys.tolist()
    ([0, 0, 1], ['20110314-20110320', '20130109-20130109'])
    """
    if not gap_days > 0:
        raise ValueError("gap_days must be > 0")
    m = np.atleast_1d(np.asarray(mjd, dtype=float))
    if m.size == 0:
        empty = np.zeros(0, "datetime64[D]")
        return Epochs(np.zeros(0, np.int64), empty, empty)
    order = np.argsort(m, kind="stable")
    ms = m[order]
    sorted_index = np.concatenate([[0], np.cumsum(np.diff(ms) > gap_days)])
    index = np.empty_like(sorted_index)
    index[order] = sorted_index
    starts = np.flatnonzero(np.concatenate([[True], np.diff(sorted_index) > 0]))
    ends = np.concatenate([starts[1:], [ms.size]]) - 1
    return Epochs(index, days_from_mjd(ms[starts]), days_from_mjd(ms[ends]))


def epoch_key(first, last) -> np.ndarray:
    """Layer keys ``YYYYMMDD-YYYYMMDD`` of inclusive date ranges (``datetime64[D]`` or ISO dates)."""
    f = np.atleast_1d(np.asarray(first, dtype="datetime64[D]"))
    la = np.atleast_1d(np.asarray(last, dtype="datetime64[D]"))
    if (la < f).any():
        raise ValueError("an epoch ends before it starts")
    return np.char.add(np.char.add(_yyyymmdd(f), "-"), _yyyymmdd(la))


def parse_epoch_key(key: str) -> DateRange:
    """The inclusive :class:`DateRange` of an epoch key ``YYYYMMDD-YYYYMMDD`` (``ValueError`` if it is none)."""
    m = _EPOCH_RE.match(str(key))
    if not m:
        raise ValueError(f"{key!r} is not an epoch key YYYYMMDD-YYYYMMDD")
    try:
        first, last = (dt.datetime.strptime(g, "%Y%m%d").date() for g in m.groups())
    except ValueError:
        raise ValueError(f"{key!r} is not an epoch key YYYYMMDD-YYYYMMDD (no such date)") from None
    return DateRange(first, last)


def parse_date_range(text: str) -> DateRange:
    """A user date range: ``2011-01-01..2011-12-31`` (ISO, inclusive) or the key form ``20110101-20111231``.

    A single date (``2011-03-14``) is a one-day range.
    """
    s = str(text).strip()
    if _EPOCH_RE.match(s):
        return parse_epoch_key(s)
    first, sep, last = s.partition("..")
    try:
        a = dt.date.fromisoformat(first.strip())
        b = dt.date.fromisoformat(last.strip()) if sep else a
    except ValueError:
        raise ValueError(f"{text!r} is not a date range: use YYYY-MM-DD..YYYY-MM-DD or YYYYMMDD-YYYYMMDD") from None
    return DateRange(a, b)


def range_memberships(ranges: Sequence[DateRange], days=None, *, mjd=None) -> tuple[np.ndarray, np.ndarray]:
    """Exposures in user date ranges: ``(row, key)`` arrays, one pair per (exposure, range) match.

    A start date inside ``[first, last]`` (inclusive) belongs to the range; ranges may
    overlap (an exposure then has several epoch layers) and exposures outside every range
    have none. ``row`` indexes the input; pairs come range by range, rows ascending.
    """
    d = _days(days, mjd)
    rows, keys = [], []
    for r in ranges:
        hit = np.flatnonzero((d >= np.datetime64(r.first, "D")) & (d <= np.datetime64(r.last, "D")))
        rows.append(hit)
        keys.append(np.full(hit.size, r.key, dtype="<U17"))
    if not rows:
        return np.zeros(0, np.int64), np.zeros(0, "<U17")
    return np.concatenate(rows).astype(np.int64), np.concatenate(keys)


# --------------------------------------------------------------------------- all sets


def memberships(
    layer_set: str,
    *,
    mjd=None,
    days=None,
    exptime=None,
    ranges: Iterable[DateRange | str] | None = None,
    gap_days: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The layer keys of exposures in one layer set, as ``(row, key)`` arrays.

    ``row`` indexes the inputs (0-based), ``key`` is the layer key. Inputs, per set:

    * ``all``: any one of ``mjd``/``days``/``exptime`` (for the count); key ``all``;
    * ``year``: ``days`` (DATE-OBS dates) or ``mjd`` (EXPSTART); key ``'2011'``;
    * ``exptime``: ``exptime`` (seconds); key ``short``/``med``/``long``;
    * ``epochs``: ``ranges`` (user :class:`DateRange` s or strings for
      :func:`parse_date_range`) *or* ``gap_days`` (automatic, needs ``mjd``), with ``days``
      or ``mjd``. Automatic epochs depend on all exposures given together: give every
      exposure of the layer (sky cell + detector + filter), not only new ones.

    Every set but user-range epochs gives exactly one key per exposure.
    """
    if layer_set not in LAYER_SETS:
        raise ValueError(f"unknown layer set {layer_set!r} (known: {', '.join(LAYER_SETS)})")
    if layer_set == "all":
        given = next((v for v in (mjd, days, exptime) if v is not None), None)
        if given is None:
            raise TypeError("give mjd=, days= or exptime= to count the exposures")
        n = np.atleast_1d(np.asarray(given)).shape[0]
        return np.arange(n, dtype=np.int64), np.full(n, ALL_KEY)
    if layer_set == "year":
        y = years(days, mjd=mjd)
        return np.arange(y.size, dtype=np.int64), y.astype(str)
    if layer_set == "exptime":
        if exptime is None:
            raise TypeError("the exptime set needs exptime= (seconds)")
        c = exptime_classes(exptime)
        return np.arange(c.size, dtype=np.int64), c
    if (ranges is None) == (gap_days is None):
        raise TypeError("the epochs set needs exactly one of ranges= (user dates) or gap_days= (automatic)")
    if ranges is not None:
        parsed = [r if isinstance(r, DateRange) else parse_date_range(r) for r in ranges]
        return range_memberships(parsed, days, mjd=mjd)
    if mjd is None:
        raise TypeError("automatic epochs need mjd= (EXPSTART)")
    e = auto_epochs(mjd, gap_days)
    return np.arange(e.index.size, dtype=np.int64), e.keys[e.index] if len(e) else np.zeros(0, "<U17")


def layer_set_of_key(key: str) -> str:
    """The layer set a layer key belongs to: ``all``, ``year`` (4 digits), ``exptime``
    (short/med/long) or ``epochs`` (``YYYYMMDD-YYYYMMDD``); ``ValueError`` otherwise."""
    k = str(key)
    if k == ALL_KEY:
        return "all"
    if _YEAR_RE.match(k):
        return "year"
    if k in EXPTIME_CLASSES:
        return "exptime"
    parse_epoch_key(k)  # raises for anything else
    return "epochs"


def is_layer_key(key: str) -> bool:
    """True when ``key`` is a valid layer key of some set (:func:`layer_set_of_key`)."""
    try:
        layer_set_of_key(key)
    except ValueError:
        return False
    return True
