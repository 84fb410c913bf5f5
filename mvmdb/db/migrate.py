"""Running the alembic migrations (the only way the schema is made).

The migration scripts are the top-level ``migrations/`` folder of the checkout, shipped
inside the package by a wheel (:func:`mvmdb.resources.resource_dir`); ``MVMDB_MIGRATIONS``
may point elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from mvmdb.db.engine import connect
from mvmdb.errors import ConfigError, SchemaOutOfDate
from mvmdb.resources import resource_dir


def migrations_dir() -> Path:
    env = os.environ.get("MVMDB_MIGRATIONS")
    path = Path(env) if env else resource_dir("migrations")
    if not (path / "env.py").exists():
        raise ConfigError(f"alembic migrations not found in {path} (set MVMDB_MIGRATIONS)")
    return path


def alembic_config(connection: sa.Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: sa.Engine) -> str | None:
    with connect(engine) as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: sa.Engine, revision: str = "head") -> None:
    with connect(engine) as conn, conn.begin():
        command.upgrade(alembic_config(conn), revision)


def downgrade(engine: sa.Engine, revision: str) -> None:
    with connect(engine) as conn, conn.begin():
        command.downgrade(alembic_config(conn), revision)


def require_current(engine: sa.Engine) -> str:
    """Raise :class:`SchemaOutOfDate` unless the database is at the code's head revision."""
    current = current_revision(engine)
    head = head_revision()
    if current is None:
        raise SchemaOutOfDate("the database has no mvmdb schema: run mvm init")
    if current != head:
        script = ScriptDirectory.from_config(alembic_config())
        known = {rev.revision for rev in script.walk_revisions()}
        if current in known:
            raise SchemaOutOfDate(f"database schema is at revision {current}, code expects {head}: run mvm db upgrade")
        raise SchemaOutOfDate(
            f"database schema revision {current} is unknown to this code (newer mvmdb?); expected {head}"
        )
    return current
