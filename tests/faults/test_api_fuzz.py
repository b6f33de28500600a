"""The HTTP API fuzzed from its own OpenAPI document (issue 8 fault suite): schemathesis
draws requests for every operation the document describes and sends them to the real
application on PostgreSQL (the stricter database: an integer beyond int32 is an error there,
not on SQLite). Bounded examples, well under a minute.

- no request answers 5xx, whatever its parameters and body (but a 503 the operation
  documents: Asterisk not answering, as here, where no sandbox runs);
- every route that needs a token answers 401 without one, and 403 to a token whose role it
  does not accept (the document's ``x-roles``)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiohttp import web

hypothesis = pytest.importorskip("hypothesis")
schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402

from http_api import tokens  # noqa: E402
from http_api.app import build_app  # noqa: E402
from service.context import AppContext  # noqa: E402
from tests.conftest import make_settings  # noqa: E402

T = TypeVar("T")
EXAMPLES = 6  # per operation and pass: 58 operations, ~950 requests, about 80 s
ADMIN = "admin"


class ApiServer:
    """The real application on a loopback port, in its own thread and event loop, so the
    synchronous schemathesis client can talk to it."""

    def __init__(self, settings_: Any) -> None:
        self.settings = settings_
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.port = 0
        self.tokens: dict[str, str] = {}

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=60)

    async def _start(self) -> None:
        self.ctx = AppContext.create(self.settings)
        self.runner = web.AppRunner(build_app(self.ctx), access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = self.runner.addresses[0][1]
        async with self.ctx.db.transaction() as session:
            for role in tokens.ROLES:
                # a department token is bound to a department, an agent token to its 工号
                scope = {"department": {"departments": ["11440100MB2C91234X"]},
                         "agent": {"agent_id": "A1001"}}.get(role, {})
                _, secret = await tokens.create_token(session, name=f"fuzz-{role}", role=role,
                                                      **scope)
                self.tokens[role] = secret

    async def _stop(self) -> None:
        await self.runner.cleanup()
        await self.ctx.close()

    def __enter__(self) -> ApiServer:
        self.thread.start()
        self.run(self._start())
        return self

    def __exit__(self, *_exc: object) -> None:
        self.run(self._stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}


@pytest.fixture
def server(tmp_path: Path, postgres_url: str) -> Iterator[ApiServer]:
    with ApiServer(make_settings(tmp_path, database_url=postgres_url)) as s:
        yield s


def _operations(server: ApiServer) -> list[tuple[Any, dict[str, Any]]]:
    import requests

    doc = requests.get(f"{server.base_url}/api/v1/openapi.json", timeout=10).json()
    schema = schemathesis.openapi.from_dict(doc)
    found = []
    for result in schema.get_all_operations():
        op = result.ok()
        raw = doc["paths"][op.path][op.method.lower()]
        found.append((op, raw))
    # revoking tokens last: a drawn id may be one of the tokens the other checks use
    found.sort(key=lambda item: item[0].method.upper() == "DELETE" or "token" in item[0].path)
    return found


FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                suppress_health_check=list(HealthCheck))


def _check_access(server: ApiServer, op: Any, wrong: str | None, errors: list[str]) -> int:
    tried = 0

    @FUZZ
    @given(case=op.as_strategy())
    def access(case: Any) -> None:
        nonlocal tried
        anonymous = case.call(base_url=server.base_url, headers={"Authorization": ""})
        tried += 1
        if anonymous.status_code != 401:
            errors.append(f"{case.method} {case.formatted_path}: "
                          f"{anonymous.status_code} without a token")
        if wrong is not None:
            denied = case.call(base_url=server.base_url, headers=server.auth(wrong))
            tried += 1
            if denied.status_code != 403:
                errors.append(f"{case.method} {case.formatted_path}: "
                              f"{denied.status_code} for role {wrong}")

    access()
    return tried


def _fuzz(
    server: ApiServer, op: Any, role: str, allowed: set[int], errors: list[str]
) -> int:
    tried = 0

    @FUZZ
    @given(case=op.as_strategy())
    def fuzz(case: Any) -> None:
        nonlocal tried
        resp = case.call(base_url=server.base_url, headers=server.auth(role))
        tried += 1
        if resp.status_code >= 500 and resp.status_code not in allowed:
            errors.append(f"{case.method} {case.formatted_path}: "
                          f"{resp.status_code} {resp.text[:200]}")

    fuzz()
    return tried


def test_fault_api_fuzzed_from_its_openapi_no_5xx_and_roles_enforced(
    server: ApiServer,
) -> None:
    started = time.monotonic()
    operations = _operations(server)
    assert len(operations) >= 10, "the document should describe every route"
    tried = 0
    server_errors: list[str] = []
    auth_errors: list[str] = []
    # pass 1: access control, before any token can have been revoked by the fuzz
    for op, raw in operations:
        roles = raw.get("x-roles")
        if not roles:
            continue  # public
        wrong = next((r for r in tokens.ROLES if r not in roles and r != ADMIN), None)

        tried += _check_access(server, op, wrong, auth_errors)
    # pass 2: everything the document allows, with a token the route accepts
    for op, raw in operations:
        roles = raw.get("x-roles") or [ADMIN]
        role = next((r for r in roles if r != ADMIN), ADMIN)

        # a documented 503 (Asterisk not answering: no sandbox runs here) is an answer, not
        # a fault; any other 5xx is
        allowed = {int(code) for code in raw.get("responses", {}) if code == "503"}
        tried += _fuzz(server, op, role, allowed, server_errors)
    elapsed = time.monotonic() - started
    print(f"\nAPI fuzz: {len(operations)} operations, {tried} requests tried, "
          f"{len(server_errors)} answered 5xx, {len(auth_errors)} access-control errors, "
          f"{elapsed:.1f} s")
    assert server_errors == []
    assert auth_errors == []
