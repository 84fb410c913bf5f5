"""The schema: migrations, models and schema/ddl.sql agree; migrations round-trip."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from mvmdb.db import migrate
from mvmdb.db.ddl import schema_ddl
from mvmdb.db.engine import make_engine
from mvmdb.db.models import Base

DDL_FILE = Path(__file__).resolve().parents[2] / "schema" / "ddl.sql"


def _diff(engine: sa.Engine) -> list:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(ctx, Base.metadata)


def _tables(engine: sa.Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names())


def test_migration_head_matches_models(engine):
    assert migrate.current_revision(engine) == migrate.head_revision()
    assert _diff(engine) == []


def test_schema_ddl_file_is_current():
    assert DDL_FILE.read_text() == schema_ddl(), "schema/ddl.sql is stale: run `make schema`"


def test_schema_ddl_file_builds_the_models(empty_db_url):
    engine = make_engine(empty_db_url, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        conn.exec_driver_sql(DDL_FILE.read_text())
    assert _diff(engine) == []
    engine.dispose()


def test_upgrade_downgrade_upgrade_round_trip(empty_db_url):
    engine = make_engine(empty_db_url, poolclass=sa.pool.NullPool)
    migrate.upgrade(engine)
    assert _tables(engine) >= set(Base.metadata.tables)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM projection_cell")).scalar_one() == 2644
    migrate.downgrade(engine, "base")
    assert _tables(engine) <= {"alembic_version"}
    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == migrate.head_revision()
    assert _diff(engine) == []
    engine.dispose()


def test_projection_cells_seeded_from_ring_table(engine):
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT id, ring, band, nband, ra_deg, dec_deg FROM projection_cell WHERE id IN (0, 1889, 1970, 2643)")
        ).all()
    by_id = {r.id: r for r in rows}
    assert (by_id[1889].ring, by_id[1889].band, by_id[1889].ra_deg, by_id[1889].dec_deg) == (29, 41, 180.0, 26.0)
    assert by_id[1970].ra_deg == 40 * 360.0 / 79 and by_id[1970].dec_deg == 30.0
    assert by_id[0].dec_deg == -89.999999999997 and by_id[2643].dec_deg == 89.999999999997


def test_migration_0003_folds_repeated_ingest_errors_per_path(empty_db_url):
    engine = make_engine(empty_db_url, poolclass=sa.pool.NullPool)
    migrate.upgrade(engine, "0002")
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO ingest_error (path, reason, at) VALUES "
            "('/a_flt.fits', 'truncated', '2026-01-01'), ('/a_flt.fits', 'not a FITS file', '2026-01-03'), "
            "('/a_flt.fits', 'empty file', '2026-01-02'), ('/b_flc.fits', 'no such file', '2026-02-01')"))
    migrate.upgrade(engine)
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT path, reason, attempts, first_at::date::text, at::date::text FROM ingest_error ORDER BY path")).all()
    # the newest row (highest id) gives the reason and time; first_at is the oldest time
    assert [tuple(r) for r in rows] == [("/a_flt.fits", "empty file", 3, "2026-01-01", "2026-01-02"),
                                        ("/b_flc.fits", "no such file", 1, "2026-02-01", "2026-02-01")]
    assert _diff(engine) == []
    migrate.downgrade(engine, "0002")
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM ingest_error")).scalar_one() == 2
    engine.dispose()


def test_migration_0004_keys_paths_of_any_length(empty_db_url):
    engine = make_engine(empty_db_url, poolclass=sa.pool.NullPool)
    migrate.upgrade(engine, "0003")
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO ingest_error (path, reason) VALUES ('/a_flt.fits', 'truncated')"))
    migrate.upgrade(engine, "0004")
    long_path = "/" + "x" * 100_000 + "_flt.fits"  # far past what a b-tree entry holds (~2.7 kB)
    with engine.begin() as conn:
        for _ in range(2):
            conn.execute(sa.text(
                "INSERT INTO ingest_error (path, reason) VALUES (:p, 'path too long') ON CONFLICT (path_md5) "
                "DO UPDATE SET attempts = ingest_error.attempts + 1"), {"p": long_path})
        conn.execute(sa.text(
            "INSERT INTO exposure (ipppssoot, filetype, filename, path, instrument, detector, filter, exptime, "
            "program_id, obset_id, header_hash, wcs_hash) VALUES ('ib3y01c6q', 'flt', 'ib3y01c6q_flt.fits', :p, "
            "'WFC3', 'IR', 'f160w', 1.0, 'B3Y', '01', 'h', 'w')"), {"p": "/" + "d" * 3500 + "/ib3y01c6q_flt.fits"})
        rows = conn.execute(sa.text("SELECT path, attempts, path_md5 = md5(path) FROM ingest_error ORDER BY id")).all()
    assert [(len(r[0]), r[1], r[2]) for r in rows] == [(11, 1, True), (len(long_path), 2, True)]
    migrate.upgrade(engine)  # the models describe the head revision
    assert _diff(engine) == []
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM exposure"))
    migrate.downgrade(engine, "0003")  # the long error row goes (a b-tree cannot hold it), the other stays
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT path FROM ingest_error")).scalars().all() == ["/a_flt.fits"]
    migrate.upgrade(engine)
    assert _diff(engine) == []
    engine.dispose()
