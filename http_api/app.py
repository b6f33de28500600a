"""The HTTP API: an aiohttp application assembled from feature modules.

A feature module is any module with ``setup(app, ctx)`` that adds routes; append its ``setup``
to ``FEATURES``. Each handler declares who may call it (``@requires(...)`` or
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
import logging
from collections.abc import Callable, Iterable

from aiohttp import web

from console import dashboard as console_dashboard
from console import delivery as console_delivery
from console import ratings_api as console_ratings
from console import routes as console_routes
from console import static as console_static
from http_api import bad_ratings, calls, campaigns, case_updates, cases, feed, system
from http_api.auth import auth_middleware, check_routes
from http_api.errors import error_middleware
from http_api.keys import CTX
from reports import http as reports_http
from service.context import AppContext

log = logging.getLogger("hotline.http")

Setup = Callable[[web.Application, AppContext], None]

#: Always present: /healthz, /readyz, /api/v1/openapi.json.
CORE: tuple[Setup, ...] = (system.setup,)

#: Later features append their module's ``setup(app, ctx)`` here.
FEATURES: list[Setup] = [feed.setup, cases.setup, campaigns.setup, calls.setup,
                          bad_ratings.setup, case_updates.setup,
                          reports_http.setup,
                          console_routes.setup, console_ratings.setup,
                          console_dashboard.setup, console_delivery.setup,
                          console_static.setup]

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
    for setup in (*CORE, *FEATURES, *extra):
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
