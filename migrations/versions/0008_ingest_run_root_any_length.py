"""ingest_run.root of any length: a hash index instead of the b-tree on (root, status, finished_at)

A b-tree entry holds at most ~2.7 kB, so a nightly run over a root directory with a longer
path could not even record that it started (``ProgramLimitExceeded``). The table holds one
row per nightly run and is only ever searched by equality on ``root``
(:func:`mvmdb.db.runs.last_success`), which a hash index serves at any length.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        DROP INDEX ix_ingest_run_root_status_finished_at;
        CREATE INDEX ix_ingest_run_root ON ingest_run USING hash (root);
    """)


def downgrade() -> None:
    # the b-tree refuses roots longer than ~2.7 kB, even in deleted rows not yet vacuumed: such run
    # records must be deleted and the table vacuumed (outside a transaction) before downgrading
    op.execute("""
        DO $$
        BEGIN
            IF EXISTS (SELECT 1 FROM ingest_run WHERE octet_length(root) > 2000) THEN
                RAISE EXCEPTION 'ingest_run holds roots longer than 2000 bytes, which the older b-tree index cannot hold; '
                                'delete those rows first, then VACUUM ingest_run '
                                '(DELETE FROM ingest_run WHERE octet_length(root) > 2000)';
            END IF;
        END $$;
        DROP INDEX ix_ingest_run_root;
        CREATE INDEX ix_ingest_run_root_status_finished_at ON ingest_run (root, status, finished_at);
    """)
