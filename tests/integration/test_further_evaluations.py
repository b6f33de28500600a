"""Issue 8 defect 6: a second evaluation of a case never overwrites the first — each 回访 of a
case is its own rating with its own (projectNo, assessNumber), the province's idempotency key
(DOMAIN.md "The provincial push record")."""

from __future__ import annotations

from sqlalchemy import select

from callback_scheduler.results import Answer, store_answer
from hotline.clock import utcnow
from hotline.levels import Level
from service.context import AppContext
from storage.models import CallbackTask, Case, OutboxEntry, Rating, RatingSource


async def test_each_followup_of_a_case_is_its_own_record_and_key(ctx: AppContext) -> None:
    protected = ctx.vault.protect("13800138000")
    async with ctx.db.transaction() as s:
        case = Case(case_number="GD-EV-1", department_code="D1")
        s.add(case)
        await s.flush()
        first, second = (
            CallbackTask(case_id=case.id, number_enc=protected.encrypted,
                         number_hash=protected.digest, number_masked=protected.masked)
            for _ in range(2)
        )
        s.add_all([first, second])
        await s.flush()
        ids = (first.id, second.id)
    answers = [Answer(Level.VERY_DISSATISFIED, resolved=False), Answer(Level.SATISFIED, True)]
    for task_id, answer in zip(ids, answers, strict=True):
        for _ in range(2):  # the 回访 saves after every step: the same evaluation again
            async with ctx.db.transaction() as s:
                task = await s.get(CallbackTask, task_id)
                assert task is not None
                await store_answer(s, task, answer, source=RatingSource.CALLBACK, now=utcnow())
    async with ctx.db.sessions() as s:
        ratings = list(await s.scalars(
            select(Rating).where(Rating.project_no == "GD-EV-1").order_by(Rating.id)))
        keys = list(await s.scalars(select(OutboxEntry.assess_number).where(
            OutboxEntry.project_no == "GD-EV-1").order_by(OutboxEntry.id)))
    assert [(r.assess_number, r.level) for r in ratings] == [(2, 5), (3, 2)]
    assert keys == [2, 3]  # two records upstream, under two keys
