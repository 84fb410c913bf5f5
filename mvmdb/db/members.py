"""Layer memberships: the whole NEW/OLD life of ``layer_member``, in one place.

A membership is born NEW (ingest: :func:`write_new`, which also marks every member of a
layer whose membership changed NEW again, with a fresh ``member_generation_seq`` value);
the planner reads the layers with NEW members (:func:`plan_rows`, the ``plan_rows``
statement of ``schema/plan.sql``); a finished job flips the memberships it drew to OLD
(:func:`flip_old`), only those with ``generation <= job.generation``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from mvmdb.db.models import Layer, LayerMember
from mvmdb.resources import sql_statements

__all__ = ["max_new_generation", "plan_rows", "flip_old"]


def max_new_generation(conn: sa.Connection, sky_cell_id: int) -> int | None:
    """The highest generation of the sky cell's NEW memberships (None when it has none)."""
    return conn.execute(
        sa.select(sa.func.max(LayerMember.generation))
        .join(Layer, Layer.id == LayerMember.layer_id)
        .where(Layer.sky_cell_id == sky_cell_id, LayerMember.status == "NEW")
    ).scalar()


def plan_rows(conn: sa.Connection, skycells: Sequence[str] | None = None) -> list[sa.Row]:
    """Run the plan query: one row per (sky cell, exposure) of every layer with NEW members.

    Columns in the order of ``plan_rows`` in ``schema/plan.sql``; rows ordered by sky cell,
    then file name. ``skycells``: full names, or None for all. Runs in the caller's
    transaction, with settings local to it: enough ``work_mem`` for the sort of a nightly
    plan (~100 k rows) to stay in memory, and no JIT compilation, which costs more than it
    saves on this index-driven join.
    """
    conn.exec_driver_sql("SET LOCAL work_mem = '64MB'")
    conn.exec_driver_sql("SET LOCAL jit = off")
    params = {"skycells": list(skycells) if skycells else None}
    return conn.execute(sa.text(sql_statements("plan.sql")["plan_rows"]), params).all()


def flip_old(conn: sa.Connection, layer_id: int, exposure_ids: Sequence[int], generation: int) -> None:
    """NEW -> OLD for the given memberships of a layer whose generation is ``<= generation``."""
    conn.execute(
        sa.update(LayerMember)
        .where(
            LayerMember.layer_id == layer_id,
            LayerMember.status == "NEW",
            LayerMember.generation <= generation,
            LayerMember.exposure_id.in_(list(exposure_ids)),
        )
        .values(status="OLD", changed_at=sa.func.now())
    )
