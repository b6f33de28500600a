"""What migration 0003 added, declared as plain tables so the ORM models stay the lead's
(the same convention as storage/outbox.py), and the names the scheduler shares."""

from __future__ import annotations

from sqlalchemy import BigInteger, String, column, table

#: ``callback_attempts`` columns the ORM model does not declare
attempt_extra = table(
    "callback_attempts",
    column("id", BigInteger),
    column("outcome", String),
    column("trunk", String),
)

#: for queries that also select from the ORM's ``callback_attempts``: join it on id
attempt_ext = attempt_extra.alias("attempt_ext")

#: ``Campaign.created_by`` of the standing 差评回访 campaign (unique index in 0003)
SYSTEM_CASE_FOLLOWUP = "system:case_followup"
SYSTEM_PREFIX = "system:"
