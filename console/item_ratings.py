"""The ratings of one 差评 item and their voice comments, in the item's scope.

Whoever may see an item (bad_ratings.service: a department its own departments' items, an
agent its own) may hear what the citizen said about it, even when the rating itself carries no
department code (a call rated before a supervisor assigned the item). Ratings are found
through the item — its first and latest rating and every rating on its timeline — so the
scope of a rating never widens beyond the items that point at it.
"""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from bad_ratings import service
from console.ratings_api import RatingOut, rating_out, rating_query, recording_file
from http_api.auth import requires
from http_api.bad_ratings import MAX_ID, READERS, actor_of
from http_api.bodies import read_path, respond
from http_api.errors import ApiError
from http_api.keys import app_ctx
from http_api.openapi import Response, operation
from service.context import AppContext
from storage.models import BadRatingItem, Rating

TAGS = ["bad ratings"]


class ItemPath(BaseModel):
    item_id: int = Field(ge=1, le=MAX_ID)


class ItemRatingPath(ItemPath):
    rating_id: int = Field(ge=1, le=MAX_ID)


async def _rating_ids(session: AsyncSession, request: web.Request, item_id: int) -> list[int]:
    try:
        row, events = await service.get_with_timeline(session, actor_of(request), item_id)
    except service.NotFound as exc:
        raise ApiError(404, "not_found", str(exc)) from exc
    return item_rating_ids(row, [e.rating_id for e in events])


def item_rating_ids(row: BadRatingItem, event_ratings: list[int | None]) -> list[int]:
    """The item's ratings, oldest first, each once."""
    found = [row.first_rating_id, *event_ratings, row.latest_rating_id, row.followup_rating_id]
    return sorted({r for r in found if r is not None})


@requires(*READERS)
@operation(summary="The ratings of a 差评 item (level, reasons, comment), in the item's scope",
           tags=TAGS, path=ItemPath, responses={200: list[RatingOut],
                                                404: "No such item, or not yours"},
           operation_id="listBadRatingRatings")
async def list_item_ratings(request: web.Request) -> web.Response:
    path = read_path(request, ItemPath)
    ctx = app_ctx(request)
    async with ctx.db.sessions() as s:
        ids = await _rating_ids(s, request, path.item_id)
        stmt = rating_query().where(Rating.id.in_(ids)).order_by(Rating.id)
        rows = (await s.execute(stmt)).all()
    return respond([rating_out(r, ctx) for r in rows])


@requires(*READERS)
@operation(summary="The voice comment of one of a 差评 item's ratings (audio/wav)", tags=TAGS,
           path=ItemRatingPath, responses={200: Response("The recording (audio/wav)"),
                                           404: "No such item or rating in scope, or no "
                                           "recording"},
           operation_id="getBadRatingComment")
async def item_rating_comment(request: web.Request) -> web.StreamResponse:
    path = read_path(request, ItemRatingPath)
    ctx = app_ctx(request)
    async with ctx.db.sessions() as s:
        ids = await _rating_ids(s, request, path.item_id)
        rating = await s.get(Rating, path.rating_id) if path.rating_id in ids else None
    file = recording_file(ctx, rating.comment_recording) if rating is not None and \
        rating.comment_recording else None
    if file is None:
        raise ApiError(404, "not_found", f"no voice comment for rating {path.rating_id}")
    return web.FileResponse(file, headers={"Content-Type": "audio/wav",
                                           "Cache-Control": "private, no-store"})


def setup(app: web.Application, ctx: AppContext) -> None:
    base = "/api/v1/bad-ratings/{item_id}/ratings"
    app.router.add_get(base, list_item_ratings)
    app.router.add_get(base + "/{rating_id}/comment", item_rating_comment)
