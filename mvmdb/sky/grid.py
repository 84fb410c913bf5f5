"""The HST archive's sky tessellation: rings, projection cells (PCs), sky cells, names, WCS.

Pure geometry: no I/O except reading the packaged ring table ``mvmdb/data/allsky_cells.csv``
(HDU 1 of drizzlepac's ``pars/allsky_cells.fits``). Names and WCS reproduce the archive's
(``drizzlepac.haputils.cell_utils``) bit for bit, including its floating-point details.

Conventions used throughout :mod:`mvmdb.sky`:

* angles in degrees (RA, Dec, CRVAL); pixel scales in arcsec/px;
* ``CRPIX`` is 1-based (FITS); every other pixel position is 0-based, as astropy's
  ``world_to_pixel_values`` / ``pixel_to_world_values`` use them;
* a projection cell is a 450287 x 450287 px TAN tangent plane at 0.04"/px, North up,
  East left (``CD1_1 < 0``: x grows towards lower RA);
* a sky cell (P, x, y), x and y 1-based in 1..21, is a sub-array of P: spacing
  :data:`SC_SPACING` = 21442 px, size 21954 px (all 512 px of overlap on the +x/+y side).
  Sky-cell pixel ``i`` (0-based, fine) is PC pixel ``i + (x - 1) * SC_SPACING``.
"""

from __future__ import annotations

import csv
import functools
import math
import re
from dataclasses import dataclass
from importlib import resources
from typing import Union

import numpy as np
from astropy.wcs import WCS

__all__ = [
    "FINE_SCALE",
    "COARSE_SCALE",
    "SUPPORTED_SCALES",
    "PC_NAXIS",
    "PC_CRPIX",
    "SC_NXY",
    "SC_OLAP",
    "SC_SPACING",
    "N_PROJECTION_CELLS",
    "RingTable",
    "ring_table",
    "ring_of",
    "ProjectionCell",
    "SkyCell",
    "skycell_name",
    "skycell_id",
    "parse_skycell_name",
    "normalize_skycell_names",
    "scale_arcsec",
    "scale_ratio",
    "skycell_naxis",
    "skycell_crpix",
]

FINE_SCALE = 0.04
"""Fine pixel scale, arcsec/px (the PC scale; ACS, WFC3/UVIS layers)."""
COARSE_SCALE = 0.12
"""Coarse pixel scale, arcsec/px (WFC3/IR and WFPC2 layers)."""
SUPPORTED_SCALES = {"fine": FINE_SCALE, "coarse": COARSE_SCALE}
"""Named pixel scales, arcsec/px."""
PC_NAXIS = 450287
"""Projection-cell size, px at 0.04"/px (XCELL = YCELL of every ring; 5.0 deg in the tangent plane)."""
PC_CRPIX = PC_NAXIS / 2 + 0.5
"""Projection-cell CRPIX1 = CRPIX2, 1-based: 225144.0 (exact centre, NAXIS odd)."""
SC_NXY = 21
"""Sky cells per PC axis (header ``SC_NXY``)."""
SC_OLAP = 256
"""Sky-cell overlap parameter, px (header ``SC_OLAP``); cells are ``SC_SPACING + 2*SC_OLAP`` wide."""
SC_SPACING = int(PC_NAXIS / SC_NXY + 0.5)
"""Sky-cell spacing, fine px: int(450287/21 + 0.5) = 21442."""
SC_NAXIS_FINE = SC_SPACING + 2 * SC_OLAP
"""Sky-cell size at 0.04"/px: 21954 px."""
N_PROJECTION_CELLS = 2644
"""Projection cells 0..2643."""

_NAME_RE = re.compile(r"^(?:skycell-)?p(\d{4})x(\d{2})y(\d{2})$")

ScaleLike = Union[str, float, int]


# --------------------------------------------------------------------------- scales


