"""Headers of a layer product as the archive writes them (spec §5.5, §5.6; issue 13).

* PRIMARY: the inputs' primary headers blended under the archive's rules
  (:mod:`mvmdb.process.header_rules`), PHOT* moved to SCI, then the drizzle bookkeeping
  (``NDRIZIM`` and ``D<nnn>*`` per input chip, in drizzle order), provenance (``FILENAME``,
  ``FILETYPE``, ``ROOTNAME``, ``DATE``, ``NEXTEND``, ``PROD_VER`` = mvmdb's version,
  ``RULESVER``, ``RULEFILE``, ``BLENDVER``, ``DRIZPARS``), ``PINAME``, ``NUMEXP`` and the
  caller's own keywords (MVM keywords, layer description) last.
* SCI: the inputs' SCI headers blended likewise without their own WCS, then the output WCS in
  CD form (``CD1_1 .. CD2_2``, so stwcs ``HSTWCS`` finds ``pscale`` and ``orientat``),
  ``ORIENTAT`` (degrees east of north of the y axis), ``VAFACTOR`` 1, ``LTV1/2`` 0 and
  ``LTM1_1/2_2`` 1 (the archive's values: the box is not written as a sub-array), the layer's
  photometry (``PHOTMODE``, ``PHOTFLAM``, ``PHOTFNU``, ``PHOTPLAM``, ``PHOTBW``, ``PHOTZPT``:
  the rules' functions over the inputs) and ``S_REGION``.
* ``S_REGION``: the outline of the data from the catalogued chip footprints (never by
  tracing pixels): chips grouped into overlapping clusters, the convex hull of each cluster
  clipped to the product's box and rid of vertices within half a pixel of the line through
  their neighbours, one ``POLYGON ICRS`` (closed: first vertex repeated) per
  cluster, vertices in degrees.

Pure: headers and polygons in, :class:`astropy.io.fits.Header` out.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from collections.abc import Sequence
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

import mvmdb
from mvmdb.process.header_rules import HeaderRules, blend, is_input_wcs

__all__ = ["PHOT_KEYWORDS", "LayerHeaders", "layer_headers", "primary_header", "sci_header", "wcs_cards", "s_region",
           "outline_polygons"]

PHOT_KEYWORDS = ("PHOTMODE", "PHOTFLAM", "PHOTFNU", "PHOTPLAM", "PHOTBW", "PHOTZPT")


def _now_date() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d")


def wcs_cards(out_wcs: WCS) -> fits.Header:
    """The output WCS in CD form with the archive's ORIENTAT, VAFACTOR, LTV and LTM cards."""
    cd = out_wcs.wcs.get_pc() * out_wcs.wcs.get_cdelt()[:, None] if not out_wcs.wcs.has_cd() else out_wcs.wcs.cd
    h = fits.Header()
    h["WCSAXES"] = (2, "number of World Coordinate System axes")
    for i in range(2):
        for j in range(2):
            h[f"CD{i + 1}_{j + 1}"] = (float(cd[i, j]), "partial of world coordinate w.r.t. pixel axis")
    for i in range(2):
        h[f"CRVAL{i + 1}"] = (float(out_wcs.wcs.crval[i]), "world coordinate at reference pixel (deg)")
    for i in range(2):
        h[f"CRPIX{i + 1}"] = (float(out_wcs.wcs.crpix[i]), "reference pixel (1-based)")
    h["CTYPE1"] = (out_wcs.wcs.ctype[0], "coordinate type")
    h["CTYPE2"] = (out_wcs.wcs.ctype[1], "coordinate type")
    h["RADESYS"] = ("ICRS", "reference frame of the celestial coordinates")
    h["ORIENTAT"] = (float(np.degrees(np.arctan2(cd[0, 1], cd[1, 1]))),
                     "position angle of image y axis (deg. e of n)")
    h["VAFACTOR"] = (1.0, "velocity aberration plate scale factor")
    h["LTV1"] = (0.0, "offset in X to subsection start")
    h["LTV2"] = (0.0, "offset in Y to subsection start")
    h["LTM1_1"] = (1.0, "reciprocal of sampling rate in X")
    h["LTM2_2"] = (1.0, "reciprocal of sampling rate in Y")
    return h


