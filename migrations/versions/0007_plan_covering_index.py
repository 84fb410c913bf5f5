"""Covering index for the plan query (issue 17: plan < 2 s with time-domain layer sets on)

* ``ix_layer_member_plan``: ``layer_member (layer_id) INCLUDE (exposure_id, status,
  generation)``. The plan query (``schema/plan.sql`` ``plan_rows``) lists every member of
  each layer with a NEW member; with this index it reads them by an index-only scan instead
  of one heap visit per membership (the worst case at 1 M exposures with the year set on
  reads ~400 k memberships; ``benchmarks/bench_plan.py``).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE INDEX ix_layer_member_plan ON layer_member (layer_id) INCLUDE (exposure_id, status, generation)")


def downgrade() -> None:
    op.execute("DROP INDEX ix_layer_member_plan")
