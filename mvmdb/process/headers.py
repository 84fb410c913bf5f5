"""PRIMARY header keywords of a layer product (spec §5.5) and their JSON form."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import numpy as np

from mvmdb.db.snapshot import LayerInfo
from mvmdb.sky.grid import SkyCell

__all__ = ["MVM_KEYS", "LAYER_SET_KEYS", "primary_keywords", "quality_keywords", "layer_set_keywords", "fit_comment", "jsonable", "json_keywords"]

MVM_KEYS = ("NPIXFRAC", "MEANEXPT", "MEDEXPT", "MEANNEXP", "MEDNEXP", "MEANWHT", "MEDWHT", "SCELLID")
"""The MVM primary keywords reported per layer (spec §5.5)."""


def _iso(mjd: float | None) -> str | None:
    """MJD -> ISO UTC with milliseconds (``YYYY-MM-DDTHH:MM:SS.sss``)."""
    if mjd is None:
        return None
    t = dt.datetime(1858, 11, 17, tzinfo=dt.timezone.utc) + dt.timedelta(days=float(mjd))
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]


def primary_keywords(layer: LayerInfo, cell: SkyCell, li, product_name: str, mvm: dict, pars,
                     skies: Sequence[float], extra: dict[str, Any]) -> dict[str, Any]:
    """The PRIMARY keywords of a layer product, ``{key: (value, comment)}`` (spec §5.5).

    ``li``: the layer's opened inputs (:class:`mvmdb.process.inputs.LayerInputs`); ``mvm``
    the MVM statistics keywords; ``pars`` the layer's drizzle parameters
    (:class:`mvmdb.process.drizzling.DrizzlePars`); ``extra`` added last.
    Times MJD and UTC ISO; ``TEXPTIME`` seconds; ``PSCALE`` arcsec/px.
    """
    exps = li.exposures
    starts = [e.expstart for e in exps if e.expstart is not None]
    ends = [e.expend for e in exps if e.expend is not None]
    props = sorted({e.proposid for e in exps if e.proposid is not None})
    root = product_name[: -len(".fits")]
    kw: dict[str, Any] = {
        "TELESCOP": ("HST", "telescope used to acquire data"),
        "INSTRUME": (layer.instrument, "identifier for instrument used to acquire data"),
        "DETECTOR": (layer.detector, "detector in use"),
        "FILTER": (layer.filter.upper(), "filter(s) of the layer, normalized"),
        "ROOTNAME": (root, "rootname of the product"),
        "FILENAME": (product_name, "name of file"),
        "SKYCELL": (cell.name, "sky cell of this layer"),
        "SCELLID": (cell.scellid, "sky cell ID"),
        "LAYER": (layer.name, "layer: sky cell, instrument, detector, filter, scale"),
        "PSCALE": (0.12 if layer.scale == "coarse" else 0.04, "output pixel scale (arcsec/pixel)"),
        "HAPLEVEL": (4, "classification level of this product"),
        "EQUINOX": (2000.0, "equinox of celestial coord. system"),
        "NUMEXP": (len(exps), "number of input exposures"),
        "TEXPTIME": (float(sum(e.exptime for e in exps)), "total exposure time of the inputs (s)"),
        "EXPSTART": (min(starts) if starts else None, "start of the earliest input (MJD)"),
        "EXPEND": (max(ends) if ends else None, "end of the latest input (MJD)"),
        "DATE-BEG": (_iso(min(starts)) if starts else None, "start of the earliest input (UTC)"),
        "DATE-END": (_iso(max(ends)) if ends else None, "end of the latest input (UTC)"),
        "PROPOSID": ("; ".join(str(p) for p in props), "proposals of the inputs"),
        "D001KERN": ("square", "drizzle kernel"),
        "D001PIXF": (float(pars.pixfrac), "drizzle pixfrac"),
        "D001BITS": (int(pars.bits), "DQ bits accepted as good (final_bits)"),
        "SKYMETH": ("match" if pars.skysub else "none", "sky matching method"),
    }
    kw.update({k: v for k, v in mvm.items()})
    kw.update(extra)
    return {k: (jsonable(v[0]), fit_comment(k, jsonable(v[0]), v[1])) for k, v in kw.items() if v[0] is not None}


def fit_comment(key: str, value: Any, comment: str) -> str:
    """``comment`` shortened so that the card fits in 80 characters (as a FITS writer would cut it).

    The archive's comments (spec §5.5) are kept whole whenever they fit; astropy would
    otherwise truncate them itself, with a warning.
    """
    from astropy.io import fits

    if value is None or isinstance(value, float) and not np.isfinite(value):
        return comment
    used = len(fits.Card(key, value).image.rstrip())
    room = 80 - used - 3
    return comment if len(comment) <= room else comment[: max(0, room)]


def jsonable(v: Any) -> Any:
    """A keyword value as JSON: numpy scalars to Python, non-finite floats to None."""
    if isinstance(v, (np.floating, float)):
        return float(v) if np.isfinite(v) else None
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v


def json_keywords(primary: dict[str, Any]) -> dict[str, Any]:
    """The :data:`MVM_KEYS` of a product's PRIMARY keywords, as JSON values (the ``--json`` ``keywords``)."""
    out = {}
    for k in MVM_KEYS:
        v = primary.get(k)
        if v is None:
            continue
        v = v[0] if isinstance(v, tuple) else v
        out[k] = jsonable(v)
    return out


