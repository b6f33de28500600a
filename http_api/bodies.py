"""Reading requests into pydantic models and writing JSON responses.

A body that is not JSON is a 400; JSON that does not fit the model is a 422 whose message names
the first bad field (``items.0.qty``) and whose ``details`` list every problem. Submitted
values are never echoed back: they may hold a caller's phone number (DOMAIN.md rule 8).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, Field, ValidationError

from http_api.errors import ApiError, dumps

M = TypeVar("M", bound=BaseModel)

# Integers a client sends must fit the column they end up in: beyond it the database raises
# (asyncpg: "value out of int32 range") and the client got a 500 (issue 8 defect 13). Every
# integer field of a body, query or path model uses one of these, so the bound is stated once
# and answered with a 422.
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
#: a row id (BigInteger primary keys)
RowId = Annotated[int, Field(ge=1, le=INT64_MAX)]
#: an ``Integer`` column (priority ...)
Int32 = Annotated[int, Field(ge=-INT32_MAX - 1, le=INT32_MAX)]


def _field(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(body)"


def validation_error(exc: ValidationError, where: str = "body") -> ApiError:
    problems = [
        {"field": _field(err["loc"]), "message": err["msg"], "type": err["type"]}
        for err in exc.errors(include_url=False, include_input=False)
    ]
    first = problems[0]
    message = f"{where} field {first['field']!r}: {first['message']}"
    if len(problems) > 1:
        message += f" (and {len(problems) - 1} more)"
    return ApiError(422, "validation_failed", message, details=problems)


def _is_json(content_type: str) -> bool:
    return content_type == "application/json" or content_type.endswith("+json")


async def read_json(request: web.Request, model: type[M]) -> M:
    """The request body as ``model``; 415 unless JSON, 400 if empty or malformed, 422 if it
    does not validate."""
    raw = await request.read()  # over client_max_size: aiohttp raises 413, made JSON upstream
    if not raw.strip():
        raise ApiError(400, "body_required", "a JSON request body is required")
    # No Content-Type at all is accepted (aiohttp would report application/octet-stream).
    if "Content-Type" in request.headers and not _is_json(request.content_type):
        raise ApiError(415, "unsupported_media_type",
                       f"send the body as application/json, not {request.content_type}")
    try:
        data: Any = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(400, "invalid_json", f"request body is not valid JSON: {exc}") from exc
    _refuse_nul(data, "body")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc, "body") from exc


def _refuse_nul(data: Any, where: str) -> None:
    """PostgreSQL text cannot hold U+0000 (and no field of ours means it): refuse it as a
    validation error rather than let the database answer 500."""
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise ApiError(422, "validation_failed", f"{where}: text may not contain NUL")
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def read_query(request: web.Request, model: type[M]) -> M:
    """The query string as ``model``. A parameter given more than once arrives as a list."""
    data: dict[str, Any] = {}
    for key in request.query:
        values = request.query.getall(key)
        data[key] = values if len(values) > 1 else values[0]
    _refuse_nul(data, "query")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc, "query") from exc


def read_path(request: web.Request, model: type[M]) -> M:
    """The URL placeholders (``/tokens/{id}``) as ``model``, e.g. to get ints."""
    _refuse_nul(dict(request.match_info), "path")
    try:
        return model.model_validate(dict(request.match_info))
    except ValidationError as exc:
        raise validation_error(exc, "path") from exc


def respond(data: BaseModel | list[Any] | dict[str, Any], status: int = 200) -> web.Response:
    """A JSON response; pydantic models (also inside lists) are dumped in JSON mode."""
    if isinstance(data, BaseModel):
        payload: Any = data.model_dump(mode="json")
    elif isinstance(data, list):
        payload = [d.model_dump(mode="json") if isinstance(d, BaseModel) else d for d in data]
    else:
        payload = data
    return web.json_response(payload, status=status, dumps=dumps)
