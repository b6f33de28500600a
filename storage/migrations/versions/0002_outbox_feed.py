"""outbox feed order: a commit-ordered sequence number for the pull feed

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 09:00:00

The pull feed (http_api/feed.py) pages by ``outbox.feed_seq``, not by ``outbox.id``: on
PostgreSQL an id taken from a sequence can become visible after a larger id has committed, so a
reader paging by id could skip it for ever. ``feed_seq`` is assigned by one writer at a time
(storage.outbox.sequence_feed holds the lock on the single ``outbox_feed_state`` row) to entries
that are already committed and ready, so the numbers become visible in increasing order.

An entry whose payload is rewritten in place (storage.ratings.enqueue refreshes a pending entry)
loses its number through the trigger below and is numbered again at the end of the feed: a
reader who already had the old version sees the update as a new entry.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_PG_FUNCTION = """
CREATE OR REPLACE FUNCTION outbox_feed_renumber() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- json has no equality operator; compare the text forms
    IF NEW.payload::text IS DISTINCT FROM OLD.payload::text THEN
        NEW.feed_seq := NULL;
    END IF;
    RETURN NEW;
END
$$
"""
_PG_TRIGGER = """
CREATE TRIGGER outbox_feed_renumber BEFORE UPDATE ON outbox
FOR EACH ROW EXECUTE FUNCTION outbox_feed_renumber()
"""
_SQLITE_TRIGGER = """
CREATE TRIGGER outbox_feed_renumber AFTER UPDATE OF payload ON outbox
FOR EACH ROW WHEN NEW.payload IS NOT OLD.payload AND NEW.feed_seq IS NOT NULL
BEGIN
    UPDATE outbox SET feed_seq = NULL WHERE id = NEW.id;
END
"""


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("feed_seq", sa.BigInteger(), nullable=True))
        batch_op.create_index("ix_outbox_feed_seq", ["feed_seq"], unique=True)
    # Delivered entries pile up for ever; the forwarder's claim and the feed's numbering only
    # look at the few open / unnumbered ones, so give them small partial indexes.
    open_entries = sa.text("status IN ('pending', 'inflight')")
    op.create_index("ix_outbox_open", "outbox", ["id"],
                    postgresql_where=open_entries, sqlite_where=open_entries)
    unnumbered = sa.text("feed_seq IS NULL")
    op.create_index("ix_outbox_unnumbered", "outbox", ["id"],
                    postgresql_where=unnumbered, sqlite_where=unnumbered)
    state = op.create_table(
        "outbox_feed_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_feed_state")),
    )
    op.bulk_insert(state, [{"id": 1, "last_seq": 0}])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_FUNCTION)
        op.execute(_PG_TRIGGER)
    else:
        op.execute(_SQLITE_TRIGGER)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS outbox_feed_renumber ON outbox")
        op.execute("DROP FUNCTION IF EXISTS outbox_feed_renumber()")
    else:
        op.execute("DROP TRIGGER IF EXISTS outbox_feed_renumber")
    op.drop_table("outbox_feed_state")
    op.drop_index("ix_outbox_unnumbered", table_name="outbox")
    op.drop_index("ix_outbox_open", table_name="outbox")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_feed_seq")
        batch_op.drop_column("feed_seq")