def _phot(primaries: Sequence[fits.Header], sci_headers: Sequence[fits.Header], rules: HeaderRules) -> dict:
    """The layer's PHOT* values: the rules' functions over the inputs (SCI header, else primary)."""
    from mvmdb.process.header_rules import apply_function

    fn = {k: f for k, o, f in rules.functions if k == o and k in PHOT_KEYWORDS}
    out = {}
    for key in PHOT_KEYWORDS:
        vals, comment = [], ""
        for p, s in zip(primaries, sci_headers):
            src = s if key in s else p if key in p else None
            if src is not None:
                vals.append(src[key])
                comment = comment or src.comments[key]
        value = apply_function(fn.get(key, "first"), vals)
        if value is not None:
            out[key] = (value.item() if isinstance(value, np.generic) else value, comment)
    return out


def primary_header(
    primaries: Sequence[fits.Header],
    rules: HeaderRules,
    *,
    product_name: str,
    chips: Sequence[dict[str, Any]],
    own: dict[str, tuple[Any, str]],
    n_extensions: int,
) -> fits.Header:
    """PRIMARY of a product (module docstring).

    ``primaries``: the inputs' primary headers in input order. ``chips``: per drizzled chip,
    in drizzle order, ``data`` (file[sci,N]), ``exptime`` (s), ``kernel``, ``pixfrac``,
    ``coeffs`` ('SIP' or 'WCS'), ``out_scale`` and ``in_scale`` (arcsec/px). ``own``:
    ``{keyword: (value, comment)}`` written last (they win).
    """
    h = blend(primaries, rules, drop=PHOT_KEYWORDS)
    root = product_name[: -len(".fits")] if product_name.endswith(".fits") else product_name
    stem = root.rsplit("_", 1)[0]
    prov = {
        "DATE": (_now_date(), "date this file was written (yyyy-mm-dd)"),
        "NEXTEND": (n_extensions, "Number of standard extensions"),
        "FILENAME": (product_name, "name of file"),
        "FILETYPE": ("SCI", "type of data found in data file"),
        "ROOTNAME": (root, "rootname of the observation set"),
        "RULESVER": (rules.version, "Version ID for header kw rules file"),
        "BLENDVER": (f"mvmdb {mvmdb.__version__}", "Version of header blending software used"),
        "RULEFILE": (f"{rules.instrument.lower()}_mvm.rules", "Name of header rules file"),
        "PROD_VER": (f"mvmdb {mvmdb.__version__}", "software version that made this product"),
        "DRIZPARS": (f"{stem}_trl.log", "Logfile for processing (not written by mvmdb)"),
        "NDRIZIM": (len(chips), "Drizzle, No. images drizzled onto output"),
    }
    for key, val in prov.items():
        h[key] = val
    for i, c in enumerate(chips, start=1):
        p = f"D{i:03d}"
        for key, value, comment in (
            ("VER", f"mvmdb {mvmdb.__version__} (drizzle)", "Drizzle, task version"),
            ("GEOM", "wcs", "Drizzle, source of geometric information"),
            ("DATA", c["data"], "Drizzle, input data image"),
            ("DEXP", float(c["exptime"]), "Drizzle, input image exposure time (s)"),
            ("OUDA", product_name, "Drizzle, output data image"),
            ("OUWE", f"{product_name}[WHT]", "Drizzle, output weighting image"),
            ("OUCO", f"{product_name}[CTX]" if c.get("context") else "", "Drizzle, output context image"),
            ("MASK", "", "Drizzle, input weighting image"),
            ("WTSC", 1, "Drizzle, weighting factor for input image"),
            ("KERN", c["kernel"], "Drizzle, form of weight distribution kernel"),
            ("PIXF", float(c["pixfrac"]), "Drizzle, linear size of drop"),
            ("COEF", c["coeffs"], "Drizzle, source of coefficients"),
            ("OUUN", "cps", "Drizzle, units of output image - counts or cps"),
            ("FVAL", "INDEF", "Drizzle, fill value for zero weight output pix"),
            ("WKEY", "", "Input image WCS Version used"),
            ("SCAL", float(c["out_scale"]), "Drizzle, pixel size (arcsec) of output image"),
            ("ISCL", float(c["in_scale"]), "Drizzle, input pixel size (arcsec)"),
        ):
            h[p + key] = (value, comment)
    if "PR_INV_L" in h:
        h["PINAME"] = (h["PR_INV_L"], "principal investigator's last name")
    h["NUMEXP"] = (len({c["data"].split("[")[0] for c in chips}), "number of input exposures")
    for key, (value, comment) in own.items():
        h[key] = (value, comment)
    return h


