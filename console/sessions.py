"""Console sessions: the cookie a browser presents after logging in, and its CSRF token.

The cookie holds 256 random bits; only their SHA-256 is stored (a copy of the database hands
out no working session). CSRF is a session-bound token: the page receives it from
``GET /api/v1/session`` and sends it back in the ``X-CSRF-Token`` header on every state
change; a cross-site form cannot read it, so it cannot forge a change, and SameSite=Strict on
the cookie is a second wall.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hotline.clock import utcnow
from storage.models import ConsoleSession, ConsoleUser

COOKIE = "hotline_session"
CSRF_HEADER = "X-CSRF-Token"
#: Methods that change nothing (RFC 9110 safe methods) need no CSRF token.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Active:
    """A live session and the user it belongs to."""

    session_id: int
    csrf_token: str
    user: ConsoleUser


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


async def start(
    session: AsyncSession, user: ConsoleUser, hours: float, now: dt.datetime | None = None
) -> tuple[str, ConsoleSession]:
    """A new session for ``user``; returns the cookie value (kept nowhere) and the row."""
    now = now or utcnow()
    cookie = secrets.token_urlsafe(32)
    row = ConsoleSession(
        token_hash=_hash(cookie), user_id=user.id, csrf_token=secrets.token_urlsafe(32),
        created_at=now, expires_at=now + dt.timedelta(hours=hours),
    )
    session.add(row)
    await session.flush()
    return cookie, row


async def lookup(
    session: AsyncSession, cookie: str, now: dt.datetime | None = None
) -> Active | None:
    """The live session of a cookie value: not ended, not expired, user not disabled."""
    if not cookie or len(cookie) > 128:
        return None
    now = now or utcnow()
    row = (
        await session.execute(
            select(ConsoleSession, ConsoleUser)
            .join(ConsoleUser, ConsoleUser.id == ConsoleSession.user_id)
            .where(ConsoleSession.token_hash == _hash(cookie))
        )
    ).first()
    if row is None:
        return None
    sess, user = row
    if sess.ended_at is not None or sess.expires_at <= now or user.disabled_at is not None:
        return None
    return Active(session_id=sess.id, csrf_token=sess.csrf_token, user=user)


def csrf_ok(active: Active, presented: str | None) -> bool:
    return presented is not None and hmac.compare_digest(active.csrf_token, presented)


async def end(session: AsyncSession, session_id: int, now: dt.datetime | None = None) -> None:
    row = await session.get(ConsoleSession, session_id)
    if row is not None and row.ended_at is None:
        row.ended_at = now or utcnow()


async def end_all_for(session: AsyncSession, user_id: int, now: dt.datetime | None = None) -> None:
    """Log a user out everywhere (password reset, disabling, role change)."""
    now = now or utcnow()
    rows = await session.scalars(
        select(ConsoleSession).where(ConsoleSession.user_id == user_id,
                                     ConsoleSession.ended_at.is_(None))
    )
    for row in rows:
        row.ended_at = now
