"""Pixel quality check results (``qa_check``, ``qa_sources``) and settings (``qa_setting``) of ``mvm qa``.

One ``qa_check`` row per exposure (ipppssoot) and check (``trail``, ``alignment``): the
latest result, with the file's size and mtime when checked (a file that changed since is
checked again) and the exposure's WCS family (:func:`mvmdb.rules.wcs_family`). Values:
trail score 0-1, alignment offset in milliarcseconds (NULL when unmeasured).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np
import sqlalchemy as sa

__all__ = [
    "POLICIES", "ToCheck", "LayerSources", "settings", "set_setting", "to_check", "store_checks", "store_sources",
    "layer_sources", "layers_of", "checks",
]

POLICIES = ("report", "exclude")
"""``alignment_policy``: report flagged visits only, or exclude them."""


class ToCheck(NamedTuple):
    """An exposure ``mvm qa`` reads: ``file_size`` bytes, ``file_mtime_ns`` as the catalog holds them."""

    ipppssoot: str
    path: str
    file_size: int | None
    file_mtime_ns: int | None
    wcsname: str | None


class LayerSources(NamedTuple):
    """One member of a layer with its stored alignment sources (degrees)."""

    layer: str
    skycell: str
    ipppssoot: str
    ra_deg: np.ndarray
    dec_deg: np.ndarray


def settings(conn: sa.Connection) -> dict[str, str]:
    """``qa_setting`` as a dict (``alignment_policy``, ``alignment_threshold_mas``)."""
    return dict(conn.execute(sa.text("SELECT name, value FROM qa_setting")).all())


def set_setting(conn: sa.Connection, name: str, value: str) -> None:
    """Store one setting (insert or replace)."""
    conn.execute(sa.text("INSERT INTO qa_setting (name, value) VALUES (:n, :v) "
                         "ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value"), {"n": name, "v": str(value)})


_TO_CHECK = """
SELECT DISTINCT e.ipppssoot, e.path, e.file_size, e.file_mtime_ns, e.wcsname
FROM exposure e
LEFT JOIN qa_check q ON q.ipppssoot = e.ipppssoot AND q."check" = 'trail'
WHERE e.excluded_reason IS NULL
  AND (q.ipppssoot IS NULL OR q.file_size IS DISTINCT FROM e.file_size
       OR q.file_mtime_ns IS DISTINCT FROM e.file_mtime_ns)
  AND (CAST(:skycells AS text[]) IS NULL OR EXISTS (
        SELECT 1 FROM exposure_sky_cell c JOIN sky_cell s ON s.id = c.sky_cell_id
        WHERE c.exposure_id = e.id AND s.name = ANY (CAST(:skycells AS text[]))))
ORDER BY e.ipppssoot
"""


def to_check(conn: sa.Connection, skycells: Sequence[str] | None = None) -> list[ToCheck]:
    """Usable exposures (ingest rules) never checked, or whose file size or mtime changed since,
    in the named sky cells (None: all)."""
    rows = conn.execute(sa.text(_TO_CHECK), {"skycells": list(skycells) if skycells else None})
    return [ToCheck(*r) for r in rows]


_STORE = """
INSERT INTO qa_check AS q (ipppssoot, "check", flagged, value, reason, wcs_family, file_size, file_mtime_ns)
VALUES (:ipppssoot, :check, :flagged, :value, :reason, :wcs_family, :file_size, :file_mtime_ns)
ON CONFLICT (ipppssoot, "check") DO UPDATE
SET flagged = EXCLUDED.flagged, value = EXCLUDED.value, reason = EXCLUDED.reason,
    wcs_family = COALESCE(EXCLUDED.wcs_family, q.wcs_family),
    file_size = COALESCE(EXCLUDED.file_size, q.file_size),
    file_mtime_ns = COALESCE(EXCLUDED.file_mtime_ns, q.file_mtime_ns), checked_at = now()
"""


def store_checks(conn: sa.Connection, rows: Iterable[dict]) -> None:
    """Insert or replace check rows: ``ipppssoot, check, flagged, value, reason`` and optionally
    ``wcs_family, file_size, file_mtime_ns`` (a NaN value is stored as NULL)."""
    params = []
    for r in rows:
        v = r.get("value")
        params.append({"wcs_family": None, "file_size": None, "file_mtime_ns": None, **r,
                       "value": None if v is None or not math.isfinite(v) else float(v)})
    if params:
        conn.execute(sa.text(_STORE), params)


def store_sources(conn: sa.Connection, ipppssoot: str, ra_deg: np.ndarray, dec_deg: np.ndarray) -> None:
    """Insert or replace the alignment sources of one exposure (degrees)."""
    conn.execute(sa.text("INSERT INTO qa_sources (ipppssoot, ra_deg, dec_deg) VALUES (:i, :r, :d) "
                         "ON CONFLICT (ipppssoot) DO UPDATE SET ra_deg = EXCLUDED.ra_deg, dec_deg = EXCLUDED.dec_deg"),
                 {"i": ipppssoot, "r": [float(x) for x in ra_deg], "d": [float(x) for x in dec_deg]})


_LAYERS_OF = """
SELECT DISTINCT m.layer_id FROM layer_member m JOIN exposure e ON e.id = m.exposure_id
WHERE e.ipppssoot = ANY (CAST(:ipps AS text[]))
"""


def layers_of(conn: sa.Connection, ipppssoots: Sequence[str]) -> list[int]:
    """Ids of the layers these exposures are members of."""
    return sorted(conn.execute(sa.text(_LAYERS_OF), {"ipps": list(ipppssoots)}).scalars())


_LAYER_SOURCES = """
SELECT l.name, s.name, e.ipppssoot, q.ra_deg, q.dec_deg
FROM layer l JOIN sky_cell s ON s.id = l.sky_cell_id
JOIN layer_member m ON m.layer_id = l.id JOIN exposure e ON e.id = m.exposure_id
JOIN qa_sources q ON q.ipppssoot = e.ipppssoot
WHERE l.id = ANY (CAST(:ids AS integer[]))
  AND NOT EXISTS (SELECT 1 FROM qa_check t WHERE t.ipppssoot = e.ipppssoot AND t."check" = 'trail' AND t.flagged)
ORDER BY l.name, e.ipppssoot
"""


def layer_sources(conn: sa.Connection, layer_ids: Sequence[int]) -> list[LayerSources]:
    """The members of these layers that have stored sources, by layer name and ipppssoot; members
    flagged as trailed are left out (their smeared centroids would bias the layer's reference)."""
    return [LayerSources(r[0], r[1], r[2], np.asarray(r[3], float), np.asarray(r[4], float))
            for r in conn.execute(sa.text(_LAYER_SOURCES), {"ids": list(layer_ids)})]


def checks(conn: sa.Connection, ipppssoots: Sequence[str]) -> list[sa.Row]:
    """Stored check rows of these exposures: ``ipppssoot, check, flagged, value, reason, wcs_family, checked_at``."""
    return conn.execute(sa.text(
        'SELECT ipppssoot, "check", flagged, value, reason, wcs_family, checked_at FROM qa_check '
        'WHERE ipppssoot = ANY (CAST(:ipps AS text[])) ORDER BY ipppssoot, "check"'), {"ipps": list(ipppssoots)}).all()
