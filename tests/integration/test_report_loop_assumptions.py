"""What reports/loop.py reads from a 差评 item is what bad_ratings/ writes there (issue 11's
按期整改率, 回访率 and 整改结果满意率 depend on it), on SQLite and PostgreSQL, driving items
through the real loop (bad_ratings.service) and counting them with the real report query:

- ``rectify_due`` is the due date in force after an approved 延期 (seed 001 "若因客观条件限制
  在期限内难以整改的，应说明理由和整改期限"): a 整改 after the first due date but before the
  approved one is 按期;
- ``rectified_at`` is cleared when a new 整改 round starts and set again by its 整改: round
  2's 回访 counts only after round 2's 整改, and that 整改's date decides 按期;
- ``followup_level`` is the canonical numbering (hotline/levels.py, DOMAIN.md "The five
  levels": 1 = 非常满意), so 基本满意 and better count as satisfied with the 整改.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from sqlalchemy import select

from bad_ratings import service
from bad_ratings.machine import Action, Command, Finding
from bad_ratings.service import Actor
from hotline.clock import utcnow
from hotline.levels import Level
from reports.engine import Window
from reports.loop import ledger, loop_counts
from service.context import AppContext
from storage.models import BadRatingItem
from tests.helpers.callbacks import add_call, rate_call

DEP = Actor("dep-d1", "department", frozenset({"D1"}))
SUP = Actor("sup", "supervisor")
TZ = ZoneInfo("Asia/Shanghai")


def noon(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(12), TZ).astimezone(dt.UTC)


async def open_item(ctx: AppContext, linkedid: str) -> BadRatingItem:
    await add_call(ctx, linkedid)
    await rate_call(ctx, linkedid, Level.VERY_DISSATISFIED)
    async with ctx.db.sessions() as s:
        row = await s.scalar(select(BadRatingItem).order_by(BadRatingItem.id.desc()))
    assert row is not None
    return row


async def act(ctx: AppContext, actor: Actor, item_id: int, cmd: Command,
              now: dt.datetime) -> BadRatingItem:
    async with ctx.db.transaction() as s:
        return await service.act(s, actor, item_id, cmd, policy=ctx.bad_rating_policy, now=now)


async def answer(ctx: AppContext, item_id: int, solved: bool, level: Level,
                 now: dt.datetime) -> BadRatingItem:
    async with ctx.db.transaction() as s:
        return await service.followup_result(s, item_id, solved=solved, level=level,
                                             rating_id=None, policy=ctx.bad_rating_policy,
                                             now=now)


async def counts(ctx: AppContext, opened: dt.datetime, today: dt.date) -> dict[str, int]:
    window = Window(opened - dt.timedelta(days=1), opened + dt.timedelta(days=1))
    async with ctx.db.sessions() as s:
        result = await loop_counts(s, window, "department", tz=TZ, today=today)
    return result["D1"]


def verify() -> Command:
    return Command(Action.VERIFY, "department", note="属实", finding=Finding.GENUINE)


def rectify(text: str = "已整改") -> Command:
    return Command(Action.RECTIFY, "department", note=text, citizen_result=text)


async def test_rectify_due_is_the_approved_extension_and_decides_on_time(ctx: AppContext) -> None:
    row = await open_item(ctx, "LA-1")
    now = utcnow()
    first_due = row.rectify_due
    assert first_due is not None
    await act(ctx, DEP, row.id, verify(), now)
    extended = first_due + dt.timedelta(days=20)
    await act(ctx, DEP, row.id, Command(Action.REQUEST_EXTENSION, "department",
                                        note="需协调多部门", due=extended), now)
    row = await act(ctx, SUP, row.id, Command(Action.DECIDE_EXTENSION, "supervisor",
                                              approve=True), now)
    assert row.rectify_due == extended  # the due date in force, where reports read it
    late_for_the_first = noon(first_due + dt.timedelta(days=5))
    row = await act(ctx, DEP, row.id, rectify(), late_for_the_first)
    assert row.rectify_due == extended and row.rectified_at == late_for_the_first
    got = await counts(ctx, row.opened_at, first_due + dt.timedelta(days=5))
    assert (got["rectified"], got["rectified_on_time"], got["overdue"]) == (1, 1, 0)


async def test_rectified_at_is_set_again_in_each_round(ctx: AppContext) -> None:
    row = await open_item(ctx, "LA-2")
    start = utcnow()
    await act(ctx, DEP, row.id, verify(), start)
    first = start + dt.timedelta(hours=1)
    await act(ctx, DEP, row.id, rectify(), first)
    row = await answer(ctx, row.id, False, Level.SATISFIED, start + dt.timedelta(hours=2))
    assert (row.round, row.state, row.rectified_at) == (2, "rectifying", None)
    today = (start + dt.timedelta(hours=3)).astimezone(TZ).date()
    got = await counts(ctx, row.opened_at, today)
    # round 2 runs: its 整改 is not done and round 1's 回访 is not round 2's
    assert (got["rectified"], got["called_back"]) == (0, 0)
    async with ctx.db.sessions() as s:
        [line] = await ledger(s, Window(row.opened_at - dt.timedelta(days=1),
                                        row.opened_at + dt.timedelta(days=1)), tz=TZ, today=today)
    assert (line.round, line.rectified_at) == (2, None)  # the 台账 shows the running round
    second = start + dt.timedelta(hours=3)
    row = await act(ctx, DEP, row.id, rectify("已上门解决"), second)
    assert row.rectified_at == second and row.round == 2
    got = await counts(ctx, row.opened_at, today)
    assert (got["rectified"], got["rectified_on_time"], got["called_back"]) == (1, 1, 0)
    row = await answer(ctx, row.id, True, Level.SATISFIED, start + dt.timedelta(hours=4))
    assert row.state == "closed"
    got = await counts(ctx, row.opened_at, today)
    assert (got["called_back"], got["callback_satisfied"]) == (1, 1)


async def test_followup_level_uses_the_canonical_numbering(ctx: AppContext) -> None:
    """1 = 非常满意 … 5 = 非常不满意 (hotline/levels.py): 基本满意 (3) is satisfied, and a
    非常满意 answer is stored as 1, not as the provincial 5."""
    now = utcnow()
    ids = []
    for linkedid, level in (("LA-3", Level.VERY_SATISFIED), ("LA-4", Level.BASICALLY_SATISFIED)):
        row = await open_item(ctx, linkedid)
        await act(ctx, DEP, row.id, verify(), now)
        await act(ctx, DEP, row.id, rectify(), now)
        row = await answer(ctx, row.id, True, level, now + dt.timedelta(minutes=1))
        assert row.followup_level == int(level) and row.state == "closed"
        ids.append(row.id)
    async with ctx.db.sessions() as s:
        levels = list(await s.scalars(select(BadRatingItem.followup_level)
                                      .where(BadRatingItem.id.in_(ids))
                                      .order_by(BadRatingItem.id)))
    assert levels == [1, 3]
    got = await counts(ctx, now, now.astimezone(TZ).date())
    assert (got["called_back"], got["callback_satisfied"]) == (2, 2)
