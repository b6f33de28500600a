"""整改 and 反馈 records for the province (issue 10; seed 002 第十条 "整改及反馈情况同步报送省政务
服务平台"): when a department's 整改 reply is recorded, and when the 回访 answer (反馈) is
known, an outbox entry of that kind is queued in the same transaction as the decision, if the
active forwarding profile defines the kind (``[records.rectification]`` / ``[records.feedback]``,
forwarder/README.md). The forwarder sends it like a rating, after the case's earlier entries.

The payload is the item's latest 差评 in canonical form (``storage.ratings.snapshot``) plus the
item's facts; the record is keyed per item and round (forwarder.record.idempotency_key), and a
second 整改 reply of the same round (after a 退回) is its own revision.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bad_ratings.machine import Action
from storage.models import BadRatingItem, OutboxEntry, Rating
from storage.ratings import snapshot

#: ``session.info`` key (the database's info, set by bad_ratings.hook.install): the record
#: kinds the active profile defines
ENABLED = "hotline.bad_ratings.upstream_kinds"

RECTIFICATION = "rectification"
FEEDBACK = "feedback"
KIND_OF: dict[Action, str] = {Action.RECTIFY: RECTIFICATION, Action.FOLLOWUP_RESULT: FEEDBACK}


def _iso(value: dt.date | dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def payload_for(row: BadRatingItem, rating: Rating, kind: str, round_: int,
                revision: int) -> dict[str, Any]:
    """What the outbox carries; the profile lays it out at send time."""
    return snapshot(rating, row.case_number, kind) | {
        "project_no": row.project_no,
        "department_code": row.department_code or rating.department_code,
        "agent_id": row.agent_id or rating.agent_id,
        "item_id": row.id,
        "round": round_,
        "revision": revision,
        "verification": row.verification,
        "rectification_reply": row.rectification_reply,
        "citizen_result": row.citizen_result,
        "rectified_at": _iso(row.rectified_at),
        "rectify_due": _iso(row.rectify_due),
        "followup_solved": row.followup_solved if kind == FEEDBACK else None,
        "followup_level": row.followup_level if kind == FEEDBACK else None,
        "followup_at": _iso(row.followup_at) if kind == FEEDBACK else None,
    }


async def queue(
    session: AsyncSession, row: BadRatingItem, action: Action, *, round_: int
) -> OutboxEntry | None:
    """Queue the record ``action`` produces, if any and if the profile wants it; sendable at
    once (by the host's clock, as a rating's entry: the decision's time may be a replay)."""
    kind = KIND_OF.get(action)
    if kind is None or kind not in session.info.get(ENABLED, ()):
        return None
    rating = await session.get(Rating, row.latest_rating_id)
    if rating is None:  # the item's 差评 is its foreign key: cannot happen
        return None
    earlier = [
        p for p in await session.scalars(
            select(OutboxEntry.payload).where(OutboxEntry.project_no == row.project_no,
                                              OutboxEntry.event == kind))
        if p.get("item_id") == row.id and p.get("round") == round_
    ]
    entry = OutboxEntry(
        rating_id=rating.id, project_no=row.project_no, assess_number=rating.assess_number,
        event=kind, payload=payload_for(row, rating, kind, round_, len(earlier) + 1),
    )
    session.add(entry)
    await session.flush()
    return entry
