"""The HST archive's MVM conventions as pure functions (no I/O, no database).

Everything here follows ``/work/shared/spec/archive-conventions.md`` (the spec):

* :func:`normalize_filter` -- filter names (§3.2), e.g. ``CLEAR1L;F814W`` -> ``f814w``;
* :func:`program_id`, :func:`obset_id`, :func:`instrument_from_rootname` -- poller columns (§3.1, §4.2);
* :func:`exclusion_reason` -- which exposures never join a layer (§4.4, §4.5), as a
  human-readable reason string, or ``None`` when the exposure is usable;
* :func:`catalog_exclusion` -- :func:`exclusion_reason`'s content part plus what a poller line
  needs of the header (a PROPOSID); with :data:`FILTER_RE` / :func:`filter_problem` (filter
  names never hold path characters), :func:`proposal_id`, :func:`int_problem` (integer keywords
  in their columns' range), :func:`path_problem` / :func:`display_path` (paths the catalog and a
  poller can hold; non-UTF-8 names printable) and :func:`catalog_filename` (the poller's
  filename column), the ONE definition that ingest, the planner and the poller reader share:
  whatever ingest accepts, the planner can list (issue 15);
* :func:`parse_switch` -- the ``MVM_INCLUDE_SMALL`` / ``MVM_ONLY_CTE`` switch values (§4.5);
* :func:`layer_scales`, :func:`layer_name`, :func:`product_filename`,
  :func:`layer_filetype` -- layers and their product names (§4.2, §4.3);
  :func:`layer_term` and :func:`parse_layer_name` extend the names to the time-domain
  layer sets of :mod:`mvmdb.layersets` (year, exposure-time class, epoch).

Exclusion order. The content rules of §4.4 come first, in the archive's order (first match
wins); then the ingest-level rule "superseded by the FLC" (see :mod:`mvmdb.ingest`); then the
switches. Content reasons therefore never depend on the switches, which lets a re-ingest
re-evaluate only switch-dependent reasons from catalog columns (:func:`is_content_reason`).
Reason strings read ``"<category> (<detail>)"``; :func:`reason_category` gives the part
used to count exclusions by kind.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from mvmdb import layersets
from mvmdb.layersets import ALL_KEY

__all__ = [
    "INSTRUMENTS",
    "DETECTORS",
    "SMALL_DETECTORS",
    "CTE_DETECTORS",
    "SUPERSEDED_PREFIX",
    "normalize_filter",
    "raw_filter_string",
    "program_id",
    "obset_id",
    "instrument_from_rootname",
    "canonical_detector",
    "finite_float",
    "exclusion_reason",
    "content_exclusion",
    "catalog_exclusion",
    "FILTER_RE",
    "filter_problem",
    "MAX_PROPOSID",
    "proposal_id",
    "POLLER_FORBIDDEN_RE",
    "EXPOSURE_FILENAME_RE",
    "MAX_PATH_BYTES",
    "path_problem",
    "display_path",
    "catalog_filename",
    "INT_RANGES",
    "int_problem",
    "switch_exclusion",
    "superseded_reason",
    "is_content_reason",
    "reason_category",
    "parse_switch",
    "switch_from_env",
    "layer_scales",
    "layer_term",
    "layer_name",
    "LayerNameParts",
    "parse_layer_name",
    "layer_filetype",
    "product_filename",
    "is_ipppssoot",
    "WCS_FAMILIES",
    "wcs_family",
]

INSTRUMENTS = ("ACS", "WFC3", "WFPC2")
"""Instruments with MVM layers (upper case, as INSTRUME)."""

DETECTORS: dict[str, tuple[str, ...]] = {"ACS": ("WFC", "HRC", "SBC"), "WFC3": ("UVIS", "IR"), "WFPC2": ("PC",)}
"""Detectors per instrument (upper case). WFPC2 has one layer detector, ``PC`` (§4.3: forced)."""

SMALL_DETECTORS = frozenset({("ACS", "HRC"), ("ACS", "SBC")})
"""Dropped when ``MVM_INCLUDE_SMALL`` is false (§4.5)."""

CTE_DETECTORS = frozenset({("ACS", "WFC"), ("WFC3", "UVIS")})
"""Detectors with CTE-corrected FLC files; their FLTs are dropped when ``MVM_ONLY_CTE`` is true (§4.5)."""

SUPERSEDED_PREFIX = "superseded by "
"""Start of the reason given to an FLT whose FLC is in the catalog too."""

_CALIBRATION_TARGETS = ("DARK", "TUNG", "BIAS", "FLAT", "DEUT", "EARTH-CAL")
_INSTRUMENT_LETTERS = {"i": "WFC3", "j": "ACS", "o": "STIS", "u": "WFPC2", "x": "FOC", "w": "WFPC"}

_SWITCH_TRUE = frozenset({"on", "yes", "true"})
_SWITCH_FALSE = frozenset({"off", "no", "false"})


# --------------------------------------------------------------------------- filters


def normalize_filter(raw: str) -> str:
    """The archive's filter name (spec §3.2, ``poller_utils.determine_filter_name``).

    ``raw`` is ``"FILTER1;FILTER2"`` (ACS), ``"FILTNAM1;FILTNAM2"`` (WFPC2) or ``FILTER``
    (WFC3). Lower-case; split on ';'; keep the first 2 tokens (SBC's spurious third);
    drop tokens containing ``clear`` or ``n/a`` (none left -> ``clear``); a polariser
    (``pol...``) goes second; join with '-' and strip a trailing '-'.

    >>> normalize_filter("CLEAR1L;F814W"), normalize_filter("POL0UV;F330W")
    ('f814w', 'f330w-pol0uv')
    """
    tokens = [t.strip() for t in str(raw).lower().split(";")][:2]
    tokens = [t for t in tokens if "clear" not in t and "n/a" not in t]
    if not tokens:
        return "clear"
    if tokens[0].startswith("pol"):
        tokens = tokens[::-1]
    return "-".join(tokens).strip("-") or "clear"


def raw_filter_string(keywords: Mapping[str, Any]) -> str:
    """The §3.1 column-6 filter string of a primary header, upper-cased.

    ACS ``"FILTER1;FILTER2"``; WFPC2 ``"FILTNAM1;FILTNAM2"``; WFC3 (and anything else) ``FILTER``.
    Missing keywords count as empty strings.
    """
    inst = str(keywords.get("INSTRUME", "")).strip().upper()

    def kw(name: str) -> str:
        v = keywords.get(name)
        return "" if v is None else str(v).strip()

    if inst == "ACS":
        return f"{kw('FILTER1')};{kw('FILTER2')}".upper()
    if inst == "WFPC2":
        return f"{kw('FILTNAM1')};{kw('FILTNAM2')}".upper()
    return kw("FILTER").upper()


# --------------------------------------------------------------------------- identifiers


def program_id(filename: str) -> str:
    """Poller column 3 (§3.1): characters 1-3 of the ``_``-token [-2] of ``filename``, upper-cased.

    ``ib4606c5q_flc.fits`` -> ``B46``; ``hst_12286_0r_acs_wfc_f775w_jbl70rtv_flc.fits`` -> ``BL7``.
    Give it the pipeline name ``<ipppssoot>_<flt|flc>.fits`` (files on disk may be named otherwise).
    """
    tokens = str(filename).split("_")
    token = tokens[-2] if len(tokens) >= 2 else tokens[0]
    return token[1:4].upper()


def obset_id(rootname: str, instrument: str, primesi: str | None = None, linenum: str | None = None) -> str:
    """Poller column 4 (§3.1).

    If ``PRIMESI.lower() == INSTRUME`` -- only possible for WFPC2, whose INSTRUME is forced to
    ``'wfpc2'`` while ACS/WFC3 keep upper case -- the part of LINENUM before '.'; otherwise
    ``ROOTNAME[-5:-3]`` upper-cased (the ``ss`` of ``ipppssoot``).
    """
    inst = "wfpc2" if str(instrument).strip().upper() == "WFPC2" else str(instrument).strip()
    if primesi is not None and str(primesi).strip().lower() == inst and linenum is not None:
        value = str(linenum).strip().split(".")[0]
        if len(value) == 2 and value.isalnum():  # anything else cannot be an obset id
            return value.upper()
    return str(rootname).strip()[-5:-3].upper()


def instrument_from_rootname(rootname: str) -> str | None:
    """Instrument from the first letter of an ipppssoot (§4.2): i WFC3, j ACS, o STIS, u WFPC2, x FOC, w WFPC."""
    name = str(rootname).strip().lower()
    return _INSTRUMENT_LETTERS.get(name[:1]) if name else None


def canonical_detector(instrument: str, detector: str | None) -> str:
    """The layer detector, upper case: DETECTOR as given, except WFPC2 -> ``PC`` (§4.3)."""
    if str(instrument).strip().upper() == "WFPC2":
        return "PC"
    return str(detector or "").strip().upper()


# --------------------------------------------------------------------------- exclusions


def _text(keywords: Mapping[str, Any], name: str) -> str:
    v = keywords.get(name)
    return "" if v is None else str(v).strip()


def _is_true(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().upper() in ("T", "TRUE", "Y", "YES", "1")


def finite_float(value: Any, *, strings: bool = True) -> float | None:
    """A header value as a finite float, else ``None`` (also for booleans, ``None``, NaN, infinities).

    A numeric string counts (``"12.5"`` -> 12.5) unless ``strings=False``.
    """
    if isinstance(value, bool) or (not strings and isinstance(value, str)):
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def content_exclusion(keywords: Mapping[str, Any]) -> str | None:
    """The first §4.4 rule a primary header matches, as a reason; ``None`` if it matches none.

    ``keywords``: primary-header keywords (a ``fits.Header`` or a dict; upper-case names).
    Rules, in the archive's order: not imaging (``OBSTYPE != IMAGING``; WFPC2
    ``IMAGETYP != EXT``); ``DRIZCORR`` OMIT/SKIPPED; moving target (``MTFLAG`` true; the
    archive tests ``== 'T'`` except for WFPC2, a FITS logical T counts here too); WFC3 spatial
    scan (``SCAN_TYP`` C or D); calibration target (``TARGNAME`` containing DARK, TUNG,
    BIAS, FLAT, DEUT, EARTH-CAL; not WFPC2, whose calibrations fail the IMAGETYP rule);
    exposure time ~0 (``|EXPTIME| <= 1e-5`` s, or not a number) or negative; WFC3/UVIS charge injection
    (``CHINJECT`` present and not NONE); grism/prism (a filter token starting with ``G`` or
    ``PR``), SBC internal calibration (``BLOCK``), ramp filter (``FR``); guide-star trouble
    (``QUALITY`` containing gsfail or tdf-down, case-insensitive). The archive's image-based
    trail test and all-zero-array check need pixels and are not applied (ingest reads headers).
    """
    inst = _text(keywords, "INSTRUME").upper()
    det = _text(keywords, "DETECTOR").upper()
    if inst == "WFPC2":
        imagetyp = _text(keywords, "IMAGETYP").upper()
        if imagetyp != "EXT":
            return f"not imaging (IMAGETYP={imagetyp or 'missing'})"
    else:
        obstype = _text(keywords, "OBSTYPE").upper()
        if obstype != "IMAGING":
            return f"not imaging (OBSTYPE={obstype or 'missing'})"
    drizcorr = _text(keywords, "DRIZCORR").upper()
    if drizcorr in ("OMIT", "SKIPPED"):
        return f"drizzling not done (DRIZCORR={drizcorr})"
    mtflag = keywords.get("MTFLAG")
    if mtflag is not None and _is_true(mtflag):
        return "moving target (MTFLAG=T)"
    if inst == "WFC3":
        scan = _text(keywords, "SCAN_TYP").upper()
        if scan in ("C", "D"):
            return f"spatial scan (SCAN_TYP={scan})"
    if inst != "WFPC2":
        target = _text(keywords, "TARGNAME").upper()
        for word in _CALIBRATION_TARGETS:
            if word in target:
                return f"calibration target (TARGNAME={target})"
    exptime = finite_float(keywords.get("EXPTIME"))
    if exptime is None or math.isclose(exptime, 0.0, abs_tol=1e-5):
        return f"zero exposure time (EXPTIME={keywords.get('EXPTIME')})"
    if exptime < 0:
        return f"negative exposure time (EXPTIME={keywords.get('EXPTIME')})"
    if inst == "WFC3" and det == "UVIS":
        chinject = _text(keywords, "CHINJECT").upper()
        if chinject and chinject != "NONE":
            return f"charge injection (CHINJECT={chinject})"
    for token in raw_filter_string(keywords).split(";"):
        token = token.strip()
        if token.startswith(("G", "PR")):
            return f"grism or prism (filter {token})"
        if token.startswith("BLOCK"):
            return f"SBC internal calibration (filter {token})"
        if token.startswith("FR"):
            return f"ramp filter (filter {token})"
    quality = _text(keywords, "QUALITY").lower()
    for flag in ("gsfail", "tdf-down"):
        if flag in quality:
            return f"guide star problem (QUALITY={_text(keywords, 'QUALITY')})"
    return None


def catalog_exclusion(keywords: Mapping[str, Any]) -> str | None:
    """:func:`content_exclusion`, then what a poller line needs of the header (spec §3.1):
    a proposal id (``PROPOSID`` an integer in ``0 .. 2**31-1``, :func:`proposal_id`).

    What ingest stores as an exposure's content reason, so that the planner never meets
    a usable exposure it cannot list (``"no proposal id (PROPOSID=...)"``).
    """
    reason = content_exclusion(keywords)
    if reason is not None:
        return reason
    if proposal_id(keywords.get("PROPOSID")) is None:
        return f"no proposal id (PROPOSID={keywords.get('PROPOSID')})"
    return None


def switch_exclusion(
    instrument: str, detector: str, filetype: str, *, include_small: bool = True, only_cte: bool = False
) -> str | None:
    """The §4.5 switch rules: HRC/SBC without ``MVM_INCLUDE_SMALL``; UVIS/WFC FLTs with ``MVM_ONLY_CTE``."""
    key = (str(instrument).strip().upper(), canonical_detector(instrument, detector))
    if not include_small and key in SMALL_DETECTORS:
        return f"small detector (ACS/{key[1]}, MVM_INCLUDE_SMALL=false)"
    if only_cte and key in CTE_DETECTORS and str(filetype).strip().lower() != "flc":
        return f"not CTE-corrected ({key[0]}/{key[1]} FLT, MVM_ONLY_CTE=true)"
    return None


def superseded_reason(ipppssoot: str) -> str:
    """Reason of an FLT whose FLC is catalogued: ``'superseded by <ipppssoot>_flc.fits'``."""
    return f"{SUPERSEDED_PREFIX}{ipppssoot.lower()}_flc.fits"


def exclusion_reason(
    keywords: Mapping[str, Any], *, include_small: bool = True, only_cte: bool = False, filetype: str = "flt"
) -> str | None:
    """Why an exposure may not join MVM layers, or ``None`` if it may.

    :func:`content_exclusion` first, then :func:`switch_exclusion` (``include_small`` is the
    parsed ``MVM_INCLUDE_SMALL``, default true; ``only_cte`` the parsed ``MVM_ONLY_CTE``,
    default false; ``filetype`` ``'flt'`` or ``'flc'``).
    """
    reason = content_exclusion(keywords)
    if reason is not None:
        return reason
    inst = _text(keywords, "INSTRUME").upper()
    return switch_exclusion(
        inst, canonical_detector(inst, _text(keywords, "DETECTOR")), filetype,
        include_small=include_small, only_cte=only_cte,
    )


def is_content_reason(reason: str | None) -> bool:
    """True for a reason from :func:`content_exclusion` (fixed by the file's content alone)."""
    if reason is None:
        return False
    return not (
        reason.startswith(SUPERSEDED_PREFIX)
        or reason.startswith("small detector (")
        or reason.startswith("not CTE-corrected (")
    )


def reason_category(reason: str) -> str:
    """The kind of a reason, for counting: the text before `` (`` (``'superseded'`` for supersession)."""
    if reason.startswith(SUPERSEDED_PREFIX):
        return "superseded"
    return reason.split(" (", 1)[0]


# --------------------------------------------------------------------------- what the catalog and the planner need

FILTER_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")
"""A normalized filter name (:func:`normalize_filter`) that may become part of a product name:
lower-case letters, digits and '-', at most 40 characters. Never '/', '.', blanks or any
other path character (the filter is a component of :func:`layer_name`)."""

MAX_PROPOSID = 2**31 - 1
"""The largest proposal id the catalog (``integer``) and the poller hold."""

POLLER_FORBIDDEN_RE = re.compile("[,\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
"""A comma or anything ``str.splitlines`` takes for a line break: never inside a poller field."""

EXPOSURE_FILENAME_RE = re.compile(r"[^/\\]+_fl[tc]\.fits", re.IGNORECASE)
"""A poller's filename column (spec §3.1): an FLT/FLC file name, no directory."""

MAX_PATH_BYTES = 4095
"""The longest path the operating system opens (``PATH_MAX`` 4096 with its NUL)."""

INT_RANGES: dict[str, tuple[int, int]] = {
    "EXTVER": (1, 2**15 - 1), "NAXIS1": (0, 2**31 - 1), "NAXIS2": (0, 2**31 - 1),
    "PROPOSID": (0, MAX_PROPOSID),
}
"""Integer header keywords stored in the catalog, and the range its columns hold (``[lo, hi]``)."""


def filter_problem(name: str) -> str | None:
    """What is wrong with a normalized filter name (:data:`FILTER_RE`), or None."""
    if FILTER_RE.fullmatch(str(name)):
        return None
    return f"filter {name!r} is not a filter name (letters, digits and '-' only, at most 40)"


def proposal_id(value: Any) -> int | None:
    """``PROPOSID`` as the catalog stores it: an integer (or a string of digits) in ``0 .. 2**31-1``, else None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if not text.isdigit():
            return None
        value = int(text)
    if not isinstance(value, int):
        return None
    return value if 0 <= value <= MAX_PROPOSID else None


def int_problem(keyword: str, value: Any) -> str | None:
    """What is wrong with an integer keyword of :data:`INT_RANGES` (not an integer, out of range), or None."""
    lo, hi = INT_RANGES[keyword]
    if isinstance(value, bool) or not isinstance(value, int):
        return f"{keyword} {value!r} is not an integer"
    if not lo <= value <= hi:
        return f"{keyword} {value} is out of range ({lo} .. {hi})"
    return None


def display_path(path: str | bytes) -> str:
    """A path as text that can always be printed and stored: bytes that are not UTF-8 (kept by
    ``os.fsdecode`` as surrogates) become ``\\xNN`` escapes; valid paths are unchanged."""
    if isinstance(path, bytes):
        return path.decode("utf-8", "backslashreplace")
    try:
        path.encode("utf-8")
        return path
    except UnicodeEncodeError:
        return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def path_problem(path: str) -> str | None:
    """Why a file at ``path`` cannot be catalogued whatever it holds, or None.

    Its name is not valid UTF-8 (the catalog stores text), the path is longer than the
    system opens (:data:`MAX_PATH_BYTES`), or it holds a comma or a line break, which the
    poller's comma-separated lines cannot carry (:data:`POLLER_FORBIDDEN_RE`).
    """
    try:
        size = len(path.encode("utf-8"))
    except UnicodeEncodeError:
        return "the file name is not valid UTF-8 (the catalog stores text; rename the file)"
    if size > MAX_PATH_BYTES:
        return f"path too long ({size} bytes; the system opens at most {MAX_PATH_BYTES})"
    if POLLER_FORBIDDEN_RE.search(path):
        return "the path holds a comma or a line break, which a poller file cannot list"
    return None


def catalog_filename(path: str, ipppssoot: str, filetype: str) -> str:
    """The exposure's ``filename`` column, the poller's column 1: the file's own name when it is an
    FLT/FLC name (:data:`EXPOSURE_FILENAME_RE`) of the right type, else the pipeline name
    ``<ipppssoot>_<filetype>.fits`` (a renamed file, its type known from ``FILENAME``)."""
    name = str(path).replace("\\", "/").rsplit("/", 1)[-1]
    if EXPOSURE_FILENAME_RE.fullmatch(name) and name[-8:-5].lower() == filetype:
        return name
    return f"{ipppssoot}_{filetype}.fits"


# --------------------------------------------------------------------------- switches


def parse_switch(value: str | bool | None, *, name: str = "switch", default: bool | None = None) -> bool:
    """An archive switch value (§4.5): on/yes/true -> True, off/no/false -> False.

    Stripped and case-insensitive. ``None`` (unset) gives ``default`` when one is given.
    Anything else raises ``ValueError`` naming ``name`` and the accepted values.
    """
    if isinstance(value, bool):
        return value
    if value is None:
        if default is None:
            raise ValueError(f"{name} is not set: use one of on/yes/true or off/no/false")
        return default
    text = str(value).strip().lower()
    if text in _SWITCH_TRUE:
        return True
    if text in _SWITCH_FALSE:
        return False
    raise ValueError(f"{name}={value!r} is not a switch value: use one of on/yes/true or off/no/false")


def switch_from_env(environ: Mapping[str, str], name: str, default: bool) -> bool:
    """Parse environment variable ``name`` (e.g. ``MVM_INCLUDE_SMALL``) with :func:`parse_switch`; unset -> default."""
    return parse_switch(environ.get(name), name=name, default=default)


# --------------------------------------------------------------------------- layers and products


def layer_scales(instrument: str, detector: str) -> tuple[str, ...]:
    """Plate scales of an instrument/detector's layers (§4.2).

    WFC3/IR and WFPC2 (detector PC): ``('coarse', 'fine')`` -- 0.12"/px plus its fine
    0.04"/px twin; everything else ``('fine',)``.
    """
    inst = str(instrument).strip().upper()
    det = canonical_detector(inst, detector)
    if (inst, det) in (("WFC3", "IR"), ("WFPC2", "PC")):
        return ("coarse", "fine")
    return ("fine",)


def layer_term(scale: str, key: str = ALL_KEY) -> str:
    """The ``<layerstr>`` term of a product name (§4.3), extended to time-domain layers.

    ``key`` is a layer key (:mod:`mvmdb.layersets`): ``all`` (the archive's layer),
    a year ``2011``, an exposure-time class ``short``/``med``/``long`` or an epoch
    ``YYYYMMDD-YYYYMMDD``; coarse layers prefix ``coarse-`` as the archive does for
    ``coarse-all``: ``coarse-2011``, ``coarse-short``, ``coarse-20110101-20111231``.
    """
    if scale not in ("fine", "coarse"):
        raise ValueError(f"scale must be 'fine' or 'coarse', not {scale!r}")
    key = str(key)
    layersets.layer_set_of_key(key)  # validates
    return f"coarse-{key}" if scale == "coarse" else key


def layer_name(skycell_name: str, instrument: str, detector: str, filter: str, scale: str,
               key: str = ALL_KEY) -> str:
    """Product basename of a layer (§4.3), without the ``_drz``/``_drc`` suffix.

    ``hst_<skycell-name>_<instr>_<det>_<filter>_<all|coarse-all>``, lower case, WFPC2's
    detector forced to ``pc``: ``hst_skycell-p1889x07y19_wfc3_ir_f160w_coarse-all``.
    ``filter`` is the normalized name (:func:`normalize_filter`). ``key`` selects a
    time-domain layer (:func:`layer_term`): ``..._f160w_2011``, ``..._f160w_coarse-short``.
    """
    inst = str(instrument).strip().lower()
    det = canonical_detector(instrument, detector).lower()
    return f"hst_{skycell_name}_{inst}_{det}_{filter}_{layer_term(scale, key)}"


@dataclass(frozen=True)
class LayerNameParts:
    """The parts of a layer product name (:func:`parse_layer_name`); all lower case."""

    skycell: str
    instrument: str
    detector: str
    filter: str
    scale: str
    layer_set: str
    key: str
    filetype: str | None = None


_LAYER_NAME_RE = re.compile(
    r"^hst_(?P<skycell>skycell-p\d{4}x\d{2}y\d{2})_(?P<instrument>[a-z0-9]+)_(?P<detector>[a-z0-9]+)"
    r"_(?P<filter>[a-z0-9-]+)_(?P<coarse>coarse-)?(?P<key>[a-z0-9-]+?)(?:_(?P<suffix>drz|drc)\.fits)?$"
)


def parse_layer_name(name: str) -> LayerNameParts:
    """Inverse of :func:`layer_name` / :func:`product_filename`: the parts of a layer basename
    or product file name (``..._f160w_coarse-2011_drz.fits``). ``filetype`` is ``'flc'`` for
    ``_drc.fits``, ``'flt'`` for ``_drz.fits``, ``None`` for a bare basename. Raises
    ``ValueError`` for anything else (directories are not stripped: pass a file name)."""
    m = _LAYER_NAME_RE.match(str(name))
    if not m:
        raise ValueError(f"{name!r} is not an MVM layer product name")
    key = m["key"]
    try:
        layer_set = layersets.layer_set_of_key(key)
    except ValueError:
        raise ValueError(f"{name!r} is not an MVM layer product name (unknown layer {key!r})") from None
    suffix = m["suffix"]
    return LayerNameParts(
        m["skycell"], m["instrument"], m["detector"], m["filter"], "coarse" if m["coarse"] else "fine",
        layer_set, key, None if suffix is None else ("flc" if suffix == "drc" else "flt"),
    )


def layer_filetype(filetypes: Iterable[str]) -> str:
    """The one file type a layer is drizzled from (§4.2 ``select_common_filetype``):
    ``'flc'`` if any member is an FLC, else ``'flt'`` (FLT and FLC are never mixed)."""
    return "flc" if any(str(f).strip().lower() == "flc" for f in filetypes) else "flt"


def product_filename(layer_name: str, filetype: str) -> str:
    """``<layer_name>_drc.fits`` when the layer is drizzled from FLCs, else ``<layer_name>_drz.fits``."""
    ft = str(filetype).strip().lower()
    if ft not in ("flt", "flc"):
        raise ValueError(f"filetype must be 'flt' or 'flc', not {filetype!r}")
    return f"{layer_name}_{'drc' if ft == 'flc' else 'drz'}.fits"


_IPPPSSOOT_RE = re.compile(r"^[a-z0-9]{9}$")


def is_ipppssoot(name: str) -> bool:
    """True for a 9-character lower-case alphanumeric pipeline rootname (``ib4606c5q``)."""
    return bool(_IPPPSSOOT_RE.match(str(name)))


WCS_FAMILIES = ("gaia-fit", "a-priori", "pipeline-default", "other")
"""The WCS solution families of :func:`wcs_family`, from best to least absolute astrometry
(``other``: a name none of the archive's patterns matches, e.g. a user's own tweak)."""

_WCS_FIT_RE = re.compile(r"(^|-)FIT_(IMG|REL|SVM|EVM)_[A-Z0-9]+$|(^|-)FIT_[A-Z]+_GAIA", re.IGNORECASE)
_WCS_APRIORI_RE = re.compile(r"^IDC_[A-Z0-9]+-(GSC\d+|HSC\d+|GAIA[A-Z0-9]*)$", re.IGNORECASE)
_WCS_DEFAULT_RE = re.compile(r"^(IDC_[A-Z0-9]+|OPUS|OPUS_[A-Z0-9_]*|DEFAULT)$", re.IGNORECASE)


def wcs_family(wcsname: str | None) -> str:
    """The solution family of an exposure's active WCS from its WCSNAME.

    * ``gaia-fit``: aligned a posteriori to an absolute catalog (Gaia in practice):
      ``IDC_<idctab>-FIT_<IMG|REL|SVM|EVM>_<catalog>``, e.g. ``IDC_4bb1536cj-FIT_IMG_GAIAeDR3``,
      ``IDC_2731450pi-FIT_REL_GAIADR2``, ``IDC_w3m18525i-FIT_SVM_GAIAeDR3``;
    * ``a-priori``: the pipeline's catalog-corrected pointing, no fit to sources:
      ``IDC_<idctab>-GSC240``, ``IDC_<idctab>-HSC30``, ``IDC_<idctab>-GSC242``;
    * ``pipeline-default``: the distortion-corrected guide-star pointing only:
      ``IDC_<idctab>``, ``OPUS``, ``DEFAULT``, or no WCSNAME at all (None or blank);
    * ``other``: anything else (a user's own tweak, e.g. ``TWEAK_1``).

    Case-insensitive, surrounding blanks ignored.
    """
    name = "" if wcsname is None else str(wcsname).strip()
    if not name or _WCS_DEFAULT_RE.match(name):
        return "pipeline-default"
    if _WCS_FIT_RE.search(name):
        return "gaia-fit"
    if _WCS_APRIORI_RE.match(name):
        return "a-priori"
    return "other"