def scale_arcsec(scale: ScaleLike) -> float:
    """Pixel scale in arcsec/px from ``'fine'`` (0.04), ``'coarse'`` (0.12) or a positive number."""
    if isinstance(scale, str):
        try:
            return SUPPORTED_SCALES[scale.lower()]
        except KeyError:
            raise ValueError(f"unknown pixel scale {scale!r}: use 'fine', 'coarse' or arcsec/px") from None
    if isinstance(scale, bool) or not isinstance(scale, (int, float, np.integer, np.floating)):
        raise ValueError(f"pixel scale must be 'fine', 'coarse' or a number (arcsec/px), not {scale!r}")
    value = float(scale)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"pixel scale must be a positive number of arcsec/px, not {scale!r}")
    return value


def scale_ratio(scale: ScaleLike) -> float:
    """The archive's ``ratio = PC pscale / scale`` (fine 1.0, coarse 0.33333333333333337)."""
    return FINE_SCALE / scale_arcsec(scale)


def skycell_naxis(scale: ScaleLike = "fine") -> int:
    """Sky-cell NAXIS1 = NAXIS2 at ``scale``: ``int((S + 2*SC_OLAP) * ratio)`` (21954 fine, 7318 coarse)."""
    return int(SC_NAXIS_FINE * scale_ratio(scale))


def skycell_crpix(x: int, y: int, scale: ScaleLike = "fine") -> tuple[float, float]:
    """Sky-cell (CRPIX1, CRPIX2), 1-based, for 1-based indices x, y: ``(PC_CRPIX - (i-1)*S) * ratio``."""
    ratio = scale_ratio(scale)
    return ((PC_CRPIX - (x - 1) * SC_SPACING) * ratio, (PC_CRPIX - (y - 1) * SC_SPACING) * ratio)


# --------------------------------------------------------------------------- ring table


@dataclass(frozen=True, eq=False)
class RingTable:
    """The 46 declination rings ("zones"), south to north, as read-only numpy arrays.

    ``dec``, ``dec_min``, ``dec_max`` in degrees; ``projcell`` the ring's first PC id;
    ``nband`` PCs in the ring (equally spaced in RA from 0); ``xcell``/``ycell`` the PC
    NAXIS (450287 everywhere); ``crpix1``/``crpix2`` unused table columns kept as read.
    """

    zone: np.ndarray
    projcell: np.ndarray
    nband: np.ndarray
    dec: np.ndarray
    dec_min: np.ndarray
    dec_max: np.ndarray
    xcell: np.ndarray
    ycell: np.ndarray
    crpix1: np.ndarray
    crpix2: np.ndarray

    def __len__(self) -> int:
        return len(self.zone)


@functools.lru_cache(maxsize=1)
def ring_table() -> RingTable:
    """The packaged ring table (cached; arrays are read-only)."""
    text = resources.files("mvmdb").joinpath("data", "allsky_cells.csv").read_text(encoding="ascii")
    rows = list(csv.DictReader(text.splitlines()))
    ints = ("ZONE", "PROJCELL", "NBAND", "XCELL", "YCELL")
    cols = {}
    for key in ("ZONE", "PROJCELL", "NBAND", "DEC", "DEC_MIN", "DEC_MAX", "XCELL", "YCELL", "CRPIX1", "CRPIX2"):
        dtype = np.int64 if key in ints else np.float64
        conv = int if key in ints else float
        arr = np.array([conv(r[key]) for r in rows], dtype=dtype)
        arr.flags.writeable = False
        cols[key.lower()] = arr
    table = RingTable(**cols)
    if int(table.nband.sum()) != N_PROJECTION_CELLS or np.any(table.xcell != PC_NAXIS):
        raise RuntimeError("packaged allsky_cells.csv is inconsistent")
    return table


def ring_of(pc_id):
    """Ring (zone) index of projection cell id(s): the last ring with ``PROJCELL <= id``."""
    ids = np.asarray(pc_id)
    return np.searchsorted(ring_table().projcell, ids, side="right") - 1


@functools.lru_cache(maxsize=1)
def _pc_arrays():
    """Per-PC arrays over ids 0..2643: ring, band, nband, crval1, crval2 (degrees)."""
    rt = ring_table()
    ids = np.arange(N_PROJECTION_CELLS)
    ring = ring_of(ids)
    band = ids - rt.projcell[ring]
    nband = rt.nband[ring]
    # Same expression as the archive: band_index * 360 / NBAND (exact product, one rounding).
    crval1 = (band * 360).astype(np.float64) / nband
    crval2 = rt.dec[ring].astype(np.float64)
    out = dict(ring=ring, band=band, nband=nband, crval1=crval1, crval2=crval2)
    for arr in out.values():
        arr.flags.writeable = False
    return out


