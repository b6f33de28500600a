"""The safety sweep (issue 10 "Every valid 差评 … opens exactly one 差评 item"): the write path
opens or joins an item in the rating's own transaction (``bad_ratings.hook``), but a rating
saved by a process without the hook installed (an import script, a tool writing through
``storage.ratings`` directly, an older version during an upgrade) would have none. The
``serve_bad_ratings`` worker finds every valid 差评 that no item knows and hands it to the same
write-path function, one rating per transaction, so the sweep is idempotent and two workers
cannot open two items for one rating (the item's subject key is unique: the loser's
transaction fails and the winner's item stands).
"""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import Select, exists, or_, select
from sqlalchemy.exc import IntegrityError

from bad_ratings import service
from bad_ratings.deadlines import Policy
from hotline.levels import Level
from storage.db import Database
from storage.models import BadRatingEvent, BadRatingItem, Rating, RatingSource

log = logging.getLogger("hotline.bad_ratings.sweep")

#: how far back the sweep looks unless told (setting ``bad_rating_sweep_lookback_days``): a
#: 差评 older than this is past its 核实 and 整改 deadlines anyway and needs a person (the 通报
#: counts it), not an item opened months late
DEFAULT_LOOKBACK = dt.timedelta(days=60)
BAD_LEVELS = tuple(int(level) for level in Level if level.is_bad)


def orphans_query(since: dt.datetime, limit: int) -> Select[tuple[int]]:
    """Valid, real (not default) 差评 ratings since ``since`` that no item or timeline names
    (the timeline's ``rating_id`` is indexed: this runs once per rating found)."""
    named_by_item = exists().where(or_(
        BadRatingItem.first_rating_id == Rating.id,
        BadRatingItem.latest_rating_id == Rating.id,
        BadRatingItem.followup_rating_id == Rating.id,
    ))
    named_by_event = exists().where(BadRatingEvent.rating_id == Rating.id)
    return (
        select(Rating.id)
        .where(Rating.valid.is_(True), Rating.level.in_(BAD_LEVELS),
               Rating.source != RatingSource.DEFAULT, Rating.rated_at >= since,
               ~named_by_item, ~named_by_event)
        .order_by(Rating.id)
        .limit(limit)
    )


async def sweep(
    db: Database, *, policy: Policy, now: dt.datetime, limit: int = 500,
    lookback: dt.timedelta = DEFAULT_LOOKBACK,
) -> int:
    """Open or join the item of every orphan 差评 rated within ``lookback`` of ``now``;
    returns how many got one."""
    async with db.sessions() as s:
        ids = list(await s.scalars(orphans_query(now - lookback, limit)))
    opened = 0
    for rating_id in ids:
        try:
            async with db.transaction() as s:
                rating = await s.get(Rating, rating_id, with_for_update=True)
                if rating is None:
                    continue
                row = await service.on_rating_saved(s, rating, policy=policy, now=now)
                # a 回访 answer its item's 回访 handles is left alone by the write path too
                if row is None or not await service.is_linked(s, row, rating.id):
                    continue
        except IntegrityError:  # another worker opened the item first: it stands
            continue
        opened += 1
        log.warning("差评 without an item found and handed to the loop",
                    extra={"rating_id": rating_id, "item_id": row.id})
    return opened
