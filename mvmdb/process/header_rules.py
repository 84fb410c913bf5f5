"""The archive's header blending rules for MVM products: primary/SCI keywords and HDRTAB.

The rules are data (``mvmdb/data/header_rules/<instrument>_mvm.rules``, the keyword lists
of the archive's ``<instrument>_mvm_header_hap.rules``). One rule a line:

* ``KEYWORD`` alone: a HDRTAB column (one row per input chip, the value from the chip's SCI
  header, else its primary header; missing: NaN / '' ). Such a keyword is removed from the
  blended header unless a function rule names it.
* ``KEYWORD OUTPUT FUNCTION``: ``OUTPUT`` in the blended header is ``FUNCTION`` of the
  inputs' values of ``KEYWORD`` (``first``, ``last``, ``min``, ``max``, ``mean``, ``sum``,
  ``stddev``, ``multi`` = the common value or ``'MULTIPLE'``, ``multi?`` = the common value
  or ``'?'``, ``zero`` = 0, ``float_one`` = 1.0, ``int_one`` = 1).
* ``<delete> KEYWORD``: removed (function rules may set it again, as the archive's do for
  LINENUM, PR_INV_*, GYROMODE).

Blending (:func:`blend`): the first input's header (input order), structural keywords
dropped, then table-only keywords and ``<delete>`` keywords removed, then the function rules
applied over the headers that hold the keyword. Pure: headers in, header out (no files).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np
from astropy.io import fits

__all__ = ["HeaderRules", "load_rules", "blend", "hdrtab_rows", "STRUCTURAL"]

#: Keywords never carried from an input header (structure, WCS of the inputs, checksums).
STRUCTURAL = frozenset({
    "SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "EXTEND", "XTENSION", "PCOUNT", "GCOUNT", "EXTNAME",
    "EXTVER", "BSCALE", "BZERO", "CHECKSUM", "DATASUM", "NEXTEND", "INHERIT", "END",
})

_INPUT_WCS_PREFIXES = ("CD1_", "CD2_", "PC1_", "PC2_", "CDELT", "CRPIX", "CRVAL", "CTYPE", "CUNIT", "A_", "B_",
                       "AP_", "BP_", "CPDIS", "DP1", "DP2", "CPERR", "D2IM", "WCSNAME", "WCSAXES", "LONPOLE",
                       "LATPOLE", "RADESYS", "MJDREF", "OCD", "OCRPIX", "OCRVAL", "OCTYPE", "ONAXIS", "OORIENTA",
                       "OCX", "OCY", "IDC", "TDDALPHA", "TDDBETA", "SIPNAME", "NPOLEXT", "D2IMEXT", "D2IMERR",
                       "WCSTYPE", "WCSCDATE", "S_REGION", "ORIENTAT", "VAFACTOR", "LTV", "LTM", "PHOT")


def is_input_wcs(key: str) -> bool:
    """True for keywords describing an input chip's own WCS (or replaced per product)."""
    return key.startswith(_INPUT_WCS_PREFIXES) or key in ("EQUINOX",)


@dataclass(frozen=True)
class HeaderRules:
    """One instrument's rules: ``version`` (RULESVER), HDRTAB ``columns`` in order,
    ``functions`` ``(keyword, output, function)`` in order, ``deletes``."""

    instrument: str
    version: float
    columns: tuple[str, ...]
    functions: tuple[tuple[str, str, str], ...]
    deletes: frozenset[str]

    @property
    def table_only(self) -> frozenset[str]:
        """HDRTAB keywords without a function rule: removed from blended headers."""
        with_function = {k for k, _, _ in self.functions} | {o for _, o, _ in self.functions}
        return frozenset(self.columns) - with_function


@functools.lru_cache(maxsize=None)
def load_rules(instrument: str) -> HeaderRules:
    """The packaged MVM rules of ``instrument`` ('ACS', 'WFC3', 'WFPC2')."""
    name = f"{instrument.strip().lower()}_mvm.rules"
    text = resources.files("mvmdb").joinpath("data", "header_rules", name).read_text(encoding="ascii")
    version = 1.0
    columns: list[str] = []
    functions: list[tuple[str, str, str]] = []
    deletes: set[str] = set()
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("!"):
            key, _, value = line[1:].partition("=")
            if key.strip() == "VERSION":
                version = float(value)
            continue
        if line.startswith("<delete>"):
            deletes.add(line[len("<delete>"):].strip())
            continue
        parts = line.split()
        if len(parts) == 1:
            if parts[0] not in columns:
                columns.append(parts[0])
        elif len(parts) >= 3:
            functions.append((parts[0], parts[1], parts[2]))
    return HeaderRules(instrument.upper(), version, tuple(columns), tuple(functions), frozenset(deletes))


