"""Writing ratings: the path by which a rating enters the database, always together with its
outbox entry in the same transaction (nothing is forwarded from memory alone). The survey's
usual first vote takes a shortcut with the same result, one statement for many calls
(storage/first_votes.py); anything unusual comes here.

A survey saves its rating after every step (level, then reason, then comment), so the outbox
entry of a rating still being completed is *held* (``hold_until``) and refreshed in place; it
is released when the survey ends, or by itself when the hold expires (a crash mid-survey
therefore delays the push, never loses it).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hotline.clock import utcnow
from hotline.levels import Level
from storage.models import Case, OutboxEntry, OutboxStatus, Rating

CALL_PROJECT_PREFIX = "CALL-"

#: ``session.info`` key of the coroutine run after a rating is saved, in its transaction:
#: ``hook(session, rating)``. The composition root installs the 差评 loop's (bad_ratings.hook),
#: which opens or joins the rating's 差评 item.
AFTER_SAVE = "after_rating_saved"


def project_no_for_call(linkedid: str) -> str:
    """一次一评 rates the call itself, so the call is the ``projectNo``; 一事一评 uses the
    case number. Keeping the two apart keeps (projectNo, assessNumber) unique when a case has
    several calls."""
    return f"{CALL_PROJECT_PREFIX}{linkedid}"


@dataclass
class RatingInput:
    project_no: str
    kind: str
    source: str
    level: Level
    assess_number: int = 1
    reason_codes: list[str] | None = None
    comment_text: str | None = None
    comment_recording: str | None = None
    call_id: int | None = None
    case_id: int | None = None
    case_number: str | None = None
    agent_id: str | None = None
    department_code: str | None = None
    rated_at: dt.datetime | None = None


class RatingFields(Protocol):
    """What :func:`snapshot` reads: a :class:`Rating`, or the plain values of one not stored
    yet (ivr/survey_store.py; an ORM instance costs more to make than the survey's save)."""

    @property
    def id(self) -> int | None: ...
    @property
    def project_no(self) -> str: ...
    @property
    def assess_number(self) -> int: ...
    @property
    def kind(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def level(self) -> int: ...
    @property
    def reason_codes(self) -> str | None: ...
    @property
    def comment_text(self) -> str | None: ...
    @property
    def comment_recording(self) -> str | None: ...
    @property
    def agent_id(self) -> str | None: ...
    @property
    def department_code(self) -> str | None: ...
    @property
    def rated_at(self) -> dt.datetime: ...
    @property
    def valid(self) -> bool: ...
    @property
    def invalid_reason(self) -> str | None: ...


def snapshot(
    rating: RatingFields, case_number: str | None = None, event: str = "rating"
) -> dict[str, Any]:
    """What the outbox carries: the rating in canonical form; the province's record is built
    from it by the forwarding profile at send time."""
    return {
        "event": event,
        "rating_id": rating.id,
        "project_no": rating.project_no,
        "assess_number": rating.assess_number,
        "kind": rating.kind,
        "source": rating.source,
        "level": rating.level,
        "reason_codes": rating.reason_codes.split(",") if rating.reason_codes else [],
        "comment_text": rating.comment_text,
        "comment_recording": rating.comment_recording,
        "case_number": case_number,
        "agent_id": rating.agent_id,
        "department_code": rating.department_code,
        "rated_at": rating.rated_at.isoformat(),
        "valid": rating.valid,
        "invalid_reason": rating.invalid_reason,
    }


async def save_rating(
    session: AsyncSession,
    data: RatingInput,
    *,
    hold_until: dt.datetime | None = None,
    rectification_due: dt.date | None = None,
    skip_unchanged: bool = False,
) -> Rating:
    """See :func:`upsert_rating`; the rating alone."""
    rating, _changed = await upsert_rating(
        session, data, hold_until=hold_until, rectification_due=rectification_due,
        skip_unchanged=skip_unchanged,
    )
    return rating


async def upsert_rating(
    session: AsyncSession,
    data: RatingInput,
    *,
    hold_until: dt.datetime | None = None,
    rectification_due: dt.date | None = None,
    skip_unchanged: bool = False,
) -> tuple[Rating, bool]:
    """Insert or update the rating keyed by (project_no, assess_number) and refresh its outbox
    entry. Idempotent: saving the same input twice leaves one rating and one pending entry.
    With ``skip_unchanged``, an input the stored rating already says exactly queues nothing at
    all, even when its entry was already delivered: a save retried after an unclear commit, or
    replayed from the survey's journal, is never pushed twice (issue 8 defect 3).

    A 差评 on a case marks the case and starts its 整改 deadline (DOMAIN.md rule 4) at
    ``rectification_due`` (``AppContext.rectification_due``), unless one is already running.

    Also says whether anything was written (False: ``skip_unchanged`` found nothing new)."""
    rating = await session.scalar(
        select(Rating)
        .where(Rating.project_no == data.project_no, Rating.assess_number == data.assess_number)
        .with_for_update()
    )
    existed = rating is not None
    if rating is None:
        rating = Rating(project_no=data.project_no, assess_number=data.assess_number)
        session.add(rating)
    rating.kind = data.kind
    rating.source = data.source
    rating.level = int(data.level)
    if data.reason_codes is not None:
        rating.reason_codes = ",".join(data.reason_codes) or None
    if data.comment_text is not None:
        rating.comment_text = data.comment_text
    if data.comment_recording is not None:
        rating.comment_recording = data.comment_recording
    for name in ("call_id", "case_id", "agent_id", "department_code"):
        value = getattr(data, name)
        if value is not None:
            setattr(rating, name, value)
    rating.rated_at = data.rated_at or rating.rated_at or utcnow()
    if skip_unchanged and existed and not session.is_modified(rating):
        return rating, False
    await session.flush()
    if data.level.is_bad and rating.case_id is not None:
        case = await session.get(Case, rating.case_id)
        if case is not None:
            case.has_bad_rating = True
            case.rectification_due = case.rectification_due or rectification_due
    await enqueue(session, rating, case_number=data.case_number, hold_until=hold_until,
                  fresh=not existed)
    hook = session.info.get(AFTER_SAVE)
    if hook is not None:
        await hook(session, rating)
    return rating, True


async def next_assess_number(session: AsyncSession, project_no: str, *, minimum: int = 2) -> int:
    """The assessNumber of a further evaluation of ``project_no`` (issue 8 defect 6): each
    evaluation keeps its own record and idempotency key, never overwriting an earlier one."""
    highest = await session.scalar(
        select(func.max(Rating.assess_number)).where(Rating.project_no == project_no)
    )
    return max(minimum, (highest or 0) + 1)


async def enqueue(
    session: AsyncSession,
    rating: Rating,
    *,
    case_number: str | None = None,
    event: str = "rating",
    hold_until: dt.datetime | None = None,
    fresh: bool = False,
) -> None:
    """Refresh the rating's pending outbox entry, or append a new one when the previous entry is
    already being sent or delivered (an update then travels as its own record). ``fresh``: the
    rating was inserted in this transaction, so it has no entry to refresh (one statement less
    per survey, issue 13)."""
    payload = snapshot(rating, case_number, event)
    when = hold_until or utcnow()
    if not fresh and await _refresh_pending(session, rating, event, payload, when):
        return
    session.add(
        OutboxEntry(
            rating_id=rating.id,
            project_no=rating.project_no,
            assess_number=rating.assess_number,
            event=event,
            payload=payload,
            ready_at=when,
            next_attempt_at=when,
        )
    )
    await session.flush()


async def _refresh_pending(
    session: AsyncSession, rating: Rating, event: str, payload: dict[str, Any],
    when: dt.datetime,
) -> bool:
    result = await session.execute(
        update(OutboxEntry)
        .where(
            OutboxEntry.rating_id == rating.id,
            OutboxEntry.status == OutboxStatus.PENDING,
            OutboxEntry.event == event,
            OutboxEntry.attempts == 0,
        )
        .values(payload=payload, ready_at=when, next_attempt_at=when)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def release_rating(session: AsyncSession, rating_id: int) -> None:
    """End the hold: the rating is complete, send it now."""
    await session.execute(
        update(OutboxEntry)
        .where(OutboxEntry.rating_id == rating_id, OutboxEntry.status == OutboxStatus.PENDING)
        .where(OutboxEntry.attempts == 0)
        .values(ready_at=utcnow(), next_attempt_at=utcnow())
    )
