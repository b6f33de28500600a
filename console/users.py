"""Console users: create, authenticate (with lock-out), change, list. Database functions on a
session; the HTTP routes (console.routes) and the CLI (console.cli) are thin adapters."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from console import lockout, passwords
from hotline.clock import utcnow
from hotline.settings import Settings
from http_api.tokens import ROLES
from storage.models import ConsoleUser

FIRST_ADMIN = "admin"
_USERNAME = re.compile(r"^[A-Za-z0-9_.@-]{2,64}$")


class UserError(ValueError):
    """A user cannot be created or changed as asked."""


@dataclass(frozen=True)
class LoginResult:
    user: ConsoleUser | None  # set when the login succeeded
    locked: bool = False


def policy(settings: Settings) -> lockout.Policy:
    return lockout.Policy(settings.console_max_failed_logins, settings.console_lockout_minutes)


def _check(username: str, role: str, departments: list[str]) -> None:
    if not _USERNAME.fullmatch(username):
        raise UserError("user name: 2 to 64 letters, digits or _ . @ -")
    if role not in ROLES:
        raise UserError(f"unknown role {role!r}; roles are: {', '.join(ROLES)}")
    if any(not d.strip() or len(d) > 32 for d in departments):
        raise UserError("department codes are 1 to 32 characters")


async def create_user(
    session: AsyncSession,
    *,
    username: str,
    password: str,
    role: str,
    display_name: str | None = None,
    departments: list[str] | None = None,
    agent_id: str | None = None,
) -> ConsoleUser:
    departments = list(departments or [])
    _check(username, role, departments)
    if await session.scalar(select(ConsoleUser.id).where(ConsoleUser.username == username)):
        raise UserError(f"user {username!r} exists already")
    try:
        hashed = passwords.hash_password(password)
    except passwords.WeakPassword as exc:
        raise UserError(str(exc)) from exc
    user = ConsoleUser(
        username=username, display_name=(display_name or username).strip() or username,
        role=role, departments=departments, agent_id=agent_id or None,
        password_hash=hashed, failed_logins=0, created_at=utcnow(),
    )
    session.add(user)
    await session.flush()
    return user


async def authenticate(
    session: AsyncSession, settings: Settings, username: str, password: str,
    now: dt.datetime | None = None,
) -> LoginResult:
    """Check a login; counts failures and locks the account (console.lockout). The same work
    is done for an unknown name, so the answer time does not tell which names exist."""
    now = now or utcnow()
    user = await session.scalar(
        select(ConsoleUser).where(ConsoleUser.username == username).with_for_update()
    )
    if user is None or user.disabled_at is not None:
        passwords.verify_password(passwords.DUMMY_HASH, password)
        return LoginResult(None)
    ok = passwords.verify_password(user.password_hash, password)
    outcome = lockout.decide(
        lockout.Account(user.failed_logins, user.locked_until), ok, now, policy(settings)
    )
    user.failed_logins = outcome.failed_logins
    user.locked_until = outcome.locked_until
    if not outcome.allowed:
        return LoginResult(None, locked=outcome.locked)
    if passwords.needs_rehash(user.password_hash):
        user.password_hash = passwords.hash_password(password)
    return LoginResult(user)


async def set_password(session: AsyncSession, user: ConsoleUser, password: str) -> None:
    try:
        user.password_hash = passwords.hash_password(password)
    except passwords.WeakPassword as exc:
        raise UserError(str(exc)) from exc
    user.failed_logins = 0
    user.locked_until = None


async def update_user(
    session: AsyncSession, user: ConsoleUser, *, role: str | None = None,
    departments: list[str] | None = None, agent_id: str | None = None,
    display_name: str | None = None, disabled: bool | None = None, unlock: bool = False,
) -> ConsoleUser:
    new_role = role or user.role
    new_departments = user.departments if departments is None else departments
    _check(user.username, new_role, new_departments)
    user.role = new_role
    user.departments = list(new_departments)
    if agent_id is not None:
        user.agent_id = agent_id or None
    if display_name:
        user.display_name = display_name
    if disabled is not None:
        user.disabled_at = (user.disabled_at or utcnow()) if disabled else None
    if unlock:
        user.failed_logins = 0
        user.locked_until = None
    await session.flush()
    return user


async def get_user(session: AsyncSession, user_id: int) -> ConsoleUser | None:
    return await session.get(ConsoleUser, user_id)


async def find_user(session: AsyncSession, username: str) -> ConsoleUser | None:
    return await session.scalar(select(ConsoleUser).where(ConsoleUser.username == username))


async def list_users(session: AsyncSession) -> list[ConsoleUser]:
    return list(await session.scalars(select(ConsoleUser).order_by(ConsoleUser.id)))


async def ensure_first_admin(session: AsyncSession) -> str | None:
    """On the first start (no user at all) create ``admin`` with a random password and return
    the password, which is shown once and kept nowhere; None when users exist."""
    if await session.scalar(select(func.count()).select_from(ConsoleUser)):
        return None
    password = passwords.generate_password()
    await create_user(session, username=FIRST_ADMIN, password=password, role="admin",
                      display_name="系统管理员")
    return password
