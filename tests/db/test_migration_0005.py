"""Migration 0005 (exclusions, their events, qa checks and settings): upgrade and downgrade."""

from __future__ import annotations

import sqlalchemy as sa

from mvmdb.db import migrate
from mvmdb.db.engine import make_engine

NEW_TABLES = {"exposure_exclusion", "exclusion_event", "qa_check", "qa_sources", "qa_setting"}


def _tables(engine: sa.Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names())


def test_migration_0005_adds_and_drops_its_tables(empty_db_url):
    engine = make_engine(empty_db_url, poolclass=sa.pool.NullPool)
    migrate.upgrade(engine, "0004")
    assert not NEW_TABLES & _tables(engine)
    migrate.upgrade(engine, "0005")
    assert NEW_TABLES <= _tables(engine)
    with engine.begin() as conn:
        settings = dict(conn.execute(sa.text("SELECT name, value FROM qa_setting")).all())
        assert settings == {"alignment_policy": "report", "alignment_threshold_mas": "20"}
        conn.execute(sa.text("INSERT INTO exposure_exclusion (ipppssoot, kind, reason, excluded_by) "
                             "VALUES ('j9ab01a1q', 'operator', 'why', 'me')"))
    with engine.begin() as conn:
        try:
            conn.execute(sa.text("INSERT INTO exposure_exclusion (ipppssoot, kind, reason, excluded_by) "
                                 "VALUES ('j9ab01a2q', 'whim', 'why', 'me')"))
        except sa.exc.IntegrityError:
            conn.rollback()
        else:  # pragma: no cover
            raise AssertionError("kind is checked")
    migrate.downgrade(engine, "0004")
    assert not NEW_TABLES & _tables(engine)
    migrate.upgrade(engine, "0005")
    assert NEW_TABLES <= _tables(engine)
    engine.dispose()
