"""Typed keys under which the app keeps shared objects, and accessors for handlers."""

from __future__ import annotations

from aiohttp import web

from console.sessions import Active
from http_api.tokens import Principal
from service.context import AppContext

CTX: web.AppKey[AppContext] = web.AppKey("hotline_ctx", AppContext)

#: ``request[PRINCIPAL]``: set by the auth middleware on every non-public route. A typed
#: RequestKey rather than the string "principal": aiohttp 3.14 warns on string keys.
PRINCIPAL: web.RequestKey[Principal] = web.RequestKey("principal", Principal)

#: ``request[SESSION]``: the console session, when the caller logged in with the cookie.
SESSION: web.RequestKey[Active] = web.RequestKey("console_session", Active)


def app_ctx(request: web.Request) -> AppContext:
    return request.app[CTX]


def principal(request: web.Request) -> Principal:
    """The authenticated caller. Only valid in handlers declared with ``@requires``."""
    return request[PRINCIPAL]