def _check_pc_id(pc: int) -> int:
    if isinstance(pc, bool) or not isinstance(pc, (int, np.integer)):
        raise ValueError(f"projection cell id must be an integer, not {pc!r}")
    if not 0 <= int(pc) < N_PROJECTION_CELLS:
        raise ValueError(f"projection cell id {pc} out of range 0..{N_PROJECTION_CELLS - 1}")
    return int(pc)


def _tan_wcs(crval1: float, crval2: float, crpix1: float, crpix2: float, cd11: float, cd22: float,
             naxis1: int, naxis2: int) -> WCS:
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [crval1, crval2]
    w.wcs.crpix = [crpix1, crpix2]
    w.wcs.cd = np.array([[cd11, 0.0], [0.0, cd22]])
    w.pixel_shape = (naxis1, naxis2)
    return w


def _corners(w: WCS) -> np.ndarray:
    """Closed footprint (5, 2) of RA, Dec (deg) at the centres of the corner pixels.

    Order as astropy ``calc_footprint``: (0, 0), (0, N2-1), (N1-1, N2-1), (N1-1, 0) in 0-based
    pixels (lower-left = lowest Dec, largest RA first), then the first corner again.
    """
    n1, n2 = w.pixel_shape
    px = np.array([0, 0, n1 - 1, n1 - 1, 0], dtype=float)
    py = np.array([0, n2 - 1, n2 - 1, 0, 0], dtype=float)
    ra, dec = w.pixel_to_world_values(px, py)
    return np.column_stack([ra, dec])


# --------------------------------------------------------------------------- projection cells


@dataclass(frozen=True)
class ProjectionCell:
    """Projection cell ``id`` (0..2643): a 5-degree TAN plane centred on ``crval``.

    Attributes: ``id``; ``ring`` (zone 0..45, south to north); ``band`` (0-based index in
    the ring); ``nband`` (PCs in the ring); ``crval`` = (RA, Dec) in degrees with
    ``RA = band*360/nband`` and Dec the ring's DEC.
    """

    id: int
    ring: int
    band: int
    nband: int
    crval: tuple[float, float]

    @classmethod
    def from_id(cls, pc_id: int) -> "ProjectionCell":
        """Look up projection cell ``pc_id`` (0..2643); ``ValueError`` when out of range."""
        return _projection_cell(_check_pc_id(pc_id))

    @classmethod
    def from_ring_band(cls, ring: int, band: int) -> "ProjectionCell":
        """The PC with 0-based ``band`` in ``ring`` (0..45)."""
        rt = ring_table()
        if not 0 <= ring < len(rt):
            raise ValueError(f"ring {ring} out of range 0..{len(rt) - 1}")
        if not 0 <= band < rt.nband[ring]:
            raise ValueError(f"band {band} out of range 0..{rt.nband[ring] - 1} for ring {ring}")
        return cls.from_id(int(rt.projcell[ring]) + band)

    @property
    def dec_range(self) -> tuple[float, float]:
        """The ring's (DEC_MIN, DEC_MAX), degrees, from the table."""
        rt = ring_table()
        return float(rt.dec_min[self.ring]), float(rt.dec_max[self.ring])

    def wcs(self, scale: ScaleLike = FINE_SCALE) -> WCS:
        """TAN WCS of the whole PC: NAXIS 450287, CRPIX 225144.0 (1-based), CD = [[-s/3600, 0], [0, s/3600]].

        ``scale`` in arcsec/px (or 'fine'/'coarse'). As in the archive only CD depends on it;
        the grid itself (sky cells, membership) is always defined on the 0.04"/px PC.
        """
        s = scale_arcsec(scale)
        return _tan_wcs(self.crval[0], self.crval[1], PC_CRPIX, PC_CRPIX, -s / 3600.0, s / 3600.0, PC_NAXIS, PC_NAXIS)

    @property
    def footprint(self) -> np.ndarray:
        """(4, 2) RA, Dec (deg) of the corner-pixel centres at 0.04"/px (astropy ``calc_footprint`` order)."""
        return _corners(self.wcs())[:4]

    @property
    def corners(self) -> np.ndarray:
        """Closed footprint (5, 2): :attr:`footprint` with the first corner repeated (the archive's ``corners``)."""
        return _corners(self.wcs())

    def skycell(self, x: int, y: int) -> "SkyCell":
        """Sky cell (x, y) of this PC, x and y 1-based."""
        return SkyCell(self.id, x, y)


