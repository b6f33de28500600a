"""The survey route end to end against the real databases (SQLite and PostgreSQL), with a
simulated Asterisk channel: what each caller path leaves in calls / ratings / outbox."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select

from hotline.clock import utcnow
from hotline.levels import Level
from ivr import prompts as P
from ivr.agi.simulated import SimulatedCaller, environment_lines, memory_channel
from ivr.survey import Save
from ivr.survey_flow import handle
from ivr.survey_store import CallInfo, SurveyStore
from service.context import AppContext
from storage.models import Call, Case, OutboxEntry, Rating, SurveyStatus

LINKEDID = "1700000000.5"
VARIABLES = {"HOTLINE_AGENT": "A1024", "HOTLINE_QUEUE": "12345-general",
             "HOTLINE_CASE_ID": "GD20260301001", "HOTLINE_DEPT": "11440100MB2C92542X"}


async def run(ctx: AppContext, caller: SimulatedCaller, **env: object) -> str:
    channel, _ = memory_channel(caller, environment_lines(**env))  # type: ignore[arg-type]
    await channel.read_environment()
    return await handle(ctx, channel)


async def call_and_rating(ctx: AppContext, linkedid: str = LINKEDID) -> tuple[Call, Rating | None]:
    async with ctx.db.sessions() as s:
        call = await s.scalar(select(Call).where(Call.linkedid == linkedid))
        assert call is not None
        rating = await s.scalar(select(Rating).where(Rating.call_id == call.id))
        return call, rating


async def outbox(ctx: AppContext) -> list[OutboxEntry]:
    async with ctx.db.sessions() as s:
        return list((await s.scalars(select(OutboxEntry))).all())


def sounds(caller: SimulatedCaller) -> list[str]:
    return [name.removeprefix("hotline/") for name in caller.played]


async def test_good_rating_is_stored_with_agent_case_and_protected_caller(ctx: AppContext) -> None:
    """一次一评: the rating carries the call (linkedid), agent 工号, case and department; the
    caller's number is stored only encrypted / hashed / masked (rule 8)."""
    caller = SimulatedCaller(keys=["2"], variables=dict(VARIABLES))
    assert await run(ctx, caller) == "rated"
    call, rating = await call_and_rating(ctx)
    assert call.survey_status == SurveyStatus.RATED
    assert (call.agent_id, call.queue, call.case_number, call.department_code) == (
        "A1024", "12345-general", "GD20260301001", "11440100MB2C92542X"
    )
    assert call.uniqueid == "1700000000.7" and call.ended_at is not None
    assert call.caller_masked == "138****8000"
    assert call.caller_enc and "13800138000" not in call.caller_enc
    assert ctx.vault.reveal(call.caller_enc) == "13800138000"
    assert call.caller_hash == ctx.vault.digest("13800138000")
    assert rating is not None
    assert (rating.project_no, rating.kind, rating.source, rating.level) == (
        f"CALL-{LINKEDID}", "per_call", "keypad", 2
    )
    assert (rating.agent_id, rating.department_code) == ("A1024", "11440100MB2C92542X")
    assert caller.variables["SURVEY_RESULT"] == "2"
    assert sounds(caller) == [P.SURVEY_WELCOME, P.SURVEY_THANKS]
    [entry] = await outbox(ctx)
    assert entry.ready_at <= utcnow()  # released at the end: deliver now
    assert entry.payload["case_number"] == "GD20260301001"


async def test_bad_rating_with_reason_and_comment(ctx: AppContext) -> None:
    """差评 with reason (evalDetail code) and voice comment linked to the rating."""
    caller = SimulatedCaller(keys=["5", "5", "1", ("rec", 6.5)], variables=dict(VARIABLES))
    assert await run(ctx, caller) == "rated"
    _, rating = await call_and_rating(ctx)
    assert rating is not None
    assert (rating.level, rating.reason_codes) == (5, "9")
    assert rating.comment_recording == f"hotline/recordings/{LINKEDID.replace('.', '-')}.wav"
    record = next(c for c in caller.commands if c[:2] == ["RECORD", "FILE"])
    assert record[2:] == ["hotline/recordings/1700000000-5", "wav", "#", "60000", "0", "BEEP",
                          "s=5"]
    [entry] = await outbox(ctx)  # one record, refreshed at each step
    assert entry.payload["reason_codes"] == ["9"]
    assert entry.payload["comment_recording"] == rating.comment_recording
    assert entry.ready_at <= utcnow()
    assert caller.variables["SURVEY_RESULT"] == "5"


