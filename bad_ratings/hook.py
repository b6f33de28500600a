"""Installs the 差评 loop on the rating write path: every rating saved through
``storage.ratings.save_rating`` with a session of this database opens or joins its 差评 item in
the same transaction (``storage.ratings.AFTER_SAVE``); every case 回访 answer is stored on the
item awaiting its 回访 after 整改 (``callback_scheduler.results.AFTER_FOLLOWUP``), and that
回访 first tells the citizen the department's result (``CITIZEN_NEWS``); 整改 and 反馈 records
are queued for the province where the forwarding profile defines them (bad_ratings.upstream)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bad_ratings import followup, upstream
from bad_ratings.deadlines import Policy
from bad_ratings.service import on_rating_saved, policy_from
from callback_scheduler.results import AFTER_FOLLOWUP, CITIZEN_NEWS
from forwarder import profile
from hotline.clock import utcnow
from storage.db import Database
from storage.models import Case, Rating
from storage.ratings import AFTER_SAVE


def upstream_kinds(settings: Any) -> frozenset[str]:
    """The 整改 / 反馈 record kinds the active forwarding profile defines. A profile that cannot
    be loaded queues none here: the forwarder refuses to start and says why."""
    try:
        return frozenset(profile.load(settings).records)
    except profile.ProfileError:
        return frozenset()


def install(db: Database, settings: Any, calendar: Any) -> Policy:
    policy = policy_from(settings, calendar)
    db.info[upstream.ENABLED] = upstream_kinds(settings)

    async def after_save(session: AsyncSession, rating: Rating) -> None:
        await on_rating_saved(session, rating, policy=policy, now=utcnow())

    async def after_followup(
        session: AsyncSession, case: Case, rating: Rating, resolved: bool | None
    ) -> None:
        await followup.on_answer(session, case, rating, resolved, policy=policy, now=utcnow())

    db.info[AFTER_SAVE] = after_save
    db.info[AFTER_FOLLOWUP] = after_followup
    db.info[CITIZEN_NEWS] = followup.citizen_news
    return policy
