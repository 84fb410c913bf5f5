"""A sky cell as the processor reads it from the catalog: layers, members with chip outlines, products.

Units: angles in degrees; boxes in pixels, 0-based inclusive ``(xmin, xmax, ymin, ymax)``
(the common box fine, a product's box at its layer's scale); exposure times in seconds.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sqlalchemy as sa

from mvmdb.db.layersets import ACTIVE_SQL, KEYS_SQL
from mvmdb.db.models import Chip, Exposure, Layer, LayerMember, Product, SkyCellRow
from mvmdb.sky.grid import SkyCell

__all__ = ["MemberInfo", "LayerInfo", "CellSnapshot", "load_snapshot", "excluded_counts", "active_layers", "unknown_paths", "member_counts"]


@dataclass
class MemberInfo:
    """One exposure of a layer. ``polygons``: its chips' outlines ``(ra_deg, dec_deg)``."""

    path: str
    filetype: str
    exptime: float
    polygons: list[tuple[np.ndarray, np.ndarray]]
    exposure_id: int | None = None
    status: str = "NEW"
    generation: int | None = None
    wcsname: str | None = None
    expstart: float | None = None
    """MJD (UTC) of the exposure start; ``expend`` its end."""
    expend: float | None = None


@dataclass
class LayerInfo:
    """A layer and its members; ``product_*`` describe its current product (if any)."""

    name: str
    instrument: str
    detector: str
    filter: str
    scale: str
    members: list[MemberInfo]
    id: int | None = None
    product_path: str | None = None
    product_box: tuple[int, int, int, int] | None = None
    product_members: int = 0
    product_keywords: dict[str, Any] = field(default_factory=dict)
    n_excluded: int = 0
    """Exposures of the layer's sky cell, instrument, detector and filter excluded by the
    operator or ``mvm qa`` (``exposure_exclusion``)."""
    layer_set: str = "all"
    """Layer set (:mod:`mvmdb.layersets`): all, year, exptime or epochs; ``layer_key`` its key."""
    layer_key: str = "all"
    active: bool = True
    """False for a layer of a disabled layer set: it is not drawn (its product is only re-embedded)."""


@dataclass
class CellSnapshot:
    """A sky cell as the catalog holds it: its stored common box (fine px, 0-based inclusive) and layers."""

    id: int
    name: str
    cell: SkyCell
    stored_box: tuple[int, int, int, int] | None
    layers: list[LayerInfo]


def load_snapshot(conn: sa.Connection, sky_cell_id: int) -> CellSnapshot:
    """Read a sky cell, its layers, members (with chip outlines) and products from the catalog."""
    cell = conn.execute(sa.select(SkyCellRow.__table__).where(SkyCellRow.id == sky_cell_id)).one()
    rows = conn.execute(
        sa.select(
            Layer.id, Layer.name, Layer.instrument, Layer.detector, Layer.filter, Layer.scale,
            Layer.layer_set, Layer.layer_key,
            LayerMember.exposure_id, LayerMember.status, LayerMember.generation,
            Exposure.path, Exposure.filetype, Exposure.exptime, Exposure.wcsname, Exposure.expstart, Exposure.expend,
        )
        .join(LayerMember, LayerMember.layer_id == Layer.id)
        .join(Exposure, Exposure.id == LayerMember.exposure_id)
        .where(Layer.sky_cell_id == sky_cell_id)
        .order_by(Layer.name, Exposure.filename)
    ).all()
    polys = _chip_outlines(conn, sorted({r.exposure_id for r in rows}))
    products = _products(conn, sky_cell_id)
    excluded = excluded_counts(conn, sky_cell_id)
    active = active_layers(conn, sky_cell_id)
    layers: dict[int, LayerInfo] = {}
    for r in rows:
        lay = layers.get(r.id)
        if lay is None:
            p = products.get(r.id)
            lay = layers[r.id] = LayerInfo(
                name=r.name, instrument=r.instrument, detector=r.detector, filter=r.filter, scale=r.scale,
                members=[], id=r.id, product_path=p.path if p else None,
                product_box=(p.box_xmin, p.box_xmax, p.box_ymin, p.box_ymax) if p else None,
                product_members=p.n_members if p else 0, product_keywords=dict(p.keywords) if p else {},
                n_excluded=excluded.get(r.id, 0), layer_set=r.layer_set, layer_key=r.layer_key,
                active=r.id in active,
            )
        lay.members.append(
            MemberInfo(path=r.path, filetype=r.filetype, exptime=float(r.exptime), polygons=polys.get(r.exposure_id, []),
                       exposure_id=r.exposure_id, status=r.status, generation=r.generation, wcsname=r.wcsname,
                       expstart=r.expstart, expend=r.expend)
        )
    stored = None
    if cell.box_xmin is not None:
        stored = (cell.box_xmin, cell.box_xmax, cell.box_ymin, cell.box_ymax)
    return CellSnapshot(cell.id, cell.name, SkyCell.from_name(cell.name), stored, list(layers.values()))


