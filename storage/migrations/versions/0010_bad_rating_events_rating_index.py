"""The 差评 safety sweep asks, for every recent valid 差评, whether a timeline row names it
(``bad_rating_events.rating_id``): without an index that is a scan of the whole timeline per
rating (bad_ratings/sweep.py).

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_bad_rating_events_rating_id", "bad_rating_events", ["rating_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_bad_rating_events_rating_id", table_name="bad_rating_events")
