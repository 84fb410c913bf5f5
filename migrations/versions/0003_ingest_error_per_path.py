"""ingest_error: one row per failing path (reason and time of the last attempt, first attempt, attempts)

Before, every failed attempt added a row, so a bad file retried every night grew the table.
Existing rows are folded per path: the newest reason and time are kept, ``first_at`` is the
oldest time, ``attempts`` the number of rows.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        ALTER TABLE ingest_error
            ADD COLUMN first_at TIMESTAMP WITH TIME ZONE,
            ADD COLUMN attempts INTEGER DEFAULT 1 NOT NULL;
        WITH per_path AS (
            SELECT path, max(id) AS keep, min(at) AS first_at, count(*) AS attempts
            FROM ingest_error GROUP BY path
        )
        UPDATE ingest_error e SET first_at = p.first_at, attempts = p.attempts
        FROM per_path p WHERE e.id = p.keep;
        DELETE FROM ingest_error WHERE first_at IS NULL;
        ALTER TABLE ingest_error ALTER COLUMN first_at SET DEFAULT now(), ALTER COLUMN first_at SET NOT NULL;
        DROP INDEX ix_ingest_error_path;
        ALTER TABLE ingest_error ADD CONSTRAINT uq_ingest_error_path UNIQUE (path);
        COMMENT ON COLUMN ingest_error.reason IS 'why the last attempt failed';
        COMMENT ON COLUMN ingest_error.at IS 'last failed attempt';
        COMMENT ON COLUMN ingest_error.first_at IS 'first failed attempt';
        COMMENT ON COLUMN ingest_error.attempts IS 'failed attempts so far';
    """)


def downgrade() -> None:
    op.execute("""
        ALTER TABLE ingest_error DROP CONSTRAINT uq_ingest_error_path;
        CREATE INDEX ix_ingest_error_path ON ingest_error (path);
        ALTER TABLE ingest_error DROP COLUMN first_at, DROP COLUMN attempts;
        COMMENT ON COLUMN ingest_error.reason IS NULL;
        COMMENT ON COLUMN ingest_error.at IS NULL;
    """)