_EXCLUDED = f"""
SELECT l.id, count(DISTINCT e.id) AS n
FROM layer l
JOIN exposure_sky_cell esc ON esc.sky_cell_id = l.sky_cell_id
JOIN exposure e ON e.id = esc.exposure_id AND e.instrument = l.instrument AND e.detector = l.detector
                AND e.filter = l.filter AND e.excluded_reason IS NULL
JOIN exposure_exclusion x ON x.ipppssoot = e.ipppssoot
CROSS JOIN LATERAL (SELECT l.layer_set AS name, ARRAY[l.layer_key] AS ranges) AS c
WHERE l.sky_cell_id = :id AND (l.layer_set = 'all' OR l.layer_key IN ({KEYS_SQL}))
GROUP BY l.id
"""
"""Excluded exposures per layer; a time-domain layer counts those its key would hold (an epoch's
key is its date range, so automatic epochs count the excluded exposures inside it)."""


def excluded_counts(conn: sa.Connection, sky_cell_id: int) -> dict[int, int]:
    """Per layer id of the sky cell, how many exposures that would be members are excluded
    (``exposure_exclusion``: operator, trailed, alignment); layers without any are absent."""
    return {r.id: int(r.n) for r in conn.execute(sa.text(_EXCLUDED), {"id": sky_cell_id})}


def active_layers(conn: sa.Connection, sky_cell_id: int) -> set[int]:
    """Ids of the sky cell's layers that are drawn: set ``all``, or a layer set enabled for it
    (:data:`mvmdb.db.layersets.ACTIVE_SQL`)."""
    return set(conn.execute(sa.text(f"SELECT l.id FROM layer AS l WHERE l.sky_cell_id = :id AND {ACTIVE_SQL}"),
                            {"id": sky_cell_id}).scalars())


def _chip_outlines(conn: sa.Connection, exposure_ids: list[int]) -> dict[int, list]:
    """Per exposure id, its chips' outlines ``(ra_deg, dec_deg)`` in EXTVER order."""
    polys: dict[int, list] = {}
    if exposure_ids:
        for c in conn.execute(
            sa.select(Chip.exposure_id, Chip.ra_deg, Chip.dec_deg)
            .where(Chip.exposure_id.in_(exposure_ids))
            .order_by(Chip.exposure_id, Chip.extver)
        ):
            polys.setdefault(c.exposure_id, []).append((np.asarray(c.ra_deg, float), np.asarray(c.dec_deg, float)))
    return polys


def _products(conn: sa.Connection, sky_cell_id: int) -> dict[int, sa.Row]:
    """The current product row of each layer of the sky cell, by layer id."""
    return {
        p.layer_id: p
        for p in conn.execute(
            sa.select(Product.layer_id, Product.path, Product.box_xmin, Product.box_xmax, Product.box_ymin,
                      Product.box_ymax, Product.n_members, Product.keywords)
            .join(Layer, Layer.id == Product.layer_id)
            .where(Layer.sky_cell_id == sky_cell_id)
        )
    }


def unknown_paths(engine: sa.Engine, paths: Sequence[str]) -> list[str]:
    """Those of ``paths`` (absolute) the catalog knows neither by path nor by file name."""
    with engine.connect() as conn:
        known_paths = set(conn.execute(sa.select(Exposure.path).where(Exposure.path.in_(list(paths)))).scalars())
        names = [os.path.basename(p) for p in paths if p not in known_paths]
        known_names = set(
            conn.execute(sa.select(Exposure.filename).where(Exposure.filename.in_(names))).scalars()
        ) if names else set()
    return [p for p in paths if p not in known_paths and os.path.basename(p) not in known_names]


def member_counts(engine: sa.Engine, sky_cell_id: int) -> list[tuple[str, int]]:
    """``(layer name, number of members)`` of each layer of the sky cell, by name."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(Layer.name, sa.func.count()).join(LayerMember, LayerMember.layer_id == Layer.id)
            .where(Layer.sky_cell_id == sky_cell_id).group_by(Layer.name).order_by(Layer.name)
        ).all()
    return [(name, int(n)) for name, n in rows]
