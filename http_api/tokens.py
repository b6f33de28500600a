"""API bearer tokens: create, verify, revoke, list. Plain database functions on a session.

Only the SHA-256 of a token is stored, so a copy of the database does not hand out working
tokens. A plain (unsalted, fast) hash is enough here because tokens are 256-bit random values,
not passwords: there is nothing to guess. For the same reason looking a token up by its hash
in SQL does not leak anything through timing.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hotline.clock import utcnow
from storage.models import ApiToken, ApiTokenScope, TokenScopeKind

#: The roles a token can carry. ``admin`` may do everything (see ``Principal.may``).
#: ``department`` (责任单位) is bound to department codes and ``agent`` may be bound to a 工号
#: (``api_token_scopes``); ``workorder`` is the 工单 system (issue 10 "Roles, scope and audit").
ROLES: tuple[str, ...] = (
    "agent", "supervisor", "reviewer", "aggregator", "admin", "department", "workorder"
)
ADMIN = "admin"
DEPARTMENT = "department"

#: Recognisable prefix, so secret scanners and humans can tell a hotline token at a glance.
TOKEN_PREFIX = "hl_"
_TOKEN_BYTES = 32
_MAX_TOKEN_LENGTH = 256  # anything longer is garbage; refuse it before hashing
NAME_MAX = 128


class TokenError(ValueError):
    """A token cannot be created as asked (unknown role, bad name)."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's id, name and role (``principal(request)`` in handlers).
    A console user logged in with a session has ``token_id`` 0 and ``user_id`` set; the
    role and department scope are checked the same way for both."""

    token_id: int
    name: str
    role: str
    #: the department codes a ``department`` token acts for (empty for other roles)
    departments: frozenset[str] = frozenset()
    #: a console user (session login) has token_id 0 and this set
    user_id: int | None = None
    #: the 工号 an ``agent`` token is bound to, if any
    agent_id: str | None = None

    def may(self, roles: frozenset[str] | tuple[str, ...]) -> bool:
        return self.role == ADMIN or self.role in roles

    def sees_department(self, code: str | None) -> bool:
        """A department token sees its own departments' items only; other roles are limited
        by their role checks, not by department."""
        return self.role != DEPARTMENT or (code is not None and code in self.departments)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _check(name: str, role: str) -> str:
    if role not in ROLES:
        raise TokenError(f"unknown role {role!r}; roles are: {', '.join(ROLES)}")
    name = name.strip()
    if not name or len(name) > NAME_MAX:
        raise TokenError(f"name must be 1 to {NAME_MAX} characters")
    return name


async def create_token(
    session: AsyncSession,
    *,
    name: str,
    role: str,
    departments: tuple[str, ...] | list[str] = (),
    agent_id: str | None = None,
) -> tuple[ApiToken, str]:
    """Store a new token and return it with its clear text, which is not kept anywhere.
    A ``department`` token must name at least one department code."""
    name = _check(name, role)
    codes = sorted({c.strip() for c in departments if c.strip()})
    if role == DEPARTMENT and not codes:
        raise TokenError("a department token needs at least one department code")
    if codes and role != DEPARTMENT:
        raise TokenError("only a department token is bound to department codes")
    if agent_id is not None and role != "agent":
        raise TokenError("only an agent token is bound to a 工号")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(_TOKEN_BYTES)
    row = ApiToken(name=name, role=role, token_hash=hash_token(secret), created_at=utcnow())
    session.add(row)
    await session.flush()  # assigns the id
    for code in codes:
        session.add(ApiTokenScope(token_id=row.id, kind=TokenScopeKind.DEPARTMENT, value=code))
    if agent_id:
        session.add(ApiTokenScope(token_id=row.id, kind=TokenScopeKind.AGENT, value=agent_id))
    await session.flush()
    return row, secret


async def token_scopes(session: AsyncSession, token_id: int) -> list[ApiTokenScope]:
    return list(
        await session.scalars(
            select(ApiTokenScope)
            .where(ApiTokenScope.token_id == token_id)
            .order_by(ApiTokenScope.id)
        )
    )


async def verify_token(session: AsyncSession, token: str) -> Principal | None:
    """The principal for a presented token, or None if it is unknown or revoked.

    Always reads the database: nothing is cached, so a revocation takes effect at once.
    """
    if not token or len(token) > _MAX_TOKEN_LENGTH:
        return None
    row = await session.scalar(
        select(ApiToken).where(ApiToken.token_hash == hash_token(token))
    )
    if row is None or row.revoked_at is not None:
        return None
    scopes = await token_scopes(session, row.id)
    return Principal(
        token_id=row.id,
        name=row.name,
        role=row.role,
        departments=frozenset(s.value for s in scopes if s.kind == TokenScopeKind.DEPARTMENT),
        agent_id=next((s.value for s in scopes if s.kind == TokenScopeKind.AGENT), None),
    )


async def revoke_token(session: AsyncSession, token_id: int) -> ApiToken | None:
    """Mark a token revoked (kept for audit). None if no such token; revoking twice keeps the
    first revocation time."""
    row = await session.get(ApiToken, token_id)
    if row is not None and row.revoked_at is None:
        row.revoked_at = utcnow()
        await session.flush()
    return row


async def list_tokens(session: AsyncSession) -> list[ApiToken]:
    return list(await session.scalars(select(ApiToken).order_by(ApiToken.id)))