@functools.lru_cache(maxsize=None)
def _projection_cell(pc_id: int) -> ProjectionCell:
    a = _pc_arrays()
    return ProjectionCell(
        id=pc_id,
        ring=int(a["ring"][pc_id]),
        band=int(a["band"][pc_id]),
        nband=int(a["nband"][pc_id]),
        crval=(float(a["crval1"][pc_id]), float(a["crval2"][pc_id])),
    )


# --------------------------------------------------------------------------- sky cells


def skycell_name(pc: int, x: int, y: int) -> str:
    """``skycell-pPPPPxXXyYY`` for PC id ``pc`` and 1-based ``x``, ``y`` (validated)."""
    SkyCell(pc, x, y)  # validates
    return f"skycell-p{pc:04d}x{x:02d}y{y:02d}"


def skycell_id(pc, x, y):
    """The catalog's integer key of sky cell (P, x, y): ``P*10000 + x*100 + y`` (p1889x07y19 -> 18890719).

    Ids sort as the names do. Works on ints and on numpy arrays alike (no validation).
    """
    return pc * 10000 + x * 100 + y


def parse_skycell_name(name: str, *, bare_ok: bool = True) -> tuple[int, int, int]:
    """``'skycell-p1889x07y19'`` (or the SCELLID form ``'p1889x07y19'``) -> ``(1889, 7, 19)``.

    The one sky-cell name parser. With ``bare_ok=False`` only the full ``skycell-`` form,
    exactly (no surrounding blanks), is accepted (poller files). ``ValueError`` for
    malformed names or indices out of range (PC 0..2643, x, y 1..21).
    """
    if not isinstance(name, str):
        raise ValueError(f"sky cell name must be a string, not {type(name).__name__}")
    m = _NAME_RE.match(name.strip() if bare_ok else name)
    if not m or not (bare_ok or name.startswith("skycell-")):
        raise ValueError(f"sky cell {name!r} does not match skycell-pPPPPxXXyYY")
    pc, x, y = (int(g) for g in m.groups())
    try:
        SkyCell(pc, x, y)  # range checks
    except ValueError as exc:
        raise ValueError(f"sky cell {name!r} is outside the grid ({exc})") from None
    return pc, x, y


def normalize_skycell_names(names) -> list[str]:
    """Names given as ``skycell-p1889x07y19`` or ``p1889x07y19`` -> full names, without repeats, in order.

    ``ValueError`` (from :func:`parse_skycell_name`) for the first bad name.
    """
    out: list[str] = []
    for raw in names:
        parse_skycell_name(raw)
        name = raw.strip()
        name = name if name.startswith("skycell-") else f"skycell-{name}"
        if name not in out:
            out.append(name)
    return out


