"""Storing what a citizen said in a 回访 / 邀评 call, from the IVR or from a person's manual call.

Always through ``storage.ratings.save_rating`` (rating and outbox entry in one transaction).
A case follow-up is 一事一评: kind per_case, ``projectNo`` = the case number, assessNumber 2 (3, 4 …
for each further 回访 of the case: every evaluation its own record and key, issue 8 defect 6)
(DOMAIN.md "Kinds of rating"). An invitation (电话邀评) rates the call itself: kind per_call,
assessNumber 1 — or 2 if the call was already given its default rating. "未解决" or a 差评
flags the case for the supervisor (``needs_attention``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from hotline.levels import Level
from storage.models import (
    Call,
    CallbackTask,
    Case,
    Rating,
    RatingKind,
    SurveyStatus,
)
from storage.ratings import RatingInput, next_assess_number, project_no_for_call, save_rating

FOLLOWUP_ASSESS_NUMBER = 2

#: ``session.info`` key of the coroutine told about every case 回访 answer, in its transaction:
#: ``hook(session, case, rating, resolved)``; the 差评 loop (bad_ratings.hook) stores it on the
#: item awaiting its 回访 after 整改.
AFTER_FOLLOWUP = "after_followup_answer"


@dataclass(frozen=True)
class Answer:
    level: Level
    resolved: bool | None = None  # 您反映的问题是否已解决 (None: not asked, e.g. 邀评)
    reason_codes: tuple[str, ...] = ()
    comment_text: str | None = None


class NothingToRate(ValueError):
    """The task has neither a case nor a call to attach a rating to."""


async def store_answer(
    session: AsyncSession,
    task: CallbackTask,
    answer: Answer,
    *,
    source: str,
    now: dt.datetime,
    hold_until: dt.datetime | None = None,
    rectification_due: dt.date | None = None,
) -> Rating:
    """Save the rating for ``task`` and link it (``task.result_rating_id``); flag the case
    when the problem is not solved or the rating is a 差评."""
    reasons = list(answer.reason_codes) or None
    if task.case_id is not None:
        case = await session.get(Case, task.case_id, with_for_update=True)
        assert case is not None
        # the same 回访 saves again (level, then reason): the same record; a later 回访 of the
        # case (a new 整改 round, another campaign) is a further evaluation with its own
        # assessNumber, never an overwrite (issue 8 defect 6)
        previous = await session.get(Rating, task.result_rating_id) \
            if task.result_rating_id is not None else None
        assess_number = previous.assess_number if previous is not None else \
            await next_assess_number(session, case.case_number, minimum=FOLLOWUP_ASSESS_NUMBER)
        rating = await save_rating(
            session,
            RatingInput(
                project_no=case.case_number,
                kind=RatingKind.PER_CASE,
                source=source,
                level=answer.level,
                assess_number=assess_number,
                reason_codes=reasons,
                comment_text=answer.comment_text,
                case_id=case.id,
                case_number=case.case_number,
                department_code=case.department_code,
                rated_at=now,
            ),
            hold_until=hold_until,
            rectification_due=rectification_due,
        )
        if answer.resolved is False or answer.level.is_bad:
            case.needs_attention = True
        hook = session.info.get(AFTER_FOLLOWUP)
        if hook is not None:
            await hook(session, case, rating, answer.resolved)
    elif task.call_id is not None:
        call = await session.get(Call, task.call_id, with_for_update=True)
        assert call is not None
        defaulted = call.survey_status == SurveyStatus.DEFAULTED
        rating = await save_rating(
            session,
            RatingInput(
                project_no=project_no_for_call(call.linkedid),
                kind=RatingKind.PER_CALL,
                source=source,
                level=answer.level,
                # a default 基本满意 is already out: the real vote is an additional evaluation
                assess_number=2 if defaulted else 1,
                reason_codes=reasons,
                comment_text=answer.comment_text,
                call_id=call.id,
                case_number=call.case_number,
                agent_id=call.agent_id,
                department_code=call.department_code,
                rated_at=now,
            ),
            hold_until=hold_until,
        )
        if not defaulted:
            call.survey_status = SurveyStatus.RATED
    else:
        raise NothingToRate(f"callback task {task.id} has no case and no call")
    task.result_rating_id = rating.id
    return rating