def sci_header(
    primaries: Sequence[fits.Header],
    sci_headers: Sequence[fits.Header],
    rules: HeaderRules,
    *,
    s_region_value: str | None,
) -> fits.Header:
    """SCI cards besides the WCS (module docstring): ``sci_headers`` are the first chip's SCI
    header of each input, in input order, ``primaries`` their primary headers."""
    drop = {k for h in sci_headers for k in h if is_input_wcs(k) and k != "WCSNAME"}
    h = blend(sci_headers, rules, drop=drop | {"BUNIT", "EXPNAME", "ROOTNAME"})
    first = sci_headers[0] if sci_headers else fits.Header()
    for key in ("ROOTNAME", "EXPNAME"):
        src = first if key in first else primaries[0] if primaries and key in primaries[0] else None
        if src is not None:
            h[key] = (src[key], src.comments[key])
    h["BUNIT"] = ("ELECTRONS/S", "brightness units")
    if s_region_value:
        h["S_REGION"] = (s_region_value, "spatial extent of the data (ICRS polygons)")
    for key, val in _phot(primaries, sci_headers, rules).items():
        h[key] = val
    return h


# --------------------------------------------------------------------------- S_REGION
def _cross(u: np.ndarray, v: np.ndarray):
    """z component of the cross product of 2-D vectors (last axis)."""
    return u[..., 0] * v[..., 1] - u[..., 1] * v[..., 0]


def _convex_hull(points: np.ndarray) -> np.ndarray:
    """Convex hull (counter-clockwise, no repeated vertex) of (N, 2) points: Andrew's monotone chain."""
    pts = np.unique(points, axis=0)
    if len(pts) < 3:
        return pts

    def half(seq):
        out: list[np.ndarray] = []
        for p in seq:
            while len(out) >= 2 and _cross(out[-1] - out[-2], p - out[-2]) <= 0:
                out.pop()
            out.append(p)
        return out

    lower, upper = half(pts), half(pts[::-1])
    return np.array(lower[:-1] + upper[:-1])


def _clip_to_box(poly: np.ndarray, x0: float, x1: float, y0: float, y1: float) -> np.ndarray:
    """Sutherland-Hodgman clip of a polygon (N, 2) to the rectangle [x0, x1] x [y0, y1]."""
    edges = ((0, x0, 1), (0, x1, -1), (1, y0, 1), (1, y1, -1))
    out = poly
    for axis, bound, sign in edges:
        if len(out) == 0:
            break
        res = []
        prev = out[-1]
        for cur in out:
            cin = sign * (cur[axis] - bound) >= 0
            pin = sign * (prev[axis] - bound) >= 0
            if cin != pin:
                t = (bound - prev[axis]) / (cur[axis] - prev[axis])
                res.append(prev + t * (cur - prev))
            if cin:
                res.append(cur)
            prev = cur
        out = np.array(res)
    return out


def outline_polygons(polygons: Sequence[np.ndarray], shape: tuple[int, int]) -> list[np.ndarray]:
    """Outlines of the data: per cluster of overlapping chip polygons (bounding boxes that
    touch), the convex hull clipped to the box; polygons in 0-based output pixels (x, y),
    the box spans pixel edges ``-0.5 .. n - 0.5``. Empty clusters (off the box) are left out."""
    polys = [np.asarray(p, dtype=np.float64) for p in polygons if len(p) >= 3 and np.all(np.isfinite(p))]
    if not polys:
        return []
    boxes = np.array([[p[:, 0].min(), p[:, 0].max(), p[:, 1].min(), p[:, 1].max()] for p in polys])
    parent = list(range(len(polys)))

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(polys)):
        for j in range(i + 1, len(polys)):
            a, b = boxes[i], boxes[j]
            if a[0] <= b[1] and b[0] <= a[1] and a[2] <= b[3] and b[2] <= a[3]:
                parent[root(i)] = root(j)
    groups: dict[int, list[np.ndarray]] = {}
    for i, p in enumerate(polys):
        groups.setdefault(root(i), []).append(p)
    ny, nx = shape
    out = []
    for members in groups.values():
        hull = _convex_hull(np.vstack(members))
        clipped = _simplify(_clip_to_box(hull, -0.5, nx - 0.5, -0.5, ny - 0.5))
        if len(clipped) >= 3:
            out.append(clipped)
    return out