@dataclass(frozen=True, order=True)
class SkyCell:
    """Sky cell ``(projection_cell, x, y)``, x, y 1-based in 1..21 (x westward, y northward).

    The WCS at any scale is a sub-array of the PC's: same CRVAL, ``CD = PC_CD / ratio``,
    ``CRPIX = (PC_CRPIX - (i-1)*SC_SPACING) * ratio``, ``NAXIS = int(21954 * ratio)``
    with ``ratio = 0.04 / scale`` (the archive's float expressions).
    """

    projection_cell: int
    x: int
    y: int

    def __post_init__(self) -> None:
        _check_pc_id(self.projection_cell)
        for label, v in (("x", self.x), ("y", self.y)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise ValueError(f"sky cell {label} index must be an integer, not {v!r}")
            if not 1 <= v <= SC_NXY:
                raise ValueError(f"sky cell {label} index {v} out of range 1..{SC_NXY}")
        # normalise numpy integers to int (keeps hashing/equality simple)
        object.__setattr__(self, "projection_cell", int(self.projection_cell))
        object.__setattr__(self, "x", int(self.x))
        object.__setattr__(self, "y", int(self.y))

    @classmethod
    def from_name(cls, name: str) -> "SkyCell":
        """Parse ``skycell-pPPPPxXXyYY`` (or ``pPPPPxXXyYY``); ``ValueError`` if malformed."""
        return cls(*parse_skycell_name(name))

    @property
    def name(self) -> str:
        """``skycell-pPPPPxXXyYY``."""
        return f"skycell-p{self.projection_cell:04d}x{self.x:02d}y{self.y:02d}"

    @property
    def scellid(self) -> str:
        """The SCELLID / SKYCELL header form, ``pPPPPxXXyYY`` (name without ``skycell-``)."""
        return self.name[len("skycell-"):]

    @property
    def id(self) -> int:
        """Integer key ``projection_cell*10000 + x*100 + y`` (p1889x07y19 -> 18890719), as the catalog uses."""
        return skycell_id(self.projection_cell, self.x, self.y)

    @property
    def pc(self) -> ProjectionCell:
        """The :class:`ProjectionCell` this sky cell belongs to."""
        return ProjectionCell.from_id(self.projection_cell)

    def naxis(self, scale: ScaleLike = "fine") -> int:
        """NAXIS1 = NAXIS2 at ``scale``: 21954 fine, 7318 coarse."""
        return skycell_naxis(scale)

    def crpix(self, scale: ScaleLike = "fine") -> tuple[float, float]:
        """(CRPIX1, CRPIX2), 1-based, at ``scale`` (coarse keeps the archive's float noise)."""
        return skycell_crpix(self.x, self.y, scale)

    def cd(self, scale: ScaleLike = "fine") -> tuple[float, float]:
        """(CD1_1, CD2_2) in deg/px at ``scale``: the PC's ``-/+ 0.04/3600`` divided by ``ratio``."""
        ratio = scale_ratio(scale)
        d = FINE_SCALE / 3600.0
        return (-d / ratio, d / ratio)

    def wcs(self, scale: ScaleLike = "fine") -> WCS:
        """Full (untrimmed) TAN WCS of the sky cell at ``scale`` ('fine', 'coarse' or arcsec/px)."""
        crpix1, crpix2 = self.crpix(scale)
        cd11, cd22 = self.cd(scale)
        n = self.naxis(scale)
        ra0, dec0 = self.pc.crval
        return _tan_wcs(ra0, dec0, crpix1, crpix2, cd11, cd22, n, n)

    def ltv(self, scale: ScaleLike = "fine") -> tuple[float, float]:
        """Sub-array origin offset ``PC_CRPIX*ratio - CRPIX`` (the archive's ltv1, ltv2), px at ``scale``."""
        ratio = scale_ratio(scale)
        c1, c2 = self.crpix(scale)
        return (PC_CRPIX * ratio - c1, PC_CRPIX * ratio - c2)

    def footprint(self, scale: ScaleLike = "fine") -> np.ndarray:
        """(4, 2) RA, Dec (deg) of the corner-pixel centres (astropy ``calc_footprint`` order)."""
        return _corners(self.wcs(scale))[:4]

    def corners(self, scale: ScaleLike = "fine") -> np.ndarray:
        """Closed footprint (5, 2): :meth:`footprint` plus the first corner again (the archive's ``corners``)."""
        return _corners(self.wcs(scale))

    def pc_pixel_box(self) -> tuple[int, int, int, int]:
        """The cell's padded box in 0-based fine PC pixels, ``(x0, x1, y0, y1)`` inclusive bounds.

        ``x0 = (x-1)*21442`` and ``x1 = x0 + 21954`` (the membership box ``0 <= x_s <= 21954``);
        not clipped to the PC (x = 21 runs 507 px past it).
        """
        x0 = (self.x - 1) * SC_SPACING
        y0 = (self.y - 1) * SC_SPACING
        return x0, x0 + SC_NAXIS_FINE, y0, y0 + SC_NAXIS_FINE

    def __str__(self) -> str:
        return self.name
