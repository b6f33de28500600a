"""The scheduler's claim reads an index: a campaign's pending tasks in claiming order
(priority DESC, due time, id), so claiming among a million pending tasks stops after the few it
needs instead of sorting them all (issue 13; bench/callback_claim.py).

Revision ID: 0009
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # (see storage/models.py: PostgreSQL only)
    op.create_index(
        "ix_callback_tasks_claim",
        "callback_tasks",
        ["campaign_id", sa.text("priority DESC"), "next_attempt_at", "id"],
        postgresql_where=sa.text("status = 'pending'"),
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index("ix_callback_tasks_claim", table_name="callback_tasks")
