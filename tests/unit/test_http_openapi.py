"""OpenAPI generation from decorated routes, each document checked by ``assert_valid_openapi``
(tests/helpers/openapi.py, which also checks the real application's document)."""

from __future__ import annotations

from typing import Any, Literal

import pytest
from aiohttp import web
from pydantic import BaseModel, Field

from http_api.auth import public, requires
from http_api.openapi import Response, build_document, operation
from tests.helpers.openapi import assert_valid_openapi

# ------------------------------------------------------------------ a small documented app


class NewToken(BaseModel):
    """A token to create."""

    name: str = Field(min_length=1, description="who uses it")
    role: Literal["agent", "admin"]


class TokenOut(BaseModel):
    """The token as stored (never its secret)."""

    id: int
    name: str


class Listing(BaseModel):
    limit: int = Field(default=20, ge=1, description="page size")
    q: str | None = None


class ById(BaseModel):
    id: int


@requires("admin")
@operation(summary="Create a token", tags=["tokens"], request_body=NewToken,
           responses={201: TokenOut})
async def create(request: web.Request) -> web.Response:
    return web.Response()


@requires("supervisor", "reviewer")
@operation(summary="List tokens", query=Listing,
           responses={200: Response("All tokens", list[TokenOut])})
async def listing(request: web.Request) -> web.Response:
    return web.Response()


@requires("agent")
@operation(summary="One token", path=ById, responses={200: TokenOut, 404: "No such token"})
async def one(request: web.Request) -> web.Response:
    return web.Response()


@public
async def undocumented(request: web.Request) -> web.Response:
    """Says hello.

    More text that is not the summary."""
    return web.Response()


def _app() -> web.Application:
    app = web.Application()
    app.router.add_post("/api/v1/tokens", create)
    app.router.add_get("/api/v1/tokens", listing)
    app.router.add_get("/api/v1/tokens/{id}", one)
    app.router.add_get("/hello/{who:[a-z]+}", undocumented)
    return app


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return build_document(_app())


def test_document_is_structurally_valid(doc: dict[str, Any]) -> None:
    assert_valid_openapi(doc)


def test_paths_and_methods_follow_the_router(doc: dict[str, Any]) -> None:
    assert set(doc["paths"]) == {"/api/v1/tokens", "/api/v1/tokens/{id}", "/hello/{who}"}
    assert set(doc["paths"]["/api/v1/tokens"]) == {"get", "post"}
    # aiohttp adds a HEAD twin for every GET; it is not an operation of its own.
    assert "head" not in doc["paths"]["/api/v1/tokens/{id}"]


def test_request_body_and_responses_reference_components(doc: dict[str, Any]) -> None:
    post = doc["paths"]["/api/v1/tokens"]["post"]
    body_schema = post["requestBody"]["content"]["application/json"]["schema"]
    assert body_schema == {"$ref": "#/components/schemas/NewToken"}
    assert doc["components"]["schemas"]["NewToken"]["required"] == ["name", "role"]
    created = post["responses"]["201"]
    assert created["description"] == "The token as stored (never its secret)."
    assert created["content"]["application/json"]["schema"]["$ref"].endswith("/TokenOut")
    listed = doc["paths"]["/api/v1/tokens"]["get"]["responses"]["200"]
    schema = listed["content"]["application/json"]["schema"]
    assert schema["type"] == "array" and schema["items"]["$ref"].endswith("/TokenOut")


def test_errors_are_documented_where_they_can_happen(doc: dict[str, Any]) -> None:
    post = doc["paths"]["/api/v1/tokens"]["post"]
    assert {"400", "401", "403", "422"} <= set(post["responses"])
    err = post["responses"]["401"]["content"]["application/json"]["schema"]
    assert err == {"$ref": "#/components/schemas/ErrorBody"}
    public_op = doc["paths"]["/hello/{who}"]["get"]
    assert "401" not in public_op["responses"] and "422" not in public_op["responses"]


def test_security_and_roles(doc: dict[str, Any]) -> None:
    get = doc["paths"]["/api/v1/tokens"]["get"]
    assert get["security"] == [{"bearer": []}]
    assert get["x-roles"] == ["reviewer", "supervisor"]
    assert "Roles: reviewer, supervisor (and admin)" in get["description"]
    assert doc["paths"]["/hello/{who}"]["get"]["security"] == []
    assert doc["security"] == [{"bearer": []}]


def test_parameters_from_models_and_placeholders(doc: dict[str, Any]) -> None:
    params = {p["name"]: p for p in doc["paths"]["/api/v1/tokens"]["get"]["parameters"]}
    assert params["limit"]["in"] == "query" and params["limit"]["required"] is False
    assert params["limit"]["schema"]["minimum"] == 1
    assert params["limit"]["description"] == "page size"
    (by_id,) = doc["paths"]["/api/v1/tokens/{id}"]["get"]["parameters"]
    assert by_id == {**by_id, "in": "path", "required": True}
    assert by_id["schema"]["type"] == "integer"
    (who,) = doc["paths"]["/hello/{who}"]["get"]["parameters"]
    assert who["schema"] == {"type": "string"}


def test_undocumented_route_gets_docstring_summary(doc: dict[str, Any]) -> None:
    op = doc["paths"]["/hello/{who}"]["get"]
    assert op["summary"] == "Says hello."
    assert op["operationId"] == "undocumented"


def test_duplicate_operation_ids_are_refused() -> None:
    app = _app()
    app.router.add_put("/api/v1/tokens/{id}", one)  # same handler name, second route
    with pytest.raises(ValueError, match="operationId 'one'"):
        build_document(app)