async def test_hangup_during_the_menu_is_not_rated(ctx: AppContext) -> None:
    """Rule 1: hang-up before rating is recorded as not rated, never lost."""
    caller = SimulatedCaller(keys=["hangup"], variables=dict(VARIABLES))
    assert await run(ctx, caller) == "not_rated_hangup"
    call, rating = await call_and_rating(ctx)
    assert call.survey_status == SurveyStatus.NOT_RATED and rating is None
    assert call.agent_id == "A1024"  # known for the default rating later


async def test_hangup_during_the_reason_menu_keeps_the_level(ctx: AppContext) -> None:
    caller = SimulatedCaller(keys=["4", "hangup"])
    assert await run(ctx, caller) == "rated"
    call, rating = await call_and_rating(ctx)
    assert call.survey_status == SurveyStatus.RATED
    assert rating is not None and rating.level == 4 and rating.reason_codes is None
    [entry] = await outbox(ctx)
    assert entry.ready_at <= utcnow()  # released although the survey never finished


async def test_silence_twice_is_not_rated_and_says_none(ctx: AppContext) -> None:
    """Silence: one retry, then not rated; SURVEY_RESULT=none."""
    caller = SimulatedCaller(keys=[None, None])
    assert await run(ctx, caller) == "not_rated_silence"
    call, rating = await call_and_rating(ctx)
    assert call.survey_status == SurveyStatus.NOT_RATED and rating is None
    assert caller.variables["SURVEY_RESULT"] == "none"
    assert sounds(caller)[-1] == P.SURVEY_GOODBYE


async def test_invalid_key_then_valid_and_repeat(ctx: AppContext) -> None:
    """A wrong key: "输入有误" and the menu as ONE GET DATA of their composite (issue 13: a key
    pressed as "输入有误" ends is not lost between two commands); a repeat key: the menu."""
    caller = SimulatedCaller(keys=["9", "*", "1"])
    assert await run(ctx, caller) == "rated"
    retry = P.retry_of(P.SURVEY_MENU).id
    assert sounds(caller) == [P.SURVEY_WELCOME, retry, P.SURVEY_MENU, P.SURVEY_THANKS]
    assert ["GET", "DATA", P.sound_name(retry), "6000", "1"] in caller.commands
    _, rating = await call_and_rating(ctx)
    assert rating is not None and rating.level == 1


async def test_the_welcome_is_one_command_listening_from_its_first_word(ctx: AppContext) -> None:
    """Issue 13: the greeting and the menu are ONE GET DATA, so a key pressed anywhere in them
    (as the greeting ends, too) is heard: between two commands Asterisk drops it. No STREAM
    FILE comes before the first menu."""
    caller = SimulatedCaller(keys=["3"])
    assert await run(ctx, caller) == "rated"
    assert sounds(caller) == [P.SURVEY_WELCOME, P.SURVEY_THANKS]
    first_prompt = next(c for c in caller.commands if c[:2] in (["STREAM", "FILE"],
                                                                 ["GET", "DATA"]))
    assert first_prompt[:3] == ["GET", "DATA", P.sound_name(P.SURVEY_WELCOME)]


async def test_caller_already_gone_hears_nothing_and_is_not_rated(ctx: AppContext) -> None:
    """From a hang-up handler (dead channel): variables are read, nothing is played."""
    caller = SimulatedCaller(hung_up=True, variables=dict(VARIABLES))
    assert await run(ctx, caller) == "not_rated_hangup"
    assert caller.played == []
    call, rating = await call_and_rating(ctx)
    assert call.survey_status == SurveyStatus.NOT_RATED and rating is None
    assert call.case_number == "GD20260301001"


async def test_rule1_caller_who_left_the_queue_unserved_is_kept_as_abandoned(
    ctx: AppContext,
) -> None:
    """The inbound hang-up handler marks a call no agent took (HOTLINE_ABANDONED=1)."""
    variables = {**VARIABLES, "HOTLINE_ABANDONED": "1"}
    variables.pop("HOTLINE_AGENT", None)
    caller = SimulatedCaller(hung_up=True, variables=variables)
    assert await run(ctx, caller) == "abandoned"
    assert caller.played == []
    call, rating = await call_and_rating(ctx)
    assert call.survey_status == SurveyStatus.ABANDONED and rating is None


