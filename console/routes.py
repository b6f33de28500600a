"""The console's account routes: log in and out, the current user, and the admin pages'
users, tokens and (read-only) settings. Thin adapters over console.users, console.sessions
and http_api.tokens."""

from __future__ import annotations

import datetime as dt
import logging
import sys
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from console import sessions, users
from hotline.clock import utcnow
from http_api import tokens
from http_api.auth import authenticate, public, requires
from http_api.bodies import RowId, read_json, read_path, respond
from http_api.errors import ApiError
from http_api.keys import CTX, SESSION, app_ctx, principal
from http_api.openapi import operation
from service.context import AppContext
from storage.audit import record_audit
from storage.models import ApiToken, ConsoleUser

log = logging.getLogger("hotline.console")

TAGS = ["console"]
ADMIN_TAGS = ["admin"]
#: Every role: who is logged in may see who they are and log out.
ANY_ROLE = tuple(r for r in tokens.ROLES if r != tokens.ADMIN)


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class UserOut(BaseModel):
    id: int
    username: str
    display_name: str
    role: str
    departments: list[str]
    agent_id: str | None
    locked: bool
    disabled: bool
    created_at: dt.datetime


class SessionOut(BaseModel):
    """Who is logged in, and the token every change must carry in ``X-CSRF-Token``."""

    authenticated: bool = True
    user: UserOut | None
    name: str | None
    role: str | None
    csrf_token: str | None


class PasswordChangeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    old_password: str = Field(min_length=1, max_length=256)
    new_password: str = Field(min_length=1, max_length=256)


class UserIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=2, max_length=64)
    display_name: str | None = Field(default=None, max_length=128)
    role: str
    departments: list[str] = Field(default_factory=list, max_length=50)
    agent_id: str | None = Field(default=None, max_length=32)
    password: str | None = Field(default=None, description="empty: a random one is returned")


class UserPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    display_name: str | None = Field(default=None, max_length=128)
    role: str | None = None
    departments: list[str] | None = Field(default=None, max_length=50)
    agent_id: str | None = Field(default=None, max_length=32)
    disabled: bool | None = None
    unlock: bool = False


class CreatedUserOut(BaseModel):
    user: UserOut
    password: str | None = Field(description="the generated password, shown only this once")


class UserPath(BaseModel):
    user_id: RowId


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=tokens.NAME_MAX)
    role: str


class TokenOut(BaseModel):
    id: int
    name: str
    role: str
    created_at: dt.datetime
    revoked_at: dt.datetime | None


class CreatedTokenOut(BaseModel):
    token: TokenOut
    secret: str = Field(description="the bearer token, shown only this once")


class TokenPath(BaseModel):
    token_id: RowId


def user_out(u: ConsoleUser, now: dt.datetime | None = None) -> UserOut:
    now = now or utcnow()
    return UserOut(
        id=u.id, username=u.username, display_name=u.display_name, role=u.role,
        departments=list(u.departments or []), agent_id=u.agent_id,
        locked=u.locked_until is not None and u.locked_until > now,
        disabled=u.disabled_at is not None, created_at=u.created_at,
    )


def _token_out(t: ApiToken) -> TokenOut:
    return TokenOut(id=t.id, name=t.name, role=t.role, created_at=t.created_at,
                    revoked_at=t.revoked_at)


def _set_cookie(request: web.Request, response: web.StreamResponse, value: str,
                max_age: int) -> None:
    secure = request.secure or app_ctx(request).settings.console_cookie_secure
    response.set_cookie(sessions.COOKIE, value, max_age=max_age, path="/", httponly=True,
                        samesite="Strict", secure=secure)


@public
@operation(summary="Log in to the console (sets the session cookie)", tags=TAGS,
           operation_id="login", request_body=LoginIn,
           responses={200: SessionOut, 401: "Wrong name or password",
                      429: "Locked after repeated failures"})