def quality_keywords(layer: LayerInfo) -> dict[str, Any]:
    """Keywords of the pixel quality checks and exclusions (issue 16), ``{key: (value, comment)}``.

    ``NEXCLUDE``: exposures of the layer's sky cell, instrument, detector and filter left out
    by the operator or ``mvm qa``; ``WCSFAMS``: the WCS solution families of the members
    (:func:`mvmdb.rules.wcs_family` of WCSNAME), sorted, comma-separated; ``WCSMIXED``:
    whether it holds more than one.
    """
    from mvmdb.rules import wcs_family

    families = sorted({wcs_family(m.wcsname) for m in layer.members})
    return {
        "NEXCLUDE": (int(layer.n_excluded), "inputs excluded (operator, trailed, alignment)"),
        "WCSFAMS": (",".join(families), "WCS solution families of the inputs"),
        "WCSMIXED": (len(families) > 1, "inputs mix WCS solution families"),
    }


LAYER_SET_KEYS = ("LAYERSET", "LAYERKEY", "LAYDBEG", "LAYDEND", "LAYTMIN", "LAYTMAX")
"""Keywords of a time-domain layer's product (issue 17; not archive keywords)."""


def layer_set_keywords(layer: LayerInfo) -> dict[str, Any]:
    """Keywords naming a time-domain layer's set and what it selects, ``{key: (value, comment)}``.

    Empty for the archive's layers (set ``all``: their headers stay the archive's). ``LAYERSET``
    and ``LAYERKEY`` (the ``<layer>`` term of the name); year and epoch layers: ``LAYDBEG`` /
    ``LAYDEND``, the first and last UTC date (inclusive, ISO) an input may start on;
    exposure-time classes: ``LAYTMIN`` <= EXPTIME < ``LAYTMAX`` (s; no ``LAYTMAX`` for long).
    The members' actual span is in ``EXPSTART``/``EXPEND`` and ``DATE-BEG``/``DATE-END``.
    """
    from mvmdb import layersets

    if layer.layer_set == layersets.ALL_KEY:
        return {}
    key = layer.layer_key
    kw: dict[str, Any] = {
        "LAYERSET": (layer.layer_set, "time-domain layer set: year, exptime or epochs"),
        "LAYERKEY": (key, "layer key within the set (the <layer> term of the name)"),
    }
    if layer.layer_set == "year":
        kw["LAYDBEG"] = (f"{int(key):04d}-01-01", "first UTC date of the layer's inputs' starts")
        kw["LAYDEND"] = (f"{int(key):04d}-12-31", "last UTC date of the layer's inputs' starts")
    elif layer.layer_set == "epochs":
        r = layersets.parse_epoch_key(key)
        kw["LAYDBEG"] = (r.first.isoformat(), "first UTC date of the layer's inputs' starts")
        kw["LAYDEND"] = (r.last.isoformat(), "last UTC date of the layer's inputs' starts")
    elif layer.layer_set == "exptime":
        i = layersets.EXPTIME_CLASSES.index(key)
        limits = (*layersets.EXPTIME_LIMITS, None)
        kw["LAYTMIN"] = (float(limits[i]), "inputs have LAYTMIN <= EXPTIME (s)")
        if limits[i + 1] is not None:
            kw["LAYTMAX"] = (float(limits[i + 1]), "inputs have EXPTIME < LAYTMAX (s)")
    return kw
