"""The pull feed for aggregation systems that fetch instead of receiving pushes (the outbox
figures, for the console and monitoring alike, are console/delivery.py's ``GET /api/v1/outbox``).

``GET /api/v1/ratings?after=CURSOR&limit=N`` pages through every outbox entry (ratings and,
as their own later entries, updates such as 复核 invalidations) in a stable order. A reader
keeps the ``next`` cursor of each page and asks again with it; an empty page means "caught
up, ask again later". No entry is skipped and none repeats, because the order is the
``feed_seq`` numbering of storage.outbox.sequence_feed (see there why late-committing
entries cannot be overtaken); entries still on hold (a survey being completed) are numbered,
and so served, only once they are ready.

Records carry no evaluator identity (DOMAIN.md rule 8): those fields go to the configured push
endpoint only.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field, field_validator

from forwarder.lookup import extras
from forwarder.profile import Profile, ProfileError
from forwarder.profile import load as load_profile
from forwarder.record import Extra, build_record
from http_api.auth import requires
from http_api.bodies import INT64_MAX, read_query, respond
from http_api.errors import ApiError
from http_api.keys import app_ctx
from http_api.openapi import operation
from service.context import AppContext
from storage import outbox

log = logging.getLogger("hotline.http.feed")

MAX_LIMIT = 1000
_PROFILE: web.AppKey[Profile | None] = web.AppKey("hotline_feed_profile")


class FeedQuery(BaseModel):
    after: str = Field(
        default="0", description="cursor from the previous page's `next`; 0 = the beginning"
    )
    limit: int = Field(default=100, ge=1, le=MAX_LIMIT, description="entries per page")

    @field_validator("after")
    @classmethod
    def _cursor(cls, value: str) -> str:
        # the cursor is a BigInteger: a larger one made the database raise (issue 8 defect 13)
        if not value.isascii() or not value.isdigit() or int(value) > INT64_MAX:
            raise ValueError("not a cursor returned by this feed")
        return value


class FeedItem(BaseModel):
    cursor: str = Field(description="position of this entry; resume after it")
    event: str = Field(description="rating, or invalidation after 复核")
    project_no: str = Field(description="with assess_number: the rating's natural key")
    assess_number: int
    record: dict[str, Any] = Field(description="the record in the configured profile's format")
    rating: dict[str, Any] = Field(description="the rating in the service's canonical form")


class FeedPage(BaseModel):
    """One page of the feed."""

    items: list[FeedItem]
    next: str = Field(description="cursor for the next request (unchanged on an empty page)")
    has_more: bool = Field(description="more entries are ready now: ask again at once")


def _canonical(payload: dict[str, Any]) -> dict[str, Any]:
    # the row id of the rating is an internal detail
    return {k: v for k, v in payload.items() if k != "rating_id"}


@requires("aggregator")
@operation(
    summary="Page through every rating and rating update in a stable order",
    description=(
        "Keep `next` and pass it as `after`. Updates (such as an invalidation after 复核) "
        "appear as new entries. No entry is skipped or repeated."
    ),
    tags=["aggregation"],
    query=FeedQuery,
    responses={200: FeedPage},
)
async def ratings_feed(request: web.Request) -> web.Response:
    query = read_query(request, FeedQuery)
    ctx = app_ctx(request)
    profile = request.app[_PROFILE]
    if profile is None:
        raise ApiError(503, "unavailable", "the forwarding profile cannot be loaded")
    after = int(query.after)
    # number what became ready since the last request, then read; a reader never waits
    # for another reader (the sequencer's lock is held only for the numbering itself)
    await outbox.sequence_feed(ctx.db, limit=max(query.limit, 500))
    page = await outbox.feed_page(ctx.db, after, query.limit)
    found = await extras(ctx.db, None, (e.payload for _, e in page), with_identity=False)
    items = [
        FeedItem(
            cursor=str(seq),
            event=entry.event,
            project_no=entry.project_no,
            assess_number=entry.assess_number,
            record=build_record(
                entry.payload, profile, found.get(entry.payload["rating_id"], Extra()),
                fallback_reason=ctx.settings.bad_rating_fallback_reason, with_identity=False,
            ),
            rating=_canonical(entry.payload),
        )
        for seq, entry in page
    ]
    return respond(FeedPage(
        items=items,
        next=items[-1].cursor if items else str(after),
        has_more=len(items) == query.limit,
    ))


def setup(app: web.Application, ctx: AppContext) -> None:
    try:
        app[_PROFILE] = load_profile(ctx.settings)
    except ProfileError as exc:
        # the push worker refuses to start on this too; the API stays up and says why
        log.error("forwarding profile cannot be loaded", extra={"error": str(exc)})
        app[_PROFILE] = None
    app.router.add_get("/api/v1/ratings", ratings_feed)
