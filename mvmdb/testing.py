"""Test support: a real PostgreSQL server and throw-away databases.

Used by ``tests/conftest.py`` and by benchmarks. The server is, in order:
``MVMDB_TEST_ADMIN_URL`` if set; PostgreSQL at 127.0.0.1:5432 (user ``postgres``) if it
answers; otherwise an embedded server started in a temporary directory.
Each database is created from a template that already has the schema at head, so a
fresh database costs ~0.1 s instead of a migration run.
"""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL

from mvmdb.db import migrate
from mvmdb.db.admin import create_database, drop_database
from mvmdb.db.engine import make_engine, normalize_url, start_embedded_server

LOCAL_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def _answers(url: URL) -> bool:
    engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect():
            return True
    except sa.exc.OperationalError:
        return False
    finally:
        engine.dispose()


def admin_url() -> URL:
    """A URL to the ``postgres`` database of a server where we may create databases."""
    env = os.environ.get("MVMDB_TEST_ADMIN_URL")
    if env:
        return normalize_url(env)
    local = normalize_url(LOCAL_ADMIN_URL)
    if _answers(local):
        return local
    data_dir = Path(tempfile.gettempdir()) / f"mvmdb-test-pg-{os.getuid()}"
    return start_embedded_server(data_dir).set(database="postgres")


class DatabaseFactory:
    """Creates and drops uniquely named databases on one server."""

    def __init__(self, admin: URL, prefix: str = "mvmdb_test"):
        self.admin = admin
        self.prefix = prefix
        self._admin_engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
        self.template = f"{prefix}_template_{uuid.uuid4().hex[:8]}"

    def create_template(self) -> None:
        """Make the template database with the schema migrated to head."""
        create_database(self._admin_engine, self.template)
        engine = make_engine(self.admin.set(database=self.template), poolclass=sa.pool.NullPool)
        migrate.upgrade(engine)
        engine.dispose()

    def create(self, *, migrated: bool = True) -> URL:
        name = f"{self.prefix}_{uuid.uuid4().hex[:12]}"
        if migrated:
            create_database(self._admin_engine, name, template=self.template)
        else:
            create_database(self._admin_engine, name)
        return self.admin.set(database=name)

    def drop(self, url: URL) -> None:
        drop_database(self._admin_engine, url.database)

    def sessions(self, url: URL, *, wait_s: float = 30.0) -> list[str]:
        """The sessions still connected to ``url``'s database, one line each (pid, application, state, query).

        A client that closed its connection leaves ``pg_stat_activity`` as soon as its server
        process exits; this waits up to ``wait_s`` seconds for that, so only connections still
        open are listed (a test that leaked one: its owner forgot ``close()`` or ``dispose()``).
        """
        sql = sa.text("SELECT pid, application_name, state, left(query, 80) AS query "
                      "FROM pg_stat_activity WHERE datname = :name AND pid <> pg_backend_pid()")
        deadline = time.monotonic() + wait_s
        while True:
            with self._admin_engine.connect() as conn:
                rows = conn.execute(sql, {"name": url.database}).all()
            if not rows or time.monotonic() >= deadline:
                return [f"pid {r.pid} {r.application_name or '-'} {r.state}: {r.query}" for r in rows]
            time.sleep(0.05)

    def close(self) -> None:
        drop_database(self._admin_engine, self.template)
        self._admin_engine.dispose()
