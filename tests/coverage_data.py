"""A small hand-built catalog for the coverage tests (rows inserted directly, no ingest).

Sky cell A, ``skycell-p1889x11y11``, at the centre of projection cell 1889 (RA 180, Dec 26):

* u1: WFC3/UVIS F606W, 100 s, 2020-01-01, proposal 15000, square S (side 0.04 deg) at A's
  centre; member OLD of L1.
* u2: WFC3/UVIS F606W, 300 s, 2021-06-01, proposal 16000, S shifted east by half a side;
  member NEW of L1.
* u3: WFC3/UVIS F606W, 200 s, 2019-03-03 (DATE-OBS null: the day of EXPSTART), proposal
  15000, S; member OLD of L1.
* u4: WFC3/UVIS F606W, 50 s, 2019-07-07, proposal 15000, S, excluded (guide star); no member.
* j1: ACS/WFC F814W, 500 s, 2018-05-05, proposal 17000, two 0.04 x 0.02 deg chips stacked in
  Dec, together S; member OLD of L2.

L1 (f606w, fine) has a product, so it is *stale* (u2 is NEW);
L2 (f814w, fine) has one, *current*. Sky cell C, ``skycell-p0640x11y11`` at the centre of
projection cell 640 (Dec -30): i1, WFC3/IR F160W, 250 s, 2022-02-02, proposal 18000,
member NEW of the coarse layer L3 and its fine twin L4, neither with a product (*none*).

Chip coverage is stored like ingest stores it (``mvmdb.sky.healpix.polygon_ranges``: the healpy
``query_polygon(..., inclusive=True)`` pixels as merged order-29 ranges), at order :data:`ORDER`
(ingest uses a coarser order; 16 keeps the test areas within a few % of the footprints).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field

import numpy as np
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import Range

from mvmdb.db import models as m
from mvmdb.sky.healpix import polygon_ranges
from mvmdb.sky.grid import skycell_id

ORDER = 16
"""HEALPix order at which the builder covers chips (pixels ~3.2")."""

SIDE_DEG = 0.04
"""Side of the square WFC3/UVIS footprints, degrees."""

MJD0 = dt.date(1858, 11, 17)


@dataclass(frozen=True)
class Exp:
    name: str
    ipppssoot: str
    instrument: str
    detector: str
    filter: str
    exptime: float
    date: dt.date
    proposid: int
    sky_cell: str
    chips: list[tuple[list[float], list[float]]]
    excluded_reason: str | None = None
    date_obs_known: bool = True


@dataclass
class SmallCatalog:
    """Ids and footprints of what :func:`build` inserted."""

    exposure_ids: dict[str, int] = field(default_factory=dict)
    layer_ids: dict[str, int] = field(default_factory=dict)
    sky_cells: dict[str, str] = field(default_factory=dict)
    centres: dict[str, tuple[float, float]] = field(default_factory=dict)
    chip_ranges: dict[str, list[np.ndarray]] = field(default_factory=dict)
    exposures: dict[str, Exp] = field(default_factory=dict)

    def ranges(self, *names: str) -> np.ndarray:
        """All order-29 chip ranges of the named exposures, stacked (not merged)."""
        return np.concatenate([r for n in names for r in self.chip_ranges[n]])


def rectangle(ra_deg: float, dec_deg: float, width_deg: float, height_deg: float) -> tuple[list[float], list[float]]:
    """A small rectangle's 4 corners (counter-clockwise on the sky), degrees."""
    dra = width_deg / 2 / math.cos(math.radians(dec_deg))
    dh = height_deg / 2
    return (
        [ra_deg - dra, ra_deg + dra, ra_deg + dra, ra_deg - dra],
        [dec_deg - dh, dec_deg - dh, dec_deg + dh, dec_deg + dh],
    )


def chip_ranges(ra_deg: list[float], dec_deg: list[float], order: int = ORDER) -> np.ndarray:
    """Order-29 ranges of the pixels at ``order`` that touch the polygon (as ingest computes them)."""
    return polygon_ranges(ra_deg, dec_deg, order)


def _exposures(a: tuple[float, float], c: tuple[float, float]) -> list[Exp]:
    ra, dec = a
    east = SIDE_DEG / 2 / math.cos(math.radians(dec))
    square = rectangle(ra, dec, SIDE_DEG, SIDE_DEG)
    uvis = dict(instrument="WFC3", detector="UVIS", filter="f606w", sky_cell="A")
    return [
        Exp("u1", "iaaa01a1q", exptime=100.0, date=dt.date(2020, 1, 1), proposid=15000, chips=[square], **uvis),
        Exp(
            "u2", "iaaa01a2q", exptime=300.0, date=dt.date(2021, 6, 1), proposid=16000,
            chips=[rectangle(ra + east, dec, SIDE_DEG, SIDE_DEG)], **uvis,
        ),
        Exp(
            "u3", "iaaa01a3q", exptime=200.0, date=dt.date(2019, 3, 3), proposid=15000, chips=[square],
            date_obs_known=False, **uvis,
        ),
        Exp(
            "u4", "iaaa01a4q", exptime=50.0, date=dt.date(2019, 7, 7), proposid=15000, chips=[square],
            excluded_reason="guide star acquisition failed", **uvis,
        ),
        Exp(
            "j1", "jbbb01b1q", "ACS", "WFC", "f814w", 500.0, dt.date(2018, 5, 5), 17000, "A",
            chips=[rectangle(ra, dec - 0.01, 0.04, 0.02), rectangle(ra, dec + 0.01, 0.04, 0.02)],
        ),
        Exp(
            "i1", "iccc01c1q", "WFC3", "IR", "f160w", 250.0, dt.date(2022, 2, 2), 18000, "C",
            chips=[rectangle(*c, 0.03, 0.03)],
        ),
    ]


# layer key -> (sky cell, exposure names with status, has product, scale)
LAYERS = {
    "L1": ("A", "f606w", "fine", {"u1": "OLD", "u2": "NEW", "u3": "OLD"}, True),
    "L2": ("A", "f814w", "fine", {"j1": "OLD"}, True),
    "L3": ("C", "f160w", "coarse", {"i1": "NEW"}, False),
    "L4": ("C", "f160w", "fine", {"i1": "NEW"}, False),
}


def _centre(conn: sa.Connection, projection_cell: int) -> tuple[float, float]:
    row = conn.execute(
        sa.select(m.ProjectionCellRow.ra_deg, m.ProjectionCellRow.dec_deg).where(m.ProjectionCellRow.id == projection_cell)
    ).one()
    return float(row.ra_deg), float(row.dec_deg)


def build(engine: sa.Engine) -> SmallCatalog:
    """Insert the small catalog into a fresh (migrated, empty) database."""
    cat = SmallCatalog()
    with engine.begin() as conn:
        cells = {"A": (1889, 11, 11), "C": (640, 11, 11)}
        for key, (pc, x, y) in cells.items():
            name = f"skycell-p{pc:04d}x{x:02d}y{y:02d}"
            cat.sky_cells[key] = name
            cat.centres[key] = _centre(conn, pc)
            conn.execute(
                sa.insert(m.SkyCellRow).values(
                    id=skycell_id(pc, x, y), name=name, projection_cell_id=pc, x=x, y=y
                )
            )
        for exp in _exposures(cat.centres["A"], cat.centres["C"]):
            cat.exposures[exp.name] = exp
            cat.exposure_ids[exp.name] = _insert_exposure(conn, exp, cells)
            cat.chip_ranges[exp.name] = _insert_chips(conn, cat.exposure_ids[exp.name], exp)
        for key, (cell, filt, scale, members, has_product) in LAYERS.items():
            cat.layer_ids[key] = _insert_layer(conn, cat, cells[cell], filt, scale, members, has_product)
    return cat


def _insert_exposure(conn: sa.Connection, exp: Exp, cells: dict[str, tuple[int, int, int]]) -> int:
    mjd = (exp.date - MJD0).days + 0.25
    filetype = "flc" if exp.detector in ("UVIS", "WFC") else "flt"
    exposure_id = conn.execute(
        sa.insert(m.Exposure)
        .values(
            ipppssoot=exp.ipppssoot,
            filetype=filetype,
            filename=f"{exp.ipppssoot}_{filetype}.fits",
            path=f"/data/hst/{exp.ipppssoot}_{filetype}.fits",
            instrument=exp.instrument,
            detector=exp.detector,
            filter=exp.filter,
            exptime=exp.exptime,
            expstart=mjd,
            expend=mjd + exp.exptime / 86400,
            date_obs=exp.date if exp.date_obs_known else None,
            proposid=exp.proposid,
            program_id=exp.ipppssoot[1:4].upper(),
            obset_id=exp.ipppssoot[4:6].upper(),
            header_hash="0" * 64,
            wcs_hash="0" * 64,
            excluded_reason=exp.excluded_reason,
        )
        .returning(m.Exposure.id)
    ).scalar_one()
    conn.execute(
        sa.insert(m.ExposureSkyCell).values(exposure_id=exposure_id, sky_cell_id=skycell_id(*cells[exp.sky_cell]))
    )
    return exposure_id


def _insert_chips(conn: sa.Connection, exposure_id: int, exp: Exp) -> list[np.ndarray]:
    all_ranges = []
    for extver, (ra, dec) in enumerate(exp.chips, start=1):
        chip_id = conn.execute(
            sa.insert(m.Chip)
            .values(
                exposure_id=exposure_id, extver=extver, naxis1=4096, naxis2=2051, ra_deg=ra, dec_deg=dec,
                center_ra_deg=float(np.mean(ra)), center_dec_deg=float(np.mean(dec)),
            )
            .returning(m.Chip.id)
        ).scalar_one()
        ranges = chip_ranges(ra, dec)
        conn.execute(
            sa.insert(m.ChipHpx),
            [{"chip_id": chip_id, "hpx": Range(int(lo), int(hi), bounds="[)")} for lo, hi in ranges],
        )
        all_ranges.append(ranges)
    return all_ranges


def _insert_layer(
    conn: sa.Connection,
    cat: SmallCatalog,
    cell: tuple[int, int, int],
    filt: str,
    scale: str,
    members: dict[str, str],
    has_product: bool,
) -> int:
    first = cat.exposures[next(iter(members))]
    name = (
        f"hst_skycell-p{cell[0]:04d}x{cell[1]:02d}y{cell[2]:02d}_{first.instrument.lower()}_"
        f"{first.detector.lower()}_{filt}_{'all' if scale == 'fine' else 'coarse-all'}"
    )
    layer_id = conn.execute(
        sa.insert(m.Layer)
        .values(
            sky_cell_id=skycell_id(*cell), instrument=first.instrument, detector=first.detector,
            filter=filt, scale=scale, name=name,
        )
        .returning(m.Layer.id)
    ).scalar_one()
    conn.execute(
        sa.insert(m.LayerMember),
        [{"layer_id": layer_id, "exposure_id": cat.exposure_ids[n], "status": s} for n, s in members.items()],
    )
    if has_product:
        conn.execute(
            sa.insert(m.Product).values(
                layer_id=layer_id, path=f"/products/{name}_drc.fits", checksum="0" * 64, size_bytes=1,
                n_members=sum(s == "OLD" for s in members.values()),
                box_xmin=0, box_xmax=99, box_ymin=0, box_ymax=99,
            )
        )
    return layer_id
