"""The HTTP API: an aiohttp application assembled from feature modules.

A feature module is any module with ``setup(app, ctx)`` that adds routes; append its dotted
name to ``FEATURE_MODULES``. Each handler declares who may call it (``@requires(...)`` or
``@public`` from http_api.auth; a route without either stops the app from starting) and its
documentation (``@operation(...)`` from http_api.openapi, which feeds /api/v1/openapi.json)::

    class RatingIn(BaseModel):
        call_id: str
        level: int = Field(ge=1, le=5)

    @requires("agent", "supervisor")          # admin always passes too
    @operation(summary="Record a rating", tags=["ratings"], request_body=RatingIn,
               responses={201: RatingOut})
    async def create_rating(request: web.Request) -> web.Response:
        body = await read_json(request, RatingIn)   # 400/415/422 JSON errors for free
        who = principal(request)                     # token id, name, role
        ...
        return respond(RatingOut(...), status=201)

    def setup(app: web.Application, ctx: AppContext) -> None:
        app.router.add_post("/api/v1/ratings", create_rating)

Errors: raise ``http_api.errors.ApiError(status, code, message)``; anything else becomes a
JSON 500 without internals.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Callable, Iterable

from aiohttp import web

from hotline.context import AppContext
from http_api.auth import auth_middleware, check_routes
from http_api.errors import error_middleware
from http_api.keys import CTX

log = logging.getLogger("hotline.http")

Setup = Callable[[web.Application, AppContext], None]

#: Always present: /healthz, /readyz, /api/v1/openapi.json.
CORE_MODULES: tuple[str, ...] = ("http_api.system",)

#: Later features append "package.module" here; each module exposes ``setup(app, ctx)``.
FEATURE_MODULES: list[str] = [
    "http_api.feed", "http_api.cases", "http_api.campaigns", "http_api.calls",
    "http_api.bad_ratings", "http_api.case_updates",
    "console.routes", "console.ratings_api", "console.dashboard", "console.delivery",
    "console.static",
]

#: Request bodies above this are refused with 413 (aiohttp's default is 1 MiB too; explicit).
MAX_BODY_BYTES = 1024 * 1024

#: How long in-flight requests may finish after ``stopping`` is set.
SHUTDOWN_GRACE = 10.0


async def _check_routes(app: web.Application) -> None:
    check_routes(app)


def build_app(ctx: AppContext, extra: Iterable[Setup] = ()) -> web.Application:
    """The application with the core and feature routes, plus ``extra`` setup functions
    (tests use these to add routes that must not exist in production)."""
    # Order matters: errors outermost so 401/403 raised by auth also become JSON.
    app = web.Application(
        middlewares=[error_middleware, auth_middleware], client_max_size=MAX_BODY_BYTES
    )
    app[CTX] = ctx
    setups: list[Setup] = [
        importlib.import_module(name).setup for name in (*CORE_MODULES, *FEATURE_MODULES)
    ]
    for setup in (*setups, *extra):
        setup(app, ctx)
    # First startup hook, so an undeclared route stops the start before anything else runs.
    app.on_startup.insert(0, _check_routes)
    return app


async def run(ctx: AppContext, stopping: asyncio.Event) -> None:
    """Serve on settings.http_host:http_port until ``stopping`` is set, then drain and close."""
    settings = ctx.settings
    runner = web.AppRunner(build_app(ctx), handle_signals=False, shutdown_timeout=SHUTDOWN_GRACE)
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.http_host, settings.http_port)
        await site.start()
        log.info("http api listening",
                 extra={"host": settings.http_host, "port": settings.http_port})
        await stopping.wait()
    finally:
        await runner.cleanup()
        log.info("http api stopped")
