"""What a record needs beyond its snapshot, fetched for a whole batch in two queries: the
department name of the case, and — only when the profile sends identity fields — the
evaluator's number, decrypted in memory for the request and never stored or logged.

The queries are SQL text run by the driver (storage.driver_sql; issue 13: SQLAlchemy's
compilation and per-row processing cost more than the joins), in the caller's transaction:
the forwarder reads them in the claim's own."""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from hotline.privacy import PhoneVault
from storage import driver_sql
from storage.db import Database
from storage.models import RatingKind

from .record import Extra

log = logging.getLogger("hotline.forwarder")


@functools.cache
def _ratings_sql(sqlite: bool, with_identity: bool) -> str:
    """Each rating ?1's case department and, for identity, both encrypted numbers."""
    identity = ", c.citizen_enc, call.caller_enc" if with_identity else ""
    join = " LEFT JOIN calls AS call ON call.id = r.call_id" if with_identity else ""
    return driver_sql.numbered(f"""
        SELECT r.id, r.kind, c.department_name{identity}
        FROM ratings AS r LEFT JOIN cases AS c ON c.id = r.case_id{join}
        WHERE {driver_sql.in_list("r.id", 1, sqlite)}""", sqlite)


@functools.cache
def _cases_sql(sqlite: bool) -> str:
    """The department of each case number ?1 (a rating whose case row is not linked)."""
    return driver_sql.numbered(f"""
        SELECT case_number, department_name FROM cases
        WHERE {driver_sql.in_list("case_number", 1, sqlite, "text")}""", sqlite)


async def extras(
    db: Database,
    vault: PhoneVault | None,
    payloads: Iterable[dict[str, Any]],
    *,
    with_identity: bool,
) -> dict[int, Extra]:
    """``rating_id -> Extra`` for the given outbox payloads."""
    async with db.sessions() as session:
        return await extras_in(session, vault, payloads, with_identity=with_identity)


async def extras_in(
    session: AsyncSession,
    vault: PhoneVault | None,
    payloads: Iterable[dict[str, Any]],
    *,
    with_identity: bool,
) -> dict[int, Extra]:
    """:func:`extras` in the caller's session."""
    payloads = list(payloads)
    rating_ids = {int(p["rating_id"]) for p in payloads}
    if not rating_ids:
        return {}
    sqlite = session.bind.dialect.name == "sqlite"
    rows = await driver_sql.rows(
        session, _ratings_sql(sqlite, with_identity),
        (driver_sql.values(sorted(rating_ids), sqlite),),
    )
    by_rating = {row[0]: row for row in rows}
    # a case number is looked up only for ratings that have no linked case with a name
    named = {rid for rid, row in by_rating.items() if row[2]}
    case_numbers = {
        p["case_number"] for p in payloads
        if p.get("case_number") and int(p["rating_id"]) not in named
    }
    names_by_number: dict[str, str | None] = {}
    if case_numbers:
        names_by_number = {number: name for number, name in await driver_sql.rows(
            session, _cases_sql(sqlite), (driver_sql.values(sorted(case_numbers), sqlite),)
        )}
    result: dict[int, Extra] = {}
    for payload in payloads:
        rid = int(payload["rating_id"])
        row = by_rating.get(rid)
        dept_name = (row[2] if row else None) or names_by_number.get(payload.get("case_number"))
        phone = None
        if with_identity and row is not None and vault is not None:
            # 一事一评 is the citizen of the case; 一次一评 the caller of the call
            first, second = (row[3], row[4]) if row[1] == RatingKind.PER_CASE else (row[4], row[3])
            encrypted = first or second
            if encrypted:
                try:
                    phone = vault.reveal(encrypted)
                except ValueError:
                    log.error("evaluator number cannot be decrypted", extra={"rating_id": rid})
        result[rid] = Extra(dept_name=dept_name, evaluator_phone=phone)
    return result