async def login(request: web.Request) -> web.Response:
    body = await read_json(request, LoginIn)
    ctx = app_ctx(request)
    async with ctx.db.transaction() as s:
        result = await users.authenticate(s, ctx.settings, body.username, body.password)
        if result.user is not None:
            cookie, row = await sessions.start(s, result.user, ctx.settings.console_session_hours)
            out = SessionOut(user=user_out(result.user), name=result.user.username,
                             role=result.user.role, csrf_token=row.csrf_token)
    # the counters of a failed login are committed above; only then refuse
    if result.locked:
        log.warning("console login refused: account locked", extra={"user": body.username})
        raise ApiError(429, "locked", "too many failed logins; the account is locked for "
                       f"{ctx.settings.console_lockout_minutes:g} minutes")
    if result.user is None:
        log.info("console login failed", extra={"user": body.username})
        raise ApiError(401, "bad_credentials", "wrong user name or password")
    log.info("console login", extra={"user": body.username})
    response = respond(out)
    _set_cookie(request, response, cookie, int(ctx.settings.console_session_hours * 3600))
    return response


@public
@operation(summary="Who is logged in, and the CSRF token",
           description="Open to anyone, so that the console can ask without an error whether "
           "it is logged in: `authenticated` is false without a valid session or token.",
           tags=TAGS, operation_id="getSession", responses={200: SessionOut})
async def get_session(request: web.Request) -> web.Response:
    try:
        who = await authenticate(request)
    except ApiError as exc:
        if exc.status != 401:
            raise
        return respond(SessionOut(authenticated=False, user=None, name=None, role=None,
                                  csrf_token=None))
    active = request.get(SESSION)
    if active is None:  # a token holder asking who they are
        return respond(SessionOut(user=None, name=who.name, role=who.role, csrf_token=None))
    return respond(SessionOut(user=user_out(active.user), name=who.name, role=who.role,
                              csrf_token=active.csrf_token))


@requires(*ANY_ROLE)
@operation(summary="Log out (ends the session)", tags=TAGS, operation_id="logout",
           responses={204: "Logged out"})
async def logout(request: web.Request) -> web.StreamResponse:
    active = request.get(SESSION)
    if active is not None:
        async with app_ctx(request).db.transaction() as s:
            await sessions.end(s, active.session_id)
        log.info("console logout", extra={"user": active.user.username})
    response = web.Response(status=204)
    response.del_cookie(sessions.COOKIE, path="/")
    return response


@requires(*ANY_ROLE)
@operation(summary="Change one's own password (ends one's other sessions)", tags=TAGS,
           operation_id="changePassword", request_body=PasswordChangeIn,
           responses={204: "Changed", 403: "Wrong current password", 409: "Not a console user"})
async def change_password(request: web.Request) -> web.StreamResponse:
    body = await read_json(request, PasswordChangeIn)
    active = request.get(SESSION)
    if active is None:
        raise ApiError(409, "conflict", "only a logged-in console user has a password")
    ctx = app_ctx(request)
    async with ctx.db.transaction() as s:
        user = await users.get_user(s, active.user.id)
        if user is None or not users.passwords.verify_password(user.password_hash,
                                                               body.old_password):
            raise ApiError(403, "forbidden", "the current password is wrong")
        try:
            await users.set_password(s, user, body.new_password)
        except users.UserError as exc:
            raise ApiError(422, "validation_failed", str(exc)) from exc
        await sessions.end_all_for(s, user.id)
        cookie, _ = await sessions.start(s, user, ctx.settings.console_session_hours)
        await _audit(s, request, "user.change_password", user.id, {"username": user.username})
    log.info("console password changed", extra={"user": user.username})
    response = web.Response(status=204)
    _set_cookie(request, response, cookie, int(ctx.settings.console_session_hours * 3600))
    return response


async def _audit(s: AsyncSession, request: web.Request, action: str, subject_id: int,
                 details: dict[str, Any]) -> None:
    """Role, scope and token changes are audited (issue 10 "Roles, scope and audit")."""
    who = principal(request)
    subject = "token" if action.startswith("token.") else "console_user"
    await record_audit(s, actor=who.name, role=who.role, action=action,
                       subject_type=subject, subject_id=subject_id, details=details)


