"""One JSON error shape for every failure: ``{"error": {"code": ..., "message": ...}}``.

Handlers raise :class:`ApiError`, or let a domain error through: :data:`DOMAIN_ERRORS` is the
one table that gives each domain error its status and code, so a handler is parse, call,
respond. The middleware here also turns aiohttp's own HTTP exceptions (404, 405, 413 ...) and
unexpected exceptions (500) into that shape, so a client never has to parse an HTML or
plain-text error page.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from functools import partial
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from bad_ratings import cases as case_updates
from bad_ratings import machine as bad_rating_machine
from bad_ratings import service as bad_ratings
from callback_scheduler import campaigns, cases, csvimport, tasks
from callback_scheduler.results import NothingToRate

log = logging.getLogger("hotline.http")

# ensure_ascii=False: messages and data may be Chinese, keep them readable on the wire.
dumps = partial(json.dumps, ensure_ascii=False)

#: Stable machine-readable codes for aiohttp's own HTTP exceptions.
_STATUS_CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    408: "request_timeout",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_failed",
    429: "too_many_requests",
    500: "internal_error",
    503: "unavailable",
}

#: Domain error → (status, code); the first row whose class matches wins, so a subclass goes
#: before its base. The message is the exception's text (written for the client). A code of
#: None: the exception carries its own stable code (``.code``, e.g. the 差评 machine's
#: "extension_pending"), the row gives only the status.
DOMAIN_ERRORS: list[tuple[type[Exception], int, str | None]] = [
    (csvimport.ImportRejected, 422, "import_rejected"),
    (campaigns.CampaignNotFound, 404, "not_found"),
    (tasks.TaskNotFound, 404, "not_found"),
    (cases.CaseNotFound, 404, "not_found"),
    (tasks.ManualError, 409, "conflict"),
    (cases.CaseConflict, 409, "conflict"),
    (cases.CaseError, 422, "validation_failed"),
    (campaigns.CampaignError, 422, "validation_failed"),
    (NothingToRate, 422, "validation_failed"),
    (bad_ratings.NotFound, 404, "not_found"),
    (case_updates.CaseNotFound, 404, "not_found"),
    (case_updates.CaseNotClosed, 409, "conflict"),
    (bad_rating_machine.Forbidden, 403, None),
    (bad_rating_machine.Conflict, 409, None),
    (bad_rating_machine.Refused, 422, None),
]


def _details(exc: Exception) -> Any:
    if isinstance(exc, csvimport.ImportRejected):  # every bad line, so the file can be fixed
        return [{"line": e.line, "message": e.message} for e in exc.errors]
    return None


def domain_error(exc: Exception) -> ApiError | None:
    """The client's view of a domain error, from :data:`DOMAIN_ERRORS`; None if not one."""
    for cls, status, code in DOMAIN_ERRORS:
        if isinstance(exc, cls):
            own = code if code is not None else str(getattr(exc, "code", status_code(status)))
            return ApiError(status, own, str(exc), details=_details(exc))
    return None


# Headers of an aiohttp HTTPException that carry meaning and must survive the conversion.
_KEPT_HEADERS = ("Allow", "WWW-Authenticate", "Retry-After")


class ApiError(Exception):
    """An error a handler wants the client to see, with a status and a stable code."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        details: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = dict(headers or {})


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return {"error": error}


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    details: Any = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    return web.json_response(
        error_body(code, message, details), status=status, headers=headers, dumps=dumps
    )


def status_code(status: int) -> str:
    return _STATUS_CODES.get(status, "error" if status < 500 else "server_error")


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(
            exc.status, exc.code, exc.message, details=exc.details, headers=exc.headers
        )
    except web.HTTPException as exc:
        if exc.status < 400:  # redirects and 2xx raised as exceptions are not errors
            raise
        headers = {k: exc.headers[k] for k in _KEPT_HEADERS if k in exc.headers}
        return error_response(
            exc.status, status_code(exc.status), _http_message(request, exc), headers=headers
        )
    except Exception as exc:
        mapped = domain_error(exc)
        if mapped is not None:
            return error_response(mapped.status, mapped.code, mapped.message,
                                  details=mapped.details)
        # Never echo the exception text: it may hold SQL, paths or personal data.
        log.exception("unhandled error", extra={"method": request.method, "path": request.path})
        return error_response(500, "internal_error", "internal server error")


def _http_message(request: web.Request, exc: web.HTTPException) -> str:
    # Name what was asked for: "Not Found" alone does not tell a client which URL was wrong.
    if exc.status == 404:
        return f"no resource at {request.path}"
    if exc.status == 405:
        allowed = exc.headers.get("Allow", "")
        return f"method {request.method} not allowed on {request.path}; allowed: {allowed}"
    return exc.reason
