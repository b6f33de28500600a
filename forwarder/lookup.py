"""What a record needs beyond its snapshot, fetched for a whole batch in two queries: the
department name of the case, and — only when the profile sends identity fields — the
evaluator's number, decrypted in memory for the request and never stored or logged."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select

from hotline.privacy import PhoneVault
from storage.db import Database
from storage.models import Call, Case, Rating, RatingKind

from .record import Extra

log = logging.getLogger("hotline.forwarder")


async def extras(
    db: Database,
    vault: PhoneVault | None,
    payloads: Iterable[dict[str, Any]],
    *,
    with_identity: bool,
) -> dict[int, Extra]:
    """``rating_id -> Extra`` for the given outbox payloads."""
    payloads = list(payloads)
    rating_ids = {int(p["rating_id"]) for p in payloads}
    case_numbers = {p["case_number"] for p in payloads if p.get("case_number")}
    if not rating_ids:
        return {}
    async with db.sessions() as session:
        rows = (await session.execute(
            select(
                Rating.id, Rating.kind, Case.department_name, Case.citizen_enc, Call.caller_enc
            )
            .outerjoin(Case, Case.id == Rating.case_id)
            .outerjoin(Call, Call.id == Rating.call_id)
            .where(Rating.id.in_(rating_ids))
        )).all()
        names_by_number: dict[str, str | None] = {}
        if case_numbers:
            names_by_number = dict(
                (await session.execute(
                    select(Case.case_number, Case.department_name).where(
                        Case.case_number.in_(case_numbers)
                    )
                )).all()
            )
    by_rating = {row[0]: row for row in rows}
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
