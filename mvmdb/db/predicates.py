"""SQL predicates shared by several catalog modules (text pasted into their statements).

One definition per rule, so that memberships, layer sets and the space-time coverage
queries cannot drift apart.
"""

from __future__ import annotations

__all__ = ["NOT_EXCLUDED", "filter_matches", "filter_param"]

NOT_EXCLUDED = "NOT EXISTS (SELECT 1 FROM exposure_exclusion AS x WHERE x.ipppssoot = e.ipppssoot)"
"""SQL test on ``exposure AS e``: not excluded by the operator or ``mvm qa`` (no row in
``exposure_exclusion``, keyed by ipppssoot, so FLT and FLC alike). Such exposures get no
membership (:mod:`mvmdb.db.members`, :mod:`mvmdb.db.layersets`) and are not usable
coverage (:data:`mvmdb.db.coverage.USABLE`). The ingest rules' ``excluded_reason`` is a
separate test."""


def filter_matches(column: str) -> str:
    """SQL test: ``column`` equals the bound ``:filter``, or ``:filter`` is NULL (no filter asked).

    Bind ``filter`` with :func:`filter_param`: filters are stored normalized, lower case.
    """
    return f"(CAST(:filter AS text) IS NULL OR {column} = CAST(:filter AS text))"


def filter_param(value: str | None) -> str | None:
    """The ``:filter`` parameter for :func:`filter_matches`: lower case, stripped; None or "" gives None."""
    return value.strip().lower() if value else None
