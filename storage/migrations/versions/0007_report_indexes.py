"""通报 statistics: covering indexes for the report queries (reports/, issue 11)

Revision ID: 0007
Revises: 0005 (the integrator re-chains)
Create Date: 2026-11-28 12:00:00

Every report query is a time range plus grouping and counted columns; with these indexes
PostgreSQL answers a monthly or yearly department report from the index alone
(bench/report_speed.py prints the plans). storage/models.py declares the same.
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_ratings_report", "ratings",
        ["rated_at", "department_code", "agent_id", "source", "kind", "level", "valid"],
    )
    op.create_index(
        "ix_calls_report", "calls",
        ["started_at", "department_code", "agent_id", "queue", "survey_status",
         "survey_started_at"],
    )
    op.create_index(
        "ix_bad_rating_items_report", "bad_rating_items", ["opened_at", "department_code"]
    )


def downgrade() -> None:
    op.drop_index("ix_bad_rating_items_report", table_name="bad_rating_items")
    op.drop_index("ix_calls_report", table_name="calls")
    op.drop_index("ix_ratings_report", table_name="ratings")
