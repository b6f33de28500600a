"""Bearer-token and console-session authentication, and role checks.

A request with an ``Authorization`` header is a system with a token; one without it but with
the console's session cookie is a person logged in to the console (console.sessions), whose
state changes must carry the session's CSRF token. Both become the same ``Principal`` and go
through the same role check, so the console has no powers a token of the same role lacks.

Every route declares who may call it, on its handler: ``@requires("agent", "admin")`` or
``@public``. A route that declares nothing is refused when the app starts
(:func:`check_routes`), so forgetting the declaration can never leave a route open.
``admin`` passes every role check.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.typedefs import Handler
from sqlalchemy.exc import SQLAlchemyError

from console import sessions as console_sessions
from http_api.errors import ApiError
from http_api.keys import CTX, PRINCIPAL, SESSION
from http_api.tokens import ROLES, Principal, verify_token

log = logging.getLogger("hotline.http.auth")

F = TypeVar("F", bound=Callable[..., Any])

_ATTR = "__hotline_access__"
REALM = "hotline"


@dataclass(frozen=True)
class Access:
    """Who may call a handler: anyone (``public``) or a token holding one of ``roles``."""

    public: bool
    roles: frozenset[str] = frozenset()


def requires(*roles: str) -> Callable[[F], F]:
    """Allow callers whose token has one of ``roles`` (and always ``admin``)."""
    if not roles:
        raise ValueError("requires() needs at least one role; use @public for open routes")
    unknown = sorted(set(roles) - set(ROLES))
    if unknown:
        raise ValueError(f"unknown role(s) {unknown}; roles are: {', '.join(ROLES)}")
    return _declare(Access(public=False, roles=frozenset(roles)))


def public(handler: F) -> F:
    """Allow anyone, without a token (health checks, the OpenAPI document)."""
    return _declare(Access(public=True))(handler)


def _declare(access: Access) -> Callable[[F], F]:
    def mark(handler: F) -> F:
        if getattr(handler, _ATTR, access) != access:
            raise ValueError(f"{handler.__qualname__}: conflicting access declarations")
        setattr(handler, _ATTR, access)
        return handler

    return mark


def access_of(handler: Any) -> Access | None:
    return getattr(handler, _ATTR, None)


def check_routes(app: web.Application) -> None:
    """Refuse to start if any route lacks an access declaration (fail closed, loudly)."""
    missing = [
        f"{route.method} {route.resource.canonical if route.resource else '?'}"
        for route in app.router.routes()
        if access_of(route.handler) is None
    ]
    if missing:
        raise RuntimeError(
            "routes without @requires(...) or @public: " + ", ".join(sorted(missing))
        )


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, else None."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        return None
    return token


def _unauthenticated(message: str, *, invalid: bool) -> ApiError:
    # RFC 6750: a request without credentials gets no error attribute; a bad token does.
    challenge = f'Bearer realm="{REALM}"'
    if invalid:
        challenge += ', error="invalid_token"'
    return ApiError(401, "unauthenticated", message, headers={"WWW-Authenticate": challenge})


async def authenticate(request: web.Request) -> Principal:
    """Check the request's bearer token against the database (no cache: revocation is
    immediate). Raises 401 for a missing or bad token, 503 if the database cannot answer."""
    header = request.headers.get("Authorization")
    if header is None and console_sessions.COOKIE in request.cookies:
        return await _from_session(request)
    token = bearer_token(header)
    if token is None:
        if header:
            raise _unauthenticated("Authorization header must be 'Bearer <token>'", invalid=True)
        raise _unauthenticated("a bearer token is required", invalid=False)
    db = request.app[CTX].db
    try:
        async with db.sessions() as session:
            found = await verify_token(session, token)
    except (SQLAlchemyError, OSError) as exc:
        log.warning("token check failed: database unavailable", exc_info=exc)
        raise ApiError(503, "unavailable", "cannot check the token: database unavailable") from exc
    if found is None:
        raise _unauthenticated("the token is unknown or revoked", invalid=True)
    return found


async def _from_session(request: web.Request) -> Principal:
    """The console user of the session cookie; 401 when it is unknown or over, 403 when a
    state change comes without the session's CSRF token."""
    db = request.app[CTX].db
    try:
        async with db.sessions() as session:
            active = await console_sessions.lookup(
                session, request.cookies[console_sessions.COOKIE]
            )
    except (SQLAlchemyError, OSError) as exc:
        log.warning("session check failed: database unavailable", exc_info=exc)
        raise ApiError(503, "unavailable", "cannot check the session: database unavailable") \
            from exc
    if active is None:
        raise ApiError(401, "unauthenticated", "the session is over; log in again")
    if request.method not in console_sessions.SAFE_METHODS and not console_sessions.csrf_ok(
        active, request.headers.get(console_sessions.CSRF_HEADER)
    ):
        raise ApiError(403, "csrf_failed",
                       f"a change needs the session's {console_sessions.CSRF_HEADER} header")
    request[SESSION] = active
    user = active.user
    return Principal(token_id=0, name=user.username, role=user.role, user_id=user.id,
                     departments=frozenset(user.departments or ()), agent_id=user.agent_id)


def authorize(found: Principal, access: Access) -> None:
    if not found.may(access.roles):
        needed = ", ".join(sorted(access.roles | {"admin"}))
        raise ApiError(
            403, "forbidden", f"role {found.role!r} may not do this; needs one of: {needed}"
        )


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    match = request.match_info
    if match.http_exception is not None:  # 404/405: nothing to protect, let it raise
        return await handler(request)
    access = access_of(match.handler)
    if access is None:  # check_routes prevents this; refuse rather than serve unprotected
        raise ApiError(500, "internal_error", "route has no access declaration")
    if not access.public:
        found = await authenticate(request)
        authorize(found, access)
        request[PRINCIPAL] = found
    return await handler(request)
