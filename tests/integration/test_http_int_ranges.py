"""Integers beyond their column answer 422, never 500 (issue 8 defect 13: schemathesis found
6 routes answering 500 to an integer beyond int32/int64), on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from service.context import AppContext
from tests.conftest import Client, bearer

BIG64 = 2**63  # one past BigInteger
BIG32 = 2**31  # one past Integer


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", f"/api/v1/campaigns/{BIG64}", None),
        ("POST", f"/api/v1/campaigns/{BIG64}/start", None),
        ("GET", f"/api/v1/callbacks/manual?campaign_id={BIG64}", None),
        ("POST", f"/api/v1/callbacks/tasks/{BIG64}/manual-result", {"reached": False}),
        ("GET", f"/api/v1/callbacks/tasks/{BIG64}/number", None),
        ("POST", f"/api/v1/campaigns/{BIG64}/tasks", {"not_rated": True}),
        ("POST", "/api/v1/campaigns", {"name": "x", "kind": "rating_invite", "priority": BIG32}),
        ("POST", "/api/v1/campaigns", {"name": "x", "kind": "rating_invite",
                                       "rules": {"retry_minutes": {"busy": 10**12}}}),
        ("POST", "/api/v1/campaigns", {"name": "x", "kind": "rating_invite",
                                       "rules": {"deadline_working_days": 10**9}}),
    ],
)
async def test_integer_beyond_its_column_is_a_422(
    client: Client, ctx: AppContext, method: str, path: str, body: object,
) -> None:
    auth = await bearer(ctx)
    resp = await client.request(method, path, headers=auth, json=body)
    assert resp.status == 422, (resp.status, await resp.text())


async def test_feed_cursor_beyond_int64_is_a_422(client: Client, ctx: AppContext) -> None:
    auth = await bearer(ctx, "aggregator")
    resp = await client.get(f"/api/v1/ratings?after={BIG64}", headers=auth)
    assert resp.status == 422, await resp.text()
    fits = await client.get(f"/api/v1/ratings?after={BIG64 - 1}", headers=auth)
    assert fits.status in (200, 503)


async def test_row_id_within_int64_is_simply_not_found(client: Client, ctx: AppContext) -> None:
    auth = await bearer(ctx)
    resp = await client.get(f"/api/v1/campaigns/{BIG64 - 1}", headers=auth)
    assert resp.status == 404
