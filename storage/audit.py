"""The audit log (issue 10 "Roles, scope and audit"): append-only, one row per decision a
person (or a token) makes — number reveals with their reason, manual results, 核实/整改/延期/
督办/复核/申诉, assignments, role and token changes.

Written in the same transaction as the change it records, so a change without its audit row
cannot be committed. The table refuses UPDATE and DELETE (migration 0005 triggers).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from hotline.clock import utcnow
from storage.models import AuditEntry

#: the actor of a change made with the ``hotline`` command (whoever has the machine's shell)
CLI_ACTOR = "cli"


async def record_audit(
    session: AsyncSession,
    *,
    actor: str,
    role: str,
    action: str,
    subject_type: str,
    subject_id: str | int | None = None,
    details: dict[str, Any] | None = None,
    at: dt.datetime | None = None,
) -> AuditEntry:
    """Append one audit row. ``details`` must never hold a full phone number (rule 8)."""
    entry = AuditEntry(
        at=at or utcnow(),
        actor=actor,
        role=role,
        action=action,
        subject_type=subject_type,
        subject_id=None if subject_id is None else str(subject_id),
        details=dict(details or {}),
    )
    session.add(entry)
    await session.flush()
    return entry


def audit_query(
    *,
    subject_type: str | None = None,
    subject_id: str | int | None = None,
    action: str | None = None,
    actor: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> Select[tuple[AuditEntry]]:
    query = select(AuditEntry)
    if subject_type is not None:
        query = query.where(AuditEntry.subject_type == subject_type)
    if subject_id is not None:
        query = query.where(AuditEntry.subject_id == str(subject_id))
    if action is not None:
        query = query.where(AuditEntry.action == action)
    if actor is not None:
        query = query.where(AuditEntry.actor == actor)
    if since is not None:
        query = query.where(AuditEntry.at >= since)
    if until is not None:
        query = query.where(AuditEntry.at < until)
    return query


async def list_audit(
    session: AsyncSession, *, limit: int = 100, after_id: int = 0, **filters: Any
) -> list[AuditEntry]:
    """Oldest first, paged by id (``after_id``)."""
    query = audit_query(**filters).where(AuditEntry.id > after_id)
    return list(await session.scalars(query.order_by(AuditEntry.id).limit(limit)))
