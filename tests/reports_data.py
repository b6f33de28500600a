"""A hand-built data set for the 通报 tests (reports/). Every figure the tests expect is worked
out by hand in the comments here and in the tests, not computed by the code under test.

October 2026, Beijing dates. Two departments:

D1 住建局 (agent A1, queue hotline): calls c1..c5 served, c1, c2, c3, c5 handed to the survey
  r1 keypad 非常满意 · r2 keypad 满意 · r3 keypad 不满意 (reasons 1,2) · r4 default 基本满意 (c4)
  r5 keypad 非常不满意 on c5, found 恶意 on 复核 (invalid) · r6 回访 (一事一评) 基本满意, no call
  差评 items: #1 from r3, two 整改 rounds, rectified on time, called back 满意, closed;
              #2 from r5, set aside on 复核 (invalid)
D2 人社局 (agent A2, queue q2): calls c6..c8 served and handed
  r7 keypad 基本满意 · r9 keypad 不满意 (reason 3) at 2026-09-30 17:00 UTC = 10月1日 01:00 北京
  r10 keypad 不满意 (reasons 3,1)
  r8 keypad 非常不满意 (reason 3) at 2026-10-31 23:30 UTC = 11月1日 07:30 北京: November's
  差评 items: #3 from r9, verified 属实, 整改 due 10-20 and still open (overdue), one 申诉;
              #4 from r10, rectified after its due date (late), 回访 not made yet
One abandoned call (no agent) in D1: not served.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import (
    BadRatingEvent,
    BadRatingItem,
    Call,
    Case,
    Rating,
    RatingKind,
    RatingSource,
    SurveyStatus,
)

UTC = dt.UTC
D1, D2 = "11440100MB2C91234X", "11440100MB2C95678Y"
# "today" for the report: 5 November 2026, Beijing
NOW = dt.datetime(2026, 11, 5, 2, 0, tzinfo=UTC)


def t(day: int, hour: int = 2, month: int = 10) -> dt.datetime:
    """A UTC time in 2026 (02:00 UTC = 10:00 Beijing, same date)."""
    return dt.datetime(2026, month, day, hour, 0, tzinfo=UTC)


def call(n: int, dept: str | None, agent: str | None, queue: str, *, handed: bool,
         status: str = SurveyStatus.RATED, day: int = 3) -> Call:
    return Call(
        linkedid=f"17000000{n:02d}.1", agent_id=agent, queue=queue, department_code=dept,
        started_at=t(day), survey_started_at=t(day) if handed else None,
        ended_at=t(day), survey_status=status,
    )


def rating(n: int, dept: str | None, agent: str | None, level: int, *,
           source: str = RatingSource.KEYPAD, call_: Call | None = None, at: dt.datetime,
           reasons: str | None = None, valid: bool = True,
           kind: str = RatingKind.PER_CALL) -> Rating:
    return Rating(
        project_no=f"P-{n}", assess_number=1, kind=kind, source=source, level=level,
        reason_codes=reasons, call_id=call_.id if call_ is not None else None,
        agent_id=agent, department_code=dept, rated_at=at, valid=valid,
        invalid_reason=None if valid else "恶意差评",
    )


async def fill(session: AsyncSession) -> dict[str, int]:
    """Insert the data set; returns the ids the tests refer to."""
    session.add_all([
        Case(case_number="GD-1", department_code=D1, department_name="住建局"),
        Case(case_number="GD-2", department_code=D2, department_name="人社局"),
    ])
    c = [call(i, D1, "A1", "hotline", handed=i != 4,
              status=SurveyStatus.DEFAULTED if i == 4 else SurveyStatus.RATED)
         for i in range(1, 6)]
    c += [call(i, D2, "A2", "q2", handed=True) for i in range(6, 9)]
    abandoned = call(9, D1, None, "hotline", handed=False, status=SurveyStatus.ABANDONED)
    session.add_all([*c, abandoned])
    await session.flush()
    c1, c2, c3, c4, c5, c6, c7, c8 = c
    r = {
        "r1": rating(1, D1, "A1", 1, call_=c1, at=t(3)),
        "r2": rating(2, D1, "A1", 2, call_=c2, at=t(3)),
        "r3": rating(3, D1, "A1", 4, call_=c3, at=t(3), reasons="1,2"),
        "r4": rating(4, D1, "A1", 3, call_=c4, at=t(10), source=RatingSource.DEFAULT),
        "r5": rating(5, D1, "A1", 5, call_=c5, at=t(3), reasons="1", valid=False),
        "r6": rating(6, D1, None, 3, at=t(12), source=RatingSource.CALLBACK,
                     kind=RatingKind.PER_CASE),
        "r7": rating(7, D2, "A2", 3, call_=c6, at=t(3)),
        "r8": rating(8, D2, "A2", 5, call_=c7, at=dt.datetime(2026, 10, 31, 23, 30, tzinfo=UTC),
                     reasons="3"),
        "r9": rating(9, D2, "A2", 4, call_=c7, at=dt.datetime(2026, 9, 30, 17, 0, tzinfo=UTC),
                     reasons="3"),
        "r10": rating(10, D2, "A2", 4, call_=c8, at=t(10), reasons="3,1"),
    }
    session.add_all(r.values())
    await session.flush()

    def item(n: int, first: Rating, dept: str, agent: str, call_: Call | None,
             **fields: object) -> BadRatingItem:
        return BadRatingItem(
            subject_key=f"call:P-{n}", project_no=first.project_no, call_id=call_.id if call_
            else None, department_code=dept, agent_id=agent, first_rating_id=first.id,
            latest_rating_id=first.id, opened_at=first.rated_at,
            round_started_at=first.rated_at, **fields,
        )

    items = {
        # two 整改 rounds: the first 回访 (10-18) was 不满意, round 2 rectified 10-24 (due
        # 10-25), called back 10-26 满意, closed
        "i1": item(3, r["r3"], D1, "A1", c3, state="closed", round=2, verification="genuine",
                   verified_at=t(4), rectify_due=dt.date(2026, 10, 25),
                   rectification_reply="已上门整改", rectified_at=t(24, 3),
                   followup_at=t(26), followup_level=2, followup_solved=True, closed_at=t(26)),
        "i2": item(5, r["r5"], D1, "A1", c5, state="invalid", verification="malicious",
                   verified_at=t(4), rectify_due=dt.date(2026, 10, 24)),
        "i3": item(9, r["r9"], D2, "A2", c7, state="rectifying", verification="genuine",
                   verified_at=t(2), rectify_due=dt.date(2026, 10, 20)),
        "i4": item(10, r["r10"], D2, "A2", c8, state="followup", verification="genuine",
                   verified_at=t(11), rectify_due=dt.date(2026, 10, 27),
                   rectification_reply="已答复", rectified_at=t(29)),
    }
    session.add_all(items.values())
    await session.flush()
    i1, i3 = items["i1"], items["i3"]
    session.add_all([
        BadRatingEvent(item_id=i1.id, round=1, at=t(18), actor="system", role="system",
                       action="followup_result", from_state="followup", to_state="rectifying"),
        BadRatingEvent(item_id=i3.id, round=1, at=t(5), actor="A2", role="agent",
                       action="appeal", from_state="rectifying", to_state="in_review"),
    ])
    await session.flush()
    return {k: v.id for k, v in {**r, **items}.items()}
