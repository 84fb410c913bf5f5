"""Sky-cell rows of the catalog: which names are known, their ids, the stored common box."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from mvmdb.db.models import SkyCellRow

__all__ = ["known_names", "id_of", "set_common_box"]


def known_names(conn: sa.Connection, names: Sequence[str]) -> set[str]:
    """Those of ``names`` (full ``skycell-pPPPPxXXyYY`` names) that the catalog has."""
    return set(conn.execute(sa.select(SkyCellRow.name).where(SkyCellRow.name.in_(list(names)))).scalars())


def id_of(conn: sa.Connection, name: str) -> int | None:
    """The id of the catalogued sky cell ``name``, or None."""
    return conn.execute(sa.select(SkyCellRow.id).where(SkyCellRow.name == name)).scalar()


def set_common_box(conn: sa.Connection, sky_cell_id: int, box: tuple[int, int, int, int]) -> None:
    """Store the sky cell's common trimmed box: fine px, 0-based inclusive ``(xmin, xmax, ymin, ymax)``."""
    conn.execute(
        sa.update(SkyCellRow)
        .where(SkyCellRow.id == sky_cell_id)
        .values(box_xmin=box[0], box_xmax=box[1], box_ymin=box[2], box_ymax=box[3])
    )
