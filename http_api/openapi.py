"""The OpenAPI 3.1 document, generated from the routes themselves.

Each handler carries its own documentation through ``@operation(...)``; its access rule comes
from ``@requires``/``@public`` (http_api.auth). The document is built once when the app starts,
from whatever routes the feature modules registered, so there is one place per route to keep
its docs and they cannot drift from the routing table. Schemas come from the same pydantic
models that ``http_api.bodies`` validates with.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import JsonSchemaMode

from http_api.auth import Access, access_of
from http_api.tokens import ADMIN

F = TypeVar("F", bound=Callable[..., Any])

OPENAPI_VERSION = "3.1.0"
TITLE = "12345 hotline 好差评 rating service API"
COMPONENTS = "#/components/schemas/{model}"
SECURITY_SCHEME = "bearer"
_ATTR = "__hotline_operation__"
_PATH_PARAM = re.compile(r"\{([^}:]+)(?::[^}]*)?\}")


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: Any = None


class ErrorBody(BaseModel):
    """Every error response has this shape."""

    error: ErrorDetail


@dataclass(frozen=True)
class Response:
    """One documented response: a description and, optionally, the type of its JSON body."""

    description: str
    body: Any = None  # a pydantic model, or any type pydantic can describe (list[Model] ...)


#: What ``responses=`` accepts per status: a Response, a description, or a body type.
ResponseSpec = Response | str | type[BaseModel] | Any


@dataclass(frozen=True)
class Operation:
    summary: str
    description: str | None = None
    tags: tuple[str, ...] = ()
    request_body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    path: type[BaseModel] | None = None
    responses: Mapping[int, ResponseSpec] = field(default_factory=dict)
    operation_id: str | None = None
    deprecated: bool = False


def operation(
    *,
    summary: str,
    description: str | None = None,
    tags: tuple[str, ...] | list[str] = (),
    request_body: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    path: type[BaseModel] | None = None,
    responses: Mapping[int, ResponseSpec] | None = None,
    operation_id: str | None = None,
    deprecated: bool = False,
) -> Callable[[F], F]:
    """Document a handler. ``request_body``/``query``/``path`` should be the models the handler
    passes to ``read_json``/``read_query``/``read_path``; ``responses`` maps a status to a
    Response, a description or a body type (default ``{200: "OK"}``). 400/401/403/422/503
    error responses are added automatically where they apply."""
    op = Operation(
        summary=summary,
        description=description,
        tags=tuple(tags),
        request_body=request_body,
        query=query,
        path=path,
        responses=dict(responses or {200: "OK"}),
        operation_id=operation_id,
        deprecated=deprecated,
    )

    def mark(handler: F) -> F:
        setattr(handler, _ATTR, op)
        return handler

    return mark


def operation_of(handler: Any) -> Operation | None:
    return getattr(handler, _ATTR, None)


def _version() -> str:
    try:
        return metadata.version("hotline-rating")
    except metadata.PackageNotFoundError:  # running from a source tree without install
        return "0.0.0"


def _as_response(spec: ResponseSpec) -> Response:
    if isinstance(spec, Response):
        return spec
    if isinstance(spec, str):
        return Response(spec)
    doc = getattr(spec, "__doc__", None) if isinstance(spec, type) else None
    return Response((doc or "").strip().split("\n")[0] or "OK", spec)


_Key = tuple[str, int]  # (mode, id(type)): one entry per type and mode


class _Schemas:
    """Collects every type used, then renders them in one pass so shared models land once
    in ``components.schemas`` and name clashes are resolved by pydantic."""

    def __init__(self) -> None:
        self._inputs: dict[_Key, tuple[JsonSchemaMode, TypeAdapter[Any]]] = {}
        self._rendered: dict[tuple[_Key, JsonSchemaMode], Any] = {}
        self.definitions: dict[str, Any] = {}

    def want(self, tp: Any, mode: JsonSchemaMode) -> _Key:
        key = (mode, id(tp))
        self._inputs.setdefault(key, (mode, TypeAdapter(tp)))
        return key

    def render(self) -> None:
        mapping, defs = TypeAdapter.json_schemas(
            [(key, mode, adapter) for key, (mode, adapter) in self._inputs.items()],
            ref_template=COMPONENTS,
        )
        self._rendered = dict(mapping)
        self.definitions = defs.get("$defs", {})

    def get(self, key: _Key) -> Any:
        mode, _ = self._inputs[key]
        return self._rendered[(key, mode)]

    def properties(self, key: _Key) -> tuple[dict[str, Any], set[str]]:
        """The fields of an object model (for query and path parameters)."""
        schema = self.get(key)
        if "$ref" in schema:
            schema = self.definitions[schema["$ref"].rsplit("/", 1)[-1]]
        return dict(schema.get("properties", {})), set(schema.get("required", []))


def _error(description: str) -> Response:
    return Response(description, ErrorBody)


def _all_responses(op: Operation, protected: bool) -> dict[int, Response]:
    specs = op.responses or {200: "OK"}
    responses = {status: _as_response(spec) for status, spec in specs.items()}
    if op.request_body is not None:
        responses.setdefault(400, _error("The body is missing or not JSON"))
    if op.request_body or op.query or op.path:
        responses.setdefault(422, _error("A field is invalid; the message names it"))
    if protected:
        responses.setdefault(401, _error("No, unknown or revoked bearer token"))
        responses.setdefault(403, _error("The token's role may not do this"))
        responses.setdefault(503, _error("The database is unavailable"))
    return responses


def _parameters(
    schemas: _Schemas, where: str, key: _Key | None, names: list[str]
) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = []
    props, required = schemas.properties(key) if key else ({}, set())
    for name in names:  # path placeholders without a model: plain strings
        if name not in props:
            params.append({"name": name, "in": where, "required": True,
                           "schema": {"type": "string"}})
    for name, schema in props.items():
        entry: dict[str, Any] = {"name": name, "in": where,
                                 "required": where == "path" or name in required,
                                 "schema": schema}
        if "description" in schema:
            entry["description"] = schema["description"]
        params.append(entry)
    return params


def _collect(app: web.Application) -> list[tuple[str, str, Any]]:
    """(path, method, handler) for every documented-able route; HEAD twins of GET and
    catch-all ``*`` methods are left out (OpenAPI cannot express the latter)."""
    found = []
    for route in app.router.routes():
        if route.resource is None or route.method in ("HEAD", "*"):
            continue
        found.append((route.resource.canonical, route.method.lower(), route.handler))
    return found


@dataclass
class _Planned:
    """One route on its way into the document: what to render once the schemas exist."""

    path: str
    method: str
    handler: Any
    op: Operation
    access: Access | None
    responses: dict[int, Response]
    body: _Key | None
    query: _Key | None
    path_model: _Key | None
    bodies: dict[int, _Key]

    @property
    def protected(self) -> bool:
        return self.access is None or not self.access.public


def _plan(schemas: _Schemas, path: str, method: str, handler: Any) -> _Planned:
    op = operation_of(handler) or Operation(
        summary=(handler.__doc__ or handler.__name__).strip().split("\n")[0]
    )
    access = access_of(handler)
    responses = _all_responses(op, access is None or not access.public)
    return _Planned(
        path=path,
        method=method,
        handler=handler,
        op=op,
        access=access,
        responses=responses,
        body=schemas.want(op.request_body, "validation") if op.request_body else None,
        query=schemas.want(op.query, "validation") if op.query else None,
        path_model=schemas.want(op.path, "validation") if op.path else None,
        bodies={
            status: schemas.want(r.body, "serialization")
            for status, r in responses.items()
            if r.body is not None
        },
    )


def _render(schemas: _Schemas, plan: _Planned, op_id: str) -> dict[str, Any]:
    op = plan.op
    entry: dict[str, Any] = {"operationId": op_id, "summary": op.summary}
    description = op.description or ""
    if plan.protected:
        # No declaration (refused at startup anyway) is documented as the strictest rule.
        roles = sorted(plan.access.roles) if plan.access else [ADMIN]
        note = f"Roles: {', '.join(roles)}" + ("" if roles == [ADMIN] else " (and admin)")
        description = f"{description}\n\n{note}".strip()
        entry["security"] = [{SECURITY_SCHEME: []}]
        entry["x-roles"] = roles
    else:
        entry["security"] = []  # explicitly open, overriding the document default
    if description:
        entry["description"] = description
    if op.tags:
        entry["tags"] = list(op.tags)
    if op.deprecated:
        entry["deprecated"] = True
    params = _parameters(schemas, "path", plan.path_model, _PATH_PARAM.findall(plan.path))
    if plan.query:
        params += _parameters(schemas, "query", plan.query, [])
    if params:
        entry["parameters"] = params
    if plan.body:
        entry["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": schemas.get(plan.body)}},
        }
    entry["responses"] = {}
    for status, response in sorted(plan.responses.items()):
        rendered: dict[str, Any] = {"description": response.description}
        if status in plan.bodies:
            schema = schemas.get(plan.bodies[status])
            rendered["content"] = {"application/json": {"schema": schema}}
        entry["responses"][str(status)] = rendered
    return entry


def build_document(app: web.Application) -> dict[str, Any]:
    """The OpenAPI document for every route of ``app``."""
    schemas = _Schemas()
    # Two passes: every type must be known before rendering, so that shared models are
    # emitted once and pydantic can resolve clashing names across all of them.
    plans = [_plan(schemas, path, method, handler) for path, method, handler in _collect(app)]
    schemas.render()

    paths: dict[str, dict[str, Any]] = {}
    seen_ids: dict[str, str] = {}
    for plan in plans:
        op_id = plan.op.operation_id or plan.handler.__name__
        where = f"{plan.method.upper()} {plan.path}"
        if op_id in seen_ids:
            raise ValueError(
                f"operationId {op_id!r} used by {seen_ids[op_id]} and {where};"
                " pass operation_id= to tell them apart"
            )
        seen_ids[op_id] = where
        paths.setdefault(plan.path, {})[plan.method] = _render(schemas, plan, op_id)

    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": TITLE, "version": _version()},
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": schemas.definitions,
            "securitySchemes": {
                SECURITY_SCHEME: {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A token from `hotline token create`",
                }
            },
        },
        # Default for any operation that does not say otherwise: a token is needed.
        "security": [{SECURITY_SCHEME: []}],
    }
