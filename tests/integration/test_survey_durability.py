"""Issue 8 defects 3, 5, 10 and 11 on SQLite and PostgreSQL: the survey's vote survives a
database that fails during the call (retried, else journalled and replayed exactly once), the
hang-up path and the default job leave a journalled vote alone, the status changes are
conditional in the statement itself, and the default window runs from the call's end.

The database failure is injected at the adapter boundary (``Database.transaction`` raising the
``OperationalError`` SQLite gives for "database is locked"); the real PostgreSQL outage is the
fault suite's (tests/faults/test_database_outage.py)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from hotline.clock import utcnow
from hotline.levels import Level
from ivr import defaults, journal_replay
from ivr import prompts as P
from ivr.agi.simulated import SimulatedCaller, environment_lines, memory_channel
from ivr.survey import Save
from ivr.survey_flow import handle
from ivr.survey_store import CallInfo, SurveyStore
from service.context import AppContext
from storage.journal import Journal
from storage.models import Call, OutboxEntry, OutboxStatus, Rating, SurveyStatus

LINKEDID = "1700000000.5"


@pytest.fixture
async def ctx(settings: Any) -> AsyncIterator[AppContext]:
    """Short deadline and minutes window, so the tests run in seconds."""
    settings = settings.model_copy(update={
        "survey_save_deadline_seconds": 0.3, "default_rating_window": 1,
        "default_rating_window_unit": "minutes",
    })
    context = AppContext.create(settings)
    yield context
    await context.close()


class Fault:
    """The database refuses every transaction and (with ``autocommit``) every single-statement
    write (SQLite's autocommit connection, PostgreSQL's direct statements) while ``on``: what
    SQLite says when locked."""

    def __init__(self, ctx: AppContext, *, autocommit: bool = True) -> None:
        self.on = False
        self.refused = 0
        ctx.db.transaction = self._refusing(ctx.db.transaction)  # type: ignore[method-assign]
        if autocommit:
            ctx.db.autocommit = self._refusing(ctx.db.autocommit)  # type: ignore[method-assign]
            direct = ctx.db.fetch_direct

            async def refusing_direct(*args: Any) -> Any:
                if self.on:
                    self.refused += 1
                    raise OperationalError("INSERT", {}, Exception("connection refused"))
                return await direct(*args)

            ctx.db.fetch_direct = refusing_direct  # type: ignore[method-assign]

    def _refusing(self, real: Callable[[], Any]) -> Callable[[], Any]:
        @asynccontextmanager
        async def refusing() -> AsyncIterator[Any]:
            if self.on:
                self.refused += 1
                raise OperationalError("BEGIN", {}, Exception("database is locked"))
            async with real() as session:
                yield session

        return refusing


def when_prompt(caller: SimulatedCaller, prompt: str, do: Callable[[], None]) -> Any:
    """The caller, doing ``do`` when Asterisk is asked to play ``prompt``."""

    def responder(line: str) -> list[str] | None:
        if P.sound_name(prompt) in line:
            do()
        return caller(line)

    return responder


async def run(ctx: AppContext, responder: Any, **env: Any) -> str:
    channel, _ = memory_channel(responder, environment_lines(**env))
    await channel.read_environment()
    return await handle(ctx, channel)


async def state(ctx: AppContext, linkedid: str = LINKEDID) -> tuple[str | None, Rating | None]:
    async with ctx.db.sessions() as s:
        status = await s.scalar(select(Call.survey_status).where(Call.linkedid == linkedid))
        rating = await s.scalar(select(Rating).where(Rating.project_no == f"CALL-{linkedid}"))
        return status, rating


async def outbox(ctx: AppContext) -> list[OutboxEntry]:
    async with ctx.db.sessions() as s:
        return list((await s.scalars(select(OutboxEntry).order_by(OutboxEntry.id))).all())


def later(minutes: float) -> dt.datetime:
    return utcnow() + dt.timedelta(minutes=minutes)


# ----------------------------------------------------------------------------- defect 3
async def test_a_database_error_mid_survey_never_turns_the_vote_into_a_default(
    ctx: AppContext,
) -> None:
    """Defect 3, the reported path: the database fails after the menu (a 差评, 4, reason 2);
    the survey goes on, the hang-up handler and the default job run while the vote sits in the
    journal, then the database comes back: the vote, its reason and its outbox entry are there,
    once. Before the fix the survey ended at the error and the call was defaulted 基本满意."""
    # the call row (one autocommit statement, written while the menu starts) lands; the saves
    # of the 差评 (transactions) fail
    fault = Fault(ctx, autocommit=False)
    caller = SimulatedCaller(keys=["4", "2", None])
    fail_from_now = lambda: setattr(fault, "on", True)  # noqa: E731
    outcome = await run(ctx, when_prompt(caller, P.SURVEY_WELCOME, fail_from_now))
    assert outcome == "rated" and fault.refused > 0
    assert caller.variables["SURVEY_RESULT"] == "4"
    assert P.sound_name(P.SURVEY_THANKS) in caller.played
    assert ctx.survey_journal.holds(LINKEDID)

    fault.on = False  # the database answers again, before the journal is replayed
    gone = SimulatedCaller(hung_up=True)  # the dialplan's hang-up handler, on the dead channel
    await run(ctx, gone)
    assert (await state(ctx))[0] == SurveyStatus.IN_PROGRESS  # not "not rated"
    async with ctx.db.transaction() as s:  # even once stale, the default job keeps off it
        await s.execute(update(Call).values(survey_status=SurveyStatus.NOT_RATED,
                                            ended_at=utcnow() - dt.timedelta(hours=2)))
    assert (await defaults.run_once(ctx, later(120))).defaulted == 0

    report = await journal_replay.replay_once(ctx)
    assert report.calls == 1 and not ctx.survey_journal.holds(LINKEDID)
    status, rating = await state(ctx)
    assert status == SurveyStatus.RATED
    assert rating is not None and (rating.level, rating.source, rating.reason_codes) == (
        4, "keypad", "2")
    [entry] = await outbox(ctx)
    assert entry.ready_at <= utcnow() and entry.payload["level"] == 4
    assert (await defaults.run_once(ctx, later(120))).defaulted == 0
    assert await journal_replay.replay_once(ctx) == journal_replay.ReplayReport()


async def test_a_transient_error_is_retried_within_the_deadline(ctx: AppContext) -> None:
    """One "database is locked" is retried: the step lands in the database, nothing journalled."""
    fault = Fault(ctx)
    store = SurveyStore(ctx, CallInfo(linkedid=LINKEDID))
    await store.begin(live=True)
    fault.on = True
    asyncio.get_running_loop().call_later(0.05, lambda: setattr(fault, "on", False))
    await store.save(Save(Level.VERY_SATISFIED, final=True))
    assert fault.refused >= 1 and not store.journalled
    assert ctx.survey_journal.log.is_empty()
    status, rating = await state(ctx)
    assert status == SurveyStatus.RATED and rating is not None and rating.level == 1


async def test_a_step_that_waits_for_a_slot_past_the_deadline_is_journalled_alone(
    ctx: AppContext,
) -> None:
    """Issue 13, congestion: a step still waiting for one of the database's slots at its
    deadline is journalled, and its write is dropped, never sent to the database afterwards
    (no double work, and no old write landing after the journal's copy). The vote lands once,
    by the replay."""
    store = SurveyStore(ctx, CallInfo(linkedid=LINKEDID))
    await store.begin(live=True)
    slots = ctx.db.slots
    held = [await slots.acquire() for _ in range(slots._value)]  # every connection busy
    await store.save(Save(Level.VERY_SATISFIED, final=True))
    assert store.journalled
    for _ in held:
        slots.release()
    await asyncio.sleep(0.2)
    assert (await state(ctx))[1] is None  # the dropped write never ran
    ctx.survey_journal.db_ok()
    assert (await journal_replay.replay_once(ctx)).calls == 1
    status, rating = await state(ctx)
    assert status == SurveyStatus.RATED and rating is not None and rating.level == 1
    assert len(await outbox(ctx)) == 1


async def test_calls_begun_during_an_outage_are_recorded_after_it(ctx: AppContext) -> None:
    """Rule 1 through an outage: calls that start, rate or hang up while the database refuses
    everything get their rows and votes from the journal (the fault run found 1,203 calls with
    no row)."""
    fault = Fault(ctx)
    fault.on = True
    keys = {"9.1": ["1"], "9.2": ["hangup"], "9.3": ["5", "1", None], "9.4": [None, None]}
    for linkedid, pressed in keys.items():
        await run(ctx, SimulatedCaller(keys=list(pressed), linkedid=linkedid),
                  callerid="13800138000")
    assert fault.refused > 0
    with pytest.raises(OperationalError):
        await journal_replay.replay_once(ctx)  # still down: everything kept
    fault.on = False
    assert (await journal_replay.replay_once(ctx)).calls == 4
    got = {lid: await state(ctx, lid) for lid in keys}
    assert got["9.1"][0] == SurveyStatus.RATED and got["9.1"][1].level == 1  # type: ignore[union-attr]
    assert got["9.2"] == (SurveyStatus.NOT_RATED, None)
    assert got["9.3"][0] == SurveyStatus.RATED and got["9.3"][1].reason_codes == "1"  # type: ignore[union-attr]
    assert got["9.4"] == (SurveyStatus.NOT_RATED, None)
    async with ctx.db.sessions() as s:  # rule 8: the number came through the journal protected
        call = await s.scalar(select(Call).where(Call.linkedid == "9.1"))
    assert call is not None and call.caller_masked == "138****8000"
    assert ctx.vault.reveal(call.caller_enc or "") == "13800138000"
    for path in ctx.survey_journal.log.directory.iterdir():
        assert b"13800138000" not in path.read_bytes()
    assert len(await outbox(ctx)) == 2


async def test_a_replay_cut_short_and_run_again_pushes_nothing_twice(ctx: AppContext) -> None:
    """Exactly once: the replay applied the vote, the forwarder delivered it, then the process
    died before the journal file was removed; the replay after the restart queues nothing.
    (Before the fix a second, identical outbox entry was queued: a duplicate push.)"""
    fault = Fault(ctx)
    fault.on = True
    await run(ctx, SimulatedCaller(keys=["2"]))
    fault.on = False
    journal = ctx.survey_journal
    real_remove = journal.log.remove
    journal.log.remove = lambda path: (_ for _ in ()).throw(OSError("killed"))  # type: ignore[method-assign]
    with pytest.raises(OSError):
        await journal_replay.replay_once(ctx)
    journal.log.remove = real_remove  # type: ignore[method-assign]
    async with ctx.db.transaction() as s:
        await s.execute(update(OutboxEntry).values(status=OutboxStatus.DELIVERED, attempts=1))
    assert journal.holds(LINKEDID)
    assert (await journal_replay.replay_once(ctx)).calls == 1
    [entry] = await outbox(ctx)
    assert entry.status == OutboxStatus.DELIVERED
    assert journal.log.is_empty() and not journal.holds(LINKEDID)


# ----------------------------------------------------------------------------- defect 11
async def test_the_level_is_durable_before_the_next_prompt_plays(ctx: AppContext) -> None:
    """Defect 11: when the reason menu is asked for, the 差评 pressed before it is already in
    the database or the journal — here with the database refusing, so it is the journal."""
    fault = Fault(ctx)
    seen: list[bool] = []

    def at_reasons() -> None:
        records = [r for p in ctx.survey_journal.log.files() for r in Journal.read(p)]
        seen.append(any(r.get("vote", {}).get("level") == 5 for r in records))

    caller = SimulatedCaller(keys=["5", "hangup"])

    def responder(line: str) -> list[str] | None:
        if P.sound_name(P.SURVEY_WELCOME) in line:  # the first menu
            fault.on = True
        if P.sound_name(P.SURVEY_REASONS) in line:
            at_reasons()
        return caller(line)

    assert await run(ctx, responder) == "rated"
    assert seen == [True]


async def test_a_slow_database_does_not_hold_the_caller(
    ctx: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A save that has not finished by the deadline (a lock, a slow disk: inside the database)
    is journalled and the survey goes on; the late save and the replay agree on one rating,
    one entry."""
    import ivr.survey_store as store_module

    store = SurveyStore(ctx, CallInfo(linkedid=LINKEDID))
    await store.begin(live=True)
    release = asyncio.Event()
    real = store_module.store_vote

    async def slow(*args: Any) -> int:
        await release.wait()
        return await real(*args)

    monkeypatch.setattr(store_module, "store_vote", slow)
    started = asyncio.get_running_loop().time()
    await store.save(Save(Level.DISSATISFIED, ("3",), final=True))
    assert asyncio.get_running_loop().time() - started < 1.5
    assert store.journalled and ctx.survey_journal.holds(LINKEDID)
    replay = asyncio.create_task(journal_replay.replay_once(ctx))
    await asyncio.sleep(0.2)
    assert not replay.done()  # waits for the late save first
    release.set()
    assert (await replay).calls == 1
    _, rating = await state(ctx)
    assert rating is not None and (rating.level, rating.reason_codes) == (4, "3")
    assert len(await outbox(ctx)) == 1


# ----------------------------------------------------------------------------- defect 5
async def _race_begin_with_default(ctx: AppContext, sqlite: bool) -> Any:
    """The default job defaults the call between the survey's read of the row and its write."""
    import ivr.survey_store as store_module

    real = store_module.upsert_call
    default_task: list[asyncio.Task[bool]] = []

    async def racing(db: Any, linkedid: str, change: Any, **kw: Any) -> Any:
        async def change_after_default(s: AsyncSession, call: Call) -> Any:
            job = defaults.default_call(ctx, call.id, utcnow())
            if sqlite:  # our read took no lock: the job commits in between
                await job
            else:  # our row is locked FOR UPDATE: the job waits for us
                default_task.append(asyncio.create_task(job))
                await asyncio.sleep(0.2)
            return await change(s, call)

        return await real(db, linkedid, change_after_default, **kw)

    store_module.upsert_call = racing  # type: ignore[assignment]
    try:
        existing = await SurveyStore(ctx, CallInfo(linkedid=LINKEDID)).begin(live=True)
    finally:
        store_module.upsert_call = real  # type: ignore[assignment]
    for task in default_task:
        await task
    return existing


async def test_begin_never_overwrites_a_default_made_meanwhile(ctx: AppContext) -> None:
    """Defect 5: the survey's start is conditional in the statement, so a call the default job
    just defaulted is seen as defaulted (no second survey), never silently set back to
    in_progress over its default rating (as it was on SQLite)."""
    async with ctx.db.transaction() as s:
        s.add(Call(linkedid=LINKEDID, survey_status=SurveyStatus.NOT_RATED,
                   ended_at=utcnow() - dt.timedelta(hours=1)))
    existing = await _race_begin_with_default(ctx, ctx.db.is_sqlite)
    status, rating = await state(ctx)
    if existing is not None:  # the default came first: seen, kept
        assert existing.status == SurveyStatus.DEFAULTED
        assert status == SurveyStatus.DEFAULTED and rating is not None and rating.is_default
    else:  # the survey came first: the job found nothing to default
        assert status == SurveyStatus.IN_PROGRESS and rating is None
    if ctx.db.is_sqlite:
        assert existing is not None


async def test_a_vote_after_a_default_replaces_it(ctx: AppContext) -> None:
    """A vote that reaches the database after the call was defaulted (it sat in the journal
    past a short window) replaces the default: a real vote is never downgraded."""
    store = SurveyStore(ctx, CallInfo(linkedid=LINKEDID))
    await store.begin(live=True)
    await store.mark_not_rated()
    assert await defaults.default_call(ctx, store.call_id or 0, utcnow())
    await store.save(Save(Level.VERY_DISSATISFIED, ("1",), final=True))
    status, rating = await state(ctx)
    assert status == SurveyStatus.RATED
    assert rating is not None and (rating.source, rating.level) == ("keypad", 5)


# ----------------------------------------------------------------------------- defect 10
async def test_a_minutes_window_runs_from_the_calls_end(ctx: AppContext) -> None:
    """Defect 10: a call the API registered at its start (pending) and still going on after the
    stale limit is not defaulted at once; the window (1 minute here) starts when it is taken to
    have ended. Before the fix it was measured from the call's start: defaulted mid-call."""
    start = utcnow() - dt.timedelta(hours=2)
    async with ctx.db.transaction() as s:
        s.add(Call(linkedid=LINKEDID, survey_status=SurveyStatus.PENDING, started_at=start))
    now = utcnow()
    report = await defaults.run_once(ctx, now)
    assert (report.stale, report.defaulted) == (1, 0)
    assert (await state(ctx))[0] == SurveyStatus.NOT_RATED
    assert (await defaults.run_once(ctx, now + dt.timedelta(seconds=30))).defaulted == 0
    assert (await defaults.run_once(ctx, now + dt.timedelta(minutes=2))).defaulted == 1


async def test_a_call_with_no_recorded_end_counts_from_its_stale_limit(ctx: AppContext) -> None:
    start = utcnow() - dt.timedelta(minutes=90)
    async with ctx.db.transaction() as s:  # e.g. written by an older version: no ended_at
        s.add(Call(linkedid=LINKEDID, survey_status=SurveyStatus.NOT_RATED, started_at=start))
    assert (await defaults.run_once(ctx, start + dt.timedelta(minutes=30))).defaulted == 0
    assert (await defaults.run_once(ctx, start + dt.timedelta(minutes=62))).defaulted == 1


async def test_attaching_a_case_racing_the_vote_is_never_lost(ctx: AppContext) -> None:
    """Defect 10: the API attaches a case while the survey saves the vote. Either the rating
    carries the case, or the API answers 409; never a case on the call that the rating (and the
    push) lacks. On SQLite the vote lands between the API's read and its write."""
    import http_api.calls as calls_module
    from http_api.errors import ApiError

    store = SurveyStore(ctx, CallInfo(linkedid=LINKEDID))
    await store.begin(live=True)
    real = calls_module.upsert_call
    vote: list[asyncio.Task[None]] = []

    async def racing(db: Any, linkedid: str, change: Any, **kw: Any) -> Any:
        async def vote_in_between(s: AsyncSession, call: Call) -> Any:
            task = asyncio.create_task(store.save(Save(Level.SATISFIED, final=True)))
            vote.append(task)
            if ctx.db.is_sqlite:
                await task
            else:
                await asyncio.sleep(0.2)
            return await change(s, call)

        return await real(db, linkedid, vote_in_between, **kw)

    calls_module.upsert_call = racing  # type: ignore[assignment]
    refused = False
    try:
        async def no_audit(_: object) -> None:  # the audit row is not what this race is about
            return None

        await calls_module._store_case(ctx, LINKEDID, "GD-RACE-1", "D9", create=True,
                                       audit=no_audit)
    except ApiError as exc:
        assert exc.status == 409
        refused = True
    finally:
        calls_module.upsert_call = real  # type: ignore[assignment]
    await vote[0]
    _, rating = await state(ctx)
    [entry] = await outbox(ctx)
    assert rating is not None
    if refused:
        assert rating.department_code is None and entry.payload["case_number"] is None
    else:
        assert rating.department_code == "D9" and entry.payload["case_number"] == "GD-RACE-1"
    if ctx.db.is_sqlite:
        assert refused
    async with ctx.db.sessions() as s:
        assert await s.scalar(select(func.count()).select_from(Call)) == 1
