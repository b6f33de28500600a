"""Issue 13: the menu starts without waiting for the database. The call-row write is held (a
slow database, as under a burst) until the caller's side sees the menu command; the survey
must send the menu first, then wait for the row before its save, and keep rule 1 (DOMAIN.md:
a caller who hangs up before pressing is still recorded as not rated)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select

from ivr.agi.simulated import SimulatedCaller, environment_lines, memory_channel
from ivr.survey_flow import handle
from ivr.survey_store import SurveyStore
from service.context import AppContext
from storage.models import Call, Rating, SurveyStatus


@pytest.fixture
async def ctx(settings: Any) -> AsyncIterator[AppContext]:
    """A long save deadline: a survey that waited for the held write before its menu would
    hang past the test's timeout instead of journalling and carrying on."""
    context = AppContext.create(settings.model_copy(update={"survey_save_deadline_seconds": 30}))
    yield context
    await context.close()


class Hold:
    """The order of events: ``row`` when the held call-row write completes, ``menu`` when the
    caller's side receives the first command that plays the menu (which releases the write)."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.gate = asyncio.Event()

    def releasing(self, caller: SimulatedCaller) -> Any:
        def respond(line: str) -> list[str] | None:
            if line.startswith(("STREAM FILE", "GET DATA")) and not self.gate.is_set():
                self.events.append("menu")
                self.gate.set()
            return caller(line)

        return respond


@pytest.fixture
def held(monkeypatch: pytest.MonkeyPatch) -> Hold:
    hold = Hold()
    real = SurveyStore._begin_db

    async def slow_begin(self: SurveyStore, live: bool, now: Any, attempt: Any) -> Any:
        await hold.gate.wait()
        result = await real(self, live, now, attempt)
        hold.events.append("row")
        return result

    monkeypatch.setattr(SurveyStore, "_begin_db", slow_begin)
    return hold


async def run(ctx: AppContext, hold: Hold, caller: SimulatedCaller) -> str:
    channel, _ = memory_channel(hold.releasing(caller), environment_lines())
    await channel.read_environment()
    async with asyncio.timeout(5):
        return await handle(ctx, channel)


async def stored(ctx: AppContext) -> tuple[Call, Rating | None]:
    async with ctx.db.sessions() as s:
        call = await s.scalar(select(Call))
        assert call is not None
        return call, await s.scalar(select(Rating).where(Rating.call_id == call.id))


async def test_the_menu_is_sent_before_the_call_row_is_written(ctx: AppContext, held: Hold) -> None:
    caller = SimulatedCaller(keys=["2"])
    assert await run(ctx, held, caller) == "rated"
    assert held.events == ["menu", "row"]
    call, rating = await stored(ctx)
    assert call.survey_status == SurveyStatus.RATED and rating is not None and rating.level == 2
    assert ctx.survey_journal.pending == 0  # the database took it, nothing was journalled


async def test_rule1_hangup_during_the_menu_waits_for_the_row(ctx: AppContext, held: Hold) -> None:
    """DOMAIN.md rule 1: a hang-up before pressing is recorded as not rated, even though the
    row was still being written when the caller left."""
    assert await run(ctx, held, SimulatedCaller(keys=["hangup"])) == "not_rated_hangup"
    assert held.events == ["menu", "row"]
    call, rating = await stored(ctx)
    assert call.survey_status == SurveyStatus.NOT_RATED and rating is None
