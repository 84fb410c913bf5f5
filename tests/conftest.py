"""Fixtures shared by all tests.

Database tests talk to a real PostgreSQL (see :mod:`mvmdb.testing`): each test gets
its own fresh database, migrated to head, and drops it afterwards.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from mvmdb.db.engine import make_engine
from mvmdb.testing import DatabaseFactory, admin_url

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
HST_DIR = SHARED / "hst"


@pytest.fixture(scope="session")
def db_factory():
    factory = DatabaseFactory(admin_url())
    factory.create_template()
    yield factory
    factory.close()


@pytest.fixture
def db_url(db_factory):
    """URL of a fresh database with the schema at head (dropped after the test)."""
    url = db_factory.create()
    yield url
    db_factory.drop(url)


@pytest.fixture
def engine(db_url):
    eng = make_engine(db_url, poolclass=sa.pool.NullPool)
    yield eng
    eng.dispose()


@pytest.fixture
def empty_db_url(db_factory):
    """URL of a fresh database with no schema at all."""
    url = db_factory.create(migrated=False)
    yield url
    db_factory.drop(url)


@pytest.fixture(scope="session")
def hst_dir() -> Path:
    """The real HST files shipped beside the repository (``../shared/hst``)."""
    if not HST_DIR.is_dir():
        pytest.skip("../shared/hst is not present beside this checkout")
    return HST_DIR
