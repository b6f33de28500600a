"""Auth and role logic, without a database: header parsing, declarations, role checks, and the
middleware's answers before a token ever reaches the database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any, cast

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from http_api.auth import (
    Access,
    access_of,
    auth_middleware,
    authorize,
    bearer_token,
    check_routes,
    public,
    requires,
)
from http_api.errors import ApiError, error_middleware
from http_api.keys import CTX
from http_api.tokens import ROLES, Principal
from service.context import AppContext


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Bearer abc", "abc"),
        ("bearer abc", "abc"),
        ("  Bearer   abc  ", "abc"),
        ("Basic dXNlcjpwdw==", None),
        ("Bearer", None),
        ("Bearer ", None),
        ("Bearer a b", None),
        ("", None),
        (None, None),
    ],
)
def test_bearer_token_parsing(header: str | None, expected: str | None) -> None:
    assert bearer_token(header) == expected


def test_requires_records_roles_and_public_records_open() -> None:
    @requires("agent", "supervisor")
    async def guarded(request: web.Request) -> web.Response:
        return web.Response()

    @public
    async def open_(request: web.Request) -> web.Response:
        return web.Response()

    assert access_of(guarded) == Access(public=False, roles=frozenset({"agent", "supervisor"}))
    assert access_of(open_) == Access(public=True)


def test_requires_refuses_unknown_or_no_role() -> None:
    with pytest.raises(ValueError, match="unknown role"):
        requires("agent", "superuser")
    with pytest.raises(ValueError, match="at least one role"):
        requires()


def test_conflicting_declarations_are_refused() -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response()

    requires("agent")(handler)
    with pytest.raises(ValueError, match="conflicting"):
        public(handler)


@pytest.mark.parametrize("role", ROLES)
def test_admin_passes_every_role_check(role: str) -> None:
    admin = Principal(token_id=1, name="root", role="admin")
    authorize(admin, Access(public=False, roles=frozenset({role})))  # must not raise


def test_role_outside_the_declared_set_is_forbidden() -> None:
    agent = Principal(token_id=2, name="desk 7", role="agent")
    authorize(agent, Access(public=False, roles=frozenset({"agent", "reviewer"})))
    with pytest.raises(ApiError) as caught:
        authorize(agent, Access(public=False, roles=frozenset({"supervisor"})))
    assert caught.value.status == 403
    assert caught.value.code == "forbidden"
    assert "supervisor" in caught.value.message and "'agent'" in caught.value.message


def test_check_routes_names_an_undeclared_route() -> None:
    async def forgotten(request: web.Request) -> web.Response:
        return web.Response()

    @public
    async def fine(request: web.Request) -> web.Response:
        return web.Response()

    app = web.Application()
    app.router.add_get("/fine", fine)
    check_routes(app)  # all declared: no error
    app.router.add_post("/forgotten", forgotten)
    with pytest.raises(RuntimeError, match="POST /forgotten"):
        check_routes(app)


# ------------------------------------------------------------------ middleware, no real DB


class _DownDb:
    """A database whose every session fails, as when PostgreSQL is unreachable."""

    def sessions(self) -> Any:
        raise OSError("connection refused")


@asynccontextmanager
async def _client(db: Any = None) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    @requires("supervisor")
    async def guarded(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    @public
    async def open_(request: web.Request) -> web.Response:
        return web.json_response({"open": True})

    app = web.Application(middlewares=[error_middleware, auth_middleware])
    app[CTX] = cast(AppContext, SimpleNamespace(db=db))  # only .db is used by the middleware
    app.router.add_get("/guarded", guarded)
    app.router.add_get("/open", open_)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield client


async def test_public_route_needs_no_token() -> None:
    async with _client() as client:
        resp = await client.get("/open")
        assert resp.status == 200
        assert await resp.json() == {"open": True}


async def test_missing_token_is_401_with_bearer_challenge() -> None:
    async with _client() as client:
        resp = await client.get("/guarded")
        assert resp.status == 401
        assert resp.headers["WWW-Authenticate"] == 'Bearer realm="hotline"'
        body = await resp.json()
        assert body["error"]["code"] == "unauthenticated"


async def test_malformed_authorization_is_401_invalid_token() -> None:
    async with _client() as client:
        resp = await client.get("/guarded", headers={"Authorization": "Basic dXNlcjpwdw=="})
        assert resp.status == 401
        assert 'error="invalid_token"' in resp.headers["WWW-Authenticate"]
        assert "Bearer <token>" in (await resp.json())["error"]["message"]


async def test_token_check_with_database_down_is_503_not_500() -> None:
    async with _client(db=_DownDb()) as client:
        resp = await client.get("/guarded", headers={"Authorization": "Bearer hl_whatever"})
        assert resp.status == 503
        assert (await resp.json())["error"]["code"] == "unavailable"