# ------------------------------------------------------------------------- admin: users
@requires("admin")
@operation(summary="Console users", tags=ADMIN_TAGS, operation_id="listUsers",
           responses={200: list[UserOut]})
async def list_users(request: web.Request) -> web.Response:
    async with app_ctx(request).db.sessions() as s:
        found = await users.list_users(s)
    now = utcnow()
    return respond([user_out(u, now) for u in found])


@requires("admin")
@operation(summary="Create a console user", tags=ADMIN_TAGS, operation_id="createUser",
           request_body=UserIn, responses={201: CreatedUserOut, 422: "Bad name, role or "
                                          "password; or the name is taken"})
async def create_user(request: web.Request) -> web.Response:
    body = await read_json(request, UserIn)
    password = body.password or users.passwords.generate_password()
    try:
        async with app_ctx(request).db.transaction() as s:
            user = await users.create_user(
                s, username=body.username, password=password, role=body.role,
                display_name=body.display_name, departments=body.departments,
                agent_id=body.agent_id)
            await _audit(s, request, "user.create", user.id, {
                "username": user.username, "role": user.role, "departments": user.departments,
                "agent_id": user.agent_id})
    except users.UserError as exc:
        raise ApiError(422, "validation_failed", str(exc)) from exc
    log.info("console user created", extra={"user": user.username, "role": user.role,
                                            "by": principal(request).name})
    return respond(CreatedUserOut(user=user_out(user),
                                  password=None if body.password else password), status=201)


@requires("admin")
@operation(summary="Change a user's role, departments, 工号; disable or unlock", tags=ADMIN_TAGS,
           operation_id="updateUser", path=UserPath, request_body=UserPatch,
           responses={200: UserOut, 404: "No such user"})
async def update_user(request: web.Request) -> web.Response:
    path = read_path(request, UserPath)
    body = await read_json(request, UserPatch)
    try:
        async with app_ctx(request).db.transaction() as s:
            user = await users.get_user(s, path.user_id)
            if user is None:
                raise ApiError(404, "not_found", f"no user {path.user_id}")
            scope_changed = body.role not in (None, user.role) or body.disabled or (
                body.departments is not None and body.departments != user.departments)
            await users.update_user(
                s, user, role=body.role, departments=body.departments, agent_id=body.agent_id,
                display_name=body.display_name, disabled=body.disabled, unlock=body.unlock)
            if scope_changed:  # powers taken away take effect at once
                await sessions.end_all_for(s, user.id)
            await _audit(s, request, "user.update", user.id,
                         body.model_dump(exclude_none=True, exclude_defaults=True))
    except users.UserError as exc:
        raise ApiError(422, "validation_failed", str(exc)) from exc
    log.info("console user changed", extra={"user": user.username, "role": user.role,
                                            "by": principal(request).name})
    return respond(user_out(user))


@requires("admin")
@operation(summary="Reset a user's password to a new random one (shown once)",
           tags=ADMIN_TAGS, operation_id="resetUserPassword", path=UserPath,
           responses={200: CreatedUserOut, 404: "No such user"})
async def reset_password(request: web.Request) -> web.Response:
    path = read_path(request, UserPath)
    password = users.passwords.generate_password()
    async with app_ctx(request).db.transaction() as s:
        user = await users.get_user(s, path.user_id)
        if user is None:
            raise ApiError(404, "not_found", f"no user {path.user_id}")
        await users.set_password(s, user, password)
        await sessions.end_all_for(s, user.id)
        await _audit(s, request, "user.reset_password", user.id, {"username": user.username})
    log.info("console password reset", extra={"user": user.username,
                                               "by": principal(request).name})
    return respond(CreatedUserOut(user=user_out(user), password=password))


# ------------------------------------------------------------------------ admin: tokens
@requires("admin")
@operation(summary="API tokens (never their secrets)", tags=ADMIN_TAGS,
           operation_id="listTokens", responses={200: list[TokenOut]})
async def list_tokens(request: web.Request) -> web.Response:
    async with app_ctx(request).db.sessions() as s:
        found = await tokens.list_tokens(s)
    return respond([_token_out(t) for t in found])


