"""Current products in the catalog (one row per layer that has a product on disk)."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple, Sequence

import sqlalchemy as sa

__all__ = ["ProductRow", "current_products", "checksums_by_path"]


class ProductRow(NamedTuple):
    """One current product; ``layer`` is its basename without ``_dr[cz].fits``."""

    layer: str
    skycell: str
    detector: str
    filter: str
    scale: str  # fine | coarse
    path: Path


_SQL = """
SELECT l.name AS layer, s.name AS skycell, l.detector, l.filter, l.scale, p.path
FROM product p JOIN layer l ON l.id = p.layer_id JOIN sky_cell s ON s.id = l.sky_cell_id
{where}
ORDER BY s.name, l.name
"""


def current_products(engine: sa.Engine, skycells: Sequence[str] | None = None) -> list[ProductRow]:
    """Every current product, or those of the named sky cells (``skycell-pPPPPxXXyYY``)."""
    where, params = "", {}
    if skycells is not None:
        where, params = "WHERE s.name = ANY(:names)", {"names": list(skycells)}
    with engine.connect() as conn:
        return [
            ProductRow(r.layer, r.skycell, r.detector, r.filter, r.scale, Path(r.path))
            for r in conn.execute(sa.text(_SQL.format(where=where)), params)
        ]


def checksums_by_path(engine: sa.Engine, paths: Sequence[str]) -> dict[str, str]:
    """``{path: sha256 hex}`` of the catalogued products stored at ``paths`` (absent: not catalogued)."""
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT path, checksum FROM product WHERE path = ANY(:paths)"),
                            {"paths": [str(p) for p in paths]})
        return {r.path: r.checksum for r in rows}

