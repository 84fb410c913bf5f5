"""Named scenes: truth catalogues, visit plans, defects, and the scene directory.

A scene directory holds, side by side::

    <ipppssoot>_flc.fits / _flt.fits   one file per exposure (see writer.py)
    truth.ecsv                         the sky truth (see truth.py for the columns)
    exposures.ecsv                     the manifest, one row per file (columns below)

Manifest columns: ``path`` (file name relative to the directory), ``ipppssoot``,
``filetype``, ``instrument``, ``detector``, ``filter``, ``exptime`` (s), ``epoch``
(EXPSTART, MJD), ``date_obs``, ``proposid``, ``visit`` (``ipppss``, the archive's visit
key), ``ra_aper``/``dec_aper`` (deg), ``orientat``/``pa_v3`` (deg), ``bunit``,
``sky_sci1``/``sky_sci2`` (injected flat sky of SCI,1 / SCI,2 in the file's units; NaN
for one-chip detectors), ``n_cr`` (cosmic-ray events injected, all chips),
``psf_fwhm_px``, ``wcs_dx``/``wcs_dy`` (header WCS error, file px: header-projected minus
true positions), ``trail_arcsec``, ``defects`` (comma-separated labels, '' when clean),
``expected_exclusion`` (why the archive's MVM filter would reject the exposure, '' when
usable), ``downscale``, ``header_only``.  Table meta: scene, seed, downscale,
header_only, centre, added_visits.

Scenes (all deterministic in ``seed``):

* ``pg1202``: PG 1202+281 (RA 181.1754, Dec 27.9031; in projection cells p1889 and
  p1970): ACS/WFC F775W + F850LP, WFC3/IR F105W/F125W/F160W, WFC3/UVIS F475W from
  proposals 12286 (2011) and 12903 (2013); 17 exposures, all inside sky cell
  p1889x07y19 (and one sky cell of p1970).
* ``ra0``: a field at RA 0, Dec -29.95 whose every footprint crosses RA = 0; ACS/WFC,
  WFC3/IR, WFC3/UVIS, 2006-2018; 9 exposures.
* ``pole``: a field at Dec +89.14; ACS/WFC, ACS/HRC, WFC3/UVIS, WFC3/IR, ACS/SBC,
  2004-2019; 10 exposures.
* ``deep``: a CDF-S-like field with 63 overlapping exposures from 7 proposals over
  2002-2014 (ACS/WFC, ACS/HRC, ACS/SBC, WFC3/UVIS, WFC3/IR).
* ``years``: one field (RA 150.1, Dec 2.2) and filter revisited over several calendar
  years, for time-domain layers: WFC3/IR F160W in 2011 (two visits 3 weeks apart), 2013
  and 2016, with SHORT (12.7 s), MED (102.9 s) and LONG (252.9 s) exposures
  (:mod:`mvmdb.layersets`), plus ACS/WFC F814W in 2011 and 2016; 14 exposures, all
  pointed within 5" of the field centre at rolls 20-290 deg. With ``proper_motion`` it
  shows a moving star in each year layer.
* ``bulk``: ``n_exposures`` (default 1000) exposures in 2-4 exposure visits spread over
  the whole sky (poles and RA 0 included), empty truth; meant for ``header_only=True``
  ingest benchmarks.

Defects (off by default; each adds exposures, the clean ones stay byte-identical):
``trail[:LEN[:PA]]`` (guide-star lock lost: sources smeared LEN arcsec, default 4, along
position angle PA, deg E of N, default random), ``wcs_error[:N[:ANGLE]]`` (a 2-exposure
visit whose header WCS is off by N file pixels, default 5, along ANGLE deg from +x,
default 30; :func:`mvmdb.simulate.writer.wcs_error_offset_mas` gives the offset on the
sky), ``hard_cases`` (one usable, untrailed exposure per :data:`HARD_CASES` entry:
diffraction spikes with saturation bleeds, CTE tails, a satellite streak, 4x the cosmic
rays left unflagged; labels ``hard_case:<name>``), ``grism[:G]``
(a direct image plus a G141 / G102 / G800L exposure), ``moving_target`` (MTFLAG='T',
stars trailed), ``gsfail`` (QUALITY='GSFAIL'), ``spatial_scan`` (SCAN_TYP='C'),
``charge_injection`` (CHINJECT='LINE17'), ``dark_target`` (TARGNAME='DARK').
"""

from __future__ import annotations

import math
import time
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from astropy.table import Table

from mvmdb.errors import MvmdbError
from mvmdb.simulate.instruments import detector_model, focal_to_sky_matrix, offset_position, tan_deproject
from mvmdb.simulate.motion import add_moving_star, record_positions
from mvmdb.simulate.truth import add_flux_columns, flux_column, has_proper_motion
from mvmdb.simulate.writer import ExposureSpec, mjd_to_datetime, stable_seed, write_exposure

SCENES: tuple[str, ...] = ("pg1202", "ra0", "pole", "deep", "bulk", "years")
DEFECTS: tuple[str, ...] = (
    "trail", "wcs_error", "grism", "moving_target", "gsfail", "spatial_scan", "charge_injection", "dark_target",
    "hard_cases",
)
TRUTH_FILE = "truth.ecsv"
MANIFEST_FILE = "exposures.ecsv"
MAX_SEED = 2**32


class SimulationError(MvmdbError):
    """Bad scene name, defect or scene directory (printed as one line by the CLI)."""


@dataclass
class SceneResult:
    """Files written by :func:`simulate_scene` or :func:`add_visit`."""

    name: str
    out_dir: Path
    paths: list[Path]
    truth_path: Path
    manifest_path: Path
    elapsed_s: float = 0.0
    manifest: Table | None = field(default=None, repr=False)


# ---------------------------------------------------------------------------------------
# visit plans


@dataclass
class VisitSpec:
    """One HST visit: exposures of one detector at one roll, dithered.

    ``target``: the pointing (deg) with POSTARG (0, 0); ``exposures``: (filter,
    exptime s, dither points) blocks in order; ``pattern``: POSTARG offsets (arcsec, in
    the aperture frame) of the dither points, cycled per block; ``start``: EXPSTART of
    the first exposure (MJD); ``overrides``: extra ExposureSpec fields for every
    exposure (trail, keywords, ...); ``block_overrides``: per block index.
    """

    proposid: int
    obset: str
    instrument: str
    detector: str
    exposures: list[tuple[str, float, int]]
    target: tuple[float, float]
    orientat: float
    start: float
    targname: str = "ANY"
    target_radec: tuple[float, float] | None = None
    pattern_name: str = "NONE"
    pattern: list[tuple[float, float]] = field(default_factory=lambda: [(0.0, 0.0)])
    pattern_spacing: float = 0.0
    wcsname: str | None = None
    overrides: dict = field(default_factory=dict)
    block_overrides: dict = field(default_factory=dict)
    labels: tuple[str, ...] = ()
    block_labels: dict = field(default_factory=dict)
    expected_exclusion: str = ""
    block_exclusion: dict = field(default_factory=dict)
    pi_name: str = "Simulated"


