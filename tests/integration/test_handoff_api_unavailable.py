"""The hand-off API while Asterisk is down: the app starts and serves its other routes, and the
call routes answer 503 (retry later) instead of failing or hanging; on both databases."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from hotline.context import AppContext
from http_api import tokens
from http_api.app import build_app
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


async def test_call_routes_say_503_while_asterisk_is_down(client: tuple[Client, str]) -> None:
    api, secret = client
    headers = {"Authorization": f"Bearer {secret}"}
    for method, path, body in (
        ("POST", "/api/v1/calls/1700000000.5/handoff", None),
        ("PUT", "/api/v1/calls/1700000000.5/case", {"case_number": "GD1"}),
    ):
        response = await api.request(method, path, json=body, headers=headers)
        assert response.status == 503, await response.text()
        payload = await response.json()
        assert payload["error"]["code"] == "asterisk_unavailable"
        assert response.headers["Retry-After"] == "5"
    assert (await api.get("/healthz")).status == 200
