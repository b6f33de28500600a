"""差评 closed loop (issue 10): items and their timeline, audit log, token scopes, webhooks

Revision ID: 0005
Revises: 0003
Create Date: 2026-11-28 21:48:22

- ``bad_rating_items`` (差评单: department, state, round, deadlines, rating links) and
  ``bad_rating_events`` (its timeline, appended only).
- ``audit_log``: append-only; a trigger refuses UPDATE and DELETE on both databases, so not
  even a bug in this service can rewrite who did what.
- ``api_token_scopes``: a token bound to department codes (role ``department``) or to an
  agent's 工号 (role ``agent``).
- ``webhook_outbox``: signed events for the 工单 system, retried; ``dedupe_key`` unique.

storage/models.py declares the same (tests/integration/test_storage.py checks they agree).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import storage.models

revision = "0005"
down_revision = "0003"
branch_labels = None
depends_on = None


_PG_FUNCTION = """
CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END;
$$ LANGUAGE plpgsql
"""
_PG_TRIGGER = """
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()
"""
_SQLITE_TRIGGERS = (
    "CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log "
    "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
    "CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log "
    "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
)


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("at", storage.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("action", sa.String(length=48), nullable=False),
        sa.Column("subject_type", sa.String(length=32), nullable=False),
        sa.Column("subject_id", sa.String(length=64), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_log_action"), ["action"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_log_at"), ["at"], unique=False)
        batch_op.create_index("ix_audit_log_subject", ["subject_type", "subject_id"], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_FUNCTION)
        op.execute(_PG_TRIGGER)
    else:
        for statement in _SQLITE_TRIGGERS:
            op.execute(statement)

    op.create_table(
        "webhook_outbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("dedupe_key", sa.String(length=128), nullable=False),
        sa.Column("subject_type", sa.String(length=32), nullable=False),
        sa.Column("subject_id", sa.String(length=64), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("next_attempt_at", storage.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("claimed_by", sa.String(length=64), nullable=True),
        sa.Column("claimed_until", storage.models.UtcDateTime(timezone=True), nullable=True),
        sa.Column("created_at", storage.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", storage.models.UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_outbox")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_webhook_outbox_dedupe_key")),
    )
    with op.batch_alter_table("webhook_outbox", schema=None) as batch_op:
        batch_op.create_index(
            "ix_webhook_outbox_status_next", ["status", "next_attempt_at"], unique=False
        )

    op.create_table(
        "api_token_scopes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("token_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("value", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["token_id"], ["api_tokens.id"], name=op.f("fk_api_token_scopes_token_id_api_tokens")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_token_scopes")),
        sa.UniqueConstraint("token_id", "kind", "value", name="uq_api_token_scopes"),
    )
    with op.batch_alter_table("api_token_scopes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_api_token_scopes_token_id"), ["token_id"], unique=False
        )

    op.create_table(
        "bad_rating_items",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("subject_key", sa.String(length=80), nullable=False),
        sa.Column("project_no", sa.String(length=64), nullable=False),
        sa.Column("case_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("call_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("case_number", sa.String(length=64), nullable=True),
        sa.Column("department_code", sa.String(length=32), nullable=True),
        sa.Column("agent_id", sa.String(length=32), nullable=True),
        sa.Column("state", sa.String(length=24), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column(
            "first_rating_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "latest_rating_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("opened_at", storage.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("round_started_at", storage.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("verify_due", sa.Date(), nullable=True),
        sa.Column("rectify_due", sa.Date(), nullable=True),
        sa.Column("verification", sa.String(length=16), nullable=True),
        sa.Column("verification_note", sa.Text(), nullable=True),
        sa.Column("verified_at", storage.models.UtcDateTime(timezone=True), nullable=True),
        sa.Column("rectification_reply", sa.Text(), nullable=True),
        sa.Column("citizen_result", sa.Text(), nullable=True),
        sa.Column("rectified_at", storage.models.UtcDateTime(timezone=True), nullable=True),
        sa.Column("extension_status", sa.String(length=16), nullable=True),
        sa.Column("extension_due", sa.Date(), nullable=True),
        sa.Column("extension_reason", sa.Text(), nullable=True),
        sa.Column("review_origin", sa.String(length=16), nullable=True),
        sa.Column("review_return_state", sa.String(length=24), nullable=True),
        sa.Column("supervised_at", storage.models.UtcDateTime(timezone=True), nullable=True),
        sa.Column("supervised_by", sa.String(length=128), nullable=True),
        sa.Column("supervise_count", sa.Integer(), nullable=False),
        sa.Column("followup_solved", sa.Boolean(), nullable=True),
        sa.Column("followup_level", sa.Integer(), nullable=True),
        sa.Column(
            "followup_rating_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column("followup_at", storage.models.UtcDateTime(timezone=True), nullable=True),
        sa.Column("closed_at", storage.models.UtcDateTime(timezone=True), nullable=True),
        sa.Column("created_at", storage.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", storage.models.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["call_id"], ["calls.id"], name=op.f("fk_bad_rating_items_call_id_calls")
        ),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_bad_rating_items_case_id_cases")
        ),
        sa.ForeignKeyConstraint(
            ["first_rating_id"],
            ["ratings.id"],
            name=op.f("fk_bad_rating_items_first_rating_id_ratings"),
        ),
        sa.ForeignKeyConstraint(
            ["followup_rating_id"],
            ["ratings.id"],
            name=op.f("fk_bad_rating_items_followup_rating_id_ratings"),
        ),
        sa.ForeignKeyConstraint(
            ["latest_rating_id"],
            ["ratings.id"],
            name=op.f("fk_bad_rating_items_latest_rating_id_ratings"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bad_rating_items")),
        sa.UniqueConstraint("subject_key", name=op.f("uq_bad_rating_items_subject_key")),
    )
    with op.batch_alter_table("bad_rating_items", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_bad_rating_items_agent_id"), ["agent_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_bad_rating_items_case_id"), ["case_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_bad_rating_items_department_code"), ["department_code"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_bad_rating_items_state"), ["state"], unique=False)

    op.create_table(
        "bad_rating_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("item_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("at", storage.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("from_state", sa.String(length=24), nullable=True),
        sa.Column("to_state", sa.String(length=24), nullable=True),
        sa.Column("rating_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["bad_rating_items.id"],
            name=op.f("fk_bad_rating_events_item_id_bad_rating_items"),
        ),
        sa.ForeignKeyConstraint(
            ["rating_id"], ["ratings.id"], name=op.f("fk_bad_rating_events_rating_id_ratings")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bad_rating_events")),
    )
    with op.batch_alter_table("bad_rating_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_bad_rating_events_item_id"), ["item_id"], unique=False)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log")
        op.execute("DROP FUNCTION IF EXISTS audit_log_append_only()")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_update")
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_delete")
    with op.batch_alter_table("bad_rating_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_bad_rating_events_item_id"))

    op.drop_table("bad_rating_events")
    with op.batch_alter_table("bad_rating_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_bad_rating_items_state"))
        batch_op.drop_index(batch_op.f("ix_bad_rating_items_department_code"))
        batch_op.drop_index(batch_op.f("ix_bad_rating_items_case_id"))
        batch_op.drop_index(batch_op.f("ix_bad_rating_items_agent_id"))

    op.drop_table("bad_rating_items")
    with op.batch_alter_table("api_token_scopes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_token_scopes_token_id"))

    op.drop_table("api_token_scopes")
    with op.batch_alter_table("webhook_outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_outbox_status_next")

    op.drop_table("webhook_outbox")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_log_subject")
        batch_op.drop_index(batch_op.f("ix_audit_log_at"))
        batch_op.drop_index(batch_op.f("ix_audit_log_action"))

    op.drop_table("audit_log")
