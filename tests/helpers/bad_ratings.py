"""A 差评 item from a keypad call, and a POST that checks its answer (the 差评 API tests)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from hotline.levels import Level
from service.context import AppContext
from storage.models import BadRatingItem
from tests.conftest import Client
from tests.helpers.callbacks import add_call, rate_call

BASE = "/api/v1/bad-ratings"


async def bad_call(ctx: AppContext, linkedid: str, department: str | None = "D1",
                   level: Level = Level.VERY_DISSATISFIED) -> int:
    """A call rated 差评 on the keypad; returns its item's id."""
    await add_call(ctx, linkedid, department=department)
    await rate_call(ctx, linkedid, level)
    async with ctx.db.sessions() as s:
        item = await s.scalar(select(BadRatingItem).where(
            BadRatingItem.subject_key == f"call:CALL-{linkedid}"))
    assert item is not None
    return item.id


async def post(client: Client, path: str, auth: dict[str, str], body: dict[str, Any],
               status: int = 200) -> dict[str, Any]:
    resp = await client.post(path, json=body, headers=auth)
    data = await resp.json()
    assert resp.status == status, data
    return data  # type: ignore[no-any-return]