async def test_second_survey_of_a_rated_call_does_not_run(ctx: AppContext) -> None:
    """Idempotent per call: one rating per linkedid, no second survey. The call row is written
    while the menu plays (issue 13), so the re-entry may hear the menu, but the survey stops
    before its first save: the key pressed changes nothing, no thanks is played."""
    await run(ctx, SimulatedCaller(keys=["1"]))
    again = SimulatedCaller(keys=["5"])
    assert await run(ctx, again, uniqueid="1700000000.9") == "already_rated"
    assert P.SURVEY_THANKS not in sounds(again) and again.variables["SURVEY_RESULT"] == "1"
    assert (await call_and_rating(ctx))[1].level == 1  # type: ignore[union-attr]
    async with ctx.db.sessions() as s:
        assert await s.scalar(select(func.count()).select_from(Call)) == 1
        assert await s.scalar(select(func.count()).select_from(Rating)) == 1


async def test_not_rated_call_can_be_surveyed_again(ctx: AppContext) -> None:
    await run(ctx, SimulatedCaller(keys=["hangup"]))
    assert await run(ctx, SimulatedCaller(keys=["3"])) == "rated"
    call, rating = await call_and_rating(ctx)
    assert call.survey_status == SurveyStatus.RATED and rating is not None


async def test_missing_prompt_sets_the_error_for_the_dialplan(ctx: AppContext) -> None:
    caller = SimulatedCaller(keys=["1"], missing={"hotline/survey-welcome"})
    assert await run(ctx, caller) == "failed"
    assert caller.variables["HOTLINE_AGI_ERROR"] == "prompt-missing"
    assert caller.variables["SURVEY_RESULT"] == "none"
    call, _ = await call_and_rating(ctx)
    assert call.survey_status == SurveyStatus.NOT_RATED


async def test_queue_member_variables_name_the_agent(ctx: AppContext) -> None:
    caller = SimulatedCaller(keys=["1"], variables={"MEMBERINTERFACE": "Local/A2048@agents/n",
                                                    "QUEUENAME": "hotline"})
    await run(ctx, caller)
    call, rating = await call_and_rating(ctx)
    assert (call.agent_id, call.queue) == ("A2048", "hotline")
    assert rating is not None and rating.agent_id == "A2048"


async def test_rating_is_linked_to_a_known_case(ctx: AppContext) -> None:
    async with ctx.db.transaction() as s:
        s.add(Case(case_number="GD20260301001"))
    await run(ctx, SimulatedCaller(keys=["2"], variables=dict(VARIABLES)))
    _, rating = await call_and_rating(ctx)
    assert rating is not None and rating.case_id is not None


async def test_no_caller_id_is_fine(ctx: AppContext) -> None:
    await run(ctx, SimulatedCaller(keys=["2"]), callerid="unknown")
    call, _ = await call_and_rating(ctx)
    assert call.caller_enc is None and call.caller_hash is None


async def test_step_saves_hold_the_outbox_entry_until_the_end(ctx: AppContext) -> None:
    """Saved after every step, but not pushed while the caller may still add a reason."""
    store = SurveyStore(ctx, CallInfo(linkedid="1.42", caller="13900139000"))
    assert await store.begin(live=True) is None
    await store.save(Save(Level.DISSATISFIED))
    [entry] = await outbox(ctx)
    assert entry.ready_at > utcnow() + dt.timedelta(minutes=5)
    call, _ = await call_and_rating(ctx, "1.42")
    assert call.survey_status == SurveyStatus.RATED and call.survey_started_at is not None
    await store.save(Save(Level.DISSATISFIED, ("2",), final=True))
    [entry] = await outbox(ctx)
    assert entry.ready_at <= utcnow() and entry.payload["reason_codes"] == ["2"]


async def test_not_rated_never_undoes_a_rating(ctx: AppContext) -> None:
    store = SurveyStore(ctx, CallInfo(linkedid="1.43"))
    await store.begin(live=True)
    await store.save(Save(Level.SATISFIED, final=True))
    await store.mark_not_rated()
    call, _ = await call_and_rating(ctx, "1.43")
    assert call.survey_status == SurveyStatus.RATED