def _multi(vals: list, other: str) -> Any:
    uniq = []
    for v in vals:
        if v not in uniq:
            uniq.append(v)
    return uniq[0] if len(uniq) == 1 else other


def _numeric(vals: list) -> list[float]:
    return [float(v) for v in vals if isinstance(v, (int, float, np.number)) and not isinstance(v, bool)]


def apply_function(name: str, vals: list) -> Any:
    """The value of rule function ``name`` over the inputs' values ``vals`` (None: no value)."""
    if name == "zero":
        return 0
    if name == "float_one":
        return 1.0
    if name == "int_one":
        return 1
    if not vals:
        return None
    if name == "first":
        return vals[0]
    if name == "last":
        return vals[-1]
    if name == "multi":
        return _multi(vals, "MULTIPLE")
    if name == "multi?":
        return _multi(vals, "?")
    nums = _numeric(vals)
    if not nums:
        return vals[0]
    if name == "min":
        return min(nums)
    if name == "max":
        return max(nums)
    if name == "sum":
        s = sum(nums)
        return int(s) if all(isinstance(v, (int, np.integer)) for v in vals) else s
    if name == "mean":
        return float(np.mean(nums))
    if name == "stddev":
        return float(np.std(nums))
    raise ValueError(f"unknown header rule function {name!r}")


def blend(headers: Sequence[fits.Header], rules: HeaderRules, *, drop: Iterable[str] = ()) -> fits.Header:
    """The blended header of ``headers`` (input order) under ``rules`` (module docstring).

    ``drop``: further keywords (or a predicate's survivors) left out, e.g. the inputs' WCS.
    Section titles (blank cards) and HISTORY/COMMENT of the first header are kept.
    """
    if not headers:
        return fits.Header()
    drop = set(drop)
    removed = rules.table_only | rules.deletes | STRUCTURAL | drop
    out = fits.Header()
    for card in headers[0].cards:
        key = card.keyword
        if key in removed or (key and key not in ("COMMENT", "HISTORY") and key in out):
            continue
        out.append(card, end=True)
    for key, dest, fn in rules.functions:
        if dest in STRUCTURAL or dest in drop:
            continue
        vals = [h[key] for h in headers if key in h and not isinstance(h[key], fits.card.Undefined)]
        value = apply_function(fn, vals)
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            continue
        comment = next((h.comments[key] for h in headers if key in h), "")
        if isinstance(value, np.generic):
            value = value.item()
        if dest in out:
            out[dest] = value
        else:
            out.append((dest, value, comment), end=True)
    return out


def _cell(value: Any) -> Any:
    if isinstance(value, fits.card.Undefined):
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


def hdrtab_rows(inputs: Sequence[tuple[fits.Header, Sequence[fits.Header], str]], rules: HeaderRules,
                skies: Sequence[float] | None = None) -> list[dict[str, Any]]:
    """HDRTAB rows, one per input chip: ``SVMROOTNAME``, ``GENDATE``, the rules' columns, ``HAPEXPNAME``.

    ``inputs``: ``(primary header, SCI headers in EXTVER order, file name)`` per exposure, in
    input order. A column's value comes from the chip's SCI header, else the primary header;
    ``MDRIZSKY`` from ``skies`` (per chip, in order) when given. Absent values are None
    (written as NaN for numeric columns, '' for text).
    """
    rows = []
    k = 0
    for primary, scis, filename in inputs:
        root = str(primary.get("ROOTNAME", filename[:9])).strip().lower()
        for sci in scis:
            row: dict[str, Any] = {"SVMROOTNAME": root, "GENDATE": _cell(primary.get("DATE"))}
            for col in rules.columns:
                if col in sci:
                    row[col] = _cell(sci[col])
                elif col in primary:
                    row[col] = _cell(primary[col])
                else:
                    row[col] = None
            row["EXTNAME"] = "SCI"
            row["EXTVER"] = int(sci.get("EXTVER", 1))
            if skies is not None:
                row["MDRIZSKY"] = float(skies[k])
            row["HAPEXPNAME"] = filename
            rows.append(row)
            k += 1
    return rows
