"""Ratings for the console: search (``listRatings``), the voice comment's audio, and a live
stream of new ratings (server-sent events), each within the caller's scope: a department sees
its own departments' ratings, an agent its own, supervisors and reviewers all.

Numbers are masked (DOMAIN.md rule 8); the stream polls the database, so it sees ratings
written by any process (the FastAGI server may run apart from the HTTP API).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field
from sqlalchemy import Select, func, select

from hotline.levels import Level
from http_api.auth import requires
from http_api.bodies import read_path, read_query, respond
from http_api.errors import ApiError, dumps
from http_api.keys import app_ctx, principal
from http_api.openapi import Response, operation
from http_api.tokens import Principal
from service.context import AppContext
from storage.models import Call, Rating

log = logging.getLogger("hotline.console.ratings")

TAGS = ["ratings"]
#: Who may read ratings; each sees only its scope (:func:`scoped`).
READERS = ("supervisor", "reviewer", "agent", "department")
MAX_LIMIT = 500
LIVE_POLL_SECONDS = 1.0
LIVE_HEARTBEAT_SECONDS = 15.0
RECORDINGS = "recordings"


class RatingsQuery(BaseModel):
    date_from: dt.date | None = Field(default=None, description="Beijing date, inclusive")
    date_to: dt.date | None = Field(default=None, description="Beijing date, inclusive")
    department: str | None = None
    agent: str | None = Field(default=None, description="工号")
    queue: str | None = None
    level: list[int] | int | None = Field(default=None, description="1 非常满意 … 5 非常不满意")
    source: str | None = Field(default=None, description="keypad, callback, manual, default")
    valid: bool | None = None
    bad: bool | None = Field(default=None, description="only 差评 (level 4, 5)")
    offset: int = Field(default=0, ge=0)
    limit: int = Field(default=50, ge=1, le=MAX_LIMIT)


class ReasonOut(BaseModel):
    code: str
    label: str


class RatingOut(BaseModel):
    id: int
    project_no: str
    assess_number: int
    kind: str
    source: str
    level: int
    level_label: str
    bad: bool
    reasons: list[ReasonOut]
    comment_text: str | None
    has_audio: bool
    agent_id: str | None
    department_code: str | None
    queue: str | None
    caller_masked: str | None
    case_number: str | None
    rated_at: dt.datetime
    valid: bool
    invalid_reason: str | None


class RatingsPage(BaseModel):
    """One page of ratings, newest first."""

    items: list[RatingOut]
    total: int


class RatingPath(BaseModel):
    rating_id: int


class LiveQuery(BaseModel):
    after: int | None = Field(default=None, description="last rating id seen; default: now")


def scoped(stmt: Select[Any], who: Principal) -> Select[Any]:
    """Restrict a ratings query to what ``who`` may see (enforced here, not in the page)."""
    if who.role == "agent":
        return stmt.where(Rating.agent_id == (who.agent_id or "\x00"))
    if who.role == "department":
        return stmt.where(Rating.department_code.in_(sorted(who.departments) or ["\x00"]))
    return stmt


def _base() -> Select[Any]:
    return select(Rating, Call.queue, Call.caller_masked, Call.case_number).outerjoin(
        Call, Call.id == Rating.call_id
    )


def _filtered(stmt: Select[Any], q: RatingsQuery, ctx: AppContext) -> Select[Any]:
    tz = ctx.settings.tz
    if q.date_from:
        start = dt.datetime.combine(q.date_from, dt.time(), tz)
        stmt = stmt.where(Rating.rated_at >= start)
    if q.date_to:
        end = dt.datetime.combine(q.date_to + dt.timedelta(days=1), dt.time(), tz)
        stmt = stmt.where(Rating.rated_at < end)
    if q.department:
        stmt = stmt.where(Rating.department_code == q.department)
    if q.agent:
        stmt = stmt.where(Rating.agent_id == q.agent)
    if q.queue:
        stmt = stmt.where(Call.queue == q.queue)
    if q.level is not None:
        levels = q.level if isinstance(q.level, list) else [q.level]
        stmt = stmt.where(Rating.level.in_(levels))
    if q.source:
        stmt = stmt.where(Rating.source == q.source)
    if q.valid is not None:
        stmt = stmt.where(Rating.valid.is_(q.valid))
    if q.bad is not None:
        stmt = stmt.where(Rating.level >= 4 if q.bad else Rating.level < 4)
    return stmt


def rating_out(row: Any, ctx: AppContext) -> RatingOut:
    rating, queue, caller_masked, call_case = row
    labels = {r.code: r.label for r in ctx.settings.survey_reasons}
    codes = [c for c in (rating.reason_codes or "").split(",") if c]
    level = Level(rating.level)
    return RatingOut(
        id=rating.id, project_no=rating.project_no, assess_number=rating.assess_number,
        kind=rating.kind, source=rating.source, level=rating.level, level_label=level.label,
        bad=level.is_bad, reasons=[ReasonOut(code=c, label=labels.get(c, c)) for c in codes],
        comment_text=rating.comment_text, has_audio=bool(rating.comment_recording),
        agent_id=rating.agent_id, department_code=rating.department_code, queue=queue,
        caller_masked=caller_masked, case_number=call_case, rated_at=rating.rated_at,
        valid=rating.valid, invalid_reason=rating.invalid_reason,
    )


@requires(*READERS)
@operation(summary="Search ratings (newest first), with their 差评 reasons", tags=TAGS,
           operation_id="listRatings", query=RatingsQuery, responses={200: RatingsPage})
async def list_ratings(request: web.Request) -> web.Response:
    q = read_query(request, RatingsQuery)
    ctx, who = app_ctx(request), principal(request)
    stmt = scoped(_filtered(_base(), q, ctx), who)
    async with ctx.db.sessions() as s:
        total = await s.scalar(select(func.count()).select_from(stmt.subquery()))
        rows = (await s.execute(
            stmt.order_by(Rating.rated_at.desc(), Rating.id.desc()).offset(q.offset)
            .limit(q.limit))).all()
    return respond(RatingsPage(items=[rating_out(r, ctx) for r in rows], total=total or 0))


def recording_file(ctx: AppContext, stored: str) -> Path | None:
    """The WAV of a stored ``hotline/recordings/<name>.wav`` path, only inside the recordings
    folder (a stored path can never point the server at another file)."""
    directory = (ctx.settings.effective_prompts_dir / RECORDINGS).resolve()
    name = Path(stored).name
    if not name or name.startswith("."):
        return None
    candidate = (directory / name).resolve()
    if candidate.parent != directory:
        return None
    if not candidate.suffix:
        candidate = candidate.with_suffix(".wav")
    return candidate if candidate.is_file() else None


@requires(*READERS)
@operation(summary="The voice comment of a rating (audio/wav)", tags=TAGS,
           operation_id="getRatingComment", path=RatingPath,
           responses={200: Response("The recording (audio/wav)"),
                      404: "No such rating in scope, or no recording"})
async def rating_comment(request: web.Request) -> web.StreamResponse:
    path = read_path(request, RatingPath)
    ctx, who = app_ctx(request), principal(request)
    async with ctx.db.sessions() as s:
        row = (await s.execute(scoped(_base().where(Rating.id == path.rating_id), who))).first()
    file = recording_file(ctx, row[0].comment_recording) if row and \
        row[0].comment_recording else None
    if file is None:
        raise ApiError(404, "not_found", f"no voice comment for rating {path.rating_id}")
    return web.FileResponse(file, headers={"Content-Type": "audio/wav",
                                           "Cache-Control": "private, no-store"})


async def _latest_id(ctx: AppContext) -> int:
    async with ctx.db.sessions() as s:
        return int(await s.scalar(select(func.max(Rating.id))) or 0)


@requires(*READERS)
@operation(summary="Live stream of new ratings (text/event-stream)",
           description="Each event `rating` carries a rating as in listRatings; `after` resumes "
           "after a rating id (the browser's Last-Event-ID does the same).",
           tags=TAGS, operation_id="streamRatings", query=LiveQuery,
           responses={200: Response("Server-sent events")})
async def live_ratings(request: web.Request) -> web.StreamResponse:
    q = read_query(request, LiveQuery)
    ctx, who = app_ctx(request), principal(request)
    last_event = request.headers.get("Last-Event-ID", "")
    after = int(last_event) if last_event.isdigit() else q.after
    if after is None:
        after = await _latest_id(ctx)
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-store",
        "X-Accel-Buffering": "no",
    })
    await response.prepare(request)
    await response.write(b"retry: 2000\n\n")
    idle = 0.0
    try:
        while True:
            async with ctx.db.sessions() as s:
                rows = (await s.execute(scoped(_base().where(Rating.id > after), who)
                                        .order_by(Rating.id).limit(100))).all()
            for row in rows:
                out = rating_out(row, ctx)
                after = out.id
                data = dumps(out.model_dump(mode="json"))
                await response.write(f"id: {out.id}\nevent: rating\ndata: {data}\n\n".encode())
            idle = 0.0 if rows else idle + LIVE_POLL_SECONDS
            if idle >= LIVE_HEARTBEAT_SECONDS:  # keeps proxies from closing a quiet stream
                await response.write(b": keep-alive\n\n")
                idle = 0.0
            await asyncio.sleep(LIVE_POLL_SECONDS)
    except ConnectionResetError:
        pass  # the browser went away
    return response


def setup(app: web.Application, ctx: AppContext) -> None:
    r = app.router
    r.add_get("/api/v1/ratings/search", list_ratings)
    r.add_get("/api/v1/ratings/live", live_ratings)
    r.add_get("/api/v1/ratings/{rating_id}/comment", rating_comment)
