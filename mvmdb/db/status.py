"""What is in the catalog: schema revision and row counts."""

from __future__ import annotations

import sqlalchemy as sa

from mvmdb.db.engine import connect
from mvmdb.db.models import Base


def row_counts(engine: sa.Engine) -> dict[str, int]:
    """Exact row count of every catalog table (``count(*)``; fine for a status command)."""
    tables = sorted(Base.metadata.tables)
    with connect(engine) as conn:
        return {t: conn.execute(sa.text(f'SELECT count(*) FROM "{t}"')).scalar_one() for t in tables}