@requires("admin")
@operation(summary="Create an API token (its secret is shown only this once)",
           tags=ADMIN_TAGS, operation_id="createToken", request_body=TokenIn,
           responses={201: CreatedTokenOut})
async def create_token(request: web.Request) -> web.Response:
    body = await read_json(request, TokenIn)
    try:
        async with app_ctx(request).db.transaction() as s:
            row, secret = await tokens.create_token(s, name=body.name, role=body.role)
            await _audit(s, request, "token.create", row.id,
                         {"name": row.name, "role": row.role})
    except tokens.TokenError as exc:
        raise ApiError(422, "validation_failed", str(exc)) from exc
    log.info("api token created", extra={"token_id": row.id, "role": row.role,
                                         "by": principal(request).name})
    return respond(CreatedTokenOut(token=_token_out(row), secret=secret), status=201)


@requires("admin")
@operation(summary="Revoke an API token; it stops working at once", tags=ADMIN_TAGS,
           operation_id="revokeToken", path=TokenPath,
           responses={200: TokenOut, 404: "No such token"})
async def revoke_token(request: web.Request) -> web.Response:
    path = read_path(request, TokenPath)
    async with app_ctx(request).db.transaction() as s:
        row = await tokens.revoke_token(s, path.token_id)
        if row is not None:
            await _audit(s, request, "token.revoke", row.id, {"name": row.name})
    if row is None:
        raise ApiError(404, "not_found", f"no token {path.token_id}")
    log.info("api token revoked", extra={"token_id": row.id, "by": principal(request).name})
    return respond(_token_out(row))


# ---------------------------------------------------------------------- admin: settings
_SECRET_WORDS = ("secret", "private_key", "app_word", "password")


def settings_view(ctx: AppContext) -> dict[str, Any]:
    """Every setting with its value, secrets replaced by a mark (they are set, not shown)."""
    data = ctx.settings.model_dump(mode="json")
    for name, value in data.items():
        if any(w in name for w in _SECRET_WORDS):
            data[name] = "******" if value else ""
    return data


@requires("admin")
@operation(summary="The settings in force (read-only; secrets masked)", tags=ADMIN_TAGS,
           operation_id="getSettings", responses={200: dict[str, Any]})
async def get_settings(request: web.Request) -> web.Response:
    return respond(settings_view(app_ctx(request)))


async def _first_admin(app: web.Application) -> None:
    """On the very first start, create the admin and print its password once, on the
    terminal (never in the logs, which are kept and shipped)."""
    ctx = app[CTX]
    try:
        async with ctx.db.transaction() as s:
            password = await users.ensure_first_admin(s)
    except (SQLAlchemyError, OSError) as exc:
        # the API still starts (readyz says why); the admin is made at the next start
        log.warning("cannot create the first console admin: database unavailable",
                    exc_info=exc)
        return
    if password is not None:
        print(
            "\n  控制台首次启动：已创建管理员 / first start: console admin created\n"
            f"    user: {users.FIRST_ADMIN}\n    password: {password}\n"
            "  This password is shown only now. Log in at "
            f"http://{ctx.settings.http_host}:{ctx.settings.http_port}/ and change it.\n",
            file=sys.stderr, flush=True,
        )


def setup(app: web.Application, ctx: AppContext) -> None:
    r = app.router
    r.add_post("/api/v1/session", login)
    r.add_get("/api/v1/session", get_session)
    r.add_delete("/api/v1/session", logout)
    r.add_post("/api/v1/session/password", change_password)
    r.add_get("/api/v1/users", list_users)
    r.add_post("/api/v1/users", create_user)
    r.add_patch("/api/v1/users/{user_id}", update_user)
    r.add_post("/api/v1/users/{user_id}/password", reset_password)
    r.add_get("/api/v1/tokens", list_tokens)
    r.add_post("/api/v1/tokens", create_token)
    r.add_delete("/api/v1/tokens/{token_id}", revoke_token)
    r.add_get("/api/v1/settings", get_settings)
    app.on_startup.append(_first_admin)
