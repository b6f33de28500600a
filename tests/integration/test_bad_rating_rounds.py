"""The 回访 after 整改 and the rounds (issue 10 "Back to the citizen"), on SQLite and
PostgreSQL: 整改 arms a 回访; "not solved" opens a second round and re-arms it; a satisfied
citizen closes the item; both answers are stored on the item and each 回访 is its own
evaluation upstream (issue 8 defect 6)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from callback_scheduler.cases import NewCase, create_case
from callback_scheduler.results import Answer, store_answer
from hotline.clock import utcnow
from hotline.levels import Level
from service.context import AppContext
from storage.models import AuditEntry, BadRatingItem, CallbackTask, OutboxEntry, RatingSource
from tests.conftest import Client, bearer
from tests.helpers.bad_ratings import post
from tests.helpers.callbacks import NUMBER, add_call, rate_call

BASE = "/api/v1/bad-ratings"



async def answer(ctx: AppContext, resolved: bool, level: Level) -> None:
    async with ctx.db.transaction() as s:
        task = await s.scalar(select(CallbackTask).where(CallbackTask.status == "pending"))
        assert task is not None, "no 回访 armed"
        for _ in range(2):  # level, then the reason: the same answer saved twice
            await store_answer(s, task, Answer(level, resolved=resolved),
                               source=RatingSource.CALLBACK, now=utcnow())
        task.status = "completed"


async def test_rectified_item_is_called_back_and_a_not_solved_answer_opens_round_two(
    client: Client, ctx: AppContext,
) -> None:
    await add_call(ctx, "RD-1")
    await rate_call(ctx, "RD-1", Level.VERY_DISSATISFIED)
    async with ctx.db.transaction() as s:
        await create_case(s, ctx, NewCase("GD-RD-1", "D1", "住建局", NUMBER, "RD-1"), utcnow())
        item = await s.scalar(select(BadRatingItem))
        assert item is not None
    dep = await bearer(ctx, "department", departments=("D1",))
    await post(client, f"{BASE}/{item.id}/verify", dep,
               {"finding": "genuine", "explanation": "属实"})
    rectify: dict[str, Any] = {"reply": "已整改", "citizen_result": "已为您重新办理"}
    out = await post(client, f"{BASE}/{item.id}/rectify", dep, rectify)
    assert out["state"] == "followup"
    await answer(ctx, resolved=False, level=Level.SATISFIED)
    out = await (await client.get(f"{BASE}/{item.id}", headers=dep)).json()
    assert (out["state"], out["round"], out["followup_solved"]) == ("rectifying", 2, False)
    out = await post(client, f"{BASE}/{item.id}/rectify", dep,
                     {**rectify, "citizen_result": "已上门解决"})
    assert out["state"] == "followup"
    await answer(ctx, resolved=True, level=Level.VERY_SATISFIED)
    out = await (await client.get(f"{BASE}/{item.id}", headers=dep)).json()
    assert (out["state"], out["round"]) == ("closed", 2)
    assert (out["followup_solved"], out["followup_level"]) == (True, 1)
    assert [e["action"] for e in out["timeline"]] == [
        "open", "verify", "rectify", "start_followup", "followup_result", "rectify",
        "start_followup", "followup_result"]
    async with ctx.db.sessions() as s:
        keys = list(await s.scalars(select(OutboxEntry.assess_number).where(
            OutboxEntry.project_no == "GD-RD-1").order_by(OutboxEntry.id)))
        audited = list(await s.scalars(select(AuditEntry.action).where(
            AuditEntry.subject_id == str(item.id)).order_by(AuditEntry.id)))
    assert keys == [2, 3]  # two 回访, two evaluations upstream, distinct keys
    assert audited[-1] == "bad_rating.followup_result" and len(audited) == 8
