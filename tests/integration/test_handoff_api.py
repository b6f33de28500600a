"""The agent's hand-off through the HTTP API, on real Asterisk over AMI: the agent attaches the
case to the live call, then hands the caller to the survey mid-conversation (AMI Setvar +
Redirect); the caller rates and the rating carries agent, case and department. Also what the
API answers for an unknown call, a caller already in the survey and one already gone."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from ami.client import AmiClient
from http_api import tokens
from http_api.app import build_app
from sandbox import testcall
from sandbox.carrier import Carrier, HangUp, Pause, keys_number
from sandbox.instance import AsteriskSandbox
from service.context import AppContext
from storage.audit import list_audit
from storage.models import SurveyStatus

pytestmark = pytest.mark.asterisk

Client = TestClient[web.Request, web.Application]
CASE = "GD20260301001"
DEPT = "11440100MB2C92542X"


@pytest.fixture
async def api(hotline_service: AppContext) -> AsyncIterator[Client]:
    async with TestClient(TestServer(build_app(hotline_service), host="127.0.0.1")) as client:
        yield client


async def _bearer(ctx: AppContext, role: str) -> dict[str, str]:
    async with ctx.db.transaction() as session:
        _, secret = await tokens.create_token(session, name=f"{role}-handoff", role=role)
    return {"Authorization": f"Bearer {secret}"}


async def test_agent_hands_the_caller_to_the_survey_through_the_api(
    asterisk: AsteriskSandbox, ami: AmiClient, carrier: Carrier, carrier_ami: AmiClient,
    hotline_service: AppContext, api: Client,
) -> None:
    agent = await _bearer(hotline_service, "agent")
    # the caller presses 3 (基本满意) 5 s after the answer: after the hand-off at ~2 s
    citizen = keys_number(testcall.survey_presses(["3"], first_after=5))
    # the agent would stay 30 s: only the hand-off can bring the survey sooner
    async with testcall.simulated_agent(ami, "A3001", testcall.hold(30)):
        async with asyncio.timeout(20):
            placed = await testcall.place_call(ami, citizen, carrier=carrier,
                                               carrier_ami=carrier_ami)
        base = f"/api/v1/calls/{placed.linkedid}"
        put = await api.put(f"{base}/case", json={"case_number": CASE}, headers=agent)
        assert put.status == 200, await put.text()
        assert (await put.json())["live"] is True
        await asyncio.sleep(1.5)  # talking
        handed = await api.post(f"{base}/handoff", json={"department": DEPT}, headers=agent)
        assert handed.status == 200, await handed.text()
        assert (await handed.json())["status"] == "handed_off"
        again = await api.post(f"{base}/handoff", headers=agent)  # no body at all is fine
        assert again.status == 409
        assert (await again.json())["error"]["code"] == "already_in_survey"
        async with asyncio.timeout(20):  # far less than the agent's 30 s
            outcome = await testcall.wait_outcome(hotline_service.db, placed.linkedid)
            await testcall.wait_gone(ami, placed.linkedid)
    call, rating = outcome.call, outcome.rating
    assert call is not None and rating is not None
    assert call.survey_status == SurveyStatus.RATED
    assert (call.agent_id, call.queue) == ("A3001", "hotline")
    assert (call.case_number, call.department_code) == (CASE, DEPT)
    assert (rating.level, rating.agent_id, rating.department_code) == (3, "A3001", DEPT)

    # afterwards: the caller is gone, the call is known
    late = await api.post(f"{base}/handoff", headers=agent)
    assert late.status == 409 and (await late.json())["error"]["code"] == "caller_gone"
    rated = await api.put(f"{base}/case", json={"case_number": "GD-OTHER"}, headers=agent)
    assert rated.status == 409 and (await rated.json())["error"]["code"] == "already_rated"
    # DEVELOPERS.md: the agent's two changes are audited; the refused ones leave no row
    async with hotline_service.db.sessions() as s:
        rows = await list_audit(s, subject_type="call", subject_id=placed.linkedid)
    assert [(r.actor, r.action, r.details["case_number"], r.details["department"])
            for r in rows] == [("agent-handoff", "call.attach_case", CASE, None),
                               ("agent-handoff", "call.handoff", None, DEPT)]


async def test_unknown_call_is_404_and_only_agents_may_hand_off(
    asterisk: AsteriskSandbox, hotline_service: AppContext, api: Client
) -> None:
    agent = await _bearer(hotline_service, "agent")
    missing = await api.post("/api/v1/calls/1700000000.999/handoff", headers=agent)
    assert missing.status == 404 and (await missing.json())["error"]["code"] == "no_such_call"
    no_case = await api.put("/api/v1/calls/1700000000.999/case",
                            json={"case_number": CASE}, headers=agent)
    assert no_case.status == 404
    bad = await api.post("/api/v1/calls/not%20an%20id/handoff", headers=agent)
    assert bad.status == 422
    reviewer = await _bearer(hotline_service, "reviewer")
    refused = await api.post("/api/v1/calls/1700000000.999/handoff", headers=reviewer)
    assert refused.status == 403


async def test_case_for_a_finished_call_is_stored_without_a_channel(
    asterisk: AsteriskSandbox, ami: AmiClient, hotline_service: AppContext, api: Client
) -> None:
    """A call that ended not rated still gets its case (the default rating will carry it)."""
    agent = await _bearer(hotline_service, "agent")
    citizen = keys_number([Pause(4), HangUp()])
    async with testcall.simulated_agent(ami, "A3002", testcall.talk(20)):
        async with asyncio.timeout(20):
            placed = await testcall.place_call(ami, citizen, via="local")
        async with asyncio.timeout(30):
            await testcall.wait_outcome(hotline_service.db, placed.linkedid)
    put = await api.put(f"/api/v1/calls/{placed.linkedid}/case",
                        json={"case_number": CASE, "department": DEPT}, headers=agent)
    assert put.status == 200, await put.text()
    body = await put.json()
    assert body["live"] is False and body["survey_status"] == SurveyStatus.NOT_RATED
    stored = await testcall.stored_outcome(hotline_service.db, placed.linkedid)
    assert stored.call is not None
    assert (stored.call.case_number, stored.call.department_code) == (CASE, DEPT)
