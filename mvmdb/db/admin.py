"""Creating and dropping databases on a server (throw-away test and benchmark databases)."""

from __future__ import annotations

import sqlalchemy as sa

__all__ = ["create_database", "drop_database"]


def create_database(admin: sa.Engine, name: str, *, template: str | None = None) -> None:
    """``CREATE DATABASE name`` (a copy of ``template`` if given); ``admin`` must autocommit."""
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")))


def drop_database(admin: sa.Engine, name: str) -> None:
    """``DROP DATABASE IF EXISTS name WITH (FORCE)`` (its sessions are terminated)."""
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
