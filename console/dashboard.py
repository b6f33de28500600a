"""工作台: today and this month against the previous period, a 14-day trend, and the 差评 items
即将超期 and 超期.

Every figure comes from the 通报 engine (``reports.build.counts_by`` and the definitions of
``reports.figures``), so the 工作台 and the 通报 documents can never disagree; this module only
chooses the periods and the viewer's scope. A department sees its own departments' figures, an
agent its own 工号's, supervisors and reviewers the whole centre.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from aiohttp import web
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from bad_ratings import service as bad_service
from bad_ratings import store as bad_store
from console.ratings_api import READERS
from hotline.clock import utcnow
from hotline.settings import Settings
from http_api.auth import requires
from http_api.bad_ratings import ItemOut, actor_of, item_out
from http_api.bodies import respond
from http_api.keys import app_ctx, principal
from http_api.openapi import operation
from http_api.tokens import Principal
from reports.build import counts_by
from reports.engine import Window
from reports.figures import BY_KEY, COUNT_KEYS, values
from reports.periods import Period, containing
from service.context import AppContext

TREND_DAYS = 14
DUE_LIST_LIMIT = 20
#: the 工作台's figures (issue 12), each defined once in reports/figures.py
FIGURE_KEYS = ("served", "rating_rate", "good_rate", "satisfaction_rate", "bad_count",
               "callback_rate", "on_time_rectification_rate")
TREND_KEYS = ("real", "bad_count", "satisfaction_rate")

Values = dict[str, float | int | None]


class PeriodFigures(BaseModel):
    period: str = Field(description="the period's code, as getReport reads it")
    label: str
    values: Values


class Comparison(BaseModel):
    """A period and the one before it (today/yesterday, this month/last month)."""

    current: PeriodFigures
    previous: PeriodFigures


class TrendPoint(BaseModel):
    date: dt.date
    values: Values


class DashboardOut(BaseModel):
    figures: dict[str, str] = Field(description="figure key → Chinese name (reports/figures.py)")
    rates: list[str] = Field(description="the keys that are rates (0..1)")
    today: Comparison
    month: Comparison
    trend: list[TrendPoint]
    due_soon: list[ItemOut] = Field(description="差评 items 即将超期, in scope")
    overdue: list[ItemOut] = Field(description="差评 items 超期, in scope")


@dataclass(frozen=True)
class View:
    """Whose figures: the grouping to ask the engine for, the row to read, the departments."""

    grouping: str
    key: str | None
    departments: frozenset[str] | None


def view_of(who: Principal) -> View:
    if who.role == "department":
        return View("total", None, frozenset(who.departments))
    if who.role == "agent":
        # an agent without a 工号 has no ratings: a key no row has gives zeros
        return View("agent", who.agent_id or "\x00", None)
    return View("total", None, None)


def pick(found: dict[str | None, dict[str, int | None]], view: View) -> Values:
    """The figures of the viewer's row; a row the engine found nothing for counts zero."""
    counts = found.get(view.key) or dict.fromkeys(COUNT_KEYS, 0)
    every = values(counts)
    return {k: every[k] for k in (*FIGURE_KEYS, *TREND_KEYS)}


async def figures_of(session: AsyncSession, settings: Settings, period: Period, view: View,
                     today: dt.date) -> Values:
    start, end = period.bounds(settings.tz)
    found = await counts_by(session, settings, Window(start, end, view.departments),
                            view.grouping, today)
    return pick(found, view)


async def _compare(session: AsyncSession, settings: Settings, period: Period, view: View,
                   today: dt.date) -> Comparison:
    before = period.previous()
    return Comparison(
        current=PeriodFigures(period=period.code, label=period.label,
                              values=await figures_of(session, settings, period, view, today)),
        previous=PeriodFigures(period=before.code, label=before.label,
                               values=await figures_of(session, settings, before, view, today)),
    )


@requires(*READERS)
@operation(summary="工作台: the 通报 figures of today and this month with the previous period, "
           "a 14-day trend, and the 差评 items 即将超期 and 超期",
           tags=["ratings"], operation_id="getDashboard", responses={200: DashboardOut})
async def dashboard(request: web.Request) -> web.Response:
    ctx: AppContext = app_ctx(request)
    who, actor, now = principal(request), actor_of(request), utcnow()
    settings = ctx.settings
    today = now.astimezone(settings.tz).date()
    view = view_of(who)
    async with ctx.db.sessions() as s:
        day = await _compare(s, settings, containing("day", today), view, today)
        month = await _compare(s, settings, containing("month", today), view, today)
        trend = []
        for back in range(TREND_DAYS - 1, -1, -1):
            d = today - dt.timedelta(days=back)
            found = await figures_of(s, settings, containing("day", d), view, today)
            trend.append(TrendPoint(date=d, values={k: found[k] for k in TREND_KEYS}))
        lists = {}
        for name, filters in (("due_soon", bad_store.Filters(due_soon=True)),
                              ("overdue", bad_store.Filters(overdue=True))):
            rows = await bad_service.list_items(s, actor, filters, policy=ctx.bad_rating_policy,
                                                now=now, limit=DUE_LIST_LIMIT)
            lists[name] = [item_out(ctx, r, now) for r in rows]
    keys = (*FIGURE_KEYS, *TREND_KEYS)
    return respond(DashboardOut(
        figures={k: BY_KEY[k].name for k in keys},
        rates=[k for k in keys if BY_KEY[k].unit == "rate"],
        today=day, month=month, trend=trend, **lists,
    ))


def setup(app: web.Application, ctx: AppContext) -> None:
    app.router.add_get("/api/v1/dashboard", dashboard)
