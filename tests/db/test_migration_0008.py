"""Migration 0008: nightly runs over a root path of any length (hash index on ingest_run.root)."""

from __future__ import annotations

import hashlib

import pytest
import sqlalchemy as sa

from mvmdb.db import migrate, runs
from mvmdb.db.engine import make_engine

# ~4 kB that do not compress (PostgreSQL compresses index entries: a run of one letter would fit)
LONG_ROOT = "/archive/" + "/".join(hashlib.sha512(str(i).encode()).hexdigest() for i in range(32))


def test_runs_of_a_long_root_are_recorded_and_found(empty_db_url):
    engine = make_engine(empty_db_url, poolclass=sa.pool.NullPool)
    migrate.upgrade(engine)
    assert len(LONG_ROOT.encode()) > 2704
    run_id, started = runs.start(engine, LONG_ROOT)
    runs.finish(engine, run_id, "success", {"files": 0})
    assert runs.last_success(engine, LONG_ROOT) == started
    assert runs.last_success(engine, LONG_ROOT[:-1]) is None
    with pytest.raises(sa.exc.DBAPIError, match="delete those rows first"):
        migrate.downgrade(engine, "0007")  # the older b-tree cannot hold that root
    assert migrate.current_revision(engine) == "0008"
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:  # as the message says
        conn.execute(sa.text("DELETE FROM ingest_run WHERE octet_length(root) > 2000"))
        conn.execute(sa.text("VACUUM ingest_run"))
    migrate.downgrade(engine, "0007")
    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == migrate.head_revision() == "0008"
    engine.dispose()
