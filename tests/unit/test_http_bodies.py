"""JSON errors from the error middleware and request validation with pydantic models."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import BaseModel, Field

from http_api.bodies import read_json, read_path, read_query, respond
from http_api.errors import ApiError, error_middleware


class Item(BaseModel):
    sku: str
    qty: int = Field(ge=1)


class Order(BaseModel):
    name: str
    items: list[Item]


class Page(BaseModel):
    limit: int = Field(default=20, ge=1, le=100)
    role: list[str] = []


class TokenPath(BaseModel):
    id: int


async def echo(request: web.Request) -> web.Response:
    return respond(await read_json(request, Order))


async def page(request: web.Request) -> web.Response:
    return respond(read_query(request, Page))


async def by_id(request: web.Request) -> web.Response:
    return respond(read_path(request, TokenPath))


async def boom(request: web.Request) -> web.Response:
    raise RuntimeError("SELECT secret FROM callers WHERE phone='13800138000'")


async def teapot(request: web.Request) -> web.Response:
    raise ApiError(409, "duplicate", "already rated", details={"id": 7})


@pytest.fixture
async def client() -> AsyncIterator[TestClient[web.Request, web.Application]]:
    app = web.Application(middlewares=[error_middleware], client_max_size=1024)
    app.router.add_post("/echo", echo)
    app.router.add_get("/page", page)
    app.router.add_get("/things/{id}", by_id)
    app.router.add_get("/boom", boom)
    app.router.add_get("/conflict", teapot)
    async with TestClient(TestServer(app, host="127.0.0.1")) as c:
        yield c


async def test_valid_body_round_trips(client: TestClient[web.Request, web.Application]) -> None:
    order = {"name": "张三", "items": [{"sku": "a", "qty": 2}]}
    resp = await client.post("/echo", json=order)
    assert resp.status == 200
    assert await resp.json() == order


async def test_missing_field_is_422_naming_it(
    client: TestClient[web.Request, web.Application],
) -> None:
    resp = await client.post("/echo", json={"items": []})
    assert resp.status == 422
    error = (await resp.json())["error"]
    assert error["code"] == "validation_failed"
    assert "'name'" in error["message"]
    assert error["details"][0]["field"] == "name"


async def test_nested_field_path_and_no_echo_of_input(
    client: TestClient[web.Request, web.Application],
) -> None:
    items = [{"sku": "a", "qty": 1}, {"sku": "13800138000", "qty": 0}]
    resp = await client.post("/echo", json={"name": "x", "items": items})
    assert resp.status == 422
    text = await resp.text()
    error = (await resp.json())["error"]
    assert "items.1.qty" in error["message"]
    assert "13800138000" not in text  # submitted values are never echoed


async def test_several_problems_are_all_listed(
    client: TestClient[web.Request, web.Application],
) -> None:
    resp = await client.post("/echo", json={"name": 5, "items": "no"})
    error = (await resp.json())["error"]
    assert {d["field"] for d in error["details"]} == {"name", "items"}
    assert "(and 1 more)" in error["message"]


async def test_not_json_is_400(client: TestClient[web.Request, web.Application]) -> None:
    resp = await client.post(
        "/echo", data=b"{name: ", headers={"Content-Type": "application/json"}
    )
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "invalid_json"


async def test_empty_body_is_400(client: TestClient[web.Request, web.Application]) -> None:
    resp = await client.post("/echo")
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "body_required"


async def test_wrong_content_type_is_415(
    client: TestClient[web.Request, web.Application],
) -> None:
    resp = await client.post("/echo", data={"name": "x"})  # form-encoded
    assert resp.status == 415
    assert "application/json" in (await resp.json())["error"]["message"]


async def test_top_level_not_an_object(client: TestClient[web.Request, web.Application]) -> None:
    resp = await client.post("/echo", json=[1, 2])
    assert resp.status == 422
    assert (await resp.json())["error"]["details"][0]["field"] == "(body)"


async def test_oversized_body_is_json_413(
    client: TestClient[web.Request, web.Application],
) -> None:
    resp = await client.post("/echo", json={"name": "x" * 5000, "items": []})
    assert resp.status == 413
    assert (await resp.json())["error"]["code"] == "payload_too_large"


async def test_query_and_path_validation(
    client: TestClient[web.Request, web.Application],
) -> None:
    resp = await client.get("/page", params=[("limit", "5"), ("role", "a"), ("role", "b")])
    assert await resp.json() == {"limit": 5, "role": ["a", "b"]}
    resp = await client.get("/page", params={"limit": "500"})
    assert resp.status == 422
    assert "query field 'limit'" in (await resp.json())["error"]["message"]
    resp = await client.get("/things/42")
    assert await resp.json() == {"id": 42}
    resp = await client.get("/things/abc")
    assert resp.status == 422
    assert "path field 'id'" in (await resp.json())["error"]["message"]


async def test_404_and_405_are_json(client: TestClient[web.Request, web.Application]) -> None:
    resp = await client.get("/nope")
    assert resp.status == 404
    assert resp.content_type == "application/json"
    assert (await resp.json())["error"] == {"code": "not_found", "message": "no resource at /nope"}
    resp = await client.delete("/echo")
    assert resp.status == 405
    assert "POST" in resp.headers["Allow"]
    assert (await resp.json())["error"]["code"] == "method_not_allowed"


async def test_unexpected_exception_is_500_without_internals(
    client: TestClient[web.Request, web.Application],
) -> None:
    resp = await client.get("/boom")
    assert resp.status == 500
    text = await resp.text()
    assert "SELECT" not in text and "13800138000" not in text
    assert (await resp.json())["error"]["code"] == "internal_error"


async def test_api_error_keeps_status_code_and_details(
    client: TestClient[web.Request, web.Application],
) -> None:
    resp = await client.get("/conflict")
    assert resp.status == 409
    assert await resp.json() == {
        "error": {"code": "duplicate", "message": "already rated", "details": {"id": 7}}
    }
