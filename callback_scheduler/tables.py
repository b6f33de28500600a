"""Names the scheduler shares with the schema (migration 0003)."""

from __future__ import annotations

#: ``Campaign.created_by`` of the standing 差评回访 campaign (unique index in 0003)
SYSTEM_CASE_FOLLOWUP = "system:case_followup"
#: ``Campaign.created_by`` of the standing 电话邀评 campaign (callback_scheduler.invitations)
SYSTEM_RATING_INVITE = "system:rating_invite"
#: ``Campaign.created_by`` of the standing 一事一评 campaign (callback_scheduler.case_rating)
SYSTEM_CASE_RATING = "system:case_rating"
#: standing campaigns whose failed calls end in a default rating, not on the manual list
DEFAULTING_CAMPAIGNS = (SYSTEM_RATING_INVITE, SYSTEM_CASE_RATING)
SYSTEM_PREFIX = "system:"
