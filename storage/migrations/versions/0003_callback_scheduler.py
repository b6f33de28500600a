"""callback scheduler: attempt outcome and trunk, one task per case/call per campaign

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 12:00:00

- ``callback_attempts.outcome`` (how the attempt ended: busy, no_answer, rated ...; the status
  column only says where it stands) and ``callback_attempts.trunk`` (the per-trunk
  simultaneous-call cap is counted from the attempts under way, across scheduler processes).
- ``ix_callback_attempts_status``: the claiming transaction counts active attempts.
- Unique (campaign, case) and (campaign, call) on tasks: a retried case-close or a re-run
  import can never create a second task, hence never a second call (DOMAIN.md rule 8).
- One standing 差评回访 campaign (``created_by`` = ``system:case_followup``), unique.

storage/models.py declares the same (tests/integration/test_storage.py checks they agree).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("callback_attempts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("outcome", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("trunk", sa.String(length=64), nullable=True))
        batch_op.create_index("ix_callback_attempts_status", ["status"], unique=False)
    with op.batch_alter_table("callback_tasks", schema=None) as batch_op:
        batch_op.create_index(
            "uq_callback_tasks_campaign_case", ["campaign_id", "case_id"], unique=True
        )
        batch_op.create_index(
            "uq_callback_tasks_campaign_call", ["campaign_id", "call_id"], unique=True
        )
        batch_op.create_index("ix_callback_tasks_case_id", ["case_id"], unique=False)
    op.create_index(
        "uq_callback_campaigns_system",
        "callback_campaigns",
        ["created_by"],
        unique=True,
        postgresql_where=sa.text("created_by LIKE 'system:%'"),
        sqlite_where=sa.text("created_by LIKE 'system:%'"),
    )


def downgrade() -> None:
    op.drop_index("uq_callback_campaigns_system", table_name="callback_campaigns")
    with op.batch_alter_table("callback_tasks", schema=None) as batch_op:
        batch_op.drop_index("ix_callback_tasks_case_id")
        batch_op.drop_index("uq_callback_tasks_campaign_call")
        batch_op.drop_index("uq_callback_tasks_campaign_case")
    with op.batch_alter_table("callback_attempts", schema=None) as batch_op:
        batch_op.drop_index("ix_callback_attempts_status")
        batch_op.drop_column("trunk")
        batch_op.drop_column("outcome")
