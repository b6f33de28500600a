"""The 差评 loop through the HTTP API, on SQLite and PostgreSQL (issue 10; DOMAIN.md "The 差评
loop", rule 4 deadlines, rule 6 复核/申诉, rule 8 scope)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from bad_ratings import service
from callback_scheduler.cases import NewCase, close_case, create_case
from hotline.clock import utcnow
from hotline.levels import Level
from service.context import AppContext
from storage.models import (
    AuditEntry,
    BadRatingItem,
    CallbackTask,
    OutboxEntry,
    Rating,
    WebhookEvent,
)
from tests.conftest import Client, bearer
from tests.helpers.bad_ratings import BASE, bad_call, post
from tests.helpers.callbacks import NUMBER, add_call, rate_call


async def test_every_bad_rating_opens_one_item_for_its_department(ctx: AppContext) -> None:
    item_id = await bad_call(ctx, "BR-1")
    await rate_call(ctx, "BR-1", Level.VERY_DISSATISFIED)  # the survey saves again: same rating
    await add_call(ctx, "BR-GOOD")
    await rate_call(ctx, "BR-GOOD", Level.SATISFIED)
    async with ctx.db.sessions() as s:
        items = list(await s.scalars(select(BadRatingItem)))
        assert [i.id for i in items] == [item_id]
        assert items[0].department_code == "D1" and items[0].agent_id == "A007"
        assert items[0].state == "pending_verification" and items[0].rectify_due is not None
        assert await s.scalar(select(WebhookEvent.event)) == "bad_rating.opened"


async def test_scope_a_department_never_sees_another_departments_item_on_any_route(
    client: Client, ctx: AppContext,
) -> None:
    """issue 10 "Scope": 404 on every route, never data; other roles 403 by role."""
    theirs = await bad_call(ctx, "SC-1", department="D1")
    ours = await bad_call(ctx, "SC-2", department="D2")
    d2 = await bearer(ctx, "department", departments=("D2",))
    resp = await client.get(BASE, headers=d2)
    assert [i["id"] for i in await resp.json()] == [ours]
    resp = await client.get(BASE + "?department=D1", headers=d2)
    assert await resp.json() == []
    resp = await client.get(f"{BASE}/{theirs}", headers=d2)
    assert resp.status == 404 and "D1" not in await resp.text()
    bodies = {
        "verify": {"finding": "genuine", "explanation": "x"},
        "rectify": {"reply": "x", "citizen_result": "y"},
        "extension": {"due": "2099-01-01", "reason": "x"},
    }
    for action, body in bodies.items():
        resp = await client.post(f"{BASE}/{theirs}/{action}", json=body, headers=d2)
        assert resp.status == 404, action
        assert (await client.post(f"{BASE}/{ours}/{action}", json=body,
                                  headers=d2)).status != 404, action
    for action in ("assign", "extension/decision", "return", "supervise", "appeal", "review",
                   "reopen"):
        resp = await client.post(f"{BASE}/{theirs}/{action}", json={}, headers=d2)
        assert resp.status == 403, action
    assert (await client.get("/api/v1/audit", headers=d2)).status == 403
    # an agent sees only the items of its own 工号
    other_agent = await bearer(ctx, "agent", agent_id="A999")
    assert await (await client.get(BASE, headers=other_agent)).json() == []
    assert (await client.get(f"{BASE}/{ours}", headers=other_agent)).status == 404
    resp = await client.post(f"{BASE}/{ours}/appeal", json={"reason": "x"}, headers=other_agent)
    assert resp.status == 404
    # without a token: 401; aggregator: 403
    assert (await client.get(BASE)).status == 401
    assert (await client.get(BASE, headers=await bearer(ctx, "aggregator"))).status == 403


async def test_unassigned_queue_then_assignment_and_audit(client: Client, ctx: AppContext) -> None:
    item_id = await bad_call(ctx, "UQ-1", department=None)
    sup = await bearer(ctx, "supervisor")
    resp = await client.get(BASE + "?unassigned=true", headers=sup)
    assert [i["id"] for i in await resp.json()] == [item_id]
    d3 = await bearer(ctx, "department", departments=("D3",))
    assert await (await client.get(BASE, headers=d3)).json() == []
    out = await post(client, f"{BASE}/{item_id}/assign", sup, {"department_code": "D3"})
    assert out["department_code"] == "D3"
    assert [i["id"] for i in await (await client.get(BASE, headers=d3)).json()] == [item_id]
    resp = await client.get(f"/api/v1/audit?subject_type=bad_rating&subject_id={item_id}",
                            headers=sup)
    actions = [e["action"] for e in await resp.json()]
    assert actions == ["bad_rating.open", "bad_rating.assign"]


async def test_verify_rectify_extension_supervise_return_and_timeline(
    client: Client, ctx: AppContext,
) -> None:
    item_id = await bad_call(ctx, "FL-1")
    dep = await bearer(ctx, "department", departments=("D1",))
    sup = await bearer(ctx, "supervisor")
    out = await post(client, f"{BASE}/{item_id}/verify", dep,
                     {"finding": "genuine", "explanation": "态度生硬属实"})
    assert out["state"] == "rectifying" and out["state_label"] == "整改中"
    due = dt.date.fromisoformat(out["rectify_due"]) + dt.timedelta(days=10)
    out = await post(client, f"{BASE}/{item_id}/extension", dep,
                     {"due": due.isoformat(), "reason": "需协调多部门"})
    assert out["extension_status"] == "requested"
    out = await post(client, f"{BASE}/{item_id}/extension/decision", sup, {"approve": True})
    assert out["rectify_due"] == due.isoformat()
    out = await post(client, f"{BASE}/{item_id}/supervise", sup, {"note": "请加快"})
    assert out["supervise_count"] == 1 and out["supervised_by"].startswith("api:")
    await post(client, f"{BASE}/{item_id}/verify", dep,
               {"finding": "genuine", "explanation": "again"}, status=409)
    out = await post(client, f"{BASE}/{item_id}/rectify", dep,
                     {"reply": "已培训整改", "citizen_result": "已对工作人员批评教育"})
    assert out["state"] == "rectified"
    out = await post(client, f"{BASE}/{item_id}/return", sup, {"reason": "整改不具体"})
    assert out["state"] == "rectifying"
    resp = await client.get(f"{BASE}/{item_id}", headers=dep)
    timeline = [e["action"] for e in (await resp.json())["timeline"]]
    assert timeline == ["open", "verify", "request_extension", "decide_extension", "supervise",
                        "rectify", "return"]
    async with ctx.db.sessions() as s:
        events = list(await s.scalars(select(WebhookEvent.event).order_by(WebhookEvent.id)))
    assert events == ["bad_rating.opened", "bad_rating.supervised"]


async def test_rule6_malicious_upheld_invalidates_pushes_and_cancels_the_callback(
    client: Client, ctx: AppContext,
) -> None:
    """A 恶意 finding upheld by a reviewer: the rating is invalid, the invalidation is pushed,
    the pending 回访 cancelled (issue 10 Tests)."""
    await add_call(ctx, "ML-1")
    await rate_call(ctx, "ML-1", Level.VERY_DISSATISFIED)
    async with ctx.db.transaction() as s:
        await create_case(s, ctx, NewCase("GD-ML-1", "D1", "住建局", NUMBER, "ML-1"), utcnow())
        closed = await close_case(s, ctx, "GD-ML-1", rectification_result=None, bad_rating=None,
                                  now=utcnow())
        task_id = closed.task.id if closed.task else None
        item = await s.scalar(select(BadRatingItem))
        assert item is not None
    assert task_id is not None
    dep = await bearer(ctx, "department", departments=("D1",))
    rev = await bearer(ctx, "reviewer")
    out = await post(client, f"{BASE}/{item.id}/verify", dep,
                     {"finding": "malicious", "explanation": "来电人辱骂并威胁"})
    assert out["state"] == "in_review"
    out = await post(client, f"{BASE}/{item.id}/review", rev,
                     {"decision": "invalid", "finding": "malicious", "reason": "录音证实恶意"})
    assert out["state"] == "invalid"
    async with ctx.db.sessions() as s:
        rating = await s.get(Rating, item.first_rating_id)
        assert rating is not None and rating.valid is False
        assert rating.invalid_reason == "录音证实恶意" and rating.reviewed_by
        events = list(await s.scalars(select(OutboxEntry.event).where(
            OutboxEntry.rating_id == rating.id).order_by(OutboxEntry.id)))
        assert events == ["rating", "invalidation"]
        task = await s.get(CallbackTask, task_id)
        assert task is not None and task.status == "cancelled"


async def test_rule6_appeal_by_the_agent_and_upheld(client: Client, ctx: AppContext) -> None:
    item_id = await bad_call(ctx, "AP-1")
    agent = await bearer(ctx, "agent", agent_id="A007")
    rev = await bearer(ctx, "reviewer")
    assert [i["id"] for i in await (await client.get(BASE, headers=agent)).json()] == [item_id]
    out = await post(client, f"{BASE}/{item_id}/appeal", agent, {"reason": "已按规定答复"})
    assert out["state"] == "in_review" and out["review_origin"] == "appeal"
    out = await post(client, f"{BASE}/{item_id}/review", rev,
                     {"decision": "upheld", "reason": "差评成立"})
    assert out["state"] == "pending_verification"
    await post(client, f"{BASE}/{item_id}/review", rev,
               {"decision": "upheld", "reason": "again"}, status=409)


async def test_a_second_bad_rating_joins_the_open_item(ctx: AppContext) -> None:
    await add_call(ctx, "JN-1")
    await rate_call(ctx, "JN-1", Level.DISSATISFIED)
    async with ctx.db.transaction() as s:
        await create_case(s, ctx, NewCase("GD-JN-1", "D1", "住建局", NUMBER, "JN-1"), utcnow())
    from storage.models import Case, RatingKind, RatingSource
    from storage.ratings import RatingInput, save_rating

    async with ctx.db.transaction() as s:
        case = await s.scalar(select(Case).where(Case.case_number == "GD-JN-1"))
        assert case is not None
        for n in (1, 2):
            await save_rating(s, RatingInput(
                project_no="GD-JN-1", assess_number=n, kind=RatingKind.PER_CASE,
                source=RatingSource.MANUAL, level=Level.VERY_DISSATISFIED, case_id=case.id))
    async with ctx.db.sessions() as s:
        items = list(await s.scalars(select(BadRatingItem).order_by(BadRatingItem.id)))
        case_item = [i for i in items if i.subject_key == "case:GD-JN-1"]
        assert len(case_item) == 1
        _, events = await service.get_with_timeline(s, service.SYSTEM_ACTOR, case_item[0].id)
        assert [e.action for e in events] == ["open", "join"]


async def test_deadline_watch_emits_due_soon_and_overdue_once(ctx: AppContext) -> None:
    item_id = await bad_call(ctx, "DL-1")
    policy = ctx.bad_rating_policy
    async with ctx.db.transaction() as s:
        row = await s.get(BadRatingItem, item_id)
        assert row is not None
        later = dt.datetime.combine(row.verify_due, dt.time(12), tzinfo=policy.tz)
    for _ in range(2):
        async with ctx.db.transaction() as s:
            await service.watch_deadlines(s, policy=policy, now=later)
            await service.watch_deadlines(s, policy=policy, now=later + dt.timedelta(days=1))
    async with ctx.db.sessions() as s:
        events = list(await s.scalars(select(WebhookEvent.event).order_by(WebhookEvent.id)))
    assert events == ["bad_rating.opened", "bad_rating.due_soon", "bad_rating.overdue"]


async def test_audit_log_is_append_only(ctx: AppContext) -> None:
    await bad_call(ctx, "AO-1")
    with pytest.raises(DBAPIError):
        async with ctx.db.transaction() as s:
            await s.execute(text("UPDATE audit_log SET actor = 'someone else'"))
    with pytest.raises(DBAPIError):
        async with ctx.db.transaction() as s:
            await s.execute(text("DELETE FROM audit_log"))
    async with ctx.db.sessions() as s:
        assert await s.scalar(select(AuditEntry.actor)) == "system"


async def test_workorder_updates_and_reopens_a_case(client: Client, ctx: AppContext) -> None:
    """updateCase reassigns the open 差评 item; reopenCase cancels the pending 回访; audited."""
    await add_call(ctx, "WO-1")
    await rate_call(ctx, "WO-1", Level.DISSATISFIED)
    async with ctx.db.transaction() as s:
        await create_case(s, ctx, NewCase("GD-WO-1", "D1", "住建局", NUMBER, "WO-1"), utcnow())
        closed = await close_case(s, ctx, "GD-WO-1", rectification_result=None, bad_rating=None,
                                  now=utcnow())
        assert closed.task is not None
    wo = await bearer(ctx, "workorder")
    resp = await client.patch("/api/v1/cases/GD-WO-1", headers=wo,
                              json={"department_code": "D9"})
    assert resp.status == 200 and (await resp.json())["department_code"] == "D9"
    d9 = await bearer(ctx, "department", departments=("D9",))
    assert len(await (await client.get(BASE, headers=d9)).json()) == 1
    await post(client, "/api/v1/cases/GD-WO-1/reopen", wo, {"reason": "市民补充诉求"})
    await post(client, "/api/v1/cases/GD-WO-1/reopen", wo, {"reason": "again"}, status=409)
    assert (await client.patch("/api/v1/cases/NOPE", headers=wo, json={})).status == 404
    async with ctx.db.sessions() as s:
        task = await s.get(CallbackTask, closed.task.id)
        assert task is not None and task.status == "cancelled"
        actions = list(await s.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))
    assert actions[-3:] == ["case.update", "bad_rating.assign", "case.reopen"]
    # the 工单 system cannot reveal numbers or act as a department
    assert (await client.get("/api/v1/callbacks/tasks/1/number", headers=wo)).status == 403


async def test_list_pages_newest_first_by_cursor(client: Client, ctx: AppContext) -> None:
    """listBadRatings ``order=desc``: the newest items first, the next page below the last id
    seen, scope applied on every page (a department never gets another's item)."""
    for n in range(4):
        await bad_call(ctx, f"PG-{n}")
    await bad_call(ctx, "PG-other", department="D2")
    sup = await bearer(ctx, "supervisor")
    dep = await bearer(ctx, "department", departments=("D1",))

    async def ids(auth: dict[str, str], **q: Any) -> list[int]:
        resp = await client.get(BASE, params={k: str(v) for k, v in q.items()}, headers=auth)
        assert resp.status == 200
        return [i["id"] for i in await resp.json()]

    every = await ids(sup)
    assert every == sorted(every) and len(every) == 5  # oldest first stays the default
    first = await ids(sup, order="desc", limit=2)
    assert first == every[::-1][:2]
    assert await ids(sup, order="desc", limit=2, after=first[-1]) == every[::-1][2:4]
    assert await ids(sup, order="desc", limit=2, after=every[0]) == []
    own = await ids(dep, order="desc", limit=3)
    assert own == every[:4][::-1][:3]  # the D2 item (the newest) is not on a D1 page
    assert await ids(dep, order="desc", limit=3, after=own[-1]) == [every[0]]
