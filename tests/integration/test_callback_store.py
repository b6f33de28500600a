"""Cases, campaigns, tasks and attempts in the database, on SQLite and PostgreSQL.

DOMAIN.md rule 5 (every closed 差评 gets a 回访; unreachable citizens go to a person, never
dropped), rule 3 (电话邀评 of calls not rated), rule 8 (numbers protected, do-not-call list,
attempt caps). The clock is passed in: every ``now`` here is chosen."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from callback_scheduler import campaigns as camp
from callback_scheduler import csvimport, tasks
from callback_scheduler.cases import (
    CaseConflict,
    CaseError,
    NewCase,
    close_case,
    create_case,
)
from callback_scheduler.claims import claim, why_not_dial
from callback_scheduler.results import Answer
from callback_scheduler.rules import Outcome
from hotline.levels import Level
from service.context import AppContext
from storage.models import (
    Call,
    CallbackAttempt,
    CallbackTask,
    Case,
    OutboxEntry,
    Rating,
    SurveyStatus,
)
from tests.helpers.callbacks import (
    NOW,
    NUMBER,
    add_call,
    bj,
    closed_bad_case,
    context,
    finish,
    rate_call,
    settle_open_tasks,
    task_of,
)


# ------------------------------------------------------------------------- cases
async def test_rule8_case_number_stored_protected_and_event_idempotent(ctx: AppContext) -> None:
    await add_call(ctx, "L-1")
    data = NewCase("GD-1", "D1", "住建局", "138-0013-8000", "L-1")
    async with ctx.db.transaction() as s:
        case, created = await create_case(s, ctx, data, NOW)
    assert created and case.citizen_masked == "138****8000"
    async with ctx.db.transaction() as s:
        again, created = await create_case(s, ctx, data, NOW)
    assert not created and again.id == case.id
    async with ctx.db.transaction() as s:
        with pytest.raises(CaseConflict, match="citizen_number"):
            await create_case(s, ctx, NewCase("GD-1", citizen_number="13900000000"), NOW)
        with pytest.raises(CaseError, match="call_linkedid"):
            await create_case(s, ctx, NewCase("GD-2", call_linkedid="nope"), NOW)
    async with ctx.db.engine.connect() as conn:
        dump = " ".join(str(r) for r in (await conn.execute(text("SELECT * FROM cases"))).all())
    assert NUMBER not in dump and ctx.vault.reveal(case.citizen_enc or "") == NUMBER
    async with ctx.db.sessions() as s:
        call = await s.scalar(select(Call).where(Call.linkedid == "L-1"))
    assert call is not None and call.case_number == "GD-1"


async def test_rule5_closing_a_bad_case_schedules_its_callback_in_working_days(
    ctx: AppContext,
) -> None:
    closed = await closed_bad_case(ctx, "GD-2")
    assert closed.task is not None and not closed.already_closed
    # closed Tue 30 Sep 2025, 5 working days: 9, 10, 11 (调休 Sat), 13, 14 October
    assert closed.case.callback_due == dt.date(2025, 10, 14)
    assert closed.task.deadline_at == bj(2025, 10, 15)
    assert closed.task.next_attempt_at == NOW and closed.task.status == "pending"
    assert closed.case.has_bad_rating
    async with ctx.db.transaction() as s:
        again = await close_case(s, ctx, "GD-2", rectification_result="x", bad_rating=None,
                                 now=NOW)
    assert again.already_closed and again.task is not None and again.task.id == closed.task.id
    async with ctx.db.sessions() as s:
        assert await s.scalar(select(func.count()).select_from(CallbackTask)) == 1


async def test_rule5_good_case_no_huifang_and_bad_case_without_number_is_flagged(
    ctx: AppContext,
) -> None:
    async with ctx.db.transaction() as s:
        await create_case(s, ctx, NewCase("GD-3", citizen_number=NUMBER), NOW)
        good = await close_case(s, ctx, "GD-3", rectification_result=None, bad_rating=None,
                                now=NOW)
        await create_case(s, ctx, NewCase("GD-4"), NOW)
        anon = await close_case(s, ctx, "GD-4", rectification_result=None, bad_rating=True,
                                now=NOW)
    # no 回访 for a good case; its 一事一评 call instead (issue 10, case_rating_scope "all")
    assert good.task is not None and "一事一评" in good.callback
    assert not good.case.has_bad_rating
    assert anon.task is None and anon.case.needs_attention and "no citizen number" in anon.callback


async def test_rule5_a_task_with_no_window_left_goes_straight_to_the_manual_list(
    tmp_path: Path, database_url: str,
) -> None:
    ctx = await context(tmp_path, database_url, callback_deadline_working_days=1,
                        callback_windows=["09:00-09:30"])
    try:
        late = bj(2025, 10, 9, 9, 45)  # deadline: end of Fri 10 Oct; one window left on it
        closed = await closed_bad_case(ctx, "GD-5", now=late)
        assert closed.task is not None and closed.task.next_attempt_at == bj(2025, 10, 10, 9)
        later = bj(2025, 10, 10, 9, 45)  # a campaign ending today, filled after its window
        await settle_open_tasks(ctx)
        async with ctx.db.transaction() as s:
            c = await camp.create_campaign(s, ctx, name="today", kind="case_followup",
                                           rules={"end_date": "2025-10-10"}, created_by="sup",
                                           now=later)
            await camp.add_by_filter(s, ctx, c.id, camp.CampaignFilter(levels=[4]), later)
            [item] = await tasks.manual_list(s, campaign_id=c.id)
        assert (item.case_number, item.why) == ("GD-5", "no_window")
    finally:
        await ctx.close()


# ------------------------------------------------------------------------ claiming
async def test_attempt_claimed_once_and_unique_per_task(ctx: AppContext) -> None:
    closed = await closed_bad_case(ctx, "GD-10")
    first = await claim(ctx, scheduler_id="s1", now=NOW, want=5)
    assert [(c.task_id, c.attempt_no, c.trunk) for c in first] == [(closed.task.id, 1, "carrier")]
    assert await claim(ctx, scheduler_id="s2", now=NOW, want=5) == []
    assert ctx.vault.reveal(first[0].number_enc) == NUMBER
    task = await task_of(ctx, closed.task.id)
    assert (task.status, task.attempts_made) == ("dialing", 1)
    async with ctx.db.transaction() as s:
        s.add(CallbackAttempt(task_id=task.id, attempt_no=1, status="dialing"))
        with pytest.raises(Exception, match=r"(?i)unique"):
            await s.flush()


async def test_rule8_no_claim_outside_the_window_or_on_a_holiday(ctx: AppContext) -> None:
    closed = await closed_bad_case(ctx, "GD-11")
    assert closed.task is not None
    assert await claim(ctx, scheduler_id="s", now=bj(2025, 9, 30, 12, 30), want=5) == []
    task = await task_of(ctx, closed.task.id)
    assert task.next_attempt_at == bj(2025, 9, 30, 14)  # moved on, not dialled
    assert await claim(ctx, scheduler_id="s", now=bj(2025, 10, 1, 10), want=5) == []
    task = await task_of(ctx, closed.task.id)
    assert task.next_attempt_at == bj(2025, 10, 9, 9) and task.attempts_made == 0


async def test_rule8_do_not_call_number_is_not_dialled_but_listed(ctx: AppContext) -> None:
    closed = await closed_bad_case(ctx, "GD-12")
    async with ctx.db.transaction() as s:
        assert await camp.add_do_not_call(s, ctx.vault.protect(NUMBER), "test", NOW)
        assert not await camp.add_do_not_call(s, ctx.vault.protect(NUMBER), "test", NOW)
    assert await claim(ctx, scheduler_id="s", now=NOW, want=5) == []
    task = await task_of(ctx, closed.task.id)
    assert (task.status, task.outcome) == ("unreachable", "do_not_call")


async def test_pause_stops_new_dials_at_once_and_the_last_check_catches_a_claim(
    ctx: AppContext,
) -> None:
    closed = await closed_bad_case(ctx, "GD-13")
    [claimed] = await claim(ctx, scheduler_id="s", now=NOW, want=1)
    async with ctx.db.transaction() as s:
        standing = await camp.standing_campaign(s, NOW)
        await camp.change_status(s, ctx, standing.id, "pause", NOW)
    assert await why_not_dial(ctx, claimed, NOW) == "campaign paused"
    await finish(ctx, claimed.attempt_id, Outcome.SKIPPED, NOW)
    task = await task_of(ctx, closed.task.id)
    assert (task.status, task.attempts_made) == ("pending", 0)  # nobody was called
    assert await claim(ctx, scheduler_id="s", now=NOW, want=1) == []
    async with ctx.db.transaction() as s:
        await camp.change_status(s, ctx, standing.id, "start", NOW)
        with pytest.raises(camp.CampaignError):
            await camp.change_status(s, ctx, standing.id, "cancel", NOW)
    [again] = await claim(ctx, scheduler_id="s", now=NOW, want=1)
    assert again.attempt_no == 2 and await why_not_dial(ctx, again, NOW) is None


async def test_rule8_overall_cap_holds_across_concurrent_claimers(
    tmp_path: Path, database_url: str,
) -> None:
    ctx = await context(tmp_path, database_url, callback_max_concurrent_calls=3)
    try:
        for i in range(8):
            await closed_bad_case(ctx, f"GD-C{i}", number=f"1380013{i:04d}")
        import asyncio

        rounds = await asyncio.gather(*[
            claim(ctx, scheduler_id=f"s{i}", now=NOW, want=3) for i in range(4)])
        claimed = [c for r in rounds for c in r]
        assert len(claimed) == 3 and len({c.task_id for c in claimed}) == 3
        await finish(ctx, claimed[0].attempt_id, Outcome.BUSY, NOW)
        assert len(await claim(ctx, scheduler_id="s9", now=NOW, want=5)) == 1
    finally:
        await ctx.close()


async def test_trunk_and_campaign_caps_and_calls_per_minute(
    tmp_path: Path, database_url: str,
) -> None:
    ctx = await context(tmp_path, database_url, callback_trunks=[
        {"name": "carrier", "dial_string": "PJSIP/{number}@carrier", "max_calls": 2}])
    try:
        for i in range(4):
            await closed_bad_case(ctx, f"GD-T{i}", number=f"1390013{i:04d}")
        assert len(await claim(ctx, scheduler_id="s", now=NOW, want=5)) == 2  # trunk full
        async with ctx.db.transaction() as s:
            c = await camp.create_campaign(s, ctx, name="邀评", kind="rating_invite",
                                           rules={"calls_per_minute": 1, "trunk": "carrier"},
                                           created_by="t", now=NOW)
        assert c.rules["calls_per_minute"] == 1
    finally:
        await ctx.close()


# ------------------------------------------------------------- outcomes and retries
async def test_rule5_busy_retried_after_delay_then_manual_list_then_manual_result(
    tmp_path: Path, database_url: str,
) -> None:
    ctx = await context(tmp_path, database_url, callback_max_attempts=2)
    try:
        closed = await closed_bad_case(ctx, "GD-20")
        [a1] = await claim(ctx, scheduler_id="s", now=NOW, want=1)
        await finish(ctx, a1.attempt_id, Outcome.BUSY, NOW)
        task = await task_of(ctx, closed.task.id)
        assert (task.status, task.outcome) == ("pending", "busy")
        assert task.next_attempt_at == NOW + dt.timedelta(minutes=30)
        assert await claim(ctx, scheduler_id="s", now=NOW + dt.timedelta(minutes=29), want=1) == []
        [a2] = await claim(ctx, scheduler_id="s", now=NOW + dt.timedelta(minutes=30), want=1)
        await finish(ctx, a2.attempt_id, Outcome.NO_ANSWER, NOW + dt.timedelta(minutes=31))
        await finish(ctx, a2.attempt_id, Outcome.RATED, NOW)  # a late duplicate: ignored
        task = await task_of(ctx, closed.task.id)
        assert (task.status, task.outcome, task.attempts_made) == (
            "unreachable", "max_attempts", 2)
        async with ctx.db.sessions() as s:
            [item] = await tasks.manual_list(s)
        assert (item.case_number, item.number_masked, item.last_outcome) == (
            "GD-20", "138****8000", "no_answer")
        async with ctx.db.transaction() as s:
            assert await tasks.reveal_number(s, ctx, task.id, "sup", reason="人工回访") == NUMBER
            await tasks.record_manual(
                s, ctx, task.id, reached=True, by="王主任", note="午休后接通",
                answer=Answer(Level.SATISFIED, resolved=False), now=NOW + dt.timedelta(hours=2))
        task = await task_of(ctx, closed.task.id)
        assert (task.status, task.outcome) == ("manual_done", "manual_reached")
        async with ctx.db.sessions() as s:
            rating = await s.get(Rating, task.result_rating_id)
            case = await s.scalar(select(Case).where(Case.case_number == "GD-20"))
            entries = (await s.scalars(select(OutboxEntry).where(
                OutboxEntry.project_no == "GD-20"))).all()
            assert await tasks.manual_list(s) == []
            summary = await camp.summary(s, task.campaign_id or 0)
        assert rating is not None
        assert (rating.kind, rating.source, rating.assess_number, rating.level) == (
            "per_case", "manual", 2, 2)
        assert case is not None and case.needs_attention  # 未解决
        assert [e.assess_number for e in entries] == [2]
        assert summary.callback_rate == 1.0
        async with ctx.db.transaction() as s:
            with pytest.raises(tasks.ManualError, match="already"):
                await tasks.record_manual(s, ctx, task.id, reached=False, answer=None,
                                          note=None, by="x", now=NOW)
    finally:
        await ctx.close()


async def test_ivr_result_and_hangup_in_either_order_complete_the_task(ctx: AppContext) -> None:
    one = await closed_bad_case(ctx, "GD-21")
    two = await closed_bad_case(ctx, "GD-22", number="13900139000")
    a, b = sorted(await claim(ctx, scheduler_id="s", now=NOW, want=2), key=lambda c: c.task_id)
    answer = Answer(Level.VERY_DISSATISFIED, resolved=True, reason_codes=("2",))
    # IVR first, then the Hangup seen by the dialer
    async with ctx.db.transaction() as s:
        await tasks.record_ivr_result(s, ctx, a.attempt_id, answer, Outcome.RATED, now=NOW)
    await finish(ctx, a.attempt_id, Outcome.ANSWERED_NO_RATING, NOW)
    # Hangup first (a retry is planned), then the IVR's late write
    await finish(ctx, b.attempt_id, Outcome.ANSWERED_NO_RATING, NOW)
    assert (await task_of(ctx, two.task.id)).status == "pending"
    async with ctx.db.transaction() as s:
        await tasks.record_ivr_result(s, ctx, b.attempt_id, answer, Outcome.RATED, now=NOW)
    for closed in (one, two):
        task = await task_of(ctx, closed.task.id)
        assert (task.status, task.outcome) == ("completed", "rated")
        async with ctx.db.sessions() as s:
            rating = await s.get(Rating, task.result_rating_id)
            case = await s.get(Case, task.case_id)
        assert rating is not None and rating.reason_codes == "2" and rating.source == "callback"
        assert case is not None and case.needs_attention  # a 差评 flags the case


async def test_deadline_sweep_moves_pending_tasks_to_the_manual_list(ctx: AppContext) -> None:
    closed = await closed_bad_case(ctx, "GD-23")
    async with ctx.db.transaction() as s:
        assert await tasks.expire_deadlines(s, bj(2025, 10, 14, 23)) == 0
        assert await tasks.expire_deadlines(s, bj(2025, 10, 15)) == 1
    task = await task_of(ctx, closed.task.id)
    assert (task.status, task.outcome) == ("unreachable", "deadline")


async def test_orphaned_attempts_are_found_for_reconciliation(ctx: AppContext) -> None:
    await closed_bad_case(ctx, "GD-24")
    [a] = await claim(ctx, scheduler_id="dead", now=NOW, want=1)
    async with ctx.db.sessions() as s:
        assert await tasks.orphaned_attempts(s, ctx, NOW + dt.timedelta(minutes=5)) == []
        [orphan] = await tasks.orphaned_attempts(s, ctx, NOW + dt.timedelta(hours=1))
    assert orphan.id == a.attempt_id


# ----------------------------------------------------------------------- campaigns
async def test_rule3_invite_campaign_by_filter_takes_not_rated_calls(ctx: AppContext) -> None:
    await add_call(ctx, "N-1", status=SurveyStatus.NOT_RATED)
    await add_call(ctx, "N-2", status=SurveyStatus.NOT_RATED, department="D2")
    await add_call(ctx, "N-3", status=SurveyStatus.NOT_RATED, number=None)
    await add_call(ctx, "N-4", status=SurveyStatus.NOT_RATED, number="13700137000")
    await add_call(ctx, "N-5", status=SurveyStatus.NOT_RATED, started=bj(2025, 9, 28, 10))
    await add_call(ctx, "R-1")  # rated: not invited
    async with ctx.db.transaction() as s:
        await camp.add_do_not_call(s, ctx.vault.protect("13700137000"), "test", NOW)
        c = await camp.create_campaign(s, ctx, name="九月邀评", kind="rating_invite", rules={},
                                       created_by="sup", now=NOW)
        flt = camp.CampaignFilter(date_from=dt.date(2025, 9, 30), date_to=dt.date(2025, 9, 30),
                                  department_code="D1", not_rated=True)
        result = await camp.add_by_filter(s, ctx, c.id, flt, NOW)
        again = await camp.add_by_filter(s, ctx, c.id, flt, NOW)
    assert (result.added, result.no_number, result.do_not_call) == (1, 1, 1)
    assert (again.added, again.already_in_campaign) == (0, 1)
    assert await claim(ctx, scheduler_id="s", now=NOW, want=5) == []  # still a draft
    async with ctx.db.transaction() as s:
        await camp.change_status(s, ctx, c.id, "start", NOW)
    [a] = await claim(ctx, scheduler_id="s", now=NOW, want=5)
    async with ctx.db.transaction() as s:
        await tasks.record_ivr_result(s, ctx, a.attempt_id, Answer(Level.SATISFIED),
                                      Outcome.RATED, now=NOW)
    await finish(ctx, a.attempt_id, Outcome.ANSWERED_NO_RATING, NOW)
    async with ctx.db.sessions() as s:
        rating = await s.scalar(select(Rating).where(Rating.project_no == "CALL-N-1"))
        call = await s.scalar(select(Call).where(Call.linkedid == "N-1"))
    assert rating is not None and (rating.kind, rating.assess_number) == ("per_call", 1)
    assert call is not None and call.survey_status == SurveyStatus.RATED
    async with ctx.db.transaction() as s:
        assert await tasks.finish_campaigns(s, ctx, NOW) == 1  # every task decided
        assert (await camp.get_campaign(s, c.id)).status == "finished"


async def test_followup_campaign_by_levels_and_dates(ctx: AppContext) -> None:
    await closed_bad_case(ctx, "GD-30")
    await closed_bad_case(ctx, "GD-31", now=bj(2025, 9, 29, 10))
    await add_call(ctx, "L-GD-32", number="13600136000")
    await rate_call(ctx, "L-GD-32", Level.VERY_SATISFIED)
    async with ctx.db.transaction() as s:
        await create_case(s, ctx, NewCase("GD-32", "D1", citizen_number="13600136000",
                                          call_linkedid="L-GD-32"), NOW)
        await close_case(s, ctx, "GD-32", rectification_result=None, bad_rating=None, now=NOW)
    await settle_open_tasks(ctx)
    async with ctx.db.transaction() as s:
        c = await camp.create_campaign(s, ctx, name="满意度", kind="satisfaction_followup",
                                       rules={"max_attempts": 1}, created_by="sup", now=NOW)
        bad = await camp.add_by_filter(s, ctx, c.id, camp.CampaignFilter(
            date_from=dt.date(2025, 9, 30), levels=[4, 5]), NOW)
        good = await camp.add_by_filter(s, ctx, c.id, camp.CampaignFilter(levels=[1]), NOW)
        with pytest.raises(camp.CampaignError, match="rating_invite"):
            await camp.add_by_filter(s, ctx, c.id, camp.CampaignFilter(not_rated=True), NOW)
    assert (bad.added, good.added) == (1, 1)
    async with ctx.db.sessions() as s:
        summary = await camp.summary(s, c.id)
    assert summary.total == 2 and summary.tasks == {"pending": 2}
    assert summary.rules["max_attempts"] == 1 and summary.callback_rate == 0.0


async def test_csv_import_all_or_nothing_with_line_numbers(ctx: AppContext) -> None:
    await closed_bad_case(ctx, "GD-40")
    await settle_open_tasks(ctx)
    async with ctx.db.transaction() as s:
        await create_case(s, ctx, NewCase("GD-41"), NOW)  # no number on file
        c = await camp.create_campaign(s, ctx, name="导入", kind="case_followup", rules={},
                                       created_by="sup", now=NOW)
    bad = "case_number,number\nGD-40,\nGD-99,13800000001\nGD-41,\n"
    with pytest.raises(csvimport.ImportRejected) as err:
        async with ctx.db.transaction() as s:
            await camp.import_csv(s, ctx, c.id, bad.encode(), NOW)
    assert [(e.line, e.message) for e in err.value.errors] == [
        (3, "unknown case_number"), (4, "no number: give one in the number column")]
    async with ctx.db.sessions() as s:
        assert (await camp.summary(s, c.id)).total == 0  # nothing half-imported
    good = "case_number,number\nGD-40,\nGD-41,13600136000\n"
    async with ctx.db.transaction() as s:
        result = await camp.import_csv(s, ctx, c.id, good.encode(), NOW)
    assert result.added == 2
    with pytest.raises(csvimport.ImportRejected, match="already in this campaign"):
        async with ctx.db.transaction() as s:
            await camp.import_csv(s, ctx, c.id, good.encode(), NOW)


async def test_cancel_drops_open_tasks_and_end_date_finishes_campaign(ctx: AppContext) -> None:
    await closed_bad_case(ctx, "GD-50")
    await closed_bad_case(ctx, "GD-51", number="13900139000")
    await settle_open_tasks(ctx)
    async with ctx.db.transaction() as s:
        first = await camp.create_campaign(s, ctx, name="a", kind="case_followup", rules={},
                                           created_by="sup", now=NOW)
        dated = await camp.create_campaign(
            s, ctx, name="b", kind="case_followup", rules={"end_date": "2025-09-30"},
            created_by="sup", now=NOW)
        for c in (first, dated):
            await camp.add_by_filter(s, ctx, c.id, camp.CampaignFilter(levels=[4]), NOW)
            await camp.change_status(s, ctx, c.id, "start", NOW)
            if c is first:  # its tasks end, so the cases may go into the second campaign
                await camp.change_status(s, ctx, first.id, "cancel", NOW)
        with pytest.raises(camp.CampaignError, match="cancelled campaign cannot start"):
            await camp.change_status(s, ctx, first.id, "start", NOW)
    async with ctx.db.transaction() as s:
        assert await tasks.finish_campaigns(s, ctx, bj(2025, 9, 30, 23)) == 0
        assert await tasks.finish_campaigns(s, ctx, bj(2025, 10, 1, 0, 1)) == 1
    async with ctx.db.sessions() as s:
        cancelled = await camp.summary(s, first.id)
        finished = await camp.summary(s, dated.id)
        listed = await tasks.manual_list(s, campaign_id=dated.id)
    assert cancelled.tasks == {"cancelled": 2} and cancelled.callback_rate is None
    assert finished.status == "finished" and finished.outcomes == {"campaign_ended": 2}
    assert len(listed) == 2