def mjd(year: int, month: int, day: float, hour: float = 0.0) -> float:
    """MJD of a UT calendar date (day may be fractional)."""
    import datetime as dt

    base = dt.datetime(year, month, 1) - dt.datetime(1858, 11, 17)
    return base.days + (day - 1) + hour / 24.0


_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"
_PROGRAM_IDS = {12286: "bl7", 12903: "c2g", 9425: "8ea", 9978: "8ur", 11359: "b6o", 12061: "bhn", 12498: "bu9"}


def program_id(proposid: int) -> str:
    """The 3-character ``ppp`` of a proposal (known ones as in the archive, else derived)."""
    if proposid in _PROGRAM_IDS:
        return _PROGRAM_IDS[proposid]
    n = (int(proposid) * 7919 + 1013) % 36**3
    return _B36[n // 1296] + _B36[(n // 36) % 36] + _B36[n % 36]


def _obs_codes(key: str, n: int) -> list[str]:
    """``n`` distinct 2-character observation ids (``oo``) for a visit."""
    start = zlib.crc32(key.encode()) % 1296
    out, k = [], 0
    while len(out) < n:
        v = (start + 389 * k) % 1296
        code = _B36[v // 36] + _B36[v % 36]
        if code not in out:
            out.append(code)
        k += 1
    return out


def dither(name: str, spacing: float, n: int) -> list[tuple[float, float]]:
    """POSTARG offsets (arcsec) of the usual patterns: LINE (along a 45-deg-ish line) or BOX."""
    if n <= 1:
        return [(0.0, 0.0)]
    if name.endswith("BOX") or name.endswith("BOX-MIN"):
        base = [(0.0, 0.0), (1.0, 0.5), (0.5, 1.5), (-0.5, 1.0)]
        return [(spacing * x, spacing * y) for x, y in base[:n]]
    # LINE: points along a line at ~ 85 deg to the x axis (ACS-WFC-DITHER-LINE style)
    ang = math.radians(85.28)
    return [(spacing * k * math.cos(ang), spacing * k * math.sin(ang)) for k in range(n)]


def expand_visit(plan: VisitSpec) -> list[tuple[ExposureSpec, str]]:
    """ExposureSpecs (and expected-exclusion strings) of a visit, in time order."""
    det = detector_model(plan.instrument, plan.detector)
    ppp = program_id(plan.proposid)
    nexp = sum(n for _, _, n in plan.exposures)
    codes = _obs_codes(f"{det.letter}{ppp}{plan.obset}", nexp)
    overhead = 60.0 if det.detector == "IR" else 120.0
    t = plan.start
    rot = focal_to_sky_matrix(plan.orientat)
    out = []
    i = 0
    for b, (filt, exptime, npts) in enumerate(plan.exposures):
        asn = f"{det.letter}{ppp}{plan.obset}0{(b % 9) + 1}0".upper()
        pattern = plan.pattern if npts > 1 else [(0.0, 0.0)]
        for k in range(npts):
            post = pattern[k % len(pattern)]
            east, north = rot @ (-np.asarray(post, float))
            ra, dec = offset_position(plan.target[0], plan.target[1], float(east), float(north))
            root = f"{det.letter}{ppp}{plan.obset}{codes[i]}q"
            labels = tuple(plan.labels) + tuple(plan.block_labels.get(b, ()))
            kw = dict(plan.overrides)
            kw.update(plan.block_overrides.get(b, {}))
            tra, tdec = plan.target_radec or plan.target
            spec = ExposureSpec(
                instrument=plan.instrument, detector=plan.detector, filter=filt, ra=ra, dec=dec,
                orientat=plan.orientat, exptime=float(exptime), expstart=round(t, 8), ipppssoot=root,
                proposid=plan.proposid, targname=plan.targname, ra_targ=tra, dec_targ=tdec,
                postarg=(round(post[0], 4), round(post[1], 4)), pattern=plan.pattern_name if npts > 1 else "NONE",
                pattern_step=k + 1, pattern_npts=npts, pattern_spacing=plan.pattern_spacing if npts > 1 else 0.0,
                asn_id=asn, linenum=f"{plan.obset.upper()}.{i + 1:03d}", wcsname=plan.wcsname,
                labels=labels, pi_name=plan.pi_name, **kw,
            )
            out.append((spec, plan.block_exclusion.get(b, plan.expected_exclusion)))
            t += (exptime + overhead) / 86400.0
            i += 1
    return out


def _off(center: tuple[float, float], east: float, north: float) -> tuple[float, float]:
    return offset_position(center[0], center[1], east, north)


_LINE_ACS = ("ACS-WFC-DITHER-LINE", 3.011)
_LINE_UVIS = ("WFC3-UVIS-DITHER-LINE", 2.417)
_BOX_IR = ("WFC3-IR-DITHER-BOX-MIN", 0.572)
_BOX_HRC = ("ACS-HRC-DITHER-BOX", 0.4)


def _plan(proposid, obset, instrument, detector, exposures, target, orientat, start, pattern=None, **kw) -> VisitSpec:
    if pattern is None:
        pattern = {"WFC": _LINE_ACS, "UVIS": _LINE_UVIS, "IR": _BOX_IR}.get(detector, _BOX_HRC)
    npts = max(n for _, _, n in exposures)
    return VisitSpec(
        proposid=proposid, obset=obset, instrument=instrument, detector=detector, exposures=list(exposures),
        target=target, orientat=orientat, start=start, pattern_name=pattern[0],
        pattern=dither(pattern[0], pattern[1], npts), pattern_spacing=pattern[1], **kw,
    )


@dataclass
class ScenePlan:
    name: str
    center: tuple[float, float]
    targname: str
    visits: list[VisitSpec]
    truth_radius: float = 210.0  # arcsec
    n_stars: int = 700
    n_galaxies: int = 40
    special: list[dict] = field(default_factory=list)
    new_visit: tuple[str, str, str] = ("WFC3", "IR", "F160W")


PG1202 = (181.1754, 27.9031)


def _pg1202() -> ScenePlan:
    c = PG1202
    name = "PG1202+281"
    acs = _off(c, -70.0, 5.0)
    ir = _off(c, -40.0, 0.0)
    uvis = _off(c, -45.0, -5.0)
    acs2 = _off(c, -72.0, -8.0)
    ir2 = _off(c, -38.0, 10.0)
    common = dict(targname=name, target_radec=c)
    visits = [
        _plan(12286, "0r", "ACS", "WFC", [("F775W", 486.0, 2), ("F850LP", 560.0, 2)], acs, 112.5,
              mjd(2011, 3, 14, 3.2), **common),
        _plan(12286, "0s", "WFC3", "IR", [("F105W", 252.9, 2), ("F125W", 252.9, 2), ("F160W", 302.9, 2)], ir,
              118.0, mjd(2011, 3, 20, 7.9), **common),
        _plan(12903, "01", "WFC3", "UVIS", [("F475W", 350.0, 3)], uvis, 245.0, mjd(2013, 1, 9, 11.4), **common),
        _plan(12903, "02", "ACS", "WFC", [("F775W", 500.0, 2)], acs2, 250.4, mjd(2013, 1, 27, 18.0), **common),
        _plan(12903, "03", "WFC3", "IR", [("F160W", 352.9, 2)], ir2, 248.0, mjd(2013, 2, 3, 5.5), **common),
    ]
    special = [dict(id=0, kind="qso", ra=c[0], dec=c[1], mag=15.6, color=-0.2)]
    return ScenePlan("pg1202", c, name, visits, special=special)


def _ra0() -> ScenePlan:
    c = (0.0, -29.95)
    name = "RA0-FIELD"
    common = dict(targname=name, target_radec=c)
    visits = [
        _plan(10496, "01", "ACS", "WFC", [("F606W", 400.0, 2), ("F814W", 400.0, 2)], _off(c, 20.0, 0.0), 47.0,
              mjd(2006, 5, 21, 2.0), **common),
        _plan(14066, "0a", "WFC3", "IR", [("F140W", 252.9, 3)], _off(c, -15.0, 10.0), 220.0, mjd(2015, 9, 2, 13.0),
              **common),
        _plan(15100, "11", "WFC3", "UVIS", [("F336W", 600.0, 2)], _off(c, 10.0, -20.0), 300.0,
              mjd(2018, 10, 17, 22.5), **common),
    ]
    return ScenePlan("ra0", c, name, visits)


def _pole() -> ScenePlan:
    c = (146.42, 89.14)
    name = "NCP-FIELD"
    common = dict(targname=name, target_radec=c)
    visits = [
        _plan(9980, "01", "ACS", "WFC", [("F814W", 500.0, 2)], _off(c, 10.0, 0.0), 10.0, mjd(2004, 3, 8, 4.0),
              **common),
        _plan(10250, "02", "ACS", "HRC", [("F435W", 600.0, 2)], _off(c, 0.0, 5.0), 150.0, mjd(2005, 6, 11, 9.0),
              **common),
        _plan(12600, "03", "WFC3", "UVIS", [("F606W", 500.0, 2)], _off(c, -10.0, 0.0), 200.0, mjd(2012, 8, 1, 15.0),
              **common),
        _plan(14400, "04", "WFC3", "IR", [("F110W", 302.9, 2)], _off(c, 0.0, -10.0), 75.0, mjd(2016, 2, 19, 1.0),
              **common),
        _plan(15700, "05", "ACS", "SBC", [("F140LP", 900.0, 2)], c, 330.0, mjd(2019, 11, 23, 20.0), **common),
    ]
    return ScenePlan("pole", c, name, visits, new_visit=("WFC3", "IR", "F110W"))


def _deep() -> ScenePlan:
    c = (53.2755, -27.8914)
    name = "CDFS-DEEP"
    common = dict(targname=name, target_radec=c)
    v = [
        _plan(9425, "01", "ACS", "WFC", [("F435W", 1050.0, 2), ("F606W", 520.0, 2)], _off(c, 10, 5), 48.0,
              mjd(2002, 9, 20, 1.0), **common),
        _plan(9425, "02", "ACS", "WFC", [("F775W", 520.0, 2), ("F850LP", 520.0, 2)], _off(c, -8, 12), 93.0,
              mjd(2002, 11, 1, 5.0), **common),
        _plan(9425, "03", "ACS", "WFC", [("F850LP", 520.0, 2)], _off(c, 4, -10), 138.0, mjd(2003, 1, 15, 8.0),
              **common),
        _plan(9978, "0a", "ACS", "WFC", [("F435W", 1200.0, 2), ("F606W", 1200.0, 2)], _off(c, -12, -6), 40.0,
              mjd(2003, 10, 1, 2.0), **common),
        _plan(9978, "0b", "ACS", "WFC", [("F775W", 1200.0, 2), ("F850LP", 1200.0, 2)], _off(c, 6, 8), 310.0,
              mjd(2003, 12, 5, 12.0), **common),
        _plan(10086, "01", "ACS", "HRC", [("F435W", 800.0, 2)], _off(c, 0, 0), 120.0, mjd(2004, 2, 10, 3.0), **common),
        _plan(11359, "22", "WFC3", "UVIS", [("F225W", 900.0, 2), ("F275W", 900.0, 2), ("F336W", 900.0, 2)],
              _off(c, 15, -5), 70.0, mjd(2009, 9, 25, 6.0), **common),
        _plan(11359, "21", "WFC3", "IR", [("F098M", 202.9, 2), ("F125W", 502.9, 2), ("F160W", 502.9, 2)],
              _off(c, 12, 0), 70.5, mjd(2009, 10, 3, 4.0), **common),
        _plan(12061, "a1", "WFC3", "IR", [("F125W", 552.9, 2), ("F160W", 552.9, 2)], _off(c, -20, 10), 65.0,
              mjd(2010, 10, 10, 10.0), **common),
        _plan(12061, "a2", "WFC3", "IR", [("F125W", 552.9, 2), ("F160W", 552.9, 2)], _off(c, -15, -15), 330.0,
              mjd(2011, 1, 5, 14.0), **common),
        _plan(12061, "a3", "ACS", "WFC", [("F606W", 600.0, 2), ("F814W", 600.0, 2)], _off(c, 5, -12), 250.0,
              mjd(2011, 11, 11, 9.0), **common),
        _plan(12061, "a4", "WFC3", "IR", [("F160W", 552.9, 2)], _off(c, 10, 20), 252.0, mjd(2012, 1, 8, 16.0),
              **common),
        _plan(12498, "01", "WFC3", "IR", [("F105W", 1302.9, 2), ("F140W", 1302.9, 2)], _off(c, 0, 5), 45.0,
              mjd(2012, 8, 20, 7.0), **common),
        _plan(12498, "02", "WFC3", "IR", [("F105W", 1302.9, 2), ("F160W", 1302.9, 2)], _off(c, 3, 2), 48.0,
              mjd(2012, 9, 15, 19.0), **common),
        _plan(13872, "01", "WFC3", "UVIS", [("F336W", 1400.0, 2), ("F275W", 1400.0, 2)], _off(c, -10, 10), 160.0,
              mjd(2014, 9, 1, 2.0), **common),
        _plan(13872, "02", "ACS", "SBC", [("F150LP", 1200.0, 2)], _off(c, 2, -3), 200.0, mjd(2014, 11, 1, 21.0),
              **common),
        _plan(13872, "03", "ACS", "WFC", [("F814W", 700.0, 3)], _off(c, -5, 0), 270.0, mjd(2014, 12, 20, 11.0),
              **common),
    ]
    return ScenePlan("deep", c, name, v, n_stars=800, n_galaxies=80)


YEARS_FIELD = (150.1, 2.2)


def _years() -> ScenePlan:
    c = YEARS_FIELD
    name = "YEARS-FIELD"
    common = dict(targname=name, target_radec=c)
    v = [
        _plan(12440, "01", "WFC3", "IR", [("F160W", 252.9, 2), ("F160W", 12.7, 1)], _off(c, 0.0, 0.0), 20.0,
              mjd(2011, 3, 10, 2.5), **common),
        _plan(12440, "02", "ACS", "WFC", [("F814W", 500.0, 2)], _off(c, 2.0, -1.0), 22.0, mjd(2011, 3, 11, 6.0),
              **common),
        _plan(12440, "03", "WFC3", "IR", [("F160W", 102.9, 2)], _off(c, -3.0, 2.0), 45.0, mjd(2011, 4, 2, 12.0),
              **common),
        _plan(13297, "01", "WFC3", "IR", [("F160W", 252.9, 2)], _off(c, 4.0, 3.0), 160.0, mjd(2013, 5, 20, 8.0),
              **common),
        _plan(14450, "01", "WFC3", "IR", [("F160W", 252.9, 2), ("F160W", 12.7, 1)], _off(c, -2.0, -4.0), 290.0,
              mjd(2016, 2, 8, 17.0), **common),
        _plan(14450, "02", "ACS", "WFC", [("F814W", 500.0, 2)], _off(c, 1.0, 4.0), 288.0, mjd(2016, 2, 9, 3.0),
              **common),
    ]
    return ScenePlan("years", c, name, v, truth_radius=150.0, n_stars=500, n_galaxies=30)


_BULK_DETECTORS = [
    # (instrument, detector, weight, first MJD, last MJD, filters)
    ("ACS", "WFC", 0.35, mjd(2002, 4, 1), mjd(2024, 6, 1), ("F435W", "F606W", "F775W", "F814W", "F850LP")),
    ("WFC3", "UVIS", 0.25, mjd(2009, 6, 1), mjd(2024, 6, 1), ("F275W", "F336W", "F475W", "F606W", "F814W")),
    ("WFC3", "IR", 0.30, mjd(2009, 6, 1), mjd(2024, 6, 1), ("F105W", "F110W", "F125W", "F140W", "F160W")),
    ("ACS", "HRC", 0.05, mjd(2002, 4, 1), mjd(2007, 1, 27), ("F250W", "F330W", "F435W", "F606W", "F814W")),
    ("ACS", "SBC", 0.05, mjd(2002, 4, 1), mjd(2024, 6, 1), ("F115LP", "F125LP", "F140LP", "F150LP", "F165LP")),
]


ACS_WFC_DOWN = (mjd(2007, 1, 27), mjd(2009, 5, 25))


def _bulk(seed: int, n_exposures: int) -> ScenePlan:
    """Visits of 2-4 exposures at random positions over the whole sky."""
    rng = np.random.default_rng(stable_seed(seed, "bulk", "plan"))
    weights = np.array([d[2] for d in _BULK_DETECTORS])
    weights /= weights.sum()
    visits = []
    total = 0
    obsets: dict[int, int] = {}
    while total < n_exposures:
        inst, det, _, t0, t1, filters = _BULK_DETECTORS[int(rng.choice(len(weights), p=weights))]
        ra = float(rng.uniform(0.0, 360.0))
        dec = float(np.degrees(np.arcsin(rng.uniform(-1.0, 1.0))))
        if rng.random() < 0.01:  # make sure the poles and RA 0 are exercised
            dec = float(np.sign(dec) * rng.uniform(88.5, 89.9))
        if rng.random() < 0.01:
            ra = float(rng.uniform(-0.02, 0.02) % 360.0)
        proposid = int(rng.integers(9000, 17500))
        k = obsets.get(proposid, 0)
        obsets[proposid] = k + 1
        obset = _B36[(k // 36) % 36] + _B36[k % 36]
        n = int(min(rng.integers(2, 5), n_exposures - total))
        filt = filters[int(rng.integers(len(filters)))]
        exptime = float(np.round(rng.uniform(100.0, 1400.0), 1))
        start = float(np.round(rng.uniform(t0, t1), 6))
        if det == "WFC" and ACS_WFC_DOWN[0] < start < ACS_WFC_DOWN[1]:  # ACS/WFC failed 2007-2009
            start = float(np.round(ACS_WFC_DOWN[1] + (start - ACS_WFC_DOWN[0]), 6))
        visits.append(_plan(proposid, obset, inst, det, [(filt, exptime, n)], (ra, dec),
                            float(np.round(rng.uniform(0, 360), 3)), start, targname=f"FIELD-{len(visits):05d}"))
        total += n
    return ScenePlan("bulk", (0.0, 0.0), "ALL-SKY", visits, n_stars=0, n_galaxies=0)


def scene_plan(name: str, seed: int = 0, n_exposures: int | None = None) -> ScenePlan:
    """The plan of a named scene (no files written)."""
    name = name.lower()
    if name == "pg1202":
        return _pg1202()
    if name == "ra0":
        return _ra0()
    if name == "pole":
        return _pole()
    if name == "deep":
        return _deep()
    if name == "bulk":
        return _bulk(seed, 1000 if n_exposures is None else int(n_exposures))
    if name == "years":
        return _years()
    raise SimulationError(f"unknown scene {name!r} (known: {', '.join(SCENES)})")


# ---------------------------------------------------------------------------------------
# truth


def make_truth(
    center: tuple[float, float],
    radius: float,
    n_stars: int,
    n_galaxies: int,
    seed: int,
    special: list[dict] | tuple = (),
    r_eff_range: tuple[float, float] = (0.2, 1.5),
) -> Table:
    """A deterministic truth table of stars and galaxies in a disc (radius in arcsec).

    Star magnitudes (AB at 6000 A) follow N(<m) ~ 10^(0.15 m) over 16.5-26.5 and colours
    -0.3..1.5; galaxies have 19-24 mag, r_eff in ``r_eff_range`` (arcsec, log-uniform,
    default 0.2-1.5), Sersic n 0.5-4, b/a 0.3-1.  ``special`` rows (dicts with ra, dec,
    mag, color, kind) come first.  Dense star fields and extended galaxies (hard cases
    for trail detection) are ``n_stars`` in the tens of thousands and a wider range.
    """
    rng = np.random.default_rng(seed)
    n = n_stars + n_galaxies
    r = radius * np.sqrt(rng.uniform(0.0, 1.0, n))
    phi = rng.uniform(0.0, 2 * math.pi, n)
    ra, dec = tan_deproject(r * np.sin(phi), r * np.cos(phi), center[0], center[1])
    lo, hi, slope = 16.5, 26.5, 0.15
    u = rng.uniform(0.0, 1.0, n_stars)
    star_mag = np.log10(10 ** (slope * lo) + u * (10 ** (slope * hi) - 10 ** (slope * lo))) / slope
    kinds = ["star"] * n_stars + ["galaxy"] * n_galaxies
    mag = np.concatenate([star_mag, rng.uniform(19.0, 24.0, n_galaxies)])
    color = np.concatenate([rng.uniform(-0.3, 1.5, n_stars), rng.uniform(0.3, 1.8, n_galaxies)])
    log_r = rng.uniform(math.log(r_eff_range[0]), math.log(r_eff_range[1]), n_galaxies)
    r_eff = np.concatenate([np.zeros(n_stars), np.exp(log_r)])
    sersic = np.concatenate([np.zeros(n_stars), rng.uniform(0.5, 4.0, n_galaxies)])
    q = np.concatenate([np.ones(n_stars), rng.uniform(0.3, 1.0, n_galaxies)])
    pa = np.concatenate([np.zeros(n_stars), rng.uniform(0.0, 180.0, n_galaxies)])
    rows_special = list(special)
    t = Table()
    t["id"] = np.arange(len(rows_special) + n, dtype=np.int64)
    t["kind"] = [s.get("kind", "star") for s in rows_special] + kinds
    t["ra"] = np.concatenate([[s["ra"] for s in rows_special], ra]) % 360.0
    t["dec"] = np.concatenate([[s["dec"] for s in rows_special], dec])
    t["mag"] = np.concatenate([[s["mag"] for s in rows_special], mag])
    t["color"] = np.concatenate([[s.get("color", 0.0) for s in rows_special], color])
    t["r_eff"] = np.concatenate([[s.get("r_eff", 0.0) for s in rows_special], r_eff])
    t["sersic_n"] = np.concatenate([[s.get("sersic_n", 0.0) for s in rows_special], sersic])
    t["axis_ratio"] = np.concatenate([[s.get("axis_ratio", 1.0) for s in rows_special], q])
    t["pa"] = np.concatenate([[s.get("pa", 0.0) for s in rows_special], pa])
    for col, unit, desc in [
        ("ra", "deg", "ICRS right ascension"), ("dec", "deg", "ICRS declination"),
        ("mag", "mag", "AB magnitude at 6000 Angstrom"), ("color", "mag", "m(l) = mag - color*log2(l/6000A)"),
        ("r_eff", "arcsec", "half-light radius along the major axis"), ("pa", "deg", "major axis PA, E of N"),
    ]:
        t[col].unit = unit
        t[col].description = desc
    return t


def empty_truth() -> Table:
    t = make_truth((0.0, 0.0), 1.0, 0, 0, 0)
    return t


# ---------------------------------------------------------------------------------------
# defects


HARD_CASES: dict[str, dict] = {
    "spikes_bleed": {"artifacts": ("spikes", "bleed")},
    "cte": {"artifacts": ("cte",)},
    "satellite": {"artifacts": ("satellite",)},
    "cosmic_rays": {"cr_factor": 4.0, "cr_flag": 0},
}
"""The ``hard_cases`` defect: one clean (usable, untrailed) exposure per entry, each with
the artifacts that fool trail detectors (ExposureSpec overrides).  Spikes and bleeds
appear only on stars that saturate: the full well per file pixel grows as K^2, so at
``downscale`` K > 1 a scene needs bright stars (mag <~ 13, e.g. ``special`` truth rows)."""


def _trail_value(value: str | None, default_pa: float) -> tuple[float, float]:
    """``'LEN'`` or ``'LEN:PA'`` of the ``trail`` defect -> (length arcsec, PA deg E of N)."""
    length_text, _, pa_text = (value or "").partition(":")
    try:
        length = float(length_text) if length_text else 4.0
        pa = float(pa_text) if pa_text else default_pa
    except ValueError:
        raise SimulationError(f"trail defect takes LEN[:PA] in arcsec and degrees, not {value!r}") from None
    if not (math.isfinite(length) and length > 0 and math.isfinite(pa)):
        raise SimulationError(f"trail length must be > 0 arcsec, not {value!r}")
    return length, pa


def parse_defects(defects) -> list[tuple[str, str | None]]:
    """``('trail', 'wcs_error:8')`` -> ``[('trail', None), ('wcs_error', '8')]`` (validated)."""
    out = []
    for item in defects or ():
        name, _, value = str(item).partition(":")
        name = name.strip().lower().replace("-", "_")
        if name not in DEFECTS:
            raise SimulationError(f"unknown defect {item!r} (known: {', '.join(DEFECTS)})")
        out.append((name, value.strip() or None))
    return out


def defect_visits(plan: ScenePlan, defects, seed: int) -> list[VisitSpec]:
    """Extra visits that carry the requested defects (appended after the scene's visits)."""
    base = plan.visits[0]
    last = max(v.start for v in plan.visits)
    rng = np.random.default_rng(stable_seed(seed, plan.name, "defects"))
    out = []
    for k, (name, value) in enumerate(parse_defects(defects)):
        obset = f"d{k + 1}"
        start = last + 20.0 + 7.0 * k
        common = dict(targname=base.targname, target_radec=base.target_radec)
        first_filter = base.exposures[0][0]
        if name == "trail":
            pa = float(np.round(rng.uniform(0.0, 180.0), 2))
            length, pa = _trail_value(value, pa)
            v = _plan(base.proposid, obset, base.instrument, base.detector, [(first_filter, 400.0, 1)], base.target,
                      base.orientat + 3.0, start, overrides={"trail": (length, pa)}, labels=("trail",),
                      expected_exclusion="guiding", **common)
        elif name == "hard_cases":
            blocks = [(first_filter, 400.0, 1) for _ in HARD_CASES]
            v = _plan(base.proposid, obset, base.instrument, base.detector, blocks, base.target, base.orientat + 1.0,
                      start, block_overrides={b: dict(kw) for b, (_, kw) in enumerate(HARD_CASES.items())},
                      block_labels={b: (f"hard_case:{hc}",) for b, hc in enumerate(HARD_CASES)}, **common)
        elif name == "wcs_error":
            npx_text, _, ang_text = (value or "").partition(":")
            npx = float(npx_text) if npx_text else 5.0
            ang = math.radians(float(ang_text) if ang_text else 30.0)
            err = (round(npx * math.cos(ang), 6), round(npx * math.sin(ang), 6))
            det = detector_model(base.instrument, base.detector)
            v = _plan(base.proposid, obset, base.instrument, base.detector, [(first_filter, 400.0, 2)], base.target,
                      base.orientat + 5.0, start, overrides={"wcs_error": err}, labels=(f"wcs_error:{npx:g}px",),
                      wcsname=f"IDC_{det.idctab}", **common)
        elif name == "grism":
            grism = (value or "G141").upper()
            if grism == "G800L":
                inst, det_name, direct = "ACS", "WFC", "F775W"
            elif grism in ("G141", "G102"):
                inst, det_name, direct = "WFC3", "IR", "F140W" if grism == "G141" else "F105W"
            else:
                raise SimulationError(f"grism defect supports G141, G102, G800L, not {grism!r}")
            ir_plans = [vp for vp in plan.visits if vp.detector == det_name] or [base]
            tgt = ir_plans[0].target
            v = _plan(base.proposid, obset, inst, det_name, [(direct, 200.0, 1), (grism, 1000.0, 1)], tgt,
                      ir_plans[0].orientat, start, block_labels={1: ("grism",)},
                      block_exclusion={1: "OBSTYPE"}, **common)
        elif name == "moving_target":
            v = _plan(base.proposid, obset, base.instrument, base.detector, [(first_filter, 300.0, 1)], base.target,
                      base.orientat - 4.0, start, overrides={"mtflag": True, "trail": (1.5, 70.0)},
                      labels=("moving_target",), expected_exclusion="MTFLAG", targname="KBO-2015-SIM",
                      target_radec=base.target)
        elif name == "gsfail":
            v = _plan(base.proposid, obset, base.instrument, base.detector, [(first_filter, 300.0, 1)], base.target,
                      base.orientat, start, overrides={"quality": "GSFAIL", "trail": (2.0, 120.0)},
                      labels=("gsfail",), expected_exclusion="QUALITY", **common)
        elif name == "spatial_scan":
            wfc3 = [vp for vp in plan.visits if vp.instrument == "WFC3"] or [base]
            vp = wfc3[0]
            if vp.instrument != "WFC3":
                raise SimulationError("spatial_scan needs a scene with WFC3 visits")
            v = _plan(vp.proposid, obset, "WFC3", vp.detector, [(vp.exposures[0][0], 200.0, 1)], vp.target,
                      vp.orientat, start,
                      overrides={"trail": (10.0, (vp.orientat + 90.0) % 360.0),
                                 "keywords": {"SCAN_TYP": "C", "SCAN_RAT": 0.05, "SCAN_LEN": 10.0}},
                      labels=("spatial_scan",), expected_exclusion="SCAN_TYP", **common)
        elif name == "charge_injection":
            uvis = [vp for vp in plan.visits if vp.detector == "UVIS"]
            tgt, orient = (uvis[0].target, uvis[0].orientat) if uvis else (base.target, base.orientat)
            v = _plan(base.proposid, obset, "WFC3", "UVIS", [("F606W", 400.0, 1)], tgt, orient, start,
                      overrides={"keywords": {"CHINJECT": "LINE17"}}, labels=("charge_injection",),
                      expected_exclusion="CHINJECT", **common)
        else:  # dark_target
            v = _plan(base.proposid, obset, base.instrument, base.detector, [(first_filter, 1000.0, 1)], base.target,
                      base.orientat, start, overrides={"sky_level": 0.0, "keywords": {"SCLAMP": "NONE"}},
                      labels=("dark_target",), expected_exclusion="TARGNAME", targname="DARK",
                      target_radec=base.target)
            v.overrides["_no_truth"] = True
        out.append(v)
    return out


# ---------------------------------------------------------------------------------------
# writing a scene


def _manifest_row(res, out_dir: Path, exclusion: str) -> dict:
    spec = res.spec
    det = spec.model
    skies = list(res.sky_level) + [float("nan")] * (2 - len(res.sky_level))
    return {
        "path": res.path.name,
        "ipppssoot": spec.rootname,
        "filetype": spec.file_type,
        "instrument": det.instrument,
        "detector": det.detector,
        "filter": spec.filter.upper(),
        "exptime": float(spec.exptime),
        "epoch": float(spec.expstart),
        "date_obs": mjd_to_datetime(spec.expstart).strftime("%Y-%m-%d"),
        "proposid": int(spec.proposid),
        "visit": spec.rootname[:6],
        "ra_aper": float(spec.ra),
        "dec_aper": float(spec.dec),
        "orientat": float(spec.orientat),
        "pa_v3": float(spec.pa_v3),
        "bunit": res.bunit,
        "sky_sci1": skies[0],
        "sky_sci2": skies[1],
        "n_cr": int(res.n_cr),
        "psf_fwhm_px": float(res.psf_fwhm),
        "wcs_dx": float(spec.wcs_error[0]),
        "wcs_dy": float(spec.wcs_error[1]),
        "trail_arcsec": float(spec.trail[0]) if spec.trail else 0.0,
        "defects": ",".join(spec.labels),
        "expected_exclusion": exclusion,
        "downscale": int(spec.downscale),
        "header_only": bool(spec.header_only),
    }


MANIFEST_COLUMNS = [
    ("path", str, None), ("ipppssoot", str, None), ("filetype", str, None), ("instrument", str, None),
    ("detector", str, None), ("filter", str, None), ("exptime", float, "s"), ("epoch", float, "d"),
    ("date_obs", str, None), ("proposid", int, None), ("visit", str, None), ("ra_aper", float, "deg"),
    ("dec_aper", float, "deg"), ("orientat", float, "deg"), ("pa_v3", float, "deg"), ("bunit", str, None),
    ("sky_sci1", float, None), ("sky_sci2", float, None), ("n_cr", int, None), ("psf_fwhm_px", float, "pix"),
    ("wcs_dx", float, "pix"), ("wcs_dy", float, "pix"), ("trail_arcsec", float, "arcsec"), ("defects", str, None),
    ("expected_exclusion", str, None), ("downscale", int, None), ("header_only", bool, None),
]


def _manifest_table(rows: list[dict], meta: dict) -> Table:
    t = Table(meta=dict(meta))
    for name, typ, unit in MANIFEST_COLUMNS:
        values = [r[name] for r in rows]
        if typ is str:
            col = np.array(values, dtype=str) if values else np.zeros(0, dtype="<U1")
        else:
            col = np.array(values, dtype=typ) if values else np.zeros(0, dtype=typ)
        t[name] = col
        if unit:
            t[name].unit = unit
    t["epoch"].description = "EXPSTART (MJD)"
    t["sky_sci1"].description = "injected flat sky of SCI,1 in the file's units (BUNIT)"
    t["sky_sci2"].description = "injected flat sky of SCI,2 in the file's units (NaN: one chip)"
    return t


def read_manifest(path: str | Path) -> Table:
    """Read ``exposures.ecsv`` (a scene directory or the file itself).

    ECSV reads empty strings back as masked values; this fills them with '' so the
    ``defects`` and ``expected_exclusion`` columns are plain strings.
    """
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_FILE
    table = Table.read(path, format="ascii.ecsv")
    for name in table.colnames:
        col = table[name]
        if getattr(col, "mask", None) is not None and col.dtype.kind in "US":
            table[name] = np.asarray(col.filled(""), dtype=str)
    return Table(table, masked=False, copy=False)


def _write_ecsv(table: Table, path: Path) -> None:
    tmp = path.with_name(path.name + ".part")
    table.write(tmp, format="ascii.ecsv", overwrite=True)
    tmp.replace(path)


def _progress(enabled: bool, total: int, label: str):
    if not enabled:
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    prog = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), transient=False)
    prog.start()
    task = prog.add_task(label, total=total)
    return prog, task


def _write_specs(specs, truth, out_dir: Path, progress: bool, label: str):
    rows, paths = [], []
    bar = _progress(progress, len(specs), label)
    try:
        for spec, exclusion in specs:
            use_truth = None if spec.keywords.pop("_no_truth", False) else truth
            res = write_exposure(spec, use_truth, out_dir / spec.filename)
            rows.append(_manifest_row(res, out_dir, exclusion))
            paths.append(res.path)
            if bar:
                bar[0].advance(bar[1])
    finally:
        if bar:
            bar[0].stop()
    return rows, paths


def _specs_for(plan_visits, *, seed, downscale, header_only, scene) -> list[tuple[ExposureSpec, str]]:
    specs = []
    for vp in plan_visits:
        no_truth = vp.overrides.pop("_no_truth", False)
        for spec, excl in expand_visit(vp):
            spec = replace(spec, seed=int(seed), downscale=int(downscale), header_only=bool(header_only), scene=scene,
                           keywords=dict(spec.keywords))
            if no_truth:
                spec.keywords["_no_truth"] = True
            specs.append((spec, excl))
    return specs


def simulate_scene(
    name: str,
    out_dir: str | Path,
    *,
    seed: int = 0,
    downscale: int = 1,
    defects=(),
    header_only: bool = False,
    progress: bool = False,
    n_exposures: int | None = None,
    proper_motion: float | None = None,
    proper_motion_pa: float = 45.0,
) -> SceneResult:
    """Write scene ``name`` into ``out_dir``: exposures, ``truth.ecsv``, ``exposures.ecsv``.

    ``seed``: integer; the same (name, seed, downscale, defects, header_only) gives
    byte-identical files.  ``downscale`` K shrinks every chip by K keeping its footprint.
    ``defects``: labels from :data:`DEFECTS`, optionally with a value
    (``'wcs_error:8'`` pixels, ``'grism:G800L'``).  ``n_exposures``: size of the ``bulk``
    scene (ignored by the others).  Existing files of the same names are overwritten.

    ``proper_motion`` (mas/yr; None: no moving star, the scene as always): one more truth
    star, bright and isolated, moving that fast towards ``proper_motion_pa`` (deg east of
    north) from its position at the scene's first EXPSTART (:mod:`.motion`); each exposure
    shows it at its mid-exposure position, listed in ``truth.ecsv`` (meta ``pm_positions``,
    :func:`mvmdb.simulate.truth.moving_positions`). Other sources do not move.
    """
    t0 = time.perf_counter()
    if not 0 <= int(seed) < MAX_SEED:
        raise SimulationError("seed must be an integer in [0, 2**32)")
    if int(downscale) < 1:
        raise SimulationError("downscale must be a positive integer")
    plan = scene_plan(name, seed, n_exposures)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    visits = list(plan.visits) + defect_visits(plan, defects, seed)
    specs = _specs_for(visits, seed=seed, downscale=downscale, header_only=header_only, scene=plan.name)
    if plan.n_stars or plan.n_galaxies:
        truth = make_truth(plan.center, plan.truth_radius, plan.n_stars, plan.n_galaxies,
                           stable_seed(seed, plan.name, "truth"), plan.special)
    else:
        truth = empty_truth()
    if proper_motion is not None:
        if not (plan.n_stars or plan.n_galaxies):
            raise SimulationError(f"scene {plan.name!r} has no sky truth to put a moving star in")
        add_moving_star(truth, [s for s, _ in specs], plan.center, float(proper_motion), float(proper_motion_pa))
        record_positions(truth, [s for s, _ in specs])
    add_flux_columns(truth, sorted({(s.model.key, s.filter.upper()): (s.model, s.filter_info)
                                    for s, _ in specs}.values(), key=lambda p: flux_column(*p)))
    truth.meta.update({"scene": plan.name, "seed": int(seed), "center_ra": plan.center[0],
                       "center_dec": plan.center[1], "radius_arcsec": plan.truth_radius})
    truth_path = out / TRUTH_FILE
    _write_ecsv(truth, truth_path)
    rows, paths = _write_specs(specs, truth, out, progress, f"simulate {plan.name}")
    meta = {"scene": plan.name, "seed": int(seed), "downscale": int(downscale), "header_only": bool(header_only),
            "defects": [str(d) for d in defects or ()], "center_ra": plan.center[0], "center_dec": plan.center[1],
            "added_visits": 0, "generator": "mvmdb.simulate"}
    manifest = _manifest_table(rows, meta)
    manifest_path = out / MANIFEST_FILE
    _write_ecsv(manifest, manifest_path)
    return SceneResult(plan.name, out, paths, truth_path, manifest_path, time.perf_counter() - t0, manifest)


_FOOTPRINT_RANK = {"WFC": 0, "UVIS": 1, "IR": 2, "HRC": 3, "SBC": 4}


def add_visit(
    out_dir: str | Path,
    *,
    seed: int | None = None,
    instrument: str | None = None,
    detector: str | None = None,
    filter: str | None = None,
    n_exposures: int = 2,
    exptime: float | None = None,
    progress: bool = False,
) -> SceneResult:
    """Add one new visit to an existing scene directory, inside the scene's footprint box.

    The visit points (within 2") at an existing exposure of the widest detector present
    (ACS/WFC when there is one) with that exposure's roll, so a smaller detector's
    footprint (the default is the scene's WFC3/IR filter, e.g. F160W for pg1202) lies
    inside it: the sky cell's common box does not grow.  Its epoch is 30-120 days after
    the latest exposure, its proposal is new (17100 + n).  With ``seed=None`` the seed is
    derived from the scene seed and the number of visits already added, so repeating the
    same calls reproduces the same files.  ``truth.ecsv`` gains a flux column if the
    filter is new; ``exposures.ecsv`` gets the new rows.  Returns the new files only.
    """
    t0 = time.perf_counter()
    out = Path(out_dir)
    manifest_path, truth_path = out / MANIFEST_FILE, out / TRUTH_FILE
    manifest, truth, meta, scene = _read_scene(out)
    n_added = int(meta.get("added_visits", 0))
    base_seed = int(meta.get("seed", 0))
    vseed = stable_seed(base_seed, "new-visit", n_added) if seed is None else stable_seed(int(seed), "new-visit")
    rng = np.random.default_rng(vseed)
    ref = _widest_clean_exposure(manifest, rng)
    det, filt = _new_visit_detector(scene, base_seed, instrument, detector, filter)
    r = 2.0 * math.sqrt(rng.uniform())
    phi = rng.uniform(0, 2 * math.pi)
    target = offset_position(float(ref["ra_aper"]), float(ref["dec_aper"]), r * math.sin(phi), r * math.cos(phi))
    start = float(np.max(manifest["epoch"])) + float(rng.uniform(30.0, 120.0))
    proposid = 17100 + n_added
    texp = float(exptime) if exptime else float(np.round(rng.uniform(250.0, 900.0), 1))
    vp = _plan(proposid, "01", det.instrument, det.detector, [(filt, texp, int(n_exposures))], target,
               float(ref["orientat"]), round(start, 6), targname=scene.upper() + "-NEW", target_radec=target)
    downscale = int(meta.get("downscale", 1))
    header_only = bool(meta.get("header_only", False))
    specs = _specs_for([vp], seed=vseed[0], downscale=downscale, header_only=header_only, scene=scene)
    existing = set(str(p) for p in manifest["ipppssoot"])
    for spec, _ in specs:
        if spec.rootname in existing:
            raise SimulationError(f"{spec.rootname} already exists in {out}")
    changed = bool(add_flux_columns(truth, [(det, det.filter(filt))]))
    if has_proper_motion(truth):
        record_positions(truth, [s for s, _ in specs])
        changed = True
    if changed:
        _write_ecsv(truth, truth_path)
    rows, paths = _write_specs(specs, truth, out, progress, f"add visit to {scene}")
    old_rows = [dict(zip(manifest.colnames, [row[c] for c in manifest.colnames])) for row in manifest]
    meta["added_visits"] = n_added + 1
    new_manifest = _manifest_table(old_rows + rows, meta)
    _write_ecsv(new_manifest, manifest_path)
    return SceneResult(scene, out, paths, truth_path, manifest_path, time.perf_counter() - t0, new_manifest)


def _read_scene(out: Path) -> tuple[Table, Table, dict, str]:
    """(manifest, truth, manifest meta, scene name) of a scene directory that can take a new visit."""
    manifest_path, truth_path = out / MANIFEST_FILE, out / TRUTH_FILE
    if not manifest_path.is_file() or not truth_path.is_file():
        raise SimulationError(f"{out} is not a scene directory (no {MANIFEST_FILE} / {TRUTH_FILE})")
    manifest = read_manifest(manifest_path)
    truth = Table.read(truth_path, format="ascii.ecsv")
    meta = dict(manifest.meta)
    scene = str(meta.get("scene", "custom"))
    if scene == "bulk":
        raise SimulationError("add_visit needs a compact scene; 'bulk' spreads over the whole sky")
    return manifest, truth, meta, scene


def _widest_clean_exposure(manifest: Table, rng: np.random.Generator):
    """A manifest row of a defect-free exposure of the widest detector present (drawn with ``rng``)."""
    clean = [i for i in range(len(manifest)) if not str(manifest["defects"][i]).strip()]
    if not clean:
        raise SimulationError("the scene has no clean exposure to place a new visit on")
    ranks = [_FOOTPRINT_RANK.get(str(manifest["detector"][i]), 9) for i in clean]
    widest = [i for i, r in zip(clean, ranks) if r == min(ranks)]
    return manifest[widest[int(rng.integers(len(widest)))]]


def _new_visit_detector(scene: str, base_seed: int, instrument: str | None, detector: str | None,
                        filter: str | None):
    """(detector model, filter) of a new visit: the given ones, else the scene's default new visit."""
    try:
        default_new = scene_plan(scene, base_seed).new_visit
    except SimulationError:
        default_new = ("WFC3", "IR", "F160W")
    inst = (instrument or default_new[0]).upper()
    det_name = (detector or (default_new[1] if instrument is None else None) or "").upper()
    if not det_name:
        raise SimulationError("give the detector together with the instrument")
    det = detector_model(inst, det_name)
    filt = (filter or (default_new[2] if (inst, det_name) == default_new[:2] else next(iter(det.filters)))).upper()
    det.filter(filt)
    return det, filt
