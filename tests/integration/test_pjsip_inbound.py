"""An inbound call over PJSIP: the carrier instance (the public network and the citizen's
phone) calls 12345 over the SIP trunk on loopback, the call is queued to an agent, and the
citizen rates with RFC 4733 DTMF events - a 差评 with its reason."""

from __future__ import annotations

import asyncio

import pytest

from ami.client import AmiClient
from sandbox import testcall
from sandbox.carrier import Carrier, keys_number
from sandbox.instance import AsteriskSandbox
from service.context import AppContext
from storage.models import SurveyStatus

pytestmark = pytest.mark.asterisk

AGENT_TALK = 2


def test_both_ends_of_the_trunk_send_dtmf_as_rfc4733(
    asterisk: AsteriskSandbox, carrier: Carrier
) -> None:
    hotline_side = asterisk.cli("pjsip show endpoint carrier")
    carrier_side = carrier.sandbox.cli("pjsip show endpoint hotline")
    for shown in (hotline_side, carrier_side):
        dtmf = [line for line in shown.splitlines() if line.strip().startswith("dtmf_mode")]
        assert dtmf and dtmf[0].split(":", 1)[1].strip() == "rfc4733", shown


async def test_inbound_pjsip_call_rates_with_rfc4733_keys(
    asterisk: AsteriskSandbox, ami: AmiClient, carrier: Carrier, carrier_ami: AmiClient,
    hotline_service: AppContext,
) -> None:
    # 4 = 不满意, then reason 2 (办理效率), then 2 = no voice comment
    citizen = keys_number(
        testcall.survey_presses(["4", "2", "2"], first_after=AGENT_TALK + 2, gap=2))
    with carrier_ami.events("OriginateResponse") as answered:
        async with testcall.simulated_agent(ami, "A2001", testcall.talk(AGENT_TALK)):
            async with asyncio.timeout(20):
                placed = await testcall.place_call(ami, citizen, carrier=carrier,
                                                   carrier_ami=carrier_ami)
            async with asyncio.timeout(60):
                outcome = await testcall.wait_outcome(hotline_service.db, placed.linkedid)
        async with asyncio.timeout(1):
            response = await answered.get()
    assert response["Reason"] == "4"  # the hotline answered the carrier's call
    call, rating = outcome.call, outcome.rating
    assert call is not None and rating is not None
    assert call.channel is not None and call.channel.startswith("PJSIP/carrier-")
    assert call.caller_masked == placed.caller_id[:3] + "****" + placed.caller_id[-4:]
    assert call.survey_status == SurveyStatus.RATED
    assert (rating.level, rating.reason_codes, rating.agent_id) == (4, "2", "A2001")
    assert rating.comment_recording is None
