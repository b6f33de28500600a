"""Names the scheduler shares with the schema (migration 0003)."""

from __future__ import annotations

#: ``Campaign.created_by`` of the standing 差评回访 campaign (unique index in 0003)
SYSTEM_CASE_FOLLOWUP = "system:case_followup"
#: ``Campaign.created_by`` of the standing 电话邀评 campaign (callback_scheduler.invitations)
SYSTEM_RATING_INVITE = "system:rating_invite"
SYSTEM_PREFIX = "system:"
