"""Case events through the HTTP API, on SQLite and PostgreSQL: DOMAIN.md rule 5 (closing a
差评 case schedules its 回访) and rule 8 (the citizen's number never comes back out)."""

from __future__ import annotations

from hotline.levels import Level
from service.context import AppContext
from storage.audit import list_audit
from tests.conftest import Client, bearer
from tests.helpers.callbacks import NUMBER, add_call, rate_call
from tests.helpers.openapi import assert_valid_openapi


async def test_rule5_case_created_then_closed_with_a_bad_rating_gets_a_callback(
    client: Client, ctx: AppContext,
) -> None:
    auth = await bearer(ctx)
    await add_call(ctx, "API-L1")
    await rate_call(ctx, "API-L1", Level.VERY_DISSATISFIED)
    body = {"case_number": "GD-API-1", "department_code": "D1", "department_name": "交通局",
            "citizen_number": "138 0013 8000", "call_linkedid": "API-L1"}
    resp = await client.post("/api/v1/cases", json=body, headers=auth)
    assert resp.status == 201
    created = await resp.json()
    assert created["citizen_masked"] == "138****8000"
    assert NUMBER not in await resp.text()  # rule 8
    again = await client.post("/api/v1/cases", json=body, headers=auth)
    assert again.status == 200  # a retried event
    clash = await client.post("/api/v1/cases", headers=auth,
                              json={**body, "citizen_number": "13900139000"})
    assert clash.status == 409
    resp = await client.post("/api/v1/cases/GD-API-1/close", headers=auth,
                             json={"rectification_result": "已协调解决"})
    assert resp.status == 200
    closed = await resp.json()
    assert closed["case"]["status"] == "closed" and closed["case"]["has_bad_rating"]
    task = closed["case"]["callback_task"]
    assert task["status"] in ("pending", "unreachable") and task["number_masked"] == "138****8000"
    assert closed["case"]["callback_due"] is not None
    resp = await client.get("/api/v1/cases/GD-API-1", headers=auth)
    assert (await resp.json())["callback_task"]["id"] == task["id"]
    resp = await client.post("/api/v1/cases/GD-API-1/close", headers=auth, json={})
    assert (await resp.json())["already_closed"] is True


async def test_case_api_errors_and_roles(client: Client, ctx: AppContext) -> None:
    auth = await bearer(ctx)
    resp = await client.post("/api/v1/cases", headers=auth,
                             json={"case_number": "X", "citizen_number": "12"})
    assert resp.status == 422 and "12" not in (await resp.json())["error"]["message"]
    resp = await client.post("/api/v1/cases", headers=auth,
                             json={"case_number": "X", "call_linkedid": "nope"})
    assert resp.status == 422
    resp = await client.post("/api/v1/cases/none/close", headers=auth, json={})
    assert resp.status == 404
    resp = await client.post("/api/v1/cases/none/close", headers=auth,
                             json={"closed_at": "2025-09-30T10:00:00"})
    assert resp.status == 422  # a time without a zone is ambiguous
    agent = await bearer(ctx, "agent")
    resp = await client.post("/api/v1/cases", headers=agent, json={"case_number": "Y"})
    assert resp.status == 403


async def test_openapi_documents_the_case_and_campaign_routes(client: Client) -> None:
    doc = await (await client.get("/api/v1/openapi.json")).json()
    assert_valid_openapi(doc)
    assert {"/api/v1/cases", "/api/v1/cases/{case_number}/close", "/api/v1/campaigns",
            "/api/v1/campaigns/{campaign_id}/import", "/api/v1/callbacks/manual"} <= set(
        doc["paths"])


async def test_case_create_and_close_are_audited_once(client: Client, ctx: AppContext) -> None:
    """DEVELOPERS.md: every state change is audited; a retried event or a second close changes
    nothing and adds no row. Rule 8: the citizen's number is not in the audit."""
    auth = await bearer(ctx, "workorder")
    body = {"case_number": "GD-AUD-1", "department_code": "D1", "citizen_number": NUMBER}
    for _ in range(2):
        assert (await client.post("/api/v1/cases", json=body, headers=auth)).status in (200, 201)
    for _ in range(2):
        resp = await client.post("/api/v1/cases/GD-AUD-1/close", json={}, headers=auth)
        assert resp.status == 200
    async with ctx.db.sessions() as s:
        rows = await list_audit(s, subject_type="case")
    assert [(r.actor, r.role, r.action, r.subject_id) for r in rows] == [
        ("workorder-x", "workorder", "case.create", "GD-AUD-1"),
        ("workorder-x", "workorder", "case.close", "GD-AUD-1")]
    assert rows[1].details["bad_rating"] is False
    assert NUMBER not in str([r.details for r in rows])
