"""Serving the built console (``console_dist_dir``) at ``/``: files as they are, and
``index.html`` for any other page path, so a deep link (``/ratings?level=5``) or a reload
opens the single-page application at that page (its router takes over).

Done as a middleware on unmatched GETs rather than a catch-all route, so unknown API paths
keep their JSON 404 and existing routes their 405.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Handler

from http_api.keys import CTX
from service.context import AppContext

#: Hashed file names under assets/ never change content: cache them for a year.
_IMMUTABLE = "public, max-age=31536000, immutable"
_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    # Element Plus sets style attributes, hence 'unsafe-inline' for styles only; no script
    # but our own files runs.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; "
    "style-src 'self' 'unsafe-inline'; media-src 'self'; font-src 'self' data:; "
    "frame-ancestors 'none'",
}
_NOT_BUILT = """<!doctype html><html lang="zh-CN"><meta charset="utf-8"><title>12345 好差评</title>
<p>控制台尚未构建。Run <code>scripts/setup</code> to build the console (console/web).</p>"""


def _file(dist: Path, path: str) -> Path | None:
    relative = path.lstrip("/")
    if not relative:
        return None
    candidate = (dist / relative).resolve()
    if dist not in candidate.parents or not candidate.is_file():
        return None
    return candidate


@web.middleware
async def spa_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    exc = request.match_info.http_exception
    if (exc is None or exc.status != 404 or request.method not in ("GET", "HEAD")
            or request.path.startswith("/api/")):
        return await handler(request)
    dist = request.app[CTX].settings.console_dist_dir.resolve()
    found = _file(dist, request.path)
    if found is not None:
        cache = _IMMUTABLE if found.parent.name == "assets" else "no-cache"
        return web.FileResponse(found, headers={"Cache-Control": cache, **_SECURITY_HEADERS})
    if Path(request.path).suffix:  # a missing file (.js, .png): a real 404, not the page
        return await handler(request)
    index = dist / "index.html"
    if not index.is_file():
        return web.Response(text=_NOT_BUILT, content_type="text/html", status=503,
                            headers=_SECURITY_HEADERS)
    return web.FileResponse(index, headers={"Cache-Control": "no-cache", **_SECURITY_HEADERS})


def setup(app: web.Application, ctx: AppContext) -> None:
    # The innermost middleware: it only answers what no route matched.
    app.middlewares.append(spa_middleware)
