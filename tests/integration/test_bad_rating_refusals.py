"""The failure paths of the 差评 loop's HTTP steps (issue 10 "Every route checks role and
scope"; DOMAIN.md "The 差评 loop": 延期 asked by the 责任单位 and decided by a supervisor, 退回 and
督办 by supervisors), on SQLite and PostgreSQL: a step in the wrong state answers 409 with the
machine's code, a wrong role 403, another department's item 404 (never its data), a missing
field 422. Each status comes from one row of ``http_api.errors.DOMAIN_ERRORS``."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from http_api.errors import DOMAIN_ERRORS
from service.context import AppContext
from tests.conftest import Client, bearer
from tests.helpers.bad_ratings import BASE, bad_call, post

LATER = (dt.date.today() + dt.timedelta(days=400)).isoformat()



async def refused(client: Client, path: str, auth: dict[str, str], body: dict[str, Any],
                  status: int, code: str) -> str:
    resp = await client.post(path, json=body, headers=auth)
    data = await resp.json()
    assert (resp.status, data["error"]["code"]) == (status, code), data
    return str(data)


@pytest.fixture
async def actors(ctx: AppContext) -> dict[str, dict[str, str]]:
    return {
        "d1": await bearer(ctx, "department", departments=("D1",)),
        "d2": await bearer(ctx, "department", departments=("D2",)),
        "sup": await bearer(ctx, "supervisor"),
        "rev": await bearer(ctx, "reviewer"),
        "agent": await bearer(ctx, "agent", agent_id="A007"),
    }


async def test_request_extension_refusals(
    client: Client, ctx: AppContext, actors: dict[str, dict[str, str]],
) -> None:
    item = await bad_call(ctx, "RX-1")
    url = f"{BASE}/{item}/extension"
    body = {"due": LATER, "reason": "需协调多部门"}
    # another department's item: 404, and nothing of it in the answer
    text = await refused(client, url, actors["d2"], body, 404, "not_found")
    assert "D1" not in text and "A007" not in text
    for role in ("sup", "rev", "agent"):  # only the 责任单位 asks for more time
        await refused(client, url, actors[role], body, 403, "forbidden")
    await refused(client, url, actors["d1"], {"due": "2000-01-01", "reason": "x"}, 422,
                  "due_not_later")
    await post(client, url, actors["d1"], body)
    await refused(client, url, actors["d1"], body, 409, "extension_pending")
    # 误评 goes to 复核: no deadline of the department's runs there
    other = await bad_call(ctx, "RX-2")
    await post(client, f"{BASE}/{other}/verify", actors["d1"],
               {"finding": "mistaken", "explanation": "来电人按错键"})
    await refused(client, f"{BASE}/{other}/extension", actors["d1"], body, 409, "wrong_state")


async def test_decide_extension_refusals(
    client: Client, ctx: AppContext, actors: dict[str, dict[str, str]],
) -> None:
    item = await bad_call(ctx, "DX-1")
    url = f"{BASE}/{item}/extension/decision"
    await refused(client, url, actors["sup"], {"approve": True}, 409, "no_extension_request")
    await post(client, f"{BASE}/{item}/extension", actors["d1"],
               {"due": LATER, "reason": "需协调多部门"})
    for role in ("d1", "d2", "rev", "agent"):  # a department never approves its own delay
        await refused(client, url, actors[role], {"approve": True}, 403, "forbidden")
    await refused(client, url, actors["sup"], {"approve": False}, 422, "reason_required")
    await refused(client, f"{BASE}/999999/extension/decision", actors["sup"],
                  {"approve": True}, 404, "not_found")
    out = await post(client, url, actors["sup"], {"approve": False, "reason": "理由不充分"})
    assert out["extension_status"] == "refused" and out["verify_due"] != LATER
    await refused(client, url, actors["sup"], {"approve": True}, 409, "no_extension_request")


async def test_supervise_refusals(
    client: Client, ctx: AppContext, actors: dict[str, dict[str, str]],
) -> None:
    item = await bad_call(ctx, "SV-1")
    url = f"{BASE}/{item}/supervise"
    for role in ("d1", "d2", "rev", "agent"):
        await refused(client, url, actors[role], {"note": "请加快"}, 403, "forbidden")
    await refused(client, f"{BASE}/999999/supervise", actors["sup"], {}, 404, "not_found")
    # an item 复核 found invalid is finished: nothing left to escalate
    await post(client, f"{BASE}/{item}/verify", actors["d1"],
               {"finding": "malicious", "explanation": "来电人辱骂"})
    await post(client, f"{BASE}/{item}/review", actors["rev"],
               {"decision": "invalid", "finding": "malicious", "reason": "录音证实"})
    await refused(client, url, actors["sup"], {"note": "请加快"}, 409, "wrong_state")


async def test_return_refusals(
    client: Client, ctx: AppContext, actors: dict[str, dict[str, str]],
) -> None:
    item = await bad_call(ctx, "RT-1")
    url = f"{BASE}/{item}/return"
    # nothing replied yet: nothing to return
    await refused(client, url, actors["sup"], {"reason": "整改不具体"}, 409, "wrong_state")
    await post(client, f"{BASE}/{item}/verify", actors["d1"],
               {"finding": "genuine", "explanation": "属实"})
    await refused(client, url, actors["sup"], {"reason": "整改不具体"}, 409, "wrong_state")
    await post(client, f"{BASE}/{item}/rectify", actors["d1"],
               {"reply": "已整改", "citizen_result": "已为您重新办理"})
    for role in ("d1", "d2", "rev", "agent"):  # a department cannot return its own reply
        await refused(client, url, actors[role], {"reason": "x"}, 403, "forbidden")
    await refused(client, f"{BASE}/999999/return", actors["sup"], {"reason": "x"}, 404,
                  "not_found")
    out = await post(client, url, actors["sup"], {"reason": "整改不具体"})
    assert out["state"] == "rectifying"


async def test_case_updates_refusals(
    client: Client, ctx: AppContext, actors: dict[str, dict[str, str]],
) -> None:
    """updateCase / reopenCase: a missing case 404, a case not closed 409 (DOMAIN_ERRORS)."""
    wo = await bearer(ctx, "workorder")
    resp = await client.patch("/api/v1/cases/NOPE", headers=wo, json={"department_code": "D2"})
    assert (resp.status, (await resp.json())["error"]["code"]) == (404, "not_found")
    await refused(client, "/api/v1/cases/NOPE/reopen", wo, {"reason": "x"}, 404, "not_found")
    await refused(client, "/api/v1/cases/NOPE/reopen", actors["d1"], {"reason": "x"}, 403,
                  "forbidden")


def test_the_refusals_have_their_rows_subclass_first() -> None:
    """The first matching row wins: Forbidden and Conflict must come before their base."""
    from bad_ratings.machine import Conflict, Forbidden, Refused

    classes = [cls for cls, _, _ in DOMAIN_ERRORS]
    assert classes.index(Forbidden) < classes.index(Refused)
    assert classes.index(Conflict) < classes.index(Refused)