def _simplify(poly: np.ndarray, tol_px: float = 0.5) -> np.ndarray:
    """Drop vertices that lie within ``tol_px`` of the chord between their neighbours (the
    densified, nearly straight chip edges), one at a time, most redundant first."""
    pts = [p for p in poly]
    while len(pts) > 3:
        a = np.array(pts)
        prev, nxt = np.roll(a, 1, axis=0), np.roll(a, -1, axis=0)
        chord = nxt - prev
        length = np.hypot(chord[:, 0], chord[:, 1])
        dist = np.abs(_cross(chord, a - prev)) / np.where(length > 0, length, 1.0)
        k = int(np.argmin(dist))
        if dist[k] > tol_px:
            break
        del pts[k]
    return np.array(pts)


def s_region(out_wcs: WCS, polygons: Sequence[np.ndarray], shape: tuple[int, int]) -> str:
    """``S_REGION`` value: one closed ``POLYGON ICRS ra dec ...`` per outline (degrees)."""
    parts = []
    for poly in outline_polygons(polygons, shape):
        ra, dec = out_wcs.pixel_to_world_values(poly[:, 0], poly[:, 1])
        ra, dec = np.append(ra, ra[0]), np.append(dec, dec[0])
        parts.append("POLYGON ICRS " + " ".join(f"{a:.7f} {d:.7f}" for a, d in zip(ra, dec)))
    return " ".join(parts)



@dataclass
class LayerHeaders:
    """Everything :func:`mvmdb.fitsio.product.write_product` needs besides the arrays."""

    primary: fits.Header
    sci: fits.Header
    wcs: fits.Header
    hdrtab: list[dict[str, Any]]


def layer_headers(inputs, instrument: str, product_name: str, own: dict[str, tuple[Any, str]], out_wcs: WCS,
                  shape: tuple[int, int], polygons: Sequence[np.ndarray], *, pixfrac: float, kernel: str = "square",
                  context: bool = False, n_extensions: int = 5) -> LayerHeaders:
    """The headers of a layer drawn from ``inputs`` (:class:`mvmdb.process.inputs.LayerInputs`:
    ``exposures`` in input order with ``primary``, ``sci_headers``, ``path``, ``chips``).
    ``polygons``: the members' chip outlines in 0-based output pixels (for S_REGION)."""
    from mvmdb.process.header_rules import hdrtab_rows, load_rules
    from mvmdb.process.pixmap import pixel_scale_arcsec

    rules = load_rules(instrument)
    exps = list(inputs.exposures)
    primaries = [e.primary for e in exps]
    firsts = [e.sci_headers[0] if e.sci_headers else fits.Header() for e in exps]
    out_scale = round(pixel_scale_arcsec(out_wcs), 6)
    chips = []
    for e in exps:
        base = e.path.rsplit("/", 1)[-1]
        for k, c in enumerate(e.chips, start=1):
            chips.append({"data": f"{base}[sci,{k}]", "exptime": c.exptime, "kernel": kernel, "pixfrac": pixfrac,
                          "coeffs": "SIP" if c.in_wcs is not None and c.in_wcs.sip is not None else "WCS",
                          "out_scale": out_scale, "in_scale": c.pixel_scale or 0.0, "context": context})
    primary = primary_header(primaries, rules, product_name=product_name, chips=chips, own=own,
                             n_extensions=n_extensions)
    sci = sci_header(primaries, firsts, rules, s_region_value=s_region(out_wcs, polygons, shape))
    rows = hdrtab_rows([(e.primary, e.sci_headers, e.path.rsplit("/", 1)[-1]) for e in exps], rules,
                       [c.sky for e in exps for c in e.chips])
    return LayerHeaders(primary, sci, wcs_cards(out_wcs), rows)
