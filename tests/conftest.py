"""Fixtures shared by all tests.

Database tests talk to a real PostgreSQL (see :mod:`mvmdb.testing`): each test gets
its own fresh database, migrated to head, and drops it afterwards.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, settings

from hst_files import hst_dir as _hst_dir
from mvmdb.db.engine import make_engine
from mvmdb.testing import DatabaseFactory, admin_url

# No test may depend on how fast or idle the machine is: Hypothesis gets no per-example
# deadline and no "too slow" health check, and draws the same examples on every run
# (a failure found once is found again). ``HYPOTHESIS_PROFILE=explore`` searches afresh.
settings.register_profile("repeatable", deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("explore", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))

# Disk: a few tests draw scenes whose sky-cell boxes are full size (tens of millions of 0.04"
# pixels, several GB of products a module). They are marked xdist_group("full_size_products"),
# which ``python3 tasks.py test`` (pytest --dist loadgroup) runs on one worker one after the
# other, and their fixtures delete the products when done (pytest keeps the last 3 runs' tmp).


@pytest.fixture(scope="session")
def db_factory():
    factory = DatabaseFactory(admin_url())
    factory.create_template()
    yield factory
    factory.close()


@pytest.fixture
def db_url(db_factory):
    """URL of a fresh database with the schema at head (dropped after the test; the test fails if
    it left a connection to it open)."""
    url = db_factory.create()
    yield url
    _drop_closed(db_factory, url)


@pytest.fixture
def engine(db_url):
    eng = make_engine(db_url, poolclass=sa.pool.NullPool)
    yield eng
    eng.dispose()


@pytest.fixture
def empty_db_url(db_factory):
    """URL of a fresh database with no schema at all (dropped after the test, as :func:`db_url`)."""
    url = db_factory.create(migrated=False)
    yield url
    _drop_closed(db_factory, url)


def _drop_closed(db_factory: DatabaseFactory, url) -> None:
    """Drop the test's database; fail the test if it left connections open. Left to the garbage
    collector, such a connection warns (an error here) in whichever later test it is collected,
    as it did in CI (test_simulated_scene_with_defects, for a connection of another test)."""
    left = db_factory.sessions(url)
    db_factory.drop(url)
    assert not left, "the test left connections to its database open:\n" + "\n".join(left)


@pytest.fixture(scope="session")
def hst_dir() -> Path:
    """The real HST files of ``tests/data/hst`` as plain ``*.fits`` (see :mod:`hst_files`)."""
    return _hst_dir()
