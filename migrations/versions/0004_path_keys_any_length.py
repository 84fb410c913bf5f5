"""paths of any length: ingest_error unique on md5(path), exposure.path indexed by hash

A b-tree entry holds at most ~2.7 kB, so a longer path made the unique constraint of
``ingest_error.path`` (and the b-tree ``ix_exposure_path``) refuse the row
(``ProgramLimitExceeded``), inside ingest's error handler. Paths may be as long as the system
opens (4095 bytes) and error rows may name longer ones: ``ingest_error`` is now unique on a
stored ``path_md5 = md5(path)`` (a key, not a checksum), and ``ix_exposure_path`` is a hash
index (equality look-ups only, which is all ingest does with it; no size limit).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        ALTER TABLE ingest_error DROP CONSTRAINT uq_ingest_error_path;
        ALTER TABLE ingest_error ADD COLUMN path_md5 TEXT GENERATED ALWAYS AS (md5(path)) STORED NOT NULL;
        ALTER TABLE ingest_error ADD CONSTRAINT uq_ingest_error_path_md5 UNIQUE (path_md5);
        COMMENT ON COLUMN ingest_error.path_md5 IS 'md5 of path: the unique key (paths of any length)';
        DROP INDEX ix_exposure_path;
        CREATE INDEX ix_exposure_path ON exposure USING hash (path);
    """)


def downgrade() -> None:
    # error rows whose path is too long for a b-tree are dropped (the next ingest finds them again);
    # exposures are never dropped: with a path over ~2.7 kB catalogued the b-tree refuses, and so
    # does the downgrade
    op.execute("""
        DROP INDEX ix_exposure_path;
        CREATE INDEX ix_exposure_path ON exposure (path);
        ALTER TABLE ingest_error DROP CONSTRAINT uq_ingest_error_path_md5;
        ALTER TABLE ingest_error DROP COLUMN path_md5;
        DELETE FROM ingest_error WHERE octet_length(path) > 2000;
        ALTER TABLE ingest_error ADD CONSTRAINT uq_ingest_error_path UNIQUE (path);
    """)
