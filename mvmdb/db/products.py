"""Current products in the catalog (one row per layer that has a product on disk)."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple, Sequence

import sqlalchemy as sa

__all__ = ["ProductRow", "current_products", "checksums_by_path", "retire_memberless"]


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



_RETIRE_MEMBERLESS = """
DELETE FROM product AS p USING layer AS l
WHERE l.id = p.layer_id AND {where}
  AND NOT EXISTS (SELECT 1 FROM layer_member AS m WHERE m.layer_id = p.layer_id)
RETURNING l.name, p.path
"""


def retire_memberless(conn: sa.Connection, *, sky_cell_id: int | None = None,
                      layer_ids: Sequence[int] | None = None) -> list[tuple[str, str]]:
    """Delete the product rows of layers that have no member; return ``(layer, path)``.

    Looks at the layers of one sky cell (``sky_cell_id``: a job retiring orphans before it
    draws) or at the given layers (``layer_ids``: ``mvm exclude`` after removing memberships);
    exactly one of the two. Such a product is an orphan: its layer's last exposure was
    excluded, an automatic epoch was renamed by a new exposure (its members moved to the new
    key), or every exposure left the layer. The layer row stays (its name may come back).
    Runs in the caller's transaction; the caller removes the files after COMMIT.
    """
    if (sky_cell_id is None) == (layer_ids is None):
        raise ValueError("retire_memberless needs sky_cell_id or layer_ids, not both")
    if sky_cell_id is not None:
        where, params = "l.sky_cell_id = :sky_cell_id", {"sky_cell_id": sky_cell_id}
    else:
        where, params = "p.layer_id = ANY(CAST(:ids AS integer[]))", {"ids": list(layer_ids)}
    rows = conn.execute(sa.text(_RETIRE_MEMBERLESS.format(where=where)), params).all()
    return sorted((r.name, r.path) for r in rows)
