"""Campaigns and the manual list through the HTTP API (SQLite and PostgreSQL): DOMAIN.md
rule 3 (电话邀评), rule 5 (manual follow-up counts toward 回访率), rule 8 (masked numbers)."""

from __future__ import annotations

from sqlalchemy import update

from callback_scheduler.lifecycle import TaskStatus
from service.context import AppContext
from storage.audit import audit_query
from storage.models import CallbackTask, SurveyStatus
from tests.conftest import Client, bearer
from tests.helpers.callbacks import NOW, NUMBER, add_call, closed_bad_case, settle_open_tasks


async def test_rule3_invite_campaign_created_filled_started_paused(
    client: Client, ctx: AppContext,
) -> None:
    auth = await bearer(ctx)
    await add_call(ctx, "INV-1", status=SurveyStatus.NOT_RATED)
    body = {"name": "九月邀评", "kind": "rating_invite",
            "rules": {"windows": ["09:00-11:30"], "max_attempts": 2},
            "filter": {"date_from": "2025-09-30", "date_to": "2025-09-30", "not_rated": True}}
    resp = await client.post("/api/v1/campaigns", json=body, headers=auth)
    assert resp.status == 201, await resp.text()
    created = await resp.json()
    assert created["status"] == "draft" and created["added"]["added"] == 1
    assert created["rules"]["windows"] == ["09:00-11:30"] and created["rules"]["max_attempts"] == 2
    cid = created["id"]
    for action, status in (("start", "running"), ("pause", "paused"), ("start", "running"),
                           ("cancel", "cancelled")):
        resp = await client.post(f"/api/v1/campaigns/{cid}/{action}", headers=auth)
        assert (resp.status, (await resp.json())["status"]) == (200, status)
    resp = await client.post(f"/api/v1/campaigns/{cid}/start", headers=auth)
    assert resp.status == 422
    resp = await client.post(f"/api/v1/campaigns/{cid}/explode", headers=auth)
    assert resp.status == 422
    listed = await (await client.get("/api/v1/campaigns", headers=auth)).json()
    assert [c["id"] for c in listed] == [cid]
    async with ctx.db.sessions() as s:  # each supervisor decision is audited; refusals are not
        rows = sorted(await s.scalars(audit_query(subject_type="campaign")), key=lambda r: r.id)
    assert [(r.action, r.subject_id, r.role) for r in rows] == [
        (f"campaign.{a}", str(cid), "supervisor")
        for a in ("create", "start", "pause", "start", "cancel")]
    assert rows[0].details["added"] == 1
    bad = await client.post("/api/v1/campaigns", headers=auth,
                            json={**body, "rules": {"windows": ["18:00-09:00"]}})
    assert bad.status == 422 and "windows" in (await bad.json())["error"]["message"]


async def test_csv_upload_rejects_bad_rows_with_line_numbers(
    client: Client, ctx: AppContext,
) -> None:
    auth = await bearer(ctx)
    await closed_bad_case(ctx, "GD-CSV-1")
    await settle_open_tasks(ctx)  # out of the standing campaign, so it may be imported
    created = await (await client.post("/api/v1/campaigns", headers=auth, json={
        "name": "导入", "kind": "case_followup"})).json()
    url = f"/api/v1/campaigns/{created['id']}/import"
    csv_headers = {**auth, "Content-Type": "text/csv"}
    resp = await client.post(url, headers=csv_headers,
                             data=b"case_number,number\nGD-CSV-1,\nGD-NOPE,\n1,2,3\n")
    assert resp.status == 422
    err = (await resp.json())["error"]
    assert err["details"] == [{"line": 4, "message": "expected 2 fields, found 3"}]
    resp = await client.post(url, headers=csv_headers,
                             data=b"case_number,number\nGD-CSV-1,\nGD-NOPE,\n")
    assert (await resp.json())["error"]["details"] == [
        {"line": 3, "message": "unknown case_number"}]
    summary = await (await client.get(f"/api/v1/campaigns/{created['id']}", headers=auth)).json()
    assert summary["total"] == 0
    resp = await client.post(url, headers=csv_headers, data=b"case_number\nGD-CSV-1\n")
    assert (resp.status, (await resp.json())["added"]) == (200, 1)
    async with ctx.db.sessions() as s:  # only the import that changed something is audited
        rows = list(await s.scalars(audit_query(action="campaign.import")))
    assert [r.details for r in rows] == [{"bytes": 21, "added": 1}]
    resp = await client.post(url, headers={**auth, "Content-Type": "application/json"},
                             data=b"{}")
    assert resp.status == 415


async def test_rule5_manual_list_reveal_and_manual_result(
    client: Client, ctx: AppContext,
) -> None:
    auth = await bearer(ctx)
    closed = await closed_bad_case(ctx, "GD-MAN-1")
    assert closed.task is not None
    async with ctx.db.transaction() as s:
        await s.execute(update(CallbackTask).where(CallbackTask.id == closed.task.id).values(
            status=TaskStatus.UNREACHABLE.value, outcome="max_attempts", updated_at=NOW))
    items = await (await client.get("/api/v1/callbacks/manual", headers=auth)).json()
    assert [(i["case_number"], i["number_masked"], i["why"]) for i in items] == [
        ("GD-MAN-1", "138****8000", "max_attempts")]
    assert NUMBER not in str(items)
    tid = items[0]["task_id"]
    # issue 10: a reveal needs a reason, and is audited with it (never with the number)
    resp = await client.get(f"/api/v1/callbacks/tasks/{tid}/number", headers=auth)
    assert resp.status == 422
    number = await (await client.get(f"/api/v1/callbacks/tasks/{tid}/number?reason=人工回访",
                                     headers=auth)).json()
    assert number == {"task_id": tid, "number": NUMBER}
    audit = await (await client.get("/api/v1/audit?action=number.reveal", headers=auth)).json()
    assert [(a["subject_id"], a["details"]["reason"]) for a in audit] == [(str(tid), "人工回访")]
    assert NUMBER not in str(audit)
    url = f"/api/v1/callbacks/tasks/{tid}/manual-result"
    resp = await client.post(url, headers=auth, json={"reached": False, "resolved": True})
    assert resp.status == 422
    resp = await client.post(url, headers=auth, json={
        "reached": True, "level": 4, "resolved": False, "reason_codes": ["3"],
        "note": "市民表示仍未解决"})
    assert resp.status == 200
    assert (await resp.json())["status"] == "manual_done"
    audit = await (await client.get("/api/v1/audit?action=callback.manual_result",
                                    headers=auth)).json()
    assert [(a["details"]["level"], a["details"]["resolved"]) for a in audit] == [(4, False)]
    resp = await client.post(url, headers=auth, json={"reached": True})
    assert resp.status == 409
    resp = await client.post("/api/v1/callbacks/tasks/999999/manual-result", headers=auth,
                             json={"reached": True})
    assert resp.status == 404
    assert await (await client.get("/api/v1/callbacks/manual", headers=auth)).json() == []
    case = await (await client.get("/api/v1/cases/GD-MAN-1", headers=auth)).json()
    assert case["needs_attention"] is True


async def test_campaign_operations_have_their_operation_ids(client: Client) -> None:
    """Clients generated from the OpenAPI document get these names (not handler names)."""
    spec = await (await client.get("/api/v1/openapi.json")).json()
    ops = {op["operationId"] for path in spec["paths"].values() for op in path.values()}
    assert {"createCampaign", "listCampaigns", "getCampaign", "changeCampaignStatus",
            "addCampaignTasks", "importCampaignList", "listManualFollowups",
            "recordManualResult", "revealNumber"} <= ops
