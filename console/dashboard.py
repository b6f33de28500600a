"""工作台 figures: today and this month against the previous period, and a 14-day trend.

A provisional, small set (服务量 as rated services, 好评率, 满意率, 差评数) computed from the
ratings in scope; the authoritative definitions of every 通报 figure belong to the statistics
engine (issue 11), which this page should read once it exists. Real votes only: defaults
(DOMAIN.md rule 2) and invalid ratings (rule 6) are counted apart.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field

from aiohttp import web
from pydantic import BaseModel
from sqlalchemy import select

from console.ratings_api import READERS, scoped
from hotline.clock import utcnow
from http_api.auth import requires
from http_api.bodies import respond
from http_api.keys import app_ctx, principal
from http_api.openapi import operation
from service.context import AppContext
from storage.models import Rating, RatingSource

TREND_DAYS = 14


class Figures(BaseModel):
    rated: int
    votes: int
    defaults: int
    invalid: int
    good_rate: float | None  # 好评率: (非常满意 + 满意) / real votes
    satisfied_rate: float | None  # 满意率: (… + 基本满意) / real votes
    bad: int  # 差评数


class TrendPoint(BaseModel):
    date: dt.date
    votes: int
    bad: int


class DashboardOut(BaseModel):
    """Today, yesterday, this month, last month, and the daily trend."""

    today: Figures
    yesterday: Figures
    month: Figures
    last_month: Figures
    trend: list[TrendPoint]


@dataclass
class _Tally:
    rated: int = 0
    defaults: int = 0
    invalid: int = 0
    levels: Counter[int] = field(default_factory=Counter)

    def add(self, level: int, source: str, valid: bool) -> None:
        self.rated += 1
        if not valid:
            self.invalid += 1
        elif source == RatingSource.DEFAULT:
            self.defaults += 1
        else:
            self.levels[level] += 1

    def figures(self) -> Figures:
        votes = sum(self.levels.values())
        good = self.levels[1] + self.levels[2]
        return Figures(
            rated=self.rated, votes=votes, defaults=self.defaults, invalid=self.invalid,
            good_rate=good / votes if votes else None,
            satisfied_rate=(good + self.levels[3]) / votes if votes else None,
            bad=self.levels[4] + self.levels[5],
        )


def _month_start(day: dt.date) -> dt.date:
    return day.replace(day=1)


def tally(rows: list[tuple[dt.datetime, int, str, bool]], today: dt.date,
          tz: dt.tzinfo) -> DashboardOut:
    """Pure: the figures of the rows (rated_at UTC, level, source, valid) for ``today``."""
    month = _month_start(today)
    last_month = _month_start(month - dt.timedelta(days=1))
    yesterday = today - dt.timedelta(days=1)
    buckets = {k: _Tally() for k in ("today", "yesterday", "month", "last_month")}
    days: dict[dt.date, _Tally] = {today - dt.timedelta(days=i): _Tally()
                                   for i in range(TREND_DAYS)}
    for rated_at, level, source, valid in rows:
        day = rated_at.astimezone(tz).date()
        if day == today:
            buckets["today"].add(level, source, valid)
        if day == yesterday:
            buckets["yesterday"].add(level, source, valid)
        if day >= month:
            buckets["month"].add(level, source, valid)
        elif day >= last_month:
            buckets["last_month"].add(level, source, valid)
        if day in days:
            days[day].add(level, source, valid)
    trend = [TrendPoint(date=d, votes=sum(t.levels.values()), bad=t.levels[4] + t.levels[5])
             for d, t in sorted(days.items())]
    return DashboardOut(**{k: v.figures() for k, v in buckets.items()}, trend=trend)


@requires(*READERS)
@operation(summary="工作台 figures: today and this month, with the previous period and a trend",
           tags=["ratings"], operation_id="getDashboard", responses={200: DashboardOut})
async def dashboard(request: web.Request) -> web.Response:
    ctx, who = app_ctx(request), principal(request)
    tz = ctx.settings.tz
    today = utcnow().astimezone(tz).date()
    since_day = min(_month_start(_month_start(today) - dt.timedelta(days=1)),
                    today - dt.timedelta(days=TREND_DAYS))
    since = dt.datetime.combine(since_day, dt.time(), tz)
    stmt = scoped(select(Rating.rated_at, Rating.level, Rating.source, Rating.valid)
                  .where(Rating.rated_at >= since), who)
    async with ctx.db.sessions() as s:
        rows = [tuple(r) for r in (await s.execute(stmt)).all()]
    return respond(tally(rows, today, tz))  # type: ignore[arg-type]


def setup(app: web.Application, ctx: AppContext) -> None:
    app.router.add_get("/api/v1/dashboard", dashboard)
