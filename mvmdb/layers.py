"""Enable, disable and list time-domain layer sets (``mvm layers``; issue 17).

A layer set (:mod:`mvmdb.layersets`: ``year``, ``exptime``, ``epochs``) is enabled for the
whole catalog or for one sky cell. Enabling creates, in one transaction and with
set-based SQL (:func:`mvmdb.db.layersets.sync`), the memberships of every exposure
already catalogued, all NEW, so the next ``mvm plan`` lists the new layers and
``mvm process`` draws them; from then on ingest adds the memberships of new exposures
(:func:`mvmdb.db.members.write_new`). Disabling stops planning and drawing the set's
layers; their layers, memberships and products stay (enable again to resume: the
memberships are brought up to date then).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from mvmdb import layersets
from mvmdb.db import layersets as db_layersets
from mvmdb.db.layersets import LayerSetConfig, LayerSetSummary, SyncResult
from mvmdb.db.models import CATALOG_SCOPE
from mvmdb.errors import MvmdbError
from mvmdb.sky.grid import SkyCell, normalize_skycell_names

__all__ = ["SETS", "LayerSetError", "EnableResult", "enable", "disable", "list_sets", "summary_json"]

log = logging.getLogger(__name__)

SETS = ("year", "exptime", "epochs")
"""The sets a user can enable (``all`` is always on)."""


class LayerSetError(MvmdbError):
    """A layer set cannot be enabled or disabled as asked."""


@dataclass(frozen=True)
class EnableResult:
    """An enabled (or disabled) entry and, for enable, what the memberships sync changed."""

    config: LayerSetConfig
    sync: SyncResult | None
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        c = self.config
        out = {"set": c.name, "scope": c.scope, "enabled": c.enabled, "gap_days": c.gap_days,
               "ranges": c.ranges}
        if self.sync is not None:
            out.update(self.sync._asdict())
        return out


def _scope(skycell: str | None) -> tuple[str, int | None]:
    if skycell is None:
        return CATALOG_SCOPE, None
    try:
        (name,) = normalize_skycell_names([skycell])
    except ValueError as exc:
        raise LayerSetError(str(exc)) from None
    return name, SkyCell.from_name(name).id


def _check_name(name: str) -> None:
    if name not in SETS:
        raise LayerSetError(f"unknown layer set {name!r} (choose from {', '.join(SETS)}; 'all' is always on)")


def _options(name: str, gap_days: float | None, ranges: Sequence[str]) -> tuple[float | None, list[str] | None]:
    """Validated options of a set: epochs take --range (one or more) or --gap-days, the others none."""
    _check_name(name)
    if name != "epochs":
        if gap_days is not None or ranges:
            raise LayerSetError(f"--gap-days and --range apply to the epochs set only, not {name!r}")
        return None, None
    if (gap_days is None) == (not ranges):
        raise LayerSetError("the epochs set needs either --range A..B (repeatable) or --gap-days N")
    if gap_days is not None:
        if not gap_days > 0:
            raise LayerSetError("--gap-days must be > 0")
        return float(gap_days), None
    try:
        keys = sorted({layersets.parse_date_range(r).key for r in ranges})
    except ValueError as exc:
        raise LayerSetError(str(exc)) from None
    return None, keys


def enable(engine: sa.Engine, name: str, *, gap_days: float | None = None, ranges: Sequence[str] = (),
           skycell: str | None = None) -> EnableResult:
    """Enable a set (catalog-wide, or for ``skycell``) and create the memberships of the exposures
    already catalogued (NEW), in one transaction. Enabling again updates the options (epoch
    ranges) and brings the memberships up to date."""
    gap, keys = _options(name, gap_days, ranges)
    scope, cell_id = _scope(skycell)
    t0 = time.perf_counter()
    with engine.begin() as conn:
        config = db_layersets.upsert(conn, name, scope, cell_id, gap_days=gap, ranges=keys)
        result = db_layersets.sync(conn, name, cell_id)
    seconds = time.perf_counter() - t0
    log.info("layer set %s enabled for %s: %d layers created, %d memberships added, %d removed (%.1f s)",
             name, scope, result.layers_created, result.added, result.removed, seconds)
    return EnableResult(config, result, seconds)


def disable(engine: sa.Engine, name: str, *, skycell: str | None = None) -> EnableResult:
    """Disable a set's entry: its layers are no longer planned or drawn (layers, memberships and
    products stay). An entry that does not exist is an error."""
    _check_name(name)
    scope, _ = _scope(skycell)
    with engine.begin() as conn:
        config = db_layersets.set_enabled(conn, name, scope, False)
    if config is None:
        raise LayerSetError(f"layer set {name!r} was never enabled for {scope}")
    return EnableResult(config, None)


def list_sets(engine: sa.Engine) -> list[LayerSetSummary]:
    """``all`` and every set entry with its layer, product, membership and NEW counts."""
    with engine.connect() as conn:
        return db_layersets.summaries(conn)


def summary_json(s: LayerSetSummary) -> dict[str, Any]:
    """The ``mvm layers list --json`` object of one entry."""
    out = s._asdict()
    out["set"] = out.pop("name")
    out["changed_at"] = None if s.changed_at is None else s.changed_at.isoformat()
    return out
