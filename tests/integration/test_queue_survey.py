"""The real queue path on Asterisk 22: a caller waits in Queue(hotline,c), a simulated agent
(a Local-channel queue member named by its 工号) answers, talks and hangs up, and the caller
continues into the survey; the stored rating carries that agent and queue. A caller who hangs
up during the conversation hears no survey and is recorded as not rated; one who gives up in
the queue, before any agent, is recorded as abandoned (rule 1: never lost) and, having had no
service to rate, is never defaulted."""

from __future__ import annotations

import asyncio

import pytest

from ami.client import AmiClient
from sandbox import testcall
from sandbox.carrier import Carrier, HangUp, Pause, keys_number
from sandbox.instance import AsteriskSandbox
from service.context import AppContext
from storage.models import RatingKind, RatingSource, SurveyStatus
from tests.waiting import wait_until

pytestmark = pytest.mark.asterisk

AGENT_TALK = 2
#: the caller's first key: 2 s after the agent hangs up, well inside the 5 s intro prompt
FIRST_KEY = AGENT_TALK + 2
CALL_LIMIT = 45.0


async def test_queue_member_hangs_up_and_the_caller_rates_the_agent(
    asterisk: AsteriskSandbox, ami: AmiClient, hotline_service: AppContext
) -> None:
    citizen = keys_number(testcall.survey_presses(["2"], first_after=FIRST_KEY))
    async with testcall.simulated_agent(ami, "A1001", testcall.talk(AGENT_TALK)):
        async with asyncio.timeout(20):
            placed = await testcall.place_call(ami, citizen, via="local")
        async with asyncio.timeout(CALL_LIMIT):
            outcome = await testcall.wait_outcome(hotline_service.db, placed.linkedid)
    call, rating = outcome.call, outcome.rating
    assert call is not None and rating is not None
    assert call.survey_status == SurveyStatus.RATED
    assert (call.agent_id, call.queue) == ("A1001", "hotline")
    assert call.uniqueid == placed.linkedid  # the caller's leg is the call's first channel
    assert call.caller_hash == hotline_service.vault.digest(placed.caller_id)
    assert call.survey_started_at is not None
    assert (rating.level, rating.agent_id) == (2, "A1001")
    assert (rating.kind, rating.source, rating.project_no) == (
        RatingKind.PER_CALL, RatingSource.KEYPAD, f"CALL-{placed.linkedid}")


async def test_caller_hanging_up_during_the_conversation_is_not_rated_without_a_survey(
    asterisk: AsteriskSandbox, ami: AmiClient, carrier: Carrier, carrier_ami: AmiClient,
    hotline_service: AppContext,
) -> None:
    # over the trunk: the caller's hang-up is a SIP BYE from the carrier
    citizen = keys_number([Pause(4), HangUp()])
    async with testcall.simulated_agent(ami, "A1002", testcall.talk(20)):
        async with asyncio.timeout(20):
            placed = await testcall.place_call(ami, citizen, carrier=carrier,
                                               carrier_ami=carrier_ami)
        async with asyncio.timeout(CALL_LIMIT):
            outcome = await testcall.wait_outcome(hotline_service.db, placed.linkedid)
    call = outcome.call
    assert call is not None and outcome.rating is None
    assert call.survey_status == SurveyStatus.NOT_RATED  # rule 1: recorded, never lost
    assert call.agent_id == "A1002"  # known from the queue although the survey never ran
    assert call.survey_started_at is None  # no survey was played
    assert call.ended_at is not None
    assert call.channel is not None and call.channel.startswith("PJSIP/carrier-")


async def test_rule1_caller_giving_up_in_the_queue_is_recorded_as_abandoned(
    asterisk: AsteriskSandbox, ami: AmiClient, hotline_service: AppContext
) -> None:
    # no member in the queue: the caller waits, then hangs up
    citizen = keys_number([Pause(4), HangUp()])
    with ami.events("Hangup") as hangups:
        async with asyncio.timeout(20):
            placed = await testcall.place_call(ami, citizen, via="local")
        async with asyncio.timeout(20):
            async for event in hangups:
                if event.get("Uniqueid") == placed.uniqueid:
                    break

    async def recorded() -> bool:  # the hang-up handler reaches the service
        return (await testcall.stored_outcome(hotline_service.db, placed.linkedid)).call is not None

    await wait_until(recorded, within=10)
    outcome = await testcall.stored_outcome(hotline_service.db, placed.linkedid)
    assert outcome.call is not None and outcome.rating is None
    assert outcome.call.survey_status == SurveyStatus.ABANDONED
    assert outcome.call.agent_id is None and outcome.call.queue == "hotline"
