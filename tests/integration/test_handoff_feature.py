"""The agent's DTMF hand-off on real Asterisk: during the conversation the agent keys *8
(features.conf applicationmap, enabled on the agent's channel only by the queue's connect
Gosub); the caller is redirected out of the bridge into the survey and rates."""

from __future__ import annotations

import asyncio

import pytest

from ami.client import AmiClient
from hotline.clock import utcnow
from sandbox import testcall
from sandbox.carrier import Carrier, Press, keys_number
from sandbox.instance import AsteriskSandbox
from service.context import AppContext
from storage.models import SurveyStatus

pytestmark = pytest.mark.asterisk


async def test_agent_feature_code_moves_the_caller_to_the_survey(
    asterisk: AsteriskSandbox, ami: AmiClient, carrier: Carrier, carrier_ami: AmiClient,
    hotline_service: AppContext,
) -> None:
    # the agent keys *8 after 2 s and would then stay 30 s more: a rating well before that
    # can only come from the feature code
    citizen = keys_number(testcall.survey_presses(["1"], first_after=5))
    with ami.events("Hangup") as hangups:
        async with testcall.simulated_agent(ami, "A4001", testcall.key_handoff(2)) as member:
            async with asyncio.timeout(20):
                placed = await testcall.place_call(ami, citizen, carrier=carrier,
                                                   carrier_ami=carrier_ami)
            async with asyncio.timeout(20):
                outcome = await testcall.wait_outcome(hotline_service.db, placed.linkedid)
        ended = []
        while True:
            try:
                async with asyncio.timeout(0.2):
                    ended.append(await hangups.get())
            except TimeoutError:
                break
    call, rating = outcome.call, outcome.rating
    assert call is not None and rating is not None
    assert call.survey_status == SurveyStatus.RATED
    assert (call.agent_id, call.queue) == ("A4001", "hotline")
    assert (rating.level, rating.agent_id) == (1, "A4001")
    # the agent's leg ended with the hand-off, not 30 s later
    agent_prefix = member.removesuffix("/n")
    assert any((e.get("Channel") or "").startswith(agent_prefix) for e in ended)


async def test_caller_pressing_the_code_triggers_nothing(
    asterisk: AsteriskSandbox, ami: AmiClient, carrier: Carrier, carrier_ami: AmiClient,
    hotline_service: AppContext,
) -> None:
    """The code is enabled on the agent's channel only: a caller keying *8 stays with the
    agent, and reaches the survey only when the agent hangs up."""
    talk = 5
    citizen = keys_number([Press("*", 1), Press("8", 0),
                           *testcall.survey_presses(["2"], first_after=talk + 2)])
    async with testcall.simulated_agent(ami, "A4002", testcall.talk(talk)):
        async with asyncio.timeout(20):
            placed = await testcall.place_call(ami, citizen, carrier=carrier,
                                               carrier_ami=carrier_ami)
        queued_at = utcnow()
        async with asyncio.timeout(40):
            outcome = await testcall.wait_outcome(hotline_service.db, placed.linkedid)
    call, rating = outcome.call, outcome.rating
    assert call is not None and rating is not None
    assert call.survey_started_at is not None
    # the survey began after the agent's full conversation, not at the caller's *8 (1 s in)
    assert (call.survey_started_at - queued_at).total_seconds() >= talk - 1
    assert (rating.level, rating.agent_id) == (2, "A4002")
