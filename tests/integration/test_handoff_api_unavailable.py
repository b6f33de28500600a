"""The hand-off API while Asterisk is down: the app starts and serves its other routes, the
hand-off answers 503 (retry later) instead of failing or hanging, and a case the agent attaches
is kept on the stored call; on both databases."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from http_api import tokens
from http_api.app import build_app
from http_api.keys import CTX
from service.context import AppContext
from storage.audit import list_audit
from tests.conftest import make_settings

Client = TestClient[web.Request, web.Application]


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # nothing listens once the probe is closed


@pytest.fixture
async def client(tmp_path: Path, database_url: str) -> AsyncIterator[tuple[Client, str]]:
    settings = make_settings(tmp_path, database_url=database_url, ami_port=_closed_port(),
                             ami_timeout=2.0)
    ctx = AppContext.create(settings)
    async with ctx.db.transaction() as session:
        _, secret = await tokens.create_token(session, name="desk", role="agent")
    async with TestClient(TestServer(build_app(ctx), host="127.0.0.1")) as c:
        yield c, secret
    await ctx.close()


async def test_handoff_says_503_while_asterisk_is_down(client: tuple[Client, str]) -> None:
    api, secret = client
    headers = {"Authorization": f"Bearer {secret}"}
    response = await api.post("/api/v1/calls/1700000000.5/handoff", headers=headers)
    assert response.status == 503, await response.text()
    payload = await response.json()
    assert payload["error"]["code"] == "asterisk_unavailable"
    assert response.headers["Retry-After"] == "5"
    assert (await api.get("/healthz")).status == 200


async def test_case_attached_while_asterisk_is_down_is_kept(client: tuple[Client, str]) -> None:
    """Bad luck with AMI loses nothing: the survey reads the case from the stored call."""
    api, secret = client
    headers = {"Authorization": f"Bearer {secret}"}
    response = await api.put("/api/v1/calls/1700000000.6/case", headers=headers,
                             json={"case_number": "GD1", "department": "D01"})
    assert response.status == 200, await response.text()
    body = await response.json()
    assert (body["case_number"], body["department"]) == ("GD1", "D01")
    again = await api.put("/api/v1/calls/1700000000.6/case", headers=headers,
                          json={"case_number": "GD2"})
    assert (await again.json())["case_number"] == "GD2"
    # DEVELOPERS.md: an agent's change is audited, one row per stored change
    async with api.server.app[CTX].db.sessions() as s:
        rows = await list_audit(s, subject_type="call")
    assert [(r.actor, r.role, r.action, r.subject_id, r.details["case_number"])
            for r in rows] == [("desk", "agent", "call.attach_case", "1700000000.6", "GD1"),
                               ("desk", "agent", "call.attach_case", "1700000000.6", "GD2")]
